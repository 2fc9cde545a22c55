/**
 * The node lifecycle controller of kube-controller-manager: watches node
 * heartbeats (Lease `renewTime` and the Ready condition's
 * `lastHeartbeatTime`), and when none came for the grace period marks the
 * node's conditions Unknown, marks its pods not Ready, records NodeNotReady
 * and taints the node `node.kubernetes.io/unreachable` (NoSchedule and
 * NoExecute). When the kubelet posts Ready again, the taints go.
 *
 * Like the real one it checks on a period (`nodeMonitorPeriod`), so a dead
 * node turns Unknown at the first check after the grace period.
 *
 * @module
 */

import type { KubeObject } from "../apiserver/objects.ts";
import { pathString, rfc3339 } from "../apiserver/objects.ts";
import type { Cluster } from "./cluster.ts";
import type { KubeConstants } from "./constants.ts";
import { EventRecorder, referenceTo } from "./events.ts";
import type { Condition, Taint } from "./kube_util.ts";
import { conditionOf, conditionsOf, taintKeys, taintsOf } from "./kube_util.ts";
import { Runner } from "./runner.ts";

/** What the controller remembers of one node. */
interface NodeHealth {
  /** Simulated time of the last heartbeat seen. */
  probeTimestamp: number;
  /** Last Lease renewTime seen. */
  leaseRenewTime: string | undefined;
  /** Last Ready lastHeartbeatTime seen. */
  readyHeartbeat: string | undefined;
  /** Ready status at the end of the previous check. */
  observedReady: string | undefined;
}

const nodeLeaseNamespace = "kube-node-lease";
const conditionsMarkedUnknown = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
const ownedTaintKeys: string[] = [
  taintKeys.unreachable,
  taintKeys.notReady,
  taintKeys.unschedulable,
];

/** The simulated node lifecycle controller. */
export class NodeLifecycleController {
  /** `source.component` of its Events. */
  static readonly component = "node-controller";
  /** Its loop. */
  readonly runner: Runner;
  #cluster: Cluster;
  #constants: KubeConstants;
  #recorder: EventRecorder;
  #health = new Map<string, NodeHealth>();

  /** A stopped controller; start its {@link runner}. */
  constructor(cluster: Cluster, constants: KubeConstants) {
    this.#cluster = cluster;
    this.#constants = constants;
    this.#recorder = new EventRecorder(cluster, { component: NodeLifecycleController.component });
    this.runner = new Runner(cluster, {
      name: NodeLifecycleController.component,
      periodMs: constants.nodeMonitorPeriod,
      run: () => this.#monitor(),
    });
  }

  #monitor(): void {
    const now = this.#cluster.now();
    const nodes = this.#cluster.list("nodes");
    const names = new Set(nodes.map((n) => n.metadata.name!));
    for (const name of [...this.#health.keys()]) if (!names.has(name)) this.#health.delete(name);
    for (let node of nodes) {
      const name = node.metadata.name!;
      const lease = this.#cluster.get("leases", { namespace: nodeLeaseNamespace, name });
      const renewTime = lease === undefined ? undefined : pathString(lease, "spec.renewTime");
      const ready = conditionOf(node, "Ready");
      let health = this.#health.get(name);
      if (health === undefined) {
        health = {
          probeTimestamp: now,
          leaseRenewTime: renewTime,
          readyHeartbeat: ready?.lastHeartbeatTime,
          observedReady: ready?.status,
        };
        this.#health.set(name, health);
      }
      if (renewTime !== health.leaseRenewTime) {
        health.leaseRenewTime = renewTime;
        health.probeTimestamp = now;
      }
      if (ready?.lastHeartbeatTime !== health.readyHeartbeat) {
        health.readyHeartbeat = ready?.lastHeartbeatTime;
        health.probeTimestamp = now;
      }
      const grace = ready === undefined
        ? this.#constants.nodeStartupGracePeriod
        : this.#constants.nodeMonitorGracePeriod;
      if (now > health.probeTimestamp + grace) {
        node = this.#markUnknown(node, ready === undefined) ?? node;
      }
      const current = conditionOf(node, "Ready")?.status;
      if (health.observedReady === "True" && current !== "True") {
        this.#recorder.event(referenceTo(node, "Node"), {
          type: "Normal",
          reason: "NodeNotReady",
          message: `Node ${name} status is now: NodeNotReady`,
        });
        this.#markPodsNotReady(name);
      }
      health.observedReady = current;
      this.#syncTaints(node);
    }
  }

  /** Sets the kubelet-owned conditions to Unknown; returns the stored node. */
  #markUnknown(node: KubeObject, neverPosted: boolean): KubeObject | undefined {
    const nowText = rfc3339(new Date(this.#cluster.now()));
    const conditions = conditionsOf(node).map((c) => ({ ...c }));
    let changed = false;
    for (const type of conditionsMarkedUnknown) {
      const existing = conditions.find((c) => c.type === type);
      if (existing === undefined) {
        if (type !== "Ready" && !neverPosted) continue;
        conditions.push({
          type,
          status: "Unknown",
          reason: "NodeStatusNeverUpdated",
          message: "Kubelet never posted node status.",
          lastHeartbeatTime: node.metadata.creationTimestamp,
          lastTransitionTime: nowText,
        });
        changed = true;
      } else if (existing.status !== "Unknown") {
        existing.status = "Unknown";
        existing.reason = "NodeStatusUnknown";
        existing.message = "Kubelet stopped posting node status.";
        existing.lastTransitionTime = nowText;
        changed = true;
      }
    }
    if (!changed) return node;
    const next = structuredClone(node);
    next.status = { ...(next.status as Record<string, unknown> ?? {}), conditions };
    this.#cluster.note(
      NodeLifecycleController.component,
      `node ${node.metadata.name} stopped posting status: conditions Unknown`,
    );
    return this.#cluster.update(NodeLifecycleController.component, "nodes", next, {
      subresource: "status",
    });
  }

  /** Sets the Ready condition of every pod on the node to False. */
  #markPodsNotReady(nodeName: string): void {
    const nowText = rfc3339(new Date(this.#cluster.now()));
    for (const pod of this.#cluster.list("pods")) {
      if (pathString(pod, "spec.nodeName") !== nodeName) continue;
      const conditions: Condition[] = conditionsOf(pod).map((c) => ({ ...c }));
      const ready = conditions.find((c) => c.type === "Ready");
      if (ready === undefined || ready.status === "False") continue;
      ready.status = "False";
      ready.lastTransitionTime = nowText;
      const next = structuredClone(pod);
      next.status = { ...(next.status as Record<string, unknown> ?? {}), conditions };
      const stored = this.#cluster.update(NodeLifecycleController.component, "pods", next, {
        subresource: "status",
      });
      if (stored === undefined) continue;
      this.#recorder.event(referenceTo(stored, "Pod"), {
        type: "Warning",
        reason: "NodeNotReady",
        message: "Node is not ready",
      });
    }
  }

  /** Makes the controller-owned taints match the Ready condition and `spec.unschedulable`. */
  #syncTaints(node: KubeObject): void {
    const ready = conditionOf(node, "Ready")?.status;
    const wanted: { key: string; effect: string }[] = [];
    if (ready === "Unknown") {
      wanted.push({ key: taintKeys.unreachable, effect: "NoSchedule" });
      wanted.push({ key: taintKeys.unreachable, effect: "NoExecute" });
    } else if (ready === "False") {
      wanted.push({ key: taintKeys.notReady, effect: "NoSchedule" });
      wanted.push({ key: taintKeys.notReady, effect: "NoExecute" });
    }
    if (pathString(node, "spec.unschedulable") === "true") {
      wanted.push({ key: taintKeys.unschedulable, effect: "NoSchedule" });
    }
    const current = taintsOf(node);
    const same = (a: { key: string; effect: string }, b: { key: string; effect: string }) =>
      a.key === b.key && a.effect === b.effect;
    const kept = current.filter((t) =>
      !ownedTaintKeys.includes(t.key) || wanted.some((w) => same(w, t))
    );
    const added: Taint[] = wanted
      .filter((w) => !current.some((t) => same(w, t)))
      .map((w) => ({ ...w, timeAdded: rfc3339(new Date(this.#cluster.now())) }));
    if (added.length === 0 && kept.length === current.length) return;
    const next = structuredClone(node);
    const spec = (next.spec ?? {}) as Record<string, unknown>;
    const taints = [...kept, ...added];
    if (taints.length > 0) spec.taints = taints;
    else delete spec.taints;
    next.spec = spec;
    const removed = current.filter((t) => !kept.includes(t));
    const describe = (ts: Taint[]) => ts.map((t) => `${t.key}:${t.effect}`).join(", ");
    const parts = [];
    if (added.length > 0) parts.push(`added ${describe(added)}`);
    if (removed.length > 0) parts.push(`removed ${describe(removed)}`);
    this.#cluster.note(
      NodeLifecycleController.component,
      `node ${node.metadata.name} taints: ${parts.join("; ")}`,
    );
    this.#cluster.update(NodeLifecycleController.component, "nodes", next);
  }
}
