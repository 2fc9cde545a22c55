/**
 * Simulated Deployment and ReplicaSet controllers (apps/v1), enough for a
 * workload whose pods have no stable identity.
 *
 * The Deployment controller keeps one ReplicaSet per Deployment,
 * `<deployment>-<hash of the template>`, owned by it, with the template and
 * the replica count (no rollouts: a changed template is not simulated). The
 * ReplicaSet controller follows kubernetes pkg/controller/replicaset
 * (replica_set.go `manageReplicas`, controller_utils.go `FilterActivePods`):
 * pods it owns that are neither terminating nor finished are active; it
 * creates pods from `generateName: <replicaset>-` while fewer are active than
 * wanted, and deletes the newest active ones while more are. So unlike a
 * StatefulSet, a Deployment's replacement is created as soon as the old pod
 * is Terminating, and may wait for the volume (Multi-Attach) beside it.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { KubeObject } from "../apiserver/objects.ts";
import { isRecord, pathList, pathRecord, pathValue } from "../apiserver/objects.ts";
import type { Cluster } from "./cluster.ts";
import type { KubeConstants } from "./constants.ts";
import { EventRecorder } from "./events.ts";
import { createOwnedPod } from "./owned_pod.ts";
import { isFinished, isTerminating, type Toleration } from "./kube_util.ts";
import { Runner } from "./runner.ts";
import { withDefaultTolerations } from "./statefulset.ts";

/** The simulated Deployment and ReplicaSet controllers, one loop. */
export class ReplicaSetController {
  /** `source.component` of its Events. */
  static readonly component = "replicaset-controller";
  /** Its loop. */
  readonly runner: Runner;
  #cluster: Cluster;
  #constants: KubeConstants;
  #recorder: EventRecorder;

  /** A stopped controller; start its {@link runner}. */
  constructor(cluster: Cluster, constants: KubeConstants) {
    this.#cluster = cluster;
    this.#constants = constants;
    this.#recorder = new EventRecorder(cluster, { component: ReplicaSetController.component });
    this.runner = new Runner(cluster, {
      name: ReplicaSetController.component,
      periodMs: constants.controllerResyncPeriod,
      run: () => this.#sync(),
    });
  }

  #sync(): void {
    for (const deployment of this.#cluster.list("deployments")) {
      if (!isTerminating(deployment)) this.#syncDeployment(deployment);
    }
    for (const set of this.#cluster.list("replicasets")) {
      if (!isTerminating(set)) this.#syncReplicaSet(set);
    }
  }

  #syncDeployment(deployment: KubeObject): void {
    const namespace = deployment.metadata.namespace!;
    const template = pathRecord(deployment, "spec.template");
    const hash = createHash("sha256").update(JSON.stringify(template)).digest("hex").slice(0, 10);
    const name = `${deployment.metadata.name}-${hash}`;
    const replicas = replicasOf(deployment);
    const existing = this.#cluster.get("replicasets", { namespace, name });
    if (existing !== undefined) {
      if (replicasOf(existing) === replicas) return;
      const next = structuredClone(existing);
      (next.spec as Record<string, unknown>).replicas = replicas;
      this.#cluster.update(ReplicaSetController.component, "replicasets", next);
      return;
    }
    const labels = {
      ...(pathRecord(template, "metadata.labels") as Record<string, string>),
      "pod-template-hash": hash,
    };
    this.#cluster.create(ReplicaSetController.component, "replicasets", {
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      metadata: {
        name,
        namespace,
        labels,
        ownerReferences: [{
          apiVersion: "apps/v1",
          kind: "Deployment",
          name: deployment.metadata.name!,
          uid: deployment.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        }],
      },
      spec: {
        replicas,
        selector: { matchLabels: labels },
        template: {
          ...structuredClone(template),
          metadata: { ...template.metadata ?? {}, labels },
        },
      },
    });
  }

  #syncReplicaSet(set: KubeObject): void {
    const namespace = set.metadata.namespace!;
    const owned = this.#cluster.list("pods", namespace).filter((pod) =>
      pathList(pod, "metadata.ownerReferences").filter(isRecord).some((o) =>
        o.uid === set.metadata.uid && o.controller === true
      )
    );
    const active = owned.filter((pod) => !isTerminating(pod) && !isFinished(pod));
    const wanted = replicasOf(set);
    for (let i = active.length; i < wanted; i++) this.#createPod(set);
    if (active.length > wanted) {
      const newest = [...active].sort((a, b) =>
        String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp))
      );
      for (const pod of newest.slice(0, active.length - wanted)) {
        this.#cluster.delete(ReplicaSetController.component, "pods", {
          namespace,
          name: pod.metadata.name!,
        }, { preconditions: { uid: pod.metadata.uid } });
      }
    }
  }

  #createPod(set: KubeObject): void {
    const template = pathRecord(set, "spec.template");
    const spec = structuredClone(pathRecord(template, "spec"));
    spec.tolerations = withDefaultTolerations(
      (spec.tolerations ?? []) as Toleration[],
      this.#constants.defaultTolerationSeconds,
    );
    const pod: KubeObject = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        generateName: `${set.metadata.name}-`,
        namespace: set.metadata.namespace,
        labels: structuredClone(pathRecord(template, "metadata.labels")) as Record<string, string>,
        ownerReferences: [{
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: set.metadata.name!,
          uid: set.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        }],
      },
      spec,
    };
    createOwnedPod(this.#cluster, this.#recorder, {
      component: ReplicaSetController.component,
      owner: set,
      kind: "ReplicaSet",
      template,
      pod,
      message: (created) => `Created pod: ${created.metadata.name}`,
    });
  }
}

function replicasOf(obj: KubeObject): number {
  const value = pathValue(obj, "spec.replicas");
  return typeof value === "number" ? value : 1;
}
