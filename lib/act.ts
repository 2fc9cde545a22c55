/**
 * Carry out a plan: each action through the one module that may touch its
 * target (Kubernetes writes in lib/kube/writes.ts, drbdsetup in
 * lib/drbd/run.ts), concurrently, each bounded by the operations timeout.
 * In dry-run nothing is carried out: each intended action is printed once.
 *
 * @module
 */

import { type Action, actionKey, describeAction } from "./decide/types.ts";
import { ApiError } from "./kube/client.ts";
import { errorMessage } from "./errors.ts";
import { type WriteOutcome, WriteWithdrawn } from "./kube/writes.ts";
import type { Log } from "./log.ts";
import { type Clock, systemClock, type TimerId } from "./clock.ts";

/** How one action ended. */
export type ActionResult =
  /** The change was made (or, in dry-run, printed). */
  | "done"
  /** Nothing needed doing: already in the wanted state, gone or replaced. */
  | "already"
  /** It failed; the next cycle decides again. */
  | "failed"
  /** Dry-run: printed, not carried out. */
  | "dry-run"
  /** Dry-run: printed before, not printed again. */
  | "dry-run-repeat"
  /** Not tried: an earlier step for the same peer failed this cycle. */
  | "deferred"
  /** Not tried: re-checked right before, DRBD no longer supports it. */
  | "withdrawn";

/** What the executor needs from the edges. */
export interface Actuators {
  /**
   * Add a taint (lib/kube/writes.ts); `recheck` is asked again between
   * reading the Node and writing it (a reason: throw `WriteWithdrawn`).
   */
  addTaint: (
    node: string,
    taint: { key: string; effect: string },
    recheck?: () => string | undefined,
  ) => Promise<WriteOutcome>;
  /** Remove a taint (with a value: only a taint with that value). */
  removeTaint: (
    node: string,
    taint: { key: string; effect: string; value?: string },
  ) => Promise<WriteOutcome>;
  /** Evict a pod. */
  evictPod: (
    pod: { namespace: string; name: string; uid: string },
    grace: number,
  ) => Promise<WriteOutcome>;
  /** Force-delete a pod. */
  forceDeletePod: (pod: { namespace: string; name: string; uid: string }) => Promise<WriteOutcome>;
  /** Delete a VolumeAttachment. */
  deleteVolumeAttachment: (
    name: string,
    uid: string,
    grace: number | undefined,
  ) => Promise<WriteOutcome>;
  /** `drbdsetup secondary --force <resource>`. */
  forceSecondary: (resource: string) => Promise<WriteOutcome>;
  /** Record an Event (best effort). */
  recordEvent: (event: Action["events"][number], now: number) => Promise<void>;
}

/** One executed action and how it ended. */
export interface ExecutedAction {
  /** The action. */
  action: Action;
  /** Its result. */
  result: ActionResult;
  /** Error text when failed. */
  error?: string;
  /** When failed: how long the server asked us to wait (Retry-After), if it did. */
  retryAfterSeconds?: number;
  /** Time the action was issued (ms since epoch). */
  issuedAt: number;
}

/** Options of the executor. */
export interface ExecutorOptions {
  /** Print instead of acting. */
  dryRun: boolean;
  /** Bound on each action, ms. */
  operationsTimeoutMs: number;
  /** Where dry-run lines go (default: stdout). */
  print?: (line: string) => void;
  /** Action timeouts run on this clock, which also stamps `issuedAt` (default the system's). */
  clock?: Clock;
  /** Logger. */
  log: Log;
}

/** Options of {@linkcode Executor.execute}. */
export interface ExecuteOptions {
  /**
   * Asked right before each action (not in dry-run): a returned reason
   * withdraws it (see `withdrawnBy` in lib/decide/mod.ts).
   */
  recheck?: (action: Action) => string | undefined;
}

/** Carries out plans. */
export class Executor {
  readonly #actuators: Actuators;
  readonly #opts: ExecutorOptions;
  readonly #printed = new Set<string>();
  readonly #clock: Clock;

  /** Create an executor over the given actuators. */
  constructor(actuators: Actuators, options: ExecutorOptions) {
    this.#actuators = actuators;
    this.#opts = options;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Run a plan; never throws. Actions run in three phases, concurrently
   * within each: taints first (so a replacement cannot be scheduled back
   * onto a lost node), then pod removals and demotions, then
   * VolumeAttachment deletions (after the pods that used them). A peer whose
   * taint failed keeps its pods this cycle, and a peer whose pod removal
   * failed keeps its VolumeAttachment: detaching under a running pod is what
   * the rules avoid. Each action is re-checked right before it runs
   * (`options.recheck`): one withdrawn defers the later phases of its peer
   * too. Deferred and withdrawn actions are decided again next cycle.
   */
  async execute(plan: Action[], options: ExecuteOptions = {}): Promise<ExecutedAction[]> {
    const results: ExecutedAction[] = [];
    const failedPeers = new Set<string>();
    const withdrawn = (action: Action) => {
      if (this.#opts.dryRun) return undefined;
      return options.recheck?.(action);
    };
    for (const phase of [0, 1, 2]) {
      const now = plan.filter((action) => phaseOf(action) === phase);
      const run = now.filter((a) => a.peer === undefined || !failedPeers.has(a.peer));
      for (const action of now) {
        if (!run.includes(action)) {
          results.push({ action, result: "deferred", issuedAt: this.#clock.now() });
        }
      }
      const done = await Promise.all(run.map((action) => {
        const why = withdrawn(action);
        if (why === undefined) return this.#one(action, () => withdrawn(action));
        this.#opts.log.info(`not carrying out: ${describeAction(action)}: ${why}`, {
          reason: action.reason,
        });
        const result: ExecutedAction = { action, result: "withdrawn", issuedAt: this.#clock.now() };
        return Promise.resolve(result);
      }));
      for (const e of done) {
        if ((e.result === "failed" || e.result === "withdrawn") && e.action.peer) {
          failedPeers.add(e.action.peer);
        }
      }
      results.push(...done);
    }
    return results;
  }

  async #one(action: Action, recheck: () => string | undefined): Promise<ExecutedAction> {
    const issuedAt = this.#clock.now();
    const text = describeAction(action);
    if (this.#opts.dryRun) {
      // The plan is recomputed every cycle (and its reasons mention elapsed
      // time); say each intended action on each target once.
      const key = actionKey(action);
      if (this.#printed.has(key)) return { action, result: "dry-run-repeat", issuedAt };
      this.#printed.add(key);
      (this.#opts.print ?? printLine)(`dry-run: would ${text}: ${action.reason}`);
      return { action, result: "dry-run", issuedAt };
    }
    try {
      const outcome = await withTimeout(
        this.#dispatch(action, recheck),
        this.#opts.operationsTimeoutMs,
        text,
        this.#clock,
      );
      this.#opts.log.info(`${outcome === "done" ? "did" : "nothing to do for"}: ${text}`, {
        reason: action.reason,
      });
      if (outcome === "done") await this.#recordEvents(action);
      return { action, result: outcome, issuedAt };
    } catch (err) {
      if (err instanceof WriteWithdrawn) {
        this.#opts.log.info(`not carrying out: ${text}: ${err.why}`, { reason: action.reason });
        return { action, result: "withdrawn", issuedAt };
      }
      const error = errorMessage(err);
      this.#opts.log.warn(`failed to ${text}: ${error}; will retry`, { reason: action.reason });
      const retryAfterSeconds = err instanceof ApiError ? err.retryAfterSeconds : undefined;
      return { action, result: "failed", error, retryAfterSeconds, issuedAt };
    }
  }

  #dispatch(action: Action, recheck: () => string | undefined): Promise<WriteOutcome> {
    const a = this.#actuators;
    switch (action.kind) {
      case "taint-node":
        return a.addTaint(action.node, action.taint, recheck);
      case "untaint-node":
        return a.removeTaint(action.node, action.taint);
      case "evict-pod":
        return a.evictPod(action.pod, action.gracePeriodSeconds);
      case "force-delete-pod":
        return a.forceDeletePod(action.pod);
      case "delete-volume-attachment":
        return a.deleteVolumeAttachment(action.name, action.uid, action.gracePeriodSeconds);
      case "force-demote":
        return a.forceSecondary(action.resource);
    }
  }

  async #recordEvents(action: Action): Promise<void> {
    for (const event of action.events) {
      try {
        await withTimeout(
          this.#actuators.recordEvent(event, this.#clock.now()),
          this.#opts.operationsTimeoutMs,
          "event",
          this.#clock,
        );
      } catch (err) {
        // Events are informational: a failure is logged, never retried.
        this.#opts.log.warn(
          `could not record event ${event.reason} on ${event.regarding.kind} ${event.regarding.name}: ${
            errorMessage(err)
          }`,
        );
      }
    }
  }
}

function phaseOf(action: Action): number {
  switch (action.kind) {
    case "taint-node":
    case "untaint-node":
      return 0;
    case "evict-pod":
    case "force-delete-pod":
    case "force-demote":
      return 1;
    case "delete-volume-attachment":
      return 2;
  }
}

function printLine(line: string): void {
  console.log(line);
}

/** Reject with a clear message when `promise` takes longer than `ms`. */
export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
  clock: Clock = systemClock,
): Promise<T> {
  if (ms <= 0) return promise;
  let timer: TimerId;
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(() => reject(new Error(`${what}: no result within ${ms}ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clock.clearTimeout(timer));
}
