// On-demand reads of a lost peer: its Node, its pods and its kubelet's Lease.

import assert from "node:assert/strict";
import { ApiServer } from "../sim/apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { fetchPeer } from "../../lib/kube/peers.ts";

async function setup() {
  const server = await ApiServer.start({ tls: true });
  const client = await KubeClient.connect({
    kubeconfig: server.kubeconfigPath,
    requestTimeoutMs: 2_000,
  });
  return {
    server,
    client,
    async close() {
      client.close();
      await server.close();
    },
  };
}

Deno.test("fetchPeer reads the Node, only that node's pods, and the kubelet Lease", async () => {
  const t = await setup();
  try {
    t.server.create({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "node-b" },
      status: { conditions: [{ type: "Ready", status: "True" }] },
    });
    for (const [name, node] of [["on-b", "node-b"], ["on-c", "node-c"]]) {
      t.server.create({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: "default" },
        spec: { nodeName: node, containers: [{ name: "c", image: "busybox" }] },
        status: { phase: "Running" },
      });
    }
    t.server.create({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "node-b", namespace: "kube-node-lease" },
      spec: {
        holderIdentity: "node-b",
        leaseDurationSeconds: 40,
        renewTime: "2026-11-25T02:59:00.123456Z",
      },
    });
    const view = await fetchPeer(t.client, "node-b");
    assert.ok(view.ok, JSON.stringify(view));
    assert.equal(view.node?.name, "node-b");
    assert.equal(view.node?.ready, true);
    assert.deepEqual(view.pods.map((p) => p.name), ["on-b"]);
    const renewTime = Date.parse("2026-11-25T02:59:00.123456Z");
    assert.equal(view.kubeletLease?.renewTime, renewTime);
    assert.equal(view.kubeletLease?.durationSeconds, 40);
    // The age comes from the server's Date header (second resolution), not this machine's clock.
    const serverAge = view.kubeletLease!.ageAtRead;
    assert.ok(Math.abs(serverAge - (Date.now() - renewTime)) < 5_000, `age ${serverAge}`);
  } finally {
    await t.close();
  }
});

Deno.test("fetchPeer: a missing Node or Lease is null; an API error makes the view unusable", async () => {
  const t = await setup();
  try {
    const missing = await fetchPeer(t.client, "gone");
    assert.deepEqual(missing, { ok: true, node: null, pods: [], kubeletLease: null });
    t.server.faults.add({ verb: "list", resource: "pods", status: 500, times: 1 });
    const failed = await fetchPeer(t.client, "gone");
    assert.equal(failed.ok, false);
    assert.match(
      (failed as { error: string }).error,
      /^cannot read node gone and its pods: list \/api\/v1\/pods failed \(500/,
    );
  } finally {
    await t.close();
  }
});
