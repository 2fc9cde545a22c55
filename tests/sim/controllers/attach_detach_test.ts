import assert from "node:assert/strict";
import { pathString } from "../apiserver/objects.ts";
import { attachmentName, linstorDriver } from "./kube_util.ts";
import {
  claim,
  eventsAbout,
  isRunningAndReady,
  linstorPv,
  pod,
  simulatedTime,
  startTestCluster,
  until,
} from "./testing.ts";

const va = (pv: string, node: string) =>
  attachmentName({ driver: linstorDriver, volumeHandle: pv }, node);

function seed(server: Parameters<typeof eventsAbout>[0]): void {
  server.create(linstorPv("pv-1", { claim: { namespace: "default", name: "data" } }));
  server.create(claim("data"));
}

Deno.test("Multi-Attach names the pods still using the volume, once per pod", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, clock } = t;
    seed(server);
    server.create(pod("first", { claim: "data", nodeName: "node-a" }));
    await until(() => isRunningAndReady(server.get("pods", "default", "first")), "first Running");
    server.create(pod("second", { claim: "data", nodeName: "node-b" }));
    await until(() => eventsAbout(server, "second", "FailedAttachVolume").length > 0, "warning");
    await simulatedTime(clock, 30_000);
    const warnings = eventsAbout(server, "second", "FailedAttachVolume");
    assert.deepEqual(warnings.map((e) => e.message), [
      'Multi-Attach error for volume "pv-1" Volume is already used by pod(s) first',
    ]);
    assert.equal(pathString(warnings[0], "source.component"), "attachdetach-controller");
    assert.equal(server.get("volumeattachments", undefined, va("pv-1", "node-b")), undefined);
    assert.equal(pathString(server.get("pods", "default", "second"), "status.phase"), "Pending");
  } finally {
    await t.close();
  }
});

Deno.test("no force detach from a Ready node whose unmount hangs; detach once the unmount completes", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, clock, drbd, controllers } = t;
    seed(server);
    server.create(pod("app", { claim: "data", nodeName: "node-a" }));
    await until(() => isRunningAndReady(server.get("pods", "default", "app")), "app Running");
    drbd.setIo("node-a", "pv-1", "frozen");
    server.delete("pods", "default", "app", { gracePeriodSeconds: 0 });
    assert.equal(server.get("pods", "default", "app"), undefined);

    await simulatedTime(clock, 420_000);
    assert.ok(
      server.get("volumeattachments", undefined, va("pv-1", "node-a")),
      "still attached after 7 minutes: the node is Ready and still uses the volume",
    );
    const node = server.get("nodes", undefined, "node-a")!;
    assert.deepEqual((node.status as Record<string, unknown>).volumesInUse, [
      `kubernetes.io/csi/${linstorDriver}^pv-1`,
    ]);
    assert.ok(!controllers.log.some((l) => l.message.includes("force detaching")));

    drbd.setIo("node-a", "pv-1", "ok");
    await until(
      () => server.get("volumeattachments", undefined, va("pv-1", "node-a")) === undefined,
      "detached after the unmount",
    );
    assert.equal(drbd.isPrimary("node-a", "pv-1"), false);
  } finally {
    await t.close();
  }
});

Deno.test("a VolumeAttachment deleted behind its back is noticed at the periodic sync, not after 6 min", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, clock, drbd, controllers } = t;
    seed(server);
    server.create(pod("app", { claim: "data", nodeName: "node-a" }));
    await until(() => isRunningAndReady(server.get("pods", "default", "app")), "app Running");
    controllers.kubelet("node-a").crash();
    drbd.crashNode("node-a");
    server.delete("pods", "default", "app", { gracePeriodSeconds: 0 });
    server.create(pod("next", { claim: "data", nodeName: "node-b" }));
    await until(() => eventsAbout(server, "next", "FailedAttachVolume").length > 0, "warning");

    // what ha-controller does for a lost node: delete its VolumeAttachment
    server.delete("volumeattachments", undefined, va("pv-1", "node-a"));
    const deletedAt = clock.now();
    await until(
      () => server.get("volumeattachments", undefined, va("pv-1", "node-a")) === undefined,
      "finalizer removed by the attacher",
    );
    await until(() => isRunningAndReady(server.get("pods", "default", "next")), "next Running");
    assert.ok(clock.now() < deletedAt + 360_000, "well before the 6 min force detach");
    assert.ok(
      controllers.log.some((l) =>
        l.message === "sync: volume pv-1 is no longer attached to node node-a"
      ),
    );
  } finally {
    await t.close();
  }
});

Deno.test("the out-of-service taint detaches at once", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, clock, drbd, controllers } = t;
    seed(server);
    server.create(pod("app", { claim: "data", nodeName: "node-a" }));
    await until(() => isRunningAndReady(server.get("pods", "default", "app")), "app Running");
    controllers.kubelet("node-a").crash();
    drbd.crashNode("node-a");
    server.delete("pods", "default", "app", { gracePeriodSeconds: 0 });
    const node = server.get("nodes", undefined, "node-a")!;
    const spec = (node.spec ?? {}) as Record<string, unknown>;
    spec.taints = [{
      key: "node.kubernetes.io/out-of-service",
      value: "nodeshutdown",
      effect: "NoExecute",
    }];
    server.update({ ...node, spec });
    const taintedAt = clock.now();
    await until(
      () => server.get("volumeattachments", undefined, va("pv-1", "node-a")) === undefined,
      "detached",
    );
    assert.ok(clock.now() < taintedAt + 360_000);
  } finally {
    await t.close();
  }
});

Deno.test("a VolumeAttachment deleted while its pod still needs it there is attached again at the sync", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, controllers } = t;
    seed(server);
    server.create(pod("app", { claim: "data", nodeName: "node-a" }));
    await until(() => isRunningAndReady(server.get("pods", "default", "app")), "app Running");
    const name = va("pv-1", "node-a");
    const first = server.get("volumeattachments", undefined, name)!.metadata.uid;
    // Deleted too early: the pod is still on node-a (only terminating, or not even that).
    server.delete("volumeattachments", undefined, name);
    await until(() => {
      const again = server.get("volumeattachments", undefined, name);
      return again !== undefined && again.metadata.uid !== first;
    }, "a new VolumeAttachment to node-a");
    assert.ok(
      controllers.log.some((l) =>
        l.message === "sync: volume pv-1 is no longer attached to node node-a"
      ),
    );
  } finally {
    await t.close();
  }
});
