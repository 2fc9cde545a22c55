/**
 * Watch streams: newline-separated JSON events over a chunked 200 response.
 *
 * A watch starts either with synthetic ADDED events for the current state
 * (no resourceVersion, or `0`) or by replaying the retained history after a
 * resourceVersion; a resourceVersion older than the history gets one ERROR
 * event (410 Expired) and the stream ends. Selectors turn changes into ADDED /
 * DELETED when an object starts / stops matching. The {@link WatchHub} can
 * end, drop or stall every open stream, for tests of a client's reconnects.
 *
 * @module
 */

import type { KubeObject } from "./objects.ts";
import type { Registry, Selection } from "./registry.ts";
import type { ResourceDef } from "./resources.ts";
import { groupVersion, storageOf } from "./resources.ts";
import type { Change } from "./store.ts";
import { expired } from "./status.ts";
import type { IncludeObject } from "./tables.ts";
import { toTable } from "./tables.ts";

/** Parameters of one watch request. */
export interface WatchRequest {
  /** Kind watched. */
  def: ResourceDef;
  /** Parsed selectors and namespace. */
  selection: Selection;
  /** `resourceVersion` query value, if any. */
  resourceVersion?: string;
  /** `allowWatchBookmarks=true`. */
  allowBookmarks: boolean;
  /** `sendInitialEvents=true`. */
  sendInitialEvents: boolean;
  /** `timeoutSeconds`, if any. */
  timeoutSeconds?: number;
  /** Table version asked for in Accept, if any. */
  table?: { apiVersion: string; includeObject: IncludeObject };
  /** Told of every event written to the stream: its type and size in bytes (accounting). */
  onSend?: (type: string, bytes: number) => void;
}

/** Options of the {@link WatchHub}. */
export interface WatchHubOptions {
  /** Interval of BOOKMARK events for watches that allow them (default 60 s, like the real cacher). */
  bookmarkIntervalMs?: number;
  /** Server-side timeout of watches without `timeoutSeconds` (default 30–60 min). */
  defaultTimeoutMs?: () => number;
  /** Timers of the watches (default real ones; the simulation passes its SimClock). */
  timers?: WatchTimers;
  /** Random numbers in [0, 1) for the default timeout (default `Math.random`). */
  random?: () => number;
}

/** How watches set timers; a SimClock is one. */
export interface WatchTimers {
  /** Runs `fn` once after `ms`; returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
  /** Runs `fn` every `ms`; returns a cancel function. */
  every(ms: number, fn: () => void): () => void;
}

/** Real timers. */
export const realTimers: WatchTimers = {
  after(ms, fn) {
    const id = setTimeout(fn, ms);
    return () => clearTimeout(id);
  },
  every(ms, fn) {
    const id = setInterval(fn, ms);
    return () => clearInterval(id);
  },
};

const encoder = new TextEncoder();

/**
 * What a client reading a cut stream gets: over TCP Deno's fetch fails the
 * body with a TypeError ("error reading a body from connection"), and the
 * in-process transport hands this reason on as it is, so it is one too.
 * Deno prints it as a single line instead of a stack trace.
 */
class WatchCut extends TypeError {
  constructor() {
    super("error reading a body from connection: apiserver-sim: watch stream cut by dropWatches()");
  }

  [Symbol.for("Deno.customInspect")](): string {
    return "apiserver-sim: watch stream cut by dropWatches()";
  }
}

const dropReason = new WatchCut();

/** One open watch stream. */
class ActiveWatch {
  readonly def: ResourceDef;
  #hub: WatchHub;
  #request: WatchRequest;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #queue: [string, string][] = [];
  #closed = false;
  #closeWhenUnstalled = false;
  #timers: (() => void)[] = [];
  #unsubscribe: (() => void) | undefined;
  #sentHeaders = false;
  readonly body: ReadableStream<Uint8Array>;

  constructor(hub: WatchHub, request: WatchRequest) {
    this.#hub = hub;
    this.#request = request;
    this.def = request.def;
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      cancel: () => this.#cleanup(),
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Starts the stream: initial state or replay, then live changes. */
  start(registry: Registry): void {
    const req = this.#request;
    const storage = storageOf(req.def);
    const rv = req.resourceVersion;
    const fromState = req.sendInitialEvents || rv === undefined || rv === "" || rv === "0";
    if (fromState) {
      const { items } = registry.listStored(req.selection);
      for (const obj of items) this.#send("ADDED", obj, registry);
      if (req.sendInitialEvents && req.allowBookmarks) {
        this.#sendBookmark(registry.store.resourceVersion, { "k8s.io/initial-events-end": "true" });
      }
    } else {
      const from = Number(rv);
      const changes = registry.store.since(from);
      if (changes === undefined) {
        const current = registry.store.resourceVersion;
        const status = expired(`too old resource version: ${from} (${current})`).status;
        this.#write("ERROR", JSON.stringify({ type: "ERROR", object: status }));
        this.close();
        return;
      }
      for (const c of changes) if (c.storage === storage) this.#deliver(c, registry);
    }
    this.#unsubscribe = registry.store.subscribe((change) => {
      if (change.storage === storage) this.#deliver(change, registry);
    });
    const hubOptions = this.#hub.options;
    const timers = hubOptions.timers ?? realTimers;
    if (req.allowBookmarks) {
      const every = hubOptions.bookmarkIntervalMs ?? 60_000;
      this.#timers.push(timers.every(every, () => {
        if (!this.#hub.stalled) this.#sendBookmark(registry.store.resourceVersion);
      }));
    }
    const random = hubOptions.random ?? Math.random;
    const timeoutMs = req.timeoutSeconds !== undefined
      ? req.timeoutSeconds * 1000
      : (hubOptions.defaultTimeoutMs ?? (() => 1_800_000 * (1 + random())))();
    this.#timers.push(timers.after(timeoutMs, () => this.#timeout()));
  }

  #timeout(): void {
    if (this.#hub.stalled) this.#closeWhenUnstalled = true;
    else this.close();
  }

  /** Turns a store change into the event this watcher's selection sees, if any. */
  #deliver(change: Change, registry: Registry): void {
    const { selection } = this.#request;
    const nowMatches = change.type !== "DELETED" && registry.matches(selection, change.object);
    const wasMatching = change.previous !== undefined &&
      registry.matches(selection, change.previous);
    if (change.type === "ADDED") {
      if (nowMatches) this.#send("ADDED", change.object, registry);
    } else if (change.type === "DELETED") {
      if (wasMatching) this.#send("DELETED", change.object, registry);
    } else if (nowMatches && wasMatching) {
      this.#send("MODIFIED", change.object, registry);
    } else if (nowMatches) {
      this.#send("ADDED", change.object, registry);
    } else if (wasMatching) {
      // stops matching: its old content with the new resourceVersion
      const old = structuredClone(change.previous!);
      old.metadata.resourceVersion = change.object.metadata.resourceVersion;
      this.#send("DELETED", old, registry);
    }
  }

  #send(type: string, stored: KubeObject, registry: Registry): void {
    const served = registry.present(this.def, stored);
    let object: KubeObject = served;
    const table = this.#request.table;
    if (table !== undefined) {
      object = toTable([served], {
        group: this.def.group,
        resource: this.def.resource,
        apiVersion: table.apiVersion,
        includeObject: table.includeObject,
        resourceVersion: served.metadata.resourceVersion ?? "",
        noHeaders: this.#sentHeaders,
        now: registry.now(),
      });
      this.#sentHeaders = true;
    }
    this.#write(type, JSON.stringify({ type, object }));
  }

  #sendBookmark(rv: number, annotations?: Record<string, string>): void {
    const metadata: Record<string, unknown> = { resourceVersion: String(rv) };
    if (annotations !== undefined) metadata.annotations = annotations;
    const object = { kind: this.def.kind, apiVersion: groupVersion(this.def), metadata };
    this.#write("BOOKMARK", JSON.stringify({ type: "BOOKMARK", object }));
  }

  #write(type: string, line: string): void {
    if (this.#closed) return;
    if (this.#hub.stalled) {
      this.#queue.push([type, line]);
      return;
    }
    this.#emit(type, line);
  }

  #emit(type: string, line: string): void {
    const bytes = encoder.encode(line + "\n");
    this.#controller.enqueue(bytes);
    this.#request.onSend?.(type, bytes.byteLength);
  }

  /** Sends what queued up during a stall. */
  unstall(): void {
    if (this.#closed) return;
    for (const [type, line] of this.#queue.splice(0)) this.#emit(type, line);
    if (this.#closeWhenUnstalled) this.close();
  }

  /** Sends a bookmark now, if this watch allows them. */
  bookmark(rv: number): void {
    if (this.#request.allowBookmarks && !this.#hub.stalled) this.#sendBookmark(rv);
  }

  /** Ends the stream normally. */
  close(): void {
    if (this.#closed) return;
    this.#cleanup();
    try {
      this.#controller.close();
    } catch {
      // the client already went away
    }
  }

  /** Ends the stream abruptly: the response body errors, the connection is cut. */
  drop(): void {
    if (this.#closed) return;
    this.#cleanup();
    try {
      this.#controller.error(dropReason);
    } catch {
      // the client already went away
    }
  }

  #cleanup(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#unsubscribe?.();
    for (const cancel of this.#timers) cancel();
    this.#timers = [];
    this.#hub.forget(this);
  }
}

/** All open watches of one server. */
export class WatchHub {
  /** Hub options (bookmark interval, default timeout). */
  readonly options: WatchHubOptions;
  #open = new Set<ActiveWatch>();
  #stalled = false;

  /** Creates an empty hub. */
  constructor(options: WatchHubOptions = {}) {
    this.options = options;
  }

  /** Whether watches are stalled. */
  get stalled(): boolean {
    return this.#stalled;
  }

  /** Number of open watch streams. */
  get openCount(): number {
    return this.#open.size;
  }

  /** Opens a watch; the returned stream is the response body. */
  open(registry: Registry, request: WatchRequest): ReadableStream<Uint8Array> {
    const w = new ActiveWatch(this, request);
    this.#open.add(w);
    w.start(registry);
    return w.body;
  }

  /** Called by a watch when it ends. */
  forget(w: ActiveWatch): void {
    this.#open.delete(w);
  }

  /** Ends every open watch normally (resource filter optional). */
  closeAll(resource?: string): void {
    for (const w of [...this.#open]) {
      if (resource === undefined || w.def.resource === resource) w.close();
    }
  }

  /** Cuts every open watch (resource filter optional). */
  dropAll(resource?: string): void {
    for (const w of [...this.#open]) {
      if (resource === undefined || w.def.resource === resource) w.drop();
    }
  }

  /** Stalls (true) or resumes (false) every open and future watch. */
  stall(on: boolean): void {
    this.#stalled = on;
    if (!on) { for (const w of [...this.#open]) w.unstall(); }
  }

  /** Sends a BOOKMARK now on every watch that allows them. */
  bookmarkAll(rv: number): void {
    for (const w of [...this.#open]) w.bookmark(rv);
  }
}
