/**
 * How the simulated controllers reach the API server: in-process reads of
 * the store and writes through the registry with the real API rules
 * (validation, optimistic concurrency, graceful deletion, finalizers).
 *
 * A write the API refuses (409 Conflict, 404 Not Found, ...) is not an
 * error of the simulation: it is logged and the controller tries again on its
 * next pass, as a real controller requeues. Anything else thrown is a bug and
 * is kept in {@link Cluster.errors} so tests can assert there was none.
 *
 * @module
 */

import type { SimClock } from "../clock.ts";
import type { KubeObject } from "../apiserver/objects.ts";
import type { DeleteOptions, DeleteResult, Registry } from "../apiserver/registry.ts";
import { storageOf } from "../apiserver/resources.ts";
import { ApiError } from "../apiserver/status.ts";
import type { Store } from "../apiserver/store.ts";
import type { Ref } from "./kube_util.ts";

/** The parts of the simulated API server the controllers use (an `ApiServer` fits). */
export interface ClusterApi {
  /** The object store (reads, change subscription). */
  readonly store: Store;
  /** The REST rules (writes). */
  readonly api: Registry;
}

/** One line of the controllers' log. */
export interface LogEntry {
  /** Simulated time, ms since the epoch. */
  time: number;
  /** Component, e.g. `attachdetach-controller` or `kubelet/node-a`. */
  component: string;
  /** What happened. */
  message: string;
}

const logLimit = 5_000;

/** Reads and writes of the simulated controllers, plus their log. */
export class Cluster {
  /** The API server. */
  readonly server: ClusterApi;
  /** The simulated clock. */
  readonly clock: SimClock;
  /** Recent log lines, oldest first (bounded). */
  readonly log: LogEntry[] = [];
  /** Unexpected exceptions (bugs in a controller), oldest first. */
  readonly errors: unknown[] = [];
  #onLog: ((entry: LogEntry) => void) | undefined;

  /** Wraps a server; `onLog` sees every log line as it is made. */
  constructor(
    server: ClusterApi,
    clock: SimClock,
    options: { onLog?: (entry: LogEntry) => void } = {},
  ) {
    this.server = server;
    this.clock = clock;
    this.#onLog = options.onLog;
  }

  /** Simulated time, ms since the epoch. */
  now(): number {
    return this.clock.now();
  }

  /** Adds a log line. */
  note(component: string, message: string): void {
    const entry = { time: this.now(), component, message };
    this.log.push(entry);
    if (this.log.length > logLimit) this.log.splice(0, this.log.length - logLimit);
    this.#onLog?.(entry);
  }

  /** Records a failure: API refusals are logged, anything else is kept as a bug. */
  fail(component: string, what: string, error: unknown): void {
    if (error instanceof ApiError) {
      this.note(component, `${what} failed: ${error.status.code} ${error.status.message}`);
      return;
    }
    this.errors.push(error);
    const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
    this.note(component, `${what} threw: ${text}`);
  }

  /** Stored objects of a resource (`pods`, `volumeattachments`, ...), in one namespace when given. */
  list(resource: string, namespace?: string): KubeObject[] {
    const def = this.server.api.resolve(resource);
    return this.server.store.list(storageOf(def), def.namespaced ? namespace : undefined);
  }

  /**
   * The stored objects themselves, not copies (see `Store.peek`), for a
   * controller that only reads them and runs often (the attach-detach
   * controller's 100 ms loop). Never change them.
   */
  peekAll(resource: string, namespace?: string): readonly Readonly<KubeObject>[] {
    const def = this.server.api.resolve(resource);
    return this.server.store.peekAll(storageOf(def), def.namespaced ? namespace : undefined);
  }

  /** One stored object itself, not a copy (see {@linkcode peekAll}). Never change it. */
  peek(resource: string, ref: Ref): Readonly<KubeObject> | undefined {
    const def = this.server.api.resolve(resource);
    const namespace = def.namespaced ? ref.namespace : undefined;
    return this.server.store.peek(storageOf(def), { namespace, name: ref.name });
  }

  /** One stored object, or undefined. */
  get(resource: string, ref: Ref): KubeObject | undefined {
    const def = this.server.api.resolve(resource);
    const namespace = def.namespaced ? ref.namespace : undefined;
    return this.server.store.get(storageOf(def), { namespace, name: ref.name });
  }

  /** Creates an object as a client would; undefined when the API refused. */
  create(component: string, resource: string, obj: KubeObject): KubeObject | undefined {
    const def = this.server.api.resolve(resource);
    try {
      return this.server.api.create({ def, namespace: obj.metadata.namespace }, obj);
    } catch (e) {
      this.fail(component, `create ${resource} ${obj.metadata.name ?? ""}`, e);
      return undefined;
    }
  }

  /** Replaces an object (PUT, resourceVersion checked); `subresource: "status"` writes the status. */
  update(
    component: string,
    resource: string,
    obj: KubeObject,
    options: { subresource?: string } = {},
  ): KubeObject | undefined {
    const def = this.server.api.resolve(resource);
    const target = { def, namespace: obj.metadata.namespace, name: obj.metadata.name ?? "" };
    try {
      return this.server.api.update(target, obj, { subresource: options.subresource });
    } catch (e) {
      const sub = options.subresource !== undefined ? `/${options.subresource}` : "";
      this.fail(component, `update ${resource}${sub} ${obj.metadata.name ?? ""}`, e);
      return undefined;
    }
  }

  /** JSON merge patch (no resourceVersion unless the patch carries one). */
  mergePatch(
    component: string,
    resource: string,
    ref: Ref,
    patch: Record<string, unknown>,
    options: { subresource?: string } = {},
  ): KubeObject | undefined {
    const def = this.server.api.resolve(resource);
    const target = { def, namespace: ref.namespace, name: ref.name };
    try {
      return this.server.api.patch(
        target,
        // deno-lint-ignore no-explicit-any
        { contentType: "application/merge-patch+json", patch: patch as any },
        { subresource: options.subresource },
      );
    } catch (e) {
      const sub = options.subresource !== undefined ? `/${options.subresource}` : "";
      this.fail(component, `patch ${resource}${sub} ${ref.name}`, e);
      return undefined;
    }
  }

  /** DELETE with options; undefined when the API refused (404 included). */
  delete(
    component: string,
    resource: string,
    ref: Ref,
    options: DeleteOptions = {},
  ): DeleteResult | undefined {
    const def = this.server.api.resolve(resource);
    try {
      return this.server.api.delete({ def, namespace: ref.namespace, name: ref.name }, options);
    } catch (e) {
      this.fail(component, `delete ${resource} ${ref.name}`, e);
      return undefined;
    }
  }
}
