// More scenarios of the real agent process against the local API server and
// a fake drbdsetup: own-node taints, suspended demotion, force-I/O eviction,
// the ignore annotation, the pause annotation, a dying API server, a missing
// DRBD module, and the `status`, `--help` and `--version` commands.

import assert from "node:assert/strict";
import { ApiServer, type KubeObject } from "../sim/apiserver/mod.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { waitFor } from "../helpers.ts";
import type { DrbdResource } from "../../lib/drbd/model.ts";
import { flagDefinitions } from "../../lib/cli.ts";
import { version } from "../../lib/version.ts";
import {
  type AgentProcess,
  healthz,
  markNotReady,
  metricSample,
  peer,
  resourceAfterNodeBCrash,
  resourceOnNodeA,
  runMain,
  seedCluster,
  startAgent,
  waitHealthy,
} from "./harness.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const foreignTaint = { key: "example.com/maintenance", value: "planned", effect: "NoSchedule" };
const lostQuorumTaint = { key: "drbd.linbit.com/lost-quorum", effect: "NoSchedule" };
const forceIoTaint = { key: "drbd.linbit.com/force-io-error", effect: "NoSchedule" };
const pauseAnnotation = "drbd.linbit.com/ha-controller-paused";
const ignoreAnnotation = "drbd.linbit.com/ignore-fail-over";
const device = { volume: 0, minor: 1000 };
const quorumSeries = { name: "pvc-1", volume: "0", minor: "1000" };

/** A cluster in the seed's story (web-0 on node-b) and a fake drbdsetup showing `resources`. */
async function scene(resources: DrbdResource[] = [resourceOnNodeA()]) {
  const server = await ApiServer.start({ tls: true });
  const drbd = await FakeDrbd.create();
  await drbd.setResources(resources);
  const ids = seedCluster(server);
  return {
    server,
    drbd,
    ...ids,
    async close() {
      await server.close();
      await drbd.cleanup();
    },
  };
}

type Scene = Awaited<ReturnType<typeof scene>>;

/** pvc-1 on node-a without any peer: no quorum, I/O suspended for quorum. */
function isolatedResource(role: "Primary" | "Secondary"): DrbdResource {
  return resourceOnNodeA({
    role,
    suspended: { user: false, noData: false, fencing: false, quorum: true },
    mayPromote: false,
    promotionScore: 0,
    devices: [{ ...device, diskState: "UpToDate", client: false, open: true, quorum: false }],
    connections: [
      peer("node-b", 1, { connected: false }),
      peer("node-c", 2, { connected: false }),
    ],
  });
}

/** Move web-0 (claim data-web-0) to node-a: the local consumer of pvc-1. Returns its UID. */
function consumerOnNodeA(server: ApiServer): string {
  const old = server.remove("pods", "default", "web-0")!;
  server.remove("volumeattachments", undefined, "csi-pvc-1-node-b");
  const pod = server.create({
    ...old,
    metadata: {
      name: "web-0",
      namespace: "default",
      ownerReferences: old.metadata.ownerReferences,
    },
    spec: { ...(old.spec as Obj), nodeName: "node-a" },
  });
  return pod.metadata.uid!;
}

function taintsOf(server: ApiServer, node: string): { key: string; effect: string }[] {
  const taints = ((server.get("nodes", undefined, node) as Obj).spec.taints ?? []) as Obj[];
  return taints.map((t) => ({ key: t.key, effect: t.effect }));
}

function eventsSeen(server: ApiServer): string[] {
  return (server.list("events.k8s.io/events") as Obj[])
    .map((e) => `${e.regarding.kind}/${e.regarding.name} ${e.reason}/${e.action}`).sort();
}

async function waitEvent(server: ApiServer, event: string): Promise<void> {
  await waitFor(
    () => eventsSeen(server).includes(event),
    10_000,
    () => `event ${event} (events so far:\n${eventsSeen(server).join("\n")})`,
  );
}

function updateNode(server: ApiServer, name: string, change: (node: Obj) => void): void {
  const node = structuredClone(server.get("nodes", undefined, name)) as Obj;
  change(node);
  server.update(node as KubeObject);
}

async function cycles(agent: AgentProcess): Promise<number> {
  return (await metricSample(agent, "ha_controller_loop_cycle_seconds_count")) ?? 0;
}

/** Wait until `count` more decision cycles ran (and, if given, until `until` has passed). */
async function waitCycles(
  agent: AgentProcess,
  count: number,
  until = 0,
): Promise<void> {
  let start: number | undefined;
  await waitFor(
    async () => {
      if (performance.now() < until) return false;
      const now = await cycles(agent);
      start ??= now;
      return now >= start + count;
    },
    15_000,
    () => `${count} more decision cycles (stderr:\n${agent.stderr()})`,
  );
}

async function waitMetric(
  agent: AgentProcess,
  metric: { name: string; labels?: Record<string, string>; value: number },
): Promise<void> {
  await waitFor(
    async () => (await metricSample(agent, metric.name, metric.labels)) === metric.value,
    15_000,
    () =>
      `${metric.name}${JSON.stringify(metric.labels ?? {})} = ${metric.value} ` +
      `(stderr:\n${agent.stderr()})`,
  );
}

/** Wait until the agent is healthy and reports pvc-1 suspended. */
async function waitSuspendedSeen(agent: AgentProcess): Promise<void> {
  await waitHealthy(agent);
  await waitMetric(agent, { name: "drbd_resource_suspended", labels: { name: "pvc-1" }, value: 1 });
}

/** Wait until the agent ran a drbdsetup state change (a forced demotion here). */
async function waitForDemotion(s: Scene, agent: AgentProcess): Promise<void> {
  await waitFor(
    async () => stateChanges(await s.drbd.calls()).length > 0,
    15_000,
    () => `drbdsetup secondary --force (stderr:\n${agent.stderr()})`,
  );
}

function stateChanges(calls: string[][]): string[][] {
  return calls.filter((argv) => argv[0] !== "events2" && argv[0] !== "show");
}

async function crashNodeB(s: Scene): Promise<void> {
  markNotReady(s.server, "node-b");
  await s.drbd.setResources([resourceAfterNodeBCrash()]);
}

async function withAgent(
  s: Scene,
  args: string[],
  body: (agent: AgentProcess) => Promise<void>,
): Promise<void> {
  const agent = await startAgent(s.server, s.drbd, args);
  try {
    await body(agent);
  } finally {
    assert.equal(await agent.stop(), 0, `agent exits 0 on SIGTERM (stderr:\n${agent.stderr()})`);
    await s.close();
  }
}

const fast = ["--fail-over-timeout", "1s", "--reconcile-interval", "200ms"];

Deno.test("own node: a lasting quorum loss taints node-a next to its other taints; quorum back removes only ours", async () => {
  const s = await scene();
  updateNode(s.server, "node-a", (n) => n.spec.taints = [foreignTaint]);
  await withAgent(s, fast, async (agent) => {
    await waitHealthy(agent);
    await s.drbd.setResources([isolatedResource("Secondary")]);

    await waitFor(
      () => taintsOf(s.server, "node-a").some((t) => t.key === lostQuorumTaint.key),
      15_000,
      () => `node-a tainted (stderr:\n${agent.stderr()})`,
    );
    assert.deepEqual(
      taintsOf(s.server, "node-a"),
      [{ key: foreignTaint.key, effect: foreignTaint.effect }, lostQuorumTaint],
    );
    const foreign = (s.server.get("nodes", undefined, "node-a") as Obj).spec.taints[0];
    assert.deepEqual(foreign, foreignTaint, "the foreign taint is kept with its value");
    await waitEvent(s.server, "Node/node-a NodeStorageQuorumLost/TaintedNode");

    await s.drbd.setResources([resourceOnNodeA()]);
    await waitFor(
      () => !taintsOf(s.server, "node-a").some((t) => t.key === lostQuorumTaint.key),
      15_000,
      () => `lost-quorum taint removed (stderr:\n${agent.stderr()})`,
    );
    assert.deepEqual(
      (s.server.get("nodes", undefined, "node-a") as Obj).spec.taints,
      [foreignTaint],
    );
    await waitEvent(s.server, "Node/node-a NodeStorageQuorumRegained/UntaintedNode");
    assert.equal(taintsOf(s.server, "node-b").length, 0, "no peer was tainted");
  });
});

Deno.test("own node: a quorum loss shorter than --fail-over-timeout causes no taint", async () => {
  const timeoutMs = 3_000;
  const s = await scene();
  await withAgent(s, [
    "--fail-over-timeout",
    `${timeoutMs}ms`,
    "--reconcile-interval",
    "200ms",
  ], async (agent) => {
    await waitHealthy(agent);
    const lostAt = performance.now();
    await s.drbd.setResources([isolatedResource("Secondary")]);
    await waitMetric(agent, { name: "drbd_device_quorum", labels: quorumSeries, value: 0 });
    await s.drbd.setResources([resourceOnNodeA()]);
    await waitMetric(agent, { name: "drbd_device_quorum", labels: quorumSeries, value: 1 });
    const regainedAt = performance.now();
    // A guard on the scenario, not on the agent: the loss must really have been short.
    assert.ok(
      regainedAt - lostAt < timeoutMs,
      `the quorum loss lasted ${Math.round(regainedAt - lostAt)}ms, not less than ${timeoutMs}ms`,
    );

    // Cycles that run after the timeout would have expired must not taint
    // (any timer started before quorum came back).
    await waitCycles(agent, 2, regainedAt + timeoutMs);
    const nodePuts = s.server.requests.filter((r) => r.method === "PUT" && r.resource === "nodes");
    assert.deepEqual(nodePuts, [], "no node update");
    assert.deepEqual(s.server.writes(), [], "no write at all");
    assert.deepEqual(taintsOf(s.server, "node-a"), []);
  });
});

Deno.test("suspended demotion: a quorum-suspended Primary whose local pod terminates is demoted by force; user-suspended is not", async () => {
  const s = await scene();
  const userSuspended = resourceOnNodeA({
    role: "Primary",
    suspended: { user: true, noData: false, fencing: false, quorum: false },
    mayPromote: false,
    devices: [{ ...device, diskState: "UpToDate", client: false, open: true, quorum: true }],
    connections: [
      peer("node-b", 1, { connected: true }),
      peer("node-c", 2, { connected: true, diskless: true }),
    ],
  });
  await s.drbd.setResources([userSuspended]);
  consumerOnNodeA(s.server);
  // The kubelet has not finished the graceful delete: the pod is terminating.
  s.server.delete("pods", "default", "web-0", { gracePeriodSeconds: 600 });
  assert.ok((s.server.get("pods", "default", "web-0") as Obj).metadata.deletionTimestamp);

  await withAgent(s, fast, async (agent) => {
    await waitSuspendedSeen(agent);
    await waitCycles(agent, 3);
    assert.deepEqual(stateChanges(await s.drbd.calls()), [], "user-suspended: no demotion");

    await s.drbd.setResources([isolatedResource("Primary")]);
    await waitForDemotion(s, agent);
    await waitEvent(s.server, "PersistentVolume/pvc-1 VolumeWithoutQuorum/ForcedVolumeDemotion");
    await waitEvent(
      s.server,
      "PersistentVolumeClaim/data-web-0 VolumeWithoutQuorum/ForcedVolumeDemotion",
    );
    assert.deepEqual(stateChanges(await s.drbd.calls()), [["secondary", "--force", "pvc-1"]]);
    const event = (s.server.list("events.k8s.io/events") as Obj[])
      .find((e) => e.regarding.kind === "PersistentVolumeClaim")!;
    assert.deepEqual(
      [event.type, event.regarding.namespace, event.metadata.namespace],
      ["Warning", "default", "default"],
    );
    // Metrics are updated when the cycle that acted ends, just after its Events.
    await waitMetric(agent, {
      name: "ha_controller_actions_total",
      labels: { kind: "force-demote", result: "done" },
      value: 1,
    });
  });
});

Deno.test("suspended demotion: a Running consumer keeps its Primary; once the pod is force-deleted it is demoted", async () => {
  const s = await scene();
  consumerOnNodeA(s.server);
  await s.drbd.setResources([isolatedResource("Primary")]);
  await withAgent(s, fast, async (agent) => {
    await waitSuspendedSeen(agent);
    // Cycles after --fail-over-timeout (1s) passed: the Running pod still blocks.
    await waitCycles(agent, 2, performance.now() + 1_500);
    assert.deepEqual(stateChanges(await s.drbd.calls()), [], "a Running consumer: no demotion");

    // Force-deleted from the API while its containers hang on the frozen device.
    s.server.delete("pods", "default", "web-0", { gracePeriodSeconds: 0 });
    assert.equal(s.server.get("pods", "default", "web-0"), undefined);
    await waitForDemotion(s, agent);
    assert.deepEqual(stateChanges(await s.drbd.calls()), [["secondary", "--force", "pvc-1"]]);
    await waitEvent(s.server, "PersistentVolume/pvc-1 VolumeWithoutQuorum/ForcedVolumeDemotion");
  });
});

Deno.test("suspended demotion: a suspended Primary that no local pod uses at all is demoted after --fail-over-timeout", async () => {
  const s = await scene(); // web-0, the claim's pod, runs on node-b: none on node-a
  await s.drbd.setResources([isolatedResource("Primary")]);
  await withAgent(s, fast, async (agent) => {
    await waitForDemotion(s, agent);
    assert.deepEqual(stateChanges(await s.drbd.calls()), [["secondary", "--force", "pvc-1"]]);
    // The action's log line follows the call.
    await waitFor(
      () =>
        /suspended \(quorum\) for \d[.\d]*s and no local pod uses it, so it is demoted by force/
          .test(agent.stderr()),
      15_000,
      () => `the demotion's log line (stderr:\n${agent.stderr()})`,
    );
    await waitEvent(s.server, "PersistentVolume/pvc-1 VolumeWithoutQuorum/ForcedVolumeDemotion");
  });
});

Deno.test("force-I/O: node-a is tainted force-io-error and the local consumer is evicted with its UID", async () => {
  const s = await scene();
  const podUid = consumerOnNodeA(s.server);
  const forcing = resourceOnNodeA({
    forceIoFailures: true,
    mayPromote: false,
    promotionScore: 0,
    devices: [{ ...device, diskState: "UpToDate", client: false, open: true, quorum: true }],
  });
  await s.drbd.setResources([forcing]);
  await withAgent(s, fast, async (agent) => {
    await waitHealthy(agent);
    await waitFor(
      () => s.server.requests.some((r) => r.verb === "evict"),
      15_000,
      () => `an eviction (stderr:\n${agent.stderr()})`,
    );
    await waitFor(
      () => taintsOf(s.server, "node-a").some((t) => t.key === forceIoTaint.key),
      15_000,
      "node-a tainted force-io-error",
    );
    assert.deepEqual(taintsOf(s.server, "node-a"), [forceIoTaint]);
    const evictions = s.server.requests.filter((r) => r.verb === "evict");
    assert.equal(evictions.length, 1, "evicted once");
    const eviction = evictions[0];
    assert.deepEqual(
      {
        path: eviction.path,
        apiVersion: (eviction.body as Obj).apiVersion,
        kind: (eviction.body as Obj).kind,
        uid: (eviction.body as Obj).deleteOptions?.preconditions?.uid,
        status: eviction.status,
      },
      {
        path: "/api/v1/namespaces/default/pods/web-0/eviction",
        apiVersion: "policy/v1",
        kind: "Eviction",
        uid: podUid,
        status: 201,
      },
    );
    assert.ok(
      (s.server.get("pods", "default", "web-0") as Obj).metadata.deletionTimestamp,
      "the eviction started a graceful delete",
    );
    await waitEvent(s.server, "Node/node-a VolumeForcingIoErrors/TaintedNode");
    await waitEvent(s.server, "Pod/web-0 VolumeForcingIoErrors/EvictedPod");
  });
});

Deno.test("ignore annotation: a crash leaves an annotated pod and its VolumeAttachment alone", async () => {
  const s = await scene();
  const pod = structuredClone(s.server.get("pods", "default", "web-0")) as Obj;
  pod.metadata.annotations = { [ignoreAnnotation]: "" };
  s.server.update(pod);
  await withAgent(s, fast, async (agent) => {
    await waitHealthy(agent);
    await crashNodeB(s);
    await waitFor(
      () => taintsOf(s.server, "node-b").length > 0,
      15_000,
      () => `node-b tainted: the fail-over ran (stderr:\n${agent.stderr()})`,
    );
    await waitCycles(agent, 3);
    assert.deepEqual(taintsOf(s.server, "node-b"), [lostQuorumTaint]);
    const touched = s.server.requests.filter((r) =>
      (r.resource === "pods" && r.method !== "GET") ||
      (r.resource === "volumeattachments" && r.method !== "GET")
    );
    assert.deepEqual(touched.map((r) => `${r.method} ${r.path}`), [], "no pod or VA write");
    const still = s.server.get("pods", "default", "web-0") as Obj;
    assert.equal(still.metadata.uid, s.podUid);
    assert.equal(still.metadata.deletionTimestamp, undefined);
    assert.ok(
      s.server.get("volumeattachments", undefined, "csi-pvc-1-node-b"),
      "the VolumeAttachment of a pod that is left alone is kept",
    );
  });
});

Deno.test("pause: an annotated node holds back the crash fail-over until the annotation is removed", async () => {
  const s = await scene();
  updateNode(s.server, "node-a", (n) => n.metadata.annotations = { [pauseAnnotation]: "true" });
  await withAgent(s, fast, async (agent) => {
    await waitHealthy(agent);
    await waitMetric(agent, {
      name: "ha_controller_held_back",
      labels: { reason: "paused" },
      value: 1,
    });
    await crashNodeB(s);
    await waitMetric(agent, {
      name: "drbd_resource_maypromote",
      labels: { name: "pvc-1" },
      value: 1,
    });
    // A cycle has seen the crash. Well past the 1s fail-over timeout from
    // then, a few more cycles.
    const seenAt = performance.now();
    await waitCycles(agent, 3, seenAt + 2_000);
    assert.deepEqual(s.server.writes(), [], "paused: zero writes");
    assert.equal(
      await metricSample(agent, "ha_controller_held_back", { reason: "paused" }),
      1,
    );
    assert.match(agent.stderr(), /holding back all actions: actions paused by annotation/);
    const status = await runMain(
      ["status", "--node-name", "node-a", "--kubeconfig", s.server.kubeconfigPath],
      s,
    );
    assert.equal(status.code, 0, status.stderr);
    assert.match(
      status.stdout,
      /^HELD BACK actions paused by annotation drbd\.linbit\.com\/ha-controller-paused on node node-a$/m,
    );
    assert.deepEqual(s.server.writes(), [], "status writes nothing either");

    updateNode(s.server, "node-a", (n) => delete n.metadata.annotations[pauseAnnotation]);
    await waitFor(
      () => s.server.get("volumeattachments", undefined, "csi-pvc-1-node-b") === undefined,
      15_000,
      () => `fail-over after the pause (stderr:\n${agent.stderr()})`,
    );
    assert.equal(s.server.get("pods", "default", "web-0"), undefined, "pod force-deleted");
    assert.deepEqual(taintsOf(s.server, "node-b"), [lostQuorumTaint]);
    // The metrics follow once the cycle that acted has finished.
    await waitFor(
      async () => (await metricSample(agent, "ha_controller_held_back")) === undefined,
      10_000,
      "no longer held back",
    );
  });
});

Deno.test("API server gone: the agent keeps running, reports unhealthy with the reason, and stops cleanly", async () => {
  const s = await scene();
  await withAgent(s, fast, async (agent) => {
    await waitHealthy(agent);
    await s.server.close();
    let last = { status: 0, body: "" };
    // Requests that reached the server while it closed were answered 503;
    // once it is gone, the reason the agent gives is the refused connection.
    await waitFor(
      async () => {
        last = await healthz(agent);
        return last.status === 500 &&
          /^caches not synced: node node-a: .*Connection refused/.test(last.body);
      },
      15_000,
      () => `unhealthy because the connection is refused (last: ${last.status} ${last.body})`,
    );
    await waitFor(
      () => / WARN {2}kube: /.test(agent.stderr()),
      10_000,
      () => `a warning on stderr (stderr:\n${agent.stderr()})`,
    );
    // Still alive and deciding: the cycle counter moves on.
    await waitCycles(agent, 2);
    assert.equal((await healthz(agent)).status, 500);
  });
});

Deno.test("DRBD not loaded: the agent keeps running and healthy, holds back and writes nothing", async () => {
  const s = await scene();
  await s.drbd.setModuleMissing(true);
  await withAgent(s, fast, async (agent) => {
    await waitHealthy(agent);
    await waitMetric(agent, {
      name: "ha_controller_held_back",
      labels: { reason: "drbd-unavailable" },
      value: 1,
    });
    await waitMetric(agent, {
      name: "ha_controller_drbd_availability",
      labels: { availability: "not-loaded" },
      value: 1,
    });
    // The warning names the other cause drbdsetup cannot tell apart.
    assert.match(
      agent.stderr(),
      /WARN .*DRBD not loaded: nothing to watch; checking again .*DRBD 9\.1 or older, which answers only in the host's network namespace: run the pod with hostNetwork/,
    );
    await crashNodeB(s);
    await waitCycles(agent, 3, performance.now() + 1_500);
    const health = await healthz(agent);
    assert.deepEqual(health, { status: 200, body: "ok\n" }, "documented: health ignores DRBD");
    assert.deepEqual(s.server.writes(), [], "no writes");
    assert.deepEqual(stateChanges(await s.drbd.calls()), [], "no drbdsetup state change");

    const status = await runMain(
      ["status", "--node-name", "node-a", "--kubeconfig", s.server.kubeconfigPath],
      s,
    );
    assert.equal(status.code, 0, status.stderr);
    const lines = status.stdout.split("\n");
    assert.equal(lines[0], "NODE node-a");
    // The test's permissions allow no :8000 (the agent listens elsewhere): a one-shot view.
    assert.match(
      lines[1],
      /^SOURCE one-shot \(not asking a running agent at 127\.0\.0\.1:8000: no --allow-net for it; /,
    );
    assert.equal(lines[2], "DRBD not-loaded: DRBD not loaded: nothing to watch");
    assert.equal(lines[3], "CLUSTER synced");
    assert.match(lines[4], /^HELD BACK DRBD state unavailable \(not-loaded\)/);
    assert.ok(lines.includes("No DRBD resources on this node."), status.stdout);
    assert.ok(lines.includes("PLAN nothing to do"), status.stdout);
  });
});

Deno.test("status command: prints the crash scenario as JSON and as a table, writes nothing", async () => {
  const s = await scene();
  try {
    await crashNodeB(s);
    const base = ["status", "--node-name", "node-a", "--kubeconfig", s.server.kubeconfigPath];

    const json = await runMain([...base, "-o", "json"], s);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    const row = report.resources[0];
    assert.deepEqual(
      {
        resource: row.resource,
        role: row.role,
        mayPromote: row.mayPromote,
        claim: row.claim,
        consumers: row.consumers,
      },
      {
        resource: "pvc-1",
        role: "Secondary",
        mayPromote: true,
        claim: "default/data-web-0",
        consumers: ["default/web-0"],
      },
    );
    assert.ok(
      (row.peers as string[]).some((p) => p.startsWith("node-b=")),
      `peers name node-b: ${row.peers}`,
    );
    assert.match(row.decision, /node-b/);
    assert.equal(report.node, "node-a");
    assert.equal(report.heldBack, null);

    const table = await runMain(base, s);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.split("\n");
    assert.ok(
      lines.some((l) => /^RESOURCE {2}ROLE {2}/.test(l)),
      `table header (stdout:\n${table.stdout})`,
    );
    const row2 = lines.find((l) => l.startsWith("pvc-1 "));
    assert.ok(row2, `a row for pvc-1 (stdout:\n${table.stdout})`);
    assert.match(row2, /Secondary/);
    assert.match(row2, /default\/web-0/);

    assert.deepEqual(s.server.writes(), [], "status writes nothing");
    assert.deepEqual(stateChanges(await s.drbd.calls()), [], "no drbdsetup state change");
  } finally {
    await s.close();
  }
});

Deno.test("status command: asks the running agent, which shows its own timers; without one, a one-shot view", async () => {
  const s = await scene();
  // A long fail-over timeout keeps the agent's timer running while status asks.
  await withAgent(
    s,
    ["--fail-over-timeout", "5m", "--reconcile-interval", "200ms"],
    async (agent) => {
      await waitHealthy(agent);
      await crashNodeB(s);
      const health = new URL(agent.healthUrl).host;
      const base = ["status", "--node-name", "node-a", "--kubeconfig", s.server.kubeconfigPath];
      const asked = () =>
        runMain([...base, "--health-bind-address", health, "-o", "json"], {
          ...s,
          healthHostPort: health,
        });
      let report: Obj;
      await waitFor(
        async () => {
          const run = await asked();
          if (run.code !== 0) return false;
          report = JSON.parse(run.stdout);
          return report.timers.some((t: Obj) => t.key === "pvc-1/node-b");
        },
        15_000,
        () => `the agent's fail-over timer in its status (stderr:\n${agent.stderr()})`,
      );
      assert.equal(report!.source.kind, "running-agent");
      const timer = report!.timers.find((t: Obj) => t.key === "pvc-1/node-b");
      assert.equal(timer.timer, "fail-over");
      assert.match(report!.resources[0].decision, /waiting .* of 5m0s before failing over node-b/);

      const table = await runMain([...base, "--health-bind-address", health], {
        ...s,
        healthHostPort: health,
      });
      assert.equal(table.code, 0, table.stderr);
      assert.match(
        table.stdout,
        /^NODE node-a\nSOURCE running agent \(pid \d+, serving on 127\.0\.0\.1:\d+; decided /,
      );
      assert.match(table.stdout, /\nTIMERS\n {2}fail-over pvc-1\/node-b: running for \d/);

      // No agent asked: a one-shot view, whose timer starts now.
      const once = await runMain([...base, "--health-bind-address=", "-o", "json"], s);
      assert.equal(once.code, 0, once.stderr);
      const fresh = JSON.parse(once.stdout);
      assert.deepEqual(fresh.source.kind, "one-shot");
      assert.match(fresh.source.detail, /--health-bind-address is empty/);
      const freshTimer = fresh.timers.find((t: Obj) => t.key === "pvc-1/node-b");
      assert.equal(freshTimer?.runningFor, "0s");
    },
  );
});

Deno.test("command line: --help lists every flag, --version prints the version, a bad duration exits 2", async () => {
  // drbdsetup on PATH, as on a node: else Deno notes on stderr that --allow-run cannot resolve it.
  const drbd = await FakeDrbd.create();
  try {
    await commandLine(drbd);
  } finally {
    await drbd.cleanup();
  }
});

async function commandLine(drbd: FakeDrbd): Promise<void> {
  const help = await runMain(["--help"], { drbd });
  assert.equal(help.code, 0, help.stderr);
  for (const flag of flagDefinitions) {
    assert.match(
      help.stdout,
      new RegExp(`^  --${flag.name}\\b`, "m"),
      `--help shows --${flag.name}`,
    );
  }
  assert.equal(help.stderr, "");

  const shown = await runMain(["--version"], { drbd });
  assert.deepEqual(shown, { code: 0, stdout: `ha-controller ${version}\n`, stderr: "" });
  assert.equal(version, "0.1.0");

  const bad = await runMain(["--node-name", "node-a", "--fail-over-timeout=5x"], { drbd });
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, "");
  const lines = bad.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line on stderr: ${bad.stderr}`);
  assert.match(
    lines[0],
    /^ha-controller: .*"5x".*--fail-over-timeout.*\(run 'ha-controller --help' for usage\)$/,
  );
}
