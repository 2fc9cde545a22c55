import assert from "node:assert/strict";
import type { KubeObject } from "../apiserver/objects.ts";
import { pathString } from "../apiserver/objects.ts";
import { attachmentName, linstorDriver } from "./kube_util.ts";
import {
  eventsAbout,
  isRunningAndReady,
  linstorPv,
  simulatedTime,
  startTestCluster,
  statefulSet,
  until,
} from "./testing.ts";
import { linstorProvisioner } from "./volume_binder.ts";

function vaName(pv: string, node: string): string {
  return attachmentName({ driver: linstorDriver, volumeHandle: pv }, node);
}

function nodeOf(pod: KubeObject | undefined): string {
  return pod === undefined ? "" : pathString(pod, "spec.nodeName");
}

Deno.test("a StatefulSet pod gets its claim bound, is scheduled where the volume is, attached and Running", async () => {
  const t = await startTestCluster();
  try {
    const { server, drbd } = t;
    server.create(
      linstorPv("pvc-web-0", {
        claim: { namespace: "default", name: "data-web-0" },
        nodes: ["node-b", "node-c"],
      }),
    );
    server.create(statefulSet("web"));
    await until(() => isRunningAndReady(server.get("pods", "default", "web-0")), "web-0 Running");

    const claim = server.get("persistentvolumeclaims", "default", "data-web-0")!;
    assert.equal(pathString(claim, "spec.volumeName"), "pvc-web-0");
    assert.equal(pathString(claim, "status.phase"), "Bound");
    assert.equal(
      pathString(server.get("persistentvolumes", undefined, "pvc-web-0"), "status.phase"),
      "Bound",
    );

    const pod = server.get("pods", "default", "web-0")!;
    const node = nodeOf(pod);
    assert.ok(node === "node-b" || node === "node-c", `scheduled where the volume is, got ${node}`);
    const owner = (pod.metadata.ownerReferences as Record<string, unknown>[])[0];
    assert.equal(owner.kind, "StatefulSet");
    assert.equal(owner.controller, true);
    assert.equal(pod.metadata.labels?.["statefulset.kubernetes.io/pod-name"], "web-0");

    const va = server.get("volumeattachments", undefined, vaName("pvc-web-0", node))!;
    assert.ok(va, "VolumeAttachment named csi-<sha256(handle+driver+node)>");
    assert.deepEqual(va.metadata.finalizers, ["external-attacher/linstor-csi-linbit-com"]);
    assert.equal(pathString(va, "spec.attacher"), linstorDriver);
    assert.equal(pathString(va, "spec.source.persistentVolumeName"), "pvc-web-0");
    assert.equal(pathString(va, "status.attached"), "true");
    assert.ok(drbd.isPrimary(node, "pvc-web-0"));
    assert.equal(drbd.openCount(node, "pvc-web-0"), 1);
    const nodeObj = server.get("nodes", undefined, node)!;
    const unique = `kubernetes.io/csi/${linstorDriver}^pvc-web-0`;
    assert.deepEqual((nodeObj.status as Record<string, unknown>).volumesInUse, [unique]);
    assert.deepEqual(
      (nodeObj.status as Record<string, unknown>).volumesAttached,
      [{ name: unique, devicePath: "" }],
    );

    const scheduled = server.list("events.events.k8s.io").filter((e) =>
      pathString(e, "regarding.name") === "web-0" && e.reason === "Scheduled"
    );
    assert.equal(scheduled.length, 1);
    assert.equal(scheduled[0].reportingController, "default-scheduler");
    assert.equal(scheduled[0].note, `Successfully assigned default/web-0 to ${node}`);
    assert.deepEqual(
      eventsAbout(server, "web", "SuccessfulCreate").map((e) => e.message).sort(),
      [
        "create Claim data-web-0 Pod web-0 in StatefulSet web success",
        "create Pod web-0 in StatefulSet web successful",
      ],
    );
    assert.deepEqual(
      eventsAbout(server, "web-0", "SuccessfulAttachVolume").map((e) => e.message),
      ['AttachVolume.Attach succeeded for volume "pvc-web-0" '],
    );
    await until(
      () =>
        pathString(server.get("statefulsets", "default", "web"), "status.readyReplicas") === "1",
      "StatefulSet status",
    );
  } finally {
    await t.close();
  }
});

Deno.test("OrderedReady: web-1 waits for web-0; claims come from the provisioner", async () => {
  const t = await startTestCluster({ provisioner: linstorProvisioner() });
  try {
    const { server } = t;
    server.create(statefulSet("db", { replicas: 2 }));
    await until(
      () =>
        isRunningAndReady(server.get("pods", "default", "db-0")) &&
        isRunningAndReady(server.get("pods", "default", "db-1")),
      "db-0 and db-1 Running",
    );
    const db0 = server.get("pods", "default", "db-0")!;
    const db1 = server.get("pods", "default", "db-1")!;
    assert.ok(
      Date.parse(db1.metadata.creationTimestamp!) >=
        Date.parse(pathString(db0, "status.startTime")),
      "db-1 created only after db-0 started",
    );
    assert.notEqual(nodeOf(db0), nodeOf(db1), "spread by pod count");
    const pv = pathString(
      server.get("persistentvolumeclaims", "default", "data-db-1"),
      "spec.volumeName",
    );
    const claimUid = server.get("persistentvolumeclaims", "default", "data-db-1")!.metadata.uid;
    assert.equal(pv, `pvc-${claimUid}`);
    assert.equal(eventsAbout(server, "data-db-1", "ProvisioningSucceeded").length, 1);
  } finally {
    await t.close();
  }
});

Deno.test("a crashed node: Terminating pod blocks recreation, Multi-Attach for the replacement, force detach after 6 min", async () => {
  const t = await startTestCluster();
  try {
    const { server, clock, drbd, controllers } = t;
    server.create(linstorPv("pvc-web-0", { claim: { namespace: "default", name: "data-web-0" } }));
    server.create(statefulSet("web"));
    await until(() => isRunningAndReady(server.get("pods", "default", "web-0")), "web-0 Running");
    const old = server.get("pods", "default", "web-0")!;
    const lost = nodeOf(old);

    controllers.kubelet(lost).crash();
    drbd.crashNode(lost);
    await until(
      () => server.get("pods", "default", "web-0")?.metadata.deletionTimestamp !== undefined,
      "web-0 evicted",
      15_000,
    );
    await simulatedTime(clock, 60_000);
    const stuck = server.get("pods", "default", "web-0")!;
    assert.equal(stuck.metadata.uid, old.metadata.uid, "no replacement while the old pod exists");
    assert.ok(
      controllers.log.some((l) => l.message.includes("waiting for Pod default/web-0 to Terminate")),
    );

    // what an operator (or ha-controller) does: force delete
    server.delete("pods", "default", "web-0", { gracePeriodSeconds: 0 });
    const forcedAt = clock.now();
    await until(() => {
      const p = server.get("pods", "default", "web-0");
      return p !== undefined && p.metadata.uid !== old.metadata.uid && nodeOf(p) !== "";
    }, "replacement scheduled");
    const replacement = server.get("pods", "default", "web-0")!;
    const target = nodeOf(replacement);
    assert.notEqual(target, lost, "not on the tainted node");
    await until(
      () => eventsAbout(server, "web-0", "FailedAttachVolume").length > 0,
      "Multi-Attach warning",
    );
    const warnings = eventsAbout(server, "web-0", "FailedAttachVolume");
    assert.equal(warnings.length, 1, "once per pod");
    assert.equal(warnings[0].type, "Warning");
    assert.equal(
      warnings[0].message,
      'Multi-Attach error for volume "pvc-web-0" Volume is already exclusively attached to one node and can\'t be attached to another',
    );
    assert.equal(pathString(warnings[0], "involvedObject.uid"), replacement.metadata.uid);
    assert.ok(server.get("volumeattachments", undefined, vaName("pvc-web-0", lost)));

    await until(
      () => server.get("volumeattachments", undefined, vaName("pvc-web-0", lost)) === undefined,
      "old VolumeAttachment force-detached",
    );
    assert.ok(clock.now() >= forcedAt + 360_000, "not before 6 simulated minutes");
    assert.ok(
      drbd.calls.some((c) => c.op === "demote" && c.node === lost && !c.ok),
      "the dead node could not demote; the finalizer went anyway",
    );
    await until(
      () => isRunningAndReady(server.get("pods", "default", "web-0")),
      "replacement Running",
    );
    assert.ok(drbd.isPrimary(target, "pvc-web-0"));
    assert.equal(
      eventsAbout(server, "web-0", "FailedAttachVolume").length,
      1,
      "still once per pod",
    );
  } finally {
    await t.close();
  }
});
