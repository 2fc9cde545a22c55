import assert from "node:assert/strict";
import { ApiServer } from "./mod.ts";
import type { KubeObject } from "./mod.ts";
import { readWatch, serverFetch, waitFor } from "./testing.ts";

function pod(
  name: string,
  options: { phase?: string; app?: string; node?: string } = {},
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", labels: { app: options.app ?? "web" } },
    spec: { nodeName: options.node ?? "node-a", containers: [{ name: "c", image: "busybox" }] },
    status: { phase: options.phase ?? "Running" },
  };
}

async function withServer(
  options: Parameters<typeof ApiServer.start>[0],
  body: (server: ApiServer, f: ReturnType<typeof serverFetch>) => Promise<void>,
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

Deno.test("a watch without resourceVersion starts with ADDED for the current state, then live changes", async () => {
  await withServer({}, async (server, f) => {
    server.create(pod("web-0"));
    server.create(pod("web-1"));
    const w = await readWatch(f, "/api/v1/namespaces/default/pods?watch=true");
    assert.equal(w.status, 200);
    assert.equal(w.contentType, "application/json");
    await waitFor(() => w.events.length === 2, { what: "two initial events" });
    assert.deepEqual(w.events.map((e) => [e.type, e.object.metadata.name]), [
      ["ADDED", "web-0"],
      ["ADDED", "web-1"],
    ]);
    assert.equal(w.events[0].object.kind, "Pod");
    assert.equal(w.events[0].object.apiVersion, "v1");
    const current = server.get("pods", "default", "web-0")!;
    server.update({
      ...current,
      metadata: { ...current.metadata, labels: { app: "web", x: "1" } },
    });
    await waitFor(() => w.events.length === 3, { what: "the MODIFIED event" });
    assert.equal(w.events[2].type, "MODIFIED");
    assert.equal(w.events[2].object.metadata.labels.x, "1");
    await w.cancel();
  });
});

Deno.test("a watch from a resourceVersion replays exactly the later changes, in order", async () => {
  await withServer({}, async (server, f) => {
    server.create(pod("a"));
    server.create(pod("b"));
    const list = await (await f("/api/v1/namespaces/default/pods")).json();
    const listRv = Number(list.metadata.resourceVersion);
    const a = server.get("pods", "default", "a")!;
    server.update({ ...a, metadata: { ...a.metadata, annotations: { touched: "yes" } } });
    const removed = server.remove("pods", "default", "b")!;
    server.create(pod("c"));
    const w = await readWatch(
      f,
      `/api/v1/namespaces/default/pods?watch=1&resourceVersion=${listRv}`,
    );
    await waitFor(() => w.events.length === 3, { what: "three replayed events" });
    assert.deepEqual(w.events.map((e) => [e.type, e.object.metadata.name]), [
      ["MODIFIED", "a"],
      ["DELETED", "b"],
      ["ADDED", "c"],
    ]);
    const rvs = w.events.map((e) => Number(e.object.metadata.resourceVersion));
    assert.ok(rvs[0] > listRv && rvs[0] < rvs[1] && rvs[1] < rvs[2], `increasing RVs ${rvs}`);
    assert.equal(w.events[1].object.metadata.resourceVersion, removed.metadata.resourceVersion);
    assert.equal(w.events[1].object.metadata.uid, removed.metadata.uid);
    await w.cancel();
  });
});

Deno.test("a too old resourceVersion gets HTTP 200, one ERROR 410 Expired event, then the end", async () => {
  await withServer({}, async (server, f) => {
    server.create(pod("a"));
    const oldRv = server.store.resourceVersion;
    server.create(pod("b"));
    server.compact();
    const w = await readWatch(
      f,
      `/api/v1/namespaces/default/pods?watch=true&resourceVersion=${oldRv}`,
    );
    assert.equal(w.status, 200);
    assert.equal(await w.ended, "closed");
    assert.equal(w.events.length, 1);
    assert.equal(w.events[0].type, "ERROR");
    assert.deepEqual(w.events[0].object, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `too old resource version: ${oldRv} (${server.store.resourceVersion})`,
      reason: "Expired",
      code: 410,
    });
    // a fresh list gives a resourceVersion that can be watched again
    const list = await (await f("/api/v1/namespaces/default/pods")).json();
    const again = await readWatch(
      f,
      `/api/v1/namespaces/default/pods?watch=true&resourceVersion=${list.metadata.resourceVersion}`,
    );
    server.create(pod("c"));
    await waitFor(() => again.events.length === 1, { what: "the event after the re-list" });
    assert.equal(again.events[0].type, "ADDED");
    assert.equal(again.events[0].object.metadata.name, "c");
    await again.cancel();
  });
});

Deno.test("selectors turn objects entering and leaving the selection into ADDED and DELETED", async () => {
  await withServer({}, async (server, f) => {
    server.create(pod("p", { phase: "Pending" }));
    server.create(pod("other", { app: "db" }));
    const w = await readWatch(
      f,
      "/api/v1/pods?watch=true&fieldSelector=status.phase%3DRunning&labelSelector=app%20in%20(web,api),!skip",
    );
    const setPod = (change: (p: KubeObject) => void) => {
      const p = server.get("pods", "default", "p")!;
      change(p);
      return server.update(p);
    };
    setPod((p) => (p.status = { phase: "Running" }));
    await waitFor(() => w.events.length === 1, { what: "ADDED when the pod starts matching" });
    assert.equal(w.events[0].type, "ADDED");
    const other = server.get("pods", "default", "other")!;
    server.update({ ...other, metadata: { ...other.metadata, annotations: { a: "b" } } });
    setPod((p) => (p.metadata.annotations = { seen: "1" }));
    await waitFor(() => w.events.length === 2, { what: "MODIFIED while matching" });
    assert.equal(w.events[1].type, "MODIFIED");
    const failed = setPod((p) => (p.status = { phase: "Failed" }));
    await waitFor(() => w.events.length === 3, { what: "DELETED when the pod stops matching" });
    assert.equal(w.events[2].type, "DELETED");
    assert.equal(w.events[2].object.status.phase, "Running", "old content");
    assert.equal(w.events[2].object.metadata.resourceVersion, failed.metadata.resourceVersion);
    setPod((p) => (p.status = { phase: "Running" }));
    setPod((p) => (p.metadata.labels = { app: "web", skip: "yes" }));
    await waitFor(() => w.events.length === 5, { what: "ADDED then DELETED by label" });
    assert.deepEqual(w.events.slice(3).map((e) => e.type), ["ADDED", "DELETED"]);
    assert.ok(w.events.every((e) => e.object.metadata.name === "p"));
    await w.cancel();
  });
});

Deno.test("a watch on one name, by path or field selector, sees only that object", async () => {
  await withServer({}, async (server, f) => {
    server.create(pod("a"));
    server.create(pod("b"));
    const byPath = await readWatch(f, "/api/v1/watch/namespaces/default/pods/b");
    const bySelector = await readWatch(
      f,
      "/api/v1/namespaces/default/pods?watch=true&fieldSelector=metadata.name%3Db",
    );
    await waitFor(() => byPath.events.length === 1 && bySelector.events.length === 1);
    assert.equal(byPath.events[0].object.metadata.name, "b");
    assert.equal(bySelector.events[0].object.metadata.name, "b");
    const contradicting = await f(
      "/api/v1/namespaces/default/pods/b?watch=true&fieldSelector=metadata.name%3Da",
    );
    assert.equal(contradicting.status, 400);
    await contradicting.body?.cancel();
    await byPath.cancel();
    await bySelector.cancel();
  });
});

Deno.test("bookmarks carry only the resourceVersion and go only to watches that allow them", async () => {
  await withServer({ bookmarkIntervalMs: 20 }, async (server, f) => {
    const rv = server.store.resourceVersion;
    const withBookmarks = await readWatch(
      f,
      `/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion=${rv}`,
    );
    const without = await readWatch(f, `/api/v1/nodes?watch=true&resourceVersion=${rv}`);
    await waitFor(() => withBookmarks.events.length >= 2, { what: "periodic bookmarks" });
    assert.deepEqual(withBookmarks.events[0], {
      type: "BOOKMARK",
      object: { kind: "Node", apiVersion: "v1", metadata: { resourceVersion: String(rv) } },
    });
    server.create({ apiVersion: "v1", kind: "Node", metadata: { name: "n" } });
    await waitFor(() => without.events.length === 1, { what: "the ADDED event" });
    assert.ok(without.events.every((e) => e.type !== "BOOKMARK"));
    await withBookmarks.cancel();
    await without.cancel();
  });
});

Deno.test("timeoutSeconds ends the stream normally", async () => {
  await withServer({}, async (server, f) => {
    const w = await readWatch(f, "/api/v1/nodes?watch=true&timeoutSeconds=1");
    assert.equal(server.openWatchCount(), 1);
    assert.equal(await w.ended, "closed");
    assert.equal(server.openWatchCount(), 0);
  });
});

Deno.test("dropWatches cuts every open stream; endWatches ends them cleanly", async () => {
  await withServer({}, async (server, f) => {
    const a = await readWatch(f, "/api/v1/nodes?watch=true");
    const b = await readWatch(f, "/api/v1/namespaces/default/pods?watch=true");
    assert.equal(server.openWatchCount(), 2);
    server.dropWatches();
    assert.equal(server.openWatchCount(), 0);
    assert.equal(await a.ended, "error");
    assert.equal(await b.ended, "error");
    const c = await readWatch(f, "/api/v1/nodes?watch=true");
    server.endWatches();
    assert.equal(await c.ended, "closed");
  });
});

Deno.test("a client that goes away closes its watch on the server", async () => {
  await withServer({}, async (server, f) => {
    const w = await readWatch(f, "/api/v1/nodes?watch=true");
    assert.equal(server.openWatchCount(), 1);
    await w.cancel();
    await waitFor(() => server.openWatchCount() === 0, { what: "the server to notice" });
  });
});

Deno.test("stalled watches send nothing, not even bookmarks, until resumed", async () => {
  await withServer({}, async (server, f) => {
    const rv = server.store.resourceVersion;
    const before = await readWatch(
      f,
      `/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion=${rv}`,
    );
    server.stallWatches(true);
    const during = await readWatch(f, "/api/v1/nodes?watch=true");
    server.create({ apiVersion: "v1", kind: "Node", metadata: { name: "n1" } });
    server.sendBookmarks();
    // a full request round trip and a short pause: nothing may arrive meanwhile
    await (await f("/version")).body?.cancel();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(before.events.length, 0);
    assert.equal(during.events.length, 0);
    assert.equal(server.openWatchCount(), 2);
    server.stallWatches(false);
    await waitFor(() => before.events.length === 1 && during.events.length === 1);
    assert.equal(before.events[0].type, "ADDED");
    assert.equal(during.events[0].object.metadata.name, "n1");
    await before.cancel();
    await during.cancel();
  });
});

Deno.test("events.k8s.io watches see core/v1 events in their own shape", async () => {
  await withServer({}, async (server, f) => {
    const w = await readWatch(f, "/apis/events.k8s.io/v1/namespaces/default/events?watch=true");
    server.create({
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "e1", namespace: "default" },
      involvedObject: { kind: "Pod", name: "web-0", namespace: "default" },
      reason: "Evicted",
      message: "gone",
      type: "Warning",
      source: { component: "ha-controller" },
    });
    await waitFor(() => w.events.length === 1);
    const ev = w.events[0].object;
    assert.equal(ev.apiVersion, "events.k8s.io/v1");
    assert.deepEqual(ev.regarding, { kind: "Pod", name: "web-0", namespace: "default" });
    assert.equal(ev.note, "gone");
    assert.deepEqual(ev.deprecatedSource, { component: "ha-controller" });
    await w.cancel();
  });
});

Deno.test("watches work over HTTPS with the bearer token", async () => {
  await withServer({ tls: true }, async (server, f) => {
    const w = await readWatch(f, "/apis/storage.k8s.io/v1/volumeattachments?watch=true");
    assert.equal(w.status, 200);
    server.create({
      apiVersion: "storage.k8s.io/v1",
      kind: "VolumeAttachment",
      metadata: { name: "csi-1" },
      spec: { attacher: "x", nodeName: "node-a", source: { persistentVolumeName: "pv" } },
    });
    await waitFor(() => w.events.length === 1);
    assert.equal(w.events[0].object.kind, "VolumeAttachment");
    await w.cancel();
    const noToken = serverFetch(server, { token: "wrong" });
    const denied = await noToken("/api/v1/nodes?watch=true");
    assert.equal(denied.status, 401);
    assert.equal((await denied.json()).reason, "Unauthorized");
    noToken.close();
  });
});
