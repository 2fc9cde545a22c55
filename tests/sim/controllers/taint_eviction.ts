/**
 * The taint-eviction controller of kube-controller-manager: a pod on a node
 * with NoExecute taints is deleted at once when a taint is not tolerated,
 * after the smallest `tolerationSeconds` of the tolerations it uses, or never
 * when those tolerate forever (DaemonSet-like pods). The deletion is the
 * graceful one (empty DeleteOptions), so on a dead node the pod stays
 * Terminating. A pending eviction is cancelled when the taints go.
 *
 * @module
 */

import type { KubeObject } from "../apiserver/objects.ts";
import { pathString, rfc3339 } from "../apiserver/objects.ts";
import type { Cluster } from "./cluster.ts";
import { EventRecorder, referenceTo } from "./events.ts";
import type { Taint } from "./kube_util.ts";
import { conditionsOf, isTerminating, taintsOf, tolerates, tolerationsOf } from "./kube_util.ts";
import { Runner } from "./runner.ts";

/** An eviction waiting for its toleration to run out. */
interface ScheduledEviction {
  namespace: string;
  name: string;
  /** Simulated time the wait started. */
  start: number;
}

/**
 * Seconds the pod tolerates all of `taints`: `undefined` when some taint is
 * not tolerated (evict now), `Infinity` when the tolerations used have no
 * `tolerationSeconds`.
 */
export function tolerationSecondsFor(pod: KubeObject, taints: Taint[]): number | undefined {
  const tolerations = tolerationsOf(pod);
  let min = Infinity;
  for (const taint of taints) {
    const used = tolerations.filter((t) => tolerates(t, taint));
    if (used.length === 0) return undefined;
    for (const t of used) {
      if (typeof t.tolerationSeconds === "number") {
        min = Math.min(min, Math.max(0, t.tolerationSeconds));
      }
    }
  }
  return min;
}

/** The simulated taint-eviction controller. */
export class TaintEvictionController {
  /** `source.component` of its Events. */
  static readonly component = "taint-eviction-controller";
  /** Its loop. */
  readonly runner: Runner;
  #cluster: Cluster;
  #recorder: EventRecorder;
  #scheduled = new Map<string, ScheduledEviction>();

  /** A stopped controller; start its {@link runner}. */
  constructor(cluster: Cluster) {
    this.#cluster = cluster;
    this.#recorder = new EventRecorder(cluster, { component: TaintEvictionController.component });
    this.runner = new Runner(cluster, {
      name: TaintEvictionController.component,
      run: () => this.#reconcile(),
    });
  }

  #reconcile(): void {
    const now = this.#cluster.now();
    const noExecute = new Map<string, Taint[]>();
    for (const node of this.#cluster.list("nodes")) {
      const taints = taintsOf(node).filter((t) => t.effect === "NoExecute");
      if (taints.length > 0) noExecute.set(node.metadata.name!, taints);
    }
    const seen = new Set<string>();
    let nextWake = Infinity;
    for (const pod of this.#cluster.list("pods")) {
      const uid = pod.metadata.uid!;
      const nodeName = pathString(pod, "spec.nodeName");
      if (nodeName === "" || isTerminating(pod)) continue;
      seen.add(uid);
      const taints = noExecute.get(nodeName) ?? [];
      if (taints.length === 0) {
        this.#cancel(pod);
        continue;
      }
      const seconds = tolerationSecondsFor(pod, taints);
      if (seconds === Infinity) {
        this.#cancel(pod);
        continue;
      }
      if (seconds === undefined) {
        this.#evict(pod);
        continue;
      }
      let scheduled = this.#scheduled.get(uid);
      if (scheduled === undefined) {
        scheduled = { namespace: pod.metadata.namespace!, name: pod.metadata.name!, start: now };
        this.#scheduled.set(uid, scheduled);
      }
      const trigger = scheduled.start + seconds * 1000;
      if (now >= trigger) this.#evict(pod);
      else nextWake = Math.min(nextWake, trigger);
    }
    for (const uid of [...this.#scheduled.keys()]) if (!seen.has(uid)) this.#scheduled.delete(uid);
    if (nextWake !== Infinity) this.runner.wakeAt(nextWake);
  }

  #cancel(pod: KubeObject): void {
    const uid = pod.metadata.uid!;
    if (!this.#scheduled.delete(uid)) return;
    this.#recorder.event(referenceTo(pod, "Pod"), {
      type: "Normal",
      reason: "TaintManagerEviction",
      message: `Cancelling deletion of Pod ${pod.metadata.namespace}/${pod.metadata.name}`,
    });
  }

  #evict(pod: KubeObject): void {
    const component = TaintEvictionController.component;
    this.#scheduled.delete(pod.metadata.uid!);
    const ref = { namespace: pod.metadata.namespace, name: pod.metadata.name! };
    this.#recorder.event(referenceTo(pod, "Pod"), {
      type: "Normal",
      reason: "TaintManagerEviction",
      message: `Marking for deletion Pod ${ref.namespace}/${ref.name}`,
    });
    const next = structuredClone(pod);
    const conditions = conditionsOf(pod).filter((c) => c.type !== "DisruptionTarget");
    conditions.push({
      type: "DisruptionTarget",
      status: "True",
      reason: "DeletionByTaintManager",
      message: "Taint manager: deleting due to NoExecute taint",
      lastTransitionTime: rfc3339(new Date(this.#cluster.now())),
    });
    next.status = { ...(next.status as Record<string, unknown> ?? {}), conditions };
    this.#cluster.update(component, "pods", next, { subresource: "status" });
    this.#cluster.delete(component, "pods", ref, {});
  }
}
