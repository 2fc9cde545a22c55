/**
 * The real agent in process, on the simulation's virtual clock: `runAgent`
 * of lib/agent.ts with an {@linkcode AgentHost} whose clock is the
 * {@linkcode SimClock}, whose Kubernetes edge is the in-process API server's
 * `fetch` and whose drbdsetup edge is the node's in-process
 * {@linkcode FakeDrbd}. Nothing of the agent is copied or stubbed: sampler,
 * caches, decisions, the loop with its timers and backoffs, the executor and
 * the writes are the production code.
 *
 * @module
 */

import { type AgentHost, runAgent } from "../../../lib/agent.ts";
import { parseCommandLine } from "../../../lib/cli.ts";
import type { Clock } from "../../../lib/clock.ts";
import type { Log } from "../../../lib/log.ts";
import type { ApiServer } from "../apiserver/mod.ts";
import type { SimClock } from "../clock.ts";
import type { FakeDrbd } from "../drbd/fake_drbd.ts";
import type { Random } from "../random.ts";

/** One log line of an in-process agent. */
export interface AgentLogLine {
  /** Simulated time, ms since the epoch. */
  at: number;
  /** The agent's node. */
  node: string;
  /** `debug`, `info`, `warn` or `error`. */
  level: "debug" | "info" | "warn" | "error";
  /** Component (`loop`, `act`, `kube`, `drbd`, `agent`). */
  component: string;
  /** The message, with its structured fields as JSON when there are any. */
  message: string;
}

/**
 * The agent's view of a SimClock: `setTimeout` is the clock's `after`, the
 * monotonic reading is simulated time too, and jitter comes from `random`.
 */
export function agentClock(
  clock: SimClock,
  random: Random,
  alive: () => boolean = () => true,
): Clock {
  return {
    now: () => clock.now(),
    monotonic: () => clock.now(),
    // A killed agent's timers never fire.
    setTimeout: (fn, ms) => clock.after(ms, () => alive() && fn()),
    clearTimeout: (id) => {
      if (typeof id === "function") id();
    },
    random: () => random.next(),
  };
}

/** Options of {@linkcode VirtualAgent}. */
export interface VirtualAgentOptions {
  /** The node it runs on. */
  node: string;
  /** The shared virtual clock. */
  clock: SimClock;
  /** The in-process API server. */
  server: ApiServer;
  /** The kubeconfig the agent uses (default the server's admin one). */
  kubeconfig?: string;
  /** The node's in-process drbdsetup. */
  drbd: FakeDrbd;
  /** Jitter source of this agent. */
  random: Random;
  /** Command-line flags (the kubeconfig and the node name are added). */
  args?: string[];
  /** Receives every log line (default: kept in {@linkcode VirtualAgent.log}). */
  onLog?: (line: AgentLogLine) => void;
  /** Lowest level passed on (default `info`). */
  level?: AgentLogLine["level"];
  /** Sees every request of the agent as it reaches the server (the invariant checker). */
  onRequest?: (request: { node: string; method: string; path: string; body: unknown }) => void;
}

const levels = ["debug", "info", "warn", "error"] as const;

/** One agent process, simulated: start, stop (SIGTERM), crash (killed). */
export class VirtualAgent {
  /** The node it runs on. */
  readonly node: string;
  /** Log lines, oldest first, when no `onLog` was given. */
  readonly log: AgentLogLine[] = [];
  readonly #options: VirtualAgentOptions;
  #run: {
    stop: AbortController;
    done: Promise<number>;
    life: { alive: boolean; connections: Set<AbortController> };
  } | undefined;
  #exits: number[] = [];

  /** A stopped agent. */
  constructor(options: VirtualAgentOptions) {
    this.node = options.node;
    this.#options = options;
  }

  /** Whether it runs. */
  get running(): boolean {
    return this.#run !== undefined;
  }

  /** Exit codes of the runs that ended, oldest first. */
  get exits(): readonly number[] {
    return this.#exits;
  }

  /** Starts the agent (a new process: no memory of a previous run). */
  start(): void {
    if (this.#run !== undefined) return;
    const o = this.#options;
    const parsed = parseCommandLine(
      [
        ...(o.args ?? []),
        `--kubeconfig=${o.kubeconfig ?? o.server.kubeconfigPath}`,
        "--health-bind-address=",
      ],
      { NODE_NAME: o.node },
    );
    if (parsed.command !== "run") throw new Error(`Expected agent flags, got ${parsed.command}`);
    const minimum = levels.indexOf(o.level ?? "info");
    const emit = o.onLog ?? ((line: AgentLogLine) => this.log.push(line));
    // Everything of a killed run stops where it is: no timer fires, no
    // request goes out, no answer comes back, no drbdsetup starts.
    const life = { alive: true, connections: new Set<AbortController>() };
    const alive = () => life.alive;
    const never = new Promise<never>(() => {});
    const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
      if (!life.alive) return await never;
      if (o.onRequest !== undefined) {
        const request = new Request(input, init);
        let body: unknown = undefined;
        if (typeof init?.body === "string") {
          try {
            body = JSON.parse(init.body);
          } catch {
            body = init.body;
          }
        }
        o.onRequest({
          node: o.node,
          method: request.method,
          path: new URL(request.url).pathname,
          body,
        });
      }
      // The connection: cut when the process dies, so the server sees the
      // client go (a watch ends), as with a closed socket.
      const connection = new AbortController();
      const outer = init?.signal;
      const onAbort = () => connection.abort(outer?.reason);
      if (outer?.aborted) onAbort();
      outer?.addEventListener("abort", onAbort, { once: true });
      life.connections.add(connection);
      const response = await o.server.fetch(input, { ...init, signal: connection.signal });
      return life.alive ? response : await never;
    };
    const spawn = o.drbd.spawn;
    const host: AgentHost = {
      clock: agentClock(o.clock, o.random, alive),
      fetch,
      spawnDrbdsetup: (args, env) => {
        if (!life.alive) throw new Deno.errors.NotFound("the agent was killed");
        return spawn(args, env);
      },
      handleSignals: false,
      logger: (component: string): Log => {
        const at =
          (level: AgentLogLine["level"]) => (message: string, fields?: Record<string, unknown>) => {
            // A killed process prints nothing more.
            if (!life.alive || levels.indexOf(level) < minimum) return;
            const extra = fields === undefined || Object.keys(fields).length === 0
              ? ""
              : ` ${JSON.stringify(fields)}`;
            emit({ at: o.clock.now(), node: o.node, level, component, message: message + extra });
          };
        return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
      },
    };
    const stop = new AbortController();
    const done = runAgent(parsed.options, stop.signal, host).then((code) => {
      this.#exits.push(code);
      return code;
    }, (err) => {
      this.#exits.push(-1);
      throw err;
    });
    this.#run = { stop, done, life };
  }

  /** Stops it as SIGTERM does and returns the exit code (the clock must be running). */
  async stop(): Promise<number> {
    const run = this.#run;
    if (run === undefined) return 0;
    this.#run = undefined;
    run.stop.abort();
    return await run.done;
  }

  /**
   * Ends it at once, as a kill or a node crash does: it stops deciding and
   * writing. Its pending requests and timers are left to end on their own.
   */
  kill(): void {
    const run = this.#run;
    if (run === undefined) return;
    this.#run = undefined;
    run.life.alive = false;
    for (const connection of run.life.connections) connection.abort(new Error("process killed"));
    run.life.connections.clear();
    this.#exits.push(137);
    run.done.catch(() => {});
  }
}
