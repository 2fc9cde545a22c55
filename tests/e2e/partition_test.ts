/**
 * End to end: a node whose DRBD links are cut while its kubelet stays alive
 * (a storage network partition). The node stays Ready, so its pod is evicted
 * gracefully; the pod's frozen Primary keeps the unmount from finishing until
 * the cut-off node's own agent force-demotes it; then the pod goes away and
 * its replacement runs on a node with quorum.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SimCluster } from "../sim/cluster.ts";
import type { Change, KubeObject } from "../sim/apiserver/mod.ts";
import { formatTimeline } from "../sim/timeline.ts";
import { waitFor } from "../helpers.ts";
import {
  eventAction,
  eventReason,
  lostQuorumTaintKey,
  reportingController,
} from "../../lib/names.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

/** Short agent timings: what is tested here is the chain of events, not its speed. */
const agentArgs = [
  "--fail-over-timeout",
  "1s",
  "--reconcile-interval",
  "1s",
  "--drbd-status-interval",
  "1s",
];

/**
 * ha-controller's Events (events.k8s.io/v1) with `reason` (and `action`, if
 * given) about the object named `about`.
 */
function agentEvents(
  cluster: SimCluster,
  of: { reason: string; action?: string; about: string },
): Obj[] {
  return cluster.server.list("events.k8s.io/events").filter((e: Obj) =>
    e.reportingController === reportingController && e.reason === of.reason &&
    (of.action === undefined || e.action === of.action) && e.regarding?.name === of.about
  );
}

const demotion = {
  reason: eventReason.volumeWithoutQuorum,
  action: eventAction.forcedVolumeDemotion,
};

function taintKeys(cluster: SimCluster, node: string): string[] {
  const obj: Obj = cluster.server.get("nodes", undefined, node);
  return (obj?.spec?.taints ?? []).map((t: Obj) => t.key);
}

/** The DRBD resource (= PV name) behind a StatefulSet pod's `data` claim. */
function resourceOf(cluster: SimCluster, pod: string): string {
  const claim: Obj = cluster.server.get("persistentvolumeclaims", "default", `data-${pod}`);
  const name = claim?.spec?.volumeName;
  assert.ok(name, `Expected claim data-${pod} to be bound, got ${JSON.stringify(claim?.spec)}`);
  return name;
}

/** The drbdsetup invocations on `node` other than the agent's reads. */
async function drbdsetupChanges(cluster: SimCluster, node: string): Promise<string[][]> {
  const reads = new Set(["events2", "show", "status"]);
  return (await cluster.drbd.fake(node).calls()).filter((args) => !reads.has(args[0]));
}

Deno.test("partition: a Ready node cut off from DRBD has its pod evicted, its Primary force-demoted by its own agent, and the pod replaced elsewhere", async () => {
  const cluster = await SimCluster.start({
    scale: 5,
    constants: { reconcilerSyncDuration: 1_000 },
    agentArgs,
  });
  const seen: { terminating?: Obj; deleted?: Obj } = {};
  let unsubscribe = () => {};
  try {
    cluster.deployStatefulSet("web");
    const node = await cluster.waitForRunningPod("web-0");
    const old = cluster.pod("web-0") as Obj;
    const uid: string = old.metadata.uid;
    const resource = resourceOf(cluster, "web-0");
    const attachment = cluster.server.list("volumeattachments").find((va: Obj) =>
      va.spec.nodeName === node
    ) as KubeObject;
    assert.ok(attachment, `Expected a VolumeAttachment on ${node}`);
    assert.deepEqual(cluster.drbd.primaries(resource), [node]);

    // What DRBD on the cut-off node looked like at the two moments the user sees.
    unsubscribe = cluster.server.store.subscribe((change: Change) => {
      if (change.storage !== "pods" || change.object?.metadata?.uid !== uid) return;
      const state = () => ({
        view: cluster.drbd.view(node, resource),
        io: cluster.drbd.ioState(node, resource),
      });
      const obj: Obj = change.object;
      if (change.type === "MODIFIED" && obj.metadata.deletionTimestamp && !seen.terminating) {
        seen.terminating = { ...state(), grace: obj.metadata.deletionGracePeriodSeconds };
      }
      if (change.type === "DELETED") seen.deleted = state();
    });

    cluster.timeline.mark(`DRBD links of ${node} cut`);
    cluster.drbd.isolate(node);

    const newNode = await cluster.waitForRunningPod("web-0", { notOn: node, timeoutMs: 60_000 });
    const replacement = cluster.pod("web-0") as Obj;
    assert.notEqual(replacement.metadata.uid, uid);
    assert.notEqual(newNode, node);

    // The node never stopped being Ready: its kubelet lives.
    const nodeObj: Obj = cluster.server.get("nodes", undefined, node);
    const ready = nodeObj.status.conditions.find((c: Obj) => c.type === "Ready");
    assert.equal(ready.status, "True", `Expected ${node} to stay Ready`);

    // Graceful eviction through policy/v1, never a grace-0 delete of the pod.
    const evictions = cluster.server.requests.filter((r) =>
      r.verb === "evict" && r.name === "web-0"
    );
    assert.ok(evictions.length >= 1, "Expected at least one eviction request for web-0");
    for (const r of evictions) {
      const body = r.body as Obj;
      assert.equal(body.apiVersion, "policy/v1");
      assert.equal(body.kind, "Eviction");
      assert.equal(body.deleteOptions.preconditions.uid, uid);
      assert.ok(body.deleteOptions.gracePeriodSeconds > 0, "Expected a graceful eviction");
      assert.equal(r.status, 201);
    }
    const podDeletes = cluster.server.requests.filter((r) =>
      r.verb === "delete" && r.resource === "pods"
    );
    assert.deepEqual(podDeletes, [], "Expected no agent to delete the pod directly");
    assert.ok(seen.terminating, "Expected the old pod to be seen Terminating");
    assert.ok(seen.terminating.grace > 0, "Expected a graceful deletion of the old pod");
    // An agent records an action's Event after the action: wait for it.
    await waitFor(
      () =>
        agentEvents(cluster, { reason: eventReason.volumeWithoutQuorum, about: "web-0" }).length >=
          1,
      10_000,
      "a VolumeWithoutQuorum Event about web-0",
    );
    const evicted = agentEvents(cluster, {
      reason: eventReason.volumeWithoutQuorum,
      about: "web-0",
    });
    for (const e of evicted) {
      assert.equal(e.action, "EvictedPod");
      assert.equal(e.type, "Warning");
    }

    // The node got the lost-quorum taint (once), and the replacement stayed off it.
    assert.equal(taintKeys(cluster, node).filter((k) => k === lostQuorumTaintKey).length, 1);
    await waitFor(
      () =>
        agentEvents(cluster, { reason: eventReason.nodeStorageQuorumLost, about: node }).length >=
          1,
      10_000,
      `a NodeStorageQuorumLost Event about ${node}`,
    );
    assert.equal(
      agentEvents(cluster, { reason: eventReason.nodeStorageQuorumLost, about: node }).length,
      1,
    );

    // While the pod was Terminating, I/O on the cut-off Primary was frozen:
    // the kubelet's unmount could not finish.
    assert.equal(seen.terminating.view.role, "Primary");
    assert.equal(seen.terminating.view.suspended.quorum, true);
    assert.equal(seen.terminating.io, "frozen");

    // The cut-off node's own agent force-demoted it; no other node demoted anything.
    assert.deepEqual(await drbdsetupChanges(cluster, node), [["secondary", "--force", resource]]);
    for (const other of cluster.nodes.filter((n) => n !== node)) {
      assert.deepEqual(await drbdsetupChanges(cluster, other), [], `drbdsetup calls on ${other}`);
    }
    await waitFor(
      () =>
        agentEvents(cluster, { ...demotion, about: "data-web-0" })
          .length === 1,
      10_000,
      "ForcedVolumeDemotion Events about the PV and the claim",
    );
    for (const name of [resource, "data-web-0"]) {
      const demotions = agentEvents(cluster, { ...demotion, about: name });
      assert.equal(demotions.length, 1, `ForcedVolumeDemotion Events about ${name}`);
      assert.equal(demotions[0].reportingInstance, `ha-controller-${node}`);
    }

    // Only after that could the unmount finish and the pod go away.
    assert.ok(seen.deleted, "Expected the old pod to be deleted");
    assert.equal(seen.deleted.view.role, "Secondary");

    // The old VolumeAttachment was deleted with its UID, gracefully (the node is Ready).
    // (The attach-detach controller may attach the Terminating pod's volume there once
    // more before the pod is gone, as Kubernetes does; the name is the same.)
    assert.equal(
      cluster.server.get("volumeattachments", undefined, attachment.metadata.name!),
      undefined,
    );
    const vaDeletes = cluster.server.requests.filter((r) =>
      r.verb === "delete" && r.resource === "volumeattachments" && r.status === 200
    );
    assert.ok(vaDeletes.length >= 1, "Expected the agents to delete the VolumeAttachment");
    assert.equal((vaDeletes[0].body as Obj).preconditions.uid, attachment.metadata.uid);
    for (const r of vaDeletes) {
      assert.equal(r.name, attachment.metadata.name);
      assert.equal((r.body as Obj).gracePeriodSeconds, undefined);
    }

    // The replacement is never touched.
    assert.equal(
      cluster.server.requests.filter((r) =>
        r.name === "web-0" && JSON.stringify(r.body ?? "").includes(replacement.metadata.uid)
      ).length,
      0,
    );

    // The links come back: the node's own agent lifts the taint once it has quorum again.
    cluster.timeline.mark(`DRBD links of ${node} repaired`);
    cluster.drbd.rejoin(node);
    await waitFor(
      () => !taintKeys(cluster, node).includes(lostQuorumTaintKey),
      30_000,
      `the lost-quorum taint gone from ${node}`,
    );
    await waitFor(
      () =>
        agentEvents(cluster, { reason: eventReason.nodeStorageQuorumRegained, about: node })
          .length > 0,
      10_000,
      `a NodeStorageQuorumRegained Event about ${node}`,
    );
    const regained = agentEvents(cluster, {
      reason: eventReason.nodeStorageQuorumRegained,
      about: node,
    });
    assert.equal(regained.length, 1);
    assert.equal(regained[0].reportingInstance, `ha-controller-${node}`);
    assert.equal(cluster.pod("web-0")?.metadata.uid, replacement.metadata.uid);
  } catch (err) {
    console.error(formatTimeline(cluster.timeline.milestones()));
    throw err;
  } finally {
    unsubscribe();
    await cluster.stop();
  }
});
