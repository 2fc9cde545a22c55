/**
 * A simulated kube-scheduler: binds pending pods (no `spec.nodeName`) to a
 * node that passes the filters the real default profile applies to this
 * simulator's objects — node unschedulable, NoSchedule/NoExecute taints
 * against tolerations, `nodeSelector` and required node affinity, and the
 * node affinity of the pod's bound PersistentVolumes — and spreads by pod
 * count (fewest pods wins, then the name). Like the real scheduler it does
 * not look at the Ready condition: a NotReady node is kept away by its
 * `not-ready`/`unreachable` taints. Events go through events.k8s.io/v1
 * (`Scheduled`, `FailedScheduling`).
 *
 * @module
 */

import type { KubeObject } from "../apiserver/objects.ts";
import { pathString, rfc3339 } from "../apiserver/objects.ts";
import type { Cluster } from "./cluster.ts";
import type { KubeConstants } from "./constants.ts";
import { EventsV1Recorder, referenceTo } from "./events.ts";
import {
  conditionsOf,
  isFinished,
  isTerminating,
  isTolerated,
  podClaims,
  podFitsNode,
  pvFitsNode,
  taintsOf,
  tolerationsOf,
} from "./kube_util.ts";
import { Runner } from "./runner.ts";

/** Where a pod may go, or why nowhere. */
type Placement = { node: string } | { message: string };

/** The simulated scheduler. */
export class Scheduler {
  /** `reportingController` of its Events and the `schedulerName` it serves. */
  static readonly component = "default-scheduler";
  /** Its loop. */
  readonly runner: Runner;
  #cluster: Cluster;
  #recorder: EventsV1Recorder;
  #reported = new Map<string, string>();

  /** A stopped scheduler; start its {@link runner}. */
  constructor(cluster: Cluster, constants: KubeConstants) {
    this.#cluster = cluster;
    this.#recorder = new EventsV1Recorder(cluster, {
      controller: Scheduler.component,
      instance: `${Scheduler.component}-sim`,
    });
    this.runner = new Runner(cluster, {
      name: Scheduler.component,
      periodMs: constants.schedulerRetryPeriod,
      run: () => this.#schedule(),
    });
  }

  #schedule(): void {
    const nodes = this.#cluster.list("nodes");
    const pods = this.#cluster.list("pods");
    const podCount = new Map<string, number>(nodes.map((n) => [n.metadata.name!, 0]));
    for (const pod of pods) {
      const node = pathString(pod, "spec.nodeName");
      if (node !== "" && !isFinished(pod)) podCount.set(node, (podCount.get(node) ?? 0) + 1);
    }
    const live = new Set<string>();
    for (const pod of pods) {
      if (pathString(pod, "spec.nodeName") !== "" || isTerminating(pod) || isFinished(pod)) {
        continue;
      }
      const schedulerName = pathString(pod, "spec.schedulerName");
      if (schedulerName !== "" && schedulerName !== Scheduler.component) continue;
      live.add(pod.metadata.uid!);
      const placement = this.#place(pod, nodes, podCount);
      if ("node" in placement) {
        if (this.#bind(pod, placement.node)) {
          podCount.set(placement.node, (podCount.get(placement.node) ?? 0) + 1);
        }
      } else {
        this.#unschedulable(pod, placement.message);
      }
    }
    for (const uid of [...this.#reported.keys()]) if (!live.has(uid)) this.#reported.delete(uid);
  }

  #place(pod: KubeObject, nodes: KubeObject[], podCount: Map<string, number>): Placement {
    const total = nodes.length;
    const preemption = `preemption: 0/${total} nodes are available: ` +
      `${total} Preemption is not helpful for scheduling.`;
    const pvs: KubeObject[] = [];
    for (const { claim } of podClaims(pod)) {
      const namespace = pod.metadata.namespace;
      const pvc = this.#cluster.get("persistentvolumeclaims", { namespace, name: claim });
      if (pvc === undefined) {
        return {
          message:
            `0/${total} nodes are available: persistentvolumeclaim "${claim}" not found. ${preemption}`,
        };
      }
      const pvName = pathString(pvc, "spec.volumeName");
      if (pvName === "" || pathString(pvc, "status.phase") !== "Bound") {
        return {
          message: `0/${total} nodes are available: pod has unbound immediate ` +
            `PersistentVolumeClaims. ${preemption}`,
        };
      }
      const pv = this.#cluster.get("persistentvolumes", { name: pvName });
      if (pv === undefined) {
        return {
          message:
            `0/${total} nodes are available: persistentvolume "${pvName}" not found. ${preemption}`,
        };
      }
      pvs.push(pv);
    }
    const reasons = new Map<string, number>();
    const fits: string[] = [];
    const tolerations = tolerationsOf(pod);
    for (const node of nodes) {
      const reason = this.#filter(pod, node, pvs, tolerations);
      if (reason === undefined) fits.push(node.metadata.name!);
      else reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    if (fits.length === 0) {
      if (total === 0) return { message: `no nodes available to schedule pods` };
      const parts = [...reasons.entries()]
        .map(([reason, count]) => `${count} ${reason}`)
        .sort();
      return { message: `0/${total} nodes are available: ${parts.join(", ")}. ${preemption}` };
    }
    fits.sort((a, b) => (podCount.get(a) ?? 0) - (podCount.get(b) ?? 0) || a.localeCompare(b));
    return { node: fits[0] };
  }

  #filter(
    pod: KubeObject,
    node: KubeObject,
    pvs: KubeObject[],
    tolerations: ReturnType<typeof tolerationsOf>,
  ): string | undefined {
    if (pathString(node, "spec.unschedulable") === "true") {
      const tolerated = isTolerated(tolerations, {
        key: "node.kubernetes.io/unschedulable",
        effect: "NoSchedule",
      });
      if (!tolerated) return "node(s) were unschedulable";
    }
    for (const taint of taintsOf(node)) {
      if (taint.effect !== "NoSchedule" && taint.effect !== "NoExecute") continue;
      if (!isTolerated(tolerations, taint)) {
        return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ""}}`;
      }
    }
    if (!podFitsNode(pod, node)) return "node(s) didn't match Pod's node affinity/selector";
    if (!pvs.every((pv) => pvFitsNode(pv, node))) {
      return "node(s) had volume node affinity conflict";
    }
    return undefined;
  }

  #bind(pod: KubeObject, node: string): boolean {
    const component = Scheduler.component;
    const ref = { namespace: pod.metadata.namespace, name: pod.metadata.name! };
    const bound = this.#cluster.mergePatch(component, "pods", ref, {
      metadata: { resourceVersion: pod.metadata.resourceVersion },
      spec: { nodeName: node },
    });
    if (bound === undefined) return false;
    const next = structuredClone(bound);
    const conditions = conditionsOf(bound).filter((c) => c.type !== "PodScheduled");
    conditions.push({
      type: "PodScheduled",
      status: "True",
      lastProbeTime: null,
      lastTransitionTime: rfc3339(new Date(this.#cluster.now())),
    });
    next.status = { ...(next.status as Record<string, unknown> ?? {}), conditions };
    const stored = this.#cluster.update(component, "pods", next, { subresource: "status" });
    this.#reported.delete(pod.metadata.uid!);
    this.#recorder.event(referenceTo(stored ?? bound, "Pod"), {
      type: "Normal",
      reason: "Scheduled",
      action: "Binding",
      note: `Successfully assigned ${ref.namespace}/${ref.name} to ${node}`,
    });
    return true;
  }

  #unschedulable(pod: KubeObject, message: string): void {
    const uid = pod.metadata.uid!;
    if (this.#reported.get(uid) === message) return;
    this.#reported.set(uid, message);
    const next = structuredClone(pod);
    const conditions = conditionsOf(pod).filter((c) => c.type !== "PodScheduled");
    conditions.push({
      type: "PodScheduled",
      status: "False",
      reason: "Unschedulable",
      message,
      lastProbeTime: null,
      lastTransitionTime: rfc3339(new Date(this.#cluster.now())),
    });
    next.status = { ...(next.status as Record<string, unknown> ?? {}), conditions };
    const stored = this.#cluster.update(Scheduler.component, "pods", next, {
      subresource: "status",
    });
    this.#recorder.event(referenceTo(stored ?? pod, "Pod"), {
      type: "Warning",
      reason: "FailedScheduling",
      action: "Scheduling",
      note: message,
    });
  }
}
