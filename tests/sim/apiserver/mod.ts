/**
 * A local Kubernetes API server for tests: the seed of the cluster simulator.
 *
 * ```ts
 * import { ApiServer } from "./tests/sim/apiserver/mod.ts";
 * const server = await ApiServer.start({ tls: true });
 * server.create({ apiVersion: "v1", kind: "Node", metadata: { name: "node-a" } });
 * // client-node: kc.loadFromFile(server.kubeconfigPath); kubectl --kubeconfig <same path>
 * await server.close();
 * ```
 *
 * How it is built (each file one concern, so a later simulator can add
 * controllers and kubelets on top):
 *
 * - `store.ts`     objects, the global resourceVersion, change history, listeners
 * - `resources.ts` one `ResourceDef` per served kind: URL place, discovery entry,
 *                  field selectors, merge keys, defaults, validation, grace periods
 * - `registry.ts`  get/list/create/update/patch/delete/evict with the real server's
 *                  rules; in-process actors call `server.api` directly
 * - `watch.ts`     watch streams, replay from a resourceVersion, 410, bookmarks,
 *                  drop/stall/end hooks
 * - `server.ts`    Deno.serve, routing, auth, faults, request log, tables, test hooks
 * - `auth.ts`      bearer tokens → users (admin, ServiceAccounts)
 * - `rbac.ts`      request attributes, RBAC rule evaluation, the Forbidden Status
 * - `reviews.ts`   SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
 *                  SelfSubjectReview
 * - `discovery.ts`, `tables.ts`, `patch.ts`, `selectors.ts`, `status.ts`, `tls.ts`
 *
 * A simulated controller subscribes to `server.store.subscribe(...)` and writes
 * through `server.api` (for example `server.api.delete({ def: server.api.resolve("pods"),
 * namespace, name }, { gracePeriodSeconds: 0, preconditions: { uid } })` as a kubelet does).
 * New kinds are added with `server.api.register(def)`.
 *
 * RBAC (`auth.ts`, `rbac.ts`, `reviews.ts`): `ApiServer.start({ rbac: true })` or
 * `server.setRbac(true)` checks every request of a user outside `system:masters`
 * against the stored ClusterRoles, Roles and their bindings and answers 403
 * Forbidden like kube-apiserver. `server.kubeconfigFor("ha", "ha-controller")`
 * writes a kubeconfig of that ServiceAccount; `server.forbidden()` lists denials;
 * `kubectl auth can-i` and `kubectl auth whoami` work.
 *
 * @module
 */

export { ApiServer } from "./server.ts";
export type { ServiceAccountRef, UserInfo } from "./auth.ts";
export { adminUser, serviceAccountUser } from "./auth.ts";
export type { Decision, PolicyRule, RequestAttributes } from "./rbac.ts";
export { Authorizer, forbiddenError, requestAttributes, ruleAllows } from "./rbac.ts";
export type { ApiServerOptions, RequestRecord, Traffic } from "./server.ts";
export type { FaultSpec } from "./faults.ts";
export { Faults } from "./faults.ts";
export type { KubeObject, ObjectMeta } from "./objects.ts";
export { microTime, rfc3339 } from "./objects.ts";
export { Registry } from "./registry.ts";
export type {
  DeleteOptions,
  DeleteResult,
  ListPage,
  ListPageOptions,
  Selection,
  Target,
  WriteOptions,
} from "./registry.ts";
export { continueExpiredMessage, decodeContinue, encodeContinue } from "./registry.ts";
export type { HookContext, ResourceDef, SubresourceDef } from "./resources.ts";
export { ApiError } from "./status.ts";
export type { Status, StatusCause, StatusDetails } from "./status.ts";
export { Store } from "./store.ts";
export type { Change, ChangeType, ObjectRef } from "./store.ts";
