import assert from "node:assert/strict";
import { pathString } from "../apiserver/objects.ts";
import { pod, startTestCluster, until } from "./testing.ts";

Deno.test("the scheduler honours taints, tolerations and node selectors, and says why it cannot place a pod", async () => {
  const t = await startTestCluster({
    nodes: [
      { name: "node-a", labels: { zone: "x" } },
      { name: "node-b", labels: { zone: "x" } },
      { name: "node-c", labels: { zone: "y" } },
    ],
  });
  try {
    const { server } = t;
    const b = server.get("nodes", undefined, "node-b")!;
    server.update({
      ...b,
      spec: {
        ...(b.spec as object),
        taints: [{ key: "dedicated", value: "db", effect: "NoSchedule" }],
      },
    });
    const inX = pod("in-x");
    (inX.spec as Record<string, unknown>).nodeSelector = { zone: "x" };
    server.create(inX);
    const tolerant = pod("tolerant", {
      tolerations: [{ key: "dedicated", operator: "Equal", value: "db", effect: "NoSchedule" }],
    });
    (tolerant.spec as Record<string, unknown>).nodeSelector = { zone: "x" };
    const nowhere = pod("nowhere");
    (nowhere.spec as Record<string, unknown>).nodeSelector = { zone: "z" };
    server.create(nowhere);
    await until(
      () => pathString(server.get("pods", "default", "in-x"), "spec.nodeName") !== "",
      "in-x bound",
    );
    assert.equal(pathString(server.get("pods", "default", "in-x"), "spec.nodeName"), "node-a");
    server.create(tolerant);
    await until(
      () => pathString(server.get("pods", "default", "tolerant"), "spec.nodeName") !== "",
      "tolerant bound",
    );
    assert.equal(
      pathString(server.get("pods", "default", "tolerant"), "spec.nodeName"),
      "node-b",
      "the tolerating pod may use the tainted node, which has fewer pods",
    );

    await until(
      () =>
        server.list("events.events.k8s.io").some((e) =>
          pathString(e, "regarding.name") === "nowhere" && e.reason === "FailedScheduling"
        ),
      "FailedScheduling",
    );
    const failed = server.list("events.events.k8s.io").filter((e) =>
      pathString(e, "regarding.name") === "nowhere" && e.reason === "FailedScheduling"
    );
    assert.equal(failed.length, 1);
    assert.equal(
      failed[0].note,
      "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, " +
        "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are " +
        "available: 3 Preemption is not helpful for scheduling.",
    );
    const conditions = (server.get("pods", "default", "nowhere")!.status as {
      conditions: Record<string, string>[];
    }).conditions;
    assert.deepEqual(
      conditions.filter((c) => c.type === "PodScheduled").map((c) => [c.status, c.reason]),
      [["False", "Unschedulable"]],
    );
  } finally {
    await t.close();
  }
});
