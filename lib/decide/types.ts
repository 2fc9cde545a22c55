/**
 * What the rules read (a snapshot plus memory) and what they return (a plan).
 *
 * The rules are pure: `decide(snapshot, memory, options, now)` never does
 * I/O. The loop fills the snapshot from the DRBD sampler and the Kubernetes
 * caches, carries out (or prints) the plan, and records what it did in the
 * memory for the next cycle.
 *
 * @module
 */

import type { DrbdSample } from "../drbd/model.ts";
import type {
  HeldVolume,
  NodeInfo,
  PodInfo,
  SatellitePodInfo,
  Taint,
  VolumeAttachmentInfo,
} from "../kube/objects.ts";

/** What was fetched on demand about a peer node that DRBD lost. */
export type PeerView =
  /**
   * The Node (null: it does not exist), all pods bound to it, and its
   * kubelet's Lease in kube-node-lease (null: none, e.g. an old cluster).
   */
  | { ok: true; node: NodeInfo | null; pods: PodInfo[]; kubeletLease: KubeletLease | null }
  /** Fetching failed: the rules must not act on this peer. */
  | { ok: false; error: string };

/** A kubelet's heartbeat: its node Lease. */
export interface KubeletLease {
  /** `spec.renewTime` in ms since the epoch. */
  renewTime: number;
  /** `spec.leaseDurationSeconds`; the kubelet renews every quarter of it. */
  durationSeconds: number;
  /**
   * How old the renewal was when the Lease was read, by the API server's
   * clock (its `Date` header); this node's clock only when the server sent
   * no date. Negative for a renewTime in the future.
   */
  ageAtRead: number;
  /** When the Lease was read, by this node's clock. */
  readAt: number;
}

/** Everything the rules may read in one cycle. */
export interface Snapshot {
  /** Name of the node the agent runs on. */
  nodeName: string;
  /** DRBD state of this node. */
  drbd: DrbdSample;
  /** This node's Node object; undefined when it is not known (yet). */
  ownNode: NodeInfo | undefined;
  /** Pods bound to this node. */
  localPods: readonly PodInfo[];
  /** LINSTOR satellite pods (any node). */
  satellitePods: readonly SatellitePodInfo[];
  /**
   * The PVs of this node's DRBD resources in full, and every other PV Bound
   * to a claim claim-only (see `ClaimOnlyVolume`).
   */
  persistentVolumes: readonly HeldVolume[];
  /** LINSTOR VolumeAttachments of the PVs of this node's DRBD resources. */
  volumeAttachments: readonly VolumeAttachmentInfo[];
  /** Peer nodes fetched on demand, by Kubernetes node name (see `peersToInspect`). */
  peers: Map<string, PeerView>;
  /** Every cache has listed at least once and is watching. */
  cachesSynced: boolean;
}

/** State the rules keep between cycles (timers and loop protection). */
export interface Memory {
  /** When a fail-over condition was first seen, keyed by `failOverKey(resource, node)`. */
  failOverSince: Map<string, number>;
  /** When a resource (with a quorum policy) was first seen lacking quorum. */
  quorumLostSince: Map<string, number>;
  /** When a local Primary was first seen suspended for quorum, no-data or fencing. */
  suspendedSince: Map<string, number>;
  /** When a destructive action was last issued, keyed by `actionKey(action)`. */
  actedAt: Map<string, number>;
  /** Fail-overs started per resource, for exponential backoff. */
  failOvers: Map<string, { count: number; lastAt: number }>;
}

/** A fresh, empty memory. */
export function emptyMemory(): Memory {
  return {
    failOverSince: new Map(),
    quorumLostSince: new Map(),
    suspendedSince: new Map(),
    actedAt: new Map(),
    failOvers: new Map(),
  };
}

/** The object an Event is about. */
export interface EventTarget {
  /** Kind, e.g. `Node`, `Pod`, `PersistentVolume`. */
  kind: string;
  /** API version of the kind, e.g. `v1`, `storage.k8s.io/v1`. */
  apiVersion: string;
  /** Namespace; undefined for cluster-scoped objects. */
  namespace: string | undefined;
  /** Name. */
  name: string;
  /** UID, when known. */
  uid: string | undefined;
}

/** An Event to record once the action it belongs to succeeded. */
export interface EventSpec {
  /** What the event is about. */
  regarding: EventTarget;
  /**
   * A second object involved (events.k8s.io/v1 `related`), as the upstream
   * HA controller sets it: the VolumeAttachment of a tainted node or of a
   * demoted volume, the PersistentVolume of a removed pod.
   */
  related?: EventTarget;
  /** `Normal` or `Warning`. */
  type: "Normal" | "Warning";
  /** Machine-readable reason (see `eventReason` in lib/names.ts). */
  reason: string;
  /** What was done (see `eventAction` in lib/names.ts). */
  action: string;
  /** Human-readable explanation. */
  note: string;
  /**
   * Tells apart, for EventSeries, Events that are otherwise alike (not sent):
   * the taint key of a taint or untaint Event.
   */
  seriesKey?: string;
}

/** Reference to a namespaced object, with its UID for preconditions. */
export interface PodRef {
  /** Namespace. */
  namespace: string;
  /** Name. */
  name: string;
  /** UID. */
  uid: string;
}

/** Fields every action has. */
interface ActionBase {
  /** Why, in one sentence a human can act on. */
  reason: string;
  /** DRBD resource the action is for; undefined for node-wide actions. */
  resource: string | undefined;
  /** Events to record after the action succeeded. */
  events: EventSpec[];
  /** For fail-over actions: the lost node they fail over (measures reaction time). */
  peer?: string;
}

/** Add a taint to a node, keeping every other taint. */
export interface TaintNodeAction extends ActionBase {
  /** Discriminator. */
  kind: "taint-node";
  /** Node name. */
  node: string;
  /** The taint to add (key + effect identify it). */
  taint: Taint;
}

/** Remove our taint from a node, keeping every other taint. */
export interface UntaintNodeAction extends ActionBase {
  /** Discriminator. */
  kind: "untaint-node";
  /** Node name. */
  node: string;
  /** The taint to remove (key + effect identify it). */
  taint: Taint;
}

/** Evict a pod through policy/v1 eviction (honours PodDisruptionBudgets). */
export interface EvictPodAction extends ActionBase {
  /** Discriminator. */
  kind: "evict-pod";
  /** The pod. */
  pod: PodRef;
  /** Grace period for the eviction's delete. */
  gracePeriodSeconds: number;
}

/** Delete a pod with grace period 0 and a UID precondition. */
export interface ForceDeletePodAction extends ActionBase {
  /** Discriminator. */
  kind: "force-delete-pod";
  /** The pod. */
  pod: PodRef;
}

/** Delete a VolumeAttachment with a UID precondition (force detach). */
export interface DeleteVolumeAttachmentAction extends ActionBase {
  /** Discriminator. */
  kind: "delete-volume-attachment";
  /** VolumeAttachment name. */
  name: string;
  /** VolumeAttachment UID. */
  uid: string;
  /** 0 when the node is not Ready; undefined for the server default. */
  gracePeriodSeconds: number | undefined;
}

/** `drbdsetup secondary --force <resource>`. */
export interface ForceDemoteAction extends ActionBase {
  /** Discriminator. */
  kind: "force-demote";
  /** The DRBD resource to demote (always set, unlike node-wide actions). */
  resource: string;
}

/** One step of a plan. */
export type Action =
  | TaintNodeAction
  | UntaintNodeAction
  | EvictPodAction
  | ForceDeletePodAction
  | DeleteVolumeAttachmentAction
  | ForceDemoteAction;

/** What the rules concluded about one resource, for `status` and logs. */
export interface ResourceVerdict {
  /** DRBD resource name. */
  resource: string;
  /** PV backed by this resource, if any. */
  persistentVolume: string | undefined;
  /** `namespace/name` of the claim, if any. */
  claim: string | undefined;
  /** `namespace/name` of pods using the claim (any node known to the agent). */
  consumers: string[];
  /** One line: what the agent does or waits for, and why. */
  decision: string;
}

/** The output of one decision cycle. */
export interface Decision {
  /** Actions to carry out now; run concurrently. */
  plan: Action[];
  /** Memory for the next cycle. */
  memory: Memory;
  /** Per-resource verdicts. */
  verdicts: ResourceVerdict[];
  /** When the agent did nothing on purpose for a node-wide reason (stale data, pause). */
  heldBack: string | undefined;
  /** Stable codes of those reasons, for metrics (e.g. `caches-not-synced`, `paused`). */
  heldBackCodes: string[];
  /** When the earliest running timer matures (ms since epoch): decide again then. */
  wakeAt: number | undefined;
}

/** Key under which `Memory.failOverSince` stores a resource/peer pair. */
export function failOverKey(resource: string, node: string): string {
  return `${resource}/${node}`;
}

/**
 * Key under which `Memory.actedAt` stores an action: its kind plus the UID or
 * identity of its target, so the same action on a replaced object (new UID)
 * is not suppressed.
 */
export function actionKey(action: Action): string {
  switch (action.kind) {
    case "taint-node":
    case "untaint-node":
      return `${action.kind}/${action.node}/${action.taint.key}`;
    case "evict-pod":
    case "force-delete-pod":
      return `${action.kind}/${action.pod.uid}`;
    case "delete-volume-attachment":
      return `${action.kind}/${action.uid}`;
    case "force-demote":
      return `${action.kind}/${action.resource}`;
  }
}

/** One line describing an action, as printed in dry-run, logged and shown by `status`. */
export function describeAction(action: Action): string {
  switch (action.kind) {
    case "taint-node":
      return `taint node ${action.node} ${action.taint.key}:${action.taint.effect}`;
    case "untaint-node":
      return `remove taint ${action.taint.key}:${action.taint.effect} from node ${action.node}`;
    case "evict-pod":
      return `evict pod ${action.pod.namespace}/${action.pod.name} (uid ${action.pod.uid}, grace ${action.gracePeriodSeconds}s)`;
    case "force-delete-pod":
      return `force-delete pod ${action.pod.namespace}/${action.pod.name} (uid ${action.pod.uid}, grace 0s)`;
    case "delete-volume-attachment":
      return `delete volumeattachment ${action.name} (uid ${action.uid}${
        action.gracePeriodSeconds === undefined ? "" : `, grace ${action.gracePeriodSeconds}s`
      })`;
    case "force-demote":
      return `drbdsetup secondary --force ${action.resource}`;
  }
}
