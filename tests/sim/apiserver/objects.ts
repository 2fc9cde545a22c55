/**
 * The loose object shapes the simulator stores, and small helpers to read
 * fields from them without `any`.
 *
 * @module
 */

/** `metadata` of any stored object. */
export interface ObjectMeta {
  /** Object name. */
  name?: string;
  /** Prefix the server completes with a random suffix. */
  generateName?: string;
  /** Namespace, absent for cluster-scoped kinds. */
  namespace?: string;
  /** Server-set UID. */
  uid?: string;
  /** Server-set resourceVersion (global counter as a string). */
  resourceVersion?: string;
  /** Server-set generation. */
  generation?: number;
  /** Server-set creation time, RFC 3339 with second precision. */
  creationTimestamp?: string;
  /** Set when a graceful deletion or a deletion blocked by finalizers started. */
  deletionTimestamp?: string;
  /** Grace period of a pending deletion. */
  deletionGracePeriodSeconds?: number;
  /** Labels. */
  labels?: Record<string, string>;
  /** Annotations. */
  annotations?: Record<string, string>;
  /** Finalizers that keep the object until removed. */
  finalizers?: string[];
  /** Other fields (ownerReferences, managedFields, ...). */
  [key: string]: unknown;
}

/** Any Kubernetes object as stored: `metadata` plus free-form fields. */
export interface KubeObject {
  /** Group/version of the view the object is served in. */
  apiVersion?: string;
  /** Kind. */
  kind?: string;
  /** Object metadata. */
  metadata: ObjectMeta;
  /** Everything else (spec, status, kind-specific top-level fields). */
  [key: string]: unknown;
}

/** Reads a dotted path such as `spec.nodeName`; `undefined` when any step is missing. */
export function pathValue(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split(".")) {
    if (typeof cur !== "object" || cur === null || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Reads a dotted path as a string as field selectors see it (`""` when missing). */
export function pathString(obj: unknown, path: string): string {
  const v = pathValue(obj, path);
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return "";
}

/** A record at `path`, or an empty one. */
export function pathRecord(obj: unknown, path: string): Record<string, unknown> {
  const v = pathValue(obj, path);
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? v as Record<string, unknown>
    : {};
}

/** A list at `path`, or an empty one. */
export function pathList(obj: unknown, path: string): unknown[] {
  const v = pathValue(obj, path);
  return Array.isArray(v) ? v : [];
}

/** Whether `v` is a plain object. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `ns/name` key of an object in its storage bucket (`/name` for cluster-scoped). */
export function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

/** RFC 3339 with second precision, as `creationTimestamp` is serialised. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** RFC 3339 with exactly six fractional digits, as MicroTime is serialised. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}
