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
  /** Sorted keys per bucket, rebuilt after an add or remove (replaces keep the keys). */
  #sortedKeys = new Map<string, string[]>();
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
    for (const k of this.#keys(storage)) {
      const obj = b.get(k)!;
      if (namespace !== undefined && (obj.metadata.namespace ?? "") !== namespace) continue;
      out.push(obj);
    }
    return out;
  }

  /** The keys of a bucket in list order (cached until the next add or remove). */
  #keys(storage: string): string[] {
    let keys = this.#sortedKeys.get(storage);
    if (keys === undefined) {
      keys = [...(this.#buckets.get(storage)?.keys() ?? [])].sort();
      this.#sortedKeys.set(storage, keys);
    }
    return keys;
  }

  /**
   * The stored objects of a bucket (see {@linkcode peek}) whose key sorts
   * after `after` (exclusive; "" for all), in list order, as they are now.
   * `namespace` restricts to one namespace.
   */
  *entries(
    storage: string,
    options: { after?: string; namespace?: string } = {},
  ): Generator<[string, Readonly<KubeObject>]> {
    const b = this.#buckets.get(storage);
    if (b === undefined) return;
    const keys = this.#keys(storage);
    const prefix = options.namespace !== undefined ? `${options.namespace}/` : "";
    let from = 0;
    if (prefix !== "") from = firstIndex(keys, (k) => k >= prefix);
    const after = options.after;
    if (after !== undefined && after !== "") {
      from = Math.max(from, firstIndex(keys, (k) => k > after));
    }
    for (let i = from; i < keys.length; i++) {
      const k = keys[i];
      if (prefix !== "" && !k.startsWith(prefix)) break;
      const obj = b.get(k);
      if (obj !== undefined) yield [k, obj];
    }
  }

  /**
   * The objects of a bucket as they were at resourceVersion `rv` (see
   * {@linkcode entries}, same options), rebuilt from the current state and
   * the retained history; `undefined` when that history is gone (the caller
   * answers 410 Expired). The objects are the stored ones (see
   * {@linkcode peek}); the iteration is lazy.
   */
  entriesAt(
    storage: string,
    rv: number,
    options: { after?: string; namespace?: string } = {},
  ): Iterable<[string, Readonly<KubeObject>]> | undefined {
    if (rv > this.#rv) return undefined;
    const changes = this.since(rv);
    if (changes === undefined) return undefined;
    // The state at rv of every key changed since: the state before its first later change.
    const then = new Map<string, KubeObject | undefined>();
    for (const c of changes) {
      if (c.storage !== storage) continue;
      const key = objectKey(c.object.metadata.namespace, c.object.metadata.name!);
      if (then.has(key)) continue;
      then.set(key, c.type === "ADDED" ? undefined : c.previous);
    }
    if (then.size === 0) return this.entries(storage, options);
    const prefix = options.namespace !== undefined ? `${options.namespace}/` : "";
    const old: [string, KubeObject][] = [];
    for (const [k, obj] of then) {
      if (obj === undefined) continue;
      if (options.after !== undefined && k <= options.after) continue;
      if (prefix !== "" && !k.startsWith(prefix)) continue;
      old.push([k, obj]);
    }
    old.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const current = this.entries(storage, options);
    return (function* merged(): Generator<[string, Readonly<KubeObject>]> {
      let i = 0;
      for (const entry of current) {
        if (then.has(entry[0])) continue;
        while (i < old.length && old[i][0] < entry[0]) yield old[i++];
        yield entry;
      }
      while (i < old.length) yield old[i++];
    })();
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
    for (const k of this.#keys(storage)) {
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
    this.#sortedKeys.delete(storage);
    this.#record({ rv, type: "ADDED", storage, object: stored });
    return structuredClone(stored);
  }

  /**
   * Stores many new objects at once (none may exist), each with its own
   * resourceVersion, as if added one by one: the same history entries and
   * listener calls, but the objects are taken as they are (not copied; the
   * caller hands them over) and the history is trimmed once at the end. For
   * seeding large clusters; returns the last resourceVersion.
   */
  addMany(storage: string, objects: KubeObject[]): number {
    const bucket = this.#bucket(storage);
    const listeners = [...this.#listeners];
    for (const stored of objects) {
      const key = objectKey(stored.metadata.namespace, stored.metadata.name!);
      if (bucket.has(key)) throw new Error(`Expected ${storage} ${key} not to exist`);
      const rv = this.#next();
      stored.metadata.resourceVersion = String(rv);
      bucket.set(key, stored);
      const change: Change = { rv, type: "ADDED", storage, object: stored };
      this.#history.push(change);
      for (const l of listeners) l(change);
    }
    this.#sortedKeys.delete(storage);
    this.#trim();
    return this.#rv;
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
    if (previous === undefined) this.#sortedKeys.delete(storage);
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
    this.#sortedKeys.delete(storage);
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
    this.#trim();
    for (const l of [...this.#listeners]) l(change);
  }

  #trim(): void {
    if (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.splice(0, this.#history.length - this.#historyLimit);
      this.#compactedRv = dropped[dropped.length - 1].rv;
    }
  }
}

/** The first index of sorted `keys` where `past` holds (it holds for every later one too). */
function firstIndex(keys: string[], past: (key: string) => boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (past(keys[mid])) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
