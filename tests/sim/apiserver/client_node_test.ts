import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { ApiServer } from "./mod.ts";
import type { KubeObject } from "./mod.ts";
import { waitFor } from "./testing.ts";

function runningPod(
  name: string,
  options: { labels?: Record<string, string>; ready?: boolean } = {},
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", labels: options.labels ?? { app: "web" } },
    spec: { nodeName: "node-a", containers: [{ name: "c", image: "busybox" }] },
    status: {
      phase: "Running",
      conditions: [{ type: "Ready", status: options.ready === false ? "False" : "True" }],
    },
  };
}

function node(name: string): KubeObject {
  return { apiVersion: "v1", kind: "Node", metadata: { name }, spec: {} };
}

interface Ctx {
  server: ApiServer;
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
}

async function withCluster(
  options: Parameters<typeof ApiServer.start>[0],
  body: (ctx: Ctx) => Promise<void>,
): Promise<void> {
  const server = await ApiServer.start(options);
  try {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(server.kubeconfigPath);
    await body({ server, kc, core: kc.makeApiClient(k8s.CoreV1Api) });
  } finally {
    await server.close();
  }
}

// deno-lint-ignore no-explicit-any
async function apiError(promise: Promise<unknown>): Promise<{ code: number; body: any }> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof k8s.ApiException) {
      // client-node drops the body of a 401
      const body = typeof e.body === "string" ? JSON.parse(e.body) : e.body;
      return { code: e.code, body };
    }
    throw e;
  }
  throw new Error("Expected the call to fail with an ApiException, it succeeded");
}

const tls = { tls: true };

/** client-node returns class instances; compare their JSON. */
function plain(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v));
}

Deno.test("client-node lists and gets over HTTPS with label and field selectors", async () => {
  await withCluster(tls, async ({ server, core }) => {
    server.create(node("node-a"));
    server.create(runningPod("web-0"));
    server.create(runningPod("web-1", { labels: { app: "web", tier: "x" } }));
    server.create({ ...runningPod("db-0", { labels: { app: "db" } }) });
    const all = await core.listPodForAllNamespaces({ labelSelector: "app in (web), !tier" });
    assert.deepEqual(all.items.map((p) => p.metadata?.name), ["web-0"]);
    assert.equal(all.metadata?.resourceVersion, String(server.store.resourceVersion));
    const onNode = await core.listNamespacedPod({
      namespace: "default",
      fieldSelector: "spec.nodeName=node-a,status.phase=Running,metadata.name!=web-1",
      labelSelector: "app notin (cache)",
    });
    assert.deepEqual(onNode.items.map((p) => p.metadata?.name), ["db-0", "web-0"]);
    const one = await core.readNamespacedPod({ name: "web-1", namespace: "default" });
    assert.equal(one.metadata?.labels?.tier, "x");
    const bad = await apiError(
      core.listNamespacedPod({ namespace: "default", fieldSelector: "spec.foo=bar" }),
    );
    assert.equal(bad.code, 400);
    assert.equal(bad.body.message, "field label not supported: spec.foo");
    const missing = await apiError(core.readNamespacedPod({ name: "nope", namespace: "default" }));
    assert.equal(missing.code, 404);
    assert.deepEqual(missing.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'pods "nope" not found',
      reason: "NotFound",
      details: { name: "nope", kind: "pods" },
      code: 404,
    });
  });
});

Deno.test("client-node patches with json, merge and strategic merge patch", async () => {
  await withCluster(tls, async ({ server, core }) => {
    server.create(node("node-a"));
    server.create(runningPod("web-0"));
    const jsonPatched = await core.patchNamespacedPod({
      name: "web-0",
      namespace: "default",
      body: [{ op: "add", path: "/metadata/annotations", value: { a: "1" } }],
    });
    assert.deepEqual(jsonPatched.metadata?.annotations, { a: "1" });
    const merged = await core.patchNamespacedPod(
      {
        name: "web-0",
        namespace: "default",
        body: { metadata: { annotations: { a: null, b: "2" } } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    assert.deepEqual(merged.metadata?.annotations, { b: "2" });
    const smp = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch);
    const taint = (key: string) => ({ key, effect: "NoExecute" });
    await core.patchNode(
      { name: "node-a", body: { spec: { taints: [taint("a"), taint("b")] } } },
      smp,
    );
    const replaced = await core.patchNode({
      name: "node-a",
      body: { spec: { taints: [taint("c")] } },
    }, smp);
    assert.deepEqual(plain(replaced.spec?.taints), [taint("c")], "taints are replaced as a whole");
    const cleared = await core.patchNode({ name: "node-a", body: { spec: { taints: null } } }, smp);
    assert.equal(cleared.spec?.taints, undefined);
    const failedTest = await apiError(core.patchNamespacedPod({
      name: "web-0",
      namespace: "default",
      body: [{ op: "test", path: "/metadata/name", value: "other" }],
    }));
    assert.equal(failedTest.code, 422);
    const stale = await apiError(core.patchNamespacedPod(
      {
        name: "web-0",
        namespace: "default",
        body: { metadata: { resourceVersion: "1", labels: { x: "y" } } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    ));
    assert.equal(stale.code, 409);
    const patches = server.writes().filter((r) => r.verb === "patch");
    assert.deepEqual(patches.map((r) => r.contentType?.split(";")[0]), [
      "application/json-patch+json",
      "application/merge-patch+json",
      "application/strategic-merge-patch+json",
      "application/strategic-merge-patch+json",
      "application/strategic-merge-patch+json",
      "application/json-patch+json",
      "application/merge-patch+json",
    ]);
  });
});

Deno.test("client-node replace with a stale resourceVersion gets the 409 Conflict Status", async () => {
  await withCluster(tls, async ({ server, core }) => {
    server.create(node("node-a"));
    const fresh = await core.readNode({ name: "node-a" });
    await core.replaceNode({
      name: "node-a",
      body: { ...fresh, metadata: { ...fresh.metadata, labels: { a: "1" } } },
    });
    const conflict = await apiError(core.replaceNode({ name: "node-a", body: fresh }));
    assert.equal(conflict.code, 409);
    assert.deepEqual(conflict.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message:
        'Operation cannot be fulfilled on nodes "node-a": the object has been modified; please apply your changes to the latest version and try again',
      reason: "Conflict",
      details: { name: "node-a", kind: "nodes" },
      code: 409,
    });
    const created = await apiError(core.createNode({ body: { metadata: { name: "node-a" } } }));
    assert.equal(created.code, 409);
    assert.equal(created.body.reason, "AlreadyExists");
    assert.equal(created.body.message, 'nodes "node-a" already exists');
  });
});

Deno.test("client-node eviction: success marks the pod terminating, a PDB answers 429", async () => {
  await withCluster(tls, async ({ server, core }) => {
    server.create(node("node-a"));
    server.create(runningPod("web-0"));
    server.create(runningPod("web-1"));
    server.create({
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: { name: "web", namespace: "default" },
      spec: { minAvailable: 1, selector: { matchLabels: { app: "web" } } },
    });
    const eviction = (name: string) =>
      core.createNamespacedPodEviction({
        name,
        namespace: "default",
        body: {
          apiVersion: "policy/v1",
          kind: "Eviction",
          metadata: { name, namespace: "default" },
        },
      });
    await eviction("web-0");
    const evicted = server.get("pods", "default", "web-0")!;
    assert.ok(evicted.metadata.deletionTimestamp, "the pod is terminating");
    assert.equal(evicted.metadata.deletionGracePeriodSeconds, 30);
    const conditions =
      (evicted.status as { conditions: { type: string; reason?: string }[] }).conditions;
    assert.ok(
      conditions.some((c) => c.type === "DisruptionTarget" && c.reason === "EvictionByEvictionAPI"),
    );
    const blocked = await apiError(eviction("web-1"));
    assert.equal(blocked.code, 429);
    assert.deepEqual(blocked.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: "Cannot evict pod as it would violate the pod's disruption budget.",
      reason: "TooManyRequests",
      details: {
        causes: [{
          reason: "DisruptionBudget",
          message: "The disruption budget web needs 1 healthy pods and has 1 currently",
        }],
      },
      code: 429,
    });
    assert.equal(server.get("pods", "default", "web-1")!.metadata.deletionTimestamp, undefined);
    const evictions = server.requests.filter((r) => r.verb === "evict").map((r) => r.status);
    assert.deepEqual(evictions, [201, 429]);
    const gone = await apiError(eviction("nope"));
    assert.equal(gone.code, 404);
  });
});

Deno.test("maxUnavailable budgets and unready pods follow the eviction rules", async () => {
  await withCluster(tls, async ({ server, core }) => {
    server.create(node("node-a"));
    for (const name of ["a", "b", "c"]) server.create(runningPod(name));
    server.create(runningPod("sick", { ready: false }));
    server.create({
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: { name: "web", namespace: "default" },
      spec: { maxUnavailable: 1, selector: { matchLabels: { app: "web" } } },
    });
    const evict = (name: string) =>
      core.createNamespacedPodEviction({
        name,
        namespace: "default",
        body: { metadata: { name } },
      });
    // 4 expected, 3 healthy, desired 3: an unready pod may go, a ready one may not
    await evict("sick");
    assert.equal((await apiError(evict("a"))).code, 429);
  });
});

Deno.test("a server without the eviction subresource answers 404 for it", async () => {
  await withCluster({ tls: true, eviction: false }, async ({ server, core, kc }) => {
    server.create(node("node-a"));
    server.create(runningPod("web-0"));
    const notServed = await apiError(core.createNamespacedPodEviction({
      name: "web-0",
      namespace: "default",
      body: { metadata: { name: "web-0" } },
    }));
    assert.equal(notServed.code, 404);
    const resources = await kc.makeApiClient(k8s.CoreApi).getAPIVersions();
    assert.deepEqual(resources.versions, ["v1"]);
    const list = await core.getAPIResources();
    assert.ok(list.resources.some((r) => r.name === "pods"));
    assert.ok(!list.resources.some((r) => r.name === "pods/eviction"));
    server.evictionSupported = true;
    const again = await core.getAPIResources();
    const evictionEntry = again.resources.find((r) => r.name === "pods/eviction");
    assert.equal(evictionEntry?.group, "policy");
    assert.equal(evictionEntry?.version, "v1");
  });
});

Deno.test("client-node delete: preconditions, graceful deletion and force deletion", async () => {
  await withCluster(tls, async ({ server, core }) => {
    server.create(node("node-a"));
    const pod = server.create(runningPod("web-0"));
    const uidConflict = await apiError(core.deleteNamespacedPod({
      name: "web-0",
      namespace: "default",
      body: { preconditions: { uid: "other-uid" } },
    }));
    assert.equal(uidConflict.code, 409);
    assert.equal(
      uidConflict.body.message,
      `Operation cannot be fulfilled on Pod "web-0": the UID in the precondition (other-uid) does not match the UID in record (${pod.metadata.uid}). The object might have been deleted and then recreated`,
    );
    assert.deepEqual(uidConflict.body.details, { name: "web-0", kind: "Pod" });
    const rvConflict = await apiError(core.deleteNamespacedPod({
      name: "web-0",
      namespace: "default",
      body: { preconditions: { resourceVersion: "1" } },
    }));
    assert.equal(rvConflict.code, 409);
    assert.match(
      rvConflict.body.message,
      /the ResourceVersion in the precondition \(1\) does not match/,
    );

    const graceful = await core.deleteNamespacedPod({
      name: "web-0",
      namespace: "default",
      gracePeriodSeconds: 10,
    });
    assert.equal(graceful.metadata?.deletionGracePeriodSeconds, 10);
    const stillThere = await core.readNamespacedPod({ name: "web-0", namespace: "default" });
    assert.ok(stillThere.metadata?.deletionTimestamp, "a graceful delete keeps the pod");
    // what a kubelet sends when the containers are gone
    await core.deleteNamespacedPod({
      name: "web-0",
      namespace: "default",
      body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } },
    });
    assert.equal(server.get("pods", "default", "web-0"), undefined);

    server.create(runningPod("web-1"));
    await core.deleteNamespacedPod({ name: "web-1", namespace: "default", gracePeriodSeconds: 0 });
    assert.equal(server.get("pods", "default", "web-1"), undefined, "grace 0 removes at once");
  });
});

Deno.test("a VolumeAttachment with a finalizer stays until the finalizer is removed", async () => {
  await withCluster(tls, async ({ server, kc }) => {
    const storage = kc.makeApiClient(k8s.StorageV1Api);
    await storage.createVolumeAttachment({
      body: {
        metadata: { name: "csi-1", finalizers: ["external-attacher/linstor-csi-linbit-com"] },
        spec: {
          attacher: "linstor.csi.linbit.com",
          nodeName: "node-a",
          source: { persistentVolumeName: "pv-1" },
        },
      },
    });
    const deleted = await storage.deleteVolumeAttachment({
      name: "csi-1",
    }) as k8s.V1VolumeAttachment;
    assert.ok(deleted.metadata?.deletionTimestamp);
    const kept = await storage.readVolumeAttachment({ name: "csi-1" });
    assert.deepEqual(kept.metadata?.finalizers, ["external-attacher/linstor-csi-linbit-com"]);
    await storage.patchVolumeAttachment(
      { name: "csi-1", body: { metadata: { finalizers: null } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    assert.equal(server.get("volumeattachments", undefined, "csi-1"), undefined);
    await storage.createVolumeAttachment({
      body: {
        metadata: { name: "csi-2" },
        spec: { attacher: "x", nodeName: "node-a", source: { persistentVolumeName: "pv-2" } },
      },
    });
    await storage.deleteVolumeAttachment({ name: "csi-2" });
    assert.equal(server.get("volumeattachments", undefined, "csi-2"), undefined);
    const last = server.writes().at(-1)!;
    assert.deepEqual([last.verb, last.status], ["delete", 200]);
  });
});

Deno.test("events.k8s.io events need six fractional digits in eventTime", async () => {
  await withCluster(tls, async ({ core, kc }) => {
    const events = kc.makeApiClient(k8s.EventsV1Api);
    const event = (eventTime: Date): k8s.EventsV1Event => ({
      metadata: { name: "web-0.1", namespace: "default" },
      eventTime,
      reason: "ForceDeleted",
      note: "pod force-deleted",
      type: "Warning",
      action: "Delete",
      reportingController: "linbit.com/ha-controller",
      reportingInstance: "ha-controller-node-a",
      regarding: { kind: "Pod", name: "web-0", namespace: "default" },
    });
    const plain = await apiError(
      events.createNamespacedEvent({ namespace: "default", body: event(new Date()) }),
    );
    assert.equal(plain.code, 400);
    assert.equal(plain.body.reason, "BadRequest");
    assert.match(plain.body.message, /as "2006-01-02T15:04:05.000000Z07:00"/);
    await events.createNamespacedEvent({
      namespace: "default",
      body: event(new k8s.V1MicroTime()),
    });
    const core1 = await core.listNamespacedEvent({ namespace: "default" });
    assert.equal(core1.items.length, 1);
    assert.equal(core1.items[0].message, "pod force-deleted");
    assert.equal(core1.items[0].involvedObject.name, "web-0");
    assert.equal(core1.items[0].reportingComponent, "linbit.com/ha-controller");
    const invalid = await apiError(events.createNamespacedEvent({
      namespace: "default",
      body: {
        ...event(new k8s.V1MicroTime()),
        metadata: { name: "x", namespace: "default" },
        action: undefined,
      },
    }));
    assert.equal(invalid.code, 422);
    assert.equal(invalid.body.reason, "Invalid");
    assert.deepEqual(invalid.body.details.causes, [
      { reason: "FieldValueRequired", message: "action: Required value", field: "action" },
    ]);
  });
});

Deno.test("an informer re-lists after 410 Expired and keeps its cache right", async () => {
  await withCluster(tls, async ({ server, kc, core }) => {
    server.create(node("node-a"));
    server.create(runningPod("web-0"));
    const watch = new k8s.Watch(kc);
    const path = "/api/v1/namespaces/default/pods";
    const informer = new k8s.ListWatch<k8s.V1Pod>(
      path,
      watch,
      () => core.listNamespacedPod({ namespace: "default" }),
      false,
    );
    await informer.start();
    try {
      await waitFor(() => server.openWatchCount() === 1, { what: "the informer's watch" });
      server.create(runningPod("web-1"));
      await waitFor(() => informer.list().length === 2, { what: "web-1 in the cache" });
      // changes the informer does not see, then history is lost and its watch ends
      server.stallWatches(true);
      server.remove("pods", "default", "web-0");
      server.create(runningPod("web-2"));
      server.compact();
      server.endWatches();
      server.stallWatches(false);
      await waitFor(
        () => informer.list().length === 2 && !informer.get("web-0", "default"),
        { what: "a re-list" },
      );
      await waitFor(() => server.openWatchCount() === 1, { what: "a new watch" });
      assert.deepEqual(informer.list().map((p) => p.metadata?.name).sort(), ["web-1", "web-2"]);
      const lists = server.requests.filter((r) => r.verb === "list").length;
      assert.equal(lists, 2);
      const watches = server.requests.filter((r) => r.verb === "watch");
      assert.ok(watches.length >= 3, "initial watch, expired watch, new watch");
    } finally {
      await informer.stop();
      // client-node 1.4.0 cannot abort a watch whose response it is still awaiting
      server.endWatches();
    }
  });
});

Deno.test("client-node talks plain HTTP with the generated kubeconfig", async () => {
  await withCluster({}, async ({ server, core }) => {
    assert.ok(server.url.startsWith("http://"));
    assert.equal(server.caPem, undefined);
    const list = await core.listNode();
    assert.deepEqual(list.items, []);
  });
});

Deno.test("HTTPS requests without the right token get 401", async () => {
  await withCluster(tls, async ({ server }) => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(server.kubeconfigPath);
    const user = kc.getCurrentUser()!;
    kc.users = [{ ...user, token: "wrong" }];
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const denied = await apiError(core.listNode());
    assert.equal(denied.code, 401);
    const client = Deno.createHttpClient({ caCerts: [server.caPem!] });
    const raw = await fetch(`${server.url}/api/v1/nodes`, { client } as RequestInit);
    assert.equal(raw.status, 401);
    assert.equal(raw.headers.get("content-type"), "application/json");
    assert.equal((await raw.json()).reason, "Unauthorized");
    client.close();
  });
});

Deno.test("close() finishes while an informer keeps reconnecting", async () => {
  const server = await ApiServer.start(tls);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(server.kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const errors: unknown[] = [];
  const informer = new k8s.ListWatch<k8s.V1Node>(
    "/api/v1/nodes",
    new k8s.Watch(kc),
    () => core.listNode(),
    false,
  );
  informer.on("error", (e) => errors.push(e));
  await informer.start();
  await waitFor(() => server.openWatchCount() === 1, { what: "the informer's watch" });
  await server.close();
  assert.equal(server.openWatchCount(), 0);
  await waitFor(() => errors.length > 0, { what: "the informer to report the lost server" });
  await informer.stop();
});

Deno.test("client-node with a ServiceAccount kubeconfig gets 403 ApiExceptions under RBAC", async () => {
  await withCluster({ tls: true, rbac: true }, async ({ server }) => {
    server.create(runningPod("web-0"));
    server.create({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "pod-reader" },
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] }],
    });
    server.create({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "agent" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "pod-reader" },
      subjects: [{ kind: "ServiceAccount", name: "ha-controller", namespace: "ha" }],
    });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(await server.kubeconfigFor("ha", "ha-controller"));
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const pods = await core.listNamespacedPod({ namespace: "default" });
    assert.deepEqual(pods.items.map((p) => p.metadata?.name), ["web-0"]);
    const denied = await apiError(
      core.deleteNamespacedPod({ name: "web-0", namespace: "default" }),
    );
    assert.equal(denied.code, 403);
    assert.equal(denied.body.reason, "Forbidden");
    assert.equal(
      denied.body.message,
      'pods "web-0" is forbidden: User "system:serviceaccount:ha:ha-controller" cannot delete ' +
        'resource "pods" in API group "" in the namespace "default"',
    );
    assert.equal(server.forbidden().length, 1);
  });
});
