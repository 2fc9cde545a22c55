// The fail-over works the same when every node runs Debian 12's drbd-utils
// 9.22 (no `open:` in events2, show --json without defaults).

import assert from "node:assert/strict";
import { SimCluster } from "../sim/cluster.ts";

Deno.test("drbd-utils 9.22 on every node: a crash is failed over", async () => {
  const cluster = await SimCluster.start({
    dialect: "9.22",
    scale: 2,
    agentArgs: ["--fail-over-timeout", "1s", "--reconcile-interval", "1s"],
    // The attach-detach controller's resync (default 1m) bounds how soon the
    // replacement attaches after the agent deleted the old attachment.
    constants: { reconcilerSyncDuration: 1_000 },
  });
  try {
    const show = await new Deno.Command("drbdsetup", {
      args: ["show", "--json"],
      env: cluster.drbd.env(cluster.nodes[0]),
    }).output();
    assert.equal(
      new TextDecoder().decode(show.stdout).trim(),
      "[\n]",
      "9.22 show --json, no resources",
    );
    cluster.deployStatefulSet("web");
    const node = await cluster.waitForRunningPod("web-0");
    await cluster.crash(node);
    const survivor = await cluster.waitForRunningPod("web-0", { notOn: node, timeoutMs: 60_000 });
    assert.notEqual(survivor, node);
    assert.ok(
      cluster.timeline.find(new RegExp(`node ${node} tainted drbd.linbit.com/lost-quorum`)),
    );
  } finally {
    await cluster.stop();
  }
});
