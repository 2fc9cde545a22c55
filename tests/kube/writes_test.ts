// Every write the agent makes, observed as objects and requests on the local API server.

import assert from "node:assert/strict";
import { ApiServer } from "../sim/apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { KubeWriter, microTime, WriteWithdrawn } from "../../lib/kube/writes.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

async function setup(serverOptions: Record<string, unknown> = {}) {
  const server = await ApiServer.start({ tls: true, ...serverOptions });
  const client = await KubeClient.connect({
    kubeconfig: server.kubeconfigPath,
    requestTimeoutMs: 5_000,
  });
  const writer = new KubeWriter(client, "node-a");
  return {
    server,
    writer,
    async close() {
      client.close();
      await server.close();
    },
  };
}

function node(name: string, taints: Obj[] = []): Obj {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name },
    spec: { taints },
    status: { conditions: [{ type: "Ready", status: "True" }] },
  };
}

function pod(name: string): Obj {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default" },
    spec: { nodeName: "node-b", containers: [{ name: "c", image: "busybox" }] },
    status: { phase: "Running" },
  };
}

const lostQuorum = { key: "drbd.linbit.com/lost-quorum", effect: "NoSchedule" };

Deno.test("addTaint keeps every other taint, is idempotent, removeTaint removes only ours", async () => {
  const t = await setup();
  try {
    const other = { key: "example.com/maintenance", value: "yes", effect: "NoExecute" };
    t.server.create(node("node-b", [other]));
    assert.equal(await t.writer.addTaint("node-b", lostQuorum), "done");
    assert.equal(await t.writer.addTaint("node-b", lostQuorum), "already");
    const tainted = t.server.get("nodes", undefined, "node-b") as Obj;
    assert.deepEqual(tainted.spec.taints, [other, lostQuorum]);
    assert.equal(await t.writer.removeTaint("node-b", lostQuorum), "done");
    assert.equal(await t.writer.removeTaint("node-b", lostQuorum), "already");
    assert.deepEqual((t.server.get("nodes", undefined, "node-b") as Obj).spec.taints, [other]);
    const puts = t.server.requests.filter((r) => r.method === "PUT");
    assert.equal(puts.length, 2, "one PUT per real change");
  } finally {
    await t.close();
  }
});

Deno.test("addTaint retries on 409 and keeps a taint added concurrently", async () => {
  const t = await setup();
  try {
    t.server.create(node("node-b"));
    // The first PUT loses a race: someone else changed the taints in between.
    t.server.faults.add({ verb: "update", resource: "nodes", status: 409, times: 1 });
    const concurrent = { key: "node.kubernetes.io/unreachable", effect: "NoSchedule" };
    const n = t.server.get("nodes", undefined, "node-b") as Obj;
    n.spec.taints = [concurrent];
    t.server.update(n);
    assert.equal(await t.writer.addTaint("node-b", lostQuorum), "done");
    const taints = (t.server.get("nodes", undefined, "node-b") as Obj).spec.taints;
    assert.deepEqual(taints, [concurrent, lostQuorum]);
    const puts = t.server.requests.filter((r) => r.method === "PUT").map((r) => r.status);
    assert.deepEqual(puts, [409, 200]);
  } finally {
    await t.close();
  }
});

Deno.test("addTaint on a missing node is done, not an error", async () => {
  const t = await setup();
  try {
    assert.equal(await t.writer.addTaint("nosuch", lostQuorum), "already");
  } finally {
    await t.close();
  }
});

Deno.test("evictPod posts a policy/v1 Eviction with the UID precondition and grace period", async () => {
  const t = await setup();
  try {
    const created = t.server.create(pod("web-0")) as Obj;
    const uid = created.metadata.uid;
    assert.equal(await t.writer.evictPod({ namespace: "default", name: "web-0", uid }, 10), "done");
    const evict = t.server.requests.find((r) => r.verb === "evict");
    assert.ok(evict, "an eviction request was sent");
    const body = evict.body as Obj;
    assert.equal(body.apiVersion, "policy/v1");
    assert.equal(body.kind, "Eviction");
    assert.deepEqual(body.deleteOptions, { gracePeriodSeconds: 10, preconditions: { uid } });
    const after = t.server.get("pods", "default", "web-0") as Obj | undefined;
    assert.ok(
      after === undefined || after.metadata.deletionTimestamp,
      "pod is deleted or terminating",
    );
  } finally {
    await t.close();
  }
});

Deno.test("evictPod of a gone pod is done; of a replaced pod (new UID) touches nothing", async () => {
  const t = await setup();
  try {
    assert.equal(
      await t.writer.evictPod({ namespace: "default", name: "gone", uid: "u-1" }, 10),
      "already",
    );
    t.server.create(pod("web-0"));
    assert.equal(
      await t.writer.evictPod({ namespace: "default", name: "web-0", uid: "old-uid" }, 10),
      "already",
    );
    const still = t.server.get("pods", "default", "web-0") as Obj;
    assert.equal(still.metadata.deletionTimestamp, undefined, "replacement untouched");
  } finally {
    await t.close();
  }
});

Deno.test("evictPod surfaces a PodDisruptionBudget refusal (429) for a retry", async () => {
  const t = await setup();
  try {
    const created = t.server.create(pod("web-0")) as Obj;
    t.server.faults.add({ verb: "evict", status: 429, times: 1 });
    await assert.rejects(
      t.writer.evictPod({ namespace: "default", name: "web-0", uid: created.metadata.uid }, 10),
      /429/,
    );
  } finally {
    await t.close();
  }
});

Deno.test("evictPod falls back to a plain delete when the server has no eviction subresource", async () => {
  const t = await setup({ eviction: false });
  try {
    const created = t.server.create(pod("web-0")) as Obj;
    const uid = created.metadata.uid;
    assert.equal(await t.writer.evictPod({ namespace: "default", name: "web-0", uid }, 7), "done");
    const del = t.server.requests.find((r) => r.method === "DELETE");
    assert.ok(del, "a DELETE was sent");
    assert.deepEqual(
      { grace: (del.body as Obj).gracePeriodSeconds, pre: (del.body as Obj).preconditions },
      { grace: 7, pre: { uid } },
    );
  } finally {
    await t.close();
  }
});

Deno.test("forceDeletePod uses grace 0 and the UID precondition; a replaced pod survives", async () => {
  const t = await setup();
  try {
    const created = t.server.create(pod("web-0")) as Obj;
    assert.equal(
      await t.writer.forceDeletePod({ namespace: "default", name: "web-0", uid: "other-uid" }),
      "already",
    );
    assert.ok(t.server.get("pods", "default", "web-0"), "pod with another UID survives");
    assert.equal(
      await t.writer.forceDeletePod({
        namespace: "default",
        name: "web-0",
        uid: created.metadata.uid,
      }),
      "done",
    );
    assert.equal(t.server.get("pods", "default", "web-0"), undefined);
    const del = t.server.requests.filter((r) => r.method === "DELETE").at(-1)!;
    assert.deepEqual((del.body as Obj).preconditions, { uid: created.metadata.uid });
    assert.equal((del.body as Obj).gracePeriodSeconds, 0);
    assert.equal(
      await t.writer.forceDeletePod({
        namespace: "default",
        name: "web-0",
        uid: created.metadata.uid,
      }),
      "already",
      "not found counts as done",
    );
  } finally {
    await t.close();
  }
});

Deno.test("deleteVolumeAttachment sends the UID precondition", async () => {
  const t = await setup();
  try {
    const va = t.server.create({
      apiVersion: "storage.k8s.io/v1",
      kind: "VolumeAttachment",
      metadata: { name: "csi-123" },
      spec: {
        attacher: "linstor.csi.linbit.com",
        nodeName: "node-b",
        source: { persistentVolumeName: "pvc-1" },
      },
    }) as Obj;
    assert.equal(await t.writer.deleteVolumeAttachment("csi-123", va.metadata.uid, 0), "done");
    const del = t.server.requests.find((r) => r.method === "DELETE")!;
    assert.deepEqual((del.body as Obj).preconditions, { uid: va.metadata.uid });
    assert.equal((del.body as Obj).gracePeriodSeconds, 0);
    assert.equal(await t.writer.deleteVolumeAttachment("csi-123", va.metadata.uid, 0), "already");
  } finally {
    await t.close();
  }
});

Deno.test("recordEvent writes an events.k8s.io/v1 Event the server accepts", async () => {
  const t = await setup();
  try {
    await t.writer.recordEvent({
      regarding: {
        kind: "Node",
        apiVersion: "v1",
        namespace: undefined,
        name: "node-b",
        uid: "u-node",
      },
      type: "Warning",
      reason: "NodeStorageQuorumLost",
      action: "TaintedNode",
      note: "Tainted node because some volumes have lost quorum",
      related: {
        kind: "VolumeAttachment",
        apiVersion: "storage.k8s.io/v1",
        namespace: undefined,
        name: "csi-123",
        uid: "u-va",
      },
    }, Date.UTC(2026, 10, 25, 2, 59, 0, 123));
    const events = t.server.list("events.k8s.io/events") as Obj[];
    assert.equal(events.length, 1);
    const e = events[0];
    assert.equal(e.eventTime, "2026-11-25T02:59:00.123000Z");
    assert.equal(e.reportingController, "linstor.linbit.com/HighAvailabilityController");
    assert.equal(e.reportingInstance, "ha-controller-node-a");
    assert.equal(e.reason, "NodeStorageQuorumLost");
    assert.equal(e.action, "TaintedNode");
    assert.equal(e.regarding.name, "node-b");
    assert.deepEqual(e.related, {
      kind: "VolumeAttachment",
      apiVersion: "storage.k8s.io/v1",
      name: "csi-123",
      uid: "u-va",
    });
  } finally {
    await t.close();
  }
});

Deno.test("two Events about the same node in the same millisecond are both recorded", async () => {
  const t = await setup();
  try {
    const regarding = {
      kind: "Node",
      apiVersion: "v1",
      namespace: undefined,
      name: "node-b",
      uid: "u-node",
    };
    const now = Date.UTC(2026, 10, 25, 2, 59, 0, 123);
    // A forced demotion taints the own node twice in one cycle.
    await t.writer.recordEvent({
      regarding,
      type: "Warning",
      reason: "NodeStorageQuorumLost",
      action: "TaintedNode",
      note: "Tainted node because some volumes have lost quorum",
    }, now);
    await t.writer.recordEvent({
      regarding,
      type: "Warning",
      reason: "VolumeForcingIoErrors",
      action: "TaintedNode",
      note: "Tainted node because some volumes are in force-io-error state",
    }, now);
    const events = t.server.list("events.k8s.io/events") as Obj[];
    assert.deepEqual(events.map((e) => e.reason).sort(), [
      "NodeStorageQuorumLost",
      "VolumeForcingIoErrors",
    ]);
    for (const e of events) assert.match(e.metadata.name, /^node-b\./);
  } finally {
    await t.close();
  }
});

Deno.test("microTime has exactly six fractional digits", () => {
  assert.equal(microTime(0), "1970-01-01T00:00:00.000000Z");
  assert.match(microTime(Date.now()), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
});

/** A Warning Event about node-b (the note may vary between repeats). */
function nodeEvent(note = "Tainted"): Parameters<KubeWriter["recordEvent"]>[0] {
  return {
    regarding: { kind: "Node", apiVersion: "v1", namespace: undefined, name: "node-b", uid: "u" },
    type: "Warning",
    reason: "NodeStorageQuorumLost",
    action: "TaintedNode",
    note,
  };
}

Deno.test("a repeated Event becomes an EventSeries on the first one; after 6 minutes a new Event", async () => {
  const t = await setup();
  try {
    const t0 = Date.UTC(2026, 11, 7, 1, 0, 0);
    await t.writer.recordEvent(nodeEvent("first"), t0);
    await t.writer.recordEvent(nodeEvent("second"), t0 + 60_000);
    await t.writer.recordEvent(nodeEvent("third"), t0 + 120_000);
    let events = t.server.list("events.k8s.io/events") as Obj[];
    assert.equal(events.length, 1, "repeats within the window make no new Event");
    assert.deepEqual(events[0].series, { count: 3, lastObservedTime: microTime(t0 + 120_000) });
    assert.equal(events[0].note, "first");
    const patches = t.server.requests.filter((r) => r.method === "PATCH");
    assert.equal(patches.length, 2);

    // Another action on the same node is another Event.
    await t.writer.recordEvent({ ...nodeEvent(), action: "UntaintedNode" }, t0 + 130_000);
    // 6 minutes after the last repeat the series is over: a new Event.
    await t.writer.recordEvent(nodeEvent("later"), t0 + 120_000 + 6 * 60_000);
    events = t.server.list("events.k8s.io/events") as Obj[];
    assert.deepEqual(events.map((e) => [e.action, e.note, e.series?.count]).sort(), [
      ["TaintedNode", "first", 3],
      ["TaintedNode", "later", undefined],
      ["UntaintedNode", "Tainted", undefined],
    ]);
  } finally {
    await t.close();
  }
});

Deno.test("a repeat of an Event that is gone creates a new Event", async () => {
  const t = await setup();
  try {
    const t0 = Date.UTC(2026, 11, 7, 1, 0, 0);
    await t.writer.recordEvent(nodeEvent("first"), t0);
    const [first] = t.server.list("events.k8s.io/events") as Obj[];
    t.server.delete("events.k8s.io/events", first.metadata.namespace, first.metadata.name);
    await t.writer.recordEvent(nodeEvent("again"), t0 + 1_000);
    const events = t.server.list("events.k8s.io/events") as Obj[];
    assert.deepEqual(events.map((e) => [e.note, e.series]), [["again", undefined]]);
  } finally {
    await t.close();
  }
});

Deno.test("addTaint asks its re-check after reading the Node: a reason withdraws the update", async () => {
  const t = await setup();
  try {
    t.server.create(node("node-b"));
    const taint = { key: "drbd.linbit.com/lost-quorum", effect: "NoSchedule" };
    let asked = 0;
    await assert.rejects(
      t.writer.addTaint("node-b", taint, () => {
        asked++;
        // The Node was read before the re-check.
        assert.ok(t.server.requests.some((r) => r.method === "GET" && r.resource === "nodes"));
        return "node node-b is connected again";
      }),
      (err: unknown) =>
        err instanceof WriteWithdrawn && err.why === "node node-b is connected again",
    );
    assert.equal(asked, 1);
    assert.equal(t.server.requests.filter((r) => r.method === "PUT").length, 0, "no update sent");
    assert.deepEqual((t.server.get("nodes", undefined, "node-b") as Obj).spec.taints, []);
    // No reason: the taint is added.
    assert.equal(await t.writer.addTaint("node-b", taint, () => undefined), "done");
    assert.deepEqual((t.server.get("nodes", undefined, "node-b") as Obj).spec.taints, [taint]);
  } finally {
    await t.close();
  }
});

Deno.test("removeTaint with a value leaves another party's taint with the same key and effect", async () => {
  const t = await setup();
  try {
    const admins = {
      key: "node.kubernetes.io/out-of-service",
      value: "nodeshutdown",
      effect: "NoExecute",
    };
    const ours = { ...admins, value: "ha-controller" };
    t.server.create(node("node-b", [admins]));
    assert.equal(await t.writer.removeTaint("node-b", ours), "already");
    assert.deepEqual((t.server.get("nodes", undefined, "node-b") as Obj).spec.taints, [admins]);
    assert.equal(
      await t.writer.removeTaint("node-b", { key: admins.key, effect: "NoExecute" }),
      "done",
    );
    assert.deepEqual((t.server.get("nodes", undefined, "node-b") as Obj).spec.taints, []);
  } finally {
    await t.close();
  }
});

Deno.test("Events alike but for their seriesKey (two taints' Events) are separate Events", async () => {
  const t = await setup();
  try {
    const t0 = Date.UTC(2026, 11, 7, 1, 0, 0);
    await t.writer.recordEvent({ ...nodeEvent("lost-quorum"), seriesKey: "a" }, t0);
    await t.writer.recordEvent({ ...nodeEvent("out-of-service"), seriesKey: "b" }, t0 + 1_000);
    const events = t.server.list("events.k8s.io/events") as Obj[];
    assert.deepEqual(events.map((e) => e.note).sort(), ["lost-quorum", "out-of-service"]);
    assert.ok(events.every((e) => e.seriesKey === undefined), "seriesKey is not sent");
  } finally {
    await t.close();
  }
});
