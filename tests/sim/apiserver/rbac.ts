/**
 * Authorization of the simulated API server, with the rules of Kubernetes
 * RBAC: what a request asks for (its attributes, parsed from the URL the way
 * kube-apiserver's request-info parser does), which stored ClusterRoles and
 * Roles apply to its user through ClusterRoleBindings and RoleBindings, and
 * the 403 Forbidden Status a denial is answered with.
 *
 * Members of `system:masters` are always allowed (the admin token is one).
 * Every authenticated user may read the discovery documents and create the
 * self-reviews, as the default `system:discovery`, `system:basic-user` and
 * `system:public-info-viewer` bindings of a real cluster allow; those
 * bindings are built in and not stored, so tests cannot lose them.
 *
 * @module
 */

import type { UserInfo } from "./auth.ts";
import { authenticatedGroup, isSuperuser, serviceAccountOf, unauthenticatedGroup } from "./auth.ts";
import type { KubeObject } from "./objects.ts";
import { isRecord } from "./objects.ts";
import { ApiError, forbidden } from "./status.ts";
import type { Store } from "./store.ts";

/** The API group of the RBAC kinds. */
export const rbacGroup = "rbac.authorization.k8s.io";

/** One rule of a ClusterRole or Role. */
export interface PolicyRule {
  /** Verbs such as `get`, or `*`. */
  verbs: string[];
  /** API groups (`""` is core), or `*`. */
  apiGroups?: string[];
  /** Resources such as `pods`, `pods/eviction`, `*` or `*\/status`. */
  resources?: string[];
  /** Object names the rule is limited to; empty means all. */
  resourceNames?: string[];
  /** Non-resource paths such as `/healthz` or `/apis/*`. */
  nonResourceURLs?: string[];
}

/** What a request asks for, as the authorizer sees it. */
export interface RequestAttributes {
  /** Who asks. */
  user: UserInfo;
  /** `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; lower-case HTTP method for paths. */
  verb: string;
  /** True for `/api/...` and `/apis/...` paths naming a resource. */
  resourceRequest: boolean;
  /** URL path (what non-resource rules match). */
  path: string;
  /** API group, `""` for core. */
  group: string;
  /** API version. */
  version: string;
  /** Resource plural. */
  resource: string;
  /** Subresource such as `eviction` or `status`, else `""`. */
  subresource: string;
  /** Namespace, `""` for cluster scope (and for lists across all namespaces). */
  namespace: string;
  /** Object name, `""` when none (lists name one only through `metadata.name=` field selectors). */
  name: string;
}

/** The answer of the authorizer. */
export interface Decision {
  /** Whether the request may proceed. */
  allowed: boolean;
  /** Why: which binding allowed it, or the errors met while looking (may be `""`). */
  reason: string;
}

/** The rules a user has in one namespace (for SelfSubjectRulesReview). */
export interface UserRules {
  /** Rules on resources. */
  resourceRules: PolicyRule[];
  /** Rules on non-resource paths. */
  nonResourceRules: PolicyRule[];
  /** Errors met while resolving role references. */
  errors: string[];
}

const namespaceSubresources = new Set(["status", "finalize"]);
const trueValues = new Set(["1", "t", "T", "TRUE", "true", "True"]);

function exactName(fieldSelector: string | null): string {
  if (fieldSelector === null) return "";
  for (const term of fieldSelector.split(",")) {
    const m = /^\s*metadata\.name\s*==?\s*(.*?)\s*$/.exec(term);
    if (m !== null && m[1] !== "" && !m[1].includes("/") && m[1] !== "." && m[1] !== "..") {
      return m[1];
    }
  }
  return "";
}

/**
 * The authorization attributes of an HTTP request: verb, group, resource,
 * subresource, namespace and name, derived from method, path and query the
 * way kube-apiserver does (a GET without a name is `list` or `watch`, a
 * `metadata.name=` field selector names the object, `/namespaces/<ns>` is in
 * namespace `<ns>`).
 */
export function requestAttributes(
  user: UserInfo,
  request: { method: string; url: URL },
): RequestAttributes {
  const path = request.url.pathname;
  const method = request.method.toUpperCase();
  const attrs: RequestAttributes = {
    user,
    verb: method.toLowerCase(),
    resourceRequest: false,
    path,
    group: "",
    version: "",
    resource: "",
    subresource: "",
    namespace: "",
    name: "",
  };
  let parts = path.split("/").filter((s) => s !== "");
  if (parts.length < 3 || (parts[0] !== "api" && parts[0] !== "apis")) return attrs;
  if (parts[0] === "apis") {
    if (parts.length < 4) return attrs;
    attrs.group = parts[1];
    parts = parts.slice(2);
  } else {
    parts = parts.slice(1);
  }
  attrs.resourceRequest = true;
  attrs.version = parts[0];
  parts = parts.slice(1);
  let verb: string;
  if (parts[0] === "watch" || parts[0] === "proxy") {
    verb = parts[0];
    parts = parts.slice(1);
  } else {
    verb = ({
      POST: "create",
      GET: "get",
      HEAD: "get",
      PUT: "update",
      PATCH: "patch",
      DELETE: "delete",
    } as Record<string, string>)[method] ?? "";
  }
  if (parts[0] === "namespaces" && parts.length > 1) {
    attrs.namespace = parts[1];
    if (parts.length > 2 && !namespaceSubresources.has(parts[2])) parts = parts.slice(2);
  }
  if (parts.length >= 3 && verb !== "proxy") attrs.subresource = parts[2];
  if (parts.length >= 2) attrs.name = parts[1];
  if (parts.length >= 1) attrs.resource = parts[0];
  if (attrs.name === "" && verb === "get") {
    const params = request.url.searchParams;
    verb = trueValues.has(params.get("watch") ?? "") ? "watch" : "list";
    attrs.name = exactName(params.get("fieldSelector"));
  }
  if (attrs.name === "" && verb === "delete") verb = "deletecollection";
  attrs.verb = verb;
  return attrs;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** The rules of a stored ClusterRole or Role, in a typed form. */
export function rulesOf(role: KubeObject): PolicyRule[] {
  const rules = Array.isArray(role.rules) ? role.rules : [];
  return rules.filter(isRecord).map((r) => {
    const rule: PolicyRule = { verbs: strings(r.verbs) };
    if (r.apiGroups !== undefined) rule.apiGroups = strings(r.apiGroups);
    if (r.resources !== undefined) rule.resources = strings(r.resources);
    if (r.resourceNames !== undefined) rule.resourceNames = strings(r.resourceNames);
    if (r.nonResourceURLs !== undefined) rule.nonResourceURLs = strings(r.nonResourceURLs);
    return rule;
  });
}

function resourceMatches(rule: PolicyRule, attrs: RequestAttributes): boolean {
  const sub = attrs.subresource;
  const combined = sub === "" ? attrs.resource : `${attrs.resource}/${sub}`;
  return (rule.resources ?? []).some((r) =>
    r === "*" || r === combined || (sub !== "" && r === `*/${sub}`)
  );
}

function pathMatches(rule: PolicyRule, path: string): boolean {
  return (rule.nonResourceURLs ?? []).some((u) =>
    u === "*" || u === path || (u.endsWith("*") && path.startsWith(u.replace(/\*+$/, "")))
  );
}

/** Whether one rule allows the request (verb, group, resource[/subresource], name; or path). */
export function ruleAllows(rule: PolicyRule, attrs: RequestAttributes): boolean {
  const verbOk = rule.verbs.includes("*") || rule.verbs.includes(attrs.verb);
  if (!verbOk) return false;
  if (!attrs.resourceRequest) return pathMatches(rule, attrs.path);
  const groups = rule.apiGroups ?? [];
  if (!groups.includes("*") && !groups.includes(attrs.group)) return false;
  if (!resourceMatches(rule, attrs)) return false;
  const names = rule.resourceNames ?? [];
  return names.length === 0 || names.includes(attrs.name);
}

interface Subject {
  kind: string;
  name: string;
  namespace: string;
}

function subjectsOf(binding: KubeObject): Subject[] {
  const subjects = Array.isArray(binding.subjects) ? binding.subjects : [];
  return subjects.filter(isRecord).map((s) => ({
    kind: String(s.kind ?? ""),
    name: String(s.name ?? ""),
    namespace: String(s.namespace ?? ""),
  }));
}

function appliesTo(user: UserInfo, subject: Subject, bindingNamespace: string): boolean {
  switch (subject.kind) {
    case "User":
      return subject.name === user.username;
    case "Group":
      return user.groups.includes(subject.name);
    case "ServiceAccount": {
      const namespace = subject.namespace !== "" ? subject.namespace : bindingNamespace;
      if (namespace === "") return false;
      const account = serviceAccountOf(user.username);
      return account?.namespace === namespace && account.name === subject.name;
    }
    default:
      return false;
  }
}

function describeSubject(subject: Subject, bindingNamespace: string): string {
  if (subject.kind !== "ServiceAccount") return `${subject.kind} "${subject.name}"`;
  const namespace = subject.namespace !== "" ? subject.namespace : bindingNamespace;
  return `${subject.kind} "${subject.name}/${namespace}"`;
}

interface RoleRef {
  kind: string;
  name: string;
}

function roleRefOf(binding: KubeObject): RoleRef {
  const ref = isRecord(binding.roleRef) ? binding.roleRef : {};
  return { kind: String(ref.kind ?? ""), name: String(ref.name ?? "") };
}

function builtin(name: string, groups: string[], rules: PolicyRule[]) {
  return {
    role: { apiVersion: `${rbacGroup}/v1`, kind: "ClusterRole", metadata: { name }, rules },
    binding: {
      apiVersion: `${rbacGroup}/v1`,
      kind: "ClusterRoleBinding",
      metadata: { name },
      roleRef: { apiGroup: rbacGroup, kind: "ClusterRole", name },
      subjects: groups.map((g) => ({ apiGroup: rbacGroup, kind: "Group", name: g })),
    },
  };
}

const publicPaths = ["/healthz", "/livez", "/readyz", "/version", "/version/"];

/** The default bindings every cluster has; built in, not stored. */
const builtins = [
  builtin("system:discovery", [authenticatedGroup], [{
    verbs: ["get"],
    nonResourceURLs: [
      "/api",
      "/api/*",
      "/apis",
      "/apis/*",
      "/openapi",
      "/openapi/*",
      ...publicPaths,
    ]
      .sort(),
  }]),
  builtin("system:basic-user", [authenticatedGroup], [
    {
      verbs: ["create"],
      apiGroups: ["authorization.k8s.io"],
      resources: ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    },
    { verbs: ["create"], apiGroups: ["authentication.k8s.io"], resources: ["selfsubjectreviews"] },
  ]),
  builtin("system:public-info-viewer", [authenticatedGroup, unauthenticatedGroup], [{
    verbs: ["get"],
    nonResourceURLs: publicPaths,
  }]),
];

const clusterRoles = `clusterroles.${rbacGroup}`;
const clusterRoleBindings = `clusterrolebindings.${rbacGroup}`;
const roles = `roles.${rbacGroup}`;
const roleBindings = `rolebindings.${rbacGroup}`;

/** Visits a rule with the text naming where it came from; returns false to stop. */
type RuleVisitor = (source: string, rule: PolicyRule) => boolean;

/** `[a, b]` for several distinct errors, the error itself for one (Go's error aggregate). */
function aggregate(errors: string[]): string {
  const distinct = [...new Set(errors)];
  return distinct.length === 1 ? distinct[0] : `[${distinct.join(", ")}]`;
}

/** Decides requests against the RBAC objects in a store. */
export class Authorizer {
  /** Whether requests are checked; when false every request is allowed. */
  enabled: boolean;
  #store: Store;

  /** Reads roles and bindings from `store`. */
  constructor(store: Store, options: { enabled?: boolean } = {}) {
    this.#store = store;
    this.enabled = options.enabled ?? false;
  }

  #clusterRole(name: string): KubeObject | undefined {
    return this.#store.get(clusterRoles, { name }) ??
      builtins.find((b) => b.role.metadata.name === name)?.role;
  }

  #clusterBindings(): KubeObject[] {
    const stored = this.#store.list(clusterRoleBindings);
    const names = new Set(stored.map((b) => b.metadata.name));
    return [
      ...stored,
      ...builtins.map((b) => b.binding).filter((b) => !names.has(b.metadata.name)),
    ];
  }

  /** The rules of the role a binding refers to, or the error the real resolver reports. */
  #referencedRules(ref: RoleRef, namespace: string): PolicyRule[] | string {
    if (ref.kind === "ClusterRole") {
      const role = this.#clusterRole(ref.name);
      if (role === undefined) return `clusterrole.${rbacGroup} "${ref.name}" not found`;
      return rulesOf(role);
    }
    if (ref.kind === "Role" && namespace !== "") {
      const role = this.#store.get(roles, { namespace, name: ref.name });
      if (role === undefined) return `role.${rbacGroup} "${ref.name}" not found`;
      return rulesOf(role);
    }
    return `unsupported role reference kind: "${ref.kind}"`;
  }

  /** Visits the rules of every binding that applies to `user` in `namespace`; returns errors. */
  #visit(user: UserInfo, namespace: string, visitor: RuleVisitor): string[] {
    const errors: string[] = [];
    const sources: { binding: KubeObject; namespace: string }[] = this.#clusterBindings()
      .map((binding) => ({ binding, namespace: "" }));
    if (namespace !== "") {
      for (const binding of this.#store.list(roleBindings, namespace)) {
        sources.push({ binding, namespace });
      }
    }
    for (const { binding, namespace: bindingNs } of sources) {
      const subject = subjectsOf(binding).find((s) => appliesTo(user, s, bindingNs));
      if (subject === undefined) continue;
      const ref = roleRefOf(binding);
      const rules = this.#referencedRules(ref, bindingNs);
      if (typeof rules === "string") {
        errors.push(rules);
        continue;
      }
      const name = binding.metadata.name ?? "";
      const source = bindingNs === ""
        ? `ClusterRoleBinding "${name}"`
        : `RoleBinding "${name}/${bindingNs}"`;
      const text = `${source} of ${ref.kind} "${ref.name}" to ${
        describeSubject(subject, bindingNs)
      }`;
      for (const rule of rules) {
        if (!visitor(text, rule)) return errors;
      }
    }
    return errors;
  }

  /** Allows or denies one request: RBAC off and superusers pass, else the first matching rule. */
  authorize(attrs: RequestAttributes): Decision {
    if (!this.enabled || isSuperuser(attrs.user)) return { allowed: true, reason: "" };
    let reason = "";
    const errors = this.#visit(attrs.user, attrs.namespace, (source, rule) => {
      if (!ruleAllows(rule, attrs)) return true;
      reason = `RBAC: allowed by ${source}`;
      return false;
    });
    if (reason !== "") return { allowed: true, reason };
    return { allowed: false, reason: errors.length > 0 ? `RBAC: ${aggregate(errors)}` : "" };
  }

  /** Every rule `user` has in `namespace` (cluster-wide ones included). */
  rulesFor(user: UserInfo, namespace: string): UserRules {
    if (!this.enabled || isSuperuser(user)) {
      return {
        resourceRules: [{ verbs: ["*"], apiGroups: ["*"], resources: ["*"] }],
        nonResourceRules: [{ verbs: ["*"], nonResourceURLs: ["*"] }],
        errors: [],
      };
    }
    const out: UserRules = { resourceRules: [], nonResourceRules: [], errors: [] };
    out.errors = this.#visit(user, namespace, (_source, rule) => {
      if ((rule.nonResourceURLs ?? []).length > 0) out.nonResourceRules.push(rule);
      else out.resourceRules.push(rule);
      return true;
    });
    return out;
  }
}

/**
 * The 403 a denied request gets, worded as kube-apiserver words it:
 * `pods "web-0" is forbidden: User "u" cannot delete resource "pods" in API
 * group "" in the namespace "default"`, `... at the cluster scope`, or
 * `forbidden: User "u" cannot get path "/apis"`; a non-empty `reason` (role
 * references that do not resolve) follows after `: `.
 */
export function forbiddenError(attrs: RequestAttributes, reason: string): ApiError {
  const user = JSON.stringify(attrs.user.username);
  let why: string;
  if (!attrs.resourceRequest) {
    why = `User ${user} cannot ${attrs.verb} path ${JSON.stringify(attrs.path)}`;
  } else {
    const resource = attrs.subresource === ""
      ? attrs.resource
      : `${attrs.resource}/${attrs.subresource}`;
    const scope = attrs.namespace === ""
      ? "at the cluster scope"
      : `in the namespace ${JSON.stringify(attrs.namespace)}`;
    why = `User ${user} cannot ${attrs.verb} resource ${JSON.stringify(resource)} in API group ${
      JSON.stringify(attrs.group)
    } ${scope}`;
  }
  if (reason !== "") why = `${why}: ${reason}`;
  if (attrs.resourceRequest && attrs.resource !== "") {
    return forbidden({ group: attrs.group, resource: attrs.resource }, {
      name: attrs.name,
      why,
    });
  }
  // an empty group-resource: kube-apiserver still sends an (empty) details object
  return new ApiError({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: `forbidden: ${why}`,
    reason: "Forbidden",
    details: {},
    code: 403,
  });
}
