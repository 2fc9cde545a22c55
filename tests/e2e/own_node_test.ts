/**
 * End to end: what an agent does about its own node. The lost-quorum taint
 * comes only when a resource lacks quorum for the whole fail-over timeout (a
 * fresh resource still connecting does not taint) and goes when quorum is
 * back; a resource forcing I/O errors gets its local pods evicted and the
 * node the force-io-error taint until no resource forces I/O errors.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SimCluster } from "../sim/cluster.ts";
import type { RequestRecord } from "../sim/apiserver/mod.ts";
import { formatTimeline } from "../sim/timeline.ts";
import { metricValue } from "../agent/harness.ts";
import { waitFor } from "../helpers.ts";
import {
  eventReason,
  forceIoErrorTaintKey,
  lostQuorumTaintKey,
  reportingController,
} from "../../lib/names.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

/** ha-controller's Events (events.k8s.io/v1) with `reason` about the object named `about`. */
function agentEvents(cluster: SimCluster, of: { reason: string; about: string }): Obj[] {
  return cluster.server.list("events.k8s.io/events").filter((e: Obj) =>
    e.reportingController === reportingController && e.reason === of.reason &&
    e.regarding?.name === of.about
  );
}

/** Wait until the agents recorded at least one such Event; returns all of them. */
async function awaitAgentEvents(
  cluster: SimCluster,
  of: { reason: string; about: string },
): Promise<Obj[]> {
  await waitFor(
    () => agentEvents(cluster, of).length > 0,
    10_000,
    `a ${of.reason} Event about ${of.about}`,
  );
  return agentEvents(cluster, of);
}

function taintKeys(cluster: SimCluster, node: string): string[] {
  const obj: Obj = cluster.server.get("nodes", undefined, node);
  return (obj?.spec?.taints ?? []).map((t: Obj) => t.key);
}

/** Every HTTP write (in-process controllers write without HTTP: these are the agents'). */
function httpWrites(cluster: SimCluster): RequestRecord[] {
  return cluster.server.writes();
}

/**
 * The agents' successful writes other than Events (an Event accompanies each
 * change). A taint update that met a concurrent Node change (409) is retried
 * by the agent and left out here.
 */
function changes(cluster: SimCluster): string[] {
  const writes = httpWrites(cluster).filter((r) => r.resource !== "events");
  const failed = writes.filter((r) => r.status >= 300 && r.status !== 409);
  assert.deepEqual(failed.map((r) => `${r.method} ${r.path} ${r.status}`), [], "failed writes");
  return writes.filter((r) => r.status < 300).map((r) => `${r.method} ${r.path} ${r.status}`);
}

function showCalls(calls: string[][]): number {
  return calls.filter((args) => args[0] === "show").length;
}

/** Decision cycles the agent on `node` has finished so far. */
async function cyclesOf(cluster: SimCluster, node: string): Promise<number> {
  return (await metricValue(cluster.agent(node)!, "ha_controller_loop_cycle_seconds_count")) ?? 0;
}

/** Wait until the agent on `node` has finished `cycles` more decision cycles. */
async function waitForCycles(cluster: SimCluster, of: { node: string; cycles: number }) {
  const from = await cyclesOf(cluster, of.node);
  await waitFor(
    async () => (await cyclesOf(cluster, of.node)) >= from + of.cycles,
    30_000,
    `${of.cycles} more decision cycles of the agent on ${of.node}`,
  );
}

async function failWithTimeline<T>(cluster: SimCluster, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    console.error(formatTimeline(cluster.timeline.milestones()));
    throw err;
  }
}

Deno.test("own node: no taint for a fresh resource briefly without quorum; lost-quorum taint on a lasting loss of both peers, removed on regain", async () => {
  // A fail-over timeout well above how long the fresh resource lacks quorum here.
  const failOverTimeoutMs = 5_000;
  const cluster = await SimCluster.start({
    scale: 5,
    agentArgs: [
      "--fail-over-timeout",
      `${failOverTimeoutMs / 1000}s`,
      "--reconcile-interval",
      "1s",
      "--drbd-status-interval",
      "1s",
    ],
  });
  try {
    await failWithTimeline(cluster, async () => {
      // A resource created while node-c cannot reach its peers yet: on node-c it
      // lacks quorum until it connects.
      const reads = showCalls(await cluster.drbd.fake("node-c").calls());
      cluster.drbd.isolate("node-c");
      cluster.drbd.addResource("fresh", { diskful: ["node-a", "node-b"], diskless: ["node-c"] });
      const createdAt = performance.now();
      cluster.timeline.mark("resource fresh created, node-c not connected yet");
      assert.equal(cluster.drbd.view("node-c", "fresh")!.devices[0].quorum, false);
      // node-c's agent saw it without quorum, with its quorum policy read
      // (a `show` that started after the resource was made, and finished).
      const agentC = cluster.agent("node-c")!;
      await waitFor(
        async () =>
          showCalls(await cluster.drbd.fake("node-c").calls()) >= reads + 2 &&
          (await metricValue(agentC, 'drbd_device_quorum{name="fresh"')) === 0,
        10_000,
        "node-c's agent seeing resource fresh without quorum",
      );
      cluster.drbd.rejoin("node-c");
      await waitFor(
        async () => (await metricValue(agentC, 'drbd_device_quorum{name="fresh"')) === 1,
        10_000,
        "node-c's agent seeing resource fresh with quorum",
      );
      const regainedAt = performance.now();
      cluster.timeline.mark("resource fresh has quorum on node-c");
      // A guard on the scenario, not on the agent: the agent saw the loss
      // within these bounds, so it must really have been shorter than the
      // timeout (about 1.5 s here, 2 s on a loaded 2-core machine).
      assert.ok(
        regainedAt - createdAt < failOverTimeoutMs,
        `Expected the fresh resource's quorum loss to last less than ${failOverTimeoutMs}ms, ` +
          `it lasted ${Math.round(regainedAt - createdAt)}ms`,
      );
      // Had a timer started before quorum came back kept running, the taint
      // would be due by now; two more cycles, so one whole cycle starts after.
      await waitFor(
        () => performance.now() - regainedAt > failOverTimeoutMs,
        failOverTimeoutMs + 5_000,
        "the fail-over timeout to pass since quorum came back",
      );
      await waitForCycles(cluster, { node: "node-c", cycles: 2 });
      for (const node of cluster.nodes) assert.deepEqual(taintKeys(cluster, node), [], node);
      assert.deepEqual(httpWrites(cluster), [], "Expected no agent to write anything");

      // Now a lasting loss: node-b loses both peers (the link to the diskless
      // tiebreaker too) while web-0 runs on node-a.
      cluster.deployStatefulSet("web");
      const podNode = await cluster.waitForRunningPod("web-0");
      assert.equal(podNode, "node-a");
      const uid = cluster.pod("web-0")!.metadata.uid;
      cluster.timeline.mark("DRBD links of node-b cut");
      cluster.drbd.isolate("node-b");
      await waitFor(
        () => taintKeys(cluster, "node-b").includes(lostQuorumTaintKey),
        30_000,
        "node-b tainted lost-quorum",
      );
      const lost = await awaitAgentEvents(cluster, {
        reason: eventReason.nodeStorageQuorumLost,
        about: "node-b",
      });
      assert.equal(lost.length, 1);
      assert.equal(lost[0].reportingInstance, "ha-controller-node-b", "tainted by its own agent");
      assert.equal(lost[0].type, "Warning");
      const taint = (cluster.server.get("nodes", undefined, "node-b") as Obj).spec.taints
        .find((t: Obj) => t.key === lostQuorumTaintKey);
      assert.equal(taint.effect, "NoSchedule");
      // Only the node itself is tainted; the workload is left alone.
      assert.deepEqual(taintKeys(cluster, "node-a"), []);
      assert.deepEqual(taintKeys(cluster, "node-c"), []);
      assert.equal(cluster.pod("web-0")!.metadata.uid, uid);
      assert.equal(cluster.pod("web-0")!.metadata.deletionTimestamp, undefined);

      cluster.timeline.mark("DRBD links of node-b repaired");
      cluster.drbd.rejoin("node-b");
      await waitFor(
        () => !taintKeys(cluster, "node-b").includes(lostQuorumTaintKey),
        30_000,
        "the lost-quorum taint gone from node-b",
      );
      const regained = await awaitAgentEvents(cluster, {
        reason: eventReason.nodeStorageQuorumRegained,
        about: "node-b",
      });
      assert.equal(regained.length, 1);
      assert.equal(regained[0].reportingInstance, "ha-controller-node-b");
      assert.equal(cluster.pod("web-0")!.metadata.uid, uid);
      // One taint, one removal: nothing else was changed by any agent.
      assert.deepEqual(changes(cluster), [
        "PUT /api/v1/nodes/node-b 200",
        "PUT /api/v1/nodes/node-b 200",
      ]);
    });
  } finally {
    await cluster.stop();
  }
});

Deno.test("own node: a resource forcing I/O errors gets its local pod evicted and its node the force-io-error taint until it stops", async () => {
  const cluster = await SimCluster.start({
    scale: 5,
    constants: { reconcilerSyncDuration: 1_000 },
    agentArgs: [
      "--fail-over-timeout",
      "1s",
      "--reconcile-interval",
      "1s",
      "--drbd-status-interval",
      "1s",
    ],
  });
  try {
    await failWithTimeline(cluster, async () => {
      cluster.deployStatefulSet("web");
      const node = await cluster.waitForRunningPod("web-0");
      const uid = cluster.pod("web-0")!.metadata.uid;
      const claim: Obj = cluster.server.get("persistentvolumeclaims", "default", "data-web-0");
      const resource: string = claim.spec.volumeName;

      // An operator demotes the Primary by force while the pod still writes to it.
      // By the time the command's exit reaches this process, the agent may
      // have evicted the pod and DRBD stopped forcing I/O errors: the state
      // is recorded as it changes.
      let forced = false;
      const unwatch = cluster.drbd.onChange(() => {
        if (cluster.drbd.view(node, resource)?.forceIoFailures) forced = true;
      });
      cluster.timeline.mark(`drbdsetup secondary --force on ${node}`);
      const demoted = await new Deno.Command(`${cluster.drbd.binDir(node)}/drbdsetup`, {
        args: ["secondary", "--force", resource],
        env: cluster.drbd.env(node),
        stdout: "piped",
        stderr: "piped",
      }).output().finally(unwatch);
      assert.equal(demoted.code, 0, new TextDecoder().decode(demoted.stderr));
      assert.ok(forced, `Expected DRBD on ${node} to force I/O errors for ${resource}`);

      await waitFor(
        () => cluster.pod("web-0")?.metadata.uid !== uid,
        60_000,
        "the old web-0 gone",
      );
      const newNode = await cluster.waitForRunningPod("web-0", { timeoutMs: 60_000 });
      await waitFor(
        () =>
          agentEvents(cluster, { reason: eventReason.noVolumeForcingIoErrors, about: node })
              .length > 0 &&
          !taintKeys(cluster, node).includes(forceIoErrorTaintKey),
        30_000,
        `the force-io-error taint removed from ${node}`,
      );
      cluster.timeline.mark(`replacement runs on ${newNode}`);

      // The node was tainted before its pod went away, and untainted after.
      const what = cluster.timeline.milestones().map((m) => m.what);
      const tainted = what.indexOf(`node ${node} tainted ${forceIoErrorTaintKey}:NoSchedule`);
      const gone = what.indexOf(`pod default/web-0 deleted (was on ${node})`);
      const untainted = what.indexOf(`node ${node} untainted ${forceIoErrorTaintKey}:NoSchedule`);
      assert.ok(tainted >= 0, `Expected ${node} to get the force-io-error taint`);
      assert.ok(gone > tainted, "Expected the taint before the pod went away");
      assert.ok(untainted > gone, "Expected the taint removed after the pod went away");

      // The pod was evicted gracefully by the node's own agent.
      const evictions = cluster.server.requests.filter((r) => r.verb === "evict");
      assert.equal(evictions.length, 1);
      const body = evictions[0].body as Obj;
      assert.equal(body.apiVersion, "policy/v1");
      assert.equal(body.deleteOptions.preconditions.uid, uid);
      assert.ok(body.deleteOptions.gracePeriodSeconds > 0);
      assert.equal(evictions[0].status, 201);
      const evicted = agentEvents(cluster, {
        reason: eventReason.volumeForcingIoErrors,
        about: "web-0",
      });
      assert.equal(evicted.length, 1);
      assert.equal(evicted[0].action, "EvictedPod");
      assert.equal(evicted[0].reportingInstance, `ha-controller-${node}`);
      const onNode = agentEvents(cluster, {
        reason: eventReason.volumeForcingIoErrors,
        about: node,
      });
      assert.equal(onNode.length, 1);
      assert.equal(onNode[0].action, "TaintedNode");
      assert.equal(onNode[0].reportingInstance, `ha-controller-${node}`);
      const lifted = agentEvents(cluster, {
        reason: eventReason.noVolumeForcingIoErrors,
        about: node,
      });
      assert.equal(lifted.length, 1);
      assert.equal(lifted[0].reportingInstance, `ha-controller-${node}`);

      // Nothing else: no fail-over (every DRBD peer stayed connected).
      assert.deepEqual(changes(cluster), [
        `PUT /api/v1/nodes/${node} 200`,
        "POST /api/v1/namespaces/default/pods/web-0/eviction 201",
        `PUT /api/v1/nodes/${node} 200`,
      ]);
      for (const n of cluster.nodes) assert.ok(!taintKeys(cluster, n).includes(lostQuorumTaintKey));
      assert.equal(cluster.drbd.view(node, resource)!.forceIoFailures, false);
    });
  } finally {
    await cluster.stop();
  }
});
