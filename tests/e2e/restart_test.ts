/**
 * End to end: the agent's own life cycle around a fail-over. An agent killed
 * in the middle of a fail-over and started again finishes it without acting
 * on anything twice; agents in dry-run only print what they would do; agents
 * paused by the node annotation do nothing until it is removed.
 *
 * Every scenario crashes the pod's node. Kubernetes runs in real time
 * (scale 1) so the agents can judge the crashed kubelet by its Lease, which
 * is made short; the DRBD peers notice the crash only once that Lease ran
 * out, so the survivors force-delete the pod rather than evict it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SimCluster } from "../sim/cluster.ts";
import type { RequestRecord } from "../sim/apiserver/mod.ts";
import { formatTimeline } from "../sim/timeline.ts";
import { metricSample, metricValue } from "../agent/harness.ts";
import { waitFor } from "../helpers.ts";
import {
  eventReason,
  lostQuorumTaintKey,
  pauseAnnotation,
  reportingController,
} from "../../lib/names.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const failOverTimeoutMs = 1_000;

const agentArgs = [
  "--fail-over-timeout",
  `${failOverTimeoutMs / 1000}s`,
  "--reconcile-interval",
  "1s",
  "--drbd-status-interval",
  "1s",
];

const constants = {
  // The attach-detach controller learns of deleted VolumeAttachments within 1 s.
  reconcilerSyncDuration: 1_000,
  // A dead kubelet's Lease is overdue after 1.5 s (1.5 renew intervals).
  nodeLeaseRenewInterval: 1_000,
  nodeLeaseDurationSeconds: 4,
};

/**
 * The node dies: kubelet and agent stop at once; its DRBD peers lose it once
 * its kubelet Lease is overdue (as after a ping timeout that long).
 */
async function crashNode(cluster: SimCluster, node: string): Promise<void> {
  cluster.timeline.mark(`node ${node} crashed`);
  cluster.controllers.kubelet(node).crash();
  await cluster.killAgent(node);
  const lease: Obj = cluster.server.get("leases", "kube-node-lease", node);
  const renewed = Date.parse(lease.spec.renewTime);
  const overdueMs = 1.5 * lease.spec.leaseDurationSeconds * 1000 / 4 + 500;
  await waitFor(
    () => cluster.clock.now() - renewed > overdueMs,
    overdueMs + 5_000,
    `the kubelet Lease of ${node} overdue`,
  );
  cluster.drbd.crash(node, { detection: "reset" });
  cluster.timeline.mark(`DRBD peers lost ${node}`);
}

/** ha-controller's Events (events.k8s.io/v1) with `reason` about the object named `about`. */
function agentEvents(cluster: SimCluster, of: { reason: string; about: string }): Obj[] {
  return cluster.server.list("events.k8s.io/events").filter((e: Obj) =>
    e.reportingController === reportingController && e.reason === of.reason &&
    e.regarding?.name === of.about
  );
}

function taintKeys(cluster: SimCluster, node: string): string[] {
  const obj: Obj = cluster.server.get("nodes", undefined, node);
  return (obj?.spec?.taints ?? []).map((t: Obj) => t.key);
}

/**
 * HTTP writes from `from` on. The simulated controllers write in process,
 * not over HTTP, and the tests below change objects in process too: every
 * HTTP write is an agent's.
 */
function agentWrites(cluster: SimCluster, from = 0): RequestRecord[] {
  return cluster.server.requests.slice(from).filter((r) => r.method !== "GET");
}

function succeeded(r: RequestRecord): boolean {
  return r.status >= 200 && r.status < 300;
}

async function cyclesOf(cluster: SimCluster, node: string): Promise<number> {
  return (await metricValue(cluster.agent(node)!, "ha_controller_loop_cycle_seconds_count")) ?? 0;
}

/** Wait until the agent on every one of `nodes` has finished `cycles` more decision cycles. */
async function waitForCycles(cluster: SimCluster, of: { nodes: string[]; cycles: number }) {
  const { nodes, cycles } = of;
  const from = await Promise.all(nodes.map((n) => cyclesOf(cluster, n)));
  await waitFor(
    async () => {
      const now = await Promise.all(nodes.map((n) => cyclesOf(cluster, n)));
      return now.every((c, i) => c >= from[i] + cycles);
    },
    30_000,
    `${cycles} more decision cycles of the agents on ${nodes.join(", ")}`,
  );
}

/** Set or remove the pause annotation on every node, as an operator would. */
function setPaused(cluster: SimCluster, paused: boolean): void {
  for (const name of cluster.nodes) {
    const node: Obj = cluster.server.get("nodes", undefined, name);
    const annotations = { ...node.metadata.annotations };
    if (paused) annotations[pauseAnnotation] = "true";
    else delete annotations[pauseAnnotation];
    node.metadata.annotations = annotations;
    cluster.server.update(node);
  }
}

async function withCluster(
  options: Parameters<typeof SimCluster.start>[0],
  body: (cluster: SimCluster) => Promise<void>,
): Promise<void> {
  const cluster = await SimCluster.start(options);
  try {
    await body(cluster);
  } catch (err) {
    console.error(formatTimeline(cluster.timeline.milestones()));
    throw err;
  } finally {
    await cluster.stop();
  }
}

Deno.test("restart: an agent killed in the middle of a fail-over is started again and completes it, acting on nothing twice", async () => {
  await withCluster({ constants, agentArgs }, async (cluster) => {
    // The fail-over is node-b's alone: node-c's agent is not running.
    await cluster.killAgent("node-c");
    cluster.deployStatefulSet("web");
    const node = await cluster.waitForRunningPod("web-0");
    assert.equal(node, "node-a");
    const uid = cluster.pod("web-0")!.metadata.uid;
    const attachment: Obj = cluster.server.list("volumeattachments")
      .find((va: Obj) => va.spec.nodeName === node);

    // Hold the first pod deletion on the way to the server: the agent has
    // tainted the node and sent the deletion, but not heard back. It reaches
    // the server only once the restarted agent has removed the pod, however
    // long that agent takes to start on a loaded machine.
    let releaseDeletion = () => {};
    const deletionHeld = new Promise<void>((resolve) => releaseDeletion = resolve);
    cluster.server.faults.add({ verb: "delete", resource: "pods", until: deletionHeld, times: 1 });
    await crashNode(cluster, node);
    let inFlight: RequestRecord | undefined;
    await waitFor(
      () => {
        inFlight = cluster.server.requests.find((r) =>
          r.verb === "delete" && r.resource === "pods"
        );
        return inFlight !== undefined;
      },
      20_000,
      "node-b's agent sending the pod deletion",
    );
    assert.equal(inFlight!.status, 0, "Expected the pod deletion to be still in flight");
    assert.deepEqual(taintKeys(cluster, node), [lostQuorumTaintKey]);
    assert.equal(cluster.pod("web-0")?.metadata.uid, uid);
    assert.ok(cluster.server.get("volumeattachments", undefined, attachment.metadata.name));

    await cluster.killAgent("node-b");
    cluster.timeline.mark("agent on node-b killed");
    await cluster.startAgent("node-b");
    cluster.timeline.mark("agent on node-b started again");

    const newNode = await cluster.waitForRunningPod("web-0", { notOn: node, timeoutMs: 60_000 });
    assert.equal(newNode, "node-b");
    const replacement = cluster.pod("web-0")!.metadata.uid;
    assert.equal(inFlight!.status, 0, "Expected the killed agent's pod deletion still held");
    releaseDeletion();
    await waitFor(
      () =>
        cluster.server.get("volumeattachments", undefined, attachment.metadata.name) === undefined,
      20_000,
      "the VolumeAttachment on node-a gone",
    );
    // The deletion the killed agent sent reaches the server at last.
    await waitFor(() => inFlight!.status !== 0, 20_000, "the held pod deletion answered");

    const writes = agentWrites(cluster);
    // The pod: deleted once (grace 0, its UID as precondition); the held
    // request of the killed agent found it gone or replaced.
    const podDeletes = writes.filter((r) => r.verb === "delete" && r.resource === "pods");
    for (const r of podDeletes) {
      assert.equal((r.body as Obj).preconditions.uid, uid);
      assert.equal((r.body as Obj).gracePeriodSeconds, 0);
    }
    assert.equal(podDeletes.filter(succeeded).length, 1, "successful pod deletions");
    assert.ok(
      [404, 409].includes(inFlight!.status),
      `Expected the held deletion to find the pod gone or replaced, got ${inFlight!.status}`,
    );
    assert.equal(cluster.pod("web-0")?.metadata.uid, replacement);
    assert.equal(cluster.pod("web-0")?.metadata.deletionTimestamp, undefined);
    // The taint: added once, by the killed agent; the restarted one found it there.
    const taintUpdates = writes.filter((r) => r.resource === "nodes" && succeeded(r));
    assert.deepEqual(taintUpdates.map((r) => `${r.method} ${r.name}`), [`PUT ${node}`]);
    assert.deepEqual(taintKeys(cluster, node), [lostQuorumTaintKey]);
    assert.equal(
      agentEvents(cluster, { reason: eventReason.nodeStorageQuorumLost, about: node }).length,
      1,
    );
    // The VolumeAttachment: deleted once, by the restarted agent.
    const vaDeletes = writes.filter((r) => r.resource === "volumeattachments" && succeeded(r));
    assert.equal(vaDeletes.length, 1);
    assert.equal((vaDeletes[0].body as Obj).preconditions.uid, attachment.metadata.uid);
    assert.equal(
      agentEvents(cluster, {
        reason: eventReason.volumeWithoutQuorum,
        about: attachment.metadata.name,
      }).length,
      1,
    );
    assert.equal(
      agentEvents(cluster, { reason: eventReason.volumeWithoutQuorum, about: "web-0" }).length,
      1,
    );
  });
});

Deno.test("dry-run: after a crash the agents print their plan and write nothing", async () => {
  await withCluster({ constants, agentArgs: ["--dry-run", ...agentArgs] }, async (cluster) => {
    cluster.deployStatefulSet("web");
    const node = await cluster.waitForRunningPod("web-0");
    assert.equal(node, "node-a");
    const pod = cluster.pod("web-0")!;
    const attachment: Obj = cluster.server.list("volumeattachments")
      .find((va: Obj) => va.spec.nodeName === node);
    await crashNode(cluster, node);

    const survivors = cluster.nodes.filter((n) => n !== node);
    const plan = [
      `dry-run: would taint node ${node} ${lostQuorumTaintKey}:NoSchedule: `,
      `dry-run: would force-delete pod default/web-0 (uid ${pod.metadata.uid}, grace 0s): `,
      `dry-run: would delete volumeattachment ${attachment.metadata.name} ` +
      `(uid ${attachment.metadata.uid}, grace 0s): `,
    ];
    const printed = (survivor: string) =>
      cluster.agent(survivor)!.stdout().split("\n").filter((l) => l.startsWith("dry-run: "));
    await waitFor(
      () => survivors.every((s) => plan.every((p) => printed(s).some((l) => l.startsWith(p)))),
      30_000,
      `the plan printed by the agents on ${survivors.join(", ")}`,
    );
    // More cycles with the same plan: each intended action is printed once.
    await waitForCycles(cluster, { nodes: survivors, cycles: 3 });
    for (const survivor of survivors) {
      assert.equal(printed(survivor).length, plan.length, printed(survivor).join("\n"));
    }

    assert.deepEqual(agentWrites(cluster), [], "Expected no writes by any agent");
    for (const n of cluster.nodes) {
      const changes = (await cluster.drbd.fake(n).calls()).filter((a) => a[0] === "secondary");
      assert.deepEqual(changes, [], `drbdsetup secondary on ${n}`);
    }
    assert.deepEqual(taintKeys(cluster, node).filter((k) => k.startsWith("drbd.linbit.com/")), []);
    assert.equal(cluster.pod("web-0")?.metadata.uid, pod.metadata.uid);
    assert.equal(cluster.pod("web-0")?.metadata.deletionTimestamp, undefined);
    assert.ok(cluster.server.get("volumeattachments", undefined, attachment.metadata.name));
  });
});

Deno.test("pause: with every node annotated the agents write nothing after a crash; without it they fail over", async () => {
  await withCluster({ constants, agentArgs }, async (cluster) => {
    cluster.deployStatefulSet("web");
    const node = await cluster.waitForRunningPod("web-0");
    assert.equal(node, "node-a");
    const uid = cluster.pod("web-0")!.metadata.uid;
    const attachment: Obj = cluster.server.list("volumeattachments")
      .find((va: Obj) => va.spec.nodeName === node);

    setPaused(cluster, true);
    cluster.timeline.mark("every node paused");
    await waitFor(
      async () => {
        const held = await Promise.all(
          cluster.nodes.map((n) =>
            metricValue(cluster.agent(n)!, 'ha_controller_held_back{reason="paused"}')
          ),
        );
        return held.every((v) => v === 1);
      },
      20_000,
      "every agent holding back because it is paused",
    );
    const from = cluster.server.requests.length;
    await crashNode(cluster, node);

    // The survivors see node-a lost well past the fail-over timeout: their
    // decision cycles show the connection down, twice the fail-over timeout
    // passes, and then each runs two more cycles (so at least one whole
    // cycle starts after that).
    const survivors = cluster.nodes.filter((n) => n !== node);
    await waitFor(
      async () => {
        const connected = await Promise.all(
          survivors.map((n) =>
            metricSample(cluster.agent(n)!, "drbd_connection_state", {
              conn_name: cluster.drbd.connectionName(node),
              drbd_connection_state: "Connected",
            })
          ),
        );
        return connected.every((v) => v === 0);
      },
      20_000,
      `the agents on ${survivors.join(", ")} seeing ${node} lost`,
    );
    const lostAt = performance.now();
    await waitFor(
      () => performance.now() - lostAt > 2 * failOverTimeoutMs,
      10_000,
      "twice the fail-over timeout",
    );
    await waitForCycles(cluster, { nodes: survivors, cycles: 2 });
    assert.deepEqual(agentWrites(cluster, from), [], "Expected no writes by paused agents");
    assert.deepEqual(taintKeys(cluster, node).filter((k) => k.startsWith("drbd.linbit.com/")), []);
    assert.equal(cluster.pod("web-0")?.metadata.uid, uid);
    assert.equal(cluster.pod("web-0")?.metadata.deletionTimestamp, undefined);
    assert.ok(cluster.server.get("volumeattachments", undefined, attachment.metadata.name));

    setPaused(cluster, false);
    cluster.timeline.mark("pause lifted");
    const newNode = await cluster.waitForRunningPod("web-0", { notOn: node, timeoutMs: 60_000 });
    assert.notEqual(cluster.pod("web-0")!.metadata.uid, uid);
    assert.notEqual(newNode, node);
    assert.deepEqual(taintKeys(cluster, node).filter((k) => k.startsWith("drbd.linbit.com/")), [
      lostQuorumTaintKey,
    ]);
    const podDeletes = agentWrites(cluster, from).filter((r) =>
      r.verb === "delete" && r.resource === "pods" && succeeded(r)
    );
    assert.equal(podDeletes.length, 1);
    assert.equal((podDeletes[0].body as Obj).gracePeriodSeconds, 0);
    assert.equal((podDeletes[0].body as Obj).preconditions.uid, uid);
  });
});
