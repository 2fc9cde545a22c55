/**
 * The kinds the simulator serves, each described once as a {@link ResourceDef}:
 * where it lives in the URL space, how discovery lists it, which field
 * selectors it supports, how strategic merge patch merges its lists, and the
 * per-kind rules (pod defaults and graceful deletion, MicroTime checks,
 * events.k8s.io validation). Adding a kind means adding one definition.
 *
 * @module
 */

import type { MergeKeys } from "./patch.ts";
import type { KubeObject } from "./objects.ts";
import { isRecord, pathList, pathRecord, pathString, pathValue } from "./objects.ts";
import type { FieldError } from "./status.ts";
import { badRequest, forbiddenField, invalidValue, required } from "./status.ts";

/** A subresource entry such as `pods/status` or `pods/eviction`. */
export interface SubresourceDef {
  /** Subresource name, e.g. `status`. */
  name: string;
  /** Kind it accepts/returns. */
  kind: string;
  /** Group of that kind when it differs from the parent (pods/eviction: `policy`). */
  group?: string;
  /** Version of that kind when it differs from the parent. */
  version?: string;
  /** Verbs. */
  verbs: string[];
}

/** Context handed to per-kind hooks. */
export interface HookContext {
  /** Current time of the simulated cluster. */
  now: Date;
  /** True for direct store access from tests (seeding), false for HTTP clients. */
  privileged: boolean;
}

/** Everything the server needs to know about one served kind. */
export interface ResourceDef {
  /** API group, `""` for core. */
  group: string;
  /** API version, e.g. `v1`. */
  version: string;
  /** Resource plural, e.g. `pods`. */
  resource: string;
  /** Kind, e.g. `Pod`. */
  kind: string;
  /** Singular resource name. */
  singular: string;
  /** Whether objects live in namespaces. */
  namespaced: boolean;
  /** kubectl short names. */
  shortNames?: string[];
  /** Categories such as `all`. */
  categories?: string[];
  /** Verbs on the main resource; defaults to all eight. */
  verbs?: string[];
  /** Subresources. */
  subresources?: SubresourceDef[];
  /** Storage bucket; two views of the same objects (events) share one. Defaults to `<resource>.<group>`. */
  storage?: string;
  /** Converts a stored object into this view (events.k8s.io from core events). */
  toView?: (stored: KubeObject) => KubeObject;
  /** Converts an object of this view into the stored form. */
  fromView?: (obj: KubeObject) => KubeObject;
  /**
   * Selectable fields, computed from the stored form. Kinds with this function
   * answer `field label not supported: <f>` for other labels; kinds without it
   * only know metadata.name and metadata.namespace.
   */
  fields?: (obj: KubeObject) => Record<string, string>;
  /** Old field labels mapped to their current name (pods: `spec.host`). */
  fieldAliases?: Record<string, string>;
  /** Strategic-merge-patch merge keys of this kind (metadata keys are added for all kinds). */
  mergeKeys?: MergeKeys;
  /** Rejects undecodable content with a 400 (MicroTime fields); sees this view's form. */
  decodeCheck?: (obj: KubeObject) => void;
  /** Fills defaults on create; sees the stored form. */
  prepareCreate?: (obj: KubeObject, ctx: HookContext) => void;
  /** Field errors for a create or an update (422 Invalid); sees this view's form. */
  validate?: (obj: KubeObject, old: KubeObject | undefined) => FieldError[];
  /** Grace period for a delete; `undefined` means the kind has no graceful deletion. */
  deleteGrace?: (obj: KubeObject, requested: number | undefined) => number | undefined;
  /** The DELETE answer is the deleted object instead of a Success Status (pods). */
  returnDeletedObject?: boolean;
  /** Whether spec changes bump `metadata.generation`. */
  trackGeneration?: boolean;
}

/** The verbs every plain kind supports. */
export const allVerbs = [
  "create",
  "delete",
  "deletecollection",
  "get",
  "list",
  "patch",
  "update",
  "watch",
];

const statusVerbs = ["get", "patch", "update"];

function status(kind: string): SubresourceDef {
  return { name: "status", kind, verbs: statusVerbs };
}

/** Storage bucket name of a definition. */
export function storageOf(def: ResourceDef): string {
  return def.storage ?? (def.group === "" ? def.resource : `${def.resource}.${def.group}`);
}

/** `group/version`, or `version` for core. */
export function groupVersion(def: { group: string; version: string }): string {
  return def.group === "" ? def.version : `${def.group}/${def.version}`;
}

/** Whether the kind has a `status` subresource (so the main endpoint keeps the stored status). */
export function hasStatus(def: ResourceDef): boolean {
  return (def.subresources ?? []).some((s) => s.name === "status");
}

const metadataMergeKeys: MergeKeys = {
  "metadata.finalizers": "",
  "metadata.ownerReferences": "uid",
};

/** Merge keys for strategic merge patch: the kind's plus the metadata ones. */
export function mergeKeysOf(def: ResourceDef): MergeKeys {
  return { ...metadataMergeKeys, ...(def.mergeKeys ?? {}) };
}

const microTimeLayout = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

/** Throws the 400 a real server answers when a MicroTime field does not have 6 fractional digits. */
export function checkMicroTime(value: unknown, target: { kind: string; group: string }): void {
  const { kind, group } = target;
  if (value === undefined || value === null) return;
  if (typeof value === "string" && microTimeLayout.test(value)) return;
  const gv = group === "" ? "v1" : `${group}/v1`;
  const text = typeof value === "string" ? value : JSON.stringify(value);
  const fraction = typeof value === "string" ? value.slice(19) : text;
  throw badRequest(
    `${kind} in version "${gv.split("/").pop()}" cannot be handled as a ${kind}: ` +
      `parsing time "${text}" as "2006-01-02T15:04:05.000000Z07:00": ` +
      `cannot parse "${fraction}" as ".000000"`,
  );
}

// ---------------------------------------------------------------- pods

const defaultTolerationKeys = ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"];

function preparePod(pod: KubeObject, ctx: HookContext): void {
  const spec = pathRecord(pod, "spec");
  pod.spec = spec;
  spec.terminationGracePeriodSeconds ??= 30;
  spec.restartPolicy ??= "Always";
  spec.dnsPolicy ??= "ClusterFirst";
  spec.schedulerName ??= "default-scheduler";
  spec.serviceAccountName ??= "default";
  const tolerations = pathList(pod, "spec.tolerations").filter(isRecord);
  for (const key of defaultTolerationKeys) {
    // Like the DefaultTolerationSeconds admission plugin: skip a key that an
    // existing toleration already tolerates (an empty key with Exists
    // tolerates every taint).
    const present = tolerations.some((t) =>
      (t.key === key || ((t.key === undefined || t.key === "") && t.operator === "Exists")) &&
      (t.effect === undefined || t.effect === "" || t.effect === "NoExecute")
    );
    if (!present) {
      tolerations.push({ key, operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 });
    }
  }
  spec.tolerations = tolerations;
  if (!ctx.privileged) {
    pod.status = { phase: "Pending", qosClass: "BestEffort" };
  } else {
    const st = pathRecord(pod, "status");
    st.phase ??= "Pending";
    pod.status = st;
  }
}

const podSpecImmutable =
  "pod updates may not change fields other than `spec.containers[*].image`, " +
  "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` " +
  "(only additions to existing tolerations), `spec.terminationGracePeriodSeconds` " +
  "(allow it to be set to 1 if it was previously negative)";

function validatePod(pod: KubeObject, old: KubeObject | undefined): FieldError[] {
  const errors: FieldError[] = [];
  if (old !== undefined) {
    // updates: only the binding is checked, so pods seeded without containers stay patchable
    const oldNode = pathString(old, "spec.nodeName");
    const newNode = pathString(pod, "spec.nodeName");
    if (oldNode !== "" && oldNode !== newNode) {
      errors.push(forbiddenField("spec", podSpecImmutable));
    }
    return errors;
  }
  const containers = pathList(pod, "spec.containers");
  if (containers.length === 0) errors.push(required("spec.containers"));
  containers.forEach((c, i) => {
    if (!isRecord(c) || typeof c.name !== "string" || c.name === "") {
      errors.push(required(`spec.containers[${i}].name`));
    }
    if (!isRecord(c) || typeof c.image !== "string" || c.image === "") {
      errors.push(required(`spec.containers[${i}].image`));
    }
  });
  return errors;
}

function podFields(pod: KubeObject): Record<string, string> {
  const ips = pathList(pod, "status.podIPs");
  const firstIp = ips.length > 0 && isRecord(ips[0]) ? String(ips[0].ip ?? "") : "";
  return {
    "metadata.name": pod.metadata.name ?? "",
    "metadata.namespace": pod.metadata.namespace ?? "",
    "spec.nodeName": pathString(pod, "spec.nodeName"),
    "spec.restartPolicy": pathString(pod, "spec.restartPolicy"),
    "spec.schedulerName": pathString(pod, "spec.schedulerName"),
    "spec.serviceAccountName": pathString(pod, "spec.serviceAccountName"),
    "spec.hostNetwork": pathValue(pod, "spec.hostNetwork") === true ? "true" : "false",
    "status.phase": pathString(pod, "status.phase"),
    "status.podIP": firstIp !== "" ? firstIp : pathString(pod, "status.podIP"),
    "status.nominatedNodeName": pathString(pod, "status.nominatedNodeName"),
  };
}

function podGrace(pod: KubeObject, requested: number | undefined): number {
  let grace = requested ?? Number(pathValue(pod, "spec.terminationGracePeriodSeconds") ?? 30);
  if (!Number.isFinite(grace)) grace = 30;
  if (grace < 0) grace = 1;
  const phase = pathString(pod, "status.phase");
  if (pathString(pod, "spec.nodeName") === "" || phase === "Succeeded" || phase === "Failed") {
    grace = 0;
  }
  return grace;
}

const podMergeKeys: MergeKeys = {
  "spec.containers": "name",
  "spec.initContainers": "name",
  "spec.ephemeralContainers": "name",
  "spec.containers.env": "name",
  "spec.initContainers.env": "name",
  "spec.containers.ports": "containerPort",
  "spec.initContainers.ports": "containerPort",
  "spec.containers.volumeMounts": "mountPath",
  "spec.initContainers.volumeMounts": "mountPath",
  "spec.containers.volumeDevices": "devicePath",
  "spec.volumes": "name",
  "spec.imagePullSecrets": "name",
  "spec.hostAliases": "ip",
  "status.conditions": "type",
  "status.podIPs": "ip",
};

// ---------------------------------------------------------------- events

const eventFieldNames = [
  "involvedObject.kind",
  "involvedObject.namespace",
  "involvedObject.name",
  "involvedObject.uid",
  "involvedObject.apiVersion",
  "involvedObject.resourceVersion",
  "involvedObject.fieldPath",
];

function coreEventFields(ev: KubeObject): Record<string, string> {
  const out: Record<string, string> = {
    "metadata.name": ev.metadata.name ?? "",
    "metadata.namespace": ev.metadata.namespace ?? "",
    "reason": pathString(ev, "reason"),
    "reportingComponent": pathString(ev, "reportingComponent"),
    "source": pathString(ev, "source.component"),
    "type": pathString(ev, "type"),
  };
  for (const f of eventFieldNames) out[f] = pathString(ev, f);
  return out;
}

function eventsV1Fields(ev: KubeObject): Record<string, string> {
  const out: Record<string, string> = {
    "metadata.name": ev.metadata.name ?? "",
    "metadata.namespace": ev.metadata.namespace ?? "",
    "reason": pathString(ev, "reason"),
    "reportingController": pathString(ev, "reportingComponent"),
    "type": pathString(ev, "type"),
  };
  for (const f of eventFieldNames) {
    out[f.replace("involvedObject.", "regarding.")] = pathString(ev, f);
  }
  return out;
}

const coreToV1: [string, string][] = [
  ["involvedObject", "regarding"],
  ["message", "note"],
  ["source", "deprecatedSource"],
  ["firstTimestamp", "deprecatedFirstTimestamp"],
  ["lastTimestamp", "deprecatedLastTimestamp"],
  ["count", "deprecatedCount"],
  ["reportingComponent", "reportingController"],
];

const sharedEventFields = [
  "eventTime",
  "series",
  "action",
  "reason",
  "related",
  "reportingInstance",
  "type",
];

/** core/v1 Event → events.k8s.io/v1 Event. */
export function eventToV1(core: KubeObject): KubeObject {
  const out: KubeObject = {
    kind: "Event",
    apiVersion: "events.k8s.io/v1",
    metadata: structuredClone(core.metadata),
  };
  for (const f of sharedEventFields) if (core[f] !== undefined) out[f] = structuredClone(core[f]);
  for (const [from, to] of coreToV1) {
    const v = core[from];
    if (v === undefined || v === null || v === "" || (from === "count" && v === 0)) continue;
    if (from === "source" && isRecord(v) && Object.keys(v).length === 0) continue;
    out[to] = structuredClone(v);
  }
  if (!("eventTime" in out)) out.eventTime = null;
  return out;
}

/** events.k8s.io/v1 Event → core/v1 Event (the stored form). */
export function eventFromV1(v1: KubeObject): KubeObject {
  const out: KubeObject = {
    kind: "Event",
    apiVersion: "v1",
    metadata: structuredClone(v1.metadata),
  };
  for (const f of sharedEventFields) if (v1[f] !== undefined) out[f] = structuredClone(v1[f]);
  for (const [from, to] of coreToV1) {
    if (v1[to] !== undefined && v1[to] !== null) out[from] = structuredClone(v1[to]);
  }
  out.involvedObject ??= {};
  out.source ??= {};
  return out;
}

function eventMicroTimes(kind: string, group: string, ev: KubeObject): void {
  checkMicroTime(ev.eventTime, { kind, group });
  checkMicroTime(pathValue(ev, "series.lastObservedTime"), { kind, group });
}

const qualifiedName =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function validateNewStyleEvent(ev: KubeObject, viaV1: boolean): FieldError[] {
  const errors: FieldError[] = [];
  const controllerField = viaV1 ? "reportingController" : "reportingComponent";
  const controller = pathString(ev, viaV1 ? "reportingController" : "reportingComponent");
  if (ev.eventTime === undefined || ev.eventTime === null) errors.push(required("eventTime"));
  const type = pathString(ev, "type");
  if (type !== "Normal" && type !== "Warning") {
    errors.push({
      reason: "FieldValueInvalid",
      field: "type",
      message: `type: Unsupported value: ${
        JSON.stringify(type)
      }: supported values: "Normal", "Warning"`,
    });
  }
  if (controller === "") errors.push(required(controllerField));
  else if (!qualifiedName.test(controller)) {
    errors.push(invalidValue(controllerField, controller, "must be a qualified name"));
  }
  const instance = pathString(ev, "reportingInstance");
  if (instance === "") errors.push(required("reportingInstance"));
  else if (instance.length > 128) {
    errors.push(invalidValue("reportingInstance", "", "can have at most 128 characters"));
  }
  for (const f of ["action", "reason"]) {
    const v = pathString(ev, f);
    if (v === "") errors.push(required(f));
    else if (v.length > 128) errors.push(invalidValue(f, "", "can have at most 128 characters"));
  }
  const noteField = viaV1 ? "note" : "message";
  if (pathString(ev, noteField).length > 1024) {
    errors.push(invalidValue(noteField, "", "can have at most 1024 characters"));
  }
  if (ev.series !== undefined && ev.series !== null) {
    const count = Number(pathValue(ev, "series.count") ?? 0);
    if (count < 2) errors.push(invalidValue("series.count", count, "should be at least 2"));
    if (pathValue(ev, "series.lastObservedTime") === undefined) {
      errors.push(required("series.lastObservedTime"));
    }
  }
  return errors;
}

function validateEventsV1(ev: KubeObject): FieldError[] {
  const errors = validateNewStyleEvent(ev, true);
  for (const f of ["deprecatedSource", "deprecatedFirstTimestamp", "deprecatedLastTimestamp"]) {
    const v = ev[f];
    if (v !== undefined && v !== null && !(isRecord(v) && Object.keys(v).length === 0)) {
      errors.push(forbiddenField(f, "deprecated field must not be set"));
    }
  }
  if (ev.deprecatedCount !== undefined && ev.deprecatedCount !== 0) {
    errors.push(forbiddenField("deprecatedCount", "deprecated field must not be set"));
  }
  const regardingNs = pathString(ev, "regarding.namespace");
  const ns = ev.metadata.namespace ?? "";
  if (regardingNs === "" && ns !== "default" && ns !== "kube-system") {
    errors.push(
      invalidValue("metadata.namespace", ns, "does not match event.namespace"),
    );
  } else if (regardingNs !== "" && regardingNs !== ns) {
    errors.push(invalidValue("regarding.namespace", regardingNs, "does not match event.namespace"));
  }
  return errors;
}

function validateCoreEvent(ev: KubeObject): FieldError[] {
  const errors: FieldError[] = [];
  const involvedNs = pathString(ev, "involvedObject.namespace");
  const ns = ev.metadata.namespace ?? "";
  if (involvedNs !== "" && involvedNs !== ns) {
    errors.push(
      invalidValue("involvedObject.namespace", involvedNs, "does not match event.namespace"),
    );
  }
  if (ev.eventTime !== undefined && ev.eventTime !== null) {
    errors.push(...validateNewStyleEvent(ev, false));
  }
  return errors;
}

// ---------------------------------------------------------------- rbac

const rbacGroupName = "rbac.authorization.k8s.io";

function unsupported(field: string, value: unknown, supported: string[]): FieldError {
  return {
    reason: "FieldValueNotSupported",
    field,
    message: `${field}: Unsupported value: ${JSON.stringify(value)}: supported values: ${
      supported.map((v) => JSON.stringify(v)).join(", ")
    }`,
  };
}

function requiredBecause(field: string, detail: string): FieldError {
  return { reason: "FieldValueRequired", field, message: `${field}: Required value: ${detail}` };
}

function validateRules(role: KubeObject, namespaced: boolean): FieldError[] {
  const errors: FieldError[] = [];
  pathList(role, "rules").forEach((rule, i) => {
    const at = `rules[${i}]`;
    const list = (key: string) => isRecord(rule) && Array.isArray(rule[key]) ? rule[key] : [];
    if (list("verbs").length === 0) {
      errors.push(requiredBecause(`${at}.verbs`, "verbs must contain at least one value"));
    }
    const urls = list("nonResourceURLs");
    if (urls.length > 0) {
      if (namespaced) {
        errors.push(
          invalidValue(
            `${at}.nonResourceURLs`,
            urls,
            "namespaced rules cannot apply to non-resource URLs",
          ),
        );
      }
      if (list("apiGroups").length > 0 || list("resources").length > 0) {
        errors.push(
          invalidValue(
            `${at}.nonResourceURLs`,
            urls,
            "rules cannot apply to both regular resources and non-resource URLs",
          ),
        );
      }
      return;
    }
    if (list("apiGroups").length === 0) {
      errors.push(
        requiredBecause(`${at}.apiGroups`, "resource rules must supply at least one api group"),
      );
    }
    if (list("resources").length === 0) {
      errors.push(
        requiredBecause(`${at}.resources`, "resource rules must supply at least one resource"),
      );
    }
  });
  return errors;
}

function roleRefText(ref: unknown): string {
  const r = isRecord(ref) ? ref : {};
  const text = (v: unknown) => JSON.stringify(typeof v === "string" ? v : "");
  return `rbac.RoleRef{APIGroup:${text(r.apiGroup)}, Kind:${text(r.kind)}, Name:${text(r.name)}}`;
}

function validateBinding(
  binding: KubeObject,
  old: KubeObject | undefined,
  namespaced: boolean,
): FieldError[] {
  const errors: FieldError[] = [];
  const ref = pathRecord(binding, "roleRef");
  if (ref.apiGroup !== rbacGroupName) {
    errors.push(unsupported("roleRef.apiGroup", ref.apiGroup ?? "", [rbacGroupName]));
  }
  const kinds = namespaced ? ["Role", "ClusterRole"] : ["ClusterRole"];
  if (!kinds.includes(String(ref.kind ?? ""))) {
    errors.push(unsupported("roleRef.kind", ref.kind ?? "", kinds));
  }
  if (typeof ref.name !== "string" || ref.name === "") errors.push(required("roleRef.name"));
  pathList(binding, "subjects").forEach((subject, i) => {
    const at = `subjects[${i}]`;
    const s = isRecord(subject) ? subject : {};
    if (typeof s.name !== "string" || s.name === "") errors.push(required(`${at}.name`));
    if (!["ServiceAccount", "User", "Group"].includes(String(s.kind ?? ""))) {
      errors.push(unsupported(`${at}.kind`, s.kind ?? "", ["ServiceAccount", "User", "Group"]));
    } else if (s.kind === "ServiceAccount" && !namespaced && !s.namespace) {
      errors.push(required(`${at}.namespace`));
    }
  });
  if (old !== undefined && roleRefText(old.roleRef) !== roleRefText(binding.roleRef)) {
    errors.push({
      reason: "FieldValueInvalid",
      field: "roleRef",
      message: `roleRef: Invalid value: ${roleRefText(binding.roleRef)}: cannot change roleRef`,
    });
  }
  return errors;
}

function rbacKind(resource: string, kind: string, namespaced: boolean): ResourceDef {
  const binding = kind.endsWith("Binding");
  return {
    group: rbacGroupName,
    version: "v1",
    resource,
    kind,
    singular: kind.toLowerCase(),
    namespaced,
    validate: binding
      ? (o, old) => validateBinding(o, old, namespaced)
      : (o) => validateRules(o, namespaced),
  };
}

function reviewKind(group: string, resource: string, kind: string): ResourceDef {
  return {
    group,
    version: "v1",
    resource,
    kind,
    singular: kind.toLowerCase(),
    namespaced: false,
    verbs: ["create"],
  };
}

// ---------------------------------------------------------------- the table

function nameOnly(obj: KubeObject): Record<string, string> {
  return { "metadata.name": obj.metadata.name ?? "" };
}

/** The built-in kinds. */
export function builtinResources(): ResourceDef[] {
  return [
    {
      group: "",
      version: "v1",
      resource: "namespaces",
      kind: "Namespace",
      singular: "namespace",
      namespaced: false,
      shortNames: ["ns"],
      subresources: [status("Namespace")],
      fields: (o) => ({ ...nameOnly(o), "status.phase": pathString(o, "status.phase") }),
      prepareCreate: (o) => {
        o.spec = { finalizers: ["kubernetes"], ...pathRecord(o, "spec") };
        o.status = { phase: "Active" };
      },
    },
    {
      group: "",
      version: "v1",
      resource: "nodes",
      kind: "Node",
      singular: "node",
      namespaced: false,
      shortNames: ["no"],
      subresources: [status("Node")],
      fields: (o) => ({
        ...nameOnly(o),
        "spec.unschedulable": pathValue(o, "spec.unschedulable") === true ? "true" : "false",
      }),
      mergeKeys: {
        "status.conditions": "type",
        "status.addresses": "type",
        "status.volumesAttached": "name",
      },
    },
    {
      group: "",
      version: "v1",
      resource: "pods",
      kind: "Pod",
      singular: "pod",
      namespaced: true,
      shortNames: ["po"],
      categories: ["all"],
      subresources: [
        { name: "eviction", kind: "Eviction", group: "policy", version: "v1", verbs: ["create"] },
        status("Pod"),
      ],
      fields: podFields,
      fieldAliases: { "spec.host": "spec.nodeName" },
      mergeKeys: podMergeKeys,
      prepareCreate: preparePod,
      validate: validatePod,
      deleteGrace: podGrace,
      returnDeletedObject: true,
      trackGeneration: true,
    },
    {
      group: "",
      version: "v1",
      resource: "persistentvolumes",
      kind: "PersistentVolume",
      singular: "persistentvolume",
      namespaced: false,
      shortNames: ["pv"],
      subresources: [status("PersistentVolume")],
      prepareCreate: (o) => {
        o.status = { phase: "Pending", ...pathRecord(o, "status") };
      },
    },
    {
      group: "",
      version: "v1",
      resource: "persistentvolumeclaims",
      kind: "PersistentVolumeClaim",
      singular: "persistentvolumeclaim",
      namespaced: true,
      shortNames: ["pvc"],
      subresources: [status("PersistentVolumeClaim")],
      mergeKeys: { "status.conditions": "type" },
      prepareCreate: (o) => {
        o.status = { phase: "Pending", ...pathRecord(o, "status") };
      },
    },
    {
      group: "",
      version: "v1",
      resource: "events",
      kind: "Event",
      singular: "event",
      namespaced: true,
      shortNames: ["ev"],
      storage: "events",
      fields: coreEventFields,
      decodeCheck: (o) => eventMicroTimes("Event", "", o),
      validate: (o) => validateCoreEvent(o),
      prepareCreate: (o) => {
        o.involvedObject ??= {};
        o.source ??= {};
      },
    },
    {
      group: "",
      version: "v1",
      resource: "configmaps",
      kind: "ConfigMap",
      singular: "configmap",
      namespaced: true,
      shortNames: ["cm"],
    },
    {
      group: "",
      version: "v1",
      resource: "secrets",
      kind: "Secret",
      singular: "secret",
      namespaced: true,
      fields: (o) => ({
        "metadata.name": o.metadata.name ?? "",
        "metadata.namespace": o.metadata.namespace ?? "",
        "type": pathString(o, "type"),
      }),
    },
    {
      group: "",
      version: "v1",
      resource: "services",
      kind: "Service",
      singular: "service",
      namespaced: true,
      shortNames: ["svc"],
      categories: ["all"],
      subresources: [status("Service")],
    },
    {
      group: "",
      version: "v1",
      resource: "serviceaccounts",
      kind: "ServiceAccount",
      singular: "serviceaccount",
      namespaced: true,
      shortNames: ["sa"],
    },
    {
      group: "storage.k8s.io",
      version: "v1",
      resource: "volumeattachments",
      kind: "VolumeAttachment",
      singular: "volumeattachment",
      namespaced: false,
      subresources: [status("VolumeAttachment")],
    },
    {
      group: "storage.k8s.io",
      version: "v1",
      resource: "storageclasses",
      kind: "StorageClass",
      singular: "storageclass",
      namespaced: false,
      shortNames: ["sc"],
    },
    {
      group: "storage.k8s.io",
      version: "v1",
      resource: "csidrivers",
      kind: "CSIDriver",
      singular: "csidriver",
      namespaced: false,
    },
    {
      group: "storage.k8s.io",
      version: "v1",
      resource: "csinodes",
      kind: "CSINode",
      singular: "csinode",
      namespaced: false,
    },
    {
      group: "events.k8s.io",
      version: "v1",
      resource: "events",
      kind: "Event",
      singular: "event",
      namespaced: true,
      shortNames: ["ev"],
      storage: "events",
      toView: eventToV1,
      fromView: eventFromV1,
      fields: eventsV1Fields,
      decodeCheck: (o) => eventMicroTimes("Event", "events.k8s.io", o),
      validate: (o) => validateEventsV1(o),
    },
    {
      group: "coordination.k8s.io",
      version: "v1",
      resource: "leases",
      kind: "Lease",
      singular: "lease",
      namespaced: true,
      decodeCheck: (o) => {
        const lease = { kind: "Lease", group: "coordination.k8s.io" };
        checkMicroTime(pathValue(o, "spec.acquireTime"), lease);
        checkMicroTime(pathValue(o, "spec.renewTime"), lease);
      },
    },
    {
      group: "policy",
      version: "v1",
      resource: "poddisruptionbudgets",
      kind: "PodDisruptionBudget",
      singular: "poddisruptionbudget",
      namespaced: true,
      shortNames: ["pdb"],
      subresources: [status("PodDisruptionBudget")],
      trackGeneration: true,
      mergeKeys: { "status.conditions": "type" },
    },
    rbacKind("clusterroles", "ClusterRole", false),
    rbacKind("clusterrolebindings", "ClusterRoleBinding", false),
    rbacKind("roles", "Role", true),
    rbacKind("rolebindings", "RoleBinding", true),
    reviewKind("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
    reviewKind("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview"),
    reviewKind("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview"),
    reviewKind("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview"),
    ...["statefulsets", "deployments", "replicasets", "daemonsets"].map((resource): ResourceDef => {
      const kind = {
        statefulsets: "StatefulSet",
        deployments: "Deployment",
        replicasets: "ReplicaSet",
        daemonsets: "DaemonSet",
      }[resource]!;
      const shortName = {
        statefulsets: "sts",
        deployments: "deploy",
        replicasets: "rs",
        daemonsets: "ds",
      }[resource]!;
      return {
        group: "apps",
        version: "v1",
        resource,
        kind,
        singular: kind.toLowerCase(),
        namespaced: true,
        shortNames: [shortName],
        categories: ["all"],
        subresources: [status(kind), {
          name: "scale",
          kind: "Scale",
          group: "autoscaling",
          version: "v1",
          verbs: statusVerbs,
        }],
        trackGeneration: true,
        mergeKeys: {
          "spec.template.spec.containers": "name",
          "spec.template.spec.volumes": "name",
          "status.conditions": "type",
        },
      };
    }),
  ];
}
