// The real agent process against the local API server and a fake drbdsetup:
// a node crash leads to the right writes (with UID preconditions), and in
// dry-run the same scenario prints the plan while the server sees no write.

import assert from "node:assert/strict";
import { ApiServer } from "../sim/apiserver/mod.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { waitFor } from "../helpers.ts";
import {
  markNotReady,
  metricValue,
  resourceAfterNodeBCrash,
  resourceOnNodeA,
  seedCluster,
  startAgent,
  waitHealthy,
} from "./harness.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const lostQuorumTaint = { key: "drbd.linbit.com/lost-quorum", effect: "NoSchedule" };

async function scene() {
  const server = await ApiServer.start({ tls: true });
  const drbd = await FakeDrbd.create();
  await drbd.setResources([resourceOnNodeA()]);
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

Deno.test("node crash: the agent taints the lost node, force-deletes its pod and force-detaches the volume", async () => {
  const s = await scene();
  const agent = await startAgent(s.server, s.drbd, [
    "--fail-over-timeout",
    "1s",
    "--reconcile-interval",
    "1s",
  ]);
  try {
    await waitHealthy(agent);
    // Two decision cycles that ended after the agent was healthy (synced):
    // one of them started after, and decided on the healthy cluster.
    const healthyCycles = (await metricValue(agent, "ha_controller_loop_cycle_seconds_count")) ?? 0;
    await waitFor(
      async () =>
        ((await metricValue(agent, "ha_controller_loop_cycle_seconds_count")) ?? 0) >=
          healthyCycles + 2,
      10_000,
      "two decision cycles of the healthy agent",
    );
    assert.equal(s.server.writes().length, 0, "a healthy cluster causes no write");

    markNotReady(s.server, "node-b");
    await s.drbd.setResources([resourceAfterNodeBCrash()]);

    await waitFor(
      () => s.server.get("volumeattachments", undefined, "csi-pvc-1-node-b") === undefined,
      20_000,
      () => `VolumeAttachment deleted (agent stderr:\n${agent.stderr()})`,
    );
    const nodeB = s.server.get("nodes", undefined, "node-b") as Obj;
    assert.deepEqual(nodeB.spec.taints, [lostQuorumTaint]);
    assert.equal(s.server.get("pods", "default", "web-0"), undefined, "pod force-deleted");

    const podDelete = s.server.requests.find((r) =>
      r.method === "DELETE" && r.resource === "pods"
    )!;
    assert.deepEqual(
      {
        grace: (podDelete.body as Obj).gracePeriodSeconds,
        uid: (podDelete.body as Obj).preconditions?.uid,
      },
      { grace: 0, uid: s.podUid },
      "pod on a NotReady node: grace 0 with the pod's UID as precondition",
    );
    const vaDelete = s.server.requests.find((r) =>
      r.method === "DELETE" && r.resource === "volumeattachments"
    )!;
    assert.equal((vaDelete.body as Obj).preconditions?.uid, s.vaUid);
    assert.equal(
      s.server.requests.filter((r) => r.verb === "evict").length,
      0,
      "no eviction on a NotReady node",
    );

    await waitFor(
      () => (s.server.list("events.k8s.io/events") as Obj[]).length >= 3,
      10_000,
      "events recorded",
    );
    const reasons = (s.server.list("events.k8s.io/events") as Obj[])
      .map((e) => `${e.regarding.kind}/${e.regarding.name} ${e.reason}/${e.action}`).sort();
    assert.ok(
      reasons.includes("Node/node-b NodeStorageQuorumLost/TaintedNode"),
      reasons.join("\n"),
    );
    assert.ok(
      reasons.some((r) => r.startsWith("Pod/web-0 VolumeWithoutQuorum/")),
      reasons.join("\n"),
    );
    assert.ok(
      reasons.includes(
        "VolumeAttachment/csi-pvc-1-node-b VolumeWithoutQuorum/VolumeAttachmentDeleted",
      ),
      reasons.join("\n"),
    );
    // Metrics are updated when the cycle that acted ends, just after its Events.
    const detached = 'ha_controller_actions_total{kind="delete-volume-attachment",result="done"}';
    await waitFor(async () => (await metricValue(agent, detached)) === 1, 5_000, "metrics updated");
    // Taint, force-delete and detach are fail-over actions: three reaction times.
    assert.equal(await metricValue(agent, "ha_controller_failover_reaction_seconds_count"), 3);
    // Memory as of the scrape: the process's RSS holds at least the V8 heap in use.
    const rss = await metricValue(agent, "process_resident_memory_bytes");
    const heapUsed = await metricValue(agent, 'ha_controller_heap_bytes{kind="used"}');
    assert.ok(
      rss !== undefined && heapUsed !== undefined && heapUsed > 0 && rss > heapUsed,
      `process_resident_memory_bytes ${rss}, heap used ${heapUsed}`,
    );
  } finally {
    assert.equal(await agent.stop(), 0, "agent exits 0 on SIGTERM");
    await s.close();
  }
});

Deno.test("dry-run: the same crash prints each intended action once and the server sees zero writes", async () => {
  const s = await scene();
  const agent = await startAgent(s.server, s.drbd, [
    "--fail-over-timeout",
    "1s",
    "--reconcile-interval",
    "500ms",
    "--dry-run",
  ]);
  try {
    await waitHealthy(agent);
    markNotReady(s.server, "node-b");
    await s.drbd.setResources([resourceAfterNodeBCrash()]);
    await waitFor(
      () => /would delete volumeattachment csi-pvc-1-node-b/.test(agent.stdout()),
      20_000,
      () => `dry-run plan printed (stderr:\n${agent.stderr()})`,
    );
    // Let two more decision cycles run: they must not print or write anything new.
    const cycles = (await metricValue(agent, "ha_controller_loop_cycle_seconds_count")) ?? 0;
    await waitFor(
      async () =>
        ((await metricValue(agent, "ha_controller_loop_cycle_seconds_count")) ?? 0) >= cycles + 2,
      10_000,
      "two more cycles",
    );
    const lines = agent.stdout().trim().split("\n");
    const taint = lines.filter((l) =>
      l.startsWith("dry-run: would taint node node-b drbd.linbit.com/lost-quorum:NoSchedule")
    );
    const del = lines.filter((l) => l.startsWith("dry-run: would force-delete pod default/web-0"));
    const va = lines.filter((l) =>
      l.startsWith("dry-run: would delete volumeattachment csi-pvc-1-node-b")
    );
    assert.deepEqual([taint.length, del.length, va.length], [1, 1, 1], lines.join("\n"));
    assert.match(del[0], new RegExp(s.podUid));
    assert.deepEqual(s.server.writes(), [], "no write request reached the server");
    assert.deepEqual(
      (await s.drbd.calls()).filter((argv) => argv[0] !== "events2" && argv[0] !== "show"),
      [],
      "no drbdsetup state change",
    );
  } finally {
    await agent.stop();
    await s.close();
  }
});
