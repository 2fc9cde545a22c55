import assert from "node:assert/strict";
import type { KubeObject } from "../apiserver/objects.ts";
import { pathString } from "../apiserver/objects.ts";
import {
  eventsAbout,
  isRunningAndReady,
  pod,
  simulatedTime,
  startTestCluster,
  until,
} from "./testing.ts";

function readyCondition(node: KubeObject | undefined) {
  const conditions = (node?.status as { conditions?: Record<string, string>[] } | undefined)
    ?.conditions ?? [];
  return conditions.find((c) => c.type === "Ready");
}

function taints(node: KubeObject | undefined): Record<string, string>[] {
  return ((node?.spec as { taints?: Record<string, string>[] } | undefined)?.taints) ?? [];
}

Deno.test("a node whose kubelet stops turns NotReady after the grace period, is tainted unreachable, and recovers", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, controllers } = t;
    server.create(pod("app", { nodeName: "node-a" }));
    await until(() => isRunningAndReady(server.get("pods", "default", "app")), "app Running");
    assert.equal(readyCondition(server.get("nodes", undefined, "node-a"))?.status, "True");

    controllers.kubelet("node-a").crash();
    const lease = server.get("leases", "kube-node-lease", "node-a")!;
    const lastHeartbeat = Date.parse(pathString(lease, "spec.renewTime"));
    await until(
      () => readyCondition(server.get("nodes", undefined, "node-a"))?.status === "Unknown",
      "node-a Ready Unknown",
    );
    const node = server.get("nodes", undefined, "node-a");
    const ready = readyCondition(node)!;
    assert.equal(ready.reason, "NodeStatusUnknown");
    assert.equal(ready.message, "Kubelet stopped posting node status.");
    assert.ok(
      Date.parse(ready.lastTransitionTime) >= lastHeartbeat + 50_000 - 1000,
      "not before the 50 s grace period after the last heartbeat",
    );
    await until(() => taints(server.get("nodes", undefined, "node-a")).length === 2, "taints");
    const added = taints(server.get("nodes", undefined, "node-a"));
    assert.deepEqual(
      added.map((x) => `${x.key}:${x.effect}`).sort(),
      ["node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"],
    );
    assert.ok(added.every((x) => typeof x.timeAdded === "string"));
    assert.equal(readyCondition(server.get("nodes", undefined, "node-b"))?.status, "True");
    assert.deepEqual(taints(server.get("nodes", undefined, "node-b")), []);

    const app = server.get("pods", "default", "app")!;
    assert.equal(isRunningAndReady(app), false, "pod marked not Ready");
    const nodeEvents = eventsAbout(server, "node-a", "NodeNotReady");
    assert.equal(nodeEvents.length, 1);
    assert.equal(nodeEvents[0].message, "Node node-a status is now: NodeNotReady");
    assert.equal(pathString(nodeEvents[0], "source.component"), "node-controller");
    assert.equal(eventsAbout(server, "app", "NodeNotReady")[0]?.message, "Node is not ready");

    controllers.kubelet("node-a").restore();
    await until(
      () =>
        taints(server.get("nodes", undefined, "node-a")).length === 0 &&
        isRunningAndReady(server.get("pods", "default", "app")),
      "taints removed and app Ready again",
    );
    assert.equal(readyCondition(server.get("nodes", undefined, "node-a"))?.status, "True");
    assert.equal(
      server.get("pods", "default", "app")?.metadata.deletionTimestamp,
      undefined,
      "restored before the toleration ran out: not evicted",
    );
    await until(
      () => eventsAbout(server, "app", "TaintManagerEviction").length > 0,
      "pending eviction cancelled",
    );
    const cancelled = eventsAbout(server, "app", "TaintManagerEviction");
    assert.deepEqual(cancelled.map((e) => e.message), ["Cancelling deletion of Pod default/app"]);
  } finally {
    await t.close();
  }
});

Deno.test("taint eviction after 300 s leaves the pod Terminating while the kubelet is dead; pods tolerating forever stay", async () => {
  const t = await startTestCluster({ nodes: ["node-a", "node-b"] });
  try {
    const { server, clock, controllers } = t;
    server.create(pod("app", { nodeName: "node-a" }));
    server.create(pod("agent", {
      nodeName: "node-a",
      // as the DaemonSet controller adds them: NoExecute, no tolerationSeconds
      tolerations: [
        { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute" },
        { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute" },
      ],
    }));
    await until(
      () =>
        isRunningAndReady(server.get("pods", "default", "app")) &&
        isRunningAndReady(server.get("pods", "default", "agent")),
      "pods Running",
    );
    controllers.kubelet("node-a").crash();
    await until(() => taints(server.get("nodes", undefined, "node-a")).length === 2, "taints");
    const taintedAt = Date.parse(
      taints(server.get("nodes", undefined, "node-a"))[0].timeAdded,
    );
    await until(
      () => server.get("pods", "default", "app")?.metadata.deletionTimestamp !== undefined,
      "app marked for deletion",
    );
    const evictedAt = clock.now();
    assert.ok(evictedAt >= taintedAt + 300_000, "not before tolerationSeconds 300");
    const app = server.get("pods", "default", "app")!;
    const conditions = (app.status as { conditions: Record<string, string>[] }).conditions;
    const target = conditions.find((c) => c.type === "DisruptionTarget");
    assert.equal(target?.reason, "DeletionByTaintManager");
    assert.equal(target?.message, "Taint manager: deleting due to NoExecute taint");
    assert.equal(app.metadata.deletionGracePeriodSeconds, 30);
    const marked = eventsAbout(server, "app", "TaintManagerEviction");
    assert.deepEqual(marked.map((e) => e.message), ["Marking for deletion Pod default/app"]);

    await simulatedTime(clock, 120_000);
    assert.ok(server.get("pods", "default", "app"), "the pod stays while its kubelet is dead");
    assert.equal(
      server.get("pods", "default", "agent")?.metadata.deletionTimestamp,
      undefined,
      "a pod tolerating forever is never evicted",
    );

    controllers.kubelet("node-a").restore();
    await until(() => server.get("pods", "default", "app") === undefined, "deletion confirmed");
    assert.ok(server.get("pods", "default", "agent"));
  } finally {
    await t.close();
  }
});
