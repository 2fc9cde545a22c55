/**
 * The loop every simulated controller runs in: a synchronous reconcile pass
 * that runs soon after a relevant change (coalesced), on a period, and at
 * the simulated times the pass asks to be woken at.
 *
 * Passes are synchronous (the in-process API is), so a pass reads and writes
 * without anything interleaving: no stale reads within one pass.
 *
 * @module
 */

import type { Cluster } from "./cluster.ts";
import { periodFor } from "./constants.ts";

/** Options of {@link Runner}. */
export interface RunnerOptions {
  /** Component name for the log. */
  name: string;
  /** Simulated period of the resync pass; none when undefined. */
  periodMs?: number;
  /** The reconcile pass. */
  run: () => void;
}

/** Runs one controller's reconcile pass on changes, on a period and at asked times. */
export class Runner {
  /** Component name. */
  readonly name: string;
  #cluster: Cluster;
  #run: () => void;
  #periodMs: number | undefined;
  #stopPeriodic: (() => void) | undefined;
  #kickTimer: (() => void) | undefined;
  #wake: { at: number; cancel: () => void } | undefined;
  #stopped = true;

  /** A stopped runner; {@link Runner.start} starts it. */
  constructor(cluster: Cluster, options: RunnerOptions) {
    this.#cluster = cluster;
    this.name = options.name;
    this.#run = options.run;
    this.#periodMs = options.periodMs;
  }

  /** Whether the runner is stopped. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Starts the period and runs a first pass soon. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    if (this.#periodMs !== undefined && this.#periodMs > 0) {
      const clock = this.#cluster.clock;
      this.#stopPeriodic = clock.every(periodFor(clock, this.#periodMs), () => this.#pass());
    }
    this.kick();
  }

  /** Runs a pass soon (coalesced with other kicks). */
  kick(): void {
    if (this.#stopped || this.#kickTimer !== undefined) return;
    this.#kickTimer = this.#cluster.clock.after(0, () => {
      this.#kickTimer = undefined;
      this.#pass();
    });
  }

  /** Runs a pass at simulated time `at` (only the earliest asked time is kept). */
  wakeAt(at: number): void {
    if (this.#stopped) return;
    if (this.#wake !== undefined && this.#wake.at <= at) return;
    this.#wake?.cancel();
    const clock = this.#cluster.clock;
    const cancel = clock.after(Math.max(0, at - clock.now()), () => {
      this.#wake = undefined;
      this.#pass();
    });
    this.#wake = { at, cancel };
  }

  /** Stops the period, pending kicks and wakes. */
  stop(): void {
    this.#stopped = true;
    this.#stopPeriodic?.();
    this.#stopPeriodic = undefined;
    this.#kickTimer?.();
    this.#kickTimer = undefined;
    this.#wake?.cancel();
    this.#wake = undefined;
  }

  #pass(): void {
    if (this.#stopped) return;
    try {
      this.#run();
    } catch (e) {
      this.#cluster.fail(this.name, "reconcile", e);
    }
  }
}
