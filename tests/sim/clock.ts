/**
 * The simulated cluster's clock: real time, optionally sped up, or virtual.
 *
 * Kubernetes' default constants (50 s node-monitor grace period, 300 s
 * toleration, 6 min force detach) are given in simulated time; with
 * `scale: 20` a simulated minute passes in three real seconds. The agents run
 * in real time (they are separate processes with their own flags), so
 * scenarios that measure the agent use scale 1 for Kubernetes, and the stock
 * timeline (no agent) is shown sped up.
 *
 * A virtual clock (`virtual: true`) does not follow real time at all: time
 * stands still until {@linkcode SimClock.run} moves it to the next timer,
 * after everything the previous timer set off has settled. With every actor
 * in one process on one virtual clock (the deterministic simulation), a run
 * depends only on its seed.
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
  /** How many simulated milliseconds pass per real millisecond (1 for a virtual clock). */
  readonly scale: number;
  /** True when time moves only through {@linkcode SimClock.run}. */
  readonly virtual: boolean;
  readonly #startReal: number;
  readonly #startSim: number;
  /** Pending timers, sorted by (due, seq). */
  #queue: Timer[] = [];
  #seq = 0;
  #handle: ReturnType<typeof setTimeout> | undefined;
  /** The due time the real timer is armed for. */
  #armedFor: number | undefined;
  /** A virtual clock's time. */
  #virtualNow: number;
  #running = false;

  /**
   * A clock starting now (or at `startAt` simulated epoch ms); virtual, it
   * starts at `startAt` (default 2026-01-01T00:00:00Z) and stands still.
   */
  constructor(options: { scale?: number; startAt?: number; virtual?: boolean } = {}) {
    this.virtual = options.virtual ?? false;
    this.scale = options.scale ?? 1;
    if (!(this.scale > 0)) {
      throw new RangeError(`Expected a positive time scale, got ${this.scale}`);
    }
    if (this.virtual && this.scale !== 1) {
      throw new RangeError("A virtual clock has no time scale");
    }
    this.#startReal = Date.now();
    this.#startSim = options.startAt ?? (this.virtual ? virtualEpoch : this.#startReal);
    this.#virtualNow = this.#startSim;
  }

  /** Simulated time, ms since the epoch. */
  now(): number {
    if (this.virtual) return this.#virtualNow;
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
   * Run `fn` at simulated epoch time `simEpochMs` (at once if that has
   * passed); returns a cancel function. Unlike {@linkcode SimClock.after},
   * the due time does not depend on when the call is made.
   */
  at(simEpochMs: number, fn: () => void): () => void {
    return this.#add({ due: simEpochMs, seq: this.#seq++, fn });
  }

  /**
   * Run `fn` every `simMs` simulated milliseconds (at least one real
   * millisecond apart); returns a cancel function. Like `setInterval`, a
   * late run is not made up for: the next one is a period after it.
   */
  every(simMs: number, fn: () => void): () => void {
    const periodMs = this.virtual ? Math.max(simMs, 1) : Math.max(simMs, this.scale);
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

  /** Simulated time at which the next timer is due, or undefined when none is pending. */
  nextDue(): number | undefined {
    return this.#queue[0]?.due;
  }

  /**
   * Moves a virtual clock forward: runs every timer due until `untilMs`
   * (simulated epoch ms), in (due, creation) order, each after everything the
   * previous one started has settled, then leaves the clock at `untilMs`.
   * Stops early, at the time of the timer after which it held, when `stop`
   * returns true. Returns the number of timers run.
   *
   * @throws {Error} when timers keep running without time moving (a
   *   zero-delay loop), or the clock is not virtual.
   */
  async run(untilMs: number, stop?: () => boolean): Promise<number> {
    if (!this.virtual) throw new Error("run() moves a virtual clock only");
    if (this.#running) throw new Error("run() is already running");
    this.#running = true;
    let fired = 0;
    let sameInstant = 0;
    try {
      await settle();
      while (stop?.() !== true) {
        const first = this.#queue[0];
        if (first === undefined || first.due > untilMs) break;
        if (first.due > this.#virtualNow) {
          this.#virtualNow = first.due;
          sameInstant = 0;
        } else if (++sameInstant > maxTimersPerInstant) {
          throw new Error(
            `more than ${maxTimersPerInstant} timers ran at ${
              new Date(this.#virtualNow).toISOString()
            } without time moving: a zero-delay loop`,
          );
        }
        this.#fire();
        fired++;
        await settle();
      }
      if (stop?.() !== true && untilMs > this.#virtualNow) this.#virtualNow = untilMs;
      return fired;
    } finally {
      this.#running = false;
    }
  }

  /** Arms one real timer for the earliest due timer (or none); a virtual clock arms none. */
  #arm(): void {
    if (this.virtual) return;
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
    if (this.virtual) {
      const timer = this.#queue.shift()!;
      if (timer.periodMs !== undefined) {
        timer.due = this.#virtualNow + timer.periodMs;
        timer.seq = this.#seq++;
        this.#insert(timer);
      }
      timer.fn();
      return;
    }
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

/** Where a virtual clock starts unless told: 2026-01-01T00:00:00Z. */
const virtualEpoch = Date.UTC(2026, 0, 1);

/** Timers that may run at one virtual instant before {@linkcode SimClock.run} calls it a loop. */
const maxTimersPerInstant = 100_000;

/**
 * One port pair for {@linkcode settle}: a message is a macrotask, which runs
 * after every pending microtask, and costs microseconds where `setTimeout(0)`
 * costs a millisecond or more. The receiving port keeps the process alive
 * only while a settle waits.
 */
let settlePort:
  | { receiver: MessagePort; sender: MessagePort; waiting: (() => void)[] }
  | undefined;

type Refable = MessagePort & { ref?: () => void; unref?: () => void };

/**
 * Waits until every microtask queued so far, and every microtask those
 * queue, has run: the promise chains a timer started have gone as far as
 * they can without another timer or outside I/O.
 */
export function settle(): Promise<void> {
  if (settlePort === undefined) {
    const channel = new MessageChannel();
    const state = {
      receiver: channel.port1,
      sender: channel.port2,
      waiting: [] as (() => void)[],
    };
    channel.port1.onmessage = () => {
      state.waiting.shift()?.();
      if (state.waiting.length === 0) (state.receiver as Refable).unref?.();
    };
    settlePort = state;
  }
  const port = settlePort;
  return new Promise<void>((resolve) => {
    port.waiting.push(resolve);
    (port.receiver as Refable).ref?.();
    port.sender.postMessage(0);
  });
}
