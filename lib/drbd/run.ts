/**
 * The only place in ha-controller that starts `drbdsetup`.
 *
 * The agent runs with `--allow-run=drbdsetup`, which Deno resolves through
 * PATH at startup, so the command is always spawned by its bare name.
 * Everything here turns process trouble (missing binary, permission denial,
 * timeout, non-zero exit) into a {@linkcode DrbdsetupError} that names the
 * command line, the exit code and what drbdsetup printed on stderr.
 *
 * @module
 */

import { type Clock, systemClock, type TimerId } from "../clock.ts";

/** The name of the program; resolved through PATH. */
const DRBDSETUP = "drbdsetup";

/** Exit code drbdsetup uses for usage, module and netlink problems (DRBD_FORMATS.md §5.2). */
export const EXIT_GENERIC = 20;
/** Exit code for kernel `ERR_*` replies and "not found" messages, e.g. an unknown resource. */
export const EXIT_NOT_FOUND = 10;
/** Exit code when the module was unloaded while the command ran. */
export const EXIT_MODULE_UNLOADED = 121;

/** How long to wait for the output pipes to close after the process ended. */
const PIPE_GRACE_MS = 1_000;
/** How much of a long-running process's stderr is kept (the tail). */
const STDERR_KEEP_CHARS = 16_384;

/** What kind of failure a {@linkcode DrbdsetupError} reports. */
export type DrbdsetupFailure =
  /** drbdsetup ran and exited non-zero. */
  | "exit"
  /** drbdsetup was killed because it ran longer than the timeout. */
  | "timeout"
  /** The caller's AbortSignal fired; drbdsetup was killed. */
  | "aborted"
  /** drbdsetup ended through a signal it was not sent by us. */
  | "signal"
  /** No `drbdsetup` on PATH. */
  | "not-found"
  /** Deno's permissions do not allow running drbdsetup. */
  | "not-capable"
  /** The operating system refused to start it (e.g. not executable). */
  | "spawn-failed";

/** Details of a {@linkcode DrbdsetupError}. */
export interface DrbdsetupErrorDetails {
  /** What went wrong. */
  failure: DrbdsetupFailure;
  /** Arguments after `drbdsetup`. */
  args: string[];
  /** Exit code, when drbdsetup exited by itself. */
  code?: number;
  /** Everything drbdsetup printed on stderr (possibly only the tail). */
  stderr?: string;
  /** The signal that ended the process, if any. */
  signal?: string;
  /** Extra explanation used instead of the stderr summary. */
  detail?: string;
  /** The underlying error, for spawn failures. */
  cause?: unknown;
}

/**
 * drbdsetup could not be run, or it failed.
 *
 * The message says which command failed and why, for example
 * `drbdsetup events2 --now failed with exit code 20: Failed to modprobe drbd (No such file or directory)`.
 */
export class DrbdsetupError extends Error {
  /** What went wrong. */
  readonly failure: DrbdsetupFailure;
  /** Arguments after `drbdsetup`. */
  readonly args: string[];
  /** Exit code when drbdsetup exited by itself, otherwise undefined. */
  readonly code: number | undefined;
  /** What drbdsetup printed on stderr ("" when nothing or not run). */
  readonly stderr: string;
  /** The signal that ended the process, if any. */
  readonly signal: string | undefined;

  /** Builds the error and its message from the details. */
  constructor(details: DrbdsetupErrorDetails) {
    super(describeFailure(details), { cause: details.cause });
    this.name = "DrbdsetupError";
    this.failure = details.failure;
    this.args = [...details.args];
    this.code = details.code;
    this.stderr = details.stderr ?? "";
    this.signal = details.signal;
  }

  /** The command line as it would be typed, e.g. `drbdsetup events2 --now`. */
  get commandLine(): string {
    return commandLine(this.args);
  }

  /**
   * True when drbdsetup said the DRBD kernel module is not there: exit 20 with
   * the modprobe, /proc/drbd or netlink-family message, or exit 121 (module
   * unloaded while the command ran). Other exit-20 cases (usage errors) are not.
   */
  get notLoaded(): boolean {
    return this.failure === "exit" &&
      (this.code === EXIT_MODULE_UNLOADED ||
        (this.code === EXIT_GENERIC && saysModuleMissing(this.stderr)));
  }

  /** True when drbdsetup said the resource does not exist (exit 10). */
  get unknownResource(): boolean {
    return this.failure === "exit" && this.code === EXIT_NOT_FOUND &&
      /Unknown resource|No such resource/.test(this.stderr);
  }
}

/** True when stderr carries one of drbdsetup's "module not there" messages (§5.3). */
export function saysModuleMissing(stderr: string): boolean {
  return /modprobe|\/proc\/drbd|DRBD kernel module|generic netlink family|module unloaded/i
    .test(stderr);
}

function commandLine(args: string[]): string {
  return [DRBDSETUP, ...args].join(" ");
}

function stderrSummary(stderr: string): string {
  const lines = stderr.split("\n").map((line) => line.trim()).filter((line) => line !== "");
  return lines.join("; ");
}

function describeFailure(details: DrbdsetupErrorDetails): string {
  const command = commandLine(details.args);
  const said = details.detail ?? stderrSummary(details.stderr ?? "");
  switch (details.failure) {
    case "exit":
      return said === ""
        ? `${command} failed with exit code ${details.code} and printed nothing on stderr`
        : `${command} failed with exit code ${details.code}: ${said}`;
    case "timeout":
      return `${command} did not finish in time and was killed: ${said || "no stderr output"}`;
    case "aborted":
      return `${command} was stopped before it finished`;
    case "signal":
      return `${command} was killed by ${details.signal}` + (said === "" ? "" : `: ${said}`);
    case "not-found":
      return `${command} cannot run: no drbdsetup program on PATH (is drbd-utils installed?)`;
    case "not-capable":
      return `${command} cannot run: not allowed by Deno permissions ` +
        `(start the agent with --allow-run=drbdsetup)`;
    case "spawn-failed":
      return `${command} cannot run: ${said || "the operating system refused to start it"}`;
  }
}

/** What a finished drbdsetup printed and returned. */
export interface DrbdsetupResult {
  /** Everything on stdout. */
  stdout: string;
  /** Everything on stderr. */
  stderr: string;
  /** The exit code. */
  code: number;
}

/**
 * A started drbdsetup as this module uses it: the part of
 * `Deno.ChildProcess` it needs (stdin is always /dev/null).
 */
export interface DrbdsetupChild {
  /** Its standard output. */
  readonly stdout: ReadableStream<Uint8Array>;
  /** Its standard error. */
  readonly stderr: ReadableStream<Uint8Array>;
  /** Resolves when it ended. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Sends a signal; throws when it already ended. */
  kill(signal?: Deno.Signal): void;
}

/**
 * Starts `drbdsetup ARGS...`. Throws as `Deno.Command.spawn` does
 * (`Deno.errors.NotFound`, `Deno.errors.NotCapable`, ...).
 */
export type DrbdsetupSpawner = (
  args: string[],
  env: Record<string, string> | undefined,
) => DrbdsetupChild;

/** The process edge: `drbdsetup` spawned by its bare name through PATH. */
export const spawnProcess: DrbdsetupSpawner = (args, env) =>
  new Deno.Command(DRBDSETUP, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();

/** How drbdsetup is reached; every option has the production default. */
export interface DrbdsetupEdge {
  /**
   * Extra environment for the child (test use: PATH pointing at a fake
   * drbdsetup). PATH given here is also used to find the program.
   */
  env?: Record<string, string>;
  /** Starts the program (default {@linkcode spawnProcess}; the simulation answers in process). */
  spawn?: DrbdsetupSpawner;
  /** Timeouts and grace times run on this clock (default the system's). */
  clock?: Clock;
}

/** Options of {@linkcode runDrbdsetup}. */
export interface RunDrbdsetupOptions extends DrbdsetupEdge {
  /** Kill drbdsetup (SIGKILL) when it runs longer than this many milliseconds. */
  timeoutMs: number;
  /** Kill drbdsetup when this fires. */
  signal?: AbortSignal;
}

function spawnError(args: string[], err: unknown): DrbdsetupError {
  if (err instanceof Deno.errors.NotFound) {
    return new DrbdsetupError({ failure: "not-found", args, cause: err });
  }
  if (err instanceof Deno.errors.NotCapable) {
    return new DrbdsetupError({ failure: "not-capable", args, cause: err });
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new DrbdsetupError({ failure: "spawn-failed", args, detail, cause: err });
}

function spawnChild(args: string[], options: DrbdsetupEdge): DrbdsetupChild {
  try {
    return (options.spawn ?? spawnProcess)(args, options.env);
  } catch (err) {
    throw spawnError(args, err);
  }
}

function killChild(child: DrbdsetupChild): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // Already ended: nothing to kill.
  }
}

/** Reads a byte stream to the end as text; cancel() ends it early. */
class TextCollector {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #decoder = new TextDecoder();
  #text = "";
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>, keepChars = Infinity) {
    this.#reader = stream.getReader();
    this.done = this.#collect(keepChars);
  }

  get text(): string {
    return this.#text;
  }

  async #collect(keepChars: number): Promise<void> {
    try {
      while (true) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        this.#text += this.#decoder.decode(value, { stream: true });
        if (this.#text.length > keepChars) this.#text = this.#text.slice(-keepChars);
      }
      this.#text += this.#decoder.decode();
    } catch {
      // Cancelled or the pipe broke: keep what was read.
    } finally {
      this.#reader.releaseLock();
    }
  }

  async cancel(): Promise<void> {
    try {
      await this.#reader.cancel();
    } catch {
      // Already released.
    }
  }
}

/**
 * Waits until `finished` settles or the pipe grace time is over, whichever
 * comes first. Returns false when the grace time ran out: something (a
 * grandchild) still holds the pipe open and the caller should stop reading it.
 */
async function finishedWithinGrace(finished: Promise<void>, clock: Clock): Promise<boolean> {
  let timer: TimerId;
  const graceOver = new Promise<false>((resolve) => {
    timer = clock.setTimeout(() => resolve(false), PIPE_GRACE_MS);
  });
  try {
    return await Promise.race([finished.then(() => true), graceOver]);
  } finally {
    clock.clearTimeout(timer);
  }
}

/** Waits for a collector, but gives up (cancelling it) after the grace time. */
async function finishCollecting(collector: TextCollector, clock: Clock): Promise<void> {
  if (await finishedWithinGrace(collector.done, clock)) return;
  await collector.cancel();
  await collector.done;
}

/**
 * Runs `drbdsetup ARGS...` to completion and returns what it printed and its
 * exit code, whatever the code. stdin is /dev/null.
 *
 * Throws {@linkcode DrbdsetupError} when drbdsetup cannot be started
 * (`not-found`, `not-capable`, `spawn-failed`), when it ran past
 * `timeoutMs` (it is then killed with SIGKILL: `timeout`), when `signal`
 * fired (`aborted`), or when something else killed it (`signal`).
 */
export async function runDrbdsetup(
  args: string[],
  options: RunDrbdsetupOptions,
): Promise<DrbdsetupResult> {
  if (options.signal?.aborted) throw new DrbdsetupError({ failure: "aborted", args });
  const clock = options.clock ?? systemClock;
  const child = spawnChild(args, options);
  const stdout = new TextCollector(child.stdout);
  const stderr = new TextCollector(child.stderr);
  let stoppedBy: "timeout" | "aborted" | undefined;
  const timer = clock.setTimeout(() => {
    stoppedBy ??= "timeout";
    killChild(child);
  }, options.timeoutMs);
  const onAbort = () => {
    stoppedBy ??= "aborted";
    killChild(child);
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let status: Deno.CommandStatus;
  try {
    status = await child.status;
  } finally {
    clock.clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
  await Promise.all([finishCollecting(stdout, clock), finishCollecting(stderr, clock)]);
  if (stoppedBy !== undefined && !status.success) {
    throw new DrbdsetupError({ failure: stoppedBy, args, stderr: stderr.text });
  }
  if (status.signal !== null) {
    throw new DrbdsetupError({
      failure: "signal",
      args,
      signal: status.signal,
      stderr: stderr.text,
    });
  }
  return { stdout: stdout.text, stderr: stderr.text, code: status.code };
}

/**
 * Like {@linkcode runDrbdsetup}, but a non-zero exit code is an error too:
 * returns stdout, throws {@linkcode DrbdsetupError} (`failure: "exit"`) otherwise.
 */
export async function runDrbdsetupChecked(
  args: string[],
  options: RunDrbdsetupOptions,
): Promise<string> {
  const result = await runDrbdsetup(args, options);
  if (result.code !== 0) {
    throw new DrbdsetupError({ failure: "exit", args, code: result.code, stderr: result.stderr });
  }
  return result.stdout;
}

/** What `secondary --force` achieved. */
export type ForceSecondaryOutcome =
  /** drbdsetup accepted the demotion (exit 0). */
  | "demoted"
  /** The resource no longer exists (exit 10, `Unknown resource`): nothing to demote. */
  | "resource-gone"
  /** The DRBD module is not loaded (drbdsetup still exits 0): nothing to demote. */
  | "not-loaded";

/** Options of {@linkcode forceSecondary}. */
export interface ForceSecondaryOptions extends DrbdsetupEdge {
  /** Kill drbdsetup after this many milliseconds. */
  timeoutMs: number;
  /** Kill drbdsetup when this fires. */
  signal?: AbortSignal;
}

/**
 * Runs `drbdsetup secondary --force RESOURCE`: demotes even when the device is
 * held open; writers then get I/O errors (force-io-failures). An unknown
 * resource is reported as `resource-gone`, not as an error. Throws
 * {@linkcode DrbdsetupError} for every other failure.
 */
export async function forceSecondary(
  resource: string,
  options: ForceSecondaryOptions,
): Promise<ForceSecondaryOutcome> {
  const args = ["secondary", "--force", resource];
  const result = await runDrbdsetup(args, options);
  const error = new DrbdsetupError({
    failure: "exit",
    args,
    code: result.code,
    stderr: result.stderr,
  });
  if (result.code === 0) {
    // secondary exits 0 when the module cannot be loaded; stderr tells.
    return saysModuleMissing(result.stderr) ? "not-loaded" : "demoted";
  }
  if (error.unknownResource) return "resource-gone";
  throw error;
}

/** How a long-running drbdsetup ended. */
export interface DrbdsetupExit {
  /** Exit code (meaningless when `signal` is set). */
  code: number;
  /** The signal that ended it, or null. */
  signal: string | null;
  /** The tail of what it printed on stderr. */
  stderr: string;
  /** True when it ended because {@linkcode DrbdsetupProcess.stop} was called. */
  stopped: boolean;
}

/** A running drbdsetup whose stdout is read line by line. */
export interface DrbdsetupProcess {
  /** Arguments after `drbdsetup`. */
  readonly args: string[];
  /**
   * The complete stdout lines, in batches: each batch is what one read of the
   * pipe completed, so lines drbdsetup printed together arrive together.
   * Ends when stdout closes. Iterate it once.
   */
  readonly batches: AsyncIterable<string[]>;
  /** Resolves when the process ended and its pipes are closed. */
  readonly exited: Promise<DrbdsetupExit>;
  /** Kills the process (SIGKILL) and stops reading; safe to call repeatedly. */
  stop(): Promise<DrbdsetupExit>;
}

/** Options of {@linkcode spawnDrbdsetup}. */
export type SpawnDrbdsetupOptions = DrbdsetupEdge;

/**
 * Starts a long-running `drbdsetup ARGS...` (for `events2`): stdin is
 * /dev/null, stdout is split into lines, stderr is kept (its tail) for the
 * exit report. Throws {@linkcode DrbdsetupError} when it cannot be started.
 */
export function spawnDrbdsetup(
  args: string[],
  options: SpawnDrbdsetupOptions = {},
): DrbdsetupProcess {
  const clock = options.clock ?? systemClock;
  const child = spawnChild(args, options);
  const stderr = new TextCollector(child.stderr, STDERR_KEEP_CHARS);
  const reader = child.stdout.getReader();
  let stopped = false;
  let markReaderFinished: () => void = () => {};
  const readerFinished = new Promise<void>((resolve) => markReaderFinished = resolve);

  async function* readBatches(): AsyncGenerator<string[]> {
    const decoder = new TextDecoder();
    let pending = "";
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += decoder.decode(value, { stream: true });
        const end = pending.lastIndexOf("\n");
        if (end < 0) continue;
        const lines = pending.slice(0, end).split("\n");
        pending = pending.slice(end + 1);
        yield lines;
      }
      pending += decoder.decode();
      // A last line without newline: drbdsetup always ends lines, but do not lose it.
      if (pending !== "") yield [pending];
    } catch {
      // Cancelled by stop() or the pipe broke: the stream simply ends.
    } finally {
      // Also when the consumer stopped iterating early: close the pipe.
      try {
        await reader.cancel();
      } catch {
        // Already closed.
      }
      reader.releaseLock();
      markReaderFinished();
    }
  }

  const batches = readBatches();

  const exited = (async (): Promise<DrbdsetupExit> => {
    const status = await child.status;
    const stoppedBeforeExit = stopped;
    // Give the consumer a moment to drain what was printed before the exit;
    // then stop reading (a grandchild might still hold the pipe open).
    if (!(await finishedWithinGrace(readerFinished, clock))) {
      try {
        await reader.cancel();
      } catch {
        // Already released.
      }
    }
    await finishCollecting(stderr, clock);
    return {
      code: status.code,
      signal: status.signal,
      stderr: stderr.text,
      stopped: stoppedBeforeExit,
    };
  })();

  return {
    args: [...args],
    batches,
    exited,
    async stop(): Promise<DrbdsetupExit> {
      if (!stopped) {
        stopped = true;
        killChild(child);
        try {
          await reader.cancel();
        } catch {
          // The generator already released the reader.
        }
      }
      return await exited;
    },
  };
}
