import assert from "node:assert/strict";
import { VirtualCluster } from "./cluster.ts";

/** The API writes of a run, as a comparable trace. */
function writeTrace(cluster: VirtualCluster): string[] {
  return cluster.server.writes().map((r) =>
    `${r.time.toISOString()} ${r.user} ${r.method} ${r.path} ${r.status}`
  );
}

async function crashScenario(seed: number) {
  const cluster = await VirtualCluster.start({ seed });
  try {
    cluster.deployStatefulSet("web");
    assert.ok(
      await cluster.runUntil(() => cluster.runningPod("web-0") !== undefined, 120_000),
      "web-0 runs",
    );
    const first = cluster.runningPod("web-0")!;
    const crashedAt = cluster.clock.now();
    cluster.crash(first);
    const moved = await cluster.runUntil(() => {
      const node = cluster.runningPod("web-0");
      return node !== undefined && node !== first;
    }, 300_000);
    const movedAfter = cluster.clock.now() - crashedAt;
    assert.deepEqual(cluster.refused(), [], "the project's RBAC rules suffice");
    return { cluster, first, moved, movedAfter, trace: writeTrace(cluster) };
  } finally {
    await cluster.stop();
  }
}

Deno.test("virtual cluster: the real agents fail web-0 over after a crash, on virtual time", async () => {
  const t0 = performance.now();
  const run = await crashScenario(1);
  const realMs = performance.now() - t0;
  assert.ok(run.moved, `web-0 moved off ${run.first}`);
  console.log(
    `replacement Running ${run.movedAfter} ms (simulated) after the crash; ${
      Math.round(realMs)
    } ms real; ${run.trace.length} writes`,
  );
});

Deno.test("virtual cluster: the same seed gives the same run", async () => {
  const a = await crashScenario(42);
  const b = await crashScenario(42);
  assert.deepEqual(b.trace, a.trace);
  assert.equal(b.movedAfter, a.movedAfter);
});
