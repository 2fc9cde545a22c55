import assert from "node:assert/strict";
import { adminUser, ApiServer, requestAttributes, serviceAccountUser } from "./mod.ts";
import type { ApiServerOptions, KubeObject } from "./mod.ts";
import { serverFetch } from "./testing.ts";
import type { ServerFetch } from "./testing.ts";

const agent = "system:serviceaccount:ha:ha-controller";

function pod(name: string, namespace = "default"): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace },
    spec: { nodeName: "node-a", containers: [{ name: "c", image: "busybox" }] },
    status: { phase: "Running" },
  };
}

function clusterRole(name: string, rules: Record<string, unknown>[]): KubeObject {
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name },
    rules,
  };
}

function binding(
  kind: "ClusterRoleBinding" | "RoleBinding",
  options: {
    name: string;
    namespace?: string;
    role: string;
    roleKind?: string;
    subjects: unknown[];
  },
): KubeObject {
  const metadata: KubeObject["metadata"] = { name: options.name };
  if (options.namespace !== undefined) metadata.namespace = options.namespace;
  return {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind,
    metadata,
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: options.roleKind ?? "ClusterRole",
      name: options.role,
    },
    subjects: options.subjects,
  };
}

const agentSubject = { kind: "ServiceAccount", name: "ha-controller", namespace: "ha" };

interface Ctx {
  server: ApiServer;
  admin: ServerFetch;
  as: (token: string) => ServerFetch;
}

function rbacTest(
  name: string,
  options: ApiServerOptions,
  body: (ctx: Ctx) => Promise<void>,
): void {
  Deno.test(name, async () => {
    const server = await ApiServer.start(options);
    const clients: ServerFetch[] = [];
    const as = (token: string) => {
      const f = serverFetch(server, { token });
      clients.push(f);
      return f;
    };
    try {
      await body({ server, admin: as(server.token), as });
    } finally {
      for (const c of clients) c.close();
      await server.close();
    }
  });
}

async function call(
  f: ServerFetch,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await f(path, init);
  const text = await response.text();
  return { status: response.status, body: text === "" ? {} : JSON.parse(text) };
}

function post(body: unknown): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  };
}

rbacTest(
  "a ServiceAccount that may only read pods gets the real 403 Status when it deletes one",
  { tls: true, rbac: true },
  async ({ server, as }) => {
    server.create(pod("web-0"));
    server.create(clusterRole("pod-reader", [{
      apiGroups: [""],
      resources: ["pods"],
      verbs: ["get", "list", "watch"],
    }]));
    server.create(
      binding("ClusterRoleBinding", {
        name: "agent",
        role: "pod-reader",
        subjects: [agentSubject],
      }),
    );
    const sa = as(server.serviceAccountToken("ha", "ha-controller"));
    assert.equal((await call(sa, "/api/v1/namespaces/default/pods/web-0")).status, 200);
    assert.equal((await call(sa, "/api/v1/pods")).status, 200);
    const denied = await call(sa, "/api/v1/namespaces/default/pods/web-0", { method: "DELETE" });
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `pods "web-0" is forbidden: User "${agent}" cannot delete resource "pods" ` +
        `in API group "" in the namespace "default"`,
      reason: "Forbidden",
      details: { name: "web-0", kind: "pods" },
      code: 403,
    });
    assert.ok(server.get("pods", "default", "web-0") !== undefined, "the pod is still there");
    const forbidden = server.forbidden();
    assert.equal(forbidden.length, 1);
    assert.equal(forbidden[0].user, agent);
    assert.equal(forbidden[0].method, "DELETE");
    assert.equal(forbidden[0].name, "web-0");
    assert.equal(forbidden[0].denied, denied.body.message);
    assert.equal(server.requests.find((r) => r.path === "/api/v1/pods")?.user, agent);
  },
);

rbacTest(
  "writes to other kinds and groups are denied with their own resource and group",
  { rbac: true },
  async ({ server, as }) => {
    const sa = as(server.serviceAccountToken("ha", "ha-controller"));
    const va = await call(sa, "/apis/storage.k8s.io/v1/volumeattachments/csi-1", {
      method: "DELETE",
    });
    assert.equal(va.status, 403);
    assert.equal(
      va.body.message,
      `volumeattachments.storage.k8s.io "csi-1" is forbidden: User "${agent}" cannot delete ` +
        `resource "volumeattachments" in API group "storage.k8s.io" at the cluster scope`,
    );
    assert.deepEqual(va.body.details, {
      name: "csi-1",
      group: "storage.k8s.io",
      kind: "volumeattachments",
    });
    const list = await call(sa, "/api/v1/nodes");
    assert.equal(
      list.body.message,
      `nodes is forbidden: User "${agent}" cannot list resource "nodes" in API group "" ` +
        "at the cluster scope",
    );
    assert.deepEqual(list.body.details, { kind: "nodes" });
    const watch = await call(sa, "/api/v1/namespaces/default/pods?watch=true");
    assert.equal(
      watch.body.message,
      `pods is forbidden: User "${agent}" cannot watch resource "pods" in API group "" ` +
        `in the namespace "default"`,
    );
    const lease = await call(
      sa,
      "/apis/coordination.k8s.io/v1/namespaces/ha/leases",
      post({ metadata: { name: "x" } }),
    );
    assert.equal(
      lease.body.message,
      `leases.coordination.k8s.io is forbidden: User "${agent}" cannot create resource ` +
        `"leases" in API group "coordination.k8s.io" in the namespace "ha"`,
    );
  },
);

rbacTest(
  "subresources need their own rules: pods/eviction and nodes/status",
  { rbac: true },
  async ({ server, as }) => {
    server.create(pod("web-0"));
    server.create({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "node-a" },
      status: { conditions: [{ type: "Ready", status: "True" }] },
    });
    server.create(clusterRole("evictor", [
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "delete"] },
      { apiGroups: [""], resources: ["pods/eviction"], verbs: ["create"] },
      { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
    ]));
    server.create(
      binding("ClusterRoleBinding", { name: "agent", role: "evictor", subjects: [agentSubject] }),
    );
    const sa = as(server.serviceAccountToken("ha", "ha-controller"));
    const mergePatch = (body: unknown): RequestInit => ({
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: JSON.stringify(body),
    });
    const status = await call(
      sa,
      "/api/v1/nodes/node-a/status",
      mergePatch({ status: { phase: "x" } }),
    );
    assert.equal(status.status, 200);
    const node = await call(
      sa,
      "/api/v1/nodes/node-a",
      mergePatch({ spec: { unschedulable: true } }),
    );
    assert.equal(node.status, 403);
    assert.equal(
      node.body.message,
      `nodes "node-a" is forbidden: User "${agent}" cannot patch resource "nodes" ` +
        `in API group "" at the cluster scope`,
    );
    const podStatus = await call(
      sa,
      "/api/v1/namespaces/default/pods/web-0/status",
      mergePatch({ status: {} }),
    );
    assert.equal(
      podStatus.body.message,
      `pods "web-0" is forbidden: User "${agent}" cannot patch resource "pods/status" ` +
        `in API group "" in the namespace "default"`,
    );
    const eviction = {
      apiVersion: "policy/v1",
      kind: "Eviction",
      metadata: { name: "web-0", namespace: "default" },
    };
    const evicted = await call(
      sa,
      "/api/v1/namespaces/default/pods/web-0/eviction",
      post(eviction),
    );
    assert.equal(evicted.status, 201);

    // without the eviction rule, `pods` alone does not allow it
    server.update(clusterRole("evictor", [
      { apiGroups: [""], resources: ["pods"], verbs: ["*"] },
    ]));
    server.create(pod("web-1"));
    const refused = await call(
      sa,
      "/api/v1/namespaces/default/pods/web-1/eviction",
      post({ ...eviction, metadata: { name: "web-1", namespace: "default" } }),
    );
    assert.equal(refused.status, 403);
    assert.equal(
      refused.body.message,
      `pods "web-1" is forbidden: User "${agent}" cannot create resource "pods/eviction" ` +
        `in API group "" in the namespace "default"`,
    );
    assert.deepEqual(refused.body.details, { name: "web-1", kind: "pods" });

    // `*/eviction` covers the subresource of any resource
    server.update(clusterRole("evictor", [
      { apiGroups: [""], resources: ["*/eviction"], verbs: ["create"] },
    ]));
    const wildcard = await call(
      sa,
      "/api/v1/namespaces/default/pods/web-1/eviction",
      post({ ...eviction, metadata: { name: "web-1", namespace: "default" } }),
    );
    assert.equal(wildcard.status, 201);
  },
);

rbacTest(
  "resourceNames limit a rule to named objects, also for lists by metadata.name",
  { rbac: true },
  async ({ server, as }) => {
    server.create(pod("web-0"));
    server.create(pod("web-1"));
    server.create({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "web-0-only", namespace: "default" },
      rules: [{
        apiGroups: [""],
        resources: ["pods"],
        resourceNames: ["web-0"],
        verbs: ["get", "list", "watch"],
      }],
    });
    server.create(binding("RoleBinding", {
      name: "agent",
      namespace: "default",
      role: "web-0-only",
      roleKind: "Role",
      subjects: [agentSubject],
    }));
    const sa = as(server.serviceAccountToken("ha", "ha-controller"));
    assert.equal((await call(sa, "/api/v1/namespaces/default/pods/web-0")).status, 200);
    const other = await call(sa, "/api/v1/namespaces/default/pods/web-1");
    assert.equal(other.status, 403);
    assert.match(String(other.body.message), /^pods "web-1" is forbidden: /);
    const list = await call(sa, "/api/v1/namespaces/default/pods");
    assert.equal(list.status, 403);
    assert.equal(
      list.body.message,
      `pods is forbidden: User "${agent}" cannot list resource "pods" in API group "" ` +
        `in the namespace "default"`,
    );
    const byName = await call(
      sa,
      "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-0",
    );
    assert.equal(byName.status, 200);
    assert.deepEqual(
      (byName.body.items as KubeObject[]).map((p) => p.metadata.name),
      ["web-0"],
    );
  },
);

rbacTest(
  "bindings apply to groups, users and, for RoleBindings, only their namespace",
  { rbac: true },
  async ({ server, as }) => {
    server.create(pod("web-0", "default"));
    server.create(pod("db-0", "kube-system"));
    server.create(clusterRole("pod-reader", [{
      apiGroups: [""],
      resources: ["pods"],
      verbs: ["get"],
    }]));
    server.create(binding("ClusterRoleBinding", {
      name: "ha-accounts",
      role: "pod-reader",
      subjects: [{ kind: "Group", name: "system:serviceaccounts:ha" }],
    }));
    const inHa = as(server.serviceAccountToken("ha", "other"));
    const elsewhere = as(server.serviceAccountToken("tools", "other"));
    assert.equal((await call(inHa, "/api/v1/namespaces/kube-system/pods/db-0")).status, 200);
    const denied = await call(elsewhere, "/api/v1/namespaces/default/pods/web-0");
    assert.equal(denied.status, 403);
    assert.equal(
      denied.body.message,
      `pods "web-0" is forbidden: User "system:serviceaccount:tools:other" cannot get ` +
        `resource "pods" in API group "" in the namespace "default"`,
    );

    // a RoleBinding to a ClusterRole grants it in its own namespace only; the
    // ServiceAccount subject's namespace defaults to the binding's
    server.create(binding("RoleBinding", {
      name: "tools-read",
      namespace: "default",
      role: "pod-reader",
      subjects: [{ kind: "ServiceAccount", name: "other", namespace: "tools" }],
    }));
    assert.equal((await call(elsewhere, "/api/v1/namespaces/default/pods/web-0")).status, 200);
    assert.equal((await call(elsewhere, "/api/v1/namespaces/kube-system/pods/db-0")).status, 403);

    // users by name, and any group a token carries
    const alice = as(server.userToken({ username: "alice", groups: ["team-a"] }));
    assert.equal((await call(alice, "/apis")).status, 200, "every user may read discovery");
    assert.equal((await call(alice, "/api/v1/namespaces/default/pods/web-0")).status, 403);
    server.create(binding("ClusterRoleBinding", {
      name: "alice",
      role: "pod-reader",
      subjects: [{ kind: "User", name: "alice", apiGroup: "rbac.authorization.k8s.io" }],
    }));
    assert.equal((await call(alice, "/api/v1/namespaces/default/pods/web-0")).status, 200);
    const bob = as(server.userToken({ username: "bob", groups: ["team-a"] }));
    server.create(binding("ClusterRoleBinding", {
      name: "team-a",
      role: "pod-reader",
      subjects: [{ kind: "Group", name: "team-a", apiGroup: "rbac.authorization.k8s.io" }],
    }));
    assert.equal((await call(bob, "/api/v1/namespaces/kube-system/pods/db-0")).status, 200);
  },
);

rbacTest(
  "a binding to a missing role adds the resolver's error to the message",
  { rbac: true },
  async ({ server, as }) => {
    server.create(pod("web-0"));
    server.create(
      binding("ClusterRoleBinding", { name: "agent", role: "nope", subjects: [agentSubject] }),
    );
    const sa = as(server.serviceAccountToken("ha", "ha-controller"));
    const denied = await call(sa, "/api/v1/namespaces/default/pods/web-0");
    assert.equal(
      denied.body.message,
      `pods "web-0" is forbidden: User "${agent}" cannot get resource "pods" in API group "" ` +
        `in the namespace "default": RBAC: clusterrole.rbac.authorization.k8s.io "nope" not found`,
    );
  },
);

rbacTest(
  "RBAC off allows every request; switching it on applies to the next request",
  { tls: true },
  async ({ server, as }) => {
    server.create(pod("web-0"));
    server.create(pod("web-1"));
    assert.equal(server.rbacEnabled, false);
    const sa = as(server.serviceAccountToken("ha", "ha-controller"));
    const deleted = await call(sa, "/api/v1/namespaces/default/pods/web-0", {
      method: "DELETE",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ gracePeriodSeconds: 0 }),
    });
    assert.equal(deleted.status, 200);
    assert.equal(server.get("pods", "default", "web-0"), undefined);
    server.setRbac(true);
    assert.equal(server.rbacEnabled, true);
    const denied = await call(sa, "/api/v1/namespaces/default/pods/web-1", { method: "DELETE" });
    assert.equal(denied.status, 403);
    server.setRbac(false);
    assert.equal((await call(sa, "/api/v1/namespaces/default/pods/web-1")).status, 200);
    assert.deepEqual(server.forbidden().map((r) => r.name), ["web-1"]);
  },
);

rbacTest(
  "the admin token stays a superuser; discovery is open to every authenticated user",
  { tls: true, rbac: true },
  async ({ server, admin, as }) => {
    server.create(pod("web-0"));
    const deleted = await call(admin, "/api/v1/namespaces/default/pods/web-0", {
      method: "DELETE",
    });
    assert.equal(deleted.status, 200);
    assert.equal(server.requests.at(-1)?.user, "kubernetes-admin");
    const sa = as(server.serviceAccountToken("ha", "ha-controller"));
    for (
      const path of ["/api", "/apis", "/api/v1", "/apis/rbac.authorization.k8s.io/v1", "/version"]
    ) {
      assert.equal((await call(sa, path)).status, 200, path);
    }
    const rbacKinds = await call(sa, "/apis/rbac.authorization.k8s.io/v1");
    assert.deepEqual(
      (rbacKinds.body.resources as { name: string }[]).map((r) => r.name),
      ["clusterroles", "clusterrolebindings", "roles", "rolebindings"],
    );
    const other = await call(sa, "/metrics");
    assert.equal(other.status, 403);
    assert.deepEqual(other.body, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `forbidden: User "${agent}" cannot get path "/metrics"`,
      reason: "Forbidden",
      details: {},
      code: 403,
    });
  },
);

rbacTest(
  "tokens of deleted ServiceAccounts and unknown tokens are 401",
  { tls: true, rbac: true },
  async ({ server, as }) => {
    const sa = as(server.serviceAccountToken("ha", "ha-controller"));
    assert.ok(server.get("serviceaccounts", "ha", "ha-controller") !== undefined);
    assert.equal((await call(sa, "/api")).status, 200);
    server.remove("serviceaccounts", "ha", "ha-controller");
    const gone = await call(sa, "/api");
    assert.equal(gone.status, 401);
    assert.equal(gone.body.reason, "Unauthorized");
    assert.equal((await call(as("made-up"), "/api")).status, 401);
  },
);

rbacTest(
  "RBAC objects are validated like the real server's: roleRef is immutable, rules need verbs",
  {},
  async ({ server, admin }) => {
    const path = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
    const created = await call(
      admin,
      path,
      post(binding("ClusterRoleBinding", { name: "b", role: "one", subjects: [agentSubject] })),
    );
    assert.equal(created.status, 201);
    const changed = await call(admin, `${path}/b`, {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: JSON.stringify({ roleRef: { name: "two" } }),
    });
    assert.equal(changed.status, 422);
    assert.equal(
      changed.body.message,
      `ClusterRoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Invalid value: ` +
        `rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"two"}: ` +
        "cannot change roleRef",
    );
    const stored = server.get("clusterrolebindings", undefined, "b");
    assert.equal((stored?.roleRef as { name: string }).name, "one");
    const noVerbs = await call(
      admin,
      "/apis/rbac.authorization.k8s.io/v1/clusterroles",
      post(clusterRole("r", [{ apiGroups: [""], resources: ["pods"], verbs: [] }])),
    );
    assert.equal(noVerbs.status, 422);
    assert.equal(
      noVerbs.body.message,
      `ClusterRole.rbac.authorization.k8s.io "r" is invalid: rules[0].verbs: Required value: ` +
        "verbs must contain at least one value",
    );
  },
);

rbacTest(
  "access reviews answer for the caller, and whoami names it",
  { rbac: true },
  async ({ server, admin, as }) => {
    server.create(clusterRole("pod-reader", [{
      apiGroups: [""],
      resources: ["pods"],
      verbs: ["get", "list", "watch"],
    }]));
    server.create(
      binding("ClusterRoleBinding", {
        name: "agent",
        role: "pod-reader",
        subjects: [agentSubject],
      }),
    );
    const sa = as(server.serviceAccountToken("ha", "ha-controller"));
    const review = (verb: string) =>
      post({
        apiVersion: "authorization.k8s.io/v1",
        kind: "SelfSubjectAccessReview",
        spec: { resourceAttributes: { namespace: "default", verb, resource: "pods" } },
      });
    const path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    const yes = await call(sa, path, review("list"));
    assert.equal(yes.status, 201);
    assert.deepEqual(yes.body.status, {
      allowed: true,
      reason: `RBAC: allowed by ClusterRoleBinding "agent" of ClusterRole "pod-reader" to ` +
        `ServiceAccount "ha-controller/ha"`,
    });
    assert.deepEqual((await call(sa, path, review("delete"))).body.status, { allowed: false });
    assert.deepEqual((await call(admin, path, review("delete"))).body.status, { allowed: true });
    const subject = await call(
      admin,
      "/apis/authorization.k8s.io/v1/subjectaccessreviews",
      post({
        spec: {
          user: agent,
          groups: serviceAccountUser({ namespace: "ha", name: "ha-controller" }).groups,
          resourceAttributes: { namespace: "default", verb: "watch", resource: "pods" },
        },
      }),
    );
    assert.equal((subject.body.status as { allowed: boolean }).allowed, true);
    const whoami = await call(
      sa,
      "/apis/authentication.k8s.io/v1/selfsubjectreviews",
      post({ apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" }),
    );
    assert.deepEqual(whoami.body.status, {
      userInfo: {
        username: agent,
        groups: ["system:serviceaccounts", "system:serviceaccounts:ha", "system:authenticated"],
      },
    });
    const rules = await call(
      sa,
      "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
      post({ spec: { namespace: "default" } }),
    );
    const status = rules.body.status as { resourceRules: unknown[]; incomplete: boolean };
    assert.deepEqual(status.resourceRules[0], {
      verbs: ["get", "list", "watch"],
      apiGroups: [""],
      resources: ["pods"],
    });
    assert.equal(status.incomplete, false);
    const bad = await call(sa, path, post({ spec: {} }));
    assert.equal(bad.status, 422);
    assert.equal(server.forbidden().length, 0, "the reviews themselves are allowed");
  },
);

Deno.test("request attributes follow kube-apiserver's request-info parsing", () => {
  const user = adminUser;
  const at = (method: string, path: string) => {
    const a = requestAttributes(user, { method, url: new URL(`https://x${path}`) });
    return [a.verb, a.group, a.resource, a.subresource, a.namespace, a.name].join("|");
  };
  assert.equal(at("GET", "/api/v1/namespaces/default/pods"), "list||pods||default|");
  assert.equal(at("GET", "/api/v1/namespaces/default/pods/web-0"), "get||pods||default|web-0");
  assert.equal(at("GET", "/api/v1/pods?watch=1"), "watch||pods|||");
  assert.equal(
    at("GET", "/api/v1/watch/namespaces/default/pods/web-0"),
    "watch||pods||default|web-0",
  );
  assert.equal(
    at("GET", "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-0"),
    "list||pods||default|web-0",
  );
  assert.equal(
    at("POST", "/api/v1/namespaces/default/pods/web-0/eviction"),
    "create||pods|eviction|default|web-0",
  );
  assert.equal(at("DELETE", "/api/v1/namespaces/default/pods"), "deletecollection||pods||default|");
  assert.equal(at("PATCH", "/api/v1/nodes/node-a/status"), "patch||nodes|status||node-a");
  assert.equal(at("GET", "/api/v1/namespaces/ha"), "get||namespaces||ha|ha");
  assert.equal(at("PUT", "/api/v1/namespaces/ha/finalize"), "update||namespaces|finalize|ha|ha");
  assert.equal(
    at("PUT", "/apis/coordination.k8s.io/v1/namespaces/ha/leases/x"),
    "update|coordination.k8s.io|leases||ha|x",
  );
  const discovery = requestAttributes(user, {
    method: "GET",
    url: new URL("https://x/apis/apps/v1"),
  });
  assert.equal(discovery.resourceRequest, false);
  assert.equal(discovery.verb, "get");
  assert.equal(discovery.path, "/apis/apps/v1");
});

/** Encodes one length-delimited protobuf field. */
function field(number: number, value: Uint8Array | string): Uint8Array {
  const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
  const varint = (n: number) => {
    const out: number[] = [];
    while (n >= 0x80) {
      out.push((n & 0x7f) | 0x80);
      n = Math.floor(n / 128);
    }
    out.push(n);
    return out;
  };
  return new Uint8Array([...varint(number * 8 + 2), ...varint(bytes.length), ...bytes]);
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return new Uint8Array(parts.flatMap((p) => [...p]));
}

rbacTest(
  "a protobuf SelfSubjectAccessReview, as kubectl auth can-i sends it, is answered in JSON",
  { rbac: true },
  async ({ server, admin, as }) => {
    const sa = as(server.serviceAccountToken("ha", "ha-controller"));
    const attributes = concat(field(1, "default"), field(2, "list"), field(5, "pods"));
    const review = concat(field(2, field(1, attributes)));
    const envelope = concat(
      field(1, concat(field(1, "authorization.k8s.io/v1"), field(2, "SelfSubjectAccessReview"))),
      field(2, review),
    );
    const protobuf = "application/vnd.kubernetes.protobuf";
    const send = (body: Uint8Array) =>
      call(sa, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
        method: "POST",
        headers: { "content-type": protobuf, accept: `${protobuf},application/json` },
        body: concat(new Uint8Array([0x6b, 0x38, 0x73, 0x00]), body),
      });
    const answer = await send(envelope);
    assert.equal(answer.status, 201);
    assert.deepEqual(answer.body.spec, {
      resourceAttributes: { namespace: "default", verb: "list", resource: "pods" },
    });
    assert.deepEqual(answer.body.status, { allowed: false });
    const pod = concat(
      field(1, concat(field(1, "v1"), field(2, "Pod"))),
      field(2, new Uint8Array()),
    );
    // other kinds are not decoded: 415 for those who may create them, 403 before that for others
    const refused = await call(admin, "/api/v1/namespaces/default/pods", {
      method: "POST",
      headers: { "content-type": protobuf },
      body: concat(new Uint8Array([0x6b, 0x38, 0x73, 0x00]), pod),
    });
    assert.equal(refused.status, 415);
    const denied = await call(sa, "/api/v1/namespaces/default/pods", {
      method: "POST",
      headers: { "content-type": protobuf },
      body: concat(new Uint8Array([0x6b, 0x38, 0x73, 0x00]), pod),
    });
    assert.equal(denied.status, 403);
  },
);
