/**
 * A local Kubernetes API server for tests: the seed of the cluster simulator.
 *
 * ```ts
 * import { ApiServer } from "./tests/sim/apiserver/mod.ts";
 * const server = await ApiServer.start({ tls: true });
 * server.create({ apiVersion: "v1", kind: "Node", metadata: { name: "node-a" } });
 * // client-node: kc.loadFromFile(server.kubeconfigPath)
 * await server.close();
 * ```
 *
 * @module
 */

export { ApiServer } from "./server.ts";
export type { ApiServerOptions, RequestRecord } from "./server.ts";
export type { FaultSpec } from "./faults.ts";
export { Faults } from "./faults.ts";
export type { KubeObject, ObjectMeta } from "./objects.ts";
export { microTime, rfc3339 } from "./objects.ts";
export { Registry } from "./registry.ts";
export type { DeleteOptions, DeleteResult, Selection, WriteOptions } from "./registry.ts";
export type { HookContext, ResourceDef, SubresourceDef } from "./resources.ts";
export { ApiError } from "./status.ts";
export type { Status, StatusCause, StatusDetails } from "./status.ts";
export { Store } from "./store.ts";
export type { Change, ChangeType } from "./store.ts";
