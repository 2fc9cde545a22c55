/**
 * Seeded pseudo-random numbers for the simulation: the same seed, the same
 * numbers, on every machine.
 *
 * @module
 */

/** Numbers in [0, 1) from a 32-bit seed (mulberry32). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit hash of a string (FNV-1a), to derive independent streams from one seed. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A seeded source with the draws the simulation needs. */
export class Random {
  /** The seed this source started from. */
  readonly seed: number;
  readonly #next: () => number;

  /** A source from `seed` (any integer; used modulo 2^32). */
  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#next = mulberry32(this.seed);
  }

  /** A number in [0, 1). */
  next(): number {
    return this.#next();
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.#next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.#next() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("Expected a non-empty list to pick from");
    return items[Math.floor(this.#next() * items.length)];
  }

  /**
   * An independent source for `label` (an agent, the API server): its draws
   * do not shift when another consumer draws more or less.
   */
  fork(label: string): Random {
    return new Random((this.seed ^ hash32(label)) >>> 0);
  }
}
