/**
 * The fault campaign's own tests: the kept regression scenarios play clean,
 * the same seed plays the same run, and each rule of the invariant checker
 * does fire when its situation is made on purpose (a checker that cannot
 * fail proves nothing).
 */
import assert from "node:assert/strict";
import { failOverBoundMs, play, type Scenario, scenarioOf } from "./plan.ts";
import { regressions } from "./regressions.ts";
import { VirtualCluster } from "../sim/virtual/cluster.ts";
import { Invariants } from "../sim/virtual/invariants.ts";
import type { KubeObject } from "../sim/apiserver/mod.ts";

for (const { scenario, found, fixed } of regressions) {
  Deno.test(`campaign regression: the scenario of seed ${scenario.seed} plays clean`, async () => {
    const outcome = await play(scenario);
    assert.deepEqual(
      outcome.violations,
      [],
      `once: ${found}; fixed in ${fixed}\nlog:\n${outcome.log.slice(-40).join("\n")}`,
    );
  });
}

Deno.test("campaign: a seed replays the same scenario and the same outcome", async () => {
  const seed = 3;
  assert.deepEqual(scenarioOf(seed), scenarioOf(seed));
  const [a, b] = [await play(scenarioOf(seed)), await play(scenarioOf(seed))];
  assert.deepEqual(b.violations, a.violations);
  assert.equal(b.simulatedSeconds, a.simulatedSeconds);
  // Only the kubeconfig's temporary folder differs between two runs.
  const normal = (log: string[]) =>
    log.map((line) => line.replace(/apiserver-sim-[0-9a-f]+/g, "apiserver-sim-TMP"));
  assert.deepEqual(normal(b.log), normal(a.log));
  assert.ok(
    a.log.every((line) => !line.includes("[object Object]")),
    "errors read as text",
  );
});

Deno.test("campaign: without agents, a crash of the pod's node breaks L1", async () => {
  const scenario: Scenario = {
    seed: 5,
    nodes: ["node-a", "node-b", "node-c"],
    replicas: { diskful: ["node-a", "node-b"], diskless: ["node-c"] },
    workloads: [{ name: "app0", kind: "StatefulSet" }],
    faults: [],
  };
  // Find where the pod runs, then crash that node in the same seed.
  const cluster = await VirtualCluster.start({ seed: 5, agents: false });
  let node: string | undefined;
  try {
    cluster.deployStatefulSet("app0");
    await cluster.runUntil(() => cluster.workloadNode("app0") !== undefined, 180_000);
    node = cluster.workloadNode("app0");
  } finally {
    await cluster.stop();
  }
  assert.ok(node, "app0 runs");
  const outcome = await play(
    { ...scenario, faults: [{ at: 1_000, kind: "crash", node, forMs: 600_000 }] },
    { agents: false },
  );
  const l1 = outcome.violations.filter((v) => v.rule === "L1");
  assert.ok(l1.length > 0, `expected L1, got ${JSON.stringify(outcome.violations)}`);
  assert.match(l1[0].detail, new RegExp(`app0 not running ${failOverBoundMs / 1000}s after`));
  // The same crash with the agents fails over in time.
  const withAgents = await play({
    ...scenario,
    faults: [{ at: 1_000, kind: "crash", node, forMs: 600_000 }],
  });
  assert.deepEqual(withAgents.violations, []);
});

Deno.test("campaign: the checker reports S1, S3 and S4 requests, S2 double writers and L3 all nodes tainted", async () => {
  const cluster = await VirtualCluster.start({ seed: 8, agents: false });
  try {
    cluster.deployStatefulSet("app0");
    await cluster.runUntil(() => cluster.workloadNode("app0") !== undefined, 180_000);
    const node = cluster.workloadNode("app0")!;
    const other = cluster.nodes.find((n) => n !== node)!;
    const invariants = new Invariants(cluster, 16_000);
    // A node counts as healthy for S3 once it has been so for a while.
    invariants.check();
    await cluster.run(2_000);
    invariants.check();
    // S1: deleting the pod whose node can still write.
    invariants.onAgentRequest({
      node: other,
      method: "DELETE",
      path: "/api/v1/namespaces/default/pods/app0-0",
      body: undefined,
    });
    // S3: a lost-quorum taint on a healthy node.
    invariants.onAgentRequest({
      node: other,
      method: "PUT",
      path: `/api/v1/nodes/${node}`,
      body: { spec: { taints: [{ key: "drbd.linbit.com/lost-quorum", effect: "NoSchedule" }] } },
    });
    // S4: a destructive request long after the agent's DRBD became unreadable.
    invariants.unreadableSince.set(other, cluster.clock.now() - 60_000);
    invariants.onAgentRequest({
      node: other,
      method: "POST",
      path: "/api/v1/namespaces/default/pods/app0-0/eviction",
      body: {},
    });
    // S2: quorum off and a split: two Primaries that both write.
    const [a, b] = cluster.nodes;
    cluster.drbd.addResource("split", { diskful: [a, b], config: { quorum: "off" } });
    cluster.drbd.partition(a, b);
    await cluster.run(30_000);
    assert.deepEqual(cluster.drbd.promote(a, "split"), { ok: true });
    assert.deepEqual(cluster.drbd.promote(b, "split"), { ok: true });
    invariants.check();
    // L3: every node tainted lost-quorum at once.
    for (const name of cluster.nodes) {
      const stored = cluster.server.peek("nodes", undefined, name)!;
      cluster.server.update({
        ...stored,
        spec: {
          ...(stored as { spec?: object }).spec,
          taints: [{ key: "drbd.linbit.com/lost-quorum", effect: "NoSchedule" }],
        },
      } as KubeObject);
    }
    invariants.check();
    const rules = invariants.violations.map((v) => v.rule);
    assert.deepEqual(
      rules.toSorted(),
      ["L3", "S1", "S1", "S2", "S3", "S4"],
      JSON.stringify(invariants.violations),
    );
  } finally {
    await cluster.stop();
  }
});
