/**
 * Every taint key, annotation, label, event reason and well-known name that
 * ha-controller reads or writes, in one place.
 *
 * @module
 */

/** Program name, used as the Events' reportingController prefix and in logs. */
export const programName = "ha-controller";

/**
 * Events' `reportingController`: the upstream HA controller's, so alerts and
 * queries written for it keep matching.
 */
export const reportingController = "linstor.linbit.com/HighAvailabilityController";

/** The CSI driver whose volumes are DRBD resources. */
export const linstorCsiDriver = "linstor.csi.linbit.com";

/** Pods with this annotation (any value) are never evicted or deleted. */
export const ignoreFailOverAnnotation = "drbd.linbit.com/ignore-fail-over";

/**
 * Node annotation: `"true"` pauses every action of the agent on that node
 * (it keeps sampling, deciding and reporting). Annotate all nodes to pause
 * the whole cluster.
 */
export const pauseAnnotation = "drbd.linbit.com/ha-controller-paused";

/** Taint on a node that lost quorum (set by peers, or by the node itself). */
export const lostQuorumTaintKey = "drbd.linbit.com/lost-quorum";

/** Taint on a node that has a resource forcing I/O errors. */
export const forceIoErrorTaintKey = "drbd.linbit.com/force-io-error";

/**
 * Kubernetes' out-of-service taint (`--out-of-service-taint`): on a node
 * that is not Ready, the attach-detach controller detaches every volume at
 * once and the pod garbage collector deletes its terminating pods. Ours
 * carry {@linkcode outOfServiceTaintValue}, so the agent only ever removes
 * the ones it set.
 */
export const outOfServiceTaintKey = "node.kubernetes.io/out-of-service";

/** The value of the out-of-service taints the agent sets. */
export const outOfServiceTaintValue = "ha-controller";

/** The effect of both of our taints. */
export const taintEffect = "NoSchedule";

/** Event reasons (the upstream HA controller's, so existing alerts keep matching). */
export const eventReason = {
  nodeStorageQuorumLost: "NodeStorageQuorumLost",
  nodeStorageQuorumRegained: "NodeStorageQuorumRegained",
  volumeWithoutQuorum: "VolumeWithoutQuorum",
  volumeForcingIoErrors: "VolumeForcingIoErrors",
  noVolumeForcingIoErrors: "NoVolumeForcingIoErrors",
} as const;

/**
 * Event actions (events.k8s.io/v1 `action`), the upstream HA controller's:
 * an eviction and a force-delete are both `EvictedPod` (the note tells them
 * apart).
 */
export const eventAction = {
  taintedNode: "TaintedNode",
  untaintedNode: "UntaintedNode",
  evictedPod: "EvictedPod",
  volumeAttachmentDeleted: "VolumeAttachmentDeleted",
  forcedVolumeDemotion: "ForcedVolumeDemotion",
} as const;
