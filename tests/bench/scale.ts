// Benchmark: the agent at scale (issue 10).
//
// For a small cluster (10 nodes, 100 pods) and a large one (5,000 nodes,
// 150,000 pods, 10,000 LINSTOR PVs and VolumeAttachments, 30 pods on node-a;
// see large_cluster.ts) this starts the simulated API server, a fake
// drbdsetup with resource pvc-1 on node-a and the real agent process on
// node-a, and measures:
//
// - startup: process start -> every cache listed (the agent's first watch
//   request of each of its five caches reaches the server) -> first decision
//   (the end of the first good decision cycle,
//   ha_controller_last_good_cycle_timestamp_seconds);
// - the bytes the agent downloaded until then (the server's accounting of
//   the agent's requests; the agent gets a ServiceAccount token of its own);
// - the agent's RSS (VmRSS) after it was idle for `idleMs` (default 60 s),
//   and the difference large - small (goal: at most 10 MiB);
// - P4 fan-out: in the large cluster, 1,000 pods on other nodes change (a
//   label); once a control watch of all pods has seen all 1,000 changes and
//   a moment passed, the watch events and bytes that reached the agent
//   (goal: 0).
//
// Run: node_modules/.bin/deno run -A tests/bench/scale.ts [--idle-ms N] [--only small|large]
//        [--kubeconfig [--deno-flag=--v8-flags=--optimize-for-size]]
// (in-cluster as production runs where possible; --kubeconfig measures the
// kubeconfig path instead)

import { parseArgs } from "node:util";
import { ApiServer, type RequestRecord } from "../sim/apiserver/mod.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { type AgentProcess, freePort, spawnAgent, testFlags } from "../sim/agent_process.ts";
import {
  inClusterUnavailable,
  resourceOnNodeA,
  startInClusterAgent,
  warmModuleCache,
} from "../agent/harness.ts";
import {
  buildCluster,
  type ClusterSize,
  largeCluster,
  nodeName,
  smallCluster,
} from "./large_cluster.ts";

/** What a `spawn` callback gets: the cluster the agent is to run in. */
export interface SpawnContext {
  /** The API server. */
  server: ApiServer;
  /** The fake drbdsetup (its `env` puts it on PATH). */
  drbd: FakeDrbd;
  /** A kubeconfig of the agent's own ServiceAccount (so its traffic can be told apart). */
  kubeconfig: string;
  /** The node the agent runs on. */
  node: string;
}

/** Options of {@linkcode measureScale}. */
export interface ScaleOptions {
  /** How long the agent idles in each cluster before its RSS is read (default 60 000 ms). */
  idleMs?: number;
  /** Clusters to measure (default both). */
  clusters?: ("small" | "large")[];
  /** Pods changed for the fan-out measurement (default 1,000). */
  fanOutPods?: number;
  /**
   * Starts the agent (default: `main.ts` with --kubeconfig, as the agent
   * tests do). Another launcher (e.g. in-cluster configuration) plugs in
   * here; its traffic is recognised by the kubeconfig's user if it uses it,
   * else by `agentRequest`.
   */
  spawn?: (ctx: SpawnContext) => Promise<AgentProcess>;
  /**
   * Extra `deno run` flags for the default launcher (e.g.
   * `--v8-flags=--optimize-for-size`), to try runtime settings.
   */
  denoFlags?: string[];
  /** Which logged requests are the agent's (default: those of the kubeconfig's ServiceAccount). */
  agentRequest?: (r: RequestRecord) => boolean;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

const agentAccount = { namespace: "ha-controller", name: "ha-controller" };
const agentUser = `system:serviceaccount:${agentAccount.namespace}:${agentAccount.name}`;

/**
 * The production launcher for {@linkcode ScaleOptions.spawn}: the agent
 * in-cluster (service-account token and CA mounted, production flags; needs
 * root, see tests/agent/harness.ts's inClusterUnavailable), authenticated as
 * {@linkcode inClusterUser}.
 */
export const inClusterSpawn = (ctx: SpawnContext): Promise<AgentProcess> =>
  startInClusterAgent(ctx.server, ctx.drbd, []);

/** The user {@linkcode inClusterSpawn}'s agent authenticates as. */
export const inClusterUser = "system:serviceaccount:ha:ha-controller";

function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

/** Where a process's resident memory is, in bytes (from /proc/PID/smaps). */
export interface RssBreakdown {
  /** Pages of the executable (deno) itself: its code and data. */
  binary: number;
  /** glibc malloc's main heap (`[heap]`, the brk area). */
  brk: number;
  /** Anonymous mappings: V8's heap, other malloc arenas, thread stacks. */
  anonymous: number;
  /** Every other file (shared libraries, ...). */
  otherFiles: number;
}

/** Sums `Rss:` of /proc/PID/smaps by kind of mapping. */
export function rssBreakdown(pid: number): RssBreakdown {
  const exe = Deno.readLinkSync(`/proc/${pid}/exe`);
  const out: RssBreakdown = { binary: 0, brk: 0, anonymous: 0, otherFiles: 0 };
  let kind: keyof RssBreakdown = "anonymous";
  for (const line of Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      const path = header[1];
      kind = path === ""
        ? "anonymous"
        : path === "[heap]"
        ? "brk"
        : path === exe
        ? "binary"
        : path.startsWith("[")
        ? "anonymous"
        : "otherFiles";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null) out[kind] += Number(rss[1]) * 1024;
  }
  return out;
}

/** The agent's `ha_controller_heap_bytes` by kind (total, used, external), from its /metrics. */
async function agentHeap(agent: AgentProcess): Promise<Record<string, number>> {
  const text = await (await fetch(`${agent.healthUrl}/metrics`)).text();
  const heap: Record<string, number> = {};
  for (const m of text.matchAll(/^ha_controller_heap_bytes\{kind="(\w+)"\} (\S+)$/gm)) {
    heap[m[1]] = Number(m[2]);
  }
  return heap;
}

async function metrics(agent: AgentProcess): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    const text = await (await fetch(`${agent.healthUrl}/metrics`)).text();
    for (const line of text.split("\n")) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
      if (m !== null) out.set(m[1], Number(m[2]));
    }
  } catch {
    // Not serving yet.
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function poll<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined> | T | undefined,
  agent?: AgentProcess,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) {
      throw new Error(
        `Expected ${what} within ${timeoutMs} ms${
          agent ? `; agent stderr:\n${agent.stderr().slice(-3000)}` : ""
        }`,
      );
    }
    await sleep(25);
  }
}

const repo = new URL("../../", import.meta.url).pathname;

/** `spawnAgent` with extra `deno run` flags before main.ts. */
async function spawnWithDenoFlags(ctx: SpawnContext, denoFlags: string[]): Promise<AgentProcess> {
  const api = new URL(ctx.server.url);
  const healthPort = freePort();
  const flags = await testFlags(
    `${api.hostname}:${api.port}`,
    `127.0.0.1:${healthPort}`,
    ctx.kubeconfig,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...flags,
      ...denoFlags,
      `${repo}main.ts`,
      "--node-name",
      ctx.node,
      "--kubeconfig",
      ctx.kubeconfig,
      "--health-bind-address",
      `127.0.0.1:${healthPort}`,
    ],
    cwd: repo,
    env: ctx.drbd.env,
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let err = "";
  const pump = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (err += chunk) }),
  );
  const end = async (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // Already exited.
    }
    const status = await child.status;
    await pump;
    return status.code;
  };
  return {
    child,
    healthUrl: `http://127.0.0.1:${healthPort}`,
    stdout: () => "",
    stderr: () => err,
    stop: () => end("SIGTERM"),
    kill: async () => void await end("SIGKILL"),
  };
}

/** Key of a cache's watch: path and selectors. */
function watchKey(r: RequestRecord): string {
  return `${r.path}?${r.query.labelSelector ?? ""}&${r.query.fieldSelector ?? ""}`;
}

const cachesWatched = 5;

/** One cluster's figures. */
interface ClusterFigures {
  seedMs: number;
  objects: number;
  firstRequestMs: number;
  cachesSyncedMs: number;
  firstDecisionMs: number;
  startupBytes: number;
  startupRequests: number;
  idleRss: number;
  /** Where `idleRss` is, MiB: see {@linkcode RssBreakdown}. */
  rssBinaryMiB: number;
  rssBrkMiB: number;
  rssAnonymousMiB: number;
  rssOtherFilesMiB: number;
  /** The agent's V8 heap (committed, in use) and external memory at the same time, MiB. */
  heapTotalMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
  testProcessRss: number;
  testProcessHeap: number;
}

function mib(bytes: number | undefined): number {
  return bytes === undefined ? NaN : Number((bytes / 1024 / 1024).toFixed(1));
}

/** Watches all pods from `rv` in this process, counting events (the fan-out control). */
async function controlWatch(server: ApiServer, rv: number) {
  const client = Deno.createHttpClient({ caCerts: [server.caPem!] });
  const abort = new AbortController();
  const response = await fetch(`${server.url}/api/v1/pods?watch=1&resourceVersion=${rv}`, {
    client,
    headers: { authorization: `Bearer ${server.token}` },
    signal: abort.signal,
  });
  let events = 0;
  const reading = (async () => {
    let buffer = "";
    try {
      for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          if (buffer.slice(0, nl).trim() !== "") events++;
          buffer = buffer.slice(nl + 1);
        }
      }
    } catch {
      // Aborted.
    }
  })();
  return {
    events: () => events,
    async close() {
      abort.abort();
      await reading;
      client.close();
    },
  };
}

async function measureCluster(
  size: ClusterSize,
  options: Required<Pick<ScaleOptions, "idleMs" | "fanOutPods">> & ScaleOptions,
  fanOut: boolean,
): Promise<{ figures: ClusterFigures; fanOut?: Record<string, number> }> {
  const log = options.log ?? (() => {});
  const server = await ApiServer.start({ tls: true });
  const drbd = await FakeDrbd.create();
  let agent: AgentProcess | undefined;
  try {
    await drbd.setResources([resourceOnNodeA()]);
    const built = buildCluster(server, size);
    const memory = Deno.memoryUsage();
    log(`  seeded ${built.objects} objects in ${built.seedMs.toFixed(0)} ms`);
    const kubeconfig = await server.kubeconfigFor(agentAccount.namespace, agentAccount.name);
    const isAgent = options.agentRequest ?? ((r: RequestRecord) => r.user === agentUser);
    server.clearRequests();
    const spawn = options.spawn ??
      (options.denoFlags !== undefined && options.denoFlags.length > 0
        ? (ctx: SpawnContext) => spawnWithDenoFlags(ctx, options.denoFlags!)
        : (ctx: SpawnContext) =>
          spawnAgent({
            node: ctx.node,
            apiUrl: ctx.server.url,
            kubeconfig: ctx.kubeconfig,
            env: ctx.drbd.env,
          }));
    const startedAt = Date.now();
    agent = await spawn({ server, drbd, kubeconfig, node: "node-a" });
    const running = agent;
    const firstDecisionAt = await poll("a first good decision cycle", 120_000, async () => {
      const at = (await metrics(running)).get("ha_controller_last_good_cycle_timestamp_seconds");
      return at !== undefined && at > 0 ? at * 1000 : undefined;
    }, agent);
    const agentRequests = () => server.requests.filter(isAgent);
    // Each cache opens its first watch right after its (paged) list is
    // complete; the first decision may come before the last watch request
    // reaches the server (a new connection).
    const firstWatches = await poll(`${cachesWatched} cache watches`, 30_000, () => {
      const first = new Map<string, number>();
      for (const r of agentRequests()) {
        if (r.verb === "watch" && !first.has(watchKey(r))) first.set(watchKey(r), r.time.getTime());
      }
      return first.size >= cachesWatched ? first : undefined;
    }, agent);
    const cachesSyncedAt = Math.max(...firstWatches.values());
    const firstRequestAt = agentRequests()[0].time.getTime();
    const startup = server.traffic(isAgent);
    log(
      `  agent up: first request +${firstRequestAt - startedAt} ms, caches synced +${
        cachesSyncedAt - startedAt
      } ms, first decision +${Math.round(firstDecisionAt - startedAt)} ms, ${startup.bytes} bytes`,
    );
    log(`  idling ${options.idleMs} ms`);
    await sleep(options.idleMs);
    const idleRss = rssBytes(agent.child.pid);
    const where = rssBreakdown(agent.child.pid);
    const heap = await agentHeap(agent);
    const figures: ClusterFigures = {
      seedMs: built.seedMs,
      objects: built.objects,
      firstRequestMs: firstRequestAt - startedAt,
      cachesSyncedMs: cachesSyncedAt - startedAt,
      firstDecisionMs: Math.round(firstDecisionAt - startedAt),
      startupBytes: startup.bytes,
      startupRequests: startup.requests,
      idleRss,
      rssBinaryMiB: mib(where.binary),
      rssBrkMiB: mib(where.brk),
      rssAnonymousMiB: mib(where.anonymous),
      rssOtherFilesMiB: mib(where.otherFiles),
      heapTotalMiB: mib(heap.total),
      heapUsedMiB: mib(heap.used),
      externalMiB: mib(heap.external),
      testProcessRss: memory.rss,
      testProcessHeap: memory.heapUsed,
    };
    if (!fanOut) return { figures };

    // P4: change pods on other nodes; the agent must get nothing of it.
    const before = server.traffic(isAgent);
    const control = await controlWatch(server, server.store.resourceVersion);
    const pods = server.api.resolve("pods");
    const changed: { namespace: string; name: string }[] = [];
    for (const pod of server.store.entries("pods")) {
      const obj = pod[1];
      const onNode = (obj.spec as { nodeName?: string } | undefined)?.nodeName;
      if (onNode === "node-a" || onNode === undefined) continue;
      const labels = obj.metadata.labels ?? {};
      if (labels["app.kubernetes.io/component"] === "linstor-satellite") continue;
      changed.push({ namespace: obj.metadata.namespace!, name: obj.metadata.name! });
      if (changed.length >= options.fanOutPods) break;
    }
    const applyStarted = performance.now();
    for (const { namespace, name } of changed) {
      server.api.patch({ def: pods, namespace, name }, {
        contentType: "application/merge-patch+json",
        patch: { metadata: { labels: { "bench.example.com/touched": "p4" } } },
      });
    }
    const applyMs = performance.now() - applyStarted;
    await poll(
      `the control watch to see ${changed.length} changes`,
      60_000,
      () => control.events() >= changed.length ? true : undefined,
    );
    // Give anything addressed to the agent time to arrive as well.
    await sleep(2_000);
    await control.close();
    const after = server.traffic(isAgent);
    const types = (t: typeof after, type: string) => t.watchEventTypes[type] ?? 0;
    const objectEvents = (t: typeof after) =>
      types(t, "ADDED") + types(t, "MODIFIED") + types(t, "DELETED");
    log(`  fan-out: ${changed.length} pods changed in ${applyMs.toFixed(0)} ms`);
    return {
      figures,
      fanOut: {
        podsChanged: changed.length,
        controlWatchEvents: control.events(),
        agentWatchEvents: after.watchEvents - before.watchEvents,
        agentObjectEvents: objectEvents(after) - objectEvents(before),
        agentBytes: after.bytes - before.bytes,
        agentRequests: after.requests - before.requests,
      },
    };
  } finally {
    await agent?.stop();
    await server.close();
    await drbd.cleanup();
  }
}

/**
 * Runs the benchmark; returns flat figures (`small.*`, `large.*`,
 * `rssDeltaMiB`, `p4.*`). Byte and RSS figures are bytes unless named MiB.
 */
export async function measureScale(
  opts: ScaleOptions = {},
): Promise<Record<string, number | string>> {
  const options = {
    ...opts,
    idleMs: opts.idleMs ?? 60_000,
    fanOutPods: opts.fanOutPods ?? 1_000,
  };
  const clusters = options.clusters ?? ["small", "large"];
  const out: Record<string, number | string> = { idleMs: options.idleMs };
  await warmModuleCache();
  const rss: Record<string, number> = {};
  for (const which of clusters) {
    options.log?.(`${which} cluster`);
    const size = which === "small" ? smallCluster : largeCluster;
    const { figures, fanOut } = await measureCluster(size, options, which === "large");
    for (const [k, v] of Object.entries(figures)) out[`${which}.${k}`] = v;
    out[`${which}.idleRssMiB`] = Number((figures.idleRss / 1024 / 1024).toFixed(1));
    rss[which] = figures.idleRss;
    for (const [k, v] of Object.entries(fanOut ?? {})) out[`p4.${k}`] = v;
  }
  if (rss.small !== undefined && rss.large !== undefined) {
    out.rssDeltaMiB = Number(((rss.large - rss.small) / 1024 / 1024).toFixed(1));
  }
  out.nodesLarge = largeCluster.nodes;
  out.lastNode = nodeName(largeCluster.nodes - 1);
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "idle-ms": { type: "string" },
      only: { type: "string" },
      "deno-flag": { type: "string", multiple: true },
      kubeconfig: { type: "boolean" },
    },
  });
  const only = values.only as "small" | "large" | undefined;
  // In-cluster, as production runs, where possible; --kubeconfig (or no
  // root) measures the kubeconfig path, which loads client-node.
  const unavailable = values.kubeconfig ? "--kubeconfig given" : inClusterUnavailable();
  const denoFlags = values["deno-flag"] as string[] | undefined;
  if (unavailable === null && denoFlags !== undefined) {
    throw new Error("--deno-flag applies to the kubeconfig launcher only: add --kubeconfig");
  }
  console.error(
    unavailable === null
      ? "configuration: in-cluster (service account in a private mount namespace)"
      : `configuration: kubeconfig, NOT in-cluster (${unavailable})`,
  );
  const result = await measureScale({
    ...(unavailable === null
      ? { spawn: inClusterSpawn, agentRequest: (r: RequestRecord) => r.user === inClusterUser }
      : {}),
    idleMs: values["idle-ms"] !== undefined ? Number(values["idle-ms"]) : undefined,
    clusters: only !== undefined ? [only] : undefined,
    denoFlags,
    log: (line) => console.error(line),
  });
  const width = Math.max(...Object.keys(result).map((k) => k.length));
  for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(width)}  ${v}`);
}
