/**
 * Builders for Event targets and specs, and the two taints the rules manage.
 *
 * @module
 */

import type {
  ClaimRef,
  NodeInfo,
  PersistentVolumeInfo,
  Taint,
  VolumeAttachmentInfo,
} from "../kube/objects.ts";
import {
  forceIoErrorTaintKey,
  lostQuorumTaintKey,
  outOfServiceTaintKey,
  outOfServiceTaintValue,
  taintEffect,
} from "../names.ts";
import type { EventSpec, EventTarget, PodRef } from "./types.ts";

/** `drbd.linbit.com/lost-quorum:NoSchedule`. */
export const lostQuorumTaint: Taint = { key: lostQuorumTaintKey, effect: taintEffect };

/** `drbd.linbit.com/force-io-error:NoSchedule`. */
export const forceIoErrorTaint: Taint = { key: forceIoErrorTaintKey, effect: taintEffect };

/** `node.kubernetes.io/out-of-service=ha-controller:NoExecute` (opt-in). */
export const outOfServiceTaint: Taint = {
  key: outOfServiceTaintKey,
  value: outOfServiceTaintValue,
  effect: "NoExecute",
};

/** True when the node carries the out-of-service taint this agent sets (by its value). */
export function hasOwnOutOfServiceTaint(node: NodeInfo): boolean {
  return node.taints.some((t) =>
    t.key === outOfServiceTaint.key && t.effect === outOfServiceTaint.effect &&
    t.value === outOfServiceTaint.value
  );
}

/** True when the node carries a taint with the same key and effect. */
export function hasTaint(node: NodeInfo, taint: Taint): boolean {
  return node.taints.some((t) => t.key === taint.key && t.effect === taint.effect);
}

/** Event target for a Node. */
export function nodeTarget(node: NodeInfo): EventTarget {
  return { kind: "Node", apiVersion: "v1", namespace: undefined, name: node.name, uid: node.uid };
}

/** Event target for a Pod. */
export function podTarget(pod: PodRef): EventTarget {
  return {
    kind: "Pod",
    apiVersion: "v1",
    namespace: pod.namespace,
    name: pod.name,
    uid: pod.uid,
  };
}

/** Event target for a VolumeAttachment. */
export function volumeAttachmentTarget(va: VolumeAttachmentInfo): EventTarget {
  return {
    kind: "VolumeAttachment",
    apiVersion: "storage.k8s.io/v1",
    namespace: undefined,
    name: va.name,
    uid: va.uid,
  };
}

/** Event target for a PersistentVolume. */
export function persistentVolumeTarget(pv: PersistentVolumeInfo): EventTarget {
  return {
    kind: "PersistentVolume",
    apiVersion: "v1",
    namespace: undefined,
    name: pv.name,
    uid: pv.uid,
  };
}

/** Event target for a PersistentVolumeClaim, from a PV's claimRef. */
export function claimTarget(claim: ClaimRef): EventTarget {
  return {
    kind: "PersistentVolumeClaim",
    apiVersion: "v1",
    namespace: claim.namespace,
    name: claim.name,
    uid: claim.uid,
  };
}

/** What an event says, and the object it relates `regarding` to (if any). */
export interface EventWhat {
  /** See {@linkcode EventSpec}. */
  reason: string;
  /** See {@linkcode EventSpec}. */
  action: string;
  /** See {@linkcode EventSpec}. */
  note: string;
  /** See {@linkcode EventSpec}. */
  related?: EventTarget;
  /** See {@linkcode EventSpec}. */
  seriesKey?: string;
}

/** A Warning event about `regarding`. */
export function warningEvent(
  regarding: EventTarget,
  what: EventWhat,
): EventSpec {
  return { regarding, type: "Warning", ...what };
}

/** A Normal event about `regarding`. */
export function normalEvent(
  regarding: EventTarget,
  what: EventWhat,
): EventSpec {
  return { regarding, type: "Normal", ...what };
}
