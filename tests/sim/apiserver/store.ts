/**
 * The object store: buckets of objects, one global resourceVersion counter,
 * and a bounded history of changes that watches replay from.
 *
 * Every write gets the next resourceVersion. The history keeps the last
 * `historyLimit` changes; a watch that asks for a resourceVersion older than
 * the oldest retained change is too old (410 Expired). `compact()` forgets
 * the whole history at once.
 *
 * @module
 */

import type { KubeObject } from "./objects.ts";
import { objectKey } from "./objects.ts";

/** Type of a change, as sent in watch events. */
export type ChangeType = "ADDED" | "MODIFIED" | "DELETED";

/** One recorded change. */
export interface Change {
  /** resourceVersion of this change. */
  rv: number;
  /** What happened. */
  type: ChangeType;
  /** Storage bucket. */
  storage: string;
  /** The object after the change; for DELETED its last state with the deletion RV. */
  object: KubeObject;
  /** The object before the change (MODIFIED and DELETED). */
  previous?: KubeObject;
}

/** Where an object lives in its bucket. */
export interface ObjectRef {
  /** Namespace; undefined for cluster-scoped kinds. */
  namespace?: string;
  /** Name. */
  name: string;
}

/** Receives every change as it happens. */
export type ChangeListener = (change: Change) => void;

/** Options of {@link Store}. */
export interface StoreOptions {
  /** Changes kept for watches (default 10 000). */
  historyLimit?: number;
  /** First resourceVersion handed out minus one (default 1000). */
  initialResourceVersion?: number;
}

/** In-memory object store with a global resourceVersion and a change history. */
export class Store {
  #rv: number;
  #buckets = new Map<string, Map<string, KubeObject>>();
  #history: Change[] = [];
  #historyLimit: number;
  /** Changes with an RV up to this one are forgotten. */
  #compactedRv: number;
  #listeners = new Set<ChangeListener>();

  /** Creates an empty store. */
  constructor(options: StoreOptions = {}) {
    this.#rv = options.initialResourceVersion ?? 1000;
    this.#compactedRv = this.#rv;
    this.#historyLimit = options.historyLimit ?? 10_000;
  }

  /** Current (latest) resourceVersion. */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** Oldest resourceVersion a watch may still start from. */
  get compactedResourceVersion(): number {
    return this.#compactedRv;
  }

  #bucket(storage: string): Map<string, KubeObject> {
    let b = this.#buckets.get(storage);
    if (b === undefined) {
      b = new Map();
      this.#buckets.set(storage, b);
    }
    return b;
  }

  /**
   * The stored object itself, not a copy: for read-only checks that run
   * after every simulated step (copying every object there dominates a
   * campaign's run time). The store replaces objects on every write and
   * never changes one in place, so the object stays as it was; the caller
   * must not change it either.
   */
  peek(storage: string, ref: ObjectRef): Readonly<KubeObject> | undefined {
    return this.#buckets.get(storage)?.get(objectKey(ref.namespace, ref.name));
  }

  /** The stored objects of a bucket (see {@linkcode peek}), in {@linkcode list}'s order. */
  peekAll(storage: string, namespace?: string): Readonly<KubeObject>[] {
    const b = this.#buckets.get(storage);
    if (b === undefined) return [];
    const out: KubeObject[] = [];
    for (const k of [...b.keys()].sort()) {
      const obj = b.get(k)!;
      if (namespace !== undefined && (obj.metadata.namespace ?? "") !== namespace) continue;
      out.push(obj);
    }
    return out;
  }

  /** A copy of one object, or undefined. */
  get(storage: string, ref: ObjectRef): KubeObject | undefined {
    const obj = this.#buckets.get(storage)?.get(objectKey(ref.namespace, ref.name));
    return obj === undefined ? undefined : structuredClone(obj);
  }

  /** Copies of all objects of a bucket (in one namespace when given), sorted by namespace and name. */
  list(storage: string, namespace?: string): KubeObject[] {
    const b = this.#buckets.get(storage);
    if (b === undefined) return [];
    const out: KubeObject[] = [];
    const keys = [...b.keys()].sort();
    for (const k of keys) {
      const obj = b.get(k)!;
      if (namespace !== undefined && (obj.metadata.namespace ?? "") !== namespace) continue;
      out.push(structuredClone(obj));
    }
    return out;
  }

  /** Stores a new object (must not exist); sets its resourceVersion; returns a copy. */
  add(storage: string, obj: KubeObject): KubeObject {
    const rv = this.#next();
    const stored = structuredClone(obj);
    stored.metadata.resourceVersion = String(rv);
    this.#bucket(storage).set(objectKey(stored.metadata.namespace, stored.metadata.name!), stored);
    this.#record({ rv, type: "ADDED", storage, object: stored });
    return structuredClone(stored);
  }

  /** Replaces an existing object; sets its resourceVersion; returns a copy. */
  replace(storage: string, obj: KubeObject): KubeObject {
    const key = objectKey(obj.metadata.namespace, obj.metadata.name!);
    const bucket = this.#bucket(storage);
    const previous = bucket.get(key);
    const rv = this.#next();
    const stored = structuredClone(obj);
    stored.metadata.resourceVersion = String(rv);
    bucket.set(key, stored);
    this.#record({ rv, type: "MODIFIED", storage, object: stored, previous });
    return structuredClone(stored);
  }

  /**
   * Removes an object; returns its last state carrying the deletion
   * resourceVersion. `options.finalState` replaces that last state (an update that
   * emptied the finalizers of a deleting object is seen as DELETED only).
   */
  remove(
    storage: string,
    ref: ObjectRef,
    options: { finalState?: KubeObject } = {},
  ): KubeObject | undefined {
    const finalState = options.finalState;
    const key = objectKey(ref.namespace, ref.name);
    const bucket = this.#bucket(storage);
    const previous = bucket.get(key);
    if (previous === undefined) return undefined;
    bucket.delete(key);
    const rv = this.#next();
    const last = structuredClone(finalState ?? previous);
    last.metadata.resourceVersion = String(rv);
    this.#record({ rv, type: "DELETED", storage, object: last, previous });
    return structuredClone(last);
  }

  /**
   * Changes after `rv` (exclusive), or `undefined` when some of them were
   * already forgotten (the caller answers 410 Expired).
   */
  since(rv: number): Change[] | undefined {
    if (rv < this.#compactedRv) return undefined;
    // history is sorted by rv; find the first entry past rv
    let lo = 0;
    let hi = this.#history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#history[mid].rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    return this.#history.slice(lo);
  }

  /** Forgets all history: watches from any resourceVersion before now get 410 Expired. */
  compact(): void {
    this.#history = [];
    this.#compactedRv = this.#rv;
  }

  /** Registers a listener for every future change; returns a function that unregisters it. */
  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #next(): number {
    this.#rv += 1;
    return this.#rv;
  }

  #record(change: Change): void {
    this.#history.push(change);
    if (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.splice(0, this.#history.length - this.#historyLimit);
      this.#compactedRv = dropped[dropped.length - 1].rv;
    }
    for (const l of [...this.#listeners]) l(change);
  }
}
