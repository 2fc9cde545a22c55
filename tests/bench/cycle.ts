// Benchmark: the CPU cost of one sample + decide cycle on a node with 1,000
// DRBD resources, and of the periodic resync's parse of a 1,000-resource
// `events2 --now` dump.
//
// The scene: node-a of a 10-node cluster holds a replica of 1,000 DRBD
// resources `pvc-0000` ... `pvc-0999`, each with 3 connections (2 diskful
// peers and a diskless tiebreaker, chosen round-robin among node-b ... node-j)
// and a `quorum majority` configuration. 900 of them back a PV bound to a
// claim that a StatefulSet pod uses, on node-a (Primary here) for every third
// one, else on its first diskful peer (Primary there), with a VolumeAttachment
// on the pod's node; the other 100 are unused (no Primary anywhere, so node-a
// may promote them). The cache holds all 1,000 PVs, 900 VolumeAttachments,
// node-a's 300 pods and one LINSTOR satellite pod per node.
//
// Parts, each timed on its own after a warm-up:
// - sample: `DrbdSampler.sample()` of a sampler whose events2 stream (the
//   in-process fake drbdsetup) is live with the 1,000 resources and whose
//   resync read their configuration: what the loop calls twice per cycle
//   (the sampler keeps its copy of the state until a line changes it).
// - stream change: applying one events2 `change connection` line to the
//   stream's 1,000-resource state, as the sampler does for each line.
// - stream change + copy: that, and the copy of the whole state the next
//   sample then makes: the sample of a cycle after a DRBD change.
// - decide (healthy): `peersToInspect` + `decide` on that snapshot.
// - decide (node-b lost): the same after node-b crashed: its 300
//   connections are Connecting, node-a may promote the 100 resources whose
//   pod ran there, node-b's Node and pods were fetched, and the fail-over
//   timers run (3 s of the 5 s `--fail-over-timeout`).
// - cycle (healthy) / cycle (node-b lost): what the loop does per cycle on
//   top of the cluster caches: sample, peersToInspect, sample, decide.
// - dump parse: `parseEvents2Dump` of the 1,000-resource `events2 --now`
//   output (about 8,000 lines), as each resync does.
// - show parse: `parseShowJson` of the matching `show --show-defaults --json`.
// - resync: a whole `DrbdSampler.resync()` against the in-process fake
//   (both reads, both parses, the comparison with the live stream; the fake's
//   own printing included), every `--drbd-status-interval`.
//
// Run: node_modules/.bin/deno run --allow-all [--v8-flags=...] tests/bench/cycle.ts [iterations]
//        [-v] [--json]
// (tests/bench/main.ts runs it with the agent's own V8 flags, from deno.json's start task)

import { decide, peersToInspect } from "../../lib/decide/mod.ts";
import {
  type Decision,
  emptyMemory,
  type Memory,
  type PeerView,
  type Snapshot,
} from "../../lib/decide/types.ts";
import { Events2State, parseEvents2Dump } from "../../lib/drbd/events2.ts";
import type { DrbdConnection, DrbdResource, DrbdSample } from "../../lib/drbd/model.ts";
import { runDrbdsetup } from "../../lib/drbd/run.ts";
import { DrbdSampler, EVENTS2_NOW_ARGS, SHOW_ARGS } from "../../lib/drbd/sampler.ts";
import { parseShowJson } from "../../lib/drbd/show_json.ts";
import type {
  NodeInfo,
  PersistentVolumeInfo,
  PodInfo,
  SatellitePodInfo,
  VolumeAttachmentInfo,
} from "../../lib/kube/objects.ts";
import { linstorCsiDriver } from "../../lib/names.ts";
import { defaultOptions, type Options } from "../../lib/options.ts";
import { markUnchanging } from "../../lib/unchanging.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { waitFor } from "../helpers.ts";

const resourceCount = 1_000;
const nodes = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"].map((n) => `node-${n}`);
const peerNodes = nodes.slice(1);
const options: Options = { ...defaultOptions, nodeName: "node-a" };

interface Placement {
  name: string;
  /** Diskful peers, then the tiebreaker. */
  peers: [string, string, string];
  /** Where the pod runs; undefined: an unused volume. */
  podNode: string | undefined;
}

function placements(): Placement[] {
  return Array.from({ length: resourceCount }, (_, i) => {
    // Peers rotate every 3 resources, so pods spread over every node.
    const at = (k: number) => peerNodes[(Math.floor(i / 3) + k) % peerNodes.length];
    const unused = i % 10 === 9;
    return {
      name: `pvc-${String(i).padStart(4, "0")}`,
      peers: [at(0), at(3), at(6)],
      podNode: unused ? undefined : i % 3 === 0 ? "node-a" : at(0),
    };
  });
}

function connection(
  name: string,
  id: number,
  state: { connected: boolean; role: "Primary" | "Secondary"; diskless: boolean },
): DrbdConnection {
  return {
    peerNodeId: id,
    name,
    connectionState: state.connected ? "Connected" : "Connecting",
    peerRole: state.connected ? state.role : "Unknown",
    peerDevices: [{
      volume: 0,
      replicationState: state.connected ? "Established" : "Off",
      peerDiskState: state.connected ? (state.diskless ? "Diskless" : "UpToDate") : "DUnknown",
      peerClient: state.diskless,
    }],
  };
}

/** node-a's DRBD state; `lost` names a crashed node (its connections Connecting). */
function drbdResources(list: Placement[], lost?: string): DrbdResource[] {
  return list.map((p, i) => {
    const primaryHere = p.podNode === "node-a";
    const primaryPeer = p.podNode !== undefined && !primaryHere ? p.podNode : undefined;
    const connections = p.peers.map((peer, k) =>
      connection(peer, k + 1, {
        connected: peer !== lost,
        role: peer === primaryPeer ? "Primary" : "Secondary",
        diskless: k === 2,
      })
    );
    // Without a connected Primary elsewhere (and with quorum), node-a may promote.
    const mayPromote = !primaryHere && (primaryPeer === undefined || primaryPeer === lost);
    return {
      name: p.name,
      role: primaryHere ? "Primary" : "Secondary",
      suspended: { user: false, noData: false, fencing: false, quorum: false },
      forceIoFailures: false,
      mayPromote,
      promotionScore: mayPromote ? 10101 : 10102,
      devices: [{
        volume: 0,
        minor: 1000 + i,
        diskState: "UpToDate",
        client: false,
        open: primaryHere,
        quorum: true,
      }],
      connections,
      config: {
        quorum: "majority",
        onNoQuorum: "suspend-io",
        onNoDataAccessible: "suspend-io",
        onSuspendedPrimaryOutdated: "force-secondary",
      },
    };
  });
}

function nodeInfo(name: string, ready = true): NodeInfo {
  return {
    name,
    uid: `uid-${name}`,
    resourceVersion: "1",
    ready,
    taints: [],
    actionsPaused: false,
  };
}

function podOf(p: Placement): PodInfo {
  return {
    namespace: "default",
    name: `web-${p.name}`,
    uid: `uid-pod-${p.name}`,
    nodeName: p.podNode!,
    phase: "Running",
    deletionTimestamp: undefined,
    containerRunning: false,
    sandboxReady: true,
    hasOwner: true,
    ignoreFailOver: false,
    volumes: [
      { kind: "pvc", name: "data", claimName: `data-${p.name}`, readOnly: false },
      { kind: "projected", name: "kube-api-access" },
    ],
  };
}

function persistentVolumes(list: Placement[]): PersistentVolumeInfo[] {
  return list.map((p) => ({
    name: p.name,
    uid: `uid-pv-${p.name}`,
    csiDriver: linstorCsiDriver,
    volumeHandle: p.name,
    claimRef: { namespace: "default", name: `data-${p.name}`, uid: `uid-pvc-${p.name}` },
    phase: "Bound",
  }));
}

function volumeAttachments(list: Placement[]): VolumeAttachmentInfo[] {
  return list.filter((p) => p.podNode !== undefined).map((p) => ({
    name: `csi-${p.name}-${p.podNode}`,
    uid: `uid-va-${p.name}`,
    nodeName: p.podNode!,
    persistentVolumeName: p.name,
    attacher: linstorCsiDriver,
    deleting: false,
  }));
}

function satellitePods(): SatellitePodInfo[] {
  return nodes.map((n) => ({ namespace: "piraeus", name: n, nodeName: n }));
}

/** The `p`th percentile (nearest rank) of an ascending list. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Median and 99th percentile (ms) of `fn` over `iterations` runs after `warmup` runs. */
async function time(
  fn: () => unknown,
  iterations: number,
  warmup = Math.max(50, iterations / 4),
): Promise<{ median: number; p99: number }> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  return { median: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** What the loop does per cycle on top of the caches: sample, peers, sample, decide. */
function cycle(
  sampleDrbd: () => DrbdSample,
  cluster: Omit<Snapshot, "nodeName" | "drbd" | "peers">,
  peers: Map<string, PeerView>,
  memory: Memory,
  now: number,
): Decision {
  const wanted = peersToInspect({ nodeName: "node-a", drbd: sampleDrbd(), ...cluster }, options);
  const snapshot: Snapshot = {
    nodeName: "node-a",
    drbd: sampleDrbd(),
    ...cluster,
    peers: new Map(wanted.map((n) => [n, peers.get(n)!])),
  };
  return decide(snapshot, memory, options, now);
}

/** The benchmark measures the cycle the agent runs most: trusted, nothing to do. */
function checkIdle(decision: Decision, what: string): void {
  if (decision.heldBack !== undefined || decision.plan.length > 0) {
    throw new Error(
      `Expected ${what} to act on trusted data with nothing due, got held back ` +
        `${decision.heldBack}, ${decision.plan.length} actions`,
    );
  }
}

/** node-b lost 3 s ago: fail-over timers of its resources running, 2 s to go. */
function waitingMemory(list: Placement[], now: number): Memory {
  const memory = emptyMemory();
  for (const p of list) {
    if (p.peers.includes("node-b")) memory.failOverSince.set(`${p.name}/node-b`, now - 3_000);
  }
  return memory;
}

/**
 * Times every part (see the module comment); milliseconds, keys
 * `<part> median` and `<part> p99`.
 */
export async function measureCycle(
  iterations = 300,
  verbose = false,
): Promise<Record<string, number>> {
  const list = placements();
  const healthy = drbdResources(list);
  // Marked unchanging, as the caches hand them out (a cache's array stays the
  // same until an object changes, so per-array indexes are built once).
  const cluster = {
    ownNode: nodeInfo("node-a"),
    localPods: markUnchanging(list.filter((p) => p.podNode === "node-a").map(podOf)),
    satellitePods: markUnchanging(satellitePods()),
    persistentVolumes: markUnchanging(persistentVolumes(list)),
    volumeAttachments: markUnchanging(volumeAttachments(list)),
    cachesSynced: true,
  };
  const results: Record<string, number> = {};
  const record = (part: string, t: { median: number; p99: number }) => {
    results[`${part} median`] = t.median;
    results[`${part} p99`] = t.p99;
    if (verbose) console.error(`${part}: median ${t.median.toFixed(3)} p99 ${t.p99.toFixed(3)}`);
  };

  const fake = await FakeDrbd.create({ inProcess: true });
  const sampler = new DrbdSampler({ spawn: fake.spawn, statusIntervalMs: 3_600_000 });
  try {
    await fake.setResources(healthy);
    sampler.start();
    await waitFor(
      () => {
        const s = sampler.sample();
        return s.availability === "ok" && s.resources.length === resourceCount &&
          s.resources.every((r) => r.config !== undefined);
      },
      30_000,
      "a live sample of every resource with its configuration",
    );
    record("sample", await time(() => sampler.sample(), iterations));

    // One change line applied to a 1,000-resource stream state, as the stream does.
    const dump =
      (await runDrbdsetup([...EVENTS2_NOW_ARGS], { spawn: fake.spawn, timeoutMs: 30_000 }))
        .stdout;
    const show = (await runDrbdsetup([...SHOW_ARGS], { spawn: fake.spawn, timeoutMs: 30_000 }))
      .stdout;
    const state = new Events2State();
    for (const line of dump.split("\n").filter((l) => l !== "")) state.apply(line);
    const target = list[500];
    const flip = [
      `change connection name:${target.name} peer-node-id:1 conn-name:${
        target.peers[0]
      } connection:Connecting`,
      `change connection name:${target.name} peer-node-id:1 conn-name:${
        target.peers[0]
      } connection:Connected`,
    ];
    let n = 0;
    record("stream change", await time(() => state.apply(flip[n++ % 2]), iterations * 10));
    record(
      "stream change + copy",
      await time(() => {
        state.apply(flip[n++ % 2]);
        return state.resources();
      }, iterations),
    );

    const now = Date.now();
    const sampleOf = (resources: DrbdResource[]): DrbdSample => ({
      availability: "ok",
      message: undefined,
      resources,
      confirmedAt: now,
    });
    const healthyDrbd = sampleOf(healthy);
    const noPeers = new Map<string, PeerView>();
    const decideHealthy = () => cycle(() => healthyDrbd, cluster, noPeers, emptyMemory(), now);
    checkIdle(decideHealthy(), "decide (healthy)");
    record("decide (healthy)", await time(decideHealthy, iterations));

    const lostDrbd = sampleOf(drbdResources(list, "node-b"));
    const lostPeer = (at: number) =>
      new Map<string, PeerView>([["node-b", {
        ok: true,
        node: nodeInfo("node-b"),
        pods: list.filter((p) => p.podNode === "node-b").map(podOf),
        kubeletLease: { renewTime: at - 3_000, durationSeconds: 40, ageAtRead: 3_000, readAt: at },
      }]]);
    const lostPeers = lostPeer(now);
    const waiting = waitingMemory(list, now);
    const decideLost = () => cycle(() => lostDrbd, cluster, lostPeers, waiting, now);
    checkIdle(decideLost(), "decide (node-b lost)");
    record("decide (node-b lost)", await time(decideLost, iterations));

    // The sampler's state is confirmed as of its stream's start: decide 1 s after that.
    const healthyAt = sampler.sample().confirmedAt + 1_000;
    const cycleHealthy = () =>
      cycle(() => sampler.sample(), cluster, noPeers, emptyMemory(), healthyAt);
    checkIdle(cycleHealthy(), "cycle (healthy)");
    record("cycle (healthy)", await time(cycleHealthy, iterations));

    // The sampler serves node-b's loss, as its stream does after the crash.
    await fake.setResources(drbdResources(list, "node-b"));
    await waitFor(
      () => sampler.sample().resources.filter((r) => r.mayPromote).length > 100,
      30_000,
      "the stream to deliver node-b's loss",
    );
    const lostAt = sampler.sample().confirmedAt + 1_000;
    const lostPeersAt = lostPeer(lostAt);
    const waitingAt = waitingMemory(list, lostAt);
    const cycleLost = () => cycle(() => sampler.sample(), cluster, lostPeersAt, waitingAt, lostAt);
    checkIdle(cycleLost(), "cycle (node-b lost)");
    record("cycle (node-b lost)", await time(cycleLost, iterations));

    const dumpLines = dump.split("\n").length - 1;
    if (parseEvents2Dump(dump).resources.length !== resourceCount) {
      throw new Error("Expected the dump to hold every resource");
    }
    record("dump parse", await time(() => parseEvents2Dump(dump), iterations));
    results["dump lines"] = dumpLines;
    record("show parse", await time(() => parseShowJson(show), iterations));
    record("resync", await time(() => sampler.resync(), Math.min(iterations, 100), 10));
  } finally {
    await sampler.stop();
    await fake.cleanup();
  }
  return results;
}

if (import.meta.main) {
  const iterations = Number(Deno.args.find((a) => !a.startsWith("-")) ?? 300);
  const results = await measureCycle(iterations, Deno.args.includes("-v"));
  if (Deno.args.includes("--json")) {
    console.log(JSON.stringify(results));
    Deno.exit(0);
  }
  console.log(
    `One cycle on ${resourceCount} DRBD resources x 3 connections, ${iterations} iterations (ms):`,
  );
  const parts = Object.keys(results).filter((k) => k.endsWith(" median")).map((k) =>
    k.slice(0, -" median".length)
  );
  for (const part of parts) {
    console.log(
      `  ${part.padEnd(22)} median ${results[`${part} median`].toFixed(3).padStart(8)}  ` +
        `p99 ${results[`${part} p99`].toFixed(3).padStart(8)}`,
    );
  }
  console.log(`  (the dump has ${results["dump lines"]} lines)`);
}
