/**
 * The simulated Kubernetes control plane and kubelets, in process, on top
 * of the simulated API server, all driven by one {@link SimClock}:
 *
 * - `node_lifecycle.ts` heartbeats → NotReady after 50 s, unreachable taints
 * - `taint_eviction.ts` NoExecute taints → graceful deletion after tolerationSeconds
 * - `kubelet.ts`        one per node: Lease, node status, runs and stops pods
 * - `scheduler.ts`      binds pending pods (taints, selectors, PV affinity)
 * - `statefulset.ts`    `<set>-<n>` pods and their claims, only when the name is free
 * - `volume_binder.ts`  binds claims to PVs, optional provisioner
 * - `attach_detach.ts`  VolumeAttachments, Multi-Attach, 6 min force detach
 * - `csi_attacher.ts`   LINSTOR attacher: attached → Primary, detached → Secondary
 * - `pod_gc.ts`         force-deletes pods of deleted nodes and of out-of-service nodes
 *
 * ```ts
 * const clock = new SimClock({ scale: 100 });
 * const server = await ApiServer.start({ now: () => clock.date() });
 * const controllers = new Controllers({ clock, server, drbd, nodes: ["node-a", "node-b"] });
 * controllers.start();
 * controllers.kubelet("node-a").crash();
 * // ...
 * controllers.stop();
 * await server.close();
 * ```
 *
 * Start the API server with `now: () => clock.date()` so the times it
 * stamps (creation, deletion) are simulated times too.
 *
 * @module
 */

import type { SimClock } from "../clock.ts";
import type { DrbdHooks } from "../drbd_hooks.ts";
import type { Change } from "../apiserver/store.ts";
import { pathString, pathValue } from "../apiserver/objects.ts";
import { AttachDetachController } from "./attach_detach.ts";
import type { ClusterApi, LogEntry } from "./cluster.ts";
import { Cluster } from "./cluster.ts";
import type { KubeConstants } from "./constants.ts";
import { kubeConstants } from "./constants.ts";
import { CsiAttacher } from "./csi_attacher.ts";
import { Kubelet } from "./kubelet.ts";
import { NodeLifecycleController } from "./node_lifecycle.ts";
import { PodGarbageCollector } from "./pod_gc.ts";
import type { Runner } from "./runner.ts";
import { Scheduler } from "./scheduler.ts";
import { StatefulSetController } from "./statefulset.ts";
import { ReplicaSetController } from "./replicaset.ts";
import { TaintEvictionController } from "./taint_eviction.ts";
import type { Provisioner } from "./volume_binder.ts";
import { VolumeBinder } from "./volume_binder.ts";

export { AttachDetachController } from "./attach_detach.ts";
export { Cluster } from "./cluster.ts";
export type { ClusterApi, LogEntry } from "./cluster.ts";
export { defaultKubeConstants, kubeConstants } from "./constants.ts";
export type { KubeConstants } from "./constants.ts";
export { CsiAttacher } from "./csi_attacher.ts";
export { EventRecorder, EventsV1Recorder, referenceTo } from "./events.ts";
export type { EventType, ObjectReference } from "./events.ts";
export { Kubelet } from "./kubelet.ts";
export {
  attacherFinalizer,
  attachmentName,
  drbdResourceOf,
  linstorDriver,
  taintKeys,
  uniqueVolumeName,
} from "./kube_util.ts";
export { NodeLifecycleController } from "./node_lifecycle.ts";
export { PodGarbageCollector } from "./pod_gc.ts";
export { Runner } from "./runner.ts";
export { Scheduler } from "./scheduler.ts";
export { StatefulSetController } from "./statefulset.ts";
export { ReplicaSetController } from "./replicaset.ts";
export { StubDrbd } from "./stub_drbd.ts";
export type { DrbdCall } from "./stub_drbd.ts";
export { TaintEvictionController, tolerationSecondsFor } from "./taint_eviction.ts";
export { linstorProvisioner, VolumeBinder } from "./volume_binder.ts";
export type { LinstorProvisionerOptions, Provisioner } from "./volume_binder.ts";

/** A node of the simulated cluster: a name, or a name with extra labels. */
export type NodeDefinition = string | { name: string; labels?: Record<string, string> };

/** Options of {@link Controllers}. */
export interface ControllersOptions {
  /** The clock every controller and kubelet runs on. */
  clock: SimClock;
  /** The simulated API server (anything with `store` and `api`). */
  server: ClusterApi;
  /** The DRBD side (kubelets open/close, the attacher promotes/demotes). */
  drbd: DrbdHooks;
  /** One kubelet per node; a missing Node object is registered by its kubelet. */
  nodes: NodeDefinition[];
  /** Overrides of the Kubernetes 1.32 defaults (simulated milliseconds). */
  constants?: Partial<KubeConstants>;
  /** Makes PVs for claims no existing PV fits (see `linstorProvisioner`). */
  provisioner?: Provisioner;
  /** Sees every log line of every controller as it is made. */
  onLog?: (entry: LogEntry) => void;
}

/** Which storage buckets wake which loops. */
interface Wiring {
  runner: Runner;
  storages: string[];
}

/** All simulated controllers and kubelets, started and stopped together. */
export class Controllers {
  /** The constants in force. */
  readonly constants: KubeConstants;
  /** API access and the shared log. */
  readonly cluster: Cluster;
  /** Node lifecycle controller. */
  readonly nodeLifecycle: NodeLifecycleController;
  /** Taint-eviction controller. */
  readonly taintEviction: TaintEvictionController;
  /** Scheduler. */
  readonly scheduler: Scheduler;
  /** StatefulSet controller. */
  readonly statefulSets: StatefulSetController;
  /** Deployment and ReplicaSet controller. */
  readonly replicaSets: ReplicaSetController;
  /** PersistentVolume binder (and provisioner). */
  readonly volumeBinder: VolumeBinder;
  /** Attach-detach controller. */
  readonly attachDetach: AttachDetachController;
  /** LINSTOR CSI attacher. */
  readonly attacher: CsiAttacher;
  /** Pod garbage collector. */
  readonly podGc: PodGarbageCollector;
  #kubelets = new Map<string, Kubelet>();
  #drbd: DrbdHooks;
  #wiring: Wiring[];
  #unsubscribe: (() => void)[] = [];
  #started = false;

  /** Builds everything, stopped; {@link Controllers.start} starts it. */
  constructor(options: ControllersOptions) {
    this.constants = kubeConstants(options.constants);
    this.cluster = new Cluster(options.server, options.clock, { onLog: options.onLog });
    this.#drbd = options.drbd;
    const c = this.constants;
    this.nodeLifecycle = new NodeLifecycleController(this.cluster, c);
    this.taintEviction = new TaintEvictionController(this.cluster);
    this.scheduler = new Scheduler(this.cluster, c);
    this.statefulSets = new StatefulSetController(this.cluster, c);
    this.replicaSets = new ReplicaSetController(this.cluster, c);
    this.volumeBinder = new VolumeBinder(this.cluster, c, { provisioner: options.provisioner });
    this.attachDetach = new AttachDetachController(this.cluster, c);
    this.attacher = new CsiAttacher(this.cluster, c, { drbd: options.drbd });
    this.podGc = new PodGarbageCollector(this.cluster, c);
    options.nodes.forEach((definition, index) => {
      const name = typeof definition === "string" ? definition : definition.name;
      const labels = typeof definition === "string" ? undefined : definition.labels;
      if (this.#kubelets.has(name)) {
        throw new Error(`Expected distinct node names, got "${name}" twice`);
      }
      this.#kubelets.set(
        name,
        new Kubelet(this.cluster, { node: name, index, labels, drbd: options.drbd, constants: c }),
      );
    });
    const pods = "pods";
    const nodes = "nodes";
    const pvcs = "persistentvolumeclaims";
    const pvs = "persistentvolumes";
    const vas = "volumeattachments.storage.k8s.io";
    this.#wiring = [
      { runner: this.nodeLifecycle.runner, storages: [] },
      { runner: this.taintEviction.runner, storages: [pods, nodes] },
      { runner: this.scheduler.runner, storages: [pods, nodes, pvcs, pvs] },
      { runner: this.statefulSets.runner, storages: [pods, pvcs, "statefulsets.apps"] },
      {
        runner: this.replicaSets.runner,
        storages: [pods, "deployments.apps", "replicasets.apps"],
      },
      { runner: this.volumeBinder.runner, storages: [pvcs, pvs] },
      {
        runner: this.attachDetach.runner,
        storages: [pods, nodes, pvcs, pvs, vas, "csidrivers.storage.k8s.io"],
      },
      { runner: this.attacher.runner, storages: [vas, pvs] },
      { runner: this.podGc.runner, storages: [] },
    ];
  }

  /** The kubelet of `node`. */
  kubelet(node: string): Kubelet {
    const kubelet = this.#kubelets.get(node);
    if (kubelet === undefined) {
      throw new Error(
        `Expected one of the nodes ${[...this.#kubelets.keys()].join(", ")}, got "${node}"`,
      );
    }
    return kubelet;
  }

  /** Every kubelet, in node order. */
  get kubelets(): Kubelet[] {
    return [...this.#kubelets.values()];
  }

  /** Log lines of all controllers and kubelets, oldest first. */
  get log(): LogEntry[] {
    return this.cluster.log;
  }

  /** Unexpected exceptions inside a controller (bugs); empty in a healthy run. */
  get errors(): unknown[] {
    return this.cluster.errors;
  }

  /** Registers missing nodes, starts every kubelet and controller. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    if (this.cluster.get("namespaces", { name: "kube-node-lease" }) === undefined) {
      this.cluster.create("controllers", "namespaces", {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: "kube-node-lease" },
      });
    }
    for (const kubelet of this.#kubelets.values()) kubelet.start();
    for (const w of this.#wiring) w.runner.start();
    this.#unsubscribe.push(this.cluster.server.store.subscribe((change) => this.#route(change)));
    this.#unsubscribe.push(this.#drbd.onChange(() => {
      for (const kubelet of this.#kubelets.values()) kubelet.runner.kick();
      this.attacher.runner.kick();
    }));
  }

  /** Stops every loop and timer; objects stay as they are. */
  stop(): void {
    if (!this.#started) return;
    this.#started = false;
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    for (const w of this.#wiring) w.runner.stop();
    for (const kubelet of this.#kubelets.values()) kubelet.stop();
  }

  #route(change: Change): void {
    const storage = change.storage;
    for (const w of this.#wiring) if (w.storages.includes(storage)) w.runner.kick();
    const kubeletStorages = [
      "pods",
      "nodes",
      "persistentvolumeclaims",
      "persistentvolumes",
      "volumeattachments.storage.k8s.io",
    ];
    if (!kubeletStorages.includes(storage)) return;
    let node = "";
    if (storage === "pods") {
      node = pathString(change.object, "spec.nodeName") ||
        pathString(change.previous, "spec.nodeName");
    } else if (storage === "volumeattachments.storage.k8s.io") {
      node = pathString(change.object, "spec.nodeName");
    } else if (storage === "nodes") {
      // only the attach-detach controller's volumesAttached matters to a kubelet
      const before = JSON.stringify(pathValue(change.previous, "status.volumesAttached"));
      const after = JSON.stringify(pathValue(change.object, "status.volumesAttached"));
      if (before === after) return;
      node = change.object.metadata.name ?? "";
    }
    if (node !== "") {
      this.#kubelets.get(node)?.runner.kick();
      return;
    }
    for (const kubelet of this.#kubelets.values()) kubelet.runner.kick();
  }
}
