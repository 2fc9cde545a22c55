/**
 * One seeded scenario of the fault campaign: a topology, workloads and a
 * schedule of faults, drawn from the seed alone, and the run that plays it
 * on a {@linkcode VirtualCluster} while {@linkcode Invariants} watch.
 *
 * @module
 */

import { Random } from "../sim/random.ts";
import { VirtualCluster } from "../sim/virtual/cluster.ts";
import { Invariants, type Violation } from "../sim/virtual/invariants.ts";

/** One fault, at `at` ms after the workloads run, healed `forMs` later where it lasts. */
export type FaultEvent =
  & { at: number }
  & (
    /** The node dies (power loss), and boots again after `forMs`. */
    | { kind: "crash"; node: string; forMs: number }
    /** The DRBD link between two nodes breaks (both still reach the others: non-transitive). */
    | { kind: "partition"; a: string; b: string; forMs: number }
    /** Every DRBD link of a node breaks; the node stays Ready for Kubernetes. */
    | { kind: "drbd-cut"; node: string; forMs: number }
    /** A link goes down and up `times` times. */
    | { kind: "flap"; a: string; b: string; downMs: number; upMs: number; times: number }
    /** The agent of a node is killed and started again after `forMs`. */
    | { kind: "agent-restart"; node: string; forMs: number }
    /** A share of all API requests fails with `status`. */
    | { kind: "api-errors"; status: 500 | 503 | 429; rate: number; forMs: number }
    /** Every API request is answered `ms` late. */
    | { kind: "api-latency"; ms: number; forMs: number }
    /** Every API request fails: the API server is down. */
    | { kind: "api-down"; forMs: number }
    /** Every open watch breaks. */
    | { kind: "watch-drop" }
    /** The watch history is compacted and watches break: re-watches get 410 Expired. */
    | { kind: "watch-expire" }
    /**
     * A node's drbdsetup fails (`exit20`), is gone (`missing`), prints a bad
     * line (`garbage`) or hangs until killed (`hang`).
     */
    | {
      kind: "drbdsetup";
      node: string;
      mode: "exit20" | "missing" | "garbage" | "hang";
      forMs: number;
    }
    /**
     * Every node loses power; the first boots again after `forMs`, each
     * next one (in node order) `bootSpreadMs` later (0: all at once), as
     * machines that take different times to boot do.
     */
    | { kind: "reboot-all"; forMs: number; bootSpreadMs?: number }
  );

/** A workload of one pod with one volume. */
export interface Workload {
  name: string;
  kind: "StatefulSet" | "Deployment";
}

/** What a seed fixes. */
export interface Scenario {
  /** The seed. */
  seed: number;
  /** Worker nodes. */
  nodes: string[];
  /** Replicas of every volume. */
  replicas: { diskful: string[]; diskless: string[] };
  /** Workloads, one pod and one volume each. */
  workloads: Workload[];
  /** The faults, by time. */
  faults: FaultEvent[];
}

/** Draws the scenario of `seed`. */
export function scenarioOf(seed: number): Scenario {
  const random = new Random(seed).fork("scenario");
  const nodes = Array.from({ length: random.int(3, 4) }, (_, i) => `node-${"abcd"[i]}`);
  const layout = random.pick(["2+tiebreaker", "3 diskful", "2 diskful"] as const);
  const replicas = layout === "2+tiebreaker"
    ? { diskful: nodes.slice(0, 2), diskless: nodes.slice(2, 3) }
    : layout === "3 diskful"
    ? { diskful: nodes.slice(0, 3), diskless: [] }
    : { diskful: nodes.slice(0, 2), diskless: [] };
  const workloads: Workload[] = Array.from({ length: random.int(1, 2) }, (_, i) => ({
    name: `app${i}`,
    kind: random.pick(["StatefulSet", "StatefulSet", "Deployment"] as const),
  }));
  const faults: FaultEvent[] = [];
  const count = random.int(1, 4);
  const pair = () => {
    const a = random.pick(nodes);
    const b = random.pick(nodes.filter((n) => n !== a));
    return { a, b };
  };
  for (let i = 0; i < count; i++) {
    const at = random.int(0, 120) * 1_000;
    const forMs = random.int(5, 90) * 1_000;
    const node = random.pick(nodes);
    const kind = random.pick(
      [
        "crash",
        "crash",
        "partition",
        "drbd-cut",
        "flap",
        "agent-restart",
        "api-errors",
        "api-latency",
        "api-down",
        "watch-drop",
        "watch-expire",
        "drbdsetup",
        "reboot-all",
      ] as const,
    );
    switch (kind) {
      case "crash":
      case "drbd-cut":
      case "agent-restart":
        faults.push({ at, kind, node, forMs });
        break;
      case "partition":
        faults.push({ at, kind, ...pair(), forMs });
        break;
      case "flap":
        faults.push({
          at,
          kind,
          ...pair(),
          downMs: random.int(1, 15) * 1_000,
          upMs: random.int(1, 15) * 1_000,
          times: random.int(2, 5),
        });
        break;
      case "api-errors":
        faults.push({
          at,
          kind,
          status: random.pick([500, 503, 429] as const),
          rate: random.pick([0.2, 0.5, 1]),
          forMs,
        });
        break;
      case "api-latency":
        faults.push({ at, kind, ms: random.pick([200, 2_000, 10_000]), forMs });
        break;
      case "api-down":
        faults.push({ at, kind, forMs });
        break;
      case "reboot-all":
        faults.push({ at, kind, forMs, bootSpreadMs: random.pick([0, 5_000, 20_000]) });
        break;
      case "watch-drop":
      case "watch-expire":
        faults.push({ at, kind });
        break;
      case "drbdsetup":
        faults.push({
          at,
          kind,
          node,
          mode: random.pick(["exit20", "missing", "garbage", "hang"] as const),
          forMs,
        });
        break;
    }
  }
  faults.sort((x, y) => x.at - y.at);
  return { seed, nodes, replicas, workloads, faults };
}

/** One line per fault, for the report. */
export function describeFault(f: FaultEvent): string {
  const { at, kind, ...rest } = f;
  const args = Object.entries(rest).map(([k, v]) => `${k}=${v}`).join(" ");
  return `+${at / 1000}s ${kind} ${args}`;
}

/** What a run found. */
export interface Outcome {
  /** The scenario played. */
  scenario: Scenario;
  /** Broken rules, oldest first. */
  violations: Violation[];
  /** The last agent log lines before the first violation (or the end). */
  log: string[];
  /** Simulated seconds played. */
  simulatedSeconds: number;
  /** When a rule broke: each node's DRBD view and the workloads' pods at the end. */
  finalState: string[];
}

/** Agent flags of the campaign (the defaults, shorter backoffs are not needed). */
const agentArgs: string[] = [];
/** 2 × --drbd-status-interval + --fail-over-timeout (defaults), plus a decision cycle. */
const staleBoundMs = 2 * 5_000 + 5_000 + 1_000;
/** How long after the last fault healed every pod must run again and every taint be gone. */
export const convergeBoundMs = 300_000;

/** Options of {@linkcode play}. */
export interface PlayOptions {
  /** Overrides the scenario's fault list (to shrink a failing one). */
  faults?: FaultEvent[];
  /** Run the agents (default true; false shows what the rules see without them). */
  agents?: boolean;
}

/**
 * Plays `scenario`. Never throws for a violation: they are in the outcome.
 */
export async function play(scenario: Scenario, options: PlayOptions = {}): Promise<Outcome> {
  const faults = options.faults ?? scenario.faults;
  const log: string[] = [];
  // Created once the cluster runs; requests before that are setup.
  const current: { invariants?: Invariants } = {};
  const cluster = await VirtualCluster.start({
    seed: scenario.seed,
    nodes: scenario.nodes,
    replicas: scenario.replicas,
    agentArgs,
    agents: options.agents,
    onAgentLog: (line) => {
      if (line.level === "debug") return;
      log.push(
        `${
          ((line.at - startedAt) / 1000).toFixed(3)
        } ${line.node} ${line.level} ${line.component}: ${line.message}`,
      );
      if (log.length > 400) log.splice(0, log.length - 400);
    },
    onAgentRequest: (request) => current.invariants?.onAgentRequest(request),
  });
  const startedAt = cluster.clock.now();
  const watch = new Invariants(cluster, staleBoundMs);
  current.invariants = watch;
  const names = scenario.workloads.map((w) => w.name);
  try {
    for (const w of scenario.workloads) {
      if (w.kind === "StatefulSet") cluster.deployStatefulSet(w.name);
      else cluster.deployDeployment(w.name);
    }
    const up = await cluster.runUntil(
      () => names.every((name) => cluster.workloadNode(name) !== undefined),
      180_000,
    );
    if (!up) {
      return {
        scenario,
        violations: [{
          at: cluster.clock.now() - startedAt,
          rule: "setup",
          detail: "pods never ran",
        }],
        log,
        simulatedSeconds: (cluster.clock.now() - startedAt) / 1000,
        finalState: describeState(cluster),
      };
    }
    const base = cluster.clock.now();
    const heals: { at: number; run: () => void }[] = [];
    const schedule = (at: number, run: () => void) =>
      cluster.clock.after(Math.max(0, base + at - cluster.clock.now()), run);
    for (const fault of faults) {
      schedule(fault.at, () => {
        if (fault.kind === "crash" && alone(fault, faults)) {
          expectFailOver(cluster, watch, scenario, fault.node, startedAt);
        }
        apply(cluster, watch, fault, (after, heal) => {
          heals.push({ at: fault.at + after, run: heal });
          schedule(fault.at + after, heal);
        });
      });
    }
    const lastHeal = Math.max(0, ...faults.map((f) => f.at + lastingMs(f)));
    // Safety: after every step until everything healed and the bound passed.
    const end = base + lastHeal + convergeBoundMs;
    let converged = false;
    await cluster.clock.run(end, () => {
      watch.check();
      if (cluster.clock.now() >= base + lastHeal) {
        converged = watch.unconverged(names).length === 0;
        // Keep checking safety for a while after convergence, then stop.
        return converged && cluster.clock.now() >= base + lastHeal + 60_000;
      }
      return false;
    });
    if (!converged) watch.reportUnconverged(watch.unconverged(names), convergeBoundMs);
    for (const node of cluster.nodes) {
      // Each fault may switch a taint on and off a few times; more is flapping.
      const limit = 4 * faults.length + 2;
      if (watch.taintChanges(node) > limit) {
        watch.violations.push({
          at: cluster.clock.now() - startedAt,
          rule: "L2",
          detail: `node ${node}'s lost-quorum taint changed ${watch.taintChanges(node)} times`,
        });
      }
    }
    return {
      scenario,
      violations: watch.violations,
      log,
      simulatedSeconds: (cluster.clock.now() - startedAt) / 1000,
      finalState: watch.violations.length > 0 ? describeState(cluster) : [],
    };
  } finally {
    await cluster.stop();
  }
}

/**
 * The L1 fail-over bound after a crash: DRBD's detection (ping-int 10 s +
 * ping-timeout 0.5 s), --fail-over-timeout (5 s), then 90 s for Kubernetes:
 * the eviction or force-delete, the attach-detach controller's sync (up to
 * 60 s), scheduling, attach and start.
 */
export const failOverBoundMs = 10_500 + 5_000 + 90_000;

/** No other fault is active while a crash's fail-over runs (it may delay it). */
function alone(crash: FaultEvent, faults: FaultEvent[]): boolean {
  const end = crash.at + failOverBoundMs;
  return faults.every((g) =>
    g === crash || g.at + Math.max(lastingMs(g), 1) <= crash.at || g.at >= end
  );
}

/**
 * L1: `node` is about to crash. For each workload running there whose
 * volume keeps a quorum of replicas without it, a pod must run again
 * within {@linkcode failOverBoundMs}.
 */
function expectFailOver(
  cluster: VirtualCluster,
  invariants: Invariants,
  scenario: Scenario,
  node: string,
  startedAt: number,
): void {
  const { diskful, diskless } = scenario.replicas;
  const drbd = cluster.drbd;
  const survivors = diskful.filter((n) => n !== node && drbd.isUp(n)).length;
  const tiebreaker = diskless.some((n) => n !== node && drbd.isUp(n));
  const quorum = survivors > diskful.length / 2 ||
    (diskful.length % 2 === 0 && survivors === diskful.length / 2 && tiebreaker);
  if (!quorum) return;
  for (const { name } of scenario.workloads) {
    if (cluster.workloadNode(name) !== node) continue;
    const crashedAt = cluster.clock.now();
    cluster.clock.after(failOverBoundMs, () => {
      if (cluster.workloadNode(name) !== undefined) return;
      invariants.report(
        "L1",
        `${name} not running ${failOverBoundMs / 1000}s after its node ${node} crashed at +${
          ((crashedAt - startedAt) / 1000).toFixed(1)
        }s, though a quorum of its replicas survived`,
      );
    });
  }
}

/** Each node's view of each DRBD resource, and every pod, one line each. */
function describeState(cluster: VirtualCluster): string[] {
  const lines: string[] = [];
  for (const resource of cluster.drbd.resources()) {
    for (const node of cluster.nodes) {
      if (!cluster.drbd.isUp(node)) {
        lines.push(`${resource} ${node}: down`);
        continue;
      }
      const v = cluster.drbd.view(node, resource);
      if (v === undefined) continue;
      const peers = v.connections.map((c) =>
        `${c.name}:${c.connectionState}/${c.peerRole}/${c.peerDevices[0]?.peerDiskState}`
      );
      lines.push(
        `${resource} ${node}: ${v.role} disk:${v.devices[0]?.diskState} quorum:${
          v.devices[0]?.quorum ? "yes" : "no"
        } may_promote:${v.mayPromote ? "yes" : "no"} io:${
          cluster.drbd.ioState(node, resource)
        } peers ${peers.join(" ")}`,
      );
    }
  }
  for (const pod of cluster.server.peekAll("pods")) {
    // deno-lint-ignore no-explicit-any
    const p = pod as any;
    lines.push(
      `pod ${p.metadata.name} on ${p.spec.nodeName ?? "-"}: ${p.status?.phase ?? "?"}${
        p.metadata.deletionTimestamp ? " (terminating)" : ""
      }`,
    );
  }
  return lines;
}

/** How long a fault lasts (0 for the instant ones). */
function lastingMs(f: FaultEvent): number {
  if (f.kind === "flap") return f.times * (f.downMs + f.upMs);
  // The last of at most 4 nodes boots 3 spreads after the first (with 3
  // nodes the run is judged from one spread later than needed).
  if (f.kind === "reboot-all") return f.forMs + (f.bootSpreadMs ?? 0) * 3;
  return "forMs" in f ? f.forMs : 0;
}

/** Starts a fault; `healLater(ms, fn)` runs `fn` when it ends. */
function apply(
  cluster: VirtualCluster,
  invariants: Invariants,
  f: FaultEvent,
  healLater: (afterMs: number, heal: () => void) => void,
): void {
  const { drbd, server } = cluster;
  switch (f.kind) {
    case "crash":
      if (!drbd.isUp(f.node)) return;
      cluster.crash(f.node);
      return healLater(f.forMs, () => cluster.restore(f.node));
    case "partition":
      drbd.partition(f.a, f.b);
      return healLater(f.forMs, () => drbd.heal(f.a, f.b));
    case "drbd-cut":
      drbd.isolate(f.node);
      return healLater(f.forMs, () => drbd.rejoin(f.node));
    case "flap":
      void drbd.flap(f.a, f.b, { downMs: f.downMs, upMs: f.upMs, times: f.times });
      return;
    case "agent-restart": {
      const agent = cluster.agent(f.node);
      if (!agent.running) return;
      agent.kill();
      return healLater(f.forMs, () => {
        if (drbd.isUp(f.node)) agent.start();
      });
    }
    case "api-errors": {
      const id = server.faults.add({ status: f.status, rate: f.rate });
      return healLater(f.forMs, () => server.faults.remove(id));
    }
    case "api-latency": {
      const id = server.faults.add({ latencyMs: f.ms });
      return healLater(f.forMs, () => server.faults.remove(id));
    }
    case "api-down": {
      const id = server.faults.add({ status: 503, message: "the API server is down" });
      server.dropWatches();
      return healLater(f.forMs, () => server.faults.remove(id));
    }
    case "watch-drop":
      server.dropWatches();
      return;
    case "watch-expire":
      server.compact();
      server.dropWatches();
      return;
    case "drbdsetup": {
      const fake = drbd.fake(f.node);
      if (f.mode === "garbage") {
        void fake.appendStreamLines(["change resource name:?? garbage"]);
        return;
      }
      invariants.unreadableSince.set(f.node, cluster.clock.now());
      if (f.mode === "missing") fake.setMissing(true);
      else if (f.mode === "hang") fake.setHanging(true);
      else {
        for (const command of ["events2", "show", "status"]) {
          void fake.setFailure(command, { code: 20, stderr: "Failed to connect to netlink" });
        }
      }
      return healLater(f.forMs, () => {
        invariants.unreadableSince.delete(f.node);
        if (f.mode === "missing") fake.setMissing(false);
        else if (f.mode === "hang") fake.setHanging(false);
        else for (const c of ["events2", "show", "status"]) void fake.setFailure(c, undefined);
      });
    }
    case "reboot-all": {
      const down = cluster.nodes.filter((node) => drbd.isUp(node));
      for (const node of down) cluster.crash(node);
      const spread = f.bootSpreadMs ?? 0;
      down.forEach((node, i) => {
        if (i < down.length - 1) {
          healLater(f.forMs + i * spread, () => {
            if (!drbd.isUp(node)) cluster.restore(node);
          });
        }
      });
      return healLater(f.forMs + (down.length - 1) * spread, () => {
        for (const node of cluster.nodes) if (!drbd.isUp(node)) cluster.restore(node);
      });
    }
  }
}
