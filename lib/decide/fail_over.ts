/**
 * Fail-over: this node may promote a resource, but Kubernetes still uses its
 * volume on a peer that DRBD lost. After `failOverTimeout` (longer after
 * repeated fail-overs, see `failOverDelay`) the peer is tainted, its pods
 * using the volume are evicted (or force-deleted when the node is not
 * Ready) and the VolumeAttachment there is deleted, so the workload can start
 * on a node with quorum.
 *
 * @module
 */

import { type DrbdConnection, type DrbdResource, hasQuorumPolicy } from "../drbd/model.ts";
import type {
  NodeInfo,
  PersistentVolumeInfo,
  PodInfo,
  VolumeAttachmentInfo,
} from "../kube/objects.ts";
import { formatDuration } from "../duration.ts";
import { eventAction, eventReason, linstorCsiDriver, pauseAnnotation } from "../names.ts";
import {
  formatElapsed,
  keepTimer,
  nothing,
  type RuleContext,
  type RuleOutcome,
  runTimer,
} from "./context.ts";
import {
  hasTaint,
  lostQuorumTaint,
  nodeTarget,
  outOfServiceTaint,
  persistentVolumeTarget,
  podTarget,
  volumeAttachmentTarget,
  warningEvent,
} from "./events.ts";
import { failOverDelay, failOverStaggerMs } from "./protection.ts";
import {
  type Action,
  failOverKey,
  type KubeletLease,
  type PodRef,
  type Snapshot,
} from "./types.ts";
import {
  attachmentsByVolume,
  claimsOf,
  knownConsumers,
  nodeOfConnection,
  podIsTerminal,
  podKey,
  podUsesAnyClaim,
  podUsesClaimsReadOnly,
  type ResourceView,
  unsafeVolumes,
} from "./volumes.ts";

/** A peer node DRBD lost: no connection that maps to it is Connected. */
export interface LostPeer {
  /** The first of its connections (none is Connected). */
  connection: DrbdConnection;
  /** Kubernetes node name (see `nodeOfConnection`). */
  node: string;
}

/** A peer node whose state is unknown because a connection name is ambiguous. */
export interface UnknownPeer {
  /** Kubernetes node name (a candidate of the ambiguous connection). */
  node: string;
  /** Why it is unknown, for the verdict. */
  note: string;
}

/** The peers of a resource that DRBD lost, and those it cannot tell. */
export interface PeerNodes {
  /** Lost peers, one per Kubernetes node other than ours. */
  lost: LostPeer[];
  /** Peers that may be lost, but a connection's node is unknown: never acted on. */
  unknown: UnknownPeer[];
}

/**
 * Whether the fail-over rule applies to a resource at all: it has a PV with
 * a claim (every claimRef of its PVs counts, see `bindingsOfResource`), a
 * quorum policy, and this node may promote it. `note` says why not, when
 * that is worth showing (a resource that is simply Primary here or elsewhere
 * is not).
 */
export function failOverApplies(
  view: ResourceView,
): { applies: true } | { applies: false; note: string | undefined } {
  if (view.bindings.length === 0) return { applies: false, note: "no PV for this resource" };
  const ignored = view.bindings.filter((b) => b.claimIgnored !== undefined);
  if (ignored.length > 0) {
    const why = ignored.map((b) => `PV ${b.persistentVolume.name} ${b.claimIgnored}`);
    return { applies: false, note: `${why.join("; ")}: fail-over disabled` };
  }
  if (claimsOf(view).length === 0) {
    const names = view.bindings.map((b) => b.persistentVolume.name).join(", ");
    return { applies: false, note: `PV ${names} has no claim: fail-over disabled` };
  }
  if (!failOverAllowedByDrbd(view.resource)) {
    if (!hasQuorumPolicy(view.resource)) {
      return { applies: false, note: "no quorum policy: fail-over disabled" };
    }
    return { applies: false, note: undefined };
  }
  return { applies: true };
}

/** The DRBD side of `failOverApplies`: a quorum policy, and this node may promote. */
export function failOverAllowedByDrbd(resource: DrbdResource): boolean {
  return hasQuorumPolicy(resource) && resource.mayPromote === true;
}

/**
 * The resource's peers by Kubernetes node: every connection is mapped to its
 * node first, and a node is lost only when no connection that maps to it is
 * Connected. A node that an ambiguous connection name may map to (several
 * satellite pods with that name) is unknown unless a connection that surely
 * maps to it is Connected, or every connection that may map to it is. Nodes
 * in the order of their first connection; this node is never a peer.
 */
export function peerNodes(
  resource: DrbdResource,
  snapshot: Pick<Snapshot, "nodeName" | "satellitePods">,
): PeerNodes {
  const surely = new Map<string, DrbdConnection[]>();
  const maybe = new Map<string, DrbdConnection[]>();
  for (const connection of resource.connections) {
    const mapped = nodeOfConnection(connection.name, snapshot.satellitePods);
    if (mapped.known) {
      append(surely, mapped.node, connection);
    } else {
      for (const node of mapped.candidates) append(maybe, node, connection);
    }
  }
  const peers: PeerNodes = { lost: [], unknown: [] };
  const nodes = new Set([...surely.keys(), ...maybe.keys()]);
  for (const node of nodes) {
    if (node === snapshot.nodeName) continue;
    const sure = surely.get(node) ?? [];
    const unsure = maybe.get(node) ?? [];
    if (sure.some(isConnected)) continue;
    if (unsure.length === 0) {
      peers.lost.push({ connection: sure[0], node });
    } else if (![...sure, ...unsure].every(isConnected)) {
      const names = [...new Set(unsure.map((c) => c.name))].join(", ");
      peers.unknown.push({
        node,
        note: `peer ${node}: several satellite pods are named ${names}, ` +
          "so the node behind that connection is unknown: no action",
      });
    }
  }
  return peers;
}

/**
 * How many other agents go first when this node's agent fails a lost peer
 * of `resource` over: the peers still Connected to this node (they see the
 * same loss and may act on it), by node name, that sort before this node.
 * Each waits `failOverStaggerMs` per agent before it, then decides again on
 * what the earlier ones did. A peer whose agent does not act only delays
 * the later ones by that much.
 */
export function failOverRank(
  resource: DrbdResource,
  snapshot: Pick<Snapshot, "nodeName" | "satellitePods">,
): number {
  const before = new Set<string>();
  for (const connection of resource.connections) {
    if (!isConnected(connection)) continue;
    const mapped = nodeOfConnection(connection.name, snapshot.satellitePods);
    if (mapped.known && mapped.node !== snapshot.nodeName && mapped.node < snapshot.nodeName) {
      before.add(mapped.node);
    }
  }
  return before.size;
}

function isConnected(connection: DrbdConnection): boolean {
  return connection.connectionState === "Connected";
}

function append<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Judge one resource: wait, fail over its lost peers, or say why not. */
export function failOver(view: ResourceView, ctx: RuleContext): RuleOutcome {
  const peers = peerNodes(view.resource, ctx.snapshot);
  // While the Kubernetes side is untrusted, only DRBD decides which timers
  // survive: a timer runs on while DRBD still shows its peer lost (or
  // unknown), and is dropped once DRBD shows it Connected.
  if (!ctx.trusted && failOverAllowedByDrbd(view.resource)) {
    for (const peer of [...peers.lost, ...peers.unknown]) {
      keepTimer(ctx, failOverTimer(view.resource.name, peer.node));
    }
  }
  const gate = failOverApplies(view);
  if (!gate.applies) {
    if (gate.note) return noted(gate.note);
    // Not a candidate because of its role: still show lost peers in the verdict.
    const why = view.resource.role === "Primary"
      ? "this node is Primary"
      : "this node may not promote";
    return {
      actions: [],
      notes: peers.lost.map((p) => `peer ${p.node}: ${p.connection.connectionState} (${why})`),
    };
  }
  const claims = claimsOf(view);
  const consumers = knownConsumers(claims, ctx.snapshot, ctx.index);
  if (consumers.length > 0 && consumers.every((p) => podUsesClaimsReadOnly(p, claims))) {
    return {
      actions: [],
      notes: ["all consumers mount the volume read-only: fail-over not needed"],
    };
  }
  const outcome = nothing();
  for (const peer of peers.lost) {
    const judged = judgePeer(view, { peer, ctx });
    outcome.actions.push(...judged.actions);
    outcome.notes.push(...judged.notes);
  }
  for (const peer of peers.unknown) {
    keepTimer(ctx, failOverTimer(view.resource.name, peer.node));
    outcome.notes.push(peer.note);
  }
  return outcome;
}

function failOverTimer(resource: string, node: string) {
  return { name: "failOverSince", key: failOverKey(resource, node) } as const;
}

function judgePeer(
  view: ResourceView,
  { peer, ctx }: { peer: LostPeer; ctx: RuleContext },
): RuleOutcome {
  const resource = view.resource.name;
  const timer = failOverTimer(resource, peer.node);
  const state = peer.connection.connectionState;
  const fetched = ctx.snapshot.peers.get(peer.node);
  if (fetched === undefined) {
    keepTimer(ctx, timer);
    return noted(`peer ${peer.node}: ${state}, node and pods not fetched`);
  }
  if (!fetched.ok) {
    keepTimer(ctx, timer);
    return noted(`peer ${peer.node}: could not fetch pods: ${fetched.error}`);
  }
  if (fetched.node === null) {
    return noted(`peer ${peer.node}: ${state}, node does not exist: nothing to fail over`);
  }
  const node = fetched.node;
  const claims = claimsOf(view);
  const volumes = new Set(view.bindings.map((b) => b.persistentVolume.name));
  const podsThere = fetched.pods.filter((p) =>
    p.nodeName === node.name && podUsesAnyClaim(p, claims) && !podIsTerminal(p)
  );
  const running = podsThere.filter((p) => p.phase === "Running");
  const byVolume = attachmentsByVolume(ctx.snapshot.volumeAttachments);
  const attachments = [...volumes].flatMap((volume) => byVolume.get(volume) ?? [])
    .filter((va) => va.attacher === linstorCsiDriver && va.nodeName === node.name);
  const kubelet = kubeletState(node, fetched.kubeletLease, ctx.now);
  // A pod Pending on a dead node never starts: it counts as the volume's
  // use there, so it is failed over too (see podExemption for live nodes).
  const stuck = kubelet.responsive ? [] : podsThere.filter((p) => p.phase === "Pending");
  if (running.length === 0 && attachments.length === 0 && stuck.length === 0) {
    return noted(`peer ${node.name}: ${state}, volume not in use there`);
  }
  if (node.actionsPaused) {
    // Like a pause of this node: the timer runs, nothing is done.
    runTimer(ctx, timer);
    return noted(
      `peer ${node.name}: ${state} while the volume is in use there; ` +
        `actions paused by annotation ${pauseAnnotation} on that node`,
    );
  }

  const since = runTimer(ctx, timer);
  if (since === undefined) {
    return noted(
      `peer ${node.name}: ${state} while the volume is in use there; ` +
        "fail-over timer not started while held back",
    );
  }
  const elapsed = ctx.now - since;
  const record = ctx.next.failOvers.get(resource);
  // The fail-over for this timer already started (and was counted) when a
  // fail-over of the resource was recorded after this timer ran its minimum.
  const started = record !== undefined && record.lastAt >= since + ctx.options.failOverTimeout;
  if (!started) {
    const count = record?.count ?? 0;
    const rank = failOverRank(view.resource, ctx.snapshot);
    const delay = failOverDelay(count, ctx.options) + rank * failOverStaggerMs;
    if (elapsed < delay) {
      const backoff = count > 0 ? ` (backoff after ${count} fail-over${count > 1 ? "s" : ""})` : "";
      const turn = rank > 0
        ? ` (after the agent${rank > 1 ? "s" : ""} of ${rank} connected peer${
          rank > 1 ? "s" : ""
        } before this node)`
        : "";
      return noted(
        `waiting ${formatElapsed(elapsed)} of ${formatDuration(delay)} ` +
          `before failing over ${node.name}${backoff}${turn}`,
      );
    }
    if (ctx.acting) ctx.next.failOvers.set(resource, { count: count + 1, lastAt: ctx.now });
  }

  const situation = {
    resource,
    reporter: ctx.snapshot.nodeName,
    kubelet,
    gracePeriodSeconds: ctx.options.gracePeriodSeconds,
    node,
    state,
    volumes: [...volumes].join(", "),
    persistentVolumes: view.bindings.map((b) => b.persistentVolume),
    attachments,
    elapsed: formatElapsed(elapsed),
  };
  const actions: Action[] = [];
  const skipped: string[] = [];
  if (!ctx.options.disableNodeTaints) {
    if (hasTaint(node, lostQuorumTaint)) {
      skipped.push("node already tainted");
    } else {
      actions.push(taintPeer(situation));
    }
    // Opt-in: on a dead node the attach-detach controller then detaches at
    // once, not at its next sync (up to a minute).
    if (
      ctx.options.outOfServiceTaint && !kubelet.responsive && !hasTaint(node, outOfServiceTaint)
    ) {
      actions.push(outOfServicePeer(situation));
    }
  }
  const leftAlone: string[] = [];
  for (const pod of podsThere) {
    const skip = podExemption(pod, { kubelet, ctx });
    if (skip) {
      skipped.push(`skip pod ${podKey(pod)}: ${skip}`);
      if (skip !== alreadyTerminating) leftAlone.push(podKey(pod));
    } else {
      actions.push(removePod(pod, situation));
    }
  }
  for (const va of attachments) {
    // A pod that is left alone keeps its volume: detaching it would take
    // the storage from under a pod nobody replaces.
    if (va.deleting) {
      skipped.push(`VolumeAttachment ${va.name} already being deleted`);
    } else if (leftAlone.length > 0) {
      skipped.push(`keep VolumeAttachment ${va.name}: still used by ${leftAlone.join(", ")}`);
    } else {
      actions.push(detach(va, situation));
    }
  }
  const parts = [...actions.map(describe), ...skipped];
  return {
    actions,
    notes: [
      `failing over ${node.name} (${state} for ${situation.elapsed}): ` +
      (parts.length > 0 ? parts.join(", ") : "nothing left to do"),
    ],
  };
}

/** What every action of one peer's fail-over shares. */
interface Situation {
  resource: string;
  reporter: string;
  kubelet: { responsive: boolean; why: string };
  gracePeriodSeconds: number;
  node: NodeInfo;
  state: string;
  volumes: string;
  /** The PVs of the resource. */
  persistentVolumes: PersistentVolumeInfo[];
  /** Their LINSTOR VolumeAttachments to the lost node. */
  attachments: VolumeAttachmentInfo[];
  elapsed: string;
}

function noted(note: string): RuleOutcome {
  return { actions: [], notes: [note] };
}

/** Why a pod on the lost node is left alone, or undefined to remove it. */
/**
 * Whether the peer's kubelet still works for us: the Node is Ready and its
 * Lease was renewed within 1.5 renew intervals (a quarter of the lease
 * duration each, 10 s by default). A dead node keeps looking Ready for the
 * 50 s node-monitor grace period; its Lease stops at once. Only a responsive
 * kubelet gets graceful evictions: anything else would leave the pod
 * Terminating for ever, and DRBD already guarantees the node cannot write.
 */
export function kubeletState(
  node: NodeInfo,
  lease: KubeletLease | null,
  now: number,
): { responsive: boolean; why: string } {
  if (!node.ready) return { responsive: false, why: "the node is not Ready" };
  if (lease === null) return { responsive: true, why: "the node is Ready" };
  // The age as the API server saw it when the Lease was read, plus the time
  // since then on this node's clock: this node's clock is never compared
  // with the kubelet's timestamp. A renewTime in the future (a skewed
  // kubelet clock) counts as fresh.
  const age = lease.ageAtRead + Math.max(0, now - lease.readAt);
  const limit = 1.5 * (lease.durationSeconds * 1000) / 4;
  if (age > limit) {
    return {
      responsive: false,
      why: `the kubelet stopped renewing its lease (last renewed ${formatElapsed(age)} ago)`,
    };
  }
  return { responsive: true, why: "the node is Ready" };
}

function podExemption(
  pod: PodInfo,
  { kubelet, ctx }: { kubelet: { responsive: boolean }; ctx: RuleContext },
): string | undefined {
  if (pod.ignoreFailOver) return "has the ignore-fail-over annotation";
  if (!pod.hasOwner) return "has no owner that would recreate it";
  if (!ctx.options.failOverUnsafePods) {
    const unsafe = unsafeVolumes(pod, ctx.snapshot.persistentVolumes, ctx.index);
    if (unsafe.length > 0) return `volumes not known to be safe to move: ${unsafe.join(", ")}`;
  }
  if (pod.deletionTimestamp !== undefined && kubelet.responsive) return alreadyTerminating;
  // A pod Pending on a node whose kubelet answers may be waiting for that
  // node's DRBD to connect (a node back from a reboot whose LINSTOR
  // satellite is slow): removing it would have it recreated and, if
  // scheduled there again, removed again, a create/delete loop (the
  // upstream controller fails over Running pods only for this). It starts
  // there once DRBD connects. On a dead node it is removed (see judgePeer).
  if (pod.phase === "Pending" && pod.deletionTimestamp === undefined && kubelet.responsive) {
    return pendingOnLiveNode;
  }
  return undefined;
}

const pendingOnLiveNode = "Pending on a node whose kubelet answers: left to start there";

const alreadyTerminating = "already terminating";

function taintPeer(s: Situation): Action {
  return {
    kind: "taint-node",
    node: s.node.name,
    peer: s.node.name,
    taint: lostQuorumTaint,
    resource: s.resource,
    reason: `Node ${s.node.name} has been disconnected from DRBD resource ${s.resource} ` +
      `(${s.state}) for ${s.elapsed} while volume ${s.volumes} is in use there, ` +
      "so no new pod may be scheduled there.",
    events: [warningEvent(nodeTarget(s.node), {
      related: s.attachments.length > 0 ? volumeAttachmentTarget(s.attachments[0]) : undefined,
      seriesKey: lostQuorumTaint.key,
      reason: eventReason.nodeStorageQuorumLost,
      action: eventAction.taintedNode,
      note: `Tainted ${lostQuorumTaint.key}:${lostQuorumTaint.effect}: DRBD resource ` +
        `${s.resource} on node ${s.reporter} lost its connection to this node (${s.state}) ` +
        `while volume ${s.volumes} is in use here.`,
    })],
  };
}

function outOfServicePeer(s: Situation): Action {
  const taint = `${outOfServiceTaint.key}=${outOfServiceTaint.value}:${outOfServiceTaint.effect}`;
  return {
    kind: "taint-node",
    node: s.node.name,
    peer: s.node.name,
    taint: outOfServiceTaint,
    resource: s.resource,
    reason: `Node ${s.node.name} has been disconnected from DRBD resource ${s.resource} ` +
      `(${s.state}) for ${s.elapsed} and ${s.kubelet.why}, so it is marked out of service ` +
      "for Kubernetes to detach its volumes at once (--out-of-service-taint).",
    events: [warningEvent(nodeTarget(s.node), {
      related: s.attachments.length > 0 ? volumeAttachmentTarget(s.attachments[0]) : undefined,
      seriesKey: outOfServiceTaint.key,
      reason: eventReason.nodeStorageQuorumLost,
      action: eventAction.taintedNode,
      note: `Tainted ${taint}: DRBD resource ${s.resource} on node ${s.reporter} lost this ` +
        `node (${s.state}) and ${s.kubelet.why}.`,
    })],
  };
}

function removePod(pod: PodInfo, s: Situation): Action {
  const ref: PodRef = { namespace: pod.namespace, name: pod.name, uid: pod.uid };
  const used = s.persistentVolumes.find((pv) =>
    pv.claimRef !== undefined && pv.claimRef.namespace === pod.namespace &&
    pod.volumes.some((v) => v.kind === "pvc" && v.claimName === pv.claimRef!.name)
  );
  const related = used === undefined ? undefined : persistentVolumeTarget(used);
  const why = `Pod ${podKey(pod)} on node ${s.node.name} uses volume ${s.volumes}, ` +
    `whose DRBD resource ${s.resource} has been disconnected from that node (${s.state}) ` +
    `for ${s.elapsed}`;
  if (s.kubelet.responsive) {
    return {
      kind: "evict-pod",
      pod: ref,
      peer: s.node.name,
      gracePeriodSeconds: s.gracePeriodSeconds,
      resource: s.resource,
      reason: `${why}, so it is evicted to restart on a node with quorum.`,
      events: [warningEvent(podTarget(ref), {
        related,
        reason: eventReason.volumeWithoutQuorum,
        action: eventAction.evictedPod,
        note: `Evicted: volume ${s.volumes} lost quorum on node ${s.node.name}.`,
      })],
    };
  }
  return {
    kind: "force-delete-pod",
    pod: ref,
    peer: s.node.name,
    resource: s.resource,
    reason: `${why} and ${s.kubelet.why}, so it is deleted without waiting for the kubelet.`,
    events: [warningEvent(podTarget(ref), {
      related,
      reason: eventReason.volumeWithoutQuorum,
      action: eventAction.evictedPod,
      note: `Force-deleted: volume ${s.volumes} lost quorum on node ${s.node.name} ` +
        `and ${s.kubelet.why}.`,
    })],
  };
}

function detach(va: VolumeAttachmentInfo, s: Situation): Action {
  return {
    kind: "delete-volume-attachment",
    name: va.name,
    peer: s.node.name,
    uid: va.uid,
    gracePeriodSeconds: s.kubelet.responsive ? undefined : 0,
    resource: s.resource,
    reason: `VolumeAttachment ${va.name} attaches volume ${va.persistentVolumeName} to node ` +
      `${s.node.name}, which has been disconnected from DRBD resource ${s.resource} ` +
      `(${s.state}) for ${s.elapsed}, so it is deleted to let the volume attach elsewhere.`,
    events: [warningEvent(volumeAttachmentTarget(va), {
      reason: eventReason.volumeWithoutQuorum,
      action: eventAction.volumeAttachmentDeleted,
      note: `Deleted: volume ${va.persistentVolumeName} lost quorum on node ${s.node.name}.`,
    })],
  };
}

function describe(action: Action): string {
  switch (action.kind) {
    case "taint-node":
      return action.taint.key === lostQuorumTaint.key
        ? "taint node"
        : `taint node ${action.taint.key}`;
    case "evict-pod":
      return `evict pod ${podKey(action.pod)}`;
    case "force-delete-pod":
      return `force-delete pod ${podKey(action.pod)}`;
    case "delete-volume-attachment":
      return `delete VolumeAttachment ${action.name}`;
    default:
      return action.kind;
  }
}
