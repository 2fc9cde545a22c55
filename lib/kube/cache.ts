/**
 * List+watch caches that the rules read.
 *
 * Each cache lists once, then watches from the list's resourceVersion, and
 * keeps only slim objects (see objects.ts). It survives every way a watch
 * can end:
 * - the server closes the stream (timeoutSeconds, restart): re-watch from the
 *   last resourceVersion;
 * - 410 Expired (as an ERROR event or an HTTP status): relist;
 * - 5xx, 429, transport errors: back off exponentially (honouring
 *   Retry-After), then relist; the cache reports itself unsynced meanwhile;
 * - a watch that ends or expires within a second without delivering an
 *   event, or a 410 that comes again within 10 s of the previous one, is a
 *   failed attempt: it backs off like an error (so a server or proxy that
 *   answers every watch at once cannot make the cache spin), and after 5 in
 *   a row the cache reports itself unsynced until a watch works again;
 * - a server that keeps the stream open but sends nothing: the stream is
 *   abandoned once it outlives the timeoutSeconds it asked for by a grace
 *   period, so a dead server is noticed within a bounded time;
 * - every `resyncIntervalMs` a full relist replaces the content, so a missed
 *   event heals.
 * Lists are paged (`limit=500` and `continue`, as client-go does), so a large
 * collection is never one response held in memory; a continue token that
 * expires mid-list (410) starts the list again from the first page.
 * A cache may keep only some objects (`keep`); when what it should keep
 * grows, `relist()` lists again, and the cache reports itself unsynced until
 * a list that began after the request is complete.
 * It never throws out of its run loop and never exits the process.
 *
 * @module
 */

import { ApiError, type KubeClient } from "./client.ts";
import { errorMessage } from "../errors.ts";
import { sleep, type TimerId } from "../clock.ts";
import { markUnchanging } from "../unchanging.ts";

/** Logger used by caches. */
export interface CacheLogger {
  /** Informational message. */
  info(message: string): void;
  /** Warning message. */
  warn(message: string): void;
  /** Debug message. */
  debug(message: string): void;
}

/** How to list and watch one kind. */
export interface CacheOptions<T> {
  /** Name used in logs and health reasons, e.g. `pods on node-a`. */
  name: string;
  /** Collection path, e.g. `/api/v1/pods`. */
  path: string;
  /** Optional label selector. */
  labelSelector?: string;
  /** Optional field selector. */
  fieldSelector?: string;
  /** Convert an API object; undefined skips it (malformed). */
  convert: (raw: unknown) => T | undefined;
  /**
   * Whether to hold a converted object (default: all). An object that is no
   * longer kept when it changes is dropped; one that was not kept and should
   * be now arrives only with its next change or a `relist()`.
   */
  keep?: (item: T) => boolean;
  /** Store key of a converted object. */
  key: (item: T) => string;
  /** Called after the content changed. */
  onChange?: () => void;
  /** Full relist period in ms (0: never). */
  resyncIntervalMs: number;
  /** timeoutSeconds sent with each watch (default 60, jittered up to +25%). */
  watchTimeoutSeconds?: number;
  /** How long past its timeoutSeconds a silent watch is given before it is abandoned (ms). */
  watchGraceMs?: number;
  /** First backoff delay in ms (default 500). */
  backoffInitialMs?: number;
  /** Maximum backoff delay in ms (default 30 000). */
  backoffMaxMs?: number;
  /** Objects per list page (`limit`, default 500 as kubectl and client-go; 0: one unpaged list). */
  pageSize?: number;
  /** Logger. */
  log: CacheLogger;
}

/** A list answer (one page). */
interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: unknown[];
}

/** Page size of lists, as kubectl and client-go's reflector use. */
const defaultPageSize = 500;
/** Lists started again after an expired continue token before the list counts as failed. */
const maxListRestarts = 3;

interface WatchEvent {
  type: string;
  object?: {
    metadata?: { resourceVersion?: string };
    code?: number;
    reason?: string;
    message?: string;
  };
}

const retryAfterCapMs = 60_000;
/** A watch open for less than this that delivered no event is a failed attempt. */
const quickWatchMs = 1_000;
/** A 410 this soon after the previous one is a failed attempt, however long the watch was. */
const expiryWindowMs = 10_000;
/** Failed watch attempts in a row after which the cache reports itself unsynced. */
const failedWatchesUnsynced = 5;

/** How one watch ended. */
interface WatchResult {
  /**
   * `ended`: the server closed the stream; `expired`: 410, a relist is due;
   * `resync`: cut short for the periodic relist; `stopped`: the cache stops.
   */
  outcome: "ended" | "expired" | "resync" | "stopped";
  /** It delivered an event, or stayed open long enough to count as working. */
  proven: boolean;
  /** How long the stream was open, in ms; undefined if it never opened (an HTTP 410). */
  openMs: number | undefined;
}

/** A list+watch cache of slim objects. */
export class ListWatchCache<T> {
  readonly #opts: CacheOptions<T>;
  readonly #client: KubeClient;
  #items = new Map<string, T>();
  /** `items()` until the content changes. */
  #itemsArray: readonly T[] | undefined;
  #resourceVersion = "";
  #synced = false;
  #healthy = false;
  #problem = "not listed yet";
  #stop = new AbortController();
  #running: Promise<void> | undefined;
  #lastListAt = -Infinity;
  #wake: (() => void) | undefined;
  /** Watches in a row that failed without an error (see `#run`). */
  #failedWatches = 0;
  #watchProblem = "";
  #watchProven = false;
  /** Relists asked for by `relist()`; a list records the count it began at. */
  #relistsAsked = 0;
  /** `#relistsAsked` when the last complete list began. */
  #relistsDone = 0;
  /** Aborts the open watch, for `relist()`. */
  #watchAbort: AbortController | undefined;

  /** Create a cache; call `start()` to fill it. */
  constructor(client: KubeClient, options: CacheOptions<T>) {
    this.#client = client;
    this.#opts = options;
  }

  /** Name used in logs. */
  get name(): string {
    return this.#opts.name;
  }

  /**
   * All items. The array is shared until the content next changes (every
   * decision cycle reads it, and most find nothing changed): do not modify it.
   */
  items(): readonly T[] {
    this.#itemsArray ??= markUnchanging([...this.#items.values()]);
    return this.#itemsArray;
  }

  /** Number of items held. */
  get size(): number {
    return this.#items.size;
  }

  /** The item held under `key`, if any. */
  get(key: string): T | undefined {
    return this.#items.get(key);
  }

  /**
   * List again soon (the open watch is ended), because objects the cache
   * did not keep may be wanted now. Until a list that began after this call
   * is complete, the cache reports itself unsynced: its content may lack
   * objects it should hold. Several calls before that list begins make one list.
   */
  relist(): void {
    this.#relistsAsked++;
    this.#watchAbort?.abort(new Error("relist"));
  }

  /**
   * True once listed and while the watch is established or being
   * re-established without error. False while backing off after an error,
   * and after several watches in a row failed without delivering anything.
   */
  get synced(): boolean {
    return this.#synced && this.#healthy && this.#failedWatches < failedWatchesUnsynced &&
      this.#relistsDone === this.#relistsAsked;
  }

  /** Why the cache is not synced ("" when it is). */
  get problem(): string {
    if (this.synced) return "";
    if (!this.#synced || !this.#healthy) return this.#problem;
    if (this.#failedWatches >= failedWatchesUnsynced) return this.#watchProblem;
    return `${this.#opts.name}: listing again for objects it did not keep before`;
  }

  /** Start listing and watching in the background. */
  start(): void {
    if (this.#running) return;
    this.#running = this.#run();
  }

  /** Stop and wait until the background work ended. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#wake?.();
    await this.#running;
  }

  /** Wait until synced or the deadline passed; returns `synced`. */
  async waitSynced(timeoutMs: number): Promise<boolean> {
    const deadline = this.#client.clock.monotonic() + timeoutMs;
    while (
      !this.synced && this.#client.clock.monotonic() < deadline && !this.#stop.signal.aborted
    ) {
      await sleep(this.#client.clock, 20, this.#stop.signal);
    }
    return this.synced;
  }

  async #run(): Promise<void> {
    const o = this.#opts;
    const initial = o.backoffInitialMs ?? 500;
    const max = o.backoffMaxMs ?? 30_000;
    let backoff = initial;
    let needList = true;
    let lastExpiryAt = -Infinity;
    while (!this.#stop.signal.aborted) {
      // Set when this attempt failed: wait this long, then double the backoff.
      let wait: number | undefined;
      try {
        const resyncDue = o.resyncIntervalMs > 0 &&
          this.#client.clock.monotonic() - this.#lastListAt >= o.resyncIntervalMs;
        if (needList || resyncDue || this.#relistsDone !== this.#relistsAsked) {
          await this.#list();
          needList = false;
        }
        const watch = await this.#watch();
        if (watch.outcome === "stopped") break;
        // A timer may fire a little early; the relist it was cut for is due.
        if (watch.outcome === "resync") needList = true;
        const expired = watch.outcome === "expired";
        const now = this.#client.clock.monotonic();
        const sincePreviousExpiry = now - lastExpiryAt;
        if (expired) {
          lastExpiryAt = now;
          needList = true;
        }
        const repeatedExpiry = expired && sincePreviousExpiry < expiryWindowMs;
        if (watch.proven && !repeatedExpiry) {
          backoff = initial;
          if (expired) o.log.info(`${o.name}: watch expired (410), relisting`);
        } else if (watch.outcome !== "resync") {
          // A server (or proxy) that ends every watch at once, or expires
          // every resourceVersion it hands out, would otherwise get a list
          // and a watch as fast as the network allows, each waking the
          // decision loop. Such a watch is a failed attempt, like an error.
          wait = backoff;
          this.#failedWatches++;
          const last = describeFailedWatch(watch, sincePreviousExpiry);
          const summary = `${this.#failedWatches} watches in a row failed, the last ${last}`;
          if (this.#failedWatches >= failedWatchesUnsynced) {
            this.#watchProblem = `${o.name}: ${summary}`;
            o.log.warn(`${o.name}: ${summary}; retrying in ${Math.round(wait)}ms`);
          } else {
            o.log.info(`${o.name}: watch ${last}; retrying in ${Math.round(wait)}ms`);
          }
        }
      } catch (err) {
        if (this.#stop.signal.aborted) break;
        this.#healthy = false;
        this.#problem = `${o.name}: ${errorMessage(err)}`;
        needList = true;
        wait = backoff;
        if (err instanceof ApiError && err.retryAfterSeconds !== undefined) {
          // The server's own request wins over our backoff (bounded, so a
          // bogus header cannot park the cache for long).
          wait = Math.max(wait, Math.min(err.retryAfterSeconds * 1000, retryAfterCapMs));
        }
        o.log.warn(`${o.name}: ${errorMessage(err)}; retrying in ${Math.round(wait)}ms`);
      }
      if (wait !== undefined) {
        await this.#sleep(wait);
        backoff = Math.min(backoff * 2, max);
      }
    }
  }

  /** The current watch works: it delivered an event or stayed open long enough. */
  #proveWatch(): void {
    this.#watchProven = true;
    this.#failedWatches = 0;
    this.#watchProblem = "";
  }

  async #sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const clock = this.#client.clock;
      const timer = clock.setTimeout(done, ms);
      function done() {
        clock.clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
    this.#wake = undefined;
  }

  /**
   * List in pages of `pageSize` (`limit` + `continue`), so a large
   * collection never arrives as one huge response: each page is converted
   * to slim objects and dropped before the next is fetched. A continue token
   * that expired mid-way (410: the server no longer has the list's
   * snapshot) starts the list again from the first page; the content is
   * replaced only once every page arrived.
   */
  async #list(): Promise<void> {
    const o = this.#opts;
    const pageSize = o.pageSize ?? defaultPageSize;
    const relistsAsked = this.#relistsAsked;
    const items = new Map<string, T>();
    let skipped = 0;
    let dropped = 0;
    let token: string | undefined;
    let resourceVersion = "";
    let pages = 0;
    let restarts = 0;
    for (;;) {
      let list: ListPage;
      try {
        list = await this.#client.request<ListPage>("list", "GET", o.path, {
          query: {
            labelSelector: o.labelSelector,
            fieldSelector: o.fieldSelector,
            limit: pageSize > 0 ? pageSize : undefined,
            continue: token,
          },
          signal: this.#stop.signal,
        });
      } catch (err) {
        if (
          token !== undefined && err instanceof ApiError && err.status === 410 &&
          restarts < maxListRestarts
        ) {
          restarts++;
          o.log.info(
            `${o.name}: list expired (410) after ${pages} pages of ${pageSize}, listing again from the start`,
          );
          items.clear();
          skipped = 0;
          dropped = 0;
          token = undefined;
          pages = 0;
          continue;
        }
        throw err;
      }
      if (!Array.isArray(list.items) || typeof list.metadata?.resourceVersion !== "string") {
        throw new Error("list answer has no items or no metadata.resourceVersion");
      }
      for (const raw of list.items) {
        const item = o.convert(raw);
        if (item === undefined) skipped++;
        else if (o.keep !== undefined && !o.keep(item)) dropped++;
        else items.set(o.key(item), item);
      }
      // Every page of one list carries the resourceVersion of its snapshot.
      resourceVersion = list.metadata.resourceVersion;
      const next = list.metadata.continue;
      token = typeof next === "string" && next !== "" ? next : undefined;
      pages++;
      if (token === undefined) break;
    }
    if (skipped > 0) o.log.warn(`${o.name}: skipped ${skipped} malformed objects`);
    this.#items = items;
    this.#itemsArray = undefined;
    this.#relistsDone = relistsAsked;
    this.#resourceVersion = resourceVersion;
    this.#lastListAt = this.#client.clock.monotonic();
    this.#synced = true;
    this.#healthy = true;
    this.#problem = "";
    o.log.debug(
      `${o.name}: listed ${items.size} objects (${dropped} not kept) in ${pages} pages at resourceVersion ${this.#resourceVersion}`,
    );
    o.onChange?.();
  }

  /** Watch until the stream ends; "expired" asks for a relist. */
  async #watch(): Promise<WatchResult> {
    const o = this.#opts;
    const base = o.watchTimeoutSeconds ?? 60;
    const timeoutSeconds = Math.max(1, Math.round(base * (1 + this.#client.clock.random() * 0.25)));
    const graceMs = o.watchGraceMs ?? 15_000;
    const abort = new AbortController();
    const onStop = () => abort.abort();
    this.#stop.signal.addEventListener("abort", onStop);
    this.#watchAbort = abort;
    // A stream that outlives the timeout the server promised is dead.
    const clock = this.#client.clock;
    const deadline = clock.setTimeout(
      () => abort.abort(new Error("stalled")),
      timeoutSeconds * 1000 + graceMs,
    );
    // A relist is due even if the server keeps the watch open.
    const resyncLeft = o.resyncIntervalMs > 0
      ? Math.max(0, o.resyncIntervalMs - (this.#client.clock.monotonic() - this.#lastListAt))
      : 0;
    const resync = o.resyncIntervalMs > 0
      ? clock.setTimeout(() => abort.abort(new Error("resync")), resyncLeft)
      : undefined;
    this.#watchProven = false;
    let openedAt: number | undefined;
    let proof: TimerId;
    const result = (outcome: WatchResult["outcome"]): WatchResult => ({
      outcome,
      proven: this.#watchProven,
      openMs: openedAt === undefined ? undefined : this.#client.clock.monotonic() - openedAt,
    });
    try {
      // A relist asked for since the list: no watch from its resourceVersion.
      if (this.#relistsDone !== this.#relistsAsked) abort.abort(new Error("relist"));
      abort.signal.throwIfAborted();
      const stream = await this.#client.openStream(o.path, {
        watch: 1,
        resourceVersion: this.#resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds,
        labelSelector: o.labelSelector,
        fieldSelector: o.fieldSelector,
      }, abort.signal);
      openedAt = this.#client.clock.monotonic();
      // Short timeouts (tests) must not make every normal end look quick.
      proof = clock.setTimeout(
        () => this.#proveWatch(),
        Math.min(quickWatchMs, timeoutSeconds * 500),
      );
      try {
        return result(await this.#consume(stream.body, abort.signal));
      } finally {
        // However reading ended (an early return on 410, a throw), close the
        // request so its connection is not left open until the server ends it.
        abort.abort(new Error("watch finished"));
        stream.done();
      }
    } catch (err) {
      if (this.#stop.signal.aborted) return result("stopped");
      const reason = abort.signal.reason;
      if (
        abort.signal.aborted && reason instanceof Error &&
        (reason.message === "resync" || reason.message === "relist")
      ) {
        return result("resync");
      }
      if (abort.signal.aborted && reason instanceof Error && reason.message === "stalled") {
        throw new Error(
          `watch sent nothing and did not end ${graceMs}ms after its ${timeoutSeconds}s timeout: server unresponsive`,
        );
      }
      if (err instanceof ApiError && err.status === 410) return result("expired");
      throw err;
    } finally {
      clock.clearTimeout(deadline);
      clock.clearTimeout(proof);
      clock.clearTimeout(resync);
      this.#watchAbort = undefined;
      this.#stop.signal.removeEventListener("abort", onStop);
    }
  }

  async #consume(response: Response, signal: AbortSignal): Promise<"ended" | "expired"> {
    if (!response.body) return "ended";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const onAbort = () => reader.cancel().catch(() => {});
    signal.addEventListener("abort", onAbort);
    let buffer = "";
    let finished = false;
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (signal.aborted) throw signal.reason ?? new Error("aborted");
        if (done) {
          finished = true;
          break;
        }
        buffer += value;
        let newline: number;
        while ((newline = buffer.indexOf("\n")) !== -1) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (line && this.#apply(line) === "expired") return "expired";
        }
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      // Stopped reading early: cancel the body, which closes the stream.
      if (!finished) reader.cancel().catch(() => {});
      reader.releaseLock();
    }
    if (signal.aborted) throw signal.reason ?? new Error("aborted");
    return "ended";
  }

  #apply(line: string): "ok" | "expired" {
    const o = this.#opts;
    let event: WatchEvent;
    try {
      event = JSON.parse(line);
    } catch {
      o.log.warn(`${o.name}: ignoring an unparsable watch line (${line.slice(0, 80)})`);
      return "ok";
    }
    const rv = event.object?.metadata?.resourceVersion;
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED": {
        const item = o.convert(event.object);
        let changed = true;
        if (item === undefined) {
          o.log.warn(`${o.name}: skipping a malformed ${event.type} object`);
        } else if (event.type === "DELETED") {
          changed = this.#items.delete(o.key(item)) || o.keep === undefined;
        } else if (o.keep !== undefined && !o.keep(item)) {
          // Not (or no longer) kept: nothing the rules read changed unless it was held.
          changed = this.#items.delete(o.key(item));
        } else {
          this.#items.set(o.key(item), item);
        }
        if (rv) this.#resourceVersion = rv;
        this.#proveWatch();
        if (changed) {
          this.#itemsArray = undefined;
          o.onChange?.();
        }
        return "ok";
      }
      case "BOOKMARK":
        if (rv) this.#resourceVersion = rv;
        this.#proveWatch();
        return "ok";
      case "ERROR":
        if (event.object?.code === 410) return "expired";
        throw new ApiError("watch", o.path, {
          status: event.object?.code ?? 500,
          reason: event.object?.reason ?? "Unknown",
          message: event.object?.message ?? "watch ERROR event",
        });
      default:
        o.log.warn(`${o.name}: ignoring watch event of unknown type ${JSON.stringify(event.type)}`);
        return "ok";
    }
  }
}

/** What went wrong with a failed watch, e.g. `ended after 3ms without events`. */
function describeFailedWatch(watch: WatchResult, sincePreviousExpiryMs: number): string {
  if (watch.proven) {
    return `expired (410) again ${Math.round(sincePreviousExpiryMs)}ms after the previous expiry`;
  }
  if (watch.openMs === undefined) return "was answered 410 Expired";
  const how = watch.outcome === "expired" ? "expired (410)" : "ended";
  return `${how} after ${Math.round(watch.openMs)}ms without events`;
}
