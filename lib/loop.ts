/**
 * The agent's single async loop:
 * wait for a wake (DRBD change, cache change, reconcile timer) → snapshot →
 * decide → act (or print) → record.
 *
 * A failing action is logged, counted and decided again next cycle; nothing
 * that goes wrong inside a cycle ends the loop.
 *
 * @module
 */

import type { ExecutedAction, Executor } from "./act.ts";
import { decide, peersToInspect, recordIssued, withdrawnBy } from "./decide/mod.ts";
import { isDestructive } from "./decide/protection.ts";
import {
  type Action,
  actionKey,
  type Decision,
  describeAction,
  emptyMemory,
  failOverKey,
  type Memory,
  type PeerView,
  type Snapshot,
} from "./decide/types.ts";
import type { DrbdSample } from "./drbd/model.ts";
import { errorMessage } from "./errors.ts";
import type { Log } from "./log.ts";
import type { Options } from "./options.ts";
import { type Clock, systemClock } from "./clock.ts";

/** Minimum time between the end of one cycle and the start of the next, ms. */
const minCycleGapMs = 100;
/** First wait before retrying a failed action, ms. */
const retryBackoffMinMs = 1_000;
/** Longest wait before retrying a failed action, ms. */
const retryBackoffMaxMs = 60_000;

/** The cluster part of a snapshot, read from the caches. */
export type ClusterView = Omit<Snapshot, "nodeName" | "drbd" | "peers">;

/** What the loop reads from and reports to. */
export interface LoopDeps {
  /** Agent options. */
  options: Options;
  /** Current DRBD state. */
  sampleDrbd: () => DrbdSample;
  /** Current cluster state from the caches. */
  readCluster: () => ClusterView;
  /** Read a lost peer's Node and pods. */
  fetchPeer: (nodeName: string) => Promise<PeerView>;
  /** Carries out plans. */
  executor: Executor;
  /**
   * Asked right before a plan with destructive actions is carried out (not
   * in dry-run); a returned reason vetoes the plan. The agent re-reads its
   * own Node here, so a pause annotation set a moment ago is honoured even
   * if the watch lags.
   */
  confirmPlan?: () => Promise<string | undefined>;
  /** Called after every cycle (metrics, status). */
  onCycle?: (report: CycleReport) => void;
  /** Time and timers (default the system's). */
  clock?: Clock;
  /** Logger. */
  log: Log;
}

/** What one cycle saw, decided and did. */
export interface CycleReport {
  /** The snapshot decided on. */
  snapshot: Snapshot;
  /** The decision. */
  decision: Decision;
  /** Executed actions with results. */
  executed: ExecutedAction[];
  /** When the cycle started and ended (ms since epoch). */
  startedAt: number;
  /** End of the cycle. */
  endedAt: number;
  /** Fail-over actions issued this cycle: seconds since the agent first saw the lost peer. */
  failOverReactions: number[];
}

/** The decision loop. */
export class AgentLoop {
  readonly #deps: LoopDeps;
  #memory: Memory = emptyMemory();
  #wakeRequested = false;
  #wakeUp: (() => void) | undefined;
  #lastCycleEndedAt = 0;
  #cycleStartedAt: number | undefined;
  #lastHeldBack: string | undefined;
  #lastVeto: string | undefined;
  #failures = new Map<string, { count: number; until: number }>();
  #wakeAt: number | undefined;
  readonly #clock: Clock;

  /** Create a loop; `run()` starts it. */
  constructor(deps: LoopDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
  }

  /** Ask for a cycle as soon as possible (DRBD or cache change). */
  wake(): void {
    this.#wakeRequested = true;
    this.#wakeUp?.();
  }

  /** Start of the cycle running now (ms since epoch), undefined between cycles. */
  get cycleStartedAt(): number | undefined {
    return this.#cycleStartedAt;
  }

  /** When the last cycle ended (ms since epoch), 0 if none yet. */
  get lastCycleEndedAt(): number {
    return this.#lastCycleEndedAt;
  }

  /** Run cycles until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const onAbort = () => this.#wakeUp?.();
    signal.addEventListener("abort", onAbort);
    try {
      while (!signal.aborted) {
        await this.#waitForWake(this.#nextSleep(), signal);
        if (signal.aborted) break;
        await this.cycle();
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Until the reconcile interval ends or the last decision's earliest timer matures. */
  #nextSleep(): number {
    const interval = this.#deps.options.reconcileInterval;
    const now = this.#clock.now();
    // Also wake when a failed action's backoff ends.
    const deadlines = [...this.#failures.values()].map((f) => f.until);
    if (this.#wakeAt !== undefined) deadlines.push(this.#wakeAt);
    const next = deadlines.filter((d) => d > now);
    return next.length === 0 ? interval : Math.max(0, Math.min(interval, Math.min(...next) - now));
  }

  async #waitForWake(maxMs: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    // A burst of changes (a relist, a flapping link) wakes the loop many
    // times; cycles are spaced by at least minCycleGapMs.
    const gap = this.#lastCycleEndedAt + minCycleGapMs - this.#clock.now();
    if (this.#wakeRequested) {
      if (gap > 0) await this.#sleep(gap);
      this.#wakeRequested = false;
      return;
    }
    await this.#sleep(maxMs);
    this.#wakeRequested = false;
  }

  /** Sleep up to `ms`; `wake()` or abort ends it early (outside the debounce). */
  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const finish = () => {
        this.#clock.clearTimeout(timer);
        this.#wakeUp = undefined;
        resolve();
      };
      const timer = this.#clock.setTimeout(finish, ms);
      this.#wakeUp = finish;
    });
  }

  /** One cycle: snapshot → decide → act → record. Never throws. */
  async cycle(): Promise<CycleReport | undefined> {
    const d = this.#deps;
    const now = () => this.#clock.now();
    const startedAt = now();
    this.#cycleStartedAt = startedAt;
    try {
      const wanted = peersToInspect(
        {
          nodeName: d.options.nodeName,
          drbd: d.sampleDrbd(),
          ...d.readCluster(),
        },
        d.options,
        { memory: this.#memory, now: startedAt },
      );
      const peers = new Map<string, PeerView>();
      const views = await Promise.all(wanted.map((node) => d.fetchPeer(node)));
      wanted.forEach((node, i) => peers.set(node, views[i]));
      // Sample again after the (awaited) peer reads, so the decision uses
      // the newest DRBD and cache state; a peer that became lost meanwhile
      // was not fetched and is only acted on next cycle.
      const snapshot: Snapshot = {
        nodeName: d.options.nodeName,
        drbd: d.sampleDrbd(),
        ...d.readCluster(),
        peers,
      };
      const decidedAt = now();
      const decision = decide(snapshot, this.#memory, d.options, decidedAt);
      this.#wakeAt = decision.wakeAt;
      this.#logHeldBack(decision.heldBack);
      const plan = await this.#admit(decision.plan, decidedAt);
      const executed = await d.executor.execute(plan, {
        recheck: (action) => withdrawnBy(action, d.sampleDrbd(), snapshot),
      });
      this.#recordFailures(executed, now());
      const issued = executed.filter((e) => e.result === "done" || e.result === "already")
        .map((e) => e.action);
      // Dry-run records what it would have issued, so its timers and
      // protections evolve exactly like a real run's.
      const dryIssued = executed.filter((e) =>
        e.result === "dry-run" || e.result === "dry-run-repeat"
      )
        .map((e) => e.action);
      const failOverReactions = reactionTimes(decision.memory, executed);
      this.#memory = recordIssued(decision.memory, [...issued, ...dryIssued], decidedAt);
      const endedAt = now();
      const report: CycleReport = {
        snapshot,
        decision,
        executed,
        startedAt,
        endedAt,
        failOverReactions,
      };
      this.#lastCycleEndedAt = endedAt;
      d.onCycle?.(report);
      return report;
    } catch (err) {
      d.log.error(`decision cycle failed: ${errorMessage(err)}`);
      return undefined;
    } finally {
      this.#cycleStartedAt = undefined;
    }
  }

  /**
   * The part of a plan that may run now: actions that failed recently wait
   * out their backoff, and a plan with destructive actions must pass
   * `confirmPlan` (unless printing only).
   */
  async #admit(plan: Action[], now: number): Promise<Action[]> {
    const d = this.#deps;
    const waiting = (action: Action) => (this.#failures.get(actionKey(action))?.until ?? 0) > now;
    // A peer whose taint waits out a backoff waits with all its actions.
    const heldPeers = new Set(
      plan.filter((a) => a.kind === "taint-node" && a.peer && waiting(a)).map((a) => a.peer!),
    );
    const ready = plan.filter((action) => {
      const failure = this.#failures.get(actionKey(action));
      if (action.peer !== undefined && heldPeers.has(action.peer) && action.kind !== "taint-node") {
        return false;
      }
      if (failure !== undefined && failure.until > now) {
        d.log.debug(
          `waiting until ${new Date(failure.until).toISOString()} to retry: ${
            describeAction(action)
          }`,
        );
        return false;
      }
      return true;
    });
    if (d.options.dryRun || !d.confirmPlan || !ready.some(isDestructive)) return ready;
    const veto = await d.confirmPlan();
    if (veto !== this.#lastVeto) {
      if (veto) d.log.warn(`not carrying out the plan: ${veto}`);
      this.#lastVeto = veto;
    }
    // Paused means nothing happens to other nodes either: no peer taints.
    return veto ? ready.filter((a) => !isDestructive(a) && a.peer === undefined) : ready;
  }

  /** Failed actions back off exponentially (1 s doubling to 1 min, or the server's Retry-After). */
  #recordFailures(executed: ExecutedAction[], now: number): void {
    for (const e of executed) {
      const key = actionKey(e.action);
      if (e.result !== "failed") {
        this.#failures.delete(key);
        continue;
      }
      const count = (this.#failures.get(key)?.count ?? 0) + 1;
      const backoff = Math.min(retryBackoffMinMs * 2 ** (count - 1), retryBackoffMaxMs);
      // A server's Retry-After is honoured up to the longest backoff, so it
      // cannot park a fail-over for long.
      const wait = Math.min(
        Math.max(backoff, (e.retryAfterSeconds ?? 0) * 1000),
        retryBackoffMaxMs,
      );
      this.#failures.set(key, { count, until: now + wait });
    }
    // Forget failures of actions no longer planned once their wait is over.
    for (const [key, failure] of this.#failures) {
      if (failure.until + retryBackoffMaxMs < now) this.#failures.delete(key);
    }
  }

  #logHeldBack(heldBack: string | undefined): void {
    if (heldBack !== this.#lastHeldBack) {
      if (heldBack) this.#deps.log.warn(`holding back all actions: ${heldBack}`);
      else if (this.#lastHeldBack) this.#deps.log.info("no longer holding back actions");
      this.#lastHeldBack = heldBack;
    }
  }
}

/** Seconds from the first sight of a lost peer to each fail-over action issued now. */
function reactionTimes(memory: Memory, executed: ExecutedAction[]): number[] {
  const out: number[] = [];
  for (const e of executed) {
    const { peer, resource } = e.action;
    if (e.result !== "done" || peer === undefined || resource === undefined) continue;
    const since = memory.failOverSince.get(failOverKey(resource, peer));
    if (since !== undefined) out.push(Math.max(0, (e.issuedAt - since) / 1000));
  }
  return out;
}
