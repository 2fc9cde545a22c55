import assert from "node:assert/strict";
import { ApiError, ApiServer, Registry, Store } from "./mod.ts";
import { serverFetch } from "./testing.ts";
import type { Change, KubeObject } from "./mod.ts";

function setup(): { api: Registry; changes: Change[] } {
  const store = new Store();
  const api = new Registry(store, { now: () => new Date("2026-11-25T10:00:00.500Z") });
  api.create({ def: api.resolve("namespaces") }, { metadata: { name: "default" } }, {
    privileged: true,
  });
  const changes: Change[] = [];
  store.subscribe((c) => changes.push(c));
  return { api, changes };
}

function podBody(name: string, nodeName = "node-a"): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name },
    spec: { nodeName, containers: [{ name: "c", image: "busybox" }] },
    status: { phase: "Running" },
  };
}

function statusOf(fn: () => unknown): Record<string, unknown> {
  try {
    fn();
  } catch (e) {
    if (e instanceof ApiError) return e.status as unknown as Record<string, unknown>;
    throw e;
  }
  throw new Error("Expected an ApiError, the call succeeded");
}

Deno.test("create sets server fields and pod defaults; status from clients is ignored", () => {
  const { api } = setup();
  const pods = api.resolve("pods");
  const pod = api.create({ def: pods, namespace: "default" }, podBody("web-0"));
  assert.equal(pod.kind, "Pod");
  assert.equal(pod.apiVersion, "v1");
  assert.match(pod.metadata.uid!, /^[0-9a-f-]{36}$/);
  assert.equal(pod.metadata.creationTimestamp, "2026-11-25T10:00:00Z");
  assert.equal(pod.metadata.namespace, "default");
  assert.equal(pod.metadata.generation, 1);
  assert.ok(Number(pod.metadata.resourceVersion) > 0);
  assert.deepEqual(pod.status, { phase: "Pending", qosClass: "BestEffort" });
  const spec = pod.spec as { terminationGracePeriodSeconds: number; tolerations: unknown[] };
  assert.equal(spec.terminationGracePeriodSeconds, 30);
  assert.deepEqual(spec.tolerations, [
    {
      key: "node.kubernetes.io/not-ready",
      operator: "Exists",
      effect: "NoExecute",
      tolerationSeconds: 300,
    },
    {
      key: "node.kubernetes.io/unreachable",
      operator: "Exists",
      effect: "NoExecute",
      tolerationSeconds: 300,
    },
  ]);
  const generated = api.create({ def: pods, namespace: "default" }, {
    ...podBody(""),
    metadata: { generateName: "web-" },
  });
  assert.match(generated.metadata.name!, /^web-[a-z0-9]{5}$/);
});

Deno.test("a toleration of every NoExecute taint gets no default tolerations (DaemonSet pods)", () => {
  const { api } = setup();
  const pods = api.resolve("pods");
  const body = podBody("agent-x");
  (body.spec as Record<string, unknown>).tolerations = [{
    operator: "Exists",
    effect: "NoExecute",
  }];
  const pod = api.create({ def: pods, namespace: "default" }, body);
  assert.deepEqual((pod.spec as { tolerations: unknown[] }).tolerations, [
    { operator: "Exists", effect: "NoExecute" },
  ]);
});

Deno.test("create failures answer the real server's Status", () => {
  const { api } = setup();
  const pods = api.resolve("pods");
  api.create({ def: pods, namespace: "default" }, podBody("web-0"));
  assert.deepEqual(
    statusOf(() => api.create({ def: pods, namespace: "default" }, podBody("web-0"))),
    {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: 'pods "web-0" already exists',
      reason: "AlreadyExists",
      details: { name: "web-0", kind: "pods" },
      code: 409,
    },
  );
  const missingNs = statusOf(() => api.create({ def: pods, namespace: "nowhere" }, podBody("x")));
  assert.equal(missingNs.code, 404);
  assert.equal(missingNs.message, 'namespaces "nowhere" not found');
  const invalid = statusOf(() =>
    api.create({ def: pods, namespace: "default" }, {
      metadata: { name: "bad" },
      spec: { containers: [] },
    })
  );
  assert.equal(invalid.code, 422);
  assert.equal(invalid.message, 'Pod "bad" is invalid: spec.containers: Required value');
  const va = statusOf(() =>
    api.create({ def: api.resolve("volumeattachments") }, { metadata: {} })
  );
  assert.equal(va.code, 422);
  assert.equal(
    va.message,
    'VolumeAttachment.storage.k8s.io "" is invalid: metadata.name: Required value: name or generateName is required',
  );
  const notFound = statusOf(() => api.get({ def: api.resolve("volumeattachments"), name: "x" }));
  assert.equal(notFound.message, 'volumeattachments.storage.k8s.io "x" not found');
  assert.deepEqual(notFound.details, {
    name: "x",
    group: "storage.k8s.io",
    kind: "volumeattachments",
  });
});

Deno.test("updates of the main resource keep the status; status updates keep the spec", () => {
  const { api } = setup();
  const pods = api.resolve("pods");
  api.create({ def: pods, namespace: "default" }, podBody("web-0"));
  const current = api.get({ def: pods, namespace: "default", name: "web-0" });
  const main = api.update({ def: pods, namespace: "default", name: "web-0" }, {
    ...current,
    metadata: { ...current.metadata, labels: { a: "1" } },
    status: { phase: "Failed" },
  });
  assert.equal((main.status as { phase: string }).phase, "Pending");
  assert.deepEqual(main.metadata.labels, { a: "1" });
  const status = api.update({ def: pods, namespace: "default", name: "web-0" }, {
    ...main,
    metadata: { ...main.metadata, labels: { b: "2" } },
    spec: { ...main.spec as object, nodeName: "elsewhere" },
    status: { phase: "Running" },
  }, { subresource: "status" });
  assert.equal((status.status as { phase: string }).phase, "Running");
  assert.equal((status.spec as { nodeName: string }).nodeName, "node-a");
  assert.deepEqual(status.metadata.labels, { a: "1" });
});

Deno.test("force deletion writes MODIFIED with a deletionTimestamp, then DELETED", () => {
  const { api, changes } = setup();
  const pods = api.resolve("pods");
  const created = api.create({ def: pods, namespace: "default" }, podBody("web-0"));
  changes.length = 0;
  const result = api.delete({ def: pods, namespace: "default", name: "web-0" }, {
    gracePeriodSeconds: 0,
  });
  assert.equal(result.code, 200);
  assert.equal(result.removed, true);
  assert.deepEqual(changes.map((c) => c.type), ["MODIFIED", "DELETED"]);
  assert.equal(changes[0].object.metadata.deletionTimestamp, "2026-11-25T10:00:00Z");
  assert.equal(changes[0].object.metadata.deletionGracePeriodSeconds, 0);
  assert.equal((result.body as KubeObject).metadata.uid, created.metadata.uid);
});

Deno.test("graceful deletion keeps the pod; a later delete may only shorten the grace", () => {
  const { api, changes } = setup();
  const pods = api.resolve("pods");
  api.create({ def: pods, namespace: "default" }, podBody("web-0"));
  changes.length = 0;
  const first = api.delete({ def: pods, namespace: "default", name: "web-0" }, {});
  assert.equal(first.removed, false);
  const pod = first.body as KubeObject;
  assert.equal(pod.metadata.deletionTimestamp, "2026-11-25T10:00:30Z");
  assert.equal(pod.metadata.deletionGracePeriodSeconds, 30);
  assert.equal(pod.metadata.generation, 2);
  const longer = api.delete({ def: pods, namespace: "default", name: "web-0" }, {
    gracePeriodSeconds: 60,
  });
  assert.equal((longer.body as KubeObject).metadata.deletionGracePeriodSeconds, 30);
  const shorter = api.delete({ def: pods, namespace: "default", name: "web-0" }, {
    gracePeriodSeconds: 5,
  });
  assert.equal((shorter.body as KubeObject).metadata.deletionGracePeriodSeconds, 5);
  assert.deepEqual(changes.map((c) => c.type), ["MODIFIED", "MODIFIED"]);
  api.delete({ def: pods, namespace: "default", name: "web-0" }, { gracePeriodSeconds: 0 });
  assert.deepEqual(changes.map((c) => c.type), ["MODIFIED", "MODIFIED", "MODIFIED", "DELETED"]);
});

Deno.test("an unscheduled pod is deleted at once whatever the grace period", () => {
  const { api } = setup();
  const pods = api.resolve("pods");
  api.create({ def: pods, namespace: "default" }, podBody("pending", ""));
  const result = api.delete({ def: pods, namespace: "default", name: "pending" }, {
    gracePeriodSeconds: 30,
  });
  assert.equal(result.removed, true);
});

Deno.test("finalizers keep an object; removing the last one removes it with DELETED only", () => {
  const { api, changes } = setup();
  const vas = api.resolve("volumeattachments");
  api.create({ def: vas }, {
    metadata: { name: "csi-1", finalizers: ["external-attacher/x"] },
    spec: { attacher: "x", nodeName: "node-a", source: { persistentVolumeName: "pv" } },
  });
  changes.length = 0;
  const deleting = api.delete({ def: vas, name: "csi-1" }, {});
  assert.equal(deleting.removed, false);
  assert.equal((deleting.body as KubeObject).metadata.deletionGracePeriodSeconds, 0);
  const current = api.get({ def: vas, name: "csi-1" });
  const added = statusOf(() =>
    api.update({ def: vas, name: "csi-1" }, {
      ...current,
      metadata: { ...current.metadata, finalizers: ["external-attacher/x", "new"] },
    })
  );
  assert.equal(added.code, 422);
  api.patch({ def: vas, name: "csi-1" }, {
    contentType: "application/json-patch+json",
    patch: [{ op: "remove", path: "/metadata/finalizers" }],
  });
  assert.deepEqual(changes.map((c) => c.type), ["MODIFIED", "DELETED"]);
  assert.equal(statusOf(() => api.get({ def: vas, name: "csi-1" })).code, 404);
});

Deno.test("deleting a kind without graceful deletion answers a Success Status", () => {
  const { api } = setup();
  const leases = api.resolve("leases");
  const lease = api.create({ def: leases, namespace: "default" }, {
    metadata: { name: "node-a" },
    spec: {},
  });
  const result = api.delete({ def: leases, namespace: "default", name: "node-a" }, {});
  assert.deepEqual(result.body, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Success",
    details: {
      name: "node-a",
      group: "coordination.k8s.io",
      kind: "leases",
      uid: lease.metadata.uid,
    },
  });
});

Deno.test("leases need MicroTime renewTime; deletecollection removes the selected objects", () => {
  const { api } = setup();
  const leases = api.resolve("leases");
  const bad = statusOf(() =>
    api.create({ def: leases, namespace: "default" }, {
      metadata: { name: "a" },
      spec: { renewTime: "2026-11-25T10:00:00Z" },
    })
  );
  assert.equal(bad.code, 400);
  api.create({ def: leases, namespace: "default" }, {
    metadata: { name: "a", labels: { k: "1" } },
    spec: { renewTime: "2026-11-25T10:00:00.000000Z" },
  });
  api.create({ def: leases, namespace: "default" }, { metadata: { name: "b" }, spec: {} });
  const gone = api.deleteCollection(
    api.selection(leases, { namespace: "default", labelSelector: "k" }),
    {},
  );
  assert.deepEqual((gone.items as KubeObject[]).map((o) => o.metadata.name), ["a"]);
  assert.deepEqual(
    api.listStored(api.selection(leases, {})).items.map((o) => o.metadata.name),
    ["b"],
  );
});

Deno.test("field selectors: per-kind labels, defaults for other kinds, 400 otherwise", () => {
  const { api } = setup();
  const pods = api.resolve("pods");
  api.create({ def: pods, namespace: "default" }, podBody("a", "node-a"));
  api.create({ def: pods, namespace: "default" }, podBody("b", "node-b"));
  const onB = api.listStored(api.selection(pods, { fieldSelector: "spec.host=node-b" }));
  assert.deepEqual(onB.items.map((p) => p.metadata.name), ["b"]);
  const vas = api.resolve("volumeattachments");
  assert.equal(
    statusOf(() => api.selection(vas, { fieldSelector: "spec.nodeName=x" })).message,
    '"spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace"',
  );
  assert.equal(
    statusOf(() => api.selection(pods, { fieldSelector: "spec.nodeName>x" })).message,
    "invalid selector: 'spec.nodeName>x'; can't understand 'spec.nodeName>x'",
  );
  const events = api.resolve("events");
  api.selection(events, { fieldSelector: "involvedObject.kind=Pod,reason=Evicted,source=x" });
  const nodes = api.resolve("nodes");
  api.selection(nodes, { fieldSelector: "spec.unschedulable=true" });
});

Deno.test("patch rejects unknown media types with 415", () => {
  const { api } = setup();
  const nodes = api.resolve("nodes");
  api.create({ def: nodes }, { metadata: { name: "n" } });
  const status = statusOf(() =>
    api.patch({ def: nodes, name: "n" }, { contentType: "application/xml", patch: {} })
  );
  assert.equal(status.code, 415);
  assert.equal(status.reason, "UnsupportedMediaType");
});

Deno.test("server.delete follows the API's rules without HTTP", async () => {
  const server = await ApiServer.start({});
  try {
    const pod = server.create({
      ...podBody("web-0"),
      metadata: { name: "web-0", namespace: "default" },
    });
    const graceful = server.delete("pods", "default", "web-0");
    assert.equal(graceful.removed, false);
    assert.ok(server.get("pods", "default", "web-0")?.metadata.deletionTimestamp);
    const confirmed = server.delete("pods", "default", "web-0", {
      gracePeriodSeconds: 0,
      preconditions: { uid: pod.metadata.uid },
    });
    assert.equal(confirmed.removed, true);
    assert.equal(server.get("pods", "default", "web-0"), undefined);
    assert.equal(server.requests.length, 0);
  } finally {
    await server.close();
  }
});

Deno.test("a registered kind is served, discovered and limited to its verbs", async () => {
  const server = await ApiServer.start({});
  const f = serverFetch(server);
  try {
    server.api.register({
      group: "sim.example.com",
      version: "v1",
      resource: "widgets",
      kind: "Widget",
      singular: "widget",
      namespaced: true,
      verbs: ["create", "get", "list", "watch"],
    });
    const groups = await (await f("/apis")).json();
    assert.ok(groups.groups.some((g: { name: string }) => g.name === "sim.example.com"));
    const created = await f("/apis/sim.example.com/v1/namespaces/default/widgets", {
      method: "POST",
      body: JSON.stringify({
        apiVersion: "sim.example.com/v1",
        kind: "Widget",
        metadata: { name: "w" },
      }),
    });
    assert.equal(created.status, 201);
    assert.equal((await created.json()).metadata.namespace, "default");
    const denied = await f("/apis/sim.example.com/v1/namespaces/default/widgets/w", {
      method: "DELETE",
    });
    assert.equal(denied.status, 405);
    assert.equal(
      (await denied.json()).message,
      'delete is not supported on resources of kind "widgets.sim.example.com"',
    );
    assert.equal(server.list("widgets").length, 1);
  } finally {
    f.close();
    await server.close();
  }
});
