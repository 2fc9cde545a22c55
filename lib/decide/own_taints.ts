/**
 * Own node taints: keep new pods off this node while it cannot serve DRBD
 * volumes. `lost-quorum` once a resource with a quorum policy has lacked
 * quorum for `failOverTimeout` (a resource that lacks quorum only briefly,
 * for example while it connects after creation, does not taint), plus
 * `failOverStaggerMs` per peer node of those resources whose name sorts
 * first, and only while the outage guard allows it (see
 * {@linkcode outageGuard}); removed
 * when every resource has quorum again and the quorum policy of every
 * resource is known (a resource whose configuration was not read yet may
 * lack quorum unseen, and a peer may have set the taint for it).
 * `force-io-error` while any resource forces I/O failures. Only our two
 * taints are ever added or removed, and only when missing or present
 * respectively.
 *
 * @module
 */

import { type DrbdResource, hasQuorumPolicy } from "../drbd/model.ts";
import { drbdResourceOfVolume, type NodeInfo, type Taint } from "../kube/objects.ts";
import { eventAction, eventReason, linstorCsiDriver } from "../names.ts";
import { formatDuration } from "../duration.ts";
import { formatElapsed, type RuleContext, runTimer } from "./context.ts";
import {
  forceIoErrorTaint,
  hasOwnOutOfServiceTaint,
  hasTaint,
  lostQuorumTaint,
  nodeTarget,
  normalEvent,
  outOfServiceTaint,
  warningEvent,
} from "./events.ts";
import type { Action, EventSpec, Snapshot } from "./types.ts";
import { failOverStaggerMs } from "./protection.ts";
import { fullVolumesByName, nodeOfConnection } from "./volumes.ts";

/** Node-wide taint actions plus verdict notes per resource name. */
export interface OwnTaintsOutcome {
  /** Taint or untaint actions on this node. */
  actions: Action[];
  /** Notes for the verdicts, by resource name. */
  notes: Map<string, string[]>;
}

/** True when some volume of a resource with a quorum policy lacks quorum. */
export function lacksQuorum(resource: DrbdResource): boolean {
  return hasQuorumPolicy(resource) && resource.devices.some((d) => !d.quorum);
}

/**
 * The peer nodes of `resources` (every connection mapped to its node, see
 * `nodeOfConnection`; this node left out), sorted.
 */
export function peerNodesOf(
  resources: DrbdResource[],
  snapshot: Pick<Snapshot, "nodeName" | "satellitePods">,
): string[] {
  const nodes = new Set<string>();
  for (const resource of resources) {
    for (const connection of resource.connections) {
      const mapped = nodeOfConnection(connection.name, snapshot.satellitePods);
      const candidates = mapped.known ? [mapped.node] : mapped.candidates;
      for (const node of candidates) if (node !== snapshot.nodeName) nodes.add(node);
    }
  }
  return [...nodes].sort();
}

/**
 * The whole-cluster outage guard. The own lost-quorum taint steers new pods
 * to nodes that can serve the volume; when most nodes lose quorum at once
 * (a full reboot, a switch failure) there is no such node, and tainting
 * every node would keep every pod off every node, the storage stack's own
 * pods (the LINSTOR controller, the satellites that would bring DRBD back)
 * included, so the outage could not end (piraeus-operator PR #561). So this
 * node is tainted only while fewer than half of the peer nodes of its
 * quorum-less resources are themselves down: not Ready, tainted lost-quorum,
 * or unreadable (in doubt a peer counts as down: not tainting is the safe
 * side, DRBD's quorum keeps the data safe either way). With the stagger by
 * node name, of nodes that lose quorum together the first taints itself and
 * the others, seeing it tainted, hold back. Returns why it holds back, or
 * undefined.
 */
export function outageGuard(
  peers: string[],
  snapshot: Pick<Snapshot, "peers">,
): string | undefined {
  if (peers.length === 0) return undefined;
  const down = peers.filter((name) => {
    const view = snapshot.peers.get(name);
    if (view === undefined || !view.ok || view.node === null) return true;
    return !view.node.ready || hasTaint(view.node, lostQuorumTaint);
  });
  if (2 * down.length < peers.length) return undefined;
  return `outage guard: ${down.length} of ${peers.length} peer nodes (${down.join(", ")}) ` +
    "are down or lost quorum too, so this node is not tainted";
}

/** Decide this node's lost-quorum and force-io-error taints. */
export function ownTaints(resources: DrbdResource[], ctx: RuleContext): OwnTaintsOutcome {
  const notes = new Map<string, string[]>();
  const note = (resource: string, text: string) => {
    notes.set(resource, [...(notes.get(resource) ?? []), text]);
  };
  const disabled = ctx.options.disableNodeTaints;
  const lacking = resources.filter(lacksQuorum);
  const rank = peerNodesOf(lacking, ctx.snapshot).filter((n) => n < ctx.snapshot.nodeName).length;
  const timeout = ctx.options.failOverTimeout + rank * failOverStaggerMs;
  const longLost: string[] = [];
  let anyLost = false;
  for (const resource of resources) {
    if (!lacksQuorum(resource)) continue;
    anyLost = true;
    if (disabled) {
      note(resource.name, "no quorum on this node (node taints disabled)");
      continue;
    }
    const since = runTimer(ctx, { name: "quorumLostSince", key: resource.name });
    if (since === undefined) {
      note(resource.name, "no quorum on this node; timer not started while held back");
    } else if (ctx.now - since >= timeout) {
      longLost.push(resource.name);
      note(resource.name, `no quorum on this node for ${formatElapsed(ctx.now - since)}`);
    } else {
      note(
        resource.name,
        `no quorum on this node for ${formatElapsed(ctx.now - since)} of ` +
          `${formatDuration(timeout)} before tainting it`,
      );
    }
  }
  const forcing = resources.filter((r) => r.forceIoFailures).map((r) => r.name);
  const configUnknown = resources.filter((r) => r.config === undefined).map((r) => r.name);

  const node = ctx.snapshot.ownNode;
  const actions: Action[] = [];
  if (disabled || node === undefined) return { actions, notes };

  const lostResources = resources.filter((r) => longLost.includes(r.name));
  const guard = longLost.length > 0 && !hasTaint(node, lostQuorumTaint)
    ? outageGuard(peerNodesOf(lostResources, ctx.snapshot), ctx.snapshot)
    : undefined;
  if (guard !== undefined) {
    for (const name of longLost) note(name, guard);
  } else if (longLost.length > 0 && !hasTaint(node, lostQuorumTaint)) {
    actions.push(change(node, {
      add: true,
      taint: lostQuorumTaint,
      reason: `DRBD resource ${longLost.join(", ")} has had no quorum on node ${node.name} for ` +
        `at least ${formatDuration(timeout)}, so no new pod may be scheduled there.`,
      event: warningEvent(nodeTarget(node), {
        reason: eventReason.nodeStorageQuorumLost,
        action: eventAction.taintedNode,
        note: `Tainted ${taintText(lostQuorumTaint)}: DRBD resource ${longLost.join(", ")} ` +
          "lost quorum on this node.",
      }),
    }));
  } else if (!anyLost && hasTaint(node, lostQuorumTaint)) {
    const unconfigured = attachedWithoutResource(resources, ctx);
    if (unconfigured.length > 0) {
      // Nothing to put the note on when there is no resource at all: the
      // status shows the kept taint through the node's taints.
      for (const r of resources) {
        note(
          r.name,
          `lost-quorum taint kept: ${unconfigured.join(", ")} attached to this node ` +
            "without a DRBD resource here yet",
        );
      }
    } else if (configUnknown.length > 0) {
      for (const name of configUnknown) {
        note(name, "quorum policy not read yet: lost-quorum taint of this node kept");
      }
    } else {
      actions.push(change(node, {
        add: false,
        taint: lostQuorumTaint,
        reason: `Every DRBD resource on node ${node.name} has quorum again, ` +
          "so pods may be scheduled there again.",
        event: normalEvent(nodeTarget(node), {
          reason: eventReason.nodeStorageQuorumRegained,
          action: eventAction.untaintedNode,
          note: `Removed ${taintText(lostQuorumTaint)}: every DRBD resource has quorum.`,
        }),
      }));
    }
  }

  // The out-of-service taint a peer's agent set while this node was lost
  // (--out-of-service-taint): gone once every resource has quorum again, as
  // the lost-quorum taint; one an administrator set (another value) stays.
  if (
    !anyLost && hasOwnOutOfServiceTaint(node) && configUnknown.length === 0 &&
    attachedWithoutResource(resources, ctx).length === 0
  ) {
    actions.push(change(node, {
      add: false,
      taint: outOfServiceTaint,
      reason: `Every DRBD resource on node ${node.name} has quorum again, so the ` +
        `${outOfServiceTaint.key} taint ha-controller set while the node was lost is removed.`,
      event: normalEvent(nodeTarget(node), {
        reason: eventReason.nodeStorageQuorumRegained,
        action: eventAction.untaintedNode,
        note: `Removed ${outOfServiceTaint.key}=${outOfServiceTaint.value}:` +
          `${outOfServiceTaint.effect}: every DRBD resource has quorum.`,
      }),
    }));
  }

  if (forcing.length > 0 && !hasTaint(node, forceIoErrorTaint)) {
    actions.push(change(node, {
      add: true,
      taint: forceIoErrorTaint,
      reason: `DRBD resource ${forcing.join(", ")} forces I/O errors on node ${node.name}, ` +
        "so no new pod may be scheduled there.",
      event: warningEvent(nodeTarget(node), {
        reason: eventReason.volumeForcingIoErrors,
        action: eventAction.taintedNode,
        note: `Tainted ${taintText(forceIoErrorTaint)}: DRBD resource ${forcing.join(", ")} ` +
          "forces I/O errors.",
      }),
    }));
  } else if (forcing.length === 0 && hasTaint(node, forceIoErrorTaint)) {
    actions.push(change(node, {
      add: false,
      taint: forceIoErrorTaint,
      reason: `No DRBD resource forces I/O errors on node ${node.name} any more, ` +
        "so pods may be scheduled there again.",
      event: normalEvent(nodeTarget(node), {
        reason: eventReason.noVolumeForcingIoErrors,
        action: eventAction.untaintedNode,
        note: `Removed ${taintText(forceIoErrorTaint)}: no DRBD resource forces I/O errors.`,
      }),
    }));
  }
  return { actions, notes };
}

/**
 * LINSTOR VolumeAttachments to this node whose volume has no DRBD resource
 * here, as `VolumeAttachment <name> (volume <pv>)`. After a reboot DRBD has
 * no resources until LINSTOR's satellite configures them; a node without
 * any then reads as "every resource has quorum", and removing the
 * lost-quorum taint a peer set would let pods be scheduled onto storage
 * that is not there yet, which peers would then fail over again.
 */
function attachedWithoutResource(resources: DrbdResource[], ctx: RuleContext): string[] {
  const local = new Set(resources.map((r) => r.name));
  const byName = fullVolumesByName(ctx.snapshot.persistentVolumes);
  const out: string[] = [];
  for (const va of ctx.snapshot.volumeAttachments) {
    if (va.nodeName !== ctx.snapshot.nodeName || va.attacher !== linstorCsiDriver) continue;
    if (va.deleting) continue;
    const pvName = va.persistentVolumeName;
    if (pvName === undefined) continue;
    const pv = byName.get(pvName);
    // A PV held claim-only (not in full) has no volume handle: LINSTOR names
    // the resource after the PV.
    const resource = (pv && drbdResourceOfVolume(pv)) ?? pvName;
    if (!local.has(resource)) out.push(`VolumeAttachment ${va.name} (volume ${pvName})`);
  }
  return out;
}

function taintText(taint: Taint): string {
  return `${taint.key}:${taint.effect}`;
}

function change(
  node: NodeInfo,
  spec: { add: boolean; taint: Taint; reason: string; event: EventSpec },
): Action {
  return {
    kind: spec.add ? "taint-node" : "untaint-node",
    node: node.name,
    taint: spec.taint,
    resource: undefined,
    reason: spec.reason,
    events: [{ ...spec.event, seriesKey: spec.taint.key }],
  };
}
