/**
 * What every rule receives besides the resource it judges, and the timer
 * helpers that keep `Memory` consistent across cycles.
 *
 * The rules write timers into `next`, a fresh Memory that `decide` built for
 * this cycle; the caller's Memory is never modified.
 *
 * @module
 */

import type { Options } from "../options.ts";
import type { Action, Memory, Snapshot } from "./types.ts";

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
  /** The plan will be carried out (trusted and not paused): fail-overs are counted. */
  acting: boolean;
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
export type TimerName = "failOverSince" | "quorumLostSince";

/**
 * The condition behind `key` holds in this cycle: return when it was first
 * seen, starting the timer now if the data is trusted. Returns undefined when
 * no timer runs and none may start (untrusted data).
 */
export function runTimer(
  ctx: RuleContext,
  timer: { name: TimerName; key: string },
): number | undefined {
  const since = ctx.previous[timer.name].get(timer.key) ?? (ctx.trusted ? ctx.now : undefined);
  if (since !== undefined) ctx.next[timer.name].set(timer.key, since);
  return since;
}

/**
 * Whether the condition behind `key` holds is unknown in this cycle (for
 * example a peer could not be read): keep a running timer without starting one.
 */
export function keepTimer(ctx: RuleContext, timer: { name: TimerName; key: string }): void {
  const since = ctx.previous[timer.name].get(timer.key);
  if (since !== undefined) ctx.next[timer.name].set(timer.key, since);
}

/** Format milliseconds for humans: `3.2s`, `5s`, `0s`. */
export function formatDuration(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`;
}
