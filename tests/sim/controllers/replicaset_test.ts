import assert from "node:assert/strict";
import { isRecord, type KubeObject, pathList, pathString } from "../apiserver/objects.ts";
import {
  claim,
  deployment,
  isRunningAndReady,
  linstorPv,
  startTestCluster,
  until,
} from "./testing.ts";

function owner(obj: KubeObject): Record<string, unknown> {
  const owners = pathList(obj, "metadata.ownerReferences").filter(isRecord);
  assert.equal(owners.length, 1, `${obj.metadata.name} has one owner`);
  return owners[0];
}

Deno.test("a Deployment's pod runs from its ReplicaSet; a Terminating pod is replaced at once", async () => {
  const t = await startTestCluster();
  try {
    const { server } = t;
    server.create(linstorPv("pvc-db", { claim: { namespace: "default", name: "db-data" } }));
    server.create(claim("db-data"));
    server.create(deployment("db", { claim: "db-data" }));
    const pods = () => server.list("pods").filter((p) => p.metadata.labels?.app === "db");
    await until(() => pods().some((p) => isRunningAndReady(p)), "a db pod Running");

    const sets = server.list("replicasets");
    assert.equal(sets.length, 1);
    const set = sets[0];
    assert.match(set.metadata.name!, /^db-[0-9a-f]{10}$/);
    assert.equal(owner(set).kind, "Deployment");
    const first = pods()[0];
    assert.ok(first.metadata.name!.startsWith(`${set.metadata.name}-`), first.metadata.name);
    assert.equal(owner(first).kind, "ReplicaSet");
    assert.equal(owner(first).uid, set.metadata.uid);
    assert.ok(
      (first.spec as { tolerations: { key: string }[] }).tolerations.some((x) =>
        x.key === "node.kubernetes.io/unreachable"
      ),
      "default tolerations added as by admission",
    );

    // A pod that is Terminating (its kubelet gone) no longer counts: a new one is created.
    t.controllers.kubelet(pathString(first, "spec.nodeName")).crash();
    server.api.delete(
      { def: server.api.resolve("pods"), namespace: "default", name: first.metadata.name! },
      {},
    );
    await until(
      () => pods().some((p) => p.metadata.name !== first.metadata.name),
      "a second db pod beside the Terminating one",
    );
    const active = pods().filter((p) => p.metadata.deletionTimestamp === undefined);
    assert.equal(active.length, 1, "one active pod");
  } finally {
    await t.close();
  }
});
