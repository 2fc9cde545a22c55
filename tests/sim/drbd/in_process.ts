/**
 * The fake drbdsetup answered in process, for the deterministic simulation.
 *
 * `bin/drbdsetup` (bash) reads a state directory that {@linkcode FakeDrbd}
 * writes; here the same state "directory" is a map in memory
 * ({@linkcode MemoryDir}) and {@linkcode InProcessDrbdsetup.spawn} answers
 * each command the way the script does, as a child process the agent's
 * `lib/drbd/run.ts` reads through its process seam. The two are kept in step
 * by `tests/drbd/in_process_test.ts`, which runs both on the same states and
 * compares what they print and how they exit.
 *
 * @module
 */

import type { DrbdsetupChild } from "../../../lib/drbd/run.ts";

/** A state directory: paths relative to it, whole-file writes. */
export interface StateDir {
  /** The file's text, or undefined when it does not exist. */
  read(path: string): Promise<string | undefined>;
  /** Replaces the file atomically (readers see the old or the new text). */
  write(path: string, text: string): Promise<void>;
  /** Appends to the file. */
  append(path: string, text: string): Promise<void>;
  /** Removes the file; a missing file is fine. */
  remove(path: string): Promise<void>;
}

/** A state directory on disk, for the script. */
export class FileDir implements StateDir {
  readonly #root: string;

  /** A directory that exists. */
  constructor(root: string) {
    this.#root = root;
  }

  async read(path: string): Promise<string | undefined> {
    try {
      return await Deno.readTextFile(`${this.#root}/${path}`);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  }

  async write(path: string, text: string): Promise<void> {
    const full = `${this.#root}/${path}`;
    const slash = path.lastIndexOf("/");
    if (slash > 0) await Deno.mkdir(`${this.#root}/${path.slice(0, slash)}`, { recursive: true });
    await Deno.writeTextFile(`${full}.tmp`, text);
    await Deno.rename(`${full}.tmp`, full);
  }

  async append(path: string, text: string): Promise<void> {
    await Deno.writeTextFile(`${this.#root}/${path}`, text, { append: true });
  }

  async remove(path: string): Promise<void> {
    await Deno.remove(`${this.#root}/${path}`).catch(() => {});
  }
}

/** A state directory in memory; appends to `events.log` reach live streams at once. */
export class MemoryDir implements StateDir {
  readonly files = new Map<string, string>();
  readonly #appendListeners = new Set<(path: string, text: string) => void>();

  read(path: string): Promise<string | undefined> {
    return Promise.resolve(this.files.get(path));
  }

  write(path: string, text: string): Promise<void> {
    this.files.set(path, text);
    return Promise.resolve();
  }

  append(path: string, text: string): Promise<void> {
    this.files.set(path, (this.files.get(path) ?? "") + text);
    for (const listener of [...this.#appendListeners]) listener(path, text);
    return Promise.resolve();
  }

  remove(path: string): Promise<void> {
    this.files.delete(path);
    return Promise.resolve();
  }

  /** Calls `listener` after every append; returns the unsubscribe function. */
  onAppend(listener: (path: string, text: string) => void): () => void {
    this.#appendListeners.add(listener);
    return () => this.#appendListeners.delete(listener);
  }
}

/** What a served command answers (see `FakeDrbd.serveCommands`). */
export interface ServedAnswer {
  /** Exit code. */
  code: number;
  /** What it prints on stderr. */
  stderr: string;
}

/** The kernel release the module-missing message names. */
export const simulatedKernelRelease = "6.1.0-sim-amd64";

const encoder = new TextEncoder();

/** A finished or running fake child. */
class FakeChild implements DrbdsetupChild {
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<Deno.CommandStatus>;
  #out!: ReadableStreamDefaultController<Uint8Array>;
  #err!: ReadableStreamDefaultController<Uint8Array>;
  #resolve!: (status: Deno.CommandStatus) => void;
  #ended = false;
  #onEnd: (() => void) | undefined;

  constructor() {
    this.stdout = new ReadableStream({ start: (c) => void (this.#out = c) });
    this.stderr = new ReadableStream({ start: (c) => void (this.#err = c) });
    this.status = new Promise((resolve) => this.#resolve = resolve);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Called once when the child ends (exit or kill). */
  set onEnd(fn: () => void) {
    this.#onEnd = fn;
  }

  print(text: string): void {
    if (!this.#ended && text !== "") this.#out.enqueue(encoder.encode(text));
  }

  printError(text: string): void {
    if (!this.#ended && text !== "") this.#err.enqueue(encoder.encode(text));
  }

  exit(code: number): void {
    this.#end({ success: code === 0, code, signal: null });
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#ended) throw new TypeError("Child process has already terminated");
    this.#end({ success: false, code: 128 + signalNumber(signal), signal });
  }

  #end(status: Deno.CommandStatus): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#out.close();
    this.#err.close();
    this.#onEnd?.();
    this.#resolve(status);
  }
}

function signalNumber(signal: Deno.Signal): number {
  return signal === "SIGKILL" ? 9 : signal === "SIGINT" ? 2 : 15;
}

/**
 * `drbdsetup ARGS...` answered from a {@linkcode MemoryDir}, line for line
 * what `bin/drbdsetup` does with the same state directory.
 */
export class InProcessDrbdsetup {
  readonly #dir: MemoryDir;
  readonly #serve: (args: string[]) => Promise<ServedAnswer> | undefined;
  readonly #streams = new Map<number, FakeChild>();
  #nextPid = 1_000;
  /** True: no `drbdsetup` on PATH (new commands fail to start; running ones go on). */
  missing = false;
  /** True: new commands start and then hang, printing nothing, until killed. */
  hanging = false;

  /**
   * `serve` answers a served command (undefined when the command is not
   * served), as the cluster answers `secondary`.
   */
  constructor(dir: MemoryDir, serve: (args: string[]) => Promise<ServedAnswer> | undefined) {
    this.#dir = dir;
    this.#serve = serve;
  }

  /** Ids of the live `events2` streams. */
  get streamPids(): number[] {
    return [...this.#streams.keys()];
  }

  /** Ends every live events2 stream with `signal`; returns how many ran. */
  killStreams(signal: Deno.Signal): number {
    const streams = [...this.#streams.values()];
    for (const child of streams) child.kill(signal);
    return streams.length;
  }

  /** Starts a fake child: the process seam of `lib/drbd/run.ts`. */
  readonly spawn = (args: string[]): DrbdsetupChild => {
    if (this.missing) {
      // What Deno.Command's spawn throws for a program PATH does not have.
      throw new Deno.errors.NotFound(`Failed to spawn 'drbdsetup': entity not found`);
    }
    const child = new FakeChild();
    const files = this.#dir.files;
    files.set(
      "calls.log",
      (files.get("calls.log") ?? "") + `${args.map((a) => `${a}\x1f`).join("")}\n`,
    );
    // A hung drbdsetup (e.g. stuck in netlink) answers nothing until killed.
    if (this.hanging) return child;
    // The answer comes after the caller got hold of the child, as from a process.
    queueMicrotask(() => {
      try {
        this.#run(child, args);
      } catch (err) {
        child.printError(`fake drbdsetup: ${err instanceof Error ? err.message : err}\n`);
        child.exit(20);
      }
    });
    return child;
  };

  #run(child: FakeChild, args: string[]): void {
    const files = this.#dir.files;
    const [command = "", ...rest] = args;
    const refuse = (what: string) => {
      child.printError(`fake drbdsetup: ${what}\n`);
      child.exit(20);
    };
    const failure = files.get(`fail/${command}`);
    if (failure !== undefined) {
      const newline = failure.indexOf("\n");
      child.printError(failure.slice(newline + 1));
      child.exit(Number(failure.slice(0, newline)));
      return;
    }
    if (files.has("module-missing")) {
      child.printError(
        `modprobe: FATAL: Module drbd not found in directory /lib/modules/${simulatedKernelRelease}\n` +
          "Failed to modprobe drbd (No such file or directory)\n",
      );
      child.exit(["down", "secondary", "disconnect", "detach"].includes(command) ? 0 : 20);
      return;
    }
    switch (command) {
      case "events2":
        return this.#events2(child, rest, refuse);
      case "show":
        return this.#show(child, rest, refuse);
      case "status":
        return this.#status(child, rest, refuse);
      case "secondary":
        return this.#secondary(child, rest);
      case "":
        child.print("USAGE: drbdsetup command {arguments} [options]\n");
        return child.exit(20);
      default:
        return refuse(`${command} is not simulated`);
    }
  }

  #resources(): string[] {
    return (this.#dir.files.get("resources") ?? "").split("\n").filter((n) => n !== "");
  }

  #dump(resource: string): string {
    const text = this.#dir.files.get("now.txt") ?? "";
    if (resource === "all") return text;
    return text.split("\n").filter((line) => line.split(" ")[2] === `name:${resource}`)
      .map((line) => `${line}\n`).join("");
  }

  #events2(child: FakeChild, args: string[], refuse: (what: string) => void): void {
    let now = false;
    let resource = "all";
    for (const arg of args) {
      if (arg === "--now") now = true;
      else if (arg === "--color" || arg.startsWith("--color=")) continue;
      else if (
        ["--statistics", "-s", "--full", "-f", "--timestamps", "-t", "--diff", "--poll", "-p"]
          .includes(arg) || arg.startsWith("--rcvbuf=")
      ) return refuse(`events2 ${arg} is not simulated`);
      else if (arg.startsWith("-")) {
        child.printError(`drbdsetup events2: unrecognized option '${arg}'\n`);
        return child.exit(20);
      } else resource = arg;
    }
    if (now) {
      child.print(`${this.#dump(resource)}exists -\n`);
      return child.exit(0);
    }
    if (resource !== "all") return refuse("events2 RES without --now is not simulated");
    child.print(`${this.#dump("all")}exists -\n`);
    const pid = this.#nextPid++;
    this.#streams.set(pid, child);
    // Silent (decided at the start, as the script does): alive and quiet until killed.
    const silent = this.#dir.files.has("streams-silent");
    const unsubscribe = this.#dir.onAppend((path, text) => {
      if (path === "events.log" && !silent) child.print(text);
    });
    child.onEnd = () => {
      unsubscribe();
      this.#streams.delete(pid);
    };
  }

  /** The sorted resource names `res` selects. */
  #selected(res: string): string[] {
    return this.#resources().sort().filter((name) => res === "all" || res === name);
  }

  #show(child: FakeChild, args: string[], refuse: (what: string) => void): void {
    let json = false;
    let defaults = false;
    let res = "all";
    for (const arg of args) {
      if (arg === "--json" || arg === "-j") json = true;
      else if (arg === "--show-defaults" || arg === "-D") defaults = true;
      else if (arg === "--color" || arg.startsWith("--color=")) continue;
      else if (arg.startsWith("-")) {
        child.printError(`drbdsetup show: unrecognized option '${arg}'\n`);
        return child.exit(20);
      } else res = arg;
    }
    if (!json) return refuse("show without --json is not simulated");
    const files = this.#dir.files;
    const variant = defaults && files.has("show-defaults") ? "show-defaults" : "show";
    const docs = this.#selected(res).map((name) => files.get(`${variant}/${name}.json`) ?? "");
    child.print(`[\n${docs.map((d) => d).join(",\n")}${docs.length > 0 ? "\n" : ""}]\n`);
    child.exit(0);
  }

  #status(child: FakeChild, args: string[], refuse: (what: string) => void): void {
    let json = false;
    let res = "all";
    for (const arg of args) {
      if (arg === "--json" || arg === "-j") json = true;
      else if (
        ["--verbose", "-v", "--statistics", "-s", "--color"].includes(arg) ||
        arg.startsWith("--color=")
      ) continue;
      else if (arg.startsWith("-")) {
        child.printError(`drbdsetup status: unrecognized option '${arg}'\n`);
        return child.exit(20);
      } else res = arg;
    }
    const names = this.#resources();
    if (res !== "all" && !names.includes(res)) {
      if (json) child.print("[\n]\n\n");
      else if (names.length === 0) child.print("# No currently configured DRBD found.\n");
      child.printError(`${res}: No such resource\n`);
      return child.exit(10);
    }
    if (!json) return refuse("status without --json is not simulated");
    const files = this.#dir.files;
    const docs = this.#selected(res).map((name) => files.get(`status/${name}.json`) ?? "");
    child.print(`[\n${docs.join("\n,\n")}${docs.length > 0 ? "\n" : ""}]\n\n`);
    child.exit(0);
  }

  #secondary(child: FakeChild, args: string[]): void {
    let force = false;
    let res = "";
    for (const arg of args) {
      if (arg === "--force" || arg === "--force=yes") force = true;
      else if (arg === "--force=no") force = false;
      else if (arg.startsWith("-")) {
        child.printError(`drbdsetup secondary: unrecognized option '${arg}'\n`);
        return child.exit(20);
      } else res = arg;
    }
    if (res === "") {
      child.printError("Resource name is empty.\n");
      return child.exit(1);
    }
    const files = this.#dir.files;
    if ((files.get("served") ?? "").split("\n").includes("secondary")) {
      const answer = this.#serve(force ? ["secondary", "--force", res] : ["secondary", res]);
      if (answer !== undefined) {
        answer.then((a) => {
          const stderr = a.stderr === "" || a.stderr.endsWith("\n") ? a.stderr : `${a.stderr}\n`;
          child.printError(stderr);
          child.exit(a.code);
        }, (err) => {
          child.printError(`fake drbdsetup: ${err instanceof Error ? err.message : err}\n`);
          child.exit(20);
        });
        return;
      }
    }
    if (!this.#resources().includes(res)) {
      child.printError(
        `${res}: Failure: (158) Unknown resource\nadditional info from kernel:\nunknown resource\n`,
      );
      return child.exit(10);
    }
    if (!this.#dump(res).split("\n").some((l) => /^exists resource .* role:Primary /.test(l))) {
      return child.exit(0);
    }
    const kind = force ? "force" : "plain";
    const heldOpen = files.get(`demote/${res}/held-open`);
    if (kind === "plain" && heldOpen !== undefined) {
      child.printError(heldOpen);
      return child.exit(11);
    }
    const line = (files.get(`demote/${res}/${kind}.line`) ?? "").replace(/\n$/, "");
    const now = (files.get("now.txt") ?? "").split("\n").map((l) => {
      const f = l.split(" ");
      return f[0] === "exists" && f[1] === "resource" && f[2] === `name:${res}` ? line : l;
    }).join("\n");
    files.set("now.txt", now);
    void this.#dir.append("events.log", files.get(`demote/${res}/${kind}.change`) ?? "");
    child.exit(0);
  }
}
