/**
 * Wiring: the pieces of the agent put together for `run` and `status`.
 *
 * @module
 */

import { Executor } from "./act.ts";
import { decide, peersToInspect } from "./decide/mod.ts";
import { emptyMemory, type PeerView, type Snapshot } from "./decide/types.ts";
import { DrbdSampler, forceSecondary, sampleOnce } from "./drbd/mod.ts";
import { parseBindAddress, serveHealth } from "./http.ts";
import {
  errorMessage,
  fetchPeer,
  KubeCaches,
  KubeClient,
  KubeWriter,
  slimNode,
  type WriteOutcome,
} from "./kube/mod.ts";
import { KubeConfigError } from "./kube/client.ts";
import { type Log, logger } from "./log.ts";
import { type Clock, sleep, systemClock } from "./clock.ts";
import type { DrbdsetupSpawner } from "./drbd/run.ts";
import { AgentLoop, type ClusterView, type CycleReport } from "./loop.ts";
import {
  createAgentMetrics,
  setHeldBack,
  updateDrbdMetrics,
  updateMemoryMetrics,
} from "./metrics.ts";
import type { Options } from "./options.ts";
import { buildStatus, renderStatusTable, type StatusReport } from "./status.ts";
import type { OutputFormat } from "./cli.ts";
import { pauseAnnotation, programName } from "./names.ts";
import type { V1Node } from "@kubernetes/client-node";
import { version } from "./version.ts";

/**
 * Where an agent runs: its clock, its logs and its two edges to the world.
 * Production runs on {@linkcode processHost}; the deterministic simulation
 * runs one agent per simulated node in one process, each on the shared
 * virtual clock, with the Kubernetes and drbdsetup edges answered in process.
 * Everything between the edges is the same code.
 */
export interface AgentHost {
  /** Time, timers and jitter. */
  clock: Clock;
  /** Loggers by component name (`agent`, `loop`, `kube`, ...). */
  logger: (name: string) => Log;
  /** The HTTP transport to the API server (default the global `fetch`). */
  fetch?: typeof fetch;
  /** Starts drbdsetup (default: the program on PATH). */
  spawnDrbdsetup?: DrbdsetupSpawner;
  /** Stop on SIGTERM and SIGINT: true for the process, false for a simulated agent. */
  handleSignals: boolean;
}

/** The agent as a process: system clock, stderr logs, real network and drbdsetup. */
export const processHost: AgentHost = Object.freeze({
  clock: systemClock,
  logger,
  handleSignals: true,
});

function connect(
  options: Options,
  host: AgentHost,
  observe?: (verb: string, code: string) => void,
) {
  return KubeClient.connect({
    kubeconfig: options.kubeconfig,
    // No request may hang a decision cycle: 0 (the default) falls back to
    // the operations timeout.
    requestTimeoutMs: options.requestTimeout || options.operationsTimeout,
    observe,
    fetch: host.fetch,
    clock: host.clock,
  });
}

function readCluster(caches: KubeCaches): ClusterView {
  return {
    ownNode: caches.ownNode.items()[0],
    localPods: caches.localPods.items(),
    satellitePods: caches.satellitePods.items(),
    persistentVolumes: caches.persistentVolumes.items(),
    volumeAttachments: caches.volumeAttachments.items(),
    cachesSynced: caches.synced,
  };
}

function healthOf(
  options: Options,
  loop: AgentLoop,
  caches: KubeCaches,
  now: () => number,
): { ok: boolean; reason: string } {
  const bound = options.reconcileInterval + options.operationsTimeout;
  const last = loop.lastCycleEndedAt;
  const running = loop.cycleStartedAt;
  // A cycle still running counts as progress as long as it started within
  // the bound: a slow fail-over must not get the agent killed half-way.
  const progressAt = running !== undefined ? Math.max(last, running) : last;
  if (progressAt === 0) return { ok: false, reason: "no decision cycle has finished yet" };
  if (now() - progressAt > bound) {
    return {
      ok: false,
      reason: `last decision cycle ended ${Math.round((now() - last) / 1000)}s ago`,
    };
  }
  const problems = caches.problems();
  if (problems.length > 0) {
    return { ok: false, reason: `caches not synced: ${problems.join("; ")}` };
  }
  if (caches.ownNode.size === 0) {
    return { ok: false, reason: `node ${options.nodeName} does not exist in the cluster` };
  }
  return { ok: true, reason: "ok" };
}

const startupSyncWaitMs = 10_000;
/** How long the start waits for DRBD's resources before it lists the volumes without them. */
const firstSampleWaitMs = 2_000;

/**
 * Wait (up to `firstSampleWaitMs`) until DRBD was read or found not loaded,
 * and pass the resource names of a sample that could be read to `want`.
 */
async function firstDrbdSample(
  sampler: DrbdSampler,
  clock: Clock,
  signal: AbortSignal,
  want: (names: string[]) => void,
): Promise<void> {
  const deadline = clock.monotonic() + firstSampleWaitMs;
  for (;;) {
    const sample = sampler.sample();
    if (sample.availability === "ok") return want(sample.resources.map((r) => r.name));
    if (sample.availability === "not-loaded") return;
    if (clock.monotonic() >= deadline || signal.aborted) return;
    await sleep(clock, 20, signal);
  }
}

/**
 * Re-read the own Node right before destructive actions: the pause
 * annotation must win even if the watch lags. Unreadable → veto.
 */
async function confirmNotPaused(client: KubeClient, nodeName: string): Promise<string | undefined> {
  try {
    const raw = await client.request<V1Node>(
      "get",
      "GET",
      `/api/v1/nodes/${encodeURIComponent(nodeName)}`,
    );
    const node = slimNode(raw);
    if (node === undefined) return `node ${nodeName} is malformed`;
    return node.actionsPaused
      ? `actions paused by annotation ${pauseAnnotation} on node ${nodeName}`
      : undefined;
  } catch (err) {
    return `cannot confirm that node ${nodeName} is not paused: ${errorMessage(err)}`;
  }
}

/**
 * Run the agent until SIGTERM/SIGINT (on the process host) or `signal`.
 * Returns the exit code.
 *
 * @throws {KubeConfigError} when no usable Kubernetes configuration is found.
 */
export async function runAgent(
  options: Options,
  signal?: AbortSignal,
  host: AgentHost = processHost,
): Promise<number> {
  const logger = host.logger;
  const log = logger("agent");
  const clock = host.clock;
  const now = () => clock.now();
  const metrics = createAgentMetrics();
  let client: KubeClient;
  try {
    client = await connect(
      options,
      host,
      (verb, code) => metrics.apiRequests.inc({ verb, code }),
    );
  } catch (err) {
    // main.ts prints configuration problems as one line and exits with 2.
    if (err instanceof KubeConfigError) throw err;
    log.error(errorMessage(err));
    return 1;
  }
  log.info(
    `${programName} ${version} starting on node ${options.nodeName}${
      options.dryRun ? " in dry-run mode" : ""
    }`,
    { server: client.server, config: client.source },
  );
  const stop = new AbortController();
  signal?.addEventListener("abort", () => stop.abort());
  const onSignal = () => {
    log.info("signal received, stopping");
    stop.abort();
  };
  const removeSignalListeners = () => {
    if (!host.handleSignals) return;
    Deno.removeSignalListener("SIGTERM", onSignal);
    Deno.removeSignalListener("SIGINT", onSignal);
  };
  if (host.handleSignals) {
    Deno.addSignalListener("SIGTERM", onSignal);
    Deno.addSignalListener("SIGINT", onSignal);
  }
  const drbdsetup = { spawn: host.spawnDrbdsetup, clock };

  // The edges wake the loop, which is created after them.
  const wakeTarget: { loop?: AgentLoop } = {};
  const wake = () => wakeTarget.loop?.wake();
  const sampler = new DrbdSampler({
    ...drbdsetup,
    statusIntervalMs: options.drbdStatusInterval,
    timeoutMs: options.operationsTimeout,
    onChange: wake,
    onError: (command) => metrics.drbdsetupErrors.inc({ command }),
    log: logger("drbd"),
  });
  const caches = new KubeCaches(client, {
    nodeName: options.nodeName,
    satellitePodLabel: options.satellitePodLabel,
    resyncIntervalMs: options.resyncInterval,
    onChange: wake,
    log: logger("kube"),
  });
  const writer = new KubeWriter(client, options.nodeName);
  const executor = new Executor({
    addTaint: (node, taint, recheck) => writer.addTaint(node, taint, recheck),
    removeTaint: (node, taint) => writer.removeTaint(node, taint),
    evictPod: (pod, grace) => writer.evictPod(pod, grace),
    forceDeletePod: (pod) => writer.forceDeletePod(pod),
    deleteVolumeAttachment: (name, uid, grace) => writer.deleteVolumeAttachment(name, uid, grace),
    forceSecondary: async (resource): Promise<WriteOutcome> => {
      const outcome = await forceSecondary(resource, {
        ...drbdsetup,
        timeoutMs: options.operationsTimeout,
      });
      return outcome === "demoted" ? "done" : "already";
    },
    recordEvent: (event, at) => writer.recordEvent(event, at),
  }, {
    dryRun: options.dryRun,
    operationsTimeoutMs: options.operationsTimeout,
    clock,
    log: logger("act"),
  });
  // The last cycle, for `/status` (built from it only when asked).
  let lastCycle: CycleReport | undefined;
  const loop = new AgentLoop({
    options,
    sampleDrbd: () => {
      const sample = sampler.sample();
      if (sample.availability === "ok") caches.want(sample.resources.map((r) => r.name));
      return sample;
    },
    readCluster: () => readCluster(caches),
    fetchPeer: (node) => fetchPeer(client, node),
    confirmPlan: () => confirmNotPaused(client, options.nodeName),
    executor,
    clock,
    log: logger("loop"),
    onCycle: (report) => {
      lastCycle = report;
      updateDrbdMetrics(metrics, report.snapshot.drbd);
      metrics.loopCycleSeconds.observe((report.endedAt - report.startedAt) / 1000);
      // "Good" means the agent could decide on complete, fresh data.
      if (report.decision.heldBackCodes.length === 0) {
        metrics.lastGoodCycle.set(report.endedAt / 1000);
      }
      metrics.cachesSynced.set(report.snapshot.cachesSynced ? 1 : 0);
      setHeldBack(metrics, report.decision.heldBackCodes);
      for (const e of report.executed) {
        metrics.actions.inc({ kind: e.action.kind, result: e.result });
      }
      for (const s of report.failOverReactions) metrics.failOverReaction.observe(s);
    },
  });
  let health: ReturnType<typeof serveHealth> | undefined;
  try {
    health = options.healthBindAddress
      ? serveHealth(options.healthBindAddress, {
        health: () => healthOf(options, loop, caches, now),
        metrics: () => {
          updateMemoryMetrics(metrics);
          return metrics.registry.render();
        },
        status: () =>
          lastCycle &&
          buildStatus(lastCycle.snapshot, lastCycle.decision, caches.problems(), {
            kind: "running-agent",
            detail: `pid ${Deno.pid}, serving on ${options.healthBindAddress}`,
            decidedAt: lastCycle.startedAt,
          }),
      }, (addr) => log.info(`serving /healthz and /metrics on ${addr.hostname}:${addr.port}`))
      : undefined;
  } catch (err) {
    log.error(
      `cannot serve /healthz and /metrics on ${options.healthBindAddress}: ${errorMessage(err)}`,
    );
    removeSignalListeners();
    client.close();
    return 1;
  }

  wakeTarget.loop = loop;
  sampler.start();
  // The volume caches hold what this node's DRBD resources need: name them
  // before the first list, so that a large cluster is not listed twice.
  await firstDrbdSample(sampler, clock, stop.signal, (names) => caches.want(names));
  caches.start();
  try {
    // Give the caches a moment before the first decision so a normal start
    // does not begin with "holding back" warnings; the loop copes either way.
    await caches.waitSynced(startupSyncWaitMs);
    await loop.run(stop.signal);
  } finally {
    removeSignalListeners();
    await sampler.stop();
    await caches.stop();
    await health?.stop();
    client.close();
  }
  log.info("stopped");
  return 0;
}

/**
 * Sample DRBD and the cluster once, print what the agent sees and would do.
 *
 * @throws {KubeConfigError} when no usable Kubernetes configuration is found.
 */
export async function runStatus(options: Options, output: OutputFormat): Promise<number> {
  const log: Log = logger("status");
  const print = (report: StatusReport) => {
    if (output === "json") console.log(JSON.stringify(report, null, 2));
    else Deno.stdout.writeSync(new TextEncoder().encode(renderStatusTable(report)));
  };
  // The running agent's own view (its timers, backoffs and last decision) first.
  const asked = await askRunningAgent(options);
  if (asked.report !== undefined) {
    print(asked.report);
    return 0;
  }
  let client: KubeClient;
  try {
    client = await connect(options, processHost);
  } catch (err) {
    // main.ts prints configuration problems as one line and exits with 2.
    if (err instanceof KubeConfigError) throw err;
    log.error(errorMessage(err));
    return 1;
  }
  const caches = new KubeCaches(client, {
    nodeName: options.nodeName,
    satellitePodLabel: options.satellitePodLabel,
    resyncIntervalMs: 0,
    onChange: () => {},
    log: logger("kube"),
    backoffInitialMs: 200,
  });
  try {
    // DRBD first: the volume caches hold what its resources need.
    const drbd = await sampleOnce({ timeoutMs: options.operationsTimeout });
    if (drbd.availability === "ok") caches.want(drbd.resources.map((r) => r.name));
    caches.start();
    const syncTimeout = options.requestTimeout > 0 ? options.requestTimeout : 10_000;
    await caches.waitSynced(syncTimeout);
    const partial = { nodeName: options.nodeName, drbd, ...readCluster(caches) };
    const peers = new Map<string, PeerView>();
    for (const node of peersToInspect(partial, options)) {
      peers.set(node, await fetchPeer(client, node));
    }
    const snapshot: Snapshot = { ...partial, peers };
    const decidedAt = Date.now();
    const decision = decide(snapshot, emptyMemory(), options, decidedAt);
    print(buildStatus(snapshot, decision, caches.problems(), {
      kind: "one-shot",
      detail: asked.why,
      decidedAt,
    }));
    return 0;
  } finally {
    await caches.stop();
    client.close();
  }
}

/** How long `status` waits for the running agent's answer. */
const askAgentTimeoutMs = 2_000;

/**
 * Ask the agent running on this node for its status, over its health port
 * (`--health-bind-address`, on the loopback address when it binds every
 * address): in its pod, `kubectl exec ... status` reaches it there. Returns
 * its report, or why there is none (no agent listens, the health server is
 * disabled, it answers for another node, its answer is not a report).
 */
export async function askRunningAgent(
  options: Options,
): Promise<{ report: StatusReport; why?: undefined } | { report?: undefined; why: string }> {
  if (options.healthBindAddress === "") {
    return { why: "--health-bind-address is empty: no running agent asked" };
  }
  const { hostname, port } = parseBindAddress(options.healthBindAddress);
  const host = hostname === "0.0.0.0" || hostname === "::" ? "127.0.0.1" : hostname;
  const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const none = (what: string) => ({ why: `no running agent answered at ${address}: ${what}` });
  // Never a permission prompt: without net access to the address, do not ask.
  if (Deno.permissions.querySync({ name: "net", host: address }).state !== "granted") {
    return { why: `not asking a running agent at ${address}: no --allow-net for it` };
  }
  let body: unknown;
  try {
    const response = await fetch(`http://${address}/status`, {
      signal: AbortSignal.timeout(askAgentTimeoutMs),
    });
    if (!response.ok) {
      await response.body?.cancel();
      return none(`HTTP ${response.status}`);
    }
    body = await response.json();
  } catch (err) {
    // fetch says "fetch failed" and keeps the reason (connection refused, ...) as its cause.
    const cause = err instanceof Error && err.cause !== undefined
      ? `: ${errorMessage(err.cause)}`
      : "";
    return none(`${errorMessage(err)}${cause}`.split("\n")[0]);
  }
  const report = body as Partial<StatusReport> | null;
  if (
    report === null || typeof report !== "object" || !Array.isArray(report.resources) ||
    report.source?.kind !== "running-agent"
  ) {
    return none("its answer is not a status report");
  }
  if (report.node !== options.nodeName) {
    return none(`it runs for node ${report.node}, not ${options.nodeName}`);
  }
  return { report: report as StatusReport };
}
