// Watch robustness of ListWatchCache against the local API server: every way
// a watch can fail must be survived, and noticed where it matters.

import assert from "node:assert/strict";
import { ApiServer, type KubeObject } from "../sim/apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { type CacheLogger, ListWatchCache } from "../../lib/kube/cache.ts";
import { type PodInfo, slimPod } from "../../lib/kube/objects.ts";
import type { V1Pod } from "@kubernetes/client-node";
import { deadline, waitFor } from "../helpers.ts";

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
  opts: {
    watchTimeoutSeconds?: number;
    watchGraceMs?: number;
    resyncIntervalMs?: number;
    backoffMaxMs?: number;
    convert?: (raw: unknown) => PodInfo | undefined;
    pageSize?: number;
    historyLimit?: number;
    log?: CacheLogger;
  } = {},
) {
  const server = await ApiServer.start({ tls: true, historyLimit: opts.historyLimit });
  const client = await KubeClient.connect({
    kubeconfig: server.kubeconfigPath,
    requestTimeoutMs: 5_000,
  });
  let changes = 0;
  const cache = new ListWatchCache<PodInfo>(client, {
    name: "pods on node-a",
    path: "/api/v1/pods",
    fieldSelector: "spec.nodeName=node-a",
    convert: opts.convert ?? ((raw) => slimPod(raw as V1Pod)),
    key: (p) => `${p.namespace}/${p.name}`,
    onChange: () => changes++,
    resyncIntervalMs: opts.resyncIntervalMs ?? 0,
    watchTimeoutSeconds: opts.watchTimeoutSeconds ?? 30,
    watchGraceMs: opts.watchGraceMs ?? 1_000,
    backoffInitialMs: 50,
    backoffMaxMs: opts.backoffMaxMs ?? 400,
    pageSize: opts.pageSize,
    log: opts.log ?? quiet,
  });
  const names = () => cache.items().map((p) => p.name).sort();
  return {
    server,
    cache,
    names,
    changes: () => changes,
    /** List and watch requests the server saw so far. */
    listsAndWatches: () =>
      server.requests.filter((r) => r.verb === "list" || r.verb === "watch").length,
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
    assert.equal(await t.cache.waitSynced(deadline(5_000)), true);
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
    assert.equal(await t.cache.waitSynced(deadline(5_000)), true);
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
    assert.equal(await t.cache.waitSynced(deadline(5_000)), true);
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
    assert.equal(await t.cache.waitSynced(deadline(5_000)), true);
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

Deno.test("cache lists in pages of 500 (limit and continue) and keeps every page's objects", async () => {
  const t = await setup();
  try {
    const objects = [];
    for (let i = 0; i < 1_234; i++) objects.push(pod(`a-${String(i).padStart(4, "0")}`));
    for (let i = 0; i < 300; i++) objects.push(pod(`b-${i}`, "node-b"));
    t.server.createMany(objects);
    t.cache.start();
    assert.equal(await t.cache.waitSynced(deadline(10_000)), true);
    assert.equal(t.cache.size, 1_234);
    const lists = t.server.requests.filter((r) => r.verb === "list");
    assert.deepEqual(lists.map((r) => r.query.limit), ["500", "500", "500"]);
    assert.deepEqual(lists.map((r) => r.query.continue !== undefined), [false, true, true]);
    // The watch starts at the list's resourceVersion and misses nothing after it
    // (it is sent after the cache reports synced: wait for it on a loaded machine).
    await waitFor(
      () => t.server.requests.some((r) => r.verb === "watch"),
      5_000,
      "the watch request",
    );
    const watch = t.server.requests.find((r) => r.verb === "watch")!;
    assert.equal(watch.query.resourceVersion, String(t.server.store.resourceVersion));
    t.server.create(pod("a-new"));
    await waitFor(() => t.cache.size === 1_235, 5_000, "the new pod in the cache");
  } finally {
    await t.close();
  }
});

Deno.test("cache lists again from the first page when a continue token expires (410) mid-list", async () => {
  const infos: string[] = [];
  const log = { info: (m: string) => void infos.push(m), warn() {}, debug() {} };
  const t = await setup({ pageSize: 10, historyLimit: 5, log });
  try {
    t.server.createMany(
      Array.from({ length: 25 }, (_, i) => pod(`a-${String(i).padStart(2, "0")}`)),
    );
    // Every page is answered after 300 ms; while the second one waits, more
    // changes than the server's history keeps make the first page's snapshot
    // unrecoverable.
    t.server.faults.add({ verb: "list", resource: "pods", latencyMs: 300 });
    t.cache.start();
    await waitFor(
      () => t.server.requests.some((r) => r.verb === "list" && r.query.continue !== undefined),
      5_000,
      "the second page requested",
    );
    for (let i = 0; i < 6; i++) t.server.create(pod(`later-${i}`));
    await waitFor(() => t.cache.synced, 10_000, "cache synced");
    const lists = t.server.requests.filter((r) => r.verb === "list");
    const expired = lists.filter((r) => r.status === 410);
    assert.equal(expired.length, 1, "one page was answered 410 Expired");
    assert.ok(expired[0].query.continue !== undefined);
    // Started again without a token, then paged to the end.
    const after = lists.slice(lists.indexOf(expired[0]) + 1);
    assert.equal(after[0].query.continue, undefined);
    assert.equal(after.at(-1)!.status, 200);
    assert.equal(t.cache.size, 31);
    assert.ok(
      infos.some((m) => /list expired \(410\) after 1 pages of 10, listing again/.test(m)),
      infos.join("\n"),
    );
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
    assert.equal(await t.cache.waitSynced(deadline(10_000)), true);
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
    assert.equal(await t.cache.waitSynced(deadline(5_000)), true);
    await waitFor(() => t.server.openWatchCount() === 1, 5_000, "watch open");
    t.server.faults.add({ verb: "watch", status: 500, times: 2 });
    t.server.dropWatches();
    t.server.create(pod("later"));
    const failedWatches = () =>
      t.server.requests.filter((r) => r.verb === "watch" && r.status === 500).length;
    // The relist after the first failure already brings "later"; recovered
    // means both injected failures are behind it and a watch is open again.
    await waitFor(
      () =>
        t.cache.synced && t.names().includes("later") && failedWatches() === 2 &&
        t.server.openWatchCount() === 1,
      10_000,
      () =>
        `recovered (synced ${t.cache.synced}, names ${t.names()}, ${failedWatches()} watches ` +
        `failed with 500, ${t.server.openWatchCount()} open)`,
    );
    // And the new watch follows changes.
    t.server.create(pod("latest"));
    await waitFor(() => t.names().includes("latest"), 10_000, "a change after recovery");
    assert.equal(failedWatches(), 2, "no watch failed beyond the two injected failures");
  } finally {
    await t.close();
  }
});

Deno.test("cache resync relists periodically even while the watch stays open", async () => {
  const t = await setup({ resyncIntervalMs: 300 });
  try {
    t.cache.start();
    assert.equal(await t.cache.waitSynced(deadline(5_000)), true);
    await waitFor(
      () => t.server.requests.filter((r) => r.verb === "list").length >= 3,
      5_000,
      "periodic relists",
    );
  } finally {
    await t.close();
  }
});

// A fixed observation window for the request-count bounds below: the
// assertion is on how many requests the cache makes, not on how fast it is.
function observe(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("cache backs off when every watch is answered 410, and reports itself unsynced", async () => {
  const t = await setup({ backoffMaxMs: 1_000 });
  try {
    t.server.create(pod("p"));
    t.server.faults.add({ verb: "watch", status: 410 });
    t.cache.start();
    await observe(2_000);
    const requests = t.listsAndWatches();
    assert.ok(requests <= 20, `expected at most 20 lists and watches in 2 s, saw ${requests}`);
    await waitFor(() => !t.cache.synced, 5_000, "cache reports itself unsynced");
    assert.match(t.cache.problem, /^pods on node-a: .*410/);
    // The content from the lists is still there for whoever looks at it.
    assert.deepEqual(t.names(), ["p"]);
    t.server.faults.clear();
    await waitFor(() => t.cache.synced, 10_000, "synced again once watches work");
  } finally {
    await t.close();
  }
});

Deno.test("cache backs off when every watch gets an ERROR 410 event", async () => {
  const t = await setup({ backoffMaxMs: 1_000 });
  // Each watch arrives 20 ms after its list; meanwhile another object changes
  // and the history is compacted, so the watch's resourceVersion is too old
  // and the server answers with an ERROR event (code 410) in the stream.
  t.server.faults.add({ verb: "watch", latencyMs: 20 });
  let bumps = 0;
  const churn = setInterval(() => {
    t.server.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: `churn-${bumps++}`, namespace: "default" },
    });
    t.server.compact();
  }, 2);
  try {
    t.cache.start();
    await observe(2_000);
    const requests = t.listsAndWatches();
    assert.ok(requests <= 20, `expected at most 20 lists and watches in 2 s, saw ${requests}`);
    const watches = t.server.requests.filter((r) => r.verb === "watch" && r.status === 200);
    assert.ok(watches.length > 0, "the watches were answered with a stream");
    await waitFor(() => !t.cache.synced, 5_000, "cache reports itself unsynced");
    assert.match(t.cache.problem, /410/);
    clearInterval(churn);
    await waitFor(() => t.cache.synced, 10_000, "synced again once watches work");
  } finally {
    clearInterval(churn);
    await t.close();
  }
});

Deno.test("cache backs off when every watch ends at once without events", async () => {
  const t = await setup({ backoffMaxMs: 1_000 });
  const ender = setInterval(() => t.server.endWatches(), 1);
  try {
    t.cache.start();
    await observe(2_000);
    const requests = t.listsAndWatches();
    assert.ok(requests <= 20, `expected at most 20 lists and watches in 2 s, saw ${requests}`);
    await waitFor(() => !t.cache.synced, 5_000, "cache reports itself unsynced");
    assert.match(t.cache.problem, /^pods on node-a: .*ended .* without events/);
    clearInterval(ender);
    t.server.create(pod("later"));
    await waitFor(
      () => t.cache.synced && t.names().includes("later"),
      10_000,
      "synced and following changes again",
    );
  } finally {
    clearInterval(ender);
    await t.close();
  }
});

Deno.test("cache closes a watch it stops reading, so no connection is left open", async () => {
  let failed = false;
  const t = await setup({
    // The first time the watch delivers "poison", handling it throws.
    convert: (raw) => {
      const p = slimPod(raw as V1Pod);
      if (p?.name === "poison" && !failed) {
        failed = true;
        throw new Error("cannot handle this pod");
      }
      return p;
    },
  });
  try {
    t.cache.start();
    assert.equal(await t.cache.waitSynced(deadline(5_000)), true);
    await waitFor(() => t.server.openWatchCount() === 1, 5_000, "watch open");
    t.server.create(pod("poison"));
    await waitFor(
      () => failed && t.cache.synced && t.names().includes("poison"),
      5_000,
      "relisted after the failure",
    );
    // The abandoned stream is closed; only the new watch remains.
    await waitFor(() => t.server.openWatchCount() === 1, 5_000, "one open watch");
  } finally {
    await t.close();
  }
});
