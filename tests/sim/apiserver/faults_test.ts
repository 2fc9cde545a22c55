import assert from "node:assert/strict";
import { ApiServer } from "./mod.ts";
import { readWatch, serverFetch, waitFor } from "./testing.ts";
import { deadline } from "../../helpers.ts";

async function withServer(
  body: (server: ApiServer, f: ReturnType<typeof serverFetch>) => Promise<void>,
  options: Parameters<typeof ApiServer.start>[0] = {},
): Promise<void> {
  const server = await ApiServer.start(options);
  const f = serverFetch(server);
  try {
    await body(server, f);
  } finally {
    f.close();
    await server.close();
  }
}

async function statusOf(response: Promise<Response>): Promise<number> {
  const r = await response;
  await r.body?.cancel();
  return r.status;
}

Deno.test("a fault with a status answers that Status for the given number of requests", async () => {
  await withServer(async (server, f) => {
    const id = server.faults.add({ verb: "list", resource: "pods", status: 500, times: 2 });
    assert.equal(typeof id, "number");
    const first = await f("/api/v1/pods");
    assert.equal(first.status, 500);
    assert.equal(first.headers.get("content-type"), "application/json");
    const body = await first.json();
    assert.equal(body.kind, "Status");
    assert.equal(body.reason, "InternalError");
    assert.equal(body.code, 500);
    assert.equal(await statusOf(f("/api/v1/nodes")), 200, "other resources are not hit");
    assert.equal(await statusOf(f("/api/v1/namespaces/default/pods")), 500);
    assert.equal(await statusOf(f("/api/v1/pods")), 200, "the fault is used up");
    assert.deepEqual(server.faults.list(), []);
    assert.deepEqual(server.requests.filter((r) => r.faulted).map((r) => r.status), [500, 500]);
  });
});

Deno.test("a 429 fault sends Retry-After; faults can target eviction and subresources", async () => {
  await withServer(async (server, f) => {
    server.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p", namespace: "default" },
      spec: { nodeName: "n", containers: [{ name: "c", image: "i" }] },
      status: { phase: "Running" },
    });
    server.faults.add({ verb: "evict", status: 429 });
    server.faults.add({ resource: "pods/status", status: 503, message: "try later" });
    const evict = await f("/api/v1/namespaces/default/pods/p/eviction", {
      method: "POST",
      body: JSON.stringify({ metadata: { name: "p" } }),
    });
    assert.equal(evict.status, 429);
    assert.equal(evict.headers.get("retry-after"), "1");
    assert.equal((await evict.json()).reason, "TooManyRequests");
    const status = await f("/api/v1/namespaces/default/pods/p/status");
    assert.equal(status.status, 503);
    assert.deepEqual(await status.json(), {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "try later",
      reason: "ServiceUnavailable",
      code: 503,
    });
    assert.equal(await statusOf(f("/api/v1/namespaces/default/pods/p")), 200);
    server.faults.clear();
    assert.equal(await statusOf(f("/api/v1/namespaces/default/pods/p/status")), 200);
  });
});

Deno.test("a fault with a rate hits only part of the requests, the same way every run", async () => {
  const outcomes: number[][] = [];
  for (let run = 0; run < 2; run++) {
    await withServer(async (server, f) => {
      server.faults.add({ verb: "get", status: 500, rate: 0.5 });
      const codes: number[] = [];
      for (let i = 0; i < 20; i++) codes.push(await statusOf(f("/api/v1/namespaces/default")));
      outcomes.push(codes);
    }, { faultSeed: 7 });
  }
  const failed = outcomes[0].filter((c) => c === 500).length;
  assert.ok(failed > 0 && failed < 20, `some but not all of 20 failed, got ${failed}`);
  assert.deepEqual(outcomes[0], outcomes[1]);
});

Deno.test("latency delays only the matching request", async () => {
  await withServer(async (server, f) => {
    // Longer than an unrelated request takes on a loaded machine.
    server.faults.add({ verb: "get", resource: "namespaces", latencyMs: deadline(600) });
    let slowDone = false;
    const slow = f("/api/v1/namespaces/default").then(async (r) => {
      slowDone = true;
      await r.body?.cancel();
      return r.status;
    });
    assert.equal(await statusOf(f("/api/v1/nodes")), 200);
    assert.equal(slowDone, false, "the delayed request is still pending");
    assert.equal(await slow, 200);
    assert.equal(server.requests.find((r) => r.resource === "namespaces")?.faulted, undefined);
  });
});

Deno.test("a held request is answered, as usual, only once its promise settles", async () => {
  await withServer(async (server, f) => {
    let release = () => {};
    const held = new Promise<void>((resolve) => release = resolve);
    server.faults.add({ verb: "delete", resource: "namespaces", until: held, times: 1 });
    server.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: "held" } });
    let answered = false;
    const deletion = f("/api/v1/namespaces/held", { method: "DELETE" }).then(async (r) => {
      answered = true;
      await r.body?.cancel();
      return r.status;
    });
    await waitFor(() => server.requests.length === 1, { what: "the deletion to arrive" });
    // Later requests, even one of the same kind, are answered meanwhile.
    assert.equal(await statusOf(f("/api/v1/namespaces/held")), 200);
    assert.equal(await statusOf(f("/api/v1/namespaces/other", { method: "DELETE" })), 404);
    assert.equal(answered, false, "the held deletion is still pending");
    assert.ok(server.get("namespaces", undefined, "held"), "not carried out while held");
    assert.equal(server.requests[0].status, 0, "recorded without an answer");
    release();
    assert.equal(await deletion, 200);
    assert.equal(server.get("namespaces", undefined, "held"), undefined);
    assert.equal(server.requests[0].status, 200);
    assert.deepEqual(server.faults.list(), []);
  });
});

Deno.test("a hanging request is answered only when the server closes, even if the client gave up", async () => {
  const server = await ApiServer.start({});
  const f = serverFetch(server);
  try {
    server.faults.add({ verb: "patch", hang: true });
    const abort = new AbortController();
    const gaveUp = f("/api/v1/nodes/x", {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: "{}",
      signal: abort.signal,
    });
    await waitFor(() => server.requests.length === 1, { what: "the request to arrive" });
    abort.abort();
    await assert.rejects(gaveUp);
    const pending = f("/api/v1/nodes/y", {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: "{}",
    });
    await waitFor(() => server.requests.length === 2, { what: "the second request to arrive" });
    await server.close();
    const answer = await pending;
    assert.equal(answer.status, 503);
    await answer.body?.cancel();
  } finally {
    f.close();
    await server.close();
  }
});

Deno.test("watch requests can be failed by a fault", async () => {
  await withServer(async (server, f) => {
    server.faults.add({ verb: "watch", resource: "nodes", status: 500, times: 1 });
    assert.equal(await statusOf(f("/api/v1/nodes?watch=true")), 500);
    const w = await readWatch(f, "/api/v1/nodes?watch=true");
    assert.equal(w.status, 200);
    assert.equal(server.openWatchCount(), 1);
    await w.cancel();
  });
});

Deno.test("the request log records verb, resource, status and body; writes() keeps the writes", async () => {
  await withServer(async (server, f) => {
    const node = { apiVersion: "v1", kind: "Node", metadata: { name: "n" } };
    await statusOf(f("/api/v1/nodes", { method: "POST", body: JSON.stringify(node) }));
    await statusOf(f("/api/v1/nodes/n"));
    await statusOf(f("/api/v1/nodes"));
    await statusOf(f("/api/v1/nodes/n", {
      method: "PATCH",
      headers: { "content-type": "application/strategic-merge-patch+json" },
      body: JSON.stringify({ spec: { unschedulable: true } }),
    }));
    await statusOf(f("/api/v1/nodes/n", { method: "PUT", body: JSON.stringify(node) }));
    await statusOf(f("/api/v1/nodes/n", { method: "DELETE" }));
    await statusOf(f("/api/v1/nodes/n", { method: "DELETE" }));
    await statusOf(f("/api"));
    await statusOf(f("/api/v1/nodes/n/status", { method: "POST", body: "{}" }));
    assert.deepEqual(
      server.requests.map((r) => [r.method, r.verb, r.resource, r.name, r.status]),
      [
        ["POST", "create", "nodes", undefined, 201],
        ["GET", "get", "nodes", "n", 200],
        ["GET", "list", "nodes", undefined, 200],
        ["PATCH", "patch", "nodes", "n", 200],
        ["PUT", "update", "nodes", "n", 200],
        ["DELETE", "delete", "nodes", "n", 200],
        ["DELETE", "delete", "nodes", "n", 404],
        ["GET", "discovery", undefined, undefined, 200],
        ["POST", "create", "nodes", "n", 405],
      ],
    );
    assert.deepEqual(server.writes().map((r) => r.verb), [
      "create",
      "patch",
      "update",
      "delete",
      "delete",
      "create",
    ]);
    assert.deepEqual(server.writes()[1].body, { spec: { unschedulable: true } });
    assert.equal(server.writes()[1].contentType, "application/strategic-merge-patch+json");
    server.clearRequests();
    assert.equal(server.requests.length, 0);
  });
});
