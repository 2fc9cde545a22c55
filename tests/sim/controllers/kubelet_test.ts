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

Deno.test("the kubelet confirms a deletion only when the unmount completes: frozen I/O keeps the pod Terminating", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, clock, drbd, controllers } = t;
    server.create(linstorPv("pv-1", { claim: { namespace: "default", name: "data" } }));
    server.create(claim("data"));
    server.create(pod("app", { claim: "data", nodeName: "node-a" }));
    await until(() => isRunningAndReady(server.get("pods", "default", "app")), "app Running");
    assert.equal(drbd.openCount("node-a", "pv-1"), 1);

    drbd.setIo("node-a", "pv-1", "frozen");
    server.delete("pods", "default", "app");
    await until(
      () => controllers.log.some((l) => l.message.includes("hangs: I/O frozen")),
      "unmount hanging",
    );
    await simulatedTime(clock, 30_000);
    const terminating = server.get("pods", "default", "app");
    assert.ok(terminating?.metadata.deletionTimestamp, "still Terminating");
    assert.equal(drbd.openCount("node-a", "pv-1"), 1);
    assert.ok(drbd.calls.filter((c) => c.op === "close" && !c.ok).length > 1, "retried");
    assert.ok(server.get("volumeattachments", undefined, va("pv-1", "node-a")), "still attached");
    assert.equal(eventsAbout(server, "app", "Killing")[0]?.message, "Stopping container app");

    drbd.setIo("node-a", "pv-1", "ok");
    await until(() => server.get("pods", "default", "app") === undefined, "deletion confirmed");
    assert.equal(drbd.openCount("node-a", "pv-1"), 0);
    await until(
      () => server.get("volumeattachments", undefined, va("pv-1", "node-a")) === undefined,
      "detached",
    );
    assert.equal(drbd.isPrimary("node-a", "pv-1"), false, "demoted on detach");
  } finally {
    await t.close();
  }
});

Deno.test("a dead kubelet never confirms a deletion; once restored it does", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, clock, drbd, controllers } = t;
    server.create(linstorPv("pv-1", { claim: { namespace: "default", name: "data" } }));
    server.create(claim("data"));
    server.create(pod("app", { claim: "data", nodeName: "node-a" }));
    await until(() => isRunningAndReady(server.get("pods", "default", "app")), "app Running");
    const uid = server.get("pods", "default", "app")!.metadata.uid;

    controllers.kubelet("node-a").crash();
    server.delete("pods", "default", "app");
    await simulatedTime(clock, 40_000);
    assert.equal(server.get("pods", "default", "app")?.metadata.uid, uid, "still there");
    assert.equal(drbd.openCount("node-a", "pv-1"), 1);

    controllers.kubelet("node-a").restore();
    await until(() => server.get("pods", "default", "app") === undefined, "deletion confirmed");
    assert.equal(drbd.openCount("node-a", "pv-1"), 0);
  } finally {
    await t.close();
  }
});

Deno.test("a pod waits for its volume: attach errors, FailedMount after 2 min, Running once attached", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, drbd } = t;
    assert.ok(drbd.promote("node-b", "pv-1").ok, "someone else is Primary");
    server.create(linstorPv("pv-1", { claim: { namespace: "default", name: "data" } }));
    server.create(claim("data"));
    server.create(pod("app", { claim: "data", nodeName: "node-a" }));
    await until(
      () => eventsAbout(server, "app", "FailedAttachVolume").length > 0,
      "attach failure reported",
    );
    const attachment = server.get("volumeattachments", undefined, va("pv-1", "node-a"))!;
    assert.match(pathString(attachment, "status.attachError.message"), /Multiple primaries/);
    assert.match(
      eventsAbout(server, "app", "FailedAttachVolume")[0].message as string,
      /^AttachVolume\.Attach failed for volume "pv-1" : .*Multiple primaries/,
    );
    await until(() => eventsAbout(server, "app", "FailedMount").length > 0, "FailedMount");
    assert.equal(
      eventsAbout(server, "app", "FailedMount")[0].message,
      "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data], " +
        "failed to process volumes=[]: timed out waiting for the condition",
    );
    assert.equal(pathString(server.get("pods", "default", "app"), "status.phase"), "Pending");

    assert.ok(drbd.demote("node-b", "pv-1").ok);
    await until(() => isRunningAndReady(server.get("pods", "default", "app")), "app Running");
    assert.ok(drbd.isPrimary("node-a", "pv-1"));
  } finally {
    await t.close();
  }
});

Deno.test("a pod waiting for its volume shows ContainerCreating; a rebooted node restarts its pods", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, drbd, controllers } = t;
    assert.ok(drbd.promote("node-b", "pv-1").ok, "someone else is Primary");
    server.create(linstorPv("pv-1", { claim: { namespace: "default", name: "data" } }));
    server.create(claim("data"));
    server.create(pod("app", { claim: "data", nodeName: "node-a" }));
    await until(
      () =>
        JSON.stringify(server.get("pods", "default", "app")?.status).includes("ContainerCreating"),
      "ContainerCreating",
    );
    const waiting = server.get("pods", "default", "app")!;
    const status = waiting.status as {
      phase: string;
      containerStatuses: { state: { waiting?: { reason: string } } }[];
    };
    assert.equal(status.phase, "Pending");
    assert.equal(status.containerStatuses[0].state.waiting?.reason, "ContainerCreating");
    assert.ok(drbd.demote("node-b", "pv-1").ok);
    await until(() => isRunningAndReady(server.get("pods", "default", "app")), "app Running");

    controllers.kubelet("node-a").crash();
    drbd.crashNode("node-a");
    drbd.restoreNode("node-a", { rebooted: true });
    assert.equal(drbd.openCount("node-a", "pv-1"), 0);
    controllers.kubelet("node-a").restore({ rebooted: true });
    await until(() => drbd.openCount("node-a", "pv-1") === 1, "reopened after the reboot");
    assert.ok(isRunningAndReady(server.get("pods", "default", "app")));
  } finally {
    await t.close();
  }
});
