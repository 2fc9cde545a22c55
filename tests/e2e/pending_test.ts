/**
 * End to end: pods that are Pending on a node the survivors see as lost.
 *
 * The upstream HA controller's users saw a create/delete loop (its PR #25):
 * a node back from a reboot whose LINSTOR satellite is slow has no DRBD
 * resources yet, a replacement is scheduled there and waits Pending, the
 * survivors (who see the node's DRBD still disconnected) fail it over, it is
 * recreated there, and so on. Here that node keeps the lost-quorum taint
 * while a volume is attached to it without its DRBD resource, and the
 * survivors leave a pod that is Pending on a node whose kubelet answers; it
 * starts there once the satellite configured DRBD. A pod Pending on a dead
 * node, which never starts, is failed over.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SimCluster } from "../sim/cluster.ts";
import { type KubeObject, pathString } from "../sim/apiserver/objects.ts";
import { taintsOf } from "../sim/controllers/kube_util.ts";
import { formatTimeline } from "../sim/timeline.ts";
import { waitFor } from "../helpers.ts";
import { lostQuorumTaintKey } from "../../lib/names.ts";

const agentArgs = ["--fail-over-timeout", "1s", "--reconcile-interval", "1s"];
const constants = { reconcilerSyncDuration: 1_000 };
const hold = { key: "example.com/maintenance", value: "test", effect: "NoSchedule" };

function setTaints(cluster: SimCluster, node: string, taints: unknown[]): void {
  const stored = cluster.server.get("nodes", undefined, node)!;
  const spec = (stored as { spec?: Record<string, unknown> }).spec ?? {};
  cluster.server.update({ ...stored, spec: { ...spec, taints } } as KubeObject);
}

function hasLostQuorum(cluster: SimCluster, node: string): boolean {
  return taintsOf(cluster.server.get("nodes", undefined, node)!).some((t) =>
    t.key === lostQuorumTaintKey
  );
}

/** Agent requests that removed web-0 (delete or eviction), in order. */
function removals(cluster: SimCluster): string[] {
  return cluster.server.requests.filter((r) =>
    r.user?.startsWith("system:serviceaccount:") && r.resource === "pods" && r.name === "web-0" &&
    (r.method === "DELETE" || r.subresource === "eviction")
  ).map((r) => `${r.method} ${r.path}`);
}

/**
 * web-0 fails over from its node, which then boots with DRBD not yet
 * configured; the replacement is moved back onto it (the other nodes held)
 * and waits there Pending. Returns that node and the Pending pod's uid.
 */
async function pendingOnRebootedNode(cluster: SimCluster) {
  cluster.deployStatefulSet("web");
  const first = await cluster.waitForRunningPod("web-0");
  const other = cluster.nodes.filter((n) => n !== first);

  // The pod's node crashes; web-0 fails over to a survivor.
  await cluster.crash(first);
  await cluster.waitForRunningPod("web-0", { notOn: first, timeoutMs: 60_000 });
  assert.ok(hasLostQuorum(cluster, first), `${first} tainted by the survivors`);

  // It boots again, but its satellite has not configured DRBD yet.
  await cluster.restore(first, { drbdConfigured: false });
  // Nothing is attached there any more: its own agent lifts the taint.
  await waitFor(() => !hasLostQuorum(cluster, first), 30_000, `${first} untainted`);

  // The replacement is scheduled onto the rebooted node (the others are held).
  for (const n of other) setTaints(cluster, n, [hold]);
  const before = cluster.pod("web-0")!.metadata.uid;
  cluster.server.delete("pods", "default", "web-0");
  await waitFor(
    () => {
      const pod = cluster.pod("web-0");
      return pod !== undefined && pod.metadata.uid !== before &&
        pathString(pod, "spec.nodeName") === first;
    },
    60_000,
    () => `web-0 scheduled onto ${first}:\n${formatTimeline(cluster.timeline.milestones())}`,
  );
  const pending = cluster.pod("web-0")!;
  assert.equal(pathString(pending, "status.phase"), "Pending");
  return { first, other, uid: pending.metadata.uid! };
}

Deno.test("a replacement Pending on a node whose satellite is slow is left to start there: no create/delete loop", async () => {
  const cluster = await SimCluster.start({ agentArgs, constants });
  try {
    const { first, uid } = await pendingOnRebootedNode(cluster);
    // Its volume is attached there; the survivors taint the node (its DRBD
    // is still disconnected), and its own agent keeps that taint.
    await waitFor(() => hasLostQuorum(cluster, first), 30_000, `${first} tainted again`);
    const removedBefore = removals(cluster).length;

    // Many decision cycles later: the pod is still the same, never removed,
    // the taint never lifted.
    const until = performance.now() + 10_000;
    await waitFor(
      () => {
        assert.ok(hasLostQuorum(cluster, first), `${first} stays tainted`);
        assert.equal(cluster.pod("web-0")?.metadata.uid, uid, "same pod");
        return performance.now() >= until;
      },
      30_000,
      "10 s of watching",
    );
    assert.deepEqual(removals(cluster).slice(removedBefore), [], "the Pending pod is left alone");

    // The satellite configures DRBD: the pod starts where it is, the taint goes.
    cluster.drbd.configure(first);
    const ran = await cluster.waitForRunningPod("web-0", { timeoutMs: 60_000 });
    assert.equal(ran, first);
    assert.equal(cluster.pod("web-0")!.metadata.uid, uid);
    await waitFor(() => !hasLostQuorum(cluster, first), 30_000, `${first} untainted at last`);
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});

Deno.test("a pod Pending on a node that died is failed over: it would never start there", async () => {
  const cluster = await SimCluster.start({
    agentArgs,
    // A dead kubelet's Lease is overdue 1.5 s after its last renewal.
    constants: { ...constants, nodeLeaseRenewInterval: 1_000, nodeLeaseDurationSeconds: 4 },
  });
  try {
    const { first, other, uid } = await pendingOnRebootedNode(cluster);
    // The node dies with the pod Pending on it; the other nodes take pods again.
    await cluster.crash(first);
    for (const n of other) setTaints(cluster, n, []);
    const ran = await cluster.waitForRunningPod("web-0", { notOn: first, timeoutMs: 60_000 });
    assert.ok(other.includes(ran));
    assert.notEqual(cluster.pod("web-0")!.metadata.uid, uid);
    const deleted = cluster.server.requests.filter((r) =>
      r.user?.startsWith("system:serviceaccount:") && r.method === "DELETE" &&
      r.resource === "pods" && r.name === "web-0" &&
      (r.body as { preconditions?: { uid?: string } })?.preconditions?.uid === uid
    );
    assert.equal(deleted.length, 1, "one agent force-deleted the Pending pod");
    assert.equal((deleted[0].body as { gracePeriodSeconds?: number }).gracePeriodSeconds, 0);
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});
