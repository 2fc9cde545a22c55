/**
 * What every rule receives besides the resource it judges, and the timer
 * helpers that keep `Memory` consistent across cycles.
 *
 * The rules write timers into `next`, a fresh Memory that `decide` built for
 * this cycle with no timers in it; a rule keeps a timer by writing it again.
 * The caller's Memory is never modified.
 *
 * @module
 */

import { formatDuration } from "../duration.ts";
import type { Options } from "../options.ts";
import type { Action, Memory, Snapshot } from "./types.ts";
import type { SnapshotIndex } from "./volumes.ts";

/** Everything a rule may read, plus the memory it writes its timers to. */
export interface RuleContext {
  /** This cycle's snapshot. */
  snapshot: Snapshot;
  /** The agent's options. */
  options: Options;
  /** Current time, milliseconds since the epoch. */
  now: number;
  /** Memory as the caller passed it (read only). */
  previous: Memory;
  /** Memory for the next cycle, being built. */
  next: Memory;
  /** The data is fresh and complete: timers may start. */
  trusted: boolean;
  /**
   * DRBD was read and is not stale. Timers run only then: each cycle rebuilds
   * them from what DRBD shows, so a condition that DRBD saw go away restarts
   * its timer even while the Kubernetes side is untrusted. While DRBD is
   * unreadable or stale every timer is dropped (a condition must be seen for
   * its whole timeout after DRBD is readable again).
   */
  drbdFresh: boolean;
  /** The plan will be carried out (trusted and not paused): fail-overs are counted. */
  acting: boolean;
  /** Lookups of `snapshot` by resource and claim (PVs, consumers). */
  index: SnapshotIndex;
}

/** What one rule concluded about one resource. */
export interface RuleOutcome {
  /** Actions it wants. */
  actions: Action[];
  /** Short phrases for the resource's verdict. */
  notes: string[];
}

/** An outcome with nothing to do and nothing to say. */
export function nothing(): RuleOutcome {
  return { actions: [], notes: [] };
}

/** Timer maps of `Memory`. */
export type TimerName = "failOverSince" | "quorumLostSince" | "suspendedSince";

/**
 * The condition behind `key` holds in this cycle: return when it was first
 * seen, starting the timer now if the data is trusted. Returns undefined when
 * no timer runs and none may start: the data is untrusted and no timer ran, or
 * DRBD is unreadable or stale (every timer is dropped then).
 */
export function runTimer(
  ctx: RuleContext,
  timer: { name: TimerName; key: string },
): number | undefined {
  if (!ctx.drbdFresh) return undefined;
  const since = ctx.previous[timer.name].get(timer.key) ?? (ctx.trusted ? ctx.now : undefined);
  if (since !== undefined) ctx.next[timer.name].set(timer.key, since);
  return since;
}

/**
 * DRBD shows the condition behind `key`, but whether the rest of it holds is
 * unknown in this cycle (for example a peer could not be read, or the
 * Kubernetes data is untrusted): keep a running timer without starting one.
 */
export function keepTimer(ctx: RuleContext, timer: { name: TimerName; key: string }): void {
  if (!ctx.drbdFresh) return;
  const since = ctx.previous[timer.name].get(timer.key);
  if (since !== undefined) ctx.next[timer.name].set(timer.key, since);
}

/**
 * Format a measured time span (an elapsed time or an age) the way the flags
 * write durations (`5s`, `1m0s`, see lib/duration.ts), cut to a tenth of a
 * second (so a wait never shows as reaching its limit early); a negative
 * span (the clock went back) shows as `0s`.
 */
export function formatElapsed(ms: number): string {
  return formatDuration(Math.max(0, Math.floor(ms / 100) * 100));
}
