/**
 * Loop protection: when the agent must hold back entirely (untrusted data,
 * operator pause), how long a destructive action is not repeated, and the
 * exponential backoff between fail-overs of the same resource.
 *
 * @module
 */

import type { DrbdSample } from "../drbd/model.ts";
import { formatDuration } from "../duration.ts";
import type { Options } from "../options.ts";
import { outOfServiceTaintKey, pauseAnnotation } from "../names.ts";
import { formatElapsed } from "./context.ts";
import { type Action, actionKey, type Memory, type Snapshot } from "./types.ts";

/**
 * Upper bound of the wait before a repeated fail-over of one resource
 * (5 minutes). The first fail-over waits `failOverTimeout`; after `n`
 * fail-overs the next waits `failOverTimeout * 2^n`, but never more than
 * this (and never less than `failOverTimeout`).
 */
export const maxFailOverDelay = 5 * 60_000;

/**
 * Quiet period after which a resource's fail-over count starts from zero
 * again: 10 × `maxFailOverDelay` (50 minutes) after its last fail-over.
 */
export const failOverBackoffReset = 10 * maxFailOverDelay;

/**
 * Extra wait per agent that ranks before this one for the same lost peer
 * (see `failOverRank`): the first acts at once, the others find its actions
 * done when their turn comes and do not repeat them or their Events.
 */
export const failOverStaggerMs = 2_000;

/** Wait before failing over a resource that already failed over `count` times. */
export function failOverDelay(count: number, options: Options): number {
  const doubled = options.failOverTimeout * 2 ** count;
  return Math.max(options.failOverTimeout, Math.min(maxFailOverDelay, doubled));
}

/**
 * Oldest DRBD state the rules act on: `2 × drbdStatusInterval +
 * failOverTimeout` since it was last confirmed complete. Two missed full
 * resyncs plus the fail-over timeout means the sampler is stuck, and the
 * state may be older than the condition the agent would act on.
 */
export function drbdStalenessBound(options: Options): number {
  return 2 * options.drbdStatusInterval + options.failOverTimeout;
}

/** DRBD could be read and its state is not older than `drbdStalenessBound`. */
export function drbdIsFresh(drbd: DrbdSample, options: Options, now: number): boolean {
  return drbd.availability === "ok" && now - drbd.confirmedAt <= drbdStalenessBound(options);
}

/** A reason to hold back all actions: a stable code (for metrics) and a sentence. */
export interface HeldBack {
  /** `own-node-unknown`, `caches-not-synced`, `drbd-unavailable`, `drbd-stale` or `paused`. */
  code: string;
  /** What a human reads in logs and `status`. */
  message: string;
}

/**
 * Why the snapshot cannot be trusted (empty when it can): the own Node is
 * unknown, the caches have not synced, DRBD could not be read, or the DRBD
 * state is older than `drbdStalenessBound`.
 */
export function untrustedReasons(snapshot: Snapshot, options: Options, now: number): HeldBack[] {
  const reasons: HeldBack[] = [];
  if (snapshot.ownNode === undefined) {
    reasons.push({
      code: "own-node-unknown",
      message: `own Node ${snapshot.nodeName} is not known`,
    });
  }
  if (!snapshot.cachesSynced) {
    reasons.push({ code: "caches-not-synced", message: "Kubernetes caches have not synced yet" });
  }
  if (snapshot.drbd.availability !== "ok") {
    const why = snapshot.drbd.message ? `: ${snapshot.drbd.message}` : "";
    reasons.push({
      code: "drbd-unavailable",
      message: `DRBD state unavailable (${snapshot.drbd.availability})${why}`,
    });
  } else {
    const age = now - snapshot.drbd.confirmedAt;
    const bound = drbdStalenessBound(options);
    if (age > bound) {
      reasons.push({
        code: "drbd-stale",
        message: `DRBD state is stale: last confirmed ${formatElapsed(age)} ago, ` +
          `limit ${formatDuration(bound)}`,
      });
    }
  }
  return reasons;
}

/** Why actions are paused on this node, or undefined. */
export function pauseReason(snapshot: Snapshot): HeldBack | undefined {
  if (!snapshot.ownNode?.actionsPaused) return undefined;
  return {
    code: "paused",
    message: `actions paused by annotation ${pauseAnnotation} on node ${snapshot.ownNode.name}`,
  };
}

/** Evictions, pod deletions, VolumeAttachment deletions and forced demotions. */
export function isDestructive(action: Action): boolean {
  return action.kind === "evict-pod" || action.kind === "force-delete-pod" ||
    action.kind === "delete-volume-attachment" || action.kind === "force-demote" ||
    // NoExecute: Kubernetes evicts the node's pods and force-detaches its volumes.
    (action.kind === "taint-node" && action.taint.key === outOfServiceTaintKey);
}

/** A destructive action held back because it was issued recently. */
export interface SuppressedAction {
  /** The action. */
  action: Action;
  /** How long ago it was issued, milliseconds. */
  ago: number;
}

/**
 * Split actions into those to issue and destructive ones issued less than
 * `operationsTimeout` ago (by `actionKey`), which are held back.
 */
export function withoutRecentRepeats(
  actions: Action[],
  context: { memory: Memory; options: Options; now: number },
): { kept: Action[]; suppressed: SuppressedAction[] } {
  const kept: Action[] = [];
  const suppressed: SuppressedAction[] = [];
  for (const action of actions) {
    const at = isDestructive(action) ? context.memory.actedAt.get(actionKey(action)) : undefined;
    if (at !== undefined && context.now - at < context.options.operationsTimeout) {
      suppressed.push({ action, ago: context.now - at });
    } else {
      kept.push(action);
    }
  }
  return { kept, suppressed };
}

/**
 * Memory after the loop issued `actions` at `now`: every destructive action
 * is stamped in `actedAt`, so it is not repeated within `operationsTimeout`.
 * Returns a new Memory; `memory` is not modified.
 */
export function recordIssued(memory: Memory, actions: Action[], now: number): Memory {
  const actedAt = new Map(memory.actedAt);
  for (const action of actions) {
    if (isDestructive(action)) actedAt.set(actionKey(action), now);
  }
  return {
    failOverSince: new Map(memory.failOverSince),
    quorumLostSince: new Map(memory.quorumLostSince),
    suspendedSince: new Map(memory.suspendedSince),
    actedAt,
    failOvers: new Map(memory.failOvers),
  };
}
