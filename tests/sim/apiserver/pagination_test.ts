// Paginated lists (limit/continue), bulk seeding and the traffic accounting
// of the simulated API server, over HTTP and with the real kubectl.

import assert from "node:assert/strict";
import { ApiServer, continueExpiredMessage, decodeContinue, type KubeObject } from "./mod.ts";
import { readWatch, serverFetch, waitFor } from "./testing.ts";
import { kubectlPath } from "../../tools/mod.ts";

function pod(name: string, nodeName: string, namespace = "default"): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { app: "web" } },
    spec: { nodeName, containers: [{ name: "c", image: "busybox" }] },
    status: { phase: "Running" },
  };
}

function name(i: number): string {
  return `p-${String(i).padStart(4, "0")}`;
}

// deno-lint-ignore no-explicit-any
type List = { metadata: { resourceVersion: string; continue?: string }; items: any[] };

async function withServer(body: (server: ApiServer) => Promise<void>, historyLimit?: number) {
  const server = await ApiServer.start({ historyLimit });
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

Deno.test("limit and continue page through a list in key order, every page at the first page's resourceVersion", async () => {
  await withServer(async (server) => {
    server.createMany(Array.from({ length: 25 }, (_, i) => pod(name(i), "node-a")));
    const f = serverFetch(server);
    const first: List = await (await f("/api/v1/namespaces/default/pods?limit=10")).json();
    assert.equal(first.items.length, 10);
    assert.equal(first.items[0].metadata.name, "p-0000");
    const listRv = first.metadata.resourceVersion;
    const token = decodeContinue(first.metadata.continue!, true);
    assert.deepEqual(token, { key: "default/p-0009", rv: Number(listRv) });
    // The token is the real server's encoding.
    const raw = JSON.parse(atob(first.metadata.continue!));
    assert.deepEqual(raw, {
      v: "meta.k8s.io/v1",
      rv: Number(listRv),
      start: "default/p-0009\u0000",
    });

    // Changes after the first page are not seen by the later pages...
    server.remove("pods", "default", "p-0015");
    server.create(pod("p-0012a", "node-a"));
    const changed = server.get("pods", "default", "p-0020")!;
    server.update({ ...changed, metadata: { ...changed.metadata, labels: { app: "changed" } } });
    const names: string[] = first.items.map((p) => p.metadata.name);
    let next = first.metadata.continue;
    let pages = 1;
    while (next !== undefined) {
      const page: List = await (await f(
        `/api/v1/namespaces/default/pods?limit=10&continue=${encodeURIComponent(next)}`,
      )).json();
      assert.equal(page.metadata.resourceVersion, listRv);
      for (const p of page.items) {
        names.push(p.metadata.name);
        if (p.metadata.name === "p-0020") assert.equal(p.metadata.labels.app, "web");
      }
      next = page.metadata.continue;
      pages++;
    }
    assert.equal(pages, 3);
    assert.deepEqual(names, Array.from({ length: 25 }, (_, i) => name(i)));
    // ...a new list sees them.
    const now: List = await (await f("/api/v1/namespaces/default/pods")).json();
    assert.equal(now.items.length, 25);
    assert.equal(now.metadata.continue, undefined);
    assert.ok(now.items.some((p) => p.metadata.name === "p-0012a"));
    assert.ok(!now.items.some((p) => p.metadata.name === "p-0015"));
    f.close();
  });
});

Deno.test("selectors apply before the limit; a page ends without a token when nothing more matches", async () => {
  await withServer(async (server) => {
    const objects = [];
    for (let i = 0; i < 40; i++) objects.push(pod(name(i), i % 4 === 0 ? "node-a" : "node-b"));
    server.createMany(objects);
    const f = serverFetch(server);
    const first: List = await (await f("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=6"))
      .json();
    assert.deepEqual(first.items.map((p) => p.spec.nodeName), Array(6).fill("node-a"));
    const second: List = await (await f(
      `/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=6&continue=${
        encodeURIComponent(first.metadata.continue!)
      }`,
    )).json();
    assert.equal(second.items.length, 4);
    assert.equal(second.metadata.continue, undefined);
    // Cluster-scoped kinds page too.
    server.createMany(Array.from({ length: 3 }, (_, i) => ({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: `n${i}` },
    })));
    const nodes: List = await (await f("/api/v1/nodes?limit=2")).json();
    assert.equal(nodes.items.length, 2);
    assert.deepEqual(JSON.parse(atob(nodes.metadata.continue!)).start, "n1\u0000");
    const rest: List = await (await f(
      `/api/v1/nodes?limit=2&continue=${encodeURIComponent(nodes.metadata.continue!)}`,
    )).json();
    assert.deepEqual(rest.items.map((n) => n.metadata.name), ["n2"]);
    f.close();
  });
});

Deno.test("a continue token whose snapshot is gone is 410 Expired with a token for an inconsistent rest", async () => {
  await withServer(async (server) => {
    server.createMany(Array.from({ length: 12 }, (_, i) => pod(name(i), "node-a")));
    const f = serverFetch(server);
    const first: List = await (await f("/api/v1/pods?limit=5")).json();
    // More changes than the history keeps: the first page's snapshot cannot be rebuilt.
    for (let i = 0; i < 6; i++) server.create(pod(`q-${i}`, "node-b"));
    const response = await f(
      `/api/v1/pods?limit=5&continue=${encodeURIComponent(first.metadata.continue!)}`,
    );
    assert.equal(response.status, 410);
    const status = await response.json();
    assert.equal(status.kind, "Status");
    assert.equal(status.reason, "Expired");
    assert.equal(status.code, 410);
    assert.equal(status.message, continueExpiredMessage);
    assert.match(
      status.message,
      /^The provided continue parameter is too old to display a consistent list result\./,
    );
    // The Status carries a token that continues from the current state (rv -1).
    const inconsistent = status.metadata.continue as string;
    assert.equal(JSON.parse(atob(inconsistent)).rv, -1);
    const rest: List = await (await f(
      `/api/v1/pods?limit=100&continue=${encodeURIComponent(inconsistent)}`,
    )).json();
    assert.equal(rest.metadata.resourceVersion, String(server.store.resourceVersion));
    assert.deepEqual(
      rest.items.map((p) => p.metadata.name),
      [
        ...Array.from({ length: 7 }, (_, i) => name(i + 5)),
        ...Array.from({ length: 6 }, (_, i) => `q-${i}`),
      ],
    );
    // compact() forgets the history at once.
    const again: List = await (await f("/api/v1/pods?limit=5")).json();
    server.create(pod("r", "node-a"));
    server.compact();
    const gone = await f(
      `/api/v1/pods?limit=5&continue=${encodeURIComponent(again.metadata.continue!)}`,
    );
    assert.equal(gone.status, 410);
    await gone.body?.cancel();
    f.close();
  }, 5);
});

Deno.test("resourceVersion=0 is served whole; bad tokens and continue with a resourceVersion are 400", async () => {
  await withServer(async (server) => {
    server.createMany(Array.from({ length: 8 }, (_, i) => pod(name(i), "node-a")));
    const f = serverFetch(server);
    const cached: List = await (await f("/api/v1/pods?limit=3&resourceVersion=0")).json();
    assert.equal(cached.items.length, 8);
    assert.equal(cached.metadata.continue, undefined);
    const first: List = await (await f("/api/v1/pods?limit=3")).json();
    const token = encodeURIComponent(first.metadata.continue!);
    const withRv = await f(`/api/v1/pods?limit=3&continue=${token}&resourceVersion=5`);
    assert.equal(withRv.status, 400);
    assert.equal(
      (await withRv.json()).message,
      "specifying resource version is not allowed when using continue",
    );
    const bad = await f("/api/v1/pods?limit=3&continue=garbage");
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).message, /^continue key is not valid/);
    const badLimit = await f("/api/v1/pods?limit=ten");
    assert.equal(badLimit.status, 400);
    await badLimit.body?.cancel();
    // A Table answer pages too (kubectl get).
    const table = await (await f("/api/v1/pods?limit=3", {
      headers: { accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json" },
    })).json();
    assert.equal(table.kind, "Table");
    assert.equal(table.rows.length, 3);
    assert.equal(typeof table.metadata.continue, "string");
    f.close();
  });
});

Deno.test("createMany stores objects with their own resourceVersions and watch events", async () => {
  await withServer(async (server) => {
    const f = serverFetch(server);
    const start = server.store.resourceVersion;
    const watch = await readWatch(f, `/api/v1/pods?watch=1&resourceVersion=${start}`);
    const last = server.createMany([pod("a", "node-a"), pod("b", "node-b", "other")]);
    assert.equal(last, start + 3); // the namespace "other" first, then the two pods
    await waitFor(() => watch.events.length === 2, { what: "two ADDED events" });
    assert.deepEqual(watch.events.map((e) => [e.type, e.object.metadata.name]), [
      ["ADDED", "a"],
      ["ADDED", "b"],
    ]);
    const a = server.get("pods", "default", "a")!;
    assert.equal(a.metadata.resourceVersion, String(start + 2));
    assert.equal(server.get("pods", "other", "b")!.metadata.resourceVersion, String(start + 3));
    assert.match(a.metadata.uid!, /^[0-9a-f-]{36}$/);
    assert.equal((a.status as { phase?: string }).phase, "Running");
    assert.throws(() => server.createMany([pod("a", "node-a")]), /not to exist/);
    await watch.cancel();
    f.close();
  });
});

Deno.test("the request log counts response bytes and watch events per request and per user", async () => {
  await withServer(async (server) => {
    server.create(pod("a", "node-a"));
    const token = server.serviceAccountToken("ha", "agent");
    const agent = serverFetch(server, { token });
    const admin = serverFetch(server);
    server.clearRequests();
    const text = await (await agent("/api/v1/pods")).text();
    const watch = await readWatch(
      agent,
      `/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3Dnode-a&resourceVersion=${server.store.resourceVersion}`,
    );
    await (await admin("/api/v1/nodes")).text();
    server.create(pod("b", "node-a"));
    server.create(pod("c", "node-b"));
    await waitFor(() => watch.events.length === 1, { what: "one event" });
    const user = "system:serviceaccount:ha:agent";
    const list = server.requests.find((r) => r.verb === "list" && r.user === user)!;
    assert.equal(list.bytes, new TextEncoder().encode(text).byteLength);
    const traffic = server.traffic((r) => r.user === user);
    assert.equal(traffic.requests, 2);
    assert.equal(traffic.watchEvents, 1);
    assert.deepEqual(traffic.watchEventTypes, { ADDED: 1 });
    assert.deepEqual(traffic.verbs, { list: 1, watch: 1 });
    const watchRecord = server.requests.find((r) => r.verb === "watch")!;
    assert.ok(watchRecord.bytes > 100);
    assert.equal(traffic.bytes, list.bytes + watchRecord.bytes);
    assert.equal(server.traffic().requests, 3);
    await watch.cancel();
    agent.close();
    admin.close();
  });
});

Deno.test("kubectl pages through more than 500 objects (limit=500 and continue)", async () => {
  const kubectl = await kubectlPath();
  await withServer(async (server) => {
    server.createMany(Array.from({ length: 1_203 }, (_, i) => pod(name(i), "node-a")));
    const cacheDir = await Deno.makeTempDir({ prefix: "kubectl-cache-" });
    try {
      const run = async (...args: string[]) => {
        const out = await new Deno.Command(kubectl, {
          args: ["--kubeconfig", server.kubeconfigPath, "--cache-dir", cacheDir, ...args],
          env: { HOME: cacheDir },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        assert.equal(out.code, 0, stderr);
        return new TextDecoder().decode(out.stdout);
      };
      server.clearRequests();
      const names = (await run("get", "pods", "-o", "name")).trim().split("\n");
      assert.equal(names.length, 1_203);
      assert.equal(names[0], "pod/p-0000");
      assert.equal(names.at(-1), "pod/p-1202");
      const lists = server.requests.filter((r) => r.verb === "list" && r.resource === "pods");
      assert.equal(lists.length, 3);
      assert.ok(lists.every((r) => r.query.limit === "500"));
      assert.deepEqual(lists.map((r) => r.query.continue !== undefined), [false, true, true]);
      // The table output (server-side printing) pages as well.
      const table = (await run("get", "pods", "--no-headers")).trim().split("\n");
      assert.equal(table.length, 1_203);
      assert.match(table[1_202], /^p-1202\s+/);
    } finally {
      await Deno.remove(cacheDir, { recursive: true });
    }
  });
});
