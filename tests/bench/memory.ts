// Benchmark: the agent's resident memory (VmRSS) idle and after a fail-over,
// in the configuration production runs: in-cluster, with the service-account
// token and CA under /var/run/secrets/kubernetes.io/serviceaccount, the
// address in KUBERNETES_SERVICE_HOST/PORT, and deno.json's production
// permission flags (only --allow-net narrowed to the test API server and the
// health port, as tests/sim/agent_process.ts's testFlags does).
//
// The service account directory is made visible to the agent alone, in a
// private mount namespace (tests/agent/harness.ts's startInClusterAgent,
// which needs root). Without root the benchmark says so and measures the
// kubeconfig path instead, labelled as such.
//
// The figures: VmRSS of the deno process (`/proc/PID/status`; the wrapper
// shell execs, so the child's PID is deno's) 60 s after start with the agent
// healthy and idle against the simulated API server (TLS, the small cluster
// of tests/agent/harness.ts), then again after DRBD reports node-b lost and
// the agent's fail-over has deleted the VolumeAttachment.
//
// Run: node_modules/.bin/deno run --allow-all tests/bench/memory.ts [idle seconds] [--kubeconfig]
// (--kubeconfig: measure the kubeconfig path instead, for comparison)

import { ApiServer } from "../sim/apiserver/mod.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { waitFor } from "../helpers.ts";
import {
  type AgentProcess,
  inClusterUnavailable,
  markNotReady,
  resourceAfterNodeBCrash,
  resourceOnNodeA,
  seedCluster,
  startAgent,
  startInClusterAgent,
  waitHealthy,
  warmModuleCache,
} from "../agent/harness.ts";

/** What {@linkcode measureMemory} found. */
export interface MemoryFigures {
  /** VmRSS in MiB after the idle window. */
  idleMiB: number;
  /** VmRSS in MiB once the fail-over's VolumeAttachment delete is done. */
  afterFailOverMiB: number;
  /** Which configuration path the agent ran: in-cluster, or the kubeconfig fallback and why. */
  path: string;
}

/** Fields of `/proc/PID/status` in MiB (`VmRSS`, `VmHWM`, `RssAnon`, ...). */
export function procStatusMiB(pid: number, field: string): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return kb / 1024;
}

/** The deno process behind `agent`: the wrapper execs, so it is the child itself. */
function agentPid(agent: AgentProcess): number {
  const pid = agent.child.pid;
  const exe = Deno.readLinkSync(`/proc/${pid}/exe`);
  if (exe !== Deno.execPath()) {
    throw new Error(`Expected PID ${pid} to be deno (${Deno.execPath()}), it runs ${exe}`);
  }
  return pid;
}

/**
 * Run the agent (`deno run main.ts`, production permission flags) against a
 * small simulated cluster, idle for `idleMs` (default 60 s) after its start,
 * then through one fail-over, and read its VmRSS after each.
 */
export async function measureMemory(
  options: {
    idleMs?: number;
    log?: (line: string) => void;
    /** Measure the kubeconfig path even where the in-cluster one could run (for comparison). */
    kubeconfig?: boolean;
  } = {},
): Promise<MemoryFigures> {
  const idleMs = options.idleMs ?? 60_000;
  const log = options.log ?? (() => {});
  await warmModuleCache();
  const unavailable = options.kubeconfig ? "asked for" : inClusterUnavailable();
  const path = unavailable === null
    ? "in-cluster (service account in a private mount namespace)"
    : options.kubeconfig
    ? "kubeconfig (--kubeconfig given to the benchmark), NOT in-cluster"
    : `kubeconfig, NOT in-cluster: the in-cluster measurement needs root (${unavailable})`;
  const server = await ApiServer.start({ tls: true });
  const drbd = await FakeDrbd.create();
  let agent: AgentProcess | undefined;
  try {
    await drbd.setResources([resourceOnNodeA()]);
    seedCluster(server);
    markNotReady(server, "node-b");
    const args = ["--fail-over-timeout", "0s"];
    const startedAt = performance.now();
    agent = unavailable === null
      ? await startInClusterAgent(server, drbd, args)
      : await startAgent(server, drbd, args);
    const running = agent;
    await waitHealthy(running);
    if (unavailable === null) {
      const users = new Set(server.requests.map((r) => r.user));
      if (!users.has("system:serviceaccount:ha:ha-controller") || users.size !== 1) {
        throw new Error(`Expected only the service account's token, saw ${[...users]}`);
      }
    }
    const pid = agentPid(running);
    log(`agent PID ${pid} healthy after ${Math.round(performance.now() - startedAt)} ms`);
    // The measurement window: the agent idles (decision cycles, watches, the
    // token re-read) until idleMs after its start.
    let exited = false;
    running.child.status.then(() => exited = true);
    while (performance.now() - startedAt < idleMs) {
      if (exited) throw new Error(`The agent exited while idle:\n${running.stderr()}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const idleMiB = procStatusMiB(pid, "VmRSS");
    log(
      `idle ${Math.round(performance.now() - startedAt)} ms after start: VmRSS ${
        idleMiB.toFixed(1)
      } MiB (VmHWM ${procStatusMiB(pid, "VmHWM").toFixed(1)}, RssAnon ${
        procStatusMiB(pid, "RssAnon").toFixed(1)
      }, RssFile ${procStatusMiB(pid, "RssFile").toFixed(1)})`,
    );

    server.clearRequests();
    await drbd.setResources([resourceAfterNodeBCrash()]);
    await waitFor(
      () => server.get("volumeattachments", undefined, "csi-pvc-1-node-b") === undefined,
      10_000,
      () => `the fail-over's VolumeAttachment delete (agent stderr:\n${running.stderr()})`,
    );
    // Let the cycle that acted finish and its garbage be collected as it would be.
    await new Promise((r) => setTimeout(r, 2_000));
    const afterFailOverMiB = procStatusMiB(pid, "VmRSS");
    log(
      `after the fail-over: VmRSS ${afterFailOverMiB.toFixed(1)} MiB (VmHWM ${
        procStatusMiB(pid, "VmHWM").toFixed(1)
      })`,
    );
    return { idleMiB, afterFailOverMiB, path };
  } finally {
    await agent?.stop();
    await server.close();
    await drbd.cleanup();
  }
}

if (import.meta.main) {
  const kubeconfig = Deno.args.includes("--kubeconfig");
  const idleSeconds = Number(Deno.args.find((arg) => !arg.startsWith("--")) ?? 60);
  const figures = await measureMemory({ idleMs: idleSeconds * 1000, log: console.log, kubeconfig });
  console.log(`Configuration: ${figures.path}`);
  console.log(
    `Agent RSS: idle ${figures.idleMiB.toFixed(1)} MiB, after a fail-over ${
      figures.afterFailOverMiB.toFixed(1)
    } MiB`,
  );
}
