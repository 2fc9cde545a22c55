/**
 * Small readers of stored Kubernetes objects shared by the simulated
 * controllers: conditions, taints and tolerations, pod volumes, CSI names.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { KubeObject } from "../apiserver/objects.ts";
import { isRecord, pathList, pathRecord, pathString, pathValue } from "../apiserver/objects.ts";

/** The LINSTOR CSI driver: its volumes are DRBD resources. */
export const linstorDriver = "linstor.csi.linbit.com";

/** Taint keys the node lifecycle controller owns. */
export const taintKeys = {
  unreachable: "node.kubernetes.io/unreachable",
  notReady: "node.kubernetes.io/not-ready",
  unschedulable: "node.kubernetes.io/unschedulable",
  outOfService: "node.kubernetes.io/out-of-service",
} as const;

/** A node taint. */
export interface Taint {
  /** Taint key. */
  key: string;
  /** Taint value (may be empty). */
  value?: string;
  /** `NoSchedule`, `PreferNoSchedule` or `NoExecute`. */
  effect: string;
  /** When the taint was added (RFC 3339), set for controller taints. */
  timeAdded?: string;
}

/** A pod toleration. */
export interface Toleration {
  /** Key; empty with `Exists` tolerates every key. */
  key?: string;
  /** `Equal` (default) or `Exists`. */
  operator?: string;
  /** Value compared with `Equal`. */
  value?: string;
  /** Effect; empty tolerates every effect. */
  effect?: string;
  /** How long a NoExecute taint is tolerated; absent means forever. */
  tolerationSeconds?: number;
}

/** A condition of a pod or node. */
export interface Condition {
  /** Condition type, e.g. `Ready`. */
  type: string;
  /** `True`, `False` or `Unknown`. */
  status: string;
  /** Machine-readable reason. */
  reason?: string;
  /** Human-readable message. */
  message?: string;
  /** Last time the condition was probed (nodes). */
  lastHeartbeatTime?: string;
  /** Last probe time (pods). */
  lastProbeTime?: string | null;
  /** When the status last changed. */
  lastTransitionTime?: string;
}

/** Where an object lives. */
export interface Ref {
  /** Namespace, absent for cluster-scoped objects. */
  namespace?: string;
  /** Name. */
  name: string;
}

/** The conditions of an object's status. */
export function conditionsOf(obj: KubeObject): Condition[] {
  return pathList(obj, "status.conditions").filter(isRecord) as unknown as Condition[];
}

/** One condition by type, or undefined. */
export function conditionOf(obj: KubeObject, type: string): Condition | undefined {
  return conditionsOf(obj).find((c) => c.type === type);
}

/** Whether the node's Ready condition is True. */
export function isNodeReady(node: KubeObject): boolean {
  return conditionOf(node, "Ready")?.status === "True";
}

/** Whether the pod's Ready condition is True. */
export function isPodReady(pod: KubeObject): boolean {
  return conditionOf(pod, "Ready")?.status === "True";
}

/** The node's taints. */
export function taintsOf(node: KubeObject): Taint[] {
  return pathList(node, "spec.taints").filter(isRecord) as unknown as Taint[];
}

/** The pod's tolerations. */
export function tolerationsOf(pod: KubeObject): Toleration[] {
  return pathList(pod, "spec.tolerations").filter(isRecord) as unknown as Toleration[];
}

/** Whether `toleration` tolerates `taint` (the API's `ToleratesTaint` rule). */
export function tolerates(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect !== undefined && toleration.effect !== "") {
    if (toleration.effect !== taint.effect) return false;
  }
  const key = toleration.key ?? "";
  const operator = toleration.operator ?? "Equal";
  if (key === "") return operator === "Exists";
  if (key !== taint.key) return false;
  if (operator === "Exists") return true;
  return (toleration.value ?? "") === (taint.value ?? "");
}

/** Whether some toleration tolerates `taint`. */
export function isTolerated(tolerations: Toleration[], taint: Taint): boolean {
  return tolerations.some((t) => tolerates(t, taint));
}

/** Whether the pod has a deletionTimestamp. */
export function isTerminating(obj: KubeObject): boolean {
  return obj.metadata.deletionTimestamp !== undefined;
}

/** Whether the pod finished (phase Succeeded or Failed). */
export function isFinished(pod: KubeObject): boolean {
  const phase = pathString(pod, "status.phase");
  return phase === "Succeeded" || phase === "Failed";
}

/** `namespace/name` of an object. */
export function keyOf(obj: KubeObject): string {
  return `${obj.metadata.namespace ?? ""}/${obj.metadata.name ?? ""}`;
}

/** Claim names of the pod's PVC volumes, with the volume name. */
export function podClaims(pod: KubeObject): { volume: string; claim: string }[] {
  const out: { volume: string; claim: string }[] = [];
  for (const v of pathList(pod, "spec.volumes")) {
    if (!isRecord(v)) continue;
    const claim = pathString(v, "persistentVolumeClaim.claimName");
    if (claim !== "") out.push({ volume: String(v.name ?? ""), claim });
  }
  return out;
}

/** CSI source of a PV, or undefined for other PVs. */
export function csiSource(pv: KubeObject): { driver: string; volumeHandle: string } | undefined {
  const csi = pathRecord(pv, "spec.csi");
  const driver = typeof csi.driver === "string" ? csi.driver : "";
  const volumeHandle = typeof csi.volumeHandle === "string" ? csi.volumeHandle : "";
  if (driver === "" || volumeHandle === "") return undefined;
  return { driver, volumeHandle };
}

/** The DRBD resource of a LINSTOR PV (`<resource>` or `<resource>/<volume>` handle). */
export function drbdResourceOf(pv: KubeObject): string | undefined {
  const csi = csiSource(pv);
  if (csi === undefined || csi.driver !== linstorDriver) return undefined;
  const slash = csi.volumeHandle.indexOf("/");
  return slash === -1 ? csi.volumeHandle : csi.volumeHandle.slice(0, slash);
}

/** The volume name kubelets and the attach-detach controller use in node status. */
export function uniqueVolumeName(csi: { driver: string; volumeHandle: string }): string {
  return `kubernetes.io/csi/${csi.driver}^${csi.volumeHandle}`;
}

/** `csi-<sha256(volumeHandle + driver + node)>`, the VolumeAttachment name the CSI plugin uses. */
export function attachmentName(
  csi: { driver: string; volumeHandle: string },
  node: string,
): string {
  const hash = createHash("sha256").update(`${csi.volumeHandle}${csi.driver}${node}`);
  return `csi-${hash.digest("hex")}`;
}

/** `external-attacher/<driver with every char outside [a-zA-Z0-9-] as '-'>`. */
export function attacherFinalizer(driver: string): string {
  return `external-attacher/${driver.replace(/[^a-zA-Z0-9-]/g, "-")}`;
}

/** Whether a PV's access modes make it exclusive to one node (RWO, RWOP). */
export function isExclusive(pv: KubeObject): boolean {
  const modes = pathList(pv, "spec.accessModes");
  return modes.includes("ReadWriteOnce") || modes.includes("ReadWriteOncePod");
}

/** Whether node labels/name satisfy a `nodeSelectorTerm` list (any term must match). */
export function matchesNodeSelectorTerms(terms: unknown[], node: KubeObject): boolean {
  if (terms.length === 0) return false;
  return terms.some((term) => isRecord(term) && matchesTerm(term, node));
}

function matchesTerm(term: Record<string, unknown>, node: KubeObject): boolean {
  const labels = node.metadata.labels ?? {};
  const expressions = pathList(term, "matchExpressions").filter(isRecord);
  const fields = pathList(term, "matchFields").filter(isRecord);
  if (expressions.length === 0 && fields.length === 0) return false;
  for (const e of expressions) {
    if (!matchesRequirement(e, labels[String(e.key)], String(e.key) in labels)) return false;
  }
  for (const f of fields) {
    const value = f.key === "metadata.name" ? node.metadata.name : undefined;
    if (!matchesRequirement(f, value, value !== undefined)) return false;
  }
  return true;
}

function matchesRequirement(
  req: Record<string, unknown>,
  value: string | undefined,
  present: boolean,
): boolean {
  const values = Array.isArray(req.values) ? req.values.map(String) : [];
  switch (req.operator) {
    case "In":
      return present && values.includes(value!);
    case "NotIn":
      return !present || !values.includes(value!);
    case "Exists":
      return present;
    case "DoesNotExist":
      return !present;
    case "Gt":
      return present && Number(value) > Number(values[0]);
    case "Lt":
      return present && Number(value) < Number(values[0]);
    default:
      return false;
  }
}

/** Whether the pod's `nodeSelector` and required node affinity admit the node. */
export function podFitsNode(pod: KubeObject, node: KubeObject): boolean {
  const selector = pathRecord(pod, "spec.nodeSelector");
  const labels = node.metadata.labels ?? {};
  for (const [k, v] of Object.entries(selector)) {
    if (labels[k] !== v) return false;
  }
  const required = pathValue(
    pod,
    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
  );
  if (isRecord(required)) {
    return matchesNodeSelectorTerms(pathList(required, "nodeSelectorTerms"), node);
  }
  return true;
}

/** Whether the PV's `spec.nodeAffinity` admits the node (no affinity admits all). */
export function pvFitsNode(pv: KubeObject, node: KubeObject): boolean {
  const required = pathValue(pv, "spec.nodeAffinity.required");
  if (!isRecord(required)) return true;
  return matchesNodeSelectorTerms(pathList(required, "nodeSelectorTerms"), node);
}
