/**
 * Time as the agent sees it: the one seam through which every part of the
 * agent reads the clock, sets timers and draws random jitter.
 *
 * Production uses {@linkcode systemClock}. The deterministic simulation gives
 * every agent a virtual clock shared with the simulated cluster, so the same
 * seed gives the same run.
 *
 * @module
 */

/** A timer made by {@linkcode Clock.setTimeout}: opaque, only for `clearTimeout`. */
export type TimerId = unknown;

/** Clock, timers and randomness of one agent. */
export interface Clock {
  /** Wall-clock time, ms since the epoch (timestamps, Lease ages, `confirmedAt`). */
  now(): number;
  /** A monotonic reading in ms, for measuring intervals (never jumps backwards). */
  monotonic(): number;
  /** Runs `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerId;
  /** Cancels a timer; undefined or an already fired timer is ignored. */
  clearTimeout(id: TimerId): void;
  /** A uniformly distributed number in [0, 1), for jitter. */
  random(): number;
}

/** The process's own clock: `Date.now`, `performance.now`, `setTimeout`, `Math.random`. */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
  clearTimeout: (id: TimerId) => clearTimeout(id as ReturnType<typeof setTimeout> | undefined),
  random: () => Math.random(),
});

/**
 * Waits `ms` on `clock`; resolves early (without error) when `signal` aborts.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clock.clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = clock.setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
