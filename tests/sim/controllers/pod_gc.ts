/**
 * A simulated pod garbage collector (kube-controller-manager PodGC), the
 * parts that free a pod object stuck on a lost node: every 20 s it
 * force-deletes (phase Failed, then `DELETE` with grace 0)
 *
 * - pods bound to a Node object that has been missing for the 40 s
 *   quarantine (condition DisruptionTarget `DeletionByPodGC`),
 * - Terminating pods on a node that is not Ready and carries the
 *   `node.kubernetes.io/out-of-service` taint,
 * - Terminating pods that were never scheduled.
 *
 * @module
 */

import type { KubeObject } from "../apiserver/objects.ts";
import { pathString, rfc3339 } from "../apiserver/objects.ts";
import type { Cluster } from "./cluster.ts";
import type { KubeConstants } from "./constants.ts";
import type { Condition } from "./kube_util.ts";
import {
  conditionsOf,
  isFinished,
  isNodeReady,
  isTerminating,
  taintKeys,
  taintsOf,
} from "./kube_util.ts";
import { Runner } from "./runner.ts";

/** The simulated pod garbage collector. */
export class PodGarbageCollector {
  /** Component name in the log. */
  static readonly component = "pod-garbage-collector";
  /** Its loop. */
  readonly runner: Runner;
  #cluster: Cluster;
  #constants: KubeConstants;
  /** Missing node → simulated time it was first seen missing. */
  #missingSince = new Map<string, number>();

  /** A stopped collector; start its {@link runner}. */
  constructor(cluster: Cluster, constants: KubeConstants) {
    this.#cluster = cluster;
    this.#constants = constants;
    this.runner = new Runner(cluster, {
      name: PodGarbageCollector.component,
      periodMs: constants.podGcPeriod,
      run: () => this.#collect(),
    });
  }

  #collect(): void {
    const now = this.#cluster.now();
    const nodes = new Map<string, KubeObject>();
    for (const node of this.#cluster.list("nodes")) nodes.set(node.metadata.name!, node);
    for (const name of [...this.#missingSince.keys()]) {
      if (nodes.has(name)) this.#missingSince.delete(name);
    }
    for (const pod of this.#cluster.list("pods")) {
      const nodeName = pathString(pod, "spec.nodeName");
      if (nodeName === "") {
        if (isTerminating(pod)) this.#forceDelete(pod, "unscheduled and terminating");
        continue;
      }
      const node = nodes.get(nodeName);
      if (node === undefined) {
        let since = this.#missingSince.get(nodeName);
        if (since === undefined) {
          since = now;
          this.#missingSince.set(nodeName, since);
        }
        if (now - since >= this.#constants.podGcQuarantine) {
          this.#forceDelete(pod, `node ${nodeName} no longer exists`, {
            type: "DisruptionTarget",
            status: "True",
            reason: "DeletionByPodGC",
            message: "PodGC: node no longer exists",
          });
        } else {
          this.runner.wakeAt(since + this.#constants.podGcQuarantine);
        }
        continue;
      }
      const outOfService = taintsOf(node).some((t) => t.key === taintKeys.outOfService);
      if (isTerminating(pod) && outOfService && !isNodeReady(node)) {
        this.#forceDelete(pod, `terminating on out-of-service node ${nodeName}`);
      }
    }
  }

  #forceDelete(pod: KubeObject, why: string, condition?: Condition): void {
    const component = PodGarbageCollector.component;
    const ref = { namespace: pod.metadata.namespace, name: pod.metadata.name! };
    this.#cluster.note(component, `force deleting pod ${ref.namespace}/${ref.name}: ${why}`);
    if (!isFinished(pod)) {
      const next = structuredClone(pod);
      const conditions = conditionsOf(pod).filter((c) => c.type !== condition?.type);
      if (condition !== undefined) {
        conditions.push({
          ...condition,
          lastTransitionTime: rfc3339(new Date(this.#cluster.now())),
        });
      }
      next.status = {
        ...(next.status as Record<string, unknown> ?? {}),
        phase: "Failed",
        conditions,
      };
      if (!this.#cluster.update(component, "pods", next, { subresource: "status" })) return;
    }
    this.#cluster.delete(component, "pods", ref, {
      gracePeriodSeconds: 0,
      preconditions: { uid: pod.metadata.uid },
    });
  }
}
