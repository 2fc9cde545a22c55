// Watch robustness of ListWatchCache against the local API server: every way
// a watch can fail must be survived, and noticed where it matters.

import assert from "node:assert/strict";
import { ApiServer, type KubeObject } from "../sim/apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { ListWatchCache } from "../../lib/kube/cache.ts";
import { type PodInfo, slimPod } from "../../lib/kube/objects.ts";
import type { V1Pod } from "@kubernetes/client-node";
import { waitFor } from "../helpers.ts";

const quiet = { info() {}, warn() {}, debug() {} };

function pod(name: string, nodeName = "node-a"): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default" },
    spec: { nodeName, containers: [{ name: "c", image: "busybox" }] },
    status: { phase: "Running" },
  };
}

async function setup(
  opts: { watchTimeoutSeconds?: number; watchGraceMs?: number; resyncIntervalMs?: number } = {},
) {
  const server = await ApiServer.start({ tls: true });
  const client = await KubeClient.connect({
    kubeconfig: server.kubeconfigPath,
    requestTimeoutMs: 5_000,
  });
  let changes = 0;
  const cache = new ListWatchCache<PodInfo>(client, {
    name: "pods on node-a",
    path: "/api/v1/pods",
    fieldSelector: "spec.nodeName=node-a",
    convert: (raw) => slimPod(raw as V1Pod),
    key: (p) => `${p.namespace}/${p.name}`,
    onChange: () => changes++,
    resyncIntervalMs: opts.resyncIntervalMs ?? 0,
    watchTimeoutSeconds: opts.watchTimeoutSeconds ?? 30,
    watchGraceMs: opts.watchGraceMs ?? 1_000,
    backoffInitialMs: 50,
    backoffMaxMs: 400,
    log: quiet,
  });
  const names = () => cache.items().map((p) => p.name).sort();
  return {
    server,
    cache,
    names,
    changes: () => changes,
    async close() {
      await cache.stop();
      client.close();
      await server.close();
    },
  };
}

Deno.test("cache lists, then follows the watch; field selector keeps other nodes' pods out", async () => {
  const t = await setup();
  try {
    t.server.create(pod("a1"));
    t.server.create(pod("b1", "node-b"));
    t.cache.start();
    assert.equal(await t.cache.waitSynced(5_000), true);
    assert.deepEqual(t.names(), ["a1"]);
    t.server.create(pod("a2"));
    t.server.create(pod("b2", "node-b"));
    await waitFor(() => t.names().includes("a2"), 5_000, "a2 in cache");
    t.server.remove("pods", "default", "a1");
    await waitFor(() => !t.names().includes("a1"), 5_000, "a1 gone from cache");
    assert.deepEqual(t.names(), ["a2"]);
  } finally {
    await t.close();
  }
});

Deno.test("cache survives the server closing the watch stream", async () => {
  const t = await setup();
  try {
    t.cache.start();
    assert.equal(await t.cache.waitSynced(5_000), true);
    await waitFor(() => t.server.openWatchCount() === 1, 5_000, "watch open");
    t.server.dropWatches();
    t.server.create(pod("after-drop"));
    await waitFor(() => t.names().includes("after-drop"), 5_000, "event after drop seen");
    assert.equal(t.cache.synced, true);
  } finally {
    await t.close();
  }
});

Deno.test("cache notices a server that keeps the watch open but sends nothing", async () => {
  const t = await setup({ watchTimeoutSeconds: 1, watchGraceMs: 300 });
  try {
    t.cache.start();
    assert.equal(await t.cache.waitSynced(5_000), true);
    t.server.stallWatches(true);
    t.server.faults.add({ verb: "list", hang: true });
    // timeoutSeconds (≤1.25 s) + grace (0.3 s): the cache must give up on
    // the silent stream and say so.
    await waitFor(() => !t.cache.synced, 5_000, "cache reports itself unsynced");
    assert.match(t.cache.problem, /unresponsive|timeout|no answer/i);
    t.server.faults.clear();
    t.server.stallWatches(false);
    t.server.create(pod("after-stall"));
    await waitFor(() => t.cache.synced && t.names().includes("after-stall"), 10_000, "recovered");
  } finally {
    await t.close();
  }
});

Deno.test("cache relists after 410 Expired and misses nothing", async () => {
  const t = await setup();
  try {
    t.server.create(pod("before"));
    t.cache.start();
    assert.equal(await t.cache.waitSynced(5_000), true);
    await waitFor(() => t.server.openWatchCount() === 1, 5_000, "watch open");
    const listsBefore = t.server.requests.filter((r) => r.verb === "list").length;
    // Changes while the watch is down, then history is compacted: the
    // re-watch from the old resourceVersion gets 410 and must relist.
    t.server.stallWatches(true);
    t.server.dropWatches();
    t.server.create(pod("during"));
    t.server.remove("pods", "default", "before");
    t.server.compact();
    t.server.stallWatches(false);
    await waitFor(() => t.names().join() === "during", 5_000, "relisted state");
    const lists = t.server.requests.filter((r) => r.verb === "list").length;
    assert.ok(lists > listsBefore, "a relist happened");
    assert.equal(t.cache.synced, true);
  } finally {
    await t.close();
  }
});

Deno.test("cache backs off on 5xx and 429, reports unsynced meanwhile, then recovers", async () => {
  const t = await setup();
  try {
    t.server.create(pod("p"));
    // Matching faults combine and the first one's status wins: the first two
    // lists get 500, the third 429 (with Retry-After), the fourth succeeds.
    t.server.faults.add({ verb: "list", status: 500, times: 2 });
    t.server.faults.add({ verb: "list", status: 429, times: 3, retryAfterSeconds: 1 });
    t.cache.start();
    await waitFor(
      () => t.cache.problem !== "" && !t.cache.synced,
      5_000,
      "unsynced with a problem",
    );
    assert.equal(await t.cache.waitSynced(10_000), true);
    assert.deepEqual(t.names(), ["p"]);
    const lists = t.server.requests.filter((r) => r.verb === "list");
    assert.deepEqual(lists.map((r) => r.status), [500, 500, 429, 200]);
    // Retry-After: 1 was honoured between the 429 and the next list.
    const gap = lists[3].time.getTime() - lists[2].time.getTime();
    assert.ok(gap >= 900, `waited ${gap}ms after a 429 with Retry-After: 1`);
  } finally {
    await t.close();
  }
});

Deno.test("cache survives watch requests failing with 500 and keeps following changes", async () => {
  const t = await setup();
  try {
    t.cache.start();
    assert.equal(await t.cache.waitSynced(5_000), true);
    await waitFor(() => t.server.openWatchCount() === 1, 5_000, "watch open");
    t.server.faults.add({ verb: "watch", status: 500, times: 2 });
    t.server.dropWatches();
    t.server.create(pod("later"));
    await waitFor(() => t.cache.synced && t.names().includes("later"), 10_000, "recovered");
    const failed = t.server.requests.filter((r) => r.verb === "watch" && r.status === 500);
    assert.equal(failed.length, 2);
  } finally {
    await t.close();
  }
});

Deno.test("cache resync relists periodically even while the watch stays open", async () => {
  const t = await setup({ resyncIntervalMs: 300 });
  try {
    t.cache.start();
    assert.equal(await t.cache.waitSynced(5_000), true);
    await waitFor(
      () => t.server.requests.filter((r) => r.verb === "list").length >= 3,
      5_000,
      "periodic relists",
    );
  } finally {
    await t.close();
  }
});
