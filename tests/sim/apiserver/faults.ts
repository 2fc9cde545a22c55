/**
 * Injected faults: make chosen requests fail, slow down or hang.
 *
 * A fault matches on verb, resource, namespace and name (each optional);
 * `times` limits how many requests it hits, `rate` makes it hit only a share
 * of them (drawn from a seeded generator so runs repeat). Every matching
 * fault applies: latencies add up, the first one with a `status` decides the
 * answer, any `hang` keeps the request open until the client gives up or the
 * server closes, and an `until` holds it until the test lets it go.
 *
 * @module
 */

import { mulberry32 } from "../random.ts";

/** What a test asks for. */
export interface FaultSpec {
  /** `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `evict`, `discovery`. */
  verb?: string;
  /** Resource plural (`pods` matches its subresources too) or `pods/status`. */
  resource?: string;
  /** Namespace the request is in. */
  namespace?: string;
  /** Object name in the URL. */
  name?: string;
  /** Answer with a Status of this code (500, 429, 503, ...). */
  status?: number;
  /** Message of that Status. */
  message?: string;
  /** `details.retryAfterSeconds` and `Retry-After` of that Status. */
  retryAfterSeconds?: number;
  /** Number of requests to hit, then the fault is gone (default: unlimited). */
  times?: number;
  /** Share of matching requests to hit, 0..1 (default 1). */
  rate?: number;
  /** Delay before answering (or before failing, with `status`). */
  latencyMs?: number;
  /** Never answer. */
  hang?: boolean;
  /**
   * Hold the request until this settles (after any latency), then answer
   * as usual (or with `status`): the test decides when the answer goes out.
   */
  until?: Promise<unknown>;
}

/** The request a fault is matched against. */
export interface FaultTarget {
  /** Verb of the request. */
  verb: string;
  /** Resource plural, if a resource path. */
  resource?: string;
  /** Subresource, if any. */
  subresource?: string;
  /** Namespace, if any. */
  namespace?: string;
  /** Name, if any. */
  name?: string;
}

/** The combined effect of all faults matching one request. */
export interface FaultEffect {
  /** Total delay. */
  latencyMs: number;
  /** The first status asked for. */
  status?: number;
  /** Its message. */
  message?: string;
  /** Its retryAfterSeconds. */
  retryAfterSeconds?: number;
  /** Whether to hang. */
  hang: boolean;
  /** What to wait for before answering (every `until` of the matching faults). */
  until: Promise<unknown>[];
}

interface Entry {
  id: number;
  spec: FaultSpec;
  left: number;
}

/** The set of active faults of one server. */
export class Faults {
  #entries: Entry[] = [];
  #nextId = 1;
  #random: () => number;

  /** Creates an empty set; `seed` fixes the `rate` draws. */
  constructor(seed = 1) {
    this.#random = mulberry32(seed);
  }

  /** Adds a fault; returns its id. */
  add(spec: FaultSpec): number {
    const id = this.#nextId++;
    this.#entries.push({ id, spec: { ...spec }, left: spec.times ?? Infinity });
    return id;
  }

  /** Removes one fault. */
  remove(id: number): void {
    this.#entries = this.#entries.filter((e) => e.id !== id);
  }

  /** Removes every fault. */
  clear(): void {
    this.#entries = [];
  }

  /** The active faults with their ids. */
  list(): { id: number; spec: FaultSpec; left: number }[] {
    return this.#entries.map((e) => ({ id: e.id, spec: { ...e.spec }, left: e.left }));
  }

  /** Applies matching faults to a request; undefined when none hits. */
  take(target: FaultTarget): FaultEffect | undefined {
    let effect: FaultEffect | undefined;
    for (const e of [...this.#entries]) {
      if (!matches(e.spec, target)) continue;
      if (e.spec.rate !== undefined && this.#random() >= e.spec.rate) continue;
      e.left -= 1;
      if (e.left <= 0) this.remove(e.id);
      effect ??= { latencyMs: 0, hang: false, until: [] };
      effect.latencyMs += e.spec.latencyMs ?? 0;
      if (e.spec.hang) effect.hang = true;
      if (e.spec.until !== undefined) effect.until.push(e.spec.until);
      if (e.spec.status !== undefined && effect.status === undefined) {
        effect.status = e.spec.status;
        effect.message = e.spec.message;
        effect.retryAfterSeconds = e.spec.retryAfterSeconds;
      }
    }
    return effect;
  }
}

function matches(spec: FaultSpec, target: FaultTarget): boolean {
  if (spec.verb !== undefined && spec.verb !== target.verb) return false;
  if (spec.resource !== undefined) {
    if (spec.resource.includes("/")) {
      if (spec.resource !== `${target.resource}/${target.subresource}`) return false;
    } else if (spec.resource !== target.resource) return false;
  }
  if (spec.namespace !== undefined && spec.namespace !== target.namespace) return false;
  if (spec.name !== undefined && spec.name !== target.name) return false;
  return true;
}
