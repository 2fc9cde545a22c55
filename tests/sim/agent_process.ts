/**
 * The real agent as a process of its own, as the simulator and the agent
 * tests start it: `deno run` with the production permission flags from
 * deno.json, where only the cluster address and the kubeconfig path are
 * this test cluster's.
 *
 * @module
 */

import { waitFor } from "../helpers.ts";

const repo = new URL("../../", import.meta.url).pathname;

/** The production permission flags, read from deno.json's `start` task. */
export async function productionFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${repo}deno.json`));
  const words = (config.tasks.start as string).split(/\s+/);
  return words.filter((w) =>
    w.startsWith("--allow-") || w.startsWith("--ignore-") || w.startsWith("--deny-") ||
    w.startsWith("--v8-flags=")
  );
}

/**
 * The production flags with the two site-specific values replaced: network
 * access to this test's API server and health port instead of the in-cluster
 * range, and read access to the kubeconfig instead of the service account.
 */
export async function testFlags(apiHostPort: string, healthHostPort: string, kubeconfig: string) {
  return (await productionFlags()).map((flag) => {
    if (flag.startsWith("--allow-net=")) return `--allow-net=${apiHostPort},${healthHostPort}`;
    if (flag.startsWith("--allow-read=")) return `--allow-read=${kubeconfig}`;
    return flag;
  });
}

/**
 * The production flags for the in-cluster configuration: only `--allow-net`
 * is narrowed to this test's API server and health port; the read access
 * stays the service-account directory, as in the DaemonSet.
 */
export async function inClusterFlags(apiHostPort: string, healthHostPort: string) {
  return (await productionFlags()).map((flag) =>
    flag.startsWith("--allow-net=") ? `--allow-net=${apiHostPort},${healthHostPort}` : flag
  );
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A running agent process. */
export interface AgentProcess {
  /** Everything printed on stdout so far. */
  stdout(): string;
  /** Everything printed on stderr so far. */
  stderr(): string;
  /** The health server's base URL. */
  healthUrl: string;
  /** Stop with SIGTERM and wait; returns the exit code. */
  stop(): Promise<number>;
  /** Kill at once (SIGKILL), as a crashing node does, and wait. */
  kill(): Promise<void>;
  /** The process. */
  child: Deno.ChildProcess;
}

/** Wait until the agent reports healthy. */
export async function waitHealthy(agent: AgentProcess, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      try {
        const response = await fetch(`${agent.healthUrl}/healthz`);
        await response.body?.cancel();
        return response.status === 200;
      } catch {
        return false;
      }
    },
    timeoutMs,
    () => `agent healthy (stderr so far:\n${agent.stderr()})`,
  );
}

/** How to start one agent process. */
export interface SpawnAgentOptions {
  /** The node the agent runs on (`--node-name`). */
  node: string;
  /** API server URL (its host:port is the only address the agent may reach). */
  apiUrl: string;
  /**
   * Kubeconfig the agent reads (the only file it may read); undefined: the
   * in-cluster configuration with {@linkcode inClusterFlags}, where `env` and
   * `wrapper` must provide the service account and its address.
   */
  kubeconfig: string | undefined;
  /** Environment: PATH with that node's drbdsetup first, and the fake's state dir. */
  env: Record<string, string>;
  /** Further agent flags. */
  args?: string[];
  /**
   * Arguments placed first, right after `main.ts` (a DaemonSet's `args`
   * as written for the upstream agent, for example).
   */
  leadingArgs?: string[];
  /** Give the node name as NODE_NAME in the environment, not as `--node-name`. */
  nodeNameFromEnv?: boolean;
  /**
   * A program and its arguments that run `deno` (for example `unshare ... sh -c
   * '...; exec "$@"' sh`); it must exec, so that the child's PID is the agent's.
   */
  wrapper?: string[];
}

/**
 * Start `main.ts` as its own process with the production permission flags
 * (only the cluster address and the kubeconfig path differ) and a health
 * port of its own.
 */
export async function spawnAgent(options: SpawnAgentOptions): Promise<AgentProcess> {
  const api = new URL(options.apiUrl);
  const healthPort = freePort();
  const apiHostPort = `${api.hostname}:${api.port}`;
  const healthHostPort = `127.0.0.1:${healthPort}`;
  const flags = options.kubeconfig === undefined
    ? await inClusterFlags(apiHostPort, healthHostPort)
    : await testFlags(apiHostPort, healthHostPort, options.kubeconfig);
  const [program, ...prefix] = [...(options.wrapper ?? []), Deno.execPath()];
  const child = new Deno.Command(program, {
    args: [
      ...prefix,
      "run",
      ...flags,
      `${repo}main.ts`,
      ...(options.leadingArgs ?? []),
      ...(options.nodeNameFromEnv ? [] : ["--node-name", options.node]),
      ...(options.kubeconfig === undefined ? [] : ["--kubeconfig", options.kubeconfig]),
      "--health-bind-address",
      `127.0.0.1:${healthPort}`,
      ...(options.args ?? []),
    ],
    cwd: repo,
    env: options.nodeNameFromEnv ? { ...options.env, NODE_NAME: options.node } : options.env,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let out = "";
  let err = "";
  const decoder = () => new TextDecoderStream();
  const pumpOut = child.stdout.pipeThrough(decoder()).pipeTo(
    new WritableStream({ write: (chunk) => void (out += chunk) }),
  );
  const pumpErr = child.stderr.pipeThrough(decoder()).pipeTo(
    new WritableStream({ write: (chunk) => void (err += chunk) }),
  );
  return {
    child,
    healthUrl: `http://127.0.0.1:${healthPort}`,
    stdout: () => out,
    stderr: () => err,
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
      await Promise.all([pumpOut, pumpErr]);
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      const status = await child.status;
      await Promise.all([pumpOut, pumpErr]);
      return status.code;
    },
  };
}
