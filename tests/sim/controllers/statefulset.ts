/**
 * A simulated StatefulSet controller (apps/v1 StatefulSets stored by the
 * simulated API server).
 *
 * Identity is the pod name: `<set>-<ordinal>` is created from the template
 * only when no pod object of that name exists. With the default
 * `OrderedReady` policy, ordinals are created one at a time, each after its
 * predecessor is Running and Ready, and a Terminating pod blocks the set
 * ("waiting for Pod ... to Terminate") until its object is gone. Claims come
 * from `volumeClaimTemplates` as `<template>-<set>-<ordinal>`, made before the
 * pod and again whenever one is missing.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { KubeObject } from "../apiserver/objects.ts";
import { isRecord, pathList, pathRecord, pathString, pathValue } from "../apiserver/objects.ts";
import type { Cluster } from "./cluster.ts";
import type { KubeConstants } from "./constants.ts";
import { EventRecorder, referenceTo } from "./events.ts";
import type { Toleration } from "./kube_util.ts";
import { isFinished, isPodReady, isTerminating, taintKeys } from "./kube_util.ts";
import { Runner } from "./runner.ts";
import { createOwnedPod } from "./owned_pod.ts";

/** The simulated StatefulSet controller. */
export class StatefulSetController {
  /** `source.component` of its Events. */
  static readonly component = "statefulset-controller";
  /** Its loop. */
  readonly runner: Runner;
  #cluster: Cluster;
  #constants: KubeConstants;
  #recorder: EventRecorder;
  #waiting = new Map<string, string>();

  /** A stopped controller; start its {@link runner}. */
  constructor(cluster: Cluster, constants: KubeConstants) {
    this.#cluster = cluster;
    this.#constants = constants;
    this.#recorder = new EventRecorder(cluster, { component: StatefulSetController.component });
    this.runner = new Runner(cluster, {
      name: StatefulSetController.component,
      periodMs: constants.controllerResyncPeriod,
      run: () => this.#sync(),
    });
  }

  #sync(): void {
    const seen = new Set<string>();
    for (const set of this.#cluster.list("statefulsets")) {
      if (isTerminating(set)) continue;
      seen.add(set.metadata.uid!);
      this.#syncSet(set);
    }
    for (const uid of [...this.#waiting.keys()]) if (!seen.has(uid)) this.#waiting.delete(uid);
  }

  /** Logs why the set waits, once per distinct reason. */
  #wait(set: KubeObject, why: string | undefined): void {
    const uid = set.metadata.uid!;
    if (why === undefined) {
      this.#waiting.delete(uid);
      return;
    }
    if (this.#waiting.get(uid) === why) return;
    this.#waiting.set(uid, why);
    this.#cluster.note(
      StatefulSetController.component,
      `StatefulSet ${set.metadata.namespace}/${set.metadata.name} is ${why}`,
    );
  }

  #syncSet(set: KubeObject): void {
    const namespace = set.metadata.namespace!;
    const setName = set.metadata.name!;
    const replicas = typeof pathValue(set, "spec.replicas") === "number"
      ? pathValue(set, "spec.replicas") as number
      : 1;
    const ordered = pathString(set, "spec.podManagementPolicy") !== "Parallel";
    const revision = revisionOf(set);
    const pattern = new RegExp(`^${escapeRegExp(setName)}-(\\d+)$`);
    const pods = new Map<number, KubeObject>();
    for (const pod of this.#cluster.list("pods", namespace)) {
      const m = pattern.exec(pod.metadata.name!);
      if (m !== null) pods.set(Number(m[1]), pod);
    }
    let waitingFor: string | undefined;
    for (let ordinal = 0; ordinal < replicas; ordinal++) {
      const podName = `${setName}-${ordinal}`;
      const pod = pods.get(ordinal);
      if (pod === undefined) {
        this.#createClaims(set, ordinal);
        const created = this.#createPod(set, ordinal, revision);
        if (created !== undefined) pods.set(ordinal, created);
        if (ordered) {
          waitingFor = `waiting for Pod ${namespace}/${podName} to be Running and Ready`;
          break;
        }
        continue;
      }
      if (isTerminating(pod)) {
        if (ordered) {
          waitingFor = `waiting for Pod ${namespace}/${podName} to Terminate`;
          break;
        }
        continue;
      }
      this.#createClaims(set, ordinal);
      if (isFinished(pod)) {
        this.#deletePod(set, pod, "is recreating failed Pod");
        if (ordered) {
          waitingFor = `waiting for Pod ${namespace}/${podName} to Terminate`;
          break;
        }
        continue;
      }
      if (ordered && !(pathString(pod, "status.phase") === "Running" && isPodReady(pod))) {
        waitingFor = `waiting for Pod ${namespace}/${podName} to be Running and Ready`;
        break;
      }
    }
    if (waitingFor === undefined) {
      const condemned = [...pods.entries()]
        .filter(([ordinal]) => ordinal >= replicas)
        .sort(([a], [b]) => b - a)
        .map(([, pod]) => pod);
      for (const pod of condemned) {
        if (isTerminating(pod)) {
          if (ordered) {
            waitingFor = `waiting for Pod ${namespace}/${pod.metadata.name} to Terminate`;
            break;
          }
          continue;
        }
        this.#deletePod(set, pod, "is scaling down");
        if (ordered) break;
      }
    }
    this.#wait(set, waitingFor);
    this.#writeStatus(set, [...pods.values()], revision);
  }

  #createClaims(set: KubeObject, ordinal: number): void {
    const namespace = set.metadata.namespace!;
    const setName = set.metadata.name!;
    const podName = `${setName}-${ordinal}`;
    for (const template of pathList(set, "spec.volumeClaimTemplates").filter(isRecord)) {
      const templateName = pathString(template, "metadata.name");
      const claimName = `${templateName}-${setName}-${ordinal}`;
      if (this.#cluster.get("persistentvolumeclaims", { namespace, name: claimName })) continue;
      const labels = {
        ...(pathRecord(template, "metadata.labels") as Record<string, string>),
        ...(pathRecord(set, "spec.selector.matchLabels") as Record<string, string>),
      };
      const claim: KubeObject = {
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        metadata: { name: claimName, namespace, labels },
        spec: structuredClone(pathRecord(template, "spec")),
      };
      const annotations = pathRecord(template, "metadata.annotations");
      if (Object.keys(annotations).length > 0) {
        claim.metadata.annotations = structuredClone(annotations) as Record<string, string>;
      }
      const created = this.#cluster.create(
        StatefulSetController.component,
        "persistentvolumeclaims",
        claim,
      );
      if (created !== undefined) {
        this.#recorder.event(referenceTo(set, "StatefulSet", { apiVersion: "apps/v1" }), {
          type: "Normal",
          reason: "SuccessfulCreate",
          message: `create Claim ${claimName} Pod ${podName} in StatefulSet ${setName} success`,
        });
      }
    }
  }

  #createPod(set: KubeObject, ordinal: number, revision: string): KubeObject | undefined {
    const namespace = set.metadata.namespace!;
    const setName = set.metadata.name!;
    const podName = `${setName}-${ordinal}`;
    const template = pathRecord(set, "spec.template");
    const spec = structuredClone(pathRecord(template, "spec"));
    spec.hostname = podName;
    const serviceName = pathString(set, "spec.serviceName");
    if (serviceName !== "") spec.subdomain = serviceName;
    const claimTemplates = pathList(set, "spec.volumeClaimTemplates").filter(isRecord);
    const claimVolumes = claimTemplates.map((t) => {
      const name = pathString(t, "metadata.name");
      return { name, persistentVolumeClaim: { claimName: `${name}-${setName}-${ordinal}` } };
    });
    const volumes = pathList(spec, "volumes").filter((v) =>
      !(isRecord(v) && claimVolumes.some((c) => c.name === v.name))
    );
    if (claimVolumes.length > 0 || volumes.length > 0) spec.volumes = [...volumes, ...claimVolumes];
    spec.tolerations = withDefaultTolerations(
      pathList(spec, "tolerations").filter(isRecord) as Toleration[],
      this.#constants.defaultTolerationSeconds,
    );
    const pod: KubeObject = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: podName,
        namespace,
        labels: {
          ...(pathRecord(template, "metadata.labels") as Record<string, string>),
          "statefulset.kubernetes.io/pod-name": podName,
          "apps.kubernetes.io/pod-index": String(ordinal),
          "controller-revision-hash": revision,
        },
        ownerReferences: [{
          apiVersion: "apps/v1",
          kind: "StatefulSet",
          name: setName,
          uid: set.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        }],
      },
      spec,
    };
    return createOwnedPod(this.#cluster, this.#recorder, {
      component: StatefulSetController.component,
      owner: set,
      kind: "StatefulSet",
      template,
      pod,
      message: () => `create Pod ${podName} in StatefulSet ${setName} successful`,
    });
  }

  #deletePod(set: KubeObject, pod: KubeObject, why: string): void {
    const setName = set.metadata.name!;
    const podName = pod.metadata.name!;
    this.#cluster.note(
      StatefulSetController.component,
      `StatefulSet ${set.metadata.namespace}/${setName} ${why} ${podName}`,
    );
    const result = this.#cluster.delete(
      StatefulSetController.component,
      "pods",
      { namespace: pod.metadata.namespace, name: podName },
      { preconditions: { uid: pod.metadata.uid } },
    );
    if (result !== undefined) {
      this.#recorder.event(referenceTo(set, "StatefulSet", { apiVersion: "apps/v1" }), {
        type: "Normal",
        reason: "SuccessfulDelete",
        message: `delete Pod ${podName} in StatefulSet ${setName} successful`,
      });
    }
  }

  #writeStatus(set: KubeObject, pods: KubeObject[], revision: string): void {
    const ready =
      pods.filter((p) =>
        !isTerminating(p) && pathString(p, "status.phase") === "Running" && isPodReady(p)
      ).length;
    const existing = pods.length;
    const status = {
      observedGeneration: set.metadata.generation,
      replicas: existing,
      readyReplicas: ready,
      currentReplicas: existing,
      updatedReplicas: existing,
      availableReplicas: ready,
      currentRevision: revision,
      updateRevision: revision,
      collisionCount: 0,
    };
    const current = pathRecord(set, "status");
    const same = Object.entries(status).every(([k, v]) => current[k] === v);
    if (same) return;
    const next = structuredClone(set);
    next.status = { ...current, ...status };
    this.#cluster.update(StatefulSetController.component, "statefulsets", next, {
      subresource: "status",
    });
  }
}

/** Adds the not-ready and unreachable NoExecute tolerations the admission plugin adds. */
export function withDefaultTolerations(tolerations: Toleration[], seconds: number): Toleration[] {
  const out = [...tolerations];
  for (const key of [taintKeys.notReady, taintKeys.unreachable]) {
    const present = out.some((t) =>
      (t.key === key || ((t.key ?? "") === "" && t.operator === "Exists")) &&
      (t.effect === undefined || t.effect === "" || t.effect === "NoExecute")
    );
    if (!present) {
      out.push({ key, operator: "Exists", effect: "NoExecute", tolerationSeconds: seconds });
    }
  }
  return out;
}

/** `<set>-<hash of the template>`, the `controller-revision-hash` label. */
function revisionOf(set: KubeObject): string {
  const hash = createHash("sha256").update(JSON.stringify(pathValue(set, "spec.template") ?? {}));
  return `${set.metadata.name}-${hash.digest("hex").slice(0, 10)}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
