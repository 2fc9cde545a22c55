/**
 * A timeline of what a user would notice in the cluster, recorded from the
 * simulator's store: nodes going NotReady, taints, pods terminating,
 * disappearing, being scheduled and running, VolumeAttachments deleted,
 * Multi-Attach warnings and ha-controller's Events.
 *
 * @module
 */

import type { ApiServer, Change } from "./apiserver/mod.ts";
import type { SimClock } from "./clock.ts";

/** One milestone. */
export interface Milestone {
  /** Simulated ms since the timeline's start. */
  at: number;
  /** Real ms since the timeline's start. */
  realAt: number;
  /** What happened, one line. */
  what: string;
}

// deno-lint-ignore no-explicit-any
type Obj = any;

function ready(node: Obj): boolean {
  return (node?.status?.conditions ?? []).some((c: Obj) =>
    c.type === "Ready" && c.status === "True"
  );
}

function taintKeys(node: Obj): string[] {
  return (node?.spec?.taints ?? []).map((t: Obj) => `${t.key}:${t.effect}`);
}

function running(pod: Obj): boolean {
  return pod?.status?.phase === "Running" && !pod?.metadata?.deletionTimestamp;
}

/** Records milestones until `stop()`. */
export class Timeline {
  readonly #clock: SimClock;
  readonly #startSim: number;
  readonly #startReal: number;
  readonly #milestones: Milestone[] = [];
  readonly #unsubscribe: () => void;

  /** Start recording now. */
  constructor(server: ApiServer, clock: SimClock) {
    this.#clock = clock;
    this.#startSim = clock.now();
    this.#startReal = performance.now();
    this.#unsubscribe = server.store.subscribe((change) => this.#observe(change));
  }

  /** Stop recording. */
  stop(): void {
    this.#unsubscribe();
  }

  /** Everything recorded so far, in order. */
  milestones(): Milestone[] {
    return [...this.#milestones];
  }

  /** The first milestone whose text matches, if any. */
  find(pattern: RegExp): Milestone | undefined {
    return this.#milestones.find((m) => pattern.test(m.what));
  }

  /** Add a milestone from outside (e.g. "node-b crashed"). */
  mark(what: string): void {
    this.#milestones.push({
      at: this.#clock.now() - this.#startSim,
      realAt: performance.now() - this.#startReal,
      what,
    });
  }

  #observe(change: Change): void {
    const obj: Obj = change.object;
    const prev: Obj = change.previous;
    const kind = obj?.kind ?? "";
    const name = obj?.metadata?.name ?? "";
    const ns = obj?.metadata?.namespace;
    const id = ns ? `${ns}/${name}` : name;
    switch (kind) {
      case "Node": {
        if (change.type === "MODIFIED" && ready(prev) && !ready(obj)) {
          this.mark(`node ${name} NotReady`);
        }
        if (change.type === "MODIFIED" && !ready(prev) && ready(obj)) {
          this.mark(`node ${name} Ready`);
        }
        const before = new Set(taintKeys(prev));
        const after = new Set(taintKeys(obj));
        for (const t of after) if (!before.has(t)) this.mark(`node ${name} tainted ${t}`);
        for (const t of before) if (!after.has(t)) this.mark(`node ${name} untainted ${t}`);
        break;
      }
      case "Pod": {
        if (change.type === "DELETED") {
          this.mark(`pod ${id} deleted (was on ${obj?.spec?.nodeName || "no node"})`);
        } else if (change.type === "ADDED") {
          this.mark(`pod ${id} created`);
        } else {
          if (!prev?.metadata?.deletionTimestamp && obj?.metadata?.deletionTimestamp) {
            this.mark(`pod ${id} Terminating on ${obj?.spec?.nodeName}`);
          }
          if (!prev?.spec?.nodeName && obj?.spec?.nodeName) {
            this.mark(`pod ${id} scheduled to ${obj.spec.nodeName}`);
          }
          if (!running(prev) && running(obj)) {
            this.mark(`pod ${id} Running on ${obj.spec?.nodeName}`);
          }
        }
        break;
      }
      case "VolumeAttachment": {
        if (change.type === "ADDED") {
          this.mark(`volumeattachment ${name} created for ${obj?.spec?.nodeName}`);
        }
        if (change.type === "DELETED") {
          this.mark(`volumeattachment ${name} deleted (${obj?.spec?.nodeName})`);
        }
        break;
      }
      case "Event": {
        if (change.type !== "ADDED") break;
        const reason = obj.reason ?? "";
        const controller = obj.reportingController ?? obj.reportingComponent ??
          obj.source?.component ?? "";
        const about = obj.regarding ?? obj.involvedObject ?? {};
        if (reason === "FailedAttachVolume" || String(controller).includes("ha-controller")) {
          this.mark(
            `event ${reason} on ${about.kind ?? "?"} ${about.name ?? "?"}${
              controller ? ` by ${controller}` : ""
            }`,
          );
        }
        break;
      }
    }
  }
}

/** Format milestones as `  +12.3s  what` lines (simulated seconds). */
export function formatTimeline(milestones: Milestone[]): string {
  return milestones.map((m) => `  +${(m.at / 1000).toFixed(1).padStart(6)}s  ${m.what}`).join("\n");
}
