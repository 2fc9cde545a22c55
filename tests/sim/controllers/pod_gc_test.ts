import assert from "node:assert/strict";
import { pathString } from "../apiserver/objects.ts";
import { attachmentName, linstorDriver } from "./kube_util.ts";
import {
  claim,
  isRunningAndReady,
  linstorPv,
  pod,
  startTestCluster,
  statefulSet,
  until,
} from "./testing.ts";

Deno.test("deleting the Node object of a dead node frees its StatefulSet pod after the quarantine", async () => {
  const t = await startTestCluster();
  try {
    const { server, clock, drbd, controllers } = t;
    server.create(linstorPv("pvc-web-0", { claim: { namespace: "default", name: "data-web-0" } }));
    server.create(statefulSet("web"));
    await until(() => isRunningAndReady(server.get("pods", "default", "web-0")), "web-0 Running");
    const old = server.get("pods", "default", "web-0")!;
    const lost = pathString(old, "spec.nodeName");
    controllers.kubelet(lost).crash();
    drbd.crashNode(lost);
    server.delete("nodes", undefined, lost);
    const deletedAt = clock.now();
    await until(
      () => server.get("pods", "default", "web-0")?.metadata.uid !== old.metadata.uid,
      "old pod collected",
    );
    assert.ok(clock.now() >= deletedAt + 40_000, "not before the 40 s quarantine");
    assert.ok(controllers.log.some((l) => l.message.includes(`node ${lost} no longer exists`)));
    // no Node, no mounted volume to wait for: the replacement attaches elsewhere
    await until(() => isRunningAndReady(server.get("pods", "default", "web-0")), "replacement");
    assert.notEqual(pathString(server.get("pods", "default", "web-0"), "spec.nodeName"), lost);
  } finally {
    await t.close();
  }
});

Deno.test("a Terminating pod on a NotReady out-of-service node is force deleted", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, drbd, controllers } = t;
    server.create(linstorPv("pv-1", { claim: { namespace: "default", name: "data" } }));
    server.create(claim("data"));
    server.create(pod("app", { claim: "data", nodeName: "node-a" }));
    await until(() => isRunningAndReady(server.get("pods", "default", "app")), "app Running");
    controllers.kubelet("node-a").crash();
    drbd.crashNode("node-a");
    server.delete("pods", "default", "app");
    await until(() => {
      const node = server.get("nodes", undefined, "node-a")!;
      return JSON.stringify(node.status).includes("NodeStatusUnknown");
    }, "node-a NotReady");
    const node = server.get("nodes", undefined, "node-a")!;
    const spec = node.spec as { taints?: Record<string, string>[] };
    server.update({
      ...node,
      spec: {
        ...spec,
        taints: [...(spec.taints ?? []), {
          key: "node.kubernetes.io/out-of-service",
          value: "nodeshutdown",
          effect: "NoExecute",
        }],
      },
    });
    await until(() => server.get("pods", "default", "app") === undefined, "app force deleted");
    const va = attachmentName({ driver: linstorDriver, volumeHandle: "pv-1" }, "node-a");
    await until(() => server.get("volumeattachments", undefined, va) === undefined, "detached");
  } finally {
    await t.close();
  }
});
