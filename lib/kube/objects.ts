/**
 * Slim Kubernetes objects: only the fields the rules read.
 *
 * The caches convert every API object with the `slim*` functions below as
 * soon as it arrives, so memory does not grow with fields nobody reads. The
 * converters never throw: an object missing required fields (no name, no
 * uid) yields `undefined` and is skipped by the caller with a log line.
 *
 * @module
 */

import type {
  V1Node,
  V1PersistentVolume,
  V1Pod,
  V1Taint,
  V1VolumeAttachment,
} from "@kubernetes/client-node";
import { ignoreFailOverAnnotation, linstorCsiDriver, pauseAnnotation } from "../names.ts";

/** A node taint. */
export interface Taint {
  /** Taint key. */
  key: string;
  /** Taint value, may be absent. */
  value?: string;
  /** `NoSchedule`, `PreferNoSchedule` or `NoExecute`. */
  effect: string;
  /** RFC 3339 time the taint was added (NoExecute only on real servers). */
  timeAdded?: string;
}

/** A Node as the rules see it. */
export interface NodeInfo {
  /** Node name. */
  name: string;
  /** Node UID. */
  uid: string;
  /** resourceVersion, for optimistic updates of the taint list. */
  resourceVersion: string;
  /** Ready condition is `True`. */
  ready: boolean;
  /** All taints, in server order. */
  taints: Taint[];
  /** The operator set the pause annotation: take no action from this node. */
  actionsPaused: boolean;
}

/** How a pod uses one volume, reduced to what the safety check needs. */
export type PodVolume =
  | { kind: "pvc"; name: string; claimName: string; readOnly: boolean }
  | {
    kind:
      | "configMap"
      | "secret"
      | "downwardAPI"
      | "projected"
      | "emptyDir"
      | "ephemeral"
      | "csi";
    name: string;
  }
  | { kind: "other"; name: string; type: string };

/** A Pod as the rules see it. */
export interface PodInfo {
  /** Namespace. */
  namespace: string;
  /** Name. */
  name: string;
  /** UID, used as a precondition on every write. */
  uid: string;
  /** Node the pod is bound to, "" if unscheduled. */
  nodeName: string;
  /** `status.phase`, e.g. `Running`, `Pending`. */
  phase: string;
  /** Set once deletion was requested (the pod is Terminating). */
  deletionTimestamp: string | undefined;
  /**
   * The kubelet reports a container of the pod running, init containers
   * included (a `Pending` pod runs its init containers).
   */
  containerRunning: boolean;
  /**
   * The kubelet's `PodReadyToStartContainers` condition (`PodHasNetwork`
   * before 1.29): true once the sandbox exists, which the kubelet creates
   * only after the pod's volumes are mounted; undefined when not reported.
   */
  sandboxReady: boolean | undefined;
  /** The pod has at least one owner reference (a controller will recreate it). */
  hasOwner: boolean;
  /** The pod carries the ignore-fail-over annotation. */
  ignoreFailOver: boolean;
  /** Volumes by kind. */
  volumes: PodVolume[];
}

/**
 * A LINSTOR satellite pod as the rules see it: which node runs the
 * satellite a DRBD connection is named after (see `nodeOfConnection`).
 */
export interface SatellitePodInfo {
  /** Namespace. */
  namespace: string;
  /** Name, which DRBD connection names may carry. */
  name: string;
  /** Node the pod is bound to, "" if unscheduled. */
  nodeName: string;
}

/** Reference from a PV to its claim. */
export interface ClaimRef {
  /** PVC namespace. */
  namespace: string;
  /** PVC name. */
  name: string;
  /** PVC UID, when the binder set it. */
  uid: string | undefined;
}

/** A PersistentVolume as the rules see it. */
export interface PersistentVolumeInfo {
  /** PV name. */
  name: string;
  /** PV UID. */
  uid: string;
  /** CSI driver name, undefined for non-CSI volumes. */
  csiDriver: string | undefined;
  /** CSI volume handle. */
  volumeHandle: string | undefined;
  /** The claim from `spec.claimRef`, undefined if there is none or it is of another kind. */
  claimRef: ClaimRef | undefined;
  /**
   * `status.phase` (`Bound`, `Released`, `Available`, ...), "" when not
   * reported. A Released PV keeps the claimRef of its deleted claim, so only
   * a `Bound` PV's claimRef names the claim that uses it now.
   */
  phase: string;
  /** Never set: tells a full PV from a {@linkcode ClaimOnlyVolume}. */
  claimOnly?: undefined;
}

/**
 * A PV of no local DRBD resource that is Bound to a claim, held only for
 * what the rules ask of every claim a pod mounts: is it Bound to exactly one
 * PV, on which driver. See {@linkcode claimOnlyVolume}.
 */
export interface ClaimOnlyVolume {
  /** PV name. */
  name: string;
  /** CSI driver name, undefined for non-CSI volumes. */
  csiDriver: string | undefined;
  /** The claim it is Bound to, as {@linkcode claimId} keys it. */
  claim: string;
  /** Always true. */
  claimOnly: true;
}

/** A PV as the PV cache holds it: in full, or claim-only. */
export type HeldVolume = PersistentVolumeInfo | ClaimOnlyVolume;

/** Map key of a claim (namespace, name); not for display. */
export function claimId(namespace: string, name: string): string {
  return `${namespace}\u0000${name}`;
}

/** A VolumeAttachment as the rules see it. */
export interface VolumeAttachmentInfo {
  /** Name. */
  name: string;
  /** UID, used as a delete precondition. */
  uid: string;
  /** Node the volume is attached to. */
  nodeName: string;
  /** `spec.source.persistentVolumeName`, undefined for inline volumes. */
  persistentVolumeName: string | undefined;
  /** CSI driver that attaches it. */
  attacher: string;
  /** Deletion was requested (a finalizer holds it until the attacher detaches). */
  deleting: boolean;
}

/**
 * Values that repeat across many objects (driver and attacher names,
 * phases, node names, namespaces) are kept once: JSON.parse makes a new
 * string for every occurrence, and 10,000 PersistentVolumes would otherwise
 * hold 10,000 copies of `linstor.csi.linbit.com`. The table is bounded; when
 * full it starts over (values then merely stop being shared).
 */
const shared = new Map<string, string>();
const sharedLimit = 20_000;

/** The one kept copy of a value that repeats across objects. */
function share<S extends string | undefined>(value: S): S {
  if (value === undefined) return value;
  const known = shared.get(value);
  if (known !== undefined) return known as S;
  if (shared.size >= sharedLimit) shared.clear();
  shared.set(value, value);
  return value;
}

/** Convert a Node; undefined if it lacks a name or uid. */
export function slimNode(node: V1Node): NodeInfo | undefined {
  const name = node.metadata?.name;
  const uid = node.metadata?.uid;
  if (!name || !uid) return undefined;
  const ready = (node.status?.conditions ?? []).some((c) =>
    c.type === "Ready" && c.status === "True"
  );
  return {
    name,
    uid,
    resourceVersion: node.metadata?.resourceVersion ?? "",
    ready,
    taints: (node.spec?.taints ?? []).map(slimTaint),
    actionsPaused: isTrue(node.metadata?.annotations?.[pauseAnnotation]),
  };
}

function isTrue(value: string | undefined): boolean {
  return value !== undefined && value.toLowerCase() === "true";
}

function slimTaint(taint: V1Taint): Taint {
  const out: Taint = { key: taint.key, effect: taint.effect };
  if (taint.value !== undefined) out.value = taint.value;
  if (taint.timeAdded !== undefined) out.timeAdded = String(taint.timeAdded);
  return out;
}

/** Convert a Pod; undefined if it lacks namespace, name or uid. */
export function slimPod(pod: V1Pod): PodInfo | undefined {
  const meta = pod.metadata;
  if (!meta?.name || !meta.uid || !meta.namespace) return undefined;
  const volumes: PodVolume[] = [];
  for (const v of pod.spec?.volumes ?? []) {
    volumes.push(slimPodVolume(v as unknown as Record<string, unknown>));
  }
  return {
    namespace: share(meta.namespace),
    name: meta.name,
    uid: meta.uid,
    nodeName: share(pod.spec?.nodeName ?? ""),
    phase: share(pod.status?.phase ?? ""),
    deletionTimestamp: meta.deletionTimestamp ? String(meta.deletionTimestamp) : undefined,
    containerRunning: anyRunning(pod.status?.initContainerStatuses) ||
      anyRunning(pod.status?.containerStatuses),
    sandboxReady: sandboxReadyOf(pod.status?.conditions),
    hasOwner: (meta.ownerReferences ?? []).length > 0,
    ignoreFailOver: meta.annotations?.[ignoreFailOverAnnotation] !== undefined,
    volumes,
  };
}

/** Convert a satellite Pod; undefined if it lacks namespace or name. */
export function slimSatellitePod(pod: V1Pod): SatellitePodInfo | undefined {
  const meta = pod.metadata;
  if (!meta?.name || !meta.namespace) return undefined;
  return {
    namespace: share(meta.namespace),
    name: meta.name,
    nodeName: share(pod.spec?.nodeName ?? ""),
  };
}

function sandboxReadyOf(conditions: { type?: string; status?: string }[] | undefined) {
  const found = (conditions ?? []).find((c) =>
    c?.type === "PodReadyToStartContainers" || c?.type === "PodHasNetwork"
  );
  return found === undefined ? undefined : found.status === "True";
}

function anyRunning(statuses: { state?: { running?: unknown } }[] | undefined): boolean {
  return Array.isArray(statuses) &&
    statuses.some((c) => c?.state?.running !== undefined && c.state.running !== null);
}

const simpleVolumeKinds = [
  "configMap",
  "secret",
  "downwardAPI",
  "projected",
  "emptyDir",
  "ephemeral",
  "csi",
] as const;

function slimPodVolume(v: Record<string, unknown>): PodVolume {
  const name = typeof v.name === "string" ? v.name : "";
  const pvc = v.persistentVolumeClaim as { claimName?: unknown; readOnly?: unknown } | undefined;
  if (pvc && typeof pvc.claimName === "string") {
    return { kind: "pvc", name, claimName: pvc.claimName, readOnly: pvc.readOnly === true };
  }
  for (const kind of simpleVolumeKinds) {
    if (v[kind] !== undefined && v[kind] !== null) return { kind, name };
  }
  const type = Object.keys(v).find((k) => k !== "name") ?? "unknown";
  return { kind: "other", name, type };
}

/** Convert a PersistentVolume; undefined if it lacks a name or uid. */
export function slimPersistentVolume(pv: V1PersistentVolume): PersistentVolumeInfo | undefined {
  const name = pv.metadata?.name;
  const uid = pv.metadata?.uid;
  if (!name || !uid) return undefined;
  const ref = pv.spec?.claimRef;
  // A claimRef names a PVC when its kind is PersistentVolumeClaim, or when
  // kind and apiVersion are both empty (older binders left them out).
  const refIsClaim = ref !== undefined && ref.name !== undefined && ref.namespace !== undefined &&
    (ref.kind === "PersistentVolumeClaim" || (!ref.kind && !ref.apiVersion));
  const handle = pv.spec?.csi?.volumeHandle;
  return {
    name,
    uid,
    csiDriver: share(pv.spec?.csi?.driver),
    // Usually the PV's own name (LINSTOR names the resource after the PV).
    volumeHandle: handle === name ? name : handle,
    claimRef: refIsClaim
      ? { namespace: share(ref!.namespace!), name: ref!.name!, uid: ref!.uid || undefined }
      : undefined,
    phase: share(pv.status?.phase ?? ""),
  };
}

/**
 * The part of a PV the rules read for a claim whose volume has no DRBD
 * resource on this node: whether it is Bound, to which claim, on which
 * driver (a pod is failed over only when every claim it mounts is on
 * LINSTOR and Bound to exactly one PV). Undefined when it is not Bound to a
 * claim: such a PV answers nothing the rules ask. Most of a large cluster's
 * PVs are held like this: three fields, the claim as one string that the
 * rules' index by claim uses as its key as well.
 */
export function claimOnlyVolume(pv: PersistentVolumeInfo): ClaimOnlyVolume | undefined {
  if (pv.phase !== "Bound" || pv.claimRef === undefined) return undefined;
  return {
    name: pv.name,
    csiDriver: pv.csiDriver,
    claim: claimId(pv.claimRef.namespace, pv.claimRef.name),
    claimOnly: true,
  };
}

/** Convert a VolumeAttachment; undefined if it lacks a name, uid or node. */
export function slimVolumeAttachment(
  va: V1VolumeAttachment,
): VolumeAttachmentInfo | undefined {
  const name = va.metadata?.name;
  const uid = va.metadata?.uid;
  const nodeName = va.spec?.nodeName;
  if (!name || !uid || !nodeName) return undefined;
  return {
    name,
    uid,
    nodeName: share(nodeName),
    persistentVolumeName: va.spec?.source?.persistentVolumeName,
    attacher: share(va.spec?.attacher ?? ""),
    deleting: va.metadata?.deletionTimestamp !== undefined &&
      va.metadata.deletionTimestamp !== null,
  };
}

/**
 * The DRBD resource a PV is backed by, or undefined when the PV is not a
 * LINSTOR CSI volume. The volume handle is the resource name, or
 * `<resource>/<volume>` for multi-volume resources.
 */
export function drbdResourceOfVolume(pv: PersistentVolumeInfo): string | undefined {
  if (pv.csiDriver !== linstorCsiDriver || !pv.volumeHandle) return undefined;
  const slash = pv.volumeHandle.indexOf("/");
  return slash === -1 ? pv.volumeHandle : pv.volumeHandle.slice(0, slash);
}
