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

interface Timer {
  /** Simulated time at which it is due. */
  due: number;
  /** Creation order: timers due at the same time run in the order they were made. */
  seq: number;
  fn: () => void;
  /** For `every`: the simulated period. */
  periodMs?: number;
}

/**
 * A scaled clock with timers that can all be cancelled at once.
 *
 * Its timers run in the order of their simulated due time (ties in the order
 * they were made), one per macrotask, however late the process gets to them.
 * Plain `setTimeout` does not promise that: on a loaded machine two timers
 * made together, 1 and 2 ms apart, were seen running the later one first, so
 * a DRBD connection stepped Unconnected → Connecting before NetworkFailure →
 * Unconnected and stayed Unconnected.
 */
export class SimClock {
  /** How many simulated milliseconds pass per real millisecond. */
  readonly scale: number;
  readonly #startReal: number;
  readonly #startSim: number;
  /** Pending timers, sorted by (due, seq). */
  #queue: Timer[] = [];
  #seq = 0;
  #handle: ReturnType<typeof setTimeout> | undefined;
  /** The due time the real timer is armed for. */
  #armedFor: number | undefined;

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
    return this.#add({ due: this.now() + Math.max(0, simMs), seq: this.#seq++, fn });
  }

  /**
   * Run `fn` every `simMs` simulated milliseconds (at least one real
   * millisecond apart); returns a cancel function. Like `setInterval`, a
   * late run is not made up for: the next one is a period after it.
   */
  every(simMs: number, fn: () => void): () => void {
    const periodMs = Math.max(simMs, this.scale);
    return this.#add({ due: this.now() + periodMs, seq: this.#seq++, fn, periodMs });
  }

  /** Cancel every timer made by this clock. */
  stop(): void {
    this.#queue = [];
    this.#arm();
  }

  #add(timer: Timer): () => void {
    this.#insert(timer);
    this.#arm();
    return () => {
      const i = this.#queue.indexOf(timer);
      if (i >= 0) {
        this.#queue.splice(i, 1);
        this.#arm();
      }
    };
  }

  #insert(timer: Timer): void {
    let lo = 0;
    let hi = this.#queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const q = this.#queue[mid];
      if (q.due < timer.due || (q.due === timer.due && q.seq < timer.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.#queue.splice(lo, 0, timer);
  }

  /** Arms one real timer for the earliest due timer (or none). */
  #arm(): void {
    const first = this.#queue[0];
    if (first !== undefined && this.#armedFor === first.due) return;
    if (this.#handle !== undefined) clearTimeout(this.#handle);
    this.#handle = undefined;
    this.#armedFor = undefined;
    if (first === undefined) return;
    this.#armedFor = first.due;
    this.#handle = setTimeout(() => this.#fire(), Math.max(0, this.real(first.due - this.now())));
  }

  /** Runs the earliest timer if it is due, then arms for the next. */
  #fire(): void {
    this.#handle = undefined;
    this.#armedFor = undefined;
    const first = this.#queue[0];
    if (first === undefined || first.due > this.now()) {
      this.#arm();
      return;
    }
    this.#queue.shift();
    if (first.periodMs !== undefined) {
      first.due = this.now() + first.periodMs;
      first.seq = this.#seq++;
      this.#insert(first);
    }
    try {
      first.fn();
    } finally {
      this.#arm();
    }
  }
}
