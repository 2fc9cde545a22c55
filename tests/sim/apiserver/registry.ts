/**
 * The behaviour of kube-apiserver's generic registry for every served kind:
 * get, list, create, update, patch, delete (graceful, finalizers,
 * preconditions), deletecollection and pod eviction with disruption budgets.
 *
 * The HTTP layer and in-process actors (tests now, simulated controllers and
 * kubelets later) both call this class; it throws {@link ApiError} for every
 * failure, with the Status a real server would answer.
 *
 * @module
 */

import type { Json, JsonObject } from "./patch.ts";
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch, patchTypes } from "./patch.ts";
import type { KubeObject } from "./objects.ts";
import { isRecord, pathList, pathRecord, pathString, pathValue, rfc3339 } from "./objects.ts";
import type { HookContext, ResourceDef } from "./resources.ts";
import {
  allVerbs,
  builtinResources,
  groupVersion,
  hasStatus,
  mergeKeysOf,
  storageOf,
} from "./resources.ts";
import type { FieldSelector, LabelSelector } from "./selectors.ts";
import {
  matchesFields,
  matchesLabels,
  matchesLabelSelectorObject,
  parseFieldSelector,
  parseLabelSelector,
} from "./selectors.ts";
import type { Status } from "./status.ts";
import {
  alreadyExists,
  badRequest,
  conflict,
  expired,
  failure,
  forbiddenField,
  internalError,
  invalid,
  methodNotAllowed,
  notFound,
  optimisticLockMessage,
  success,
  tooManyRequests,
  unsupportedMediaType,
} from "./status.ts";
import type { Store } from "./store.ts";

/** `DeleteOptions` as sent in a DELETE body, query, or inside an Eviction. */
export interface DeleteOptions {
  /** Grace period; pods default to `spec.terminationGracePeriodSeconds`. */
  gracePeriodSeconds?: number;
  /** Delete only if the stored object still has this UID / resourceVersion. */
  preconditions?: { uid?: string; resourceVersion?: string };
  /** `Orphan`, `Background` or `Foreground` (accepted, not acted upon). */
  propagationPolicy?: string;
  /** Deprecated; `false` makes a delayed deletion answer 202. */
  orphanDependents?: boolean;
  /** `["All"]` for a dry run. */
  dryRun?: string[];
}

/** One object of a served kind. */
export interface Target {
  /** The kind. */
  def: ResourceDef;
  /** Namespace (ignored for cluster-scoped kinds). */
  namespace?: string;
  /** Name. */
  name: string;
}

/** Selectors of a list or watch, already parsed and checked against the kind. */
export interface Selection {
  /** The kind selected from. */
  def: ResourceDef;
  /** Namespace to restrict to; undefined for cluster-scoped kinds or all namespaces. */
  namespace?: string;
  /** Parsed label selector. */
  labels: LabelSelector;
  /** Parsed field selector, with aliases resolved. */
  fields: FieldSelector;
}

/** Paging parameters of a list. */
export interface ListPageOptions {
  /** `limit`: at most this many items (0 or absent: all). */
  limit?: number;
  /** `continue` token of the previous page. */
  continue?: string;
  /** `resourceVersion` query value ("" or absent: most recent). */
  resourceVersion?: string;
}

/** One page of a list. */
export interface ListPage {
  /** Copies of the matching stored objects. */
  items: KubeObject[];
  /** resourceVersion of the snapshot the page shows. */
  rv: number;
  /** Token of the next page, when more objects match. */
  continue?: string;
}

/** kube-apiserver's message for a continue token whose snapshot was compacted away. */
export const continueExpiredMessage =
  "The provided continue parameter is too old to display a consistent list result. " +
  "You can start a new list without the continue parameter, or use the continue token in this " +
  "response to retrieve the remainder of the results. Continuing with the provided token " +
  "results in an inconsistent list - objects that were created, modified, or deleted between " +
  "the time the first chunk was returned and now may show up in the list.";

/**
 * A continue token as kube-apiserver encodes it: base64 of
 * `{"v":"meta.k8s.io/v1","rv":<list RV or -1>,"start":"<last key>\u0000"}`,
 * the key relative to the resource (`<ns>/<name>`, or `<name>` for
 * cluster-scoped kinds).
 */
export function encodeContinue(key: string, rv: number, namespaced: boolean): string {
  const start = (namespaced ? key : key.replace(/^\//, "")) + "\u0000";
  const json = JSON.stringify({ v: "meta.k8s.io/v1", rv, start });
  return btoa(String.fromCharCode(...new TextEncoder().encode(json)));
}

/** Decodes a continue token; 400 when it is not one. */
export function decodeContinue(token: string, namespaced: boolean): { key: string; rv: number } {
  let parsed: unknown;
  try {
    const bytes = Uint8Array.from(
      atob(token.replace(/-/g, "+").replace(/_/g, "/")),
      (c) => c.charCodeAt(0),
    );
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw badRequest("continue key is not valid: illegal base64 data or invalid JSON");
  }
  if (!isRecord(parsed) || parsed.v !== "meta.k8s.io/v1") {
    throw badRequest("continue key is not valid: server does not recognize this encoded version");
  }
  const { rv, start } = parsed;
  if (typeof rv !== "number" || !Number.isInteger(rv) || rv === 0 || rv < -1) {
    throw badRequest(
      "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
    );
  }
  if (typeof start !== "string" || start === "" || start.includes("..")) {
    throw badRequest("continue key is not valid: encoded start key is invalid");
  }
  const bare = start.endsWith("\u0000") ? start.slice(0, -1) : start;
  return { key: namespaced ? bare : `/${bare}`, rv };
}

/** Result of a delete. */
export interface DeleteResult {
  /** HTTP code: 200, or 202 for a delayed deletion with `orphanDependents: false`. */
  code: number;
  /** Body: the object (pods, or objects kept by grace or finalizers) or a Success Status. */
  body: KubeObject | Status;
  /** Whether the object is gone from the store. */
  removed: boolean;
}

/** Options of write calls. */
export interface WriteOptions {
  /** Direct store access from tests: no validation, status kept as given, namespace auto-created. */
  privileged?: boolean;
  /** `pods/status` and the like. */
  subresource?: string;
  /** Compute the result but store nothing. */
  dryRun?: boolean;
}

const disruptionTargetReason = "EvictionByEvictionAPI";

/** The registry of all served kinds, on top of one {@link Store}. */
export class Registry {
  /** The store the objects live in. */
  readonly store: Store;
  #defs: ResourceDef[] = [];
  #now: () => Date;
  #random: (() => number) | undefined;
  #fieldLabels = new Map<ResourceDef, Set<string>>();

  /** Creates a registry serving the built-in kinds. */
  /**
   * `random` (numbers in [0, 1)) makes UIDs and generated names reproducible
   * (the deterministic simulation); without it they come from `crypto`.
   */
  constructor(store: Store, options: { now?: () => Date; random?: () => number } = {}) {
    this.store = store;
    this.#now = options.now ?? (() => new Date());
    this.#random = options.random;
    for (const def of builtinResources()) this.register(def);
  }

  /** Current time of the simulated cluster. */
  now(): Date {
    return this.#now();
  }

  /** Adds (or replaces) a served kind. */
  register(def: ResourceDef): void {
    this.#defs = this.#defs.filter((d) =>
      !(d.group === def.group && d.version === def.version && d.resource === def.resource)
    );
    this.#defs.push(def);
    if (def.fields !== undefined) {
      this.#fieldLabels.set(def, new Set(Object.keys(def.fields({ metadata: {} }))));
    }
  }

  /** All served kinds, in registration order. */
  get definitions(): readonly ResourceDef[] {
    return this.#defs;
  }

  /** The kind served at `/apis/<group>/<version>/<resource>`, if any. */
  lookup(group: string, version: string, resource: string): ResourceDef | undefined {
    return this.#defs.find((d) =>
      d.group === group && d.version === version && d.resource === resource
    );
  }

  /**
   * Resolves a test-facing resource name: a plural (`pods`, core first),
   * `plural.group` (`events.events.k8s.io`) or `group/plural`.
   */
  resolve(name: string): ResourceDef {
    const slash = name.indexOf("/");
    let found: ResourceDef | undefined;
    if (slash >= 0) {
      const group = name.slice(0, slash);
      const resource = name.slice(slash + 1);
      found = this.#defs.find((d) => d.group === group && d.resource === resource);
    } else {
      found = this.#defs.find((d) => d.resource === name && d.group === "") ??
        this.#defs.find((d) => d.resource === name) ??
        this.#defs.find((d) => `${d.resource}.${d.group}` === name) ??
        this.#defs.find((d) => d.kind.toLowerCase() === name.toLowerCase());
    }
    if (found === undefined) {
      throw new Error(`Expected a served resource such as "pods", got "${name}"`);
    }
    return found;
  }

  /** The object as served by `def`: converted to the view and stamped with kind/apiVersion. */
  present(def: ResourceDef, stored: KubeObject, options: { owned?: boolean } = {}): KubeObject {
    // `owned`: `stored` is already a copy nobody else holds (the store's get,
    // list, add and replace return copies), so it needs no second one.
    const view = def.toView !== undefined
      ? def.toView(stored)
      : options.owned
      ? stored
      : structuredClone(stored);
    const { apiVersion: _a, kind: _k, ...rest } = view;
    return { kind: def.kind, apiVersion: groupVersion(def), ...rest } as KubeObject;
  }

  #context(privileged: boolean): HookContext {
    return { now: this.#now(), privileged };
  }

  // ------------------------------------------------------------- reading

  /** One object as served; 404 when missing. */
  get(target: Target): KubeObject {
    return this.present(target.def, this.#getStored(target), { owned: true });
  }

  #getStored(target: Target): KubeObject {
    const { def, name } = target;
    const obj = this.store.get(storageOf(def), { namespace: this.#ns(target), name });
    if (obj === undefined) throw notFound(def, name);
    return obj;
  }

  #ns(target: { def: ResourceDef; namespace?: string }): string | undefined {
    return target.def.namespaced ? target.namespace : undefined;
  }

  /** Parses and checks `labelSelector` / `fieldSelector` for `def`; 400 when unsupported. */
  selection(
    def: ResourceDef,
    options: {
      namespace?: string;
      labelSelector?: string | null;
      fieldSelector?: string | null;
      name?: string;
    },
  ): Selection {
    const labels = parseLabelSelector(options.labelSelector);
    const fields = parseFieldSelector(options.fieldSelector).map((r) => ({
      ...r,
      field: def.fieldAliases?.[r.field] ?? r.field,
    }));
    const known = this.#fieldLabels.get(def);
    for (const r of fields) {
      if (known !== undefined) {
        if (!known.has(r.field)) throw badRequest(`field label not supported: ${r.field}`);
      } else if (r.field !== "metadata.name" && r.field !== "metadata.namespace") {
        throw badRequest(
          `"${r.field}" is not a known field selector: only "metadata.name", "metadata.namespace"`,
        );
      }
    }
    if (options.name !== undefined) {
      for (const r of fields) {
        if (r.field === "metadata.name" && (r.op !== "=" || r.value !== options.name)) {
          throw badRequest(
            `metadata.name field selector "${r.value}" does not match the name "${options.name}" in the path`,
          );
        }
      }
      fields.push({ field: "metadata.name", op: "=", value: options.name });
    }
    return { def, namespace: def.namespaced ? options.namespace : undefined, labels, fields };
  }

  /** Whether a stored object of the selection's kind is selected. */
  matches(selection: Selection, stored: KubeObject): boolean {
    const def = selection.def;
    if (
      selection.namespace !== undefined &&
      (stored.metadata.namespace ?? "") !== selection.namespace
    ) return false;
    if (!matchesLabels(selection.labels, stored.metadata.labels)) return false;
    if (selection.fields.length === 0) return true;
    const values = def.fields !== undefined ? def.fields(stored) : {
      "metadata.name": stored.metadata.name ?? "",
      "metadata.namespace": stored.metadata.namespace ?? "",
    };
    return matchesFields(selection.fields, values);
  }

  /** Stored objects that match (copies), and the resourceVersion of this snapshot. */
  listStored(selection: Selection): { items: KubeObject[]; rv: number } {
    return this.listPage(selection);
  }

  /**
   * One page of a list, as kube-apiserver's storage answers it: `limit`
   * items at most (none or 0: all), starting after the `continue` token's
   * key, with a token for the rest when more objects match.
   *
   * A continued page shows the objects as they were at the first page's
   * resourceVersion (and answers with that resourceVersion), rebuilt from
   * the watch history; once that history is gone the token is too old:
   * 410 Expired with the real server's message and, in the Status'
   * metadata, a token that continues from the current state (an
   * inconsistent list, resourceVersion -1 in the token). `resourceVersion=0`
   * is answered from the "watch cache" and ignores `limit`, as the real
   * cacher does; a `resourceVersion` other than 0 together with `continue`
   * is a 400.
   */
  listPage(selection: Selection, options: ListPageOptions = {}): ListPage {
    const storage = storageOf(selection.def);
    const store = this.store;
    const rvParam = options.resourceVersion ?? "";
    let limit = options.limit ?? 0;
    const token = options.continue ?? "";
    let after: string | undefined;
    let rv = store.resourceVersion;
    let entries: Iterable<[string, Readonly<KubeObject>]>;
    if (token !== "") {
      if (rvParam !== "" && rvParam !== "0") {
        throw badRequest("specifying resource version is not allowed when using continue");
      }
      const decoded = decodeContinue(token, selection.def.namespaced);
      after = decoded.key;
      if (decoded.rv < 0) {
        entries = store.entries(storage, { after, namespace: selection.namespace });
      } else {
        const then = store.entriesAt(storage, decoded.rv, {
          after,
          namespace: selection.namespace,
        });
        if (then === undefined) {
          const err = expired(continueExpiredMessage);
          (err.status.metadata as Record<string, string>).continue = encodeContinue(
            decoded.key,
            -1,
            selection.def.namespaced,
          );
          throw err;
        }
        entries = then;
        rv = decoded.rv;
      }
    } else {
      if (rvParam === "0") limit = 0;
      entries = store.entries(storage, { namespace: selection.namespace });
    }
    const items: KubeObject[] = [];
    let lastKey: string | undefined;
    let more = false;
    for (const [key, obj] of entries) {
      if (!this.matches(selection, obj)) continue;
      if (limit > 0 && items.length >= limit) {
        more = true;
        break;
      }
      items.push(structuredClone(obj) as KubeObject);
      lastKey = key;
    }
    const page: ListPage = { items, rv };
    if (more && lastKey !== undefined) {
      page.continue = encodeContinue(lastKey, rv, selection.def.namespaced);
    }
    return page;
  }

  /** A `<Kind>List` as served (items without kind/apiVersion, like the real server). */
  list(selection: Selection, options: ListPageOptions = {}): KubeObject {
    const def = selection.def;
    const page = this.listPage(selection, options);
    const metadata: Record<string, string> = { resourceVersion: String(page.rv) };
    if (page.continue !== undefined) metadata.continue = page.continue;
    return {
      kind: `${def.kind}List`,
      apiVersion: groupVersion(def),
      metadata,
      items: page.items.map((o) => {
        const { kind: _k, apiVersion: _a, ...rest } = this.present(def, o, { owned: true });
        return rest;
      }),
    };
  }

  /**
   * Stores many new objects of one kind at once, for seeding large
   * clusters (benchmarks): no admission, validation or defaults (pass
   * complete objects, as `server.create` with `privileged` would keep them
   * anyway), only a uid and creationTimestamp where missing. Namespaces
   * must exist. Every object gets its own resourceVersion and history
   * entry, as with single creates. Returns the last resourceVersion.
   */
  createMany(def: ResourceDef, objects: KubeObject[]): number {
    const now = rfc3339(this.#now());
    const stored: KubeObject[] = [];
    for (const obj of objects) {
      const { kind: _k, apiVersion: _a, ...rest } = obj;
      const o = rest as KubeObject;
      const meta = o.metadata;
      if (meta.name === undefined || meta.name === "") {
        throw new Error(`Expected every ${def.kind} to have a name`);
      }
      if (def.namespaced) meta.namespace ??= "default";
      else delete meta.namespace;
      meta.uid ??= this.#random === undefined ? crypto.randomUUID() : seededUuid(this.#random);
      meta.creationTimestamp ??= now;
      meta.generation ??= 1;
      stored.push(o);
    }
    return this.store.addMany(storageOf(def), stored);
  }

  // ------------------------------------------------------------- create

  /** Creates an object in `place`; answers the stored object (201 on the wire). */
  create(
    place: { def: ResourceDef; namespace?: string },
    body: unknown,
    options: WriteOptions = {},
  ): KubeObject {
    const { def, namespace } = place;
    const privileged = options.privileged ?? false;
    const view = this.#decode(def, body);
    const meta = view.metadata;
    if (def.namespaced) {
      const ns = namespace ?? meta.namespace ?? "default";
      if (meta.namespace !== undefined && meta.namespace !== "" && meta.namespace !== ns) {
        throw badRequest(
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      meta.namespace = ns;
      this.#requireNamespace(ns, privileged);
    } else {
      delete meta.namespace;
    }
    if ((meta.name === undefined || meta.name === "") && meta.generateName) {
      meta.name = `${meta.generateName}${randomSuffix(this.#random)}`;
    }
    if (meta.name === undefined || meta.name === "") {
      throw invalid({ kind: def.kind, group: def.group, name: "" }, [{
        reason: "FieldValueRequired",
        field: "metadata.name",
        message: "metadata.name: Required value: name or generateName is required",
      }]);
    }
    if (!privileged && def.validate !== undefined) {
      const errors = def.validate(view, undefined);
      if (errors.length > 0) {
        throw invalid({ kind: def.kind, group: def.group, name: meta.name }, errors);
      }
    }
    const stored = def.fromView !== undefined ? def.fromView(view) : view;
    const sm = stored.metadata;
    const now = this.#now();
    sm.uid = this.#random === undefined ? crypto.randomUUID() : seededUuid(this.#random);
    sm.creationTimestamp = rfc3339(now);
    sm.generation = 1;
    delete sm.resourceVersion;
    delete sm.deletionTimestamp;
    delete sm.deletionGracePeriodSeconds;
    def.prepareCreate?.(stored, this.#context(privileged));
    dropEmptyMaps(sm);
    const storage = storageOf(def);
    if (this.store.get(storage, { namespace: sm.namespace, name: sm.name! }) !== undefined) {
      throw alreadyExists(def, sm.name!);
    }
    if (options.dryRun) return this.present(def, stored);
    return this.present(def, this.store.add(storage, stored), { owned: true });
  }

  #requireNamespace(ns: string, privileged: boolean): void {
    if (this.store.get("namespaces", { name: ns }) !== undefined) return;
    if (!privileged) throw notFound({ group: "", resource: "namespaces" }, ns);
    this.create({ def: this.resolve("namespaces") }, { metadata: { name: ns } }, {
      privileged: true,
    });
  }

  #decode(def: ResourceDef, body: unknown): KubeObject {
    if (!isRecord(body)) {
      throw badRequest(`the body of the request is not a ${def.kind} object`);
    }
    if (typeof body.kind === "string" && body.kind !== "" && body.kind !== def.kind) {
      throw badRequest(
        `${body.kind} in version "${def.version}" cannot be handled as a ${def.kind}: ` +
          `the object provided is unrecognized (must be of type ${def.kind})`,
      );
    }
    const obj = structuredClone(body) as KubeObject;
    if (!isRecord(obj.metadata)) obj.metadata = {};
    def.decodeCheck?.(obj);
    return obj;
  }

  // ------------------------------------------------------------- update

  /** Replaces an object (PUT); 409 on a stale resourceVersion, 404 when missing. */
  update(target: Target, body: unknown, options: WriteOptions = {}): KubeObject {
    const { def, namespace, name } = target;
    const view = this.#decode(def, body);
    const meta = view.metadata;
    if (meta.name !== undefined && meta.name !== name) {
      throw badRequest(
        `the name of the object (${meta.name}) does not match the name on the URL (${name})`,
      );
    }
    meta.name = name;
    if (def.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== "" && meta.namespace !== namespace) {
        throw badRequest(
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      }
      meta.namespace = namespace;
    } else {
      delete meta.namespace;
    }
    const old = this.#getStored(target);
    if (
      meta.resourceVersion !== undefined && meta.resourceVersion !== "" &&
      meta.resourceVersion !== old.metadata.resourceVersion
    ) {
      throw conflict(def, { name, why: optimisticLockMessage });
    }
    return this.#write(def, old, view, options);
  }

  /** Common tail of update and patch: strategy rules, validation, storing. */
  #write(def: ResourceDef, old: KubeObject, view: KubeObject, options: WriteOptions): KubeObject {
    const privileged = options.privileged ?? false;
    if (!privileged && def.validate !== undefined && options.subresource === undefined) {
      const errors = def.validate(view, def.toView !== undefined ? def.toView(old) : old);
      if (errors.length > 0) {
        throw invalid({ kind: def.kind, group: def.group, name: old.metadata.name! }, errors);
      }
    }
    let next = def.fromView !== undefined ? def.fromView(view) : structuredClone(view);
    const om = old.metadata;
    if (options.subresource === "status") {
      // status writes change the status only
      next = { ...structuredClone(old), status: structuredClone(next.status) };
    } else if (!privileged && hasStatus(def)) {
      next.status = structuredClone(old.status);
      if (old.status === undefined) delete next.status;
    }
    const nm = next.metadata;
    nm.uid = om.uid;
    nm.creationTimestamp = om.creationTimestamp;
    nm.namespace = om.namespace;
    nm.name = om.name;
    if (om.namespace === undefined) delete nm.namespace;
    if (!privileged || nm.deletionTimestamp === undefined) {
      setOrDelete(nm, "deletionTimestamp", om.deletionTimestamp);
      setOrDelete(nm, "deletionGracePeriodSeconds", om.deletionGracePeriodSeconds);
    }
    nm.generation = om.generation;
    if (
      def.trackGeneration && JSON.stringify(next.spec) !== JSON.stringify(old.spec)
    ) nm.generation = (om.generation ?? 0) + 1;
    if (om.deletionTimestamp !== undefined) {
      const before = new Set(om.finalizers ?? []);
      const added = (nm.finalizers ?? []).filter((f) => !before.has(f));
      if (added.length > 0 && !privileged) {
        throw invalid({ kind: def.kind, group: def.group, name: om.name! }, [
          forbiddenField(
            "metadata.finalizers",
            "no new finalizers can be added if the object is being deleted, found new finalizers " +
              JSON.stringify(added),
          ),
        ]);
      }
    }
    if (nm.finalizers !== undefined && nm.finalizers.length === 0) delete nm.finalizers;
    dropEmptyMaps(nm);
    delete nm.resourceVersion;
    if (options.dryRun) return this.present(def, next);
    const storage = storageOf(def);
    if (nm.deletionTimestamp !== undefined && (nm.finalizers ?? []).length === 0) {
      // the update that empties the finalizers of a deleting object removes it
      if (def.deleteGrace === undefined || (nm.deletionGracePeriodSeconds ?? 0) === 0) {
        const ref = { namespace: om.namespace, name: om.name! };
        const last = this.store.remove(storage, ref, { finalState: next })!;
        return this.present(def, last);
      }
    }
    return this.present(def, this.store.replace(storage, next), { owned: true });
  }

  // ------------------------------------------------------------- patch

  /** Applies a patch of the given media type (json, merge, strategic, apply). */
  patch(
    target: Target,
    request: { contentType: string; patch: Json },
    options: WriteOptions = {},
  ): KubeObject {
    const { def, name } = target;
    const type = request.contentType.split(";")[0].trim().toLowerCase();
    const accepted: string[] = [
      patchTypes.json,
      patchTypes.merge,
      patchTypes.strategic,
      patchTypes.apply,
    ];
    if (!accepted.includes(type)) throw unsupportedMediaType(type, accepted);
    const storage = storageOf(def);
    const existing = this.store.get(storage, { namespace: this.#ns(target), name });
    if (existing === undefined) {
      if (type === patchTypes.apply && isRecord(request.patch)) {
        const body = structuredClone(request.patch) as KubeObject;
        return this.create(target, body, options);
      }
      throw notFound(def, name);
    }
    const current = this.present(def, existing) as unknown as JsonObject;
    let patched: Json;
    if (type === patchTypes.json) {
      patched = applyJsonPatch(current, request.patch);
    } else if (type === patchTypes.strategic) {
      patched = applyStrategicMergePatch(current, request.patch, mergeKeysOf(def));
    } else {
      if (!isRecord(request.patch)) throw badRequest("merge patch must be a JSON object");
      patched = applyMergePatch(current, request.patch);
    }
    if (!isRecord(patched)) throw badRequest("the patched object is not an object");
    const result = patched as unknown as KubeObject;
    if (!isRecord(result.metadata)) result.metadata = {};
    const rv = result.metadata.resourceVersion;
    if (rv !== undefined && rv !== null && rv !== existing.metadata.resourceVersion) {
      throw conflict(def, { name, why: optimisticLockMessage });
    }
    if (result.metadata.name !== name) {
      throw badRequest(
        `the name of the object (${result.metadata.name}) does not match the name on the URL (${name})`,
      );
    }
    def.decodeCheck?.(result);
    return this.#write(def, existing, result, options);
  }

  // ------------------------------------------------------------- delete

  /** Deletes with kube-apiserver's rules for preconditions, grace periods and finalizers. */
  delete(target: Target, options: DeleteOptions = {}): DeleteResult {
    const { def, name } = target;
    const storage = storageOf(def);
    const ref = { namespace: this.#ns(target), name };
    const old = this.#getStored(target);
    const om = old.metadata;
    const kindRef = { group: def.group, resource: def.kind };
    const pre = options.preconditions ?? {};
    if (pre.uid !== undefined && pre.uid !== null && pre.uid !== om.uid) {
      throw conflict(kindRef, {
        name,
        why:
          `the UID in the precondition (${pre.uid}) does not match the UID in record (${om.uid}). ` +
          "The object might have been deleted and then recreated",
      });
    }
    if (
      pre.resourceVersion !== undefined && pre.resourceVersion !== null &&
      pre.resourceVersion !== om.resourceVersion
    ) {
      throw conflict(kindRef, {
        name,
        why:
          `the ResourceVersion in the precondition (${pre.resourceVersion}) does not match the ` +
          `ResourceVersion in record (${om.resourceVersion}). The object might have been modified`,
      });
    }
    const dryRun = (options.dryRun ?? []).length > 0;
    let requested = options.gracePeriodSeconds ?? undefined;
    if (requested !== undefined && requested < 0) requested = 1;
    const grace = def.deleteGrace?.(old, requested);
    const finalizers = om.finalizers ?? [];
    const delayedCode = options.orphanDependents === false ? 202 : 200;
    const keep = (obj: KubeObject): DeleteResult => ({
      code: delayedCode,
      body: this.present(def, obj),
      removed: false,
    });
    const gone = (last: KubeObject): DeleteResult => ({
      code: 200,
      body: def.returnDeletedObject ? this.present(def, last) : success({
        name,
        group: def.group,
        kind: def.resource,
        uid: om.uid,
      }),
      removed: true,
    });
    if (dryRun) return keep(old);

    if (om.deletionTimestamp !== undefined) {
      // already deleting: a delete may only shorten the grace period
      if (finalizers.length > 0) return keep(old);
      const storedGrace = om.deletionGracePeriodSeconds ?? 0;
      if (grace === undefined || storedGrace === 0) {
        return gone(this.store.remove(storage, ref)!);
      }
      if (grace >= storedGrace) return keep(old);
      const shortened = this.#markDeleting(old, grace);
      if (grace > 0) return keep(this.store.replace(storage, shortened));
      this.store.replace(storage, shortened);
      return gone(this.store.remove(storage, ref)!);
    }

    if (grace !== undefined) {
      const marked = this.#markDeleting(old, grace);
      if (grace > 0 || finalizers.length > 0) return keep(this.store.replace(storage, marked));
      this.store.replace(storage, marked);
      return gone(this.store.remove(storage, ref)!);
    }
    if (finalizers.length > 0) {
      return keep(this.store.replace(storage, this.#markDeleting(old, 0)));
    }
    if (def.resource === "namespaces" && def.group === "") this.#emptyNamespace(name);
    return gone(this.store.remove(storage, ref)!);
  }

  #markDeleting(old: KubeObject, grace: number): KubeObject {
    const now = this.#now();
    const next = structuredClone(old);
    next.metadata.deletionTimestamp = rfc3339(new Date(now.getTime() + grace * 1000));
    next.metadata.deletionGracePeriodSeconds = grace;
    if ((next.metadata.generation ?? 0) > 0) {
      next.metadata.generation = (next.metadata.generation ?? 0) + 1;
    }
    return next;
  }

  #emptyNamespace(ns: string): void {
    for (const def of this.#defs) {
      if (!def.namespaced || def.toView !== undefined) continue;
      for (const obj of this.store.list(storageOf(def), ns)) {
        this.store.remove(storageOf(def), { namespace: ns, name: obj.metadata.name! });
      }
    }
  }

  /** Deletes every selected object (DELETE on a collection); answers the list of results. */
  deleteCollection(selection: Selection, options: DeleteOptions): KubeObject {
    const def = selection.def;
    const { items } = this.listStored(selection);
    const out: unknown[] = [];
    for (const obj of items) {
      try {
        const r = this.delete(
          { def, namespace: obj.metadata.namespace, name: obj.metadata.name! },
          options,
        );
        const { kind: _k, apiVersion: _a, ...rest } = r.body as KubeObject;
        out.push(r.removed && !def.returnDeletedObject ? this.present(def, obj) : rest);
      } catch (e) {
        if (!(e instanceof Error && "status" in e)) throw e;
      }
    }
    return {
      kind: `${def.kind}List`,
      apiVersion: groupVersion(def),
      metadata: { resourceVersion: String(this.store.resourceVersion) },
      items: out,
    };
  }

  // ------------------------------------------------------------- eviction

  /**
   * `POST pods/<name>/eviction`: honours the pod's PodDisruptionBudget
   * (computed from its minAvailable/maxUnavailable and the matching pods),
   * adds the DisruptionTarget condition and deletes the pod gracefully.
   */
  evict(pod: { namespace: string; name: string }, body: unknown): Status {
    const pods = this.resolve("pods");
    const target = { def: pods, ...pod };
    const name = pod.name;
    if (!isRecord(body)) throw badRequest("the body of the request is not an Eviction object");
    const bodyName = pathString(body, "metadata.name");
    if (bodyName !== "" && bodyName !== name) {
      throw badRequest("name in URL does not match name in Eviction object");
    }
    const deleteOptions = (isRecord(body.deleteOptions) ? body.deleteOptions : {}) as DeleteOptions;
    const stored = this.#getStored(target);
    const phase = pathString(stored, "status.phase");
    const ignorePdb = phase === "Succeeded" || phase === "Failed" || phase === "Pending" ||
      stored.metadata.deletionTimestamp !== undefined;
    if (!ignorePdb) this.#checkBudget(stored);
    if (stored.metadata.deletionTimestamp === undefined) this.#markDisruptionTarget(stored);
    this.delete(target, deleteOptions);
    return success({}, 201);
  }

  #checkBudget(pod: KubeObject): void {
    const pdbDef = this.resolve("poddisruptionbudgets");
    const ns = pod.metadata.namespace!;
    const labels = pod.metadata.labels;
    const pdbs = this.store.list(storageOf(pdbDef), ns).filter((pdb) => {
      const selector = pathValue(pdb, "spec.selector");
      if (!isRecord(selector)) return false;
      const empty = Object.keys(pathRecord(selector, "matchLabels")).length === 0 &&
        pathList(selector, "matchExpressions").length === 0;
      return !empty && matchesLabelSelectorObject(selector, labels);
    });
    if (pdbs.length === 0) return;
    if (pdbs.length > 1) {
      throw failure(500, "InternalError", {
        message:
          "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
      });
    }
    const pdb = pdbs[0];
    const pdbName = pdb.metadata.name!;
    const observed = pathValue(pdb, "status.observedGeneration");
    if (typeof observed === "number" && observed < (pdb.metadata.generation ?? 0)) {
      throw tooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", {
        retryAfterSeconds: 10,
        causes: [{
          reason: "DisruptionBudget",
          message: `The disruption budget ${pdbName} is still being processed by the server.`,
        }],
      });
    }
    const budget = disruptionBudget(pdb, this.store.list("pods", ns));
    const healthyPolicy = pathString(pdb, "spec.unhealthyPodEvictionPolicy");
    if (!isPodReady(pod)) {
      if (healthyPolicy === "AlwaysAllow") return;
      if (budget.currentHealthy >= budget.desiredHealthy && budget.desiredHealthy > 0) return;
    }
    if (budget.disruptionsAllowed <= 0) {
      throw tooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", {
        causes: [{
          reason: "DisruptionBudget",
          message:
            `The disruption budget ${pdbName} needs ${budget.desiredHealthy} healthy pods and has ${budget.currentHealthy} currently`,
        }],
      });
    }
  }

  #markDisruptionTarget(pod: KubeObject): void {
    const next = structuredClone(pod);
    const status = pathRecord(next, "status");
    const conditions = pathList(next, "status.conditions").filter((c) =>
      !(isRecord(c) && c.type === "DisruptionTarget")
    );
    conditions.push({
      type: "DisruptionTarget",
      status: "True",
      lastTransitionTime: rfc3339(this.#now()),
      reason: disruptionTargetReason,
      message: "Eviction API: evicting",
    });
    status.conditions = conditions;
    next.status = status;
    this.store.replace("pods", next);
  }

  /** Rejects a verb the kind does not support with 405. */
  requireVerb(def: ResourceDef, verb: string): void {
    if (!(def.verbs ?? allVerbs).includes(verb)) {
      throw methodNotAllowed(def, verb);
    }
  }
}

/** Go's omitempty: empty labels, annotations and finalizers are not serialised. */
function dropEmptyMaps(meta: Record<string, unknown>): void {
  for (const key of ["labels", "annotations"]) {
    const v = meta[key];
    if (isRecord(v) && Object.keys(v).length === 0) delete meta[key];
  }
  if (Array.isArray(meta.finalizers) && meta.finalizers.length === 0) delete meta.finalizers;
}

function setOrDelete(meta: Record<string, unknown>, key: string, value: unknown): void {
  if (value === undefined) delete meta[key];
  else meta[key] = value;
}

const suffixAlphabet = "bcdfghjklmnpqrstvwxz2456789";

function randomSuffix(random: (() => number) | undefined): string {
  let out = "";
  const bytes = random === undefined
    ? crypto.getRandomValues(new Uint8Array(5))
    : Uint8Array.from({ length: 5 }, () => Math.floor(random() * 256));
  for (const b of bytes) out += suffixAlphabet[b % suffixAlphabet.length];
  return out;
}

/** A version-4 UUID from `random`. */
function seededUuid(random: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16));
  hex[12] = "4";
  hex[16] = "89ab"[Math.floor(random() * 4)];
  const h = hex.join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Whether the pod's Ready condition is True. */
export function isPodReady(pod: KubeObject): boolean {
  return pathList(pod, "status.conditions").some((c) =>
    isRecord(c) && c.type === "Ready" && c.status === "True"
  );
}

/** What a disruption controller would compute for a PDB. */
export interface Budget {
  /** Matching pods that are not finished. */
  expectedPods: number;
  /** Matching pods that are Ready and not being deleted. */
  currentHealthy: number;
  /** Healthy pods the budget requires. */
  desiredHealthy: number;
  /** `currentHealthy - desiredHealthy`, never negative. */
  disruptionsAllowed: number;
}

function scaled(value: unknown, total: number): number {
  if (typeof value === "number") return value;
  if (typeof value === "string" && value.endsWith("%")) {
    return Math.ceil((total * Number(value.slice(0, -1))) / 100);
  }
  if (typeof value === "string" && /^\d+$/.test(value)) return Number(value);
  throw internalError(`invalid value for IntOrString: ${JSON.stringify(value)}`);
}

/** Computes a PDB's budget from its spec and the pods of its namespace. */
export function disruptionBudget(pdb: KubeObject, podsInNamespace: KubeObject[]): Budget {
  const selector = pathValue(pdb, "spec.selector") as Parameters<
    typeof matchesLabelSelectorObject
  >[0];
  const pods = podsInNamespace.filter((p) =>
    matchesLabelSelectorObject(selector, p.metadata.labels)
  );
  const live = pods.filter((p) => {
    const phase = pathString(p, "status.phase");
    return phase !== "Succeeded" && phase !== "Failed";
  });
  const expectedPods = live.length;
  const currentHealthy =
    live.filter((p) => p.metadata.deletionTimestamp === undefined && isPodReady(p)).length;
  const minAvailable = pathValue(pdb, "spec.minAvailable");
  const maxUnavailable = pathValue(pdb, "spec.maxUnavailable");
  let desiredHealthy: number;
  if (maxUnavailable !== undefined && maxUnavailable !== null) {
    desiredHealthy = Math.max(0, expectedPods - scaled(maxUnavailable, expectedPods));
  } else if (minAvailable !== undefined && minAvailable !== null) {
    desiredHealthy = scaled(minAvailable, expectedPods);
  } else {
    desiredHealthy = 1;
  }
  return {
    expectedPods,
    currentHealthy,
    desiredHealthy,
    disruptionsAllowed: Math.max(0, currentHealthy - desiredHealthy),
  };
}
