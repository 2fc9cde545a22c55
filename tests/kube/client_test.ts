// The client's errors say what went wrong in one readable line.

import assert from "node:assert/strict";
import { ApiServer } from "../sim/apiserver/mod.ts";
import { ApiError, KubeClient } from "../../lib/kube/client.ts";

Deno.test("a dead API server is a Transport error naming the reason, not a page of URL", async () => {
  const server = await ApiServer.start({ tls: true });
  const client = await KubeClient.connect({
    kubeconfig: server.kubeconfigPath,
    requestTimeoutMs: 2_000,
  });
  await server.close();
  try {
    const err = await client.request("list", "GET", "/api/v1/pods", {
      query: { fieldSelector: "spec.nodeName=node-a" },
    }).then(() => undefined, (e) => e);
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.status, 0);
    assert.equal(err.reason, "Transport");
    assert.match(
      err.message,
      /^list \/api\/v1\/pods failed \(transport\): .*[Cc]onnection refused/,
    );
    assert.doesNotMatch(err.message, /fieldSelector|for url/);
  } finally {
    client.close();
  }
});

Deno.test("a request the server never answers times out with a clear message", async () => {
  const server = await ApiServer.start({ tls: true });
  const client = await KubeClient.connect({
    kubeconfig: server.kubeconfigPath,
    requestTimeoutMs: 300,
  });
  server.faults.add({ verb: "get", resource: "nodes", hang: true });
  try {
    const err = await client.request("get", "GET", "/api/v1/nodes/node-b").then(
      () => undefined,
      (e) => e,
    );
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.reason, "Timeout");
    assert.equal(err.message, "get /api/v1/nodes/node-b failed (timeout): no answer within 300ms");
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("a missing kubeconfig is one clear error", async () => {
  await assert.rejects(
    KubeClient.connect({ kubeconfig: "/nonexistent/kubeconfig", requestTimeoutMs: 0 }),
    /^KubeConfigError: kubeconfig \/nonexistent\/kubeconfig \(--kubeconfig\) does not exist$/,
  );
});
