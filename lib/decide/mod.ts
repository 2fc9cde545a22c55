/**
 * The decision rules of ha-controller, as pure functions.
 *
 * Each cycle the loop calls `peersToInspect` to learn which lost peers it
 * must read (their Node and pods), fills `Snapshot.peers`, calls `decide`,
 * carries out (or prints) the plan and passes the issued actions to
 * `recordIssued` before the next cycle.
 *
 * Rules, one module each: `fail_over.ts`, `own_taints.ts`,
 * `suspended_demotion.ts`, `force_io.ts`; loop protection (pause, untrusted
 * data, no repeats within `operationsTimeout`, fail-over backoff) lives in
 * `protection.ts`.
 *
 * Fixed numbers (see `protection.ts`): DRBD state older than
 * `2 × drbdStatusInterval + failOverTimeout` is stale; a resource that failed
 * over `n` times waits `failOverTimeout × 2^n` (at most 5 minutes, never less
 * than `failOverTimeout`) before its next fail-over, and its count starts from
 * zero 50 minutes after its last fail-over. Timers fire when they reach their
 * limit (`elapsed >= limit`); an action issued exactly `operationsTimeout` ago
 * may be issued again.
 *
 * @module
 */

import type { Options } from "../options.ts";
import { type DrbdSample, suspendedForQuorumDataOrFencing } from "../drbd/model.ts";
import { formatElapsed, type RuleContext } from "./context.ts";
import { failOver, failOverAllowedByDrbd, failOverApplies, peerNodes } from "./fail_over.ts";
import { hasTaint, lostQuorumTaint } from "./events.ts";
import { forceIo } from "./force_io.ts";
import { lacksQuorum, ownTaints, peerNodesOf } from "./own_taints.ts";
import {
  drbdIsFresh,
  failOverBackoffReset,
  failOverDelay,
  failOverStaggerMs,
  pauseReason,
  untrustedReasons,
  withoutRecentRepeats,
} from "./protection.ts";
import { suspendedDemotion } from "./suspended_demotion.ts";
import {
  type Action,
  actionKey,
  type Decision,
  describeAction,
  type Memory,
  type ResourceVerdict,
  type Snapshot,
} from "./types.ts";
import {
  claimKey,
  claimsOf,
  knownConsumers,
  podKey,
  type ResourceView,
  SnapshotIndex,
} from "./volumes.ts";

export {
  drbdStalenessBound,
  failOverBackoffReset,
  failOverDelay,
  maxFailOverDelay,
  recordIssued,
} from "./protection.ts";

/**
 * Kubernetes node names of the lost peers whose Node and pods the loop must
 * fetch (pods by `fieldSelector=spec.nodeName=<node>`) before calling
 * `decide`: for every local resource the fail-over rule applies to, the
 * nodes none of whose connections is Connected (see `peerNodes`; a node
 * behind an ambiguous connection name is never fetched); and, for the
 * outage guard of the own lost-quorum taint, every peer node of the
 * resources that lack quorum here (given the loop's `timers`: once the loss
 * lasted `failOverTimeout`), until this node carries that taint.
 * Sorted, no duplicates, never this node.
 */
export function peersToInspect(
  snapshot: Omit<Snapshot, "peers">,
  options: Options,
  timers?: { memory: Memory; now: number },
): string[] {
  const nodes = new Set<string>();
  const index = new SnapshotIndex(snapshot);
  for (const resource of snapshot.drbd.resources) {
    const view = { resource, bindings: index.bindingsOf(resource.name) };
    if (!failOverApplies(view).applies) continue;
    for (const peer of peerNodes(resource, snapshot).lost) nodes.add(peer.node);
  }
  // The outage guard of the own lost-quorum taint reads the peers of the
  // resources that lack quorum here, until this node is tainted.
  const own = snapshot.ownNode;
  if (!options.disableNodeTaints && own !== undefined && !hasTaint(own, lostQuorumTaint)) {
    // With the loop's timers: only once a quorum loss lasted the fail-over
    // timeout (the guard is asked no sooner), not on every brief loss.
    const matured = (name: string) => {
      if (timers === undefined) return true;
      const since = timers.memory.quorumLostSince.get(name);
      return since !== undefined && timers.now - since >= options.failOverTimeout;
    };
    const lacking = snapshot.drbd.resources.filter((r) => lacksQuorum(r) && matured(r.name));
    for (const node of peerNodesOf(lacking, snapshot)) nodes.add(node);
  }
  return [...nodes].sort();
}

/**
 * One decision cycle: what to do now, memory for the next cycle and a
 * verdict per local DRBD resource. Pure: neither `snapshot` nor `memory` is
 * modified.
 *
 * The plan is empty while the data cannot be trusted (own Node unknown,
 * caches not synced, DRBD unavailable or stale; no timer starts then) or
 * while the own Node carries the pause annotation; `heldBack` says why.
 *
 * Timers are rebuilt every cycle from what DRBD shows: a timer whose DRBD
 * condition is gone is dropped even while the Kubernetes side is untrusted,
 * and while DRBD is unavailable or stale every timer is dropped, so a
 * condition is always seen for its whole timeout before the agent acts.
 */
export function decide(
  snapshot: Snapshot,
  memory: Memory,
  options: Options,
  now: number,
): Decision {
  const untrusted = untrustedReasons(snapshot, options, now);
  const paused = pauseReason(snapshot);
  const trusted = untrusted.length === 0;
  const index = new SnapshotIndex(snapshot);
  const ctx: RuleContext = {
    snapshot,
    options,
    now,
    previous: memory,
    next: nextMemory(memory, { options, now }),
    trusted,
    drbdFresh: drbdIsFresh(snapshot.drbd, options, now),
    acting: trusted && paused === undefined,
    index,
  };

  const resources = snapshot.drbd.resources;
  const own = ownTaints(resources, ctx);
  const planned: Action[] = [...own.actions];
  const notes = new Map<string, string[]>();
  const views: ResourceView[] = [];
  for (const resource of resources) {
    const view = { resource, bindings: index.bindingsOf(resource.name) };
    views.push(view);
    const resourceNotes = [...(own.notes.get(resource.name) ?? [])];
    for (const rule of [failOver, suspendedDemotion, forceIo]) {
      const outcome = rule(view, ctx);
      planned.push(...outcome.actions);
      resourceNotes.push(...outcome.notes);
    }
    notes.set(resource.name, resourceNotes);
  }

  const { kept, suppressed } = withoutRecentRepeats(planned, { memory, options, now });
  for (const { action, ago } of suppressed) {
    if (action.resource === undefined) continue;
    notes.get(action.resource)?.push(
      `not repeating ${describeAction(action)} issued ${formatElapsed(ago)} ago`,
    );
  }
  const plan = withoutDuplicates(kept);

  const heldBackReasons = [...untrusted, ...(paused ? [paused] : [])];
  const heldBack = heldBackReasons.length > 0
    ? heldBackReasons.map((r) => r.message).join("; ")
    : undefined;
  const verdicts: ResourceVerdict[] = views.map((view) => {
    const claims = claimsOf(view);
    const resourceNotes = notes.get(view.resource.name) ?? [];
    if (heldBack && plan.some((a) => a.resource === view.resource.name)) {
      resourceNotes.push("held back");
    }
    return {
      resource: view.resource.name,
      persistentVolume: view.bindings.length > 0
        ? view.bindings.map((b) => b.persistentVolume.name).join(", ")
        : undefined,
      claim: claims.length > 0 ? claims.map(claimKey).join(", ") : undefined,
      consumers: knownConsumers(claims, snapshot, index).map(podKey).sort(),
      decision: resourceNotes.length > 0 ? resourceNotes.join("; ") : "healthy",
    };
  });

  return {
    plan: heldBack ? [] : plan,
    memory: ctx.next,
    verdicts,
    heldBack,
    heldBackCodes: heldBackReasons.map((r) => r.code),
    wakeAt: nextDeadline(ctx.next, { options, now }),
  };
}

/**
 * When the earliest running timer matures: a fail-over timer after its
 * (backed-off) delay, a quorum-loss or suspension timer after
 * `failOverTimeout`. The loop decides again then instead of waiting for its
 * reconcile interval, so an action is due and taken at the same moment.
 */
function nextDeadline(
  memory: Memory,
  { options, now }: { options: Options; now: number },
): number | undefined {
  const deadlines: number[] = [];
  // Agents that wait their turn (failOverRank, the own taint's rank) act
  // failOverStaggerMs per rank later: wake for the first few turns too.
  const turns = (at: number) => [0, 1, 2, 3].map((rank) => at + rank * failOverStaggerMs);
  for (const [key, since] of memory.failOverSince) {
    const resource = key.slice(0, key.lastIndexOf("/"));
    const count = memory.failOvers.get(resource)?.count ?? 0;
    deadlines.push(...turns(since + failOverDelay(count, options)));
  }
  for (const since of memory.quorumLostSince.values()) {
    deadlines.push(...turns(since + options.failOverTimeout));
  }
  for (const since of memory.suspendedSince.values()) {
    deadlines.push(since + options.failOverTimeout);
  }
  const future = deadlines.filter((d) => d > now);
  return future.length > 0 ? Math.min(...future) : undefined;
}

/**
 * The memory the rules fill in this cycle: no timers (the rules write back
 * each timer whose condition still holds, see `runTimer` and `keepTimer`),
 * `actedAt` without entries older than `operationsTimeout` and fail-over
 * counts without those older than `failOverBackoffReset`.
 */
function nextMemory(memory: Memory, { options, now }: { options: Options; now: number }): Memory {
  const actedAt = new Map<string, number>();
  for (const [key, at] of memory.actedAt) {
    if (now - at < options.operationsTimeout) actedAt.set(key, at);
  }
  const failOvers = new Map<string, { count: number; lastAt: number }>();
  for (const [resource, record] of memory.failOvers) {
    if (now - record.lastAt < failOverBackoffReset) failOvers.set(resource, { ...record });
  }
  return {
    failOverSince: new Map(),
    quorumLostSince: new Map(),
    suspendedSince: new Map(),
    actedAt,
    failOvers,
  };
}

function withoutDuplicates(actions: Action[]): Action[] {
  const seen = new Set<string>();
  const unique: Action[] = [];
  for (const action of actions) {
    const key = actionKey(action);
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(action);
  }
  return unique;
}

/**
 * Whether an action decided a moment ago no longer holds on the newest DRBD
 * state, and why; undefined when it still holds. The executor asks this
 * right before each fail-over action and own lost-quorum taint: a plan is
 * carried out in phases with API round trips between them, and a peer that
 * reconnects meanwhile (a partition healing as the fail-over timer fires)
 * must keep its pods and its VolumeAttachment. Only the DRBD side is
 * re-checked; the cluster side was read with the decision.
 */
export function withdrawnBy(
  action: Action,
  drbd: DrbdSample,
  snapshot: Pick<Snapshot, "nodeName" | "satellitePods">,
): string | undefined {
  const ownTaint = action.kind === "taint-node" && action.node === snapshot.nodeName &&
    action.taint.key === lostQuorumTaint.key;
  const demotion = action.kind === "force-demote";
  if (action.peer === undefined && !ownTaint && !demotion) return undefined;
  if (drbd.availability !== "ok") {
    const what = drbd.availability === "not-loaded"
      ? "the DRBD module is not loaded now"
      : "DRBD cannot be read now";
    return drbd.message ? `${what}: ${drbd.message}` : what;
  }
  if (ownTaint) {
    if (drbd.resources.some(lacksQuorum)) return undefined;
    return "every DRBD resource has quorum again";
  }
  if (action.kind === "force-demote") {
    const now = drbd.resources.find((r) => r.name === action.resource);
    if (now === undefined) return `DRBD resource ${action.resource} is gone`;
    if (now.role !== "Primary") return `DRBD resource ${action.resource} is no longer Primary`;
    if (!suspendedForQuorumDataOrFencing(now)) {
      return `DRBD resource ${action.resource} is no longer suspended`;
    }
    return undefined;
  }
  const resource = drbd.resources.find((r) => r.name === action.resource);
  if (resource === undefined) return `DRBD resource ${action.resource} is gone`;
  if (!failOverAllowedByDrbd(resource)) {
    return `this node may no longer promote DRBD resource ${resource.name}`;
  }
  if (!peerNodes(resource, snapshot).lost.some((p) => p.node === action.peer)) {
    return `node ${action.peer} is connected to DRBD resource ${resource.name} again`;
  }
  return undefined;
}
