/**
 * The simulated cluster's clock: real time, optionally sped up.
 *
 * Kubernetes' default constants (50 s node-monitor grace period, 300 s
 * toleration, 6 min force detach) are given in simulated time; with
 * `scale: 20` a simulated minute passes in three real seconds. The agents run
 * in real time (they are separate processes with their own flags), so
 * scenarios that measure the agent use scale 1 for Kubernetes, and the stock
 * timeline (no agent) is shown sped up.
 *
 * @module
 */

/** A scaled clock with timers that can all be cancelled at once. */
export class SimClock {
  /** How many simulated milliseconds pass per real millisecond. */
  readonly scale: number;
  readonly #startReal: number;
  readonly #startSim: number;
  #timers = new Set<ReturnType<typeof setTimeout>>();

  /** A clock starting now (or at `startAt` simulated epoch ms). */
  constructor(options: { scale?: number; startAt?: number } = {}) {
    this.scale = options.scale ?? 1;
    if (!(this.scale > 0)) {
      throw new RangeError(`Expected a positive time scale, got ${this.scale}`);
    }
    this.#startReal = Date.now();
    this.#startSim = options.startAt ?? this.#startReal;
  }

  /** Simulated time, ms since the epoch. */
  now(): number {
    return this.#startSim + (Date.now() - this.#startReal) * this.scale;
  }

  /** Simulated time as a Date. */
  date(): Date {
    return new Date(this.now());
  }

  /** Real milliseconds for a simulated duration. */
  real(simMs: number): number {
    return simMs / this.scale;
  }

  /** Run `fn` after `simMs` simulated milliseconds; returns a cancel function. */
  after(simMs: number, fn: () => void): () => void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, Math.max(0, this.real(simMs)));
    this.#timers.add(timer);
    return () => {
      clearTimeout(timer);
      this.#timers.delete(timer);
    };
  }

  /** Run `fn` every `simMs` simulated milliseconds; returns a cancel function. */
  every(simMs: number, fn: () => void): () => void {
    const timer = setInterval(fn, Math.max(1, this.real(simMs)));
    this.#timers.add(timer);
    return () => {
      clearInterval(timer);
      this.#timers.delete(timer);
    };
  }

  /** Cancel every timer made by this clock. */
  stop(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}
