/**
 * Keeps the DRBD model of this node current, the way drbd-reactor does:
 * a long-running `drbdsetup events2` delivers every state change as it
 * happens, and a full resync every `statusIntervalMs` (a fresh
 * `events2 --now` plus `show --show-defaults --json`) reads the quorum and
 * suspend options and catches a stream that stalled.
 *
 * Both commands and options exist in drbd-utils 9.22 (Debian 12) and current.
 * `events2 --now` is used rather than `status --json` because only events2
 * carries may_promote.
 *
 * How fresh a sample is (`confirmedAt`), so that the rules' staleness bound
 * (2 × statusInterval + failOverTimeout) holds the agent back whenever the
 * sampler cannot vouch for the state:
 *
 * - A live stream does not confirm anything by itself: a stream that hung
 *   looks exactly like a quiet one. While the stream is live, `confirmedAt`
 *   is the later of the stream's start (its dump is a full read) and the
 *   start of the last full resync whose reading agreed with the stream. When
 *   resyncs keep failing, `confirmedAt` stays put and the sample goes stale,
 *   even though the stream still delivers changes.
 * - After the stream printed a line that cannot be read, its state may be
 *   wrong: the sample has availability `error` (the message names the line)
 *   until a resync that began after that line agrees with the stream, or a
 *   resync that disagrees replaces the state and restarts the stream. A resync
 *   is started at once for this.
 * - When the stream is not live, `confirmedAt` is the start of the resync that
 *   read the served state, or the time the ended stream was last confirmed.
 *
 * Nothing the sampler runs in the background may end the process: every
 * unexpected failure is logged, counted through `onError`, and the work is
 * retried after a delay.
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { Events2State, parseEvents2Dump } from "./events2.ts";
import type { DrbdResource, DrbdResourceConfig, DrbdSample } from "./model.ts";
import {
  type DrbdsetupEdge,
  DrbdsetupError,
  type DrbdsetupExit,
  type DrbdsetupProcess,
  runDrbdsetupChecked,
  spawnDrbdsetup,
} from "./run.ts";
import { type Clock, systemClock, type TimerId } from "../clock.ts";
import { parseShowJson } from "./show_json.ts";
import { type Log, logger } from "../log.ts";

/** The message of a sample whose availability is `not-loaded`. */
export const NOT_LOADED_MESSAGE = "DRBD not loaded: nothing to watch";

/**
 * drbdsetup says the same when the module is loaded but DRBD 9.1 or older
 * hides its netlink family from the pod's network namespace.
 */
export const NOT_LOADED_HINT = "if the module is loaded, it may be DRBD 9.1 or older, which " +
  "answers only in the host's network namespace: run the pod with hostNetwork";

/** Arguments of the long-running stream. */
export const EVENTS2_STREAM_ARGS: readonly string[] = Object.freeze(["events2"]);
/** Arguments of the one-shot state dump. */
export const EVENTS2_NOW_ARGS: readonly string[] = Object.freeze(["events2", "--now"]);
/** Arguments of the configuration read (`--show-defaults`: 9.22 hides defaults otherwise). */
export const SHOW_ARGS: readonly string[] = Object.freeze(["show", "--show-defaults", "--json"]);

/** Options of {@linkcode DrbdSampler}; the edge (env, spawn, clock) reaches drbdsetup. */
export interface DrbdSamplerOptions extends DrbdsetupEdge {
  /** Period of the full resync in milliseconds (the agent's `drbdStatusInterval`). */
  statusIntervalMs: number;
  /** Bound on each one-shot drbdsetup command (default 10 s). */
  timeoutMs?: number;
  /** Called after every applied change, so a waiting loop can wake at once. */
  onChange?: () => void;
  /** Called with the drbdsetup subcommand (`events2`, `show`) whenever one fails. */
  onError?: (command: string) => void;
  /** First delay before restarting a failed stream (default 1 s). */
  restartDelayMinMs?: number;
  /** Largest delay before restarting a failed stream (default 30 s). */
  restartDelayMaxMs?: number;
  /** A stream that ran this long after its dump resets the delay (default 60 s). */
  stableAfterMs?: number;
  /** How long a resync waits for a quiet stream before calling a difference a stall. */
  stallSettleMs?: number;
  /** Where log messages go (default: `logger("drbd")`). */
  log?: Log;
  /** Wall clock for `confirmedAt` (default the clock's `now`). */
  now?: () => number;
}

/** Problem that makes the sample unavailable. */
interface Trouble {
  availability: "not-loaded" | "error";
  message: string;
}

/** A resync's reading of DRBD. */
type Reading =
  | { kind: "ok"; resources: DrbdResource[]; configs: Map<string, DrbdResourceConfig> | undefined }
  | { kind: "not-loaded" }
  | { kind: "error"; message: string };

function withConfig(
  resources: DrbdResource[],
  configs: Map<string, DrbdResourceConfig> | undefined,
): DrbdResource[] {
  return resources.map((resource) => {
    const config = configs?.get(resource.name);
    return { ...resource, config: config === undefined ? undefined : { ...config } };
  });
}

function sameState(a: DrbdResource[], b: DrbdResource[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function differingNames(a: DrbdResource[], b: DrbdResource[]): string[] {
  const names = new Set([...a.map((r) => r.name), ...b.map((r) => r.name)]);
  const byName = (list: DrbdResource[], name: string) => list.find((r) => r.name === name);
  return [...names].filter((name) =>
    JSON.stringify(byName(a, name)) !== JSON.stringify(byName(b, name))
  ).sort();
}

function exitError(exit: DrbdsetupExit): DrbdsetupError {
  return new DrbdsetupError({
    failure: "exit",
    args: [...EVENTS2_STREAM_ARGS],
    code: exit.code,
    stderr: exit.stderr,
  });
}

function exitDescription(exit: DrbdsetupExit): string {
  const said = exit.stderr.split("\n").map((l) => l.trim()).filter((l) => l !== "").join("; ");
  const how = exit.signal !== null
    ? `was killed by ${exit.signal}`
    : `exited with code ${exit.code}`;
  return `drbdsetup ${EVENTS2_STREAM_ARGS.join(" ")} ${how}` + (said === "" ? "" : `: ${said}`);
}

/** Options of the one-shot reads. */
interface ReadOptions extends DrbdsetupEdge {
  timeoutMs: number;
  signal?: AbortSignal;
  onError?: (command: string) => void;
}

async function readEvents2Now(options: ReadOptions): Promise<Reading> {
  let stdout: string;
  try {
    stdout = await runDrbdsetupChecked([...EVENTS2_NOW_ARGS], options);
  } catch (err) {
    if (err instanceof DrbdsetupError && err.failure === "aborted") {
      return { kind: "error", message: err.message };
    }
    options.onError?.("events2");
    if (err instanceof DrbdsetupError && err.notLoaded) return { kind: "not-loaded" };
    return { kind: "error", message: errorMessage(err) };
  }
  const dump = parseEvents2Dump(stdout);
  if (dump.errors.length > 0 || !dump.complete) {
    options.onError?.("events2");
    const first = dump.errors[0];
    const message = first === undefined
      ? `drbdsetup ${EVENTS2_NOW_ARGS.join(" ")} printed no "exists -" end marker`
      : `drbdsetup ${EVENTS2_NOW_ARGS.join(" ")} printed an unreadable line ` +
        `${JSON.stringify(first.line)}: ${first.message}`;
    return { kind: "error", message };
  }
  return { kind: "ok", resources: dump.resources, configs: undefined };
}

async function readShow(
  options: ReadOptions,
): Promise<Map<string, DrbdResourceConfig> | DrbdsetupError | Error> {
  try {
    return parseShowJson(await runDrbdsetupChecked([...SHOW_ARGS], options));
  } catch (err) {
    if (!(err instanceof DrbdsetupError && err.failure === "aborted")) options.onError?.("show");
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** Reads the whole DRBD state once: `events2 --now` and `show --show-defaults --json`. */
async function readOnce(options: ReadOptions): Promise<Reading & { showError?: Error }> {
  const [state, show] = await Promise.all([readEvents2Now(options), readShow(options)]);
  if (state.kind !== "ok") return state;
  if (show instanceof Error) return { ...state, showError: show };
  return { ...state, configs: show };
}

/** Options of {@linkcode sampleOnce}. */
export interface SampleOnceOptions extends DrbdsetupEdge {
  /** Bound on each drbdsetup command. */
  timeoutMs: number;
  /** Stops the commands when fired. */
  signal?: AbortSignal;
  /** Wall clock for `confirmedAt` (default the clock's `now`). */
  now?: () => number;
}

/**
 * Reads the DRBD state once (for the `status` command): `events2 --now`
 * and `show --show-defaults --json`, run side by side. Never throws: trouble
 * is reported in `availability` and `message`. A failed `show` leaves
 * `config` undefined and is mentioned in `message`.
 */
export async function sampleOnce(options: SampleOnceOptions): Promise<DrbdSample> {
  const clock = options.clock ?? systemClock;
  const now = options.now ?? (() => clock.now());
  const startedAt = now();
  const reading = await readOnce(options);
  switch (reading.kind) {
    case "not-loaded":
      return {
        availability: "not-loaded",
        message: NOT_LOADED_MESSAGE,
        resources: [],
        confirmedAt: startedAt,
      };
    case "error":
      return { availability: "error", message: reading.message, resources: [], confirmedAt: 0 };
    case "ok":
      return {
        availability: "ok",
        message: reading.showError === undefined
          ? undefined
          : `resource options unknown: ${reading.showError.message}`,
        resources: withConfig(reading.resources, reading.configs),
        confirmedAt: startedAt,
      };
  }
}

/**
 * Watches DRBD through drbdsetup and keeps a current {@linkcode DrbdSample}.
 *
 * - The `events2` stream is restarted after it ends, with a delay that
 *   doubles from `restartDelayMinMs` to `restartDelayMaxMs` and is reset once
 *   a stream ran `stableAfterMs` after its initial dump. An unexpected failure
 *   of this supervision is logged and retried with the same delays.
 * - `confirmedAt` is the last time a full read vouched for the state (see the
 *   module documentation): the stream's dump or a resync that agreed with it.
 *   The stream's own changes are served at once but confirm nothing.
 * - After an unreadable stream line the sample is an `error` until a resync
 *   agrees with the stream again.
 * - Every `statusIntervalMs` a resync reads the whole state. If it differs
 *   from what the stream says while the stream is quiet, the stream missed
 *   changes: the difference is logged, the resync's state adopted and the
 *   stream restarted.
 * - Exit 20 for a missing module gives availability `not-loaded`; the check
 *   is repeated at every resync and the stream starts once DRBD is there.
 */
export class DrbdSampler {
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #restartMinMs: number;
  readonly #restartMaxMs: number;
  readonly #stableAfterMs: number;
  readonly #stallSettleMs: number;
  readonly #onChange: () => void;
  readonly #onError: (command: string) => void;
  readonly #log: Log;
  readonly #now: () => number;
  readonly #clock: Clock;
  readonly #edge: DrbdsetupEdge;

  #started = false;
  #stopped = false;
  readonly #abort = new AbortController();

  /** The stream's state once its dump is complete; undefined while the stream is not live. */
  #live: Events2State | undefined;
  /** See `#liveResources`. */
  #liveMemo:
    | {
      live: Events2State;
      version: number;
      configs: Map<string, DrbdResourceConfig> | undefined;
      resources: DrbdResource[];
    }
    | undefined;
  /** When `#live` was last confirmed: the stream's start or an agreeing resync's start. */
  #liveConfirmedAt = 0;
  /**
   * The running stream printed a line that could not be read: its state is
   * not trusted until a resync that began after that line (stream activity
   * `activity`) agrees with it.
   */
  #unreadable: { message: string; activity: number } | undefined;
  /** The last confirmed state while the stream is not live. */
  #stored: DrbdResource[] | undefined;
  /** When `#stored` was confirmed (ms since epoch); 0 = never. */
  #storedAt = 0;
  #configs: Map<string, DrbdResourceConfig> | undefined;
  #trouble: Trouble | undefined;

  #process: DrbdsetupProcess | undefined;
  /** Set when the running stream is being killed on purpose, to restart at once. */
  #restartRequested = false;
  /** Counts stream batches, to tell whether the stream spoke during a resync. */
  #streamActivity = 0;
  /** Consecutive resyncs that disagreed with a busy stream. */
  #suspectResyncs = 0;

  #supervisor: Promise<void> | undefined;
  #resyncTimer: TimerId;
  #resyncRunning: Promise<void> | undefined;
  #resyncAgain = false;
  #configResyncAt = -Infinity;
  #wakeSupervisor: (() => void) | undefined;
  readonly #sleepers = new Set<() => void>();

  /** Prepares the sampler; nothing runs before {@linkcode DrbdSampler.start}. */
  constructor(options: DrbdSamplerOptions) {
    this.#intervalMs = options.statusIntervalMs;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#restartMinMs = options.restartDelayMinMs ?? 1_000;
    this.#restartMaxMs = options.restartDelayMaxMs ?? 30_000;
    this.#stableAfterMs = options.stableAfterMs ?? 60_000;
    this.#stallSettleMs = options.stallSettleMs ?? 250;
    this.#onChange = options.onChange ?? (() => {});
    this.#onError = options.onError ?? (() => {});
    this.#log = options.log ?? logger("drbd");
    const clock = options.clock ?? systemClock;
    this.#clock = clock;
    this.#now = options.now ?? (() => clock.now());
    this.#edge = { env: options.env, spawn: options.spawn, clock };
  }

  /** Starts the events2 stream and the periodic resync (the first one at once). */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#scheduleResync(0);
    this.#supervisor = this.#supervise();
  }

  /** Kills drbdsetup, cancels every timer and waits until nothing runs any more. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#abort.abort();
    this.#clock.clearTimeout(this.#resyncTimer);
    this.#resyncTimer = undefined;
    for (const wake of [...this.#sleepers]) wake();
    this.#wakeSupervisor?.();
    await this.#stopProcess();
    await this.#supervisor;
    await this.#resyncRunning;
  }

  /**
   * The live stream's resources with their configuration, built again only
   * when the stream's state or the configurations changed: the loop samples
   * twice per cycle, and most cycles see nothing new. Shared between
   * samples: not to be modified.
   */
  #liveResources(live: Events2State): DrbdResource[] {
    const memo = this.#liveMemo;
    if (
      memo !== undefined && memo.live === live && memo.version === live.version &&
      memo.configs === this.#configs
    ) {
      return memo.resources;
    }
    const resources = withConfig(live.resources(), this.#configs);
    this.#liveMemo = { live, version: live.version, configs: this.#configs, resources };
    return resources;
  }

  /** The current state; never throws. */
  sample(): DrbdSample {
    if (this.#trouble?.availability === "not-loaded") {
      return {
        availability: "not-loaded",
        message: this.#trouble.message,
        resources: [],
        confirmedAt: this.#storedAt,
      };
    }
    if (this.#live !== undefined && this.#unreadable !== undefined) {
      return {
        availability: "error",
        message: this.#unreadable.message,
        resources: [],
        confirmedAt: this.#liveConfirmedAt,
      };
    }
    if (this.#live !== undefined) {
      return {
        availability: "ok",
        message: undefined,
        resources: this.#liveResources(this.#live),
        confirmedAt: this.#liveConfirmedAt,
      };
    }
    if (this.#stored !== undefined && this.#trouble === undefined) {
      return {
        availability: "ok",
        message: undefined,
        resources: withConfig(this.#stored, this.#configs),
        confirmedAt: this.#storedAt,
      };
    }
    return {
      availability: "error",
      message: this.#trouble?.message ?? "No DRBD state read yet",
      resources: [],
      confirmedAt: this.#storedAt,
    };
  }

  /** Reads the whole state now (as the periodic resync does) and waits for it. */
  async resync(): Promise<void> {
    if (this.#stopped) return;
    if (this.#resyncRunning !== undefined) {
      // One is running; it may have read before the caller's reason: run once more after it.
      this.#resyncAgain = true;
      await this.#resyncRunning;
      if (this.#resyncRunning !== undefined) await this.#resyncRunning;
      return;
    }
    this.#clock.clearTimeout(this.#resyncTimer);
    this.#resyncTimer = undefined;
    this.#resyncRunning = this.#resyncLoop();
    await this.#resyncRunning;
  }

  #notify(): void {
    try {
      this.#onChange();
    } catch (err) {
      this.#log.error(`onChange callback failed: ${errorMessage(err)}`);
    }
  }

  /** Tells the consumer a drbdsetup command failed; a throwing callback is only logged. */
  #reportError(command: string): void {
    try {
      this.#onError(command);
    } catch (err) {
      this.#log.error(`onError callback failed: ${errorMessage(err)}`);
    }
  }

  /** Stops the running stream; a failure to stop is logged, never thrown. */
  async #stopProcess(): Promise<void> {
    try {
      await this.#process?.stop();
    } catch (err) {
      this.#log.error(`Stopping drbdsetup events2 failed: ${errorMessage(err)}`);
      this.#reportError("events2");
    }
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#clock.clearTimeout(timer);
        this.#sleepers.delete(done);
        resolve();
      };
      const timer = this.#clock.setTimeout(done, ms);
      this.#sleepers.add(done);
    });
  }

  #scheduleResync(delayMs: number): void {
    if (this.#stopped || !this.#started) return;
    this.#clock.clearTimeout(this.#resyncTimer);
    this.#resyncTimer = this.#clock.setTimeout(() => {
      this.#resyncTimer = undefined;
      if (this.#resyncRunning === undefined) this.#resyncRunning = this.#resyncLoop();
      else this.#resyncAgain = true;
    }, delayMs);
  }

  async #resyncLoop(): Promise<void> {
    try {
      do {
        this.#resyncAgain = false;
        await this.#resyncOnce();
      } while (this.#resyncAgain && !this.#stopped);
    } catch (err) {
      this.#log.error(`DRBD resync failed unexpectedly: ${errorMessage(err)}`);
      this.#reportError("events2");
    } finally {
      this.#resyncRunning = undefined;
      this.#scheduleResync(this.#intervalMs);
    }
  }

  async #resyncOnce(): Promise<void> {
    const activityBefore = this.#streamActivity;
    const startedAt = this.#now();
    const reading = await readOnce({
      ...this.#edge,
      timeoutMs: this.#timeoutMs,
      signal: this.#abort.signal,
      onError: (command) => this.#reportError(command),
    });
    if (this.#stopped) return;
    if (reading.kind === "not-loaded") return this.#enterNotLoaded(startedAt);
    if (reading.kind === "error") {
      if (this.#live !== undefined) {
        this.#log.warn(
          `DRBD resync failed, the events2 stream still runs but its state stays confirmed ` +
            `as of ${new Date(this.#liveConfirmedAt).toISOString()}: ${reading.message}`,
        );
        return;
      }
      if (this.#trouble?.message !== reading.message) {
        this.#log.warn(`DRBD state cannot be read: ${reading.message}`);
      }
      this.#trouble = { availability: "error", message: reading.message };
      this.#notify();
      return;
    }
    let changed = false;
    if (reading.showError !== undefined) {
      this.#log.warn(`DRBD resource options cannot be read: ${reading.showError.message}`);
    } else if (!sameJson(this.#configs, reading.configs)) {
      this.#configs = reading.configs;
      changed = true;
    }
    if (this.#trouble?.availability === "not-loaded") {
      this.#log.info("DRBD is loaded now; starting to watch it");
    }
    if (this.#live !== undefined) {
      changed = await this.#checkStream(reading.resources, activityBefore, startedAt) || changed;
    } else if (this.#stored === undefined || startedAt >= this.#storedAt) {
      const before = this.sample();
      this.#stored = reading.resources;
      this.#storedAt = startedAt;
      const wasTroubled = this.#trouble !== undefined;
      this.#trouble = undefined;
      changed = changed || wasTroubled || !sameState(before.resources, this.sample().resources);
      this.#wakeSupervisor?.();
    }
    // Otherwise a stream was live after this reading began: its last state is newer.
    if (changed) this.#notify();
  }

  /**
   * Compares a resync reading with the live stream: an agreement confirms the
   * stream's state, a lasting difference is a stall that is healed. Returns
   * true when the sample changed.
   */
  async #checkStream(
    resources: DrbdResource[],
    activityBefore: number,
    startedAt: number,
  ): Promise<boolean> {
    const live = this.#live;
    if (live === undefined) return false;
    if (sameState(live.resources(), resources)) {
      return this.#confirmLive(startedAt, activityBefore);
    }
    let quiet = this.#streamActivity === activityBefore;
    if (quiet) {
      // A change may be on its way through the stream: give it a moment.
      await this.#sleep(this.#stallSettleMs);
      if (this.#stopped || this.#live !== live) return false;
      quiet = this.#streamActivity === activityBefore;
      if (sameState(live.resources(), resources)) {
        return this.#confirmLive(startedAt, activityBefore);
      }
    }
    if (!quiet) {
      // The stream is busy; a difference may be a race. Heal only if it persists.
      this.#suspectResyncs++;
      if (this.#suspectResyncs < 3) return false;
    }
    this.#suspectResyncs = 0;
    const names = differingNames(live.resources(), resources);
    this.#log.warn(
      `drbdsetup events2 missed changes of ${names.join(", ")}; ` +
        `adopting the resync state and restarting the stream`,
      { resources: names, stream: live.resources(), resync: resources },
    );
    this.#live = undefined;
    this.#unreadable = undefined;
    this.#stored = resources;
    this.#storedAt = startedAt;
    this.#trouble = undefined;
    this.#restartRequested = true;
    await this.#stopProcess();
    return true;
  }

  /**
   * A resync that began at `startedAt` agrees with the live stream: the state
   * is confirmed as of then, and an unreadable line printed before the resync
   * began did no harm. Returns true when the sample became trusted again.
   */
  #confirmLive(startedAt: number, activityBefore: number): boolean {
    this.#suspectResyncs = 0;
    this.#liveConfirmedAt = Math.max(this.#liveConfirmedAt, startedAt);
    if (this.#unreadable === undefined || this.#unreadable.activity >= activityBefore) {
      return false;
    }
    this.#unreadable = undefined;
    this.#log.info("a DRBD resync agrees with the events2 stream again; trusting its state");
    return true;
  }

  #enterNotLoaded(at: number): void {
    const was = this.#trouble?.availability === "not-loaded";
    this.#trouble = { availability: "not-loaded", message: NOT_LOADED_MESSAGE };
    this.#storedAt = at;
    this.#stored = [];
    this.#live = undefined;
    this.#unreadable = undefined;
    if (!was) {
      this.#log.warn(
        `${NOT_LOADED_MESSAGE}; checking again every ${this.#intervalMs} ms ` +
          `(${NOT_LOADED_HINT})`,
      );
      this.#notify();
    }
    if (this.#process !== undefined) {
      this.#restartRequested = true;
      // The supervisor notices the end of the stream; nobody awaits this.
      void this.#stopProcess();
    }
  }

  /**
   * Runs the stream again and again until stopped. Never rejects: an
   * unexpected failure is logged and counted, and the stream is retried after
   * the restart delay.
   */
  async #supervise(): Promise<void> {
    let delayMs = this.#restartMinMs;
    while (!this.#stopped) {
      try {
        if (this.#trouble?.availability === "not-loaded") {
          await new Promise<void>((resolve) => this.#wakeSupervisor = resolve);
          this.#wakeSupervisor = undefined;
          continue;
        }
        const outcome = await this.#runStream();
        if (this.#stopped) break;
        if (this.#restartRequested) {
          this.#restartRequested = false;
          continue;
        }
        if (outcome.kind === "not-loaded") {
          this.#enterNotLoaded(this.#now());
          continue;
        }
        if (outcome.ranStableMs >= this.#stableAfterMs) delayMs = this.#restartMinMs;
        this.#log.warn(`${outcome.message}; restarting it in ${delayMs} ms`);
        this.#reportError("events2");
      } catch (err) {
        if (this.#stopped) break;
        this.#restartRequested = false;
        this.#log.error(
          `Watching drbdsetup events2 failed unexpectedly: ${errorMessage(err)}; ` +
            `restarting it in ${delayMs} ms`,
        );
        this.#reportError("events2");
      }
      await this.#sleep(delayMs);
      delayMs = Math.min(delayMs * 2, this.#restartMaxMs);
    }
  }

  /** Runs one events2 stream until it ends; the process is stopped even when this throws. */
  async #runStream(): Promise<
    { kind: "not-loaded" } | { kind: "ended"; message: string; ranStableMs: number }
  > {
    // The dump is printed after the start, so the state it gives is confirmed as of then.
    const startedAt = this.#now();
    let process: DrbdsetupProcess;
    try {
      process = spawnDrbdsetup([...EVENTS2_STREAM_ARGS], this.#edge);
    } catch (err) {
      const message = errorMessage(err);
      if (this.#live === undefined && this.#stored === undefined) {
        this.#trouble = { availability: "error", message };
      }
      return { kind: "ended", message, ranStableMs: 0 };
    }
    this.#process = process;
    this.#unreadable = undefined;
    this.#streamActivity++;
    const state = new Events2State();
    let liveSince: number | undefined;
    let exit: DrbdsetupExit;
    try {
      liveSince = await this.#follow(process, state, startedAt);
    } finally {
      // Also after an unexpected failure: no stream is left running, and its
      // state is no longer served as live.
      exit = await process.stop().finally(() => {
        this.#streamActivity++;
        this.#process = undefined;
        this.#endLive(state);
      });
    }
    const ranStableMs = liveSince === undefined ? 0 : this.#clock.monotonic() - liveSince;
    if (!exit.stopped && exit.signal === null && exitError(exit).notLoaded) {
      return { kind: "not-loaded" };
    }
    return { kind: "ended", message: exitDescription(exit), ranStableMs };
  }

  /**
   * Applies the stream's lines to `state` until the stream ends, making it
   * the live state once its dump is complete. Returns when it went live
   * (`this.#clock.monotonic()`), or undefined if it never did.
   */
  async #follow(
    process: DrbdsetupProcess,
    state: Events2State,
    startedAt: number,
  ): Promise<number | undefined> {
    let liveSince: number | undefined;
    for await (const batch of process.batches) {
      let changed = false;
      let badLines = 0;
      for (const line of batch) {
        const applied = state.apply(line);
        if (applied.kind === "error") {
          badLines++;
          const message = `drbdsetup events2 printed an unreadable line ` +
            `${JSON.stringify(applied.line)}: ${applied.message}`;
          this.#log.warn(message, { line: applied.line });
          // Counted against the activity before this batch: only a resync that
          // starts after this batch can vouch for the state again.
          this.#unreadable = {
            message: `${message}; waiting for a resync to agree`,
            activity: this.#streamActivity,
          };
          changed = true;
          continue;
        }
        if (applied.endOfDump && liveSince === undefined) {
          liveSince = this.#clock.monotonic();
          this.#live = state;
          this.#liveConfirmedAt = startedAt;
          this.#stored = undefined;
          this.#trouble = undefined;
          changed = true;
        } else if (applied.changed) {
          changed = true;
        }
      }
      this.#streamActivity++;
      if (this.#stopped) break;
      if (changed && this.#live === state) this.#notify();
      // The stream's state may now be wrong: let a resync compare soon.
      if (badLines > 0) this.#scheduleResync(0);
      // A resource created since the last resync has no configuration yet
      // (quorum policy, suspend options): read it now, not a full interval
      // later, so rules can protect the new resource at once.
      // At most once a second, so a resource `show` never lists (or a
      // failing `show`) cannot turn every stream batch into a resync.
      else if (
        this.#live === state && this.#lacksConfig(state) &&
        this.#clock.monotonic() - this.#configResyncAt > 1_000
      ) {
        this.#configResyncAt = this.#clock.monotonic();
        this.#scheduleResync(0);
      }
    }
    return liveSince;
  }

  #lacksConfig(state: Events2State): boolean {
    // Before the first resync nothing has a configuration, and that resync is on its way.
    const configs = this.#configs;
    return configs !== undefined && state.resources().some((r) => !configs.has(r.name));
  }

  /** The stream of `state` ended: keep its last state, confirmed as of its last confirmation. */
  #endLive(state: Events2State): void {
    if (this.#live === state) {
      this.#live = undefined;
      this.#stored = state.resources();
      this.#storedAt = this.#liveConfirmedAt;
      if (this.#unreadable !== undefined) {
        this.#trouble = { availability: "error", message: this.#unreadable.message };
      }
    }
    this.#unreadable = undefined;
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a === undefined ? null : a instanceof Map ? [...a] : a) ===
    JSON.stringify(b === undefined ? null : b instanceof Map ? [...b] : b);
}
