/**
 * A small in-memory stand-in for the DRBD side, for the controllers' own
 * tests: per node and resource a role (Primary/Secondary) and an open count;
 * nodes can be down, resources frozen or failing. Promotion is refused while
 * another node that is up is Primary; demotion while the device is open;
 * opening auto-promotes like DRBD's auto-promote; closing hangs (returns
 * false) while I/O is frozen.
 *
 * It is not the DRBD simulation (that one lives in `tests/sim/drbd/`); it
 * only answers the {@link DrbdHooks} calls plausibly and records them.
 *
 * @module
 */

import type { DrbdHooks, DrbdOpResult, IoState } from "../drbd_hooks.ts";

/** One call made to the stub. */
export interface DrbdCall {
  /** Which hook. */
  op: "promote" | "demote" | "open" | "close";
  /** Node asked. */
  node: string;
  /** Resource asked. */
  resource: string;
  /** Whether it succeeded. */
  ok: boolean;
}

interface Replica {
  primary: boolean;
  open: number;
}

/** In-memory DRBD hooks for tests. */
export class StubDrbd implements DrbdHooks {
  /** Every call, oldest first. */
  readonly calls: DrbdCall[] = [];
  #replicas = new Map<string, Replica>();
  #down = new Set<string>();
  #io = new Map<string, IoState>();
  #listeners = new Set<() => void>();

  #replica(node: string, resource: string): Replica {
    const key = `${node}/${resource}`;
    let r = this.#replicas.get(key);
    if (r === undefined) {
      r = { primary: false, open: 0 };
      this.#replicas.set(key, r);
    }
    return r;
  }

  #record(op: DrbdCall["op"], node: string, resource: string, ok: boolean): void {
    this.calls.push({ op, node, resource, ok });
  }

  #changed(): void {
    for (const l of [...this.#listeners]) l();
  }

  /** Whether `node` is Primary for `resource`. */
  isPrimary(node: string, resource: string): boolean {
    return this.#replica(node, resource).primary;
  }

  /** How many times `resource` is open on `node`. */
  openCount(node: string, resource: string): number {
    return this.#replica(node, resource).open;
  }

  /** The node stops answering (its replicas keep their last role). */
  crashNode(node: string): void {
    this.#down.add(node);
    this.#changed();
  }

  /** The node answers again; a rebooted node comes back Secondary with nothing open. */
  restoreNode(node: string, options: { rebooted?: boolean } = {}): void {
    this.#down.delete(node);
    if (options.rebooted) {
      for (const [key, r] of this.#replicas) {
        if (key.startsWith(`${node}/`)) {
          r.primary = false;
          r.open = 0;
        }
      }
    }
    this.#changed();
  }

  /** Sets the I/O behaviour of `resource` on `node` (`ok` by default). */
  setIo(node: string, resource: string, state: IoState): void {
    this.#io.set(`${node}/${resource}`, state);
    this.#changed();
  }

  #otherPrimary(node: string, resource: string): boolean {
    for (const [key, r] of this.#replicas) {
      const [other, res] = key.split("/");
      if (res === resource && other !== node && r.primary && !this.#down.has(other)) return true;
    }
    return false;
  }

  /** Promotes, unless the node is down or another live node is Primary. */
  promote(node: string, resource: string): DrbdOpResult {
    if (this.#down.has(node)) {
      this.#record("promote", node, resource, false);
      return { ok: false, error: `node ${node} is not reachable` };
    }
    if (this.#otherPrimary(node, resource)) {
      this.#record("promote", node, resource, false);
      return { ok: false, error: multiplePrimaries(resource) };
    }
    this.#replica(node, resource).primary = true;
    this.#record("promote", node, resource, true);
    this.#changed();
    return { ok: true };
  }

  /** Demotes, unless the node is down or the device is open. */
  demote(node: string, resource: string): DrbdOpResult {
    const r = this.#replica(node, resource);
    if (this.#down.has(node)) {
      this.#record("demote", node, resource, false);
      return { ok: false, error: `node ${node} is not reachable` };
    }
    if (r.open > 0) {
      this.#record("demote", node, resource, false);
      return {
        ok: false,
        error: `${resource}: State change failed: (-12) Device is held open by someone`,
      };
    }
    r.primary = false;
    this.#record("demote", node, resource, true);
    this.#changed();
    return { ok: true };
  }

  /** Opens the device; a Secondary auto-promotes unless another live node is Primary. */
  open(node: string, resource: string): DrbdOpResult {
    const r = this.#replica(node, resource);
    if (this.#down.has(node)) {
      this.#record("open", node, resource, false);
      return { ok: false, error: `node ${node} is not reachable` };
    }
    if (!r.primary && this.#otherPrimary(node, resource)) {
      this.#record("open", node, resource, false);
      return { ok: false, error: multiplePrimaries(resource) };
    }
    const promoted = !r.primary;
    r.primary = true;
    r.open += 1;
    this.#record("open", node, resource, true);
    if (promoted) this.#changed();
    return { ok: true };
  }

  /** Closes the device; false (hangs) while I/O is frozen. */
  close(node: string, resource: string): boolean {
    const r = this.#replica(node, resource);
    if (this.ioState(node, resource) === "frozen") {
      this.#record("close", node, resource, false);
      return false;
    }
    if (r.open > 0) r.open -= 1;
    this.#record("close", node, resource, true);
    return true;
  }

  /** `absent` for a down node, else what {@link StubDrbd.setIo} set (default `ok`). */
  ioState(node: string, resource: string): IoState {
    if (this.#down.has(node)) return "absent";
    return this.#io.get(`${node}/${resource}`) ?? "ok";
  }

  /** Calls `listener` after every state change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

function multiplePrimaries(resource: string): string {
  return `${resource}: State change failed: (-1) Multiple primaries not allowed by config`;
}
