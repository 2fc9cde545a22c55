/**
 * The three patch formats kube-apiserver accepts for built-in kinds.
 *
 * - JSON Patch (RFC 6902): a list of operations; a failing operation is a 422.
 * - JSON Merge Patch (RFC 7386): maps merge, `null` deletes, lists are replaced.
 * - Strategic Merge Patch: like merge patch, but the lists named in the kind's
 *   merge-key table are merged element by element (by a key field, or as a set
 *   for primitive lists); every other list, such as `spec.taints`, is replaced
 *   whole. Directives `$patch`, `$retainKeys`, `$deleteFromPrimitiveList/<f>`
 *   and `$setElementOrder/<f>` are understood.
 *
 * @module
 */

import { badRequest, failure } from "./status.ts";

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A JSON object. */
export type JsonObject = { [key: string]: Json };

/** The patch media types, as sent in `Content-Type`. */
export const patchTypes = {
  json: "application/json-patch+json",
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
} as const;

/**
 * Merge keys of a kind for strategic merge patch: dotted field path (list
 * indices left out) to the key field, or `""` for a list of primitives merged
 * as a set. Lists not named here are replaced whole.
 */
export type MergeKeys = Record<string, string>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

/** Applies an RFC 7386 merge patch; returns a new value. */
export function applyMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

function unprocessable(message: string): Error {
  return failure(422, "Invalid", { message, details: {} });
}

function decodePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw unprocessable(`JSON pointer must start with '/': ${pointer}`);
  return pointer.slice(1).split("/").map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function parentOf(doc: Json, parts: string[], pointer: string): Json {
  let cur: Json = doc;
  for (const p of parts.slice(0, -1)) {
    if (Array.isArray(cur)) {
      const i = Number(p);
      if (!/^\d+$/.test(p) || i >= cur.length) {
        throw unprocessable(`doc is missing path: "${pointer}": missing value`);
      }
      cur = cur[i];
    } else if (isObject(cur) && Object.hasOwn(cur, p)) {
      cur = cur[p];
    } else {
      throw unprocessable(`doc is missing path: "${pointer}": missing value`);
    }
  }
  return cur;
}

function getAt(doc: Json, pointer: string): Json {
  const parts = decodePointer(pointer);
  if (parts.length === 0) return doc;
  const parent = parentOf(doc, parts, pointer);
  const last = parts[parts.length - 1];
  if (Array.isArray(parent)) {
    const i = Number(last);
    if (!/^\d+$/.test(last) || i >= parent.length) {
      throw unprocessable(`doc is missing path: "${pointer}": missing value`);
    }
    return parent[i];
  }
  if (isObject(parent) && Object.hasOwn(parent, last)) return parent[last];
  throw unprocessable(`doc is missing path: "${pointer}": missing value`);
}

function removeAt(doc: Json, pointer: string): Json {
  const parts = decodePointer(pointer);
  const parent = parentOf(doc, parts, pointer);
  const last = parts[parts.length - 1];
  if (Array.isArray(parent)) {
    const i = Number(last);
    if (!/^\d+$/.test(last) || i >= parent.length) {
      throw unprocessable(`unable to remove nonexistent key: ${last}: missing value`);
    }
    return parent.splice(i, 1)[0];
  }
  if (isObject(parent) && Object.hasOwn(parent, last)) {
    const v = parent[last];
    delete parent[last];
    return v;
  }
  throw unprocessable(`unable to remove nonexistent key: ${last}: missing value`);
}

function addAt(doc: Json, pointer: string, value: Json, replace: boolean): Json {
  const parts = decodePointer(pointer);
  if (parts.length === 0) return value;
  const parent = parentOf(doc, parts, pointer);
  const last = parts[parts.length - 1];
  if (Array.isArray(parent)) {
    if (last === "-" && !replace) {
      parent.push(value);
      return doc;
    }
    const i = Number(last);
    const limit = replace ? parent.length - 1 : parent.length;
    if (!/^\d+$/.test(last) || i > limit) {
      throw unprocessable(`index out of bounds: "${pointer}"`);
    }
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
    return doc;
  }
  if (!isObject(parent)) throw unprocessable(`doc is missing path: "${pointer}": missing value`);
  if (replace && !Object.hasOwn(parent, last)) {
    throw unprocessable(`replace operation does not apply: doc is missing key: ${pointer}`);
  }
  parent[last] = value;
  return doc;
}

/** Applies an RFC 6902 JSON patch; a failing operation throws a 422 ApiError. */
export function applyJsonPatch(target: Json, patch: Json): Json {
  if (!Array.isArray(patch)) throw badRequest("json patch must be a list of operations");
  if (patch.length > 10000) {
    throw failure(413, "RequestEntityTooLarge", {
      message:
        `The request is too large: the allowed number of operations in a json patch is 10000, but found ${patch.length}`,
    });
  }
  let doc = clone(target);
  for (const raw of patch) {
    if (!isObject(raw) || typeof raw.op !== "string") {
      throw badRequest("invalid json patch operation");
    }
    const path = typeof raw.path === "string" ? raw.path : "";
    switch (raw.op) {
      case "add":
        doc = addAt(doc, path, clone(raw.value ?? null), false);
        break;
      case "replace":
        doc = addAt(doc, path, clone(raw.value ?? null), true);
        break;
      case "remove":
        removeAt(doc, path);
        break;
      case "move": {
        const from = String(raw.from ?? "");
        const v = removeAt(doc, from);
        doc = addAt(doc, path, v, false);
        break;
      }
      case "copy": {
        const v = clone(getAt(doc, String(raw.from ?? "")));
        doc = addAt(doc, path, v, false);
        break;
      }
      case "test": {
        const v = getAt(doc, path);
        if (JSON.stringify(canonical(v)) !== JSON.stringify(canonical(raw.value ?? null))) {
          throw unprocessable(`testing value ${path} failed: test failed`);
        }
        break;
      }
      default:
        throw badRequest(`unexpected json patch operation: ${raw.op}`);
    }
  }
  return doc;
}

function canonical(v: Json): Json {
  if (Array.isArray(v)) return v.map(canonical);
  if (isObject(v)) {
    const out: JsonObject = {};
    for (const k of Object.keys(v).sort()) out[k] = canonical(v[k]);
    return out;
  }
  return v;
}

const deleteFromPrefix = "$deleteFromPrimitiveList/";
const setOrderPrefix = "$setElementOrder/";

/** Removes SMP directives from a value that is being inserted as is. */
function stripDirectives(v: Json): Json {
  if (Array.isArray(v)) {
    return v.filter((e) => !(isObject(e) && e.$patch === "delete")).map(stripDirectives);
  }
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, e] of Object.entries(v)) {
    if (k.startsWith("$")) continue;
    out[k] = stripDirectives(e);
  }
  return out;
}

/** Applies a strategic merge patch using the kind's merge keys; returns a new value. */
export function applyStrategicMergePatch(
  target: JsonObject,
  patch: Json,
  keys: MergeKeys,
): JsonObject {
  if (!isObject(patch)) throw badRequest("strategic merge patch must be a JSON object");
  const merged = mergeMap(clone(target), patch, "", keys);
  return merged ?? {};
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function mergeMap(
  original: JsonObject,
  patch: JsonObject,
  path: string,
  keys: MergeKeys,
): JsonObject | undefined {
  const directive = patch.$patch;
  if (directive === "delete") return undefined;
  if (directive === "replace") return stripDirectives(patch) as JsonObject;
  if (directive !== undefined && directive !== "merge") {
    throw badRequest(`Unknown patch type: ${JSON.stringify(directive)} in map`);
  }
  const out = original;
  for (const [k, v] of Object.entries(patch)) {
    if (k === "$patch" || k === "$retainKeys" || k.startsWith(setOrderPrefix)) continue;
    if (k.startsWith(deleteFromPrefix)) {
      const field = k.slice(deleteFromPrefix.length);
      if (!Array.isArray(v)) throw badRequest(`${k} must be a list`);
      const cur = out[field];
      if (Array.isArray(cur)) {
        out[field] = cur.filter((e) => !v.some((d) => JSON.stringify(d) === JSON.stringify(e)));
      }
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const fieldPath = join(path, k);
    if (Array.isArray(v)) {
      const key = keys[fieldPath];
      const cur = out[k];
      if (key === undefined) {
        out[k] = replaceList(v);
      } else if (key === "") {
        out[k] = mergePrimitiveList(Array.isArray(cur) ? cur : [], v);
      } else {
        out[k] = mergeKeyedList(Array.isArray(cur) ? cur : [], v, fieldPath, key, keys);
      }
      continue;
    }
    if (isObject(v)) {
      const cur = out[k];
      const merged = mergeMap(isObject(cur) ? cur : {}, v, fieldPath, keys);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
      continue;
    }
    out[k] = v;
  }
  const retain = patch.$retainKeys;
  if (Array.isArray(retain)) {
    for (const k of Object.keys(out)) {
      if (!retain.includes(k)) delete out[k];
    }
  }
  return out;
}

function replaceList(patch: Json[]): Json[] {
  if (patch.some((e) => isObject(e) && e.$patch === "replace")) {
    return patch.filter((e) => !(isObject(e) && e.$patch === "replace")).map(stripDirectives);
  }
  return patch.map(stripDirectives);
}

function mergePrimitiveList(original: Json[], patch: Json[]): Json[] {
  const out = [...original];
  for (const e of patch) {
    if (!out.some((o) => JSON.stringify(o) === JSON.stringify(e))) out.push(e);
  }
  return out;
}

function mergeKeyedList(
  original: Json[],
  patch: Json[],
  path: string,
  key: string,
  keys: MergeKeys,
): Json[] {
  if (patch.some((e) => isObject(e) && e.$patch === "replace")) {
    return patch.filter((e) => !(isObject(e) && e.$patch === "replace")).map(stripDirectives);
  }
  const out = [...original];
  for (const e of patch) {
    if (!isObject(e)) {
      throw badRequest(
        `strategic merge patch: expected a map in list ${path}, got ${JSON.stringify(e)}`,
      );
    }
    const id = e[key];
    if (id === undefined) {
      throw badRequest(`map: ${JSON.stringify(e)} does not contain declared merge key: ${key}`);
    }
    const at = out.findIndex((o) => isObject(o) && JSON.stringify(o[key]) === JSON.stringify(id));
    if (e.$patch === "delete") {
      if (at >= 0) out.splice(at, 1);
      continue;
    }
    if (at >= 0) {
      const merged = mergeMap(out[at] as JsonObject, e, path, keys);
      if (merged === undefined) out.splice(at, 1);
      else out[at] = merged;
    } else {
      out.push(stripDirectives(e));
    }
  }
  return out;
}
