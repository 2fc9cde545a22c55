// The agent process in the configuration production runs: no kubeconfig,
// the service-account token and CA at /var/run/secrets/kubernetes.io/
// serviceaccount, the address in KUBERNETES_SERVICE_HOST/PORT, and the
// production permission flags. It authenticates as its service account only,
// and a node crash leads to the same fail-over as with a kubeconfig.
//
// The service-account directory is mounted in a private mount namespace
// (tests/agent/harness.ts's startInClusterAgent), which needs root; where
// that is not possible the test says so loudly and is reported as ignored.

import assert from "node:assert/strict";
import { ApiServer } from "../sim/apiserver/mod.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { waitFor } from "../helpers.ts";
import {
  inClusterUnavailable,
  markNotReady,
  resourceAfterNodeBCrash,
  resourceOnNodeA,
  seedCluster,
  startInClusterAgent,
  waitHealthy,
} from "./harness.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const skipReason = inClusterUnavailable();
if (skipReason !== null) {
  console.warn(`tests/agent/in_cluster_test.ts: SKIPPING the in-cluster test: ${skipReason}`);
}

Deno.test({
  name:
    "in-cluster: the agent authenticates with its service-account token only and fails over a crashed node",
  ignore: skipReason !== null,
  fn: async () => {
    const server = await ApiServer.start({ tls: true });
    const drbd = await FakeDrbd.create();
    await drbd.setResources([resourceOnNodeA()]);
    const ids = seedCluster(server);
    const agent = await startInClusterAgent(server, drbd, [
      "--fail-over-timeout",
      "1s",
      "--reconcile-interval",
      "1s",
    ]);
    try {
      await waitHealthy(agent);
      assert.equal(server.writes().length, 0, "a healthy cluster causes no write");

      markNotReady(server, "node-b");
      await drbd.setResources([resourceAfterNodeBCrash()]);
      await waitFor(
        () => server.get("volumeattachments", undefined, "csi-pvc-1-node-b") === undefined,
        20_000,
        () => `VolumeAttachment deleted (agent stderr:\n${agent.stderr()})`,
      );
      const nodeB = server.get("nodes", undefined, "node-b") as Obj;
      assert.deepEqual(nodeB.spec.taints, [
        { key: "drbd.linbit.com/lost-quorum", effect: "NoSchedule" },
      ]);
      assert.equal(server.get("pods", "default", "web-0"), undefined, "pod force-deleted");
      const vaDelete = server.requests.find((r) =>
        r.method === "DELETE" && r.resource === "volumeattachments"
      )!;
      assert.equal((vaDelete.body as Obj).preconditions?.uid, ids.vaUid);

      const users = [...new Set(server.requests.map((r) => r.user))];
      assert.deepEqual(
        users,
        ["system:serviceaccount:ha:ha-controller"],
        "every request carries the mounted service-account token",
      );
      assert.doesNotMatch(agent.stderr(), /kubeconfig/i, "no kubeconfig is looked for or read");
    } finally {
      assert.equal(await agent.stop(), 0, "agent exits 0 on SIGTERM");
      await server.close();
      await drbd.cleanup();
    }
  },
});
