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
import { decide, peersToInspect, recordIssued } from "./decide/mod.ts";
import {
  type Action,
  type Decision,
  emptyMemory,
  type Memory,
  type PeerView,
  type Snapshot,
} from "./decide/types.ts";
import type { DrbdSample } from "./drbd/model.ts";
import { errorMessage } from "./kube/client.ts";
import type { Log } from "./log.ts";
import type { Options } from "./options.ts";

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
  /** Called after every cycle (metrics, status). */
  onCycle?: (report: CycleReport) => void;
  /** Clock (ms since epoch). */
  now?: () => number;
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
  #lastReport: CycleReport | undefined;
  #lastCycleEndedAt = 0;
  #lastHeldBack: string | undefined;

  /** Create a loop; `run()` starts it. */
  constructor(deps: LoopDeps) {
    this.#deps = deps;
  }

  /** Ask for a cycle as soon as possible (DRBD or cache change). */
  wake(): void {
    this.#wakeRequested = true;
    this.#wakeUp?.();
  }

  /** The last cycle's report. */
  get lastReport(): CycleReport | undefined {
    return this.#lastReport;
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
        await this.#waitForWake(this.#deps.options.reconcileInterval, signal);
        if (signal.aborted) break;
        await this.cycle();
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  async #waitForWake(maxMs: number, signal: AbortSignal): Promise<void> {
    if (this.#wakeRequested || signal.aborted) {
      this.#wakeRequested = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.#wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(finish, maxMs);
      this.#wakeUp = finish;
    });
    this.#wakeRequested = false;
  }

  /** One cycle: snapshot → decide → act → record. Never throws. */
  async cycle(): Promise<CycleReport | undefined> {
    const d = this.#deps;
    const now = d.now ?? Date.now;
    const startedAt = now();
    try {
      const partial = {
        nodeName: d.options.nodeName,
        drbd: d.sampleDrbd(),
        ...d.readCluster(),
      };
      const peers = new Map<string, PeerView>();
      const wanted = peersToInspect(partial, d.options);
      const views = await Promise.all(wanted.map((node) => d.fetchPeer(node)));
      wanted.forEach((node, i) => peers.set(node, views[i]));
      const snapshot: Snapshot = { ...partial, peers };
      const decidedAt = now();
      const decision = decide(snapshot, this.#memory, d.options, decidedAt);
      this.#logHeldBack(decision.heldBack);
      const executed = await d.executor.execute(decision.plan);
      const issued = executed.filter((e) => e.result === "done" || e.result === "already")
        .map((e) => e.action);
      // Dry-run records what it would have issued, so its timers and
      // protections evolve exactly like a real run's.
      const dryIssued = executed.filter((e) =>
        e.result === "dry-run" || e.result === "dry-run-repeat"
      )
        .map((e) => e.action);
      const failOverReactions = reactionTimes(decision.memory, executed, startedAt);
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
      this.#lastReport = report;
      this.#lastCycleEndedAt = endedAt;
      d.onCycle?.(report);
      return report;
    } catch (err) {
      d.log.error(`decision cycle failed: ${errorMessage(err)}`);
      return undefined;
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
function reactionTimes(memory: Memory, executed: ExecutedAction[], _startedAt: number): number[] {
  const out: number[] = [];
  for (const e of executed) {
    if (e.result !== "done") continue;
    const since = failOverStart(memory, e.action);
    if (since !== undefined) out.push(Math.max(0, (e.issuedAt - since) / 1000));
  }
  return out;
}

function failOverStart(memory: Memory, action: Action): number | undefined {
  if (action.resource === undefined) return undefined;
  let earliest: number | undefined;
  for (const [key, since] of memory.failOverSince) {
    if (key.startsWith(`${action.resource}/`) && (earliest === undefined || since < earliest)) {
      earliest = since;
    }
  }
  return earliest;
}
