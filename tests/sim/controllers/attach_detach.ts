/**
 * A simulated attach-detach controller (kube-controller-manager) for CSI
 * volumes.
 *
 * Desired state: every (PV, node) used by a pod that is scheduled, still
 * exists as an object and is not terminated (a Terminating pod whose
 * containers were never seen to stop still counts). Actual state: what this
 * controller attached or found attached, kept in memory as the real one
 * does; it learns that a volume went away behind its back (a VolumeAttachment
 * deleted by someone else) only at its periodic sync
 * (`reconcilerSyncDuration`, 1 min).
 *
 * Attach creates the VolumeAttachment `csi-<sha256(handle+driver+node)>` and
 * waits for the attacher to set `status.attached`. An exclusive (RWO/RWOP)
 * volume still attached to another node is not attached again: each waiting
 * pod gets one Warning `FailedAttachVolume` "Multi-Attach error ...".
 * Detach waits while the node lists the volume in `status.volumesInUse`
 * (mounted), unless `reconcilerMaxWaitForUnmountDuration` (6 min) has passed
 * since detach was first wanted **and** the node is not Ready, or the node
 * has the `node.kubernetes.io/out-of-service` taint; detach deletes the
 * VolumeAttachment and is done when the object is gone.
 *
 * Sources (kubernetes/kubernetes, 1.30-1.34), rule by rule:
 * - No VolumeAttachment watch: NewAttachDetachController keeps only
 *   `volumeAttachmentInformer.Lister()`; VAs are read once at start
 *   (`processVolumeAttachments`) and then only by the sync:
 *   reconciler.go `reconciliationLoopFunc` (every `ReconcilerLoopPeriod`,
 *   100 ms) calls `rc.sync()` once `time.Since(rc.timeOfLastSync) >
 *   rc.syncDuration` (`--attach-detach-reconcile-sync-period`, default
 *   60 s, config/v1alpha1/defaults.go), whose `syncStates` ->
 *   `VerifyVolumesAreAttached` -> csi_attacher.go `VolumesAreAttached` reads
 *   a missing VA as `attached = false` and `MarkVolumeAsDetached`s it.
 * - Desired state from pod events (`podDelete` -> `ProcessPodVolumes(...,
 *   false)`): a force-deleted pod leaves it at once; a pod only terminating
 *   on a dead node stays (`DetermineVolumeAction` drops terminated pods only).
 * - Detach: reconciler.go `reconcile`: `forceDetach := !isHealthy &&
 *   forceDetachTimeoutExpired` (`maxWaitForUnmountDuration`, 6 min,
 *   `--disable-force-detach-on-timeout` since 1.30), and "Cannot detach
 *   volume because it is still mounted" while `attachedVolume.MountedByNode
 *   && !forceDetach && !hasOutOfServiceTaint`; `MountedByNode` comes from the
 *   node's `status.volumesInUse` (`processVolumesInUse`); the out-of-service
 *   taint (`taints.TaintKeyExists(..., v1.TaintNodeOutOfService)`, GA in
 *   1.28, key only) skips the wait.
 * - Multi-Attach: `attachDesiredVolumes` refuses an exclusive volume while
 *   `GetNodesForAttachedVolume` (confirmed attachments in the actual state)
 *   names another node, and reports it (`reportMultiAttachError`).
 * - A VA deleted while its pod is still desired on that node is attached
 *   again there at the next sync (csi_attacher.go `Attach` creates the VA):
 *   the agent removes pods before their VolumeAttachments.
 *
 * @module
 */

import type { KubeObject } from "../apiserver/objects.ts";
import { isRecord, pathList, pathRecord, pathString } from "../apiserver/objects.ts";
import type { Cluster } from "./cluster.ts";
import type { KubeConstants } from "./constants.ts";
import { EventRecorder, referenceTo } from "./events.ts";
import {
  attachmentName,
  csiSource,
  isExclusive,
  isNodeReady,
  podClaims,
  taintKeys,
  taintsOf,
  uniqueVolumeName,
} from "./kube_util.ts";
import { Runner } from "./runner.ts";

/** A (PV, node) pair some pods need attached. */
interface Desired {
  pv: string;
  node: string;
  csi: { driver: string; volumeHandle: string };
  exclusive: boolean;
  pods: KubeObject[];
}

/** A (PV, node) pair this controller believes attached, attaching or detaching. */
interface Actual {
  pv: string;
  node: string;
  csi: { driver: string; volumeHandle: string };
  state: "attaching" | "attached" | "detaching";
  vaName: string;
  /** Simulated time detach was first wanted (unset while desired). */
  detachRequestedAt?: number;
  /** Last attach error reported to the pods. */
  attachError?: string;
}

function keyOf(pv: string, node: string): string {
  return `${pv}\u0000${node}`;
}

/** The simulated attach-detach controller. */
export class AttachDetachController {
  /** `source.component` of its Events. */
  static readonly component = "attachdetach-controller";
  /** Its loop. */
  readonly runner: Runner;
  #cluster: Cluster;
  #constants: KubeConstants;
  #recorder: EventRecorder;
  #actual = new Map<string, Actual>();
  #multiAttachReported = new Set<string>();
  #initialized = false;
  #lastSync = 0;

  /** A stopped controller; start its {@link runner}. */
  constructor(cluster: Cluster, constants: KubeConstants) {
    this.#cluster = cluster;
    this.#constants = constants;
    this.#recorder = new EventRecorder(cluster, { component: AttachDetachController.component });
    this.runner = new Runner(cluster, {
      name: AttachDetachController.component,
      periodMs: constants.reconcilerLoopPeriod,
      run: () => this.#reconcile(),
    });
  }

  /** What the controller believes attached: `{ pv, node, state }`, sorted. */
  get actualState(): { pv: string; node: string; state: string }[] {
    return [...this.#actual.values()]
      .map((a) => ({ pv: a.pv, node: a.node, state: a.state }))
      .sort((a, b) => a.pv.localeCompare(b.pv) || a.node.localeCompare(b.node));
  }

  /** Reads with peeks: this loop runs every 100 ms and never changes what it reads. */
  #reconcile(): void {
    const now = this.#cluster.now();
    const vas = new Map<string, KubeObject>();
    for (const va of this.#cluster.peekAll("volumeattachments")) vas.set(va.metadata.name!, va);
    if (!this.#initialized) this.#populate(vas, now);
    const nodes = new Map<string, KubeObject>();
    for (const node of this.#cluster.peekAll("nodes")) nodes.set(node.metadata.name!, node);
    const desired = this.#desiredState(nodes);

    if (now - this.#lastSync >= this.#constants.reconcilerSyncDuration) {
      this.#syncStates(vas);
      this.#lastSync = now;
    }
    this.runner.wakeAt(this.#lastSync + this.#constants.reconcilerSyncDuration);

    this.#progress(vas, desired);
    this.#detach(vas, nodes, desired, now);
    this.#attach(vas, desired);
    this.#updateNodeStatuses(nodes);
    this.#pruneReports(desired);
  }

  /** At start: every VolumeAttachment found counts as attached (or attaching). */
  #populate(vas: Map<string, KubeObject>, now: number): void {
    this.#initialized = true;
    this.#lastSync = now;
    for (const va of vas.values()) {
      const pv = pathString(va, "spec.source.persistentVolumeName");
      const node = pathString(va, "spec.nodeName");
      const driver = pathString(va, "spec.attacher");
      if (pv === "" || node === "" || driver === "") continue;
      const pvObj = this.#cluster.peek("persistentvolumes", { name: pv });
      const csi = pvObj === undefined ? undefined : csiSource(pvObj);
      if (csi === undefined) continue;
      this.#actual.set(keyOf(pv, node), {
        pv,
        node,
        csi,
        state: pathString(va, "status.attached") === "true" ? "attached" : "attaching",
        vaName: va.metadata.name!,
      });
    }
  }

  #desiredState(nodes: Map<string, KubeObject>): Map<string, Desired> {
    const desired = new Map<string, Desired>();
    const noAttach = new Set<string>();
    for (const driver of this.#cluster.peekAll("csidrivers")) {
      if (pathRecord(driver, "spec").attachRequired === false) noAttach.add(driver.metadata.name!);
    }
    for (const pod of this.#cluster.peekAll("pods")) {
      const node = pathString(pod, "spec.nodeName");
      if (node === "" || !nodes.has(node) || isPodTerminated(pod)) continue;
      for (const { claim } of podClaims(pod)) {
        const pvc = this.#cluster.peek("persistentvolumeclaims", {
          namespace: pod.metadata.namespace,
          name: claim,
        });
        if (pvc === undefined || pathString(pvc, "status.phase") !== "Bound") continue;
        const pvName = pathString(pvc, "spec.volumeName");
        const pv = pvName === "" ? undefined : this.#cluster.peek("persistentvolumes", {
          name: pvName,
        });
        const csi = pv === undefined ? undefined : csiSource(pv);
        if (pv === undefined || csi === undefined || noAttach.has(csi.driver)) continue;
        const key = keyOf(pvName, node);
        let d = desired.get(key);
        if (d === undefined) {
          d = { pv: pvName, node, csi, exclusive: isExclusive(pv), pods: [] };
          desired.set(key, d);
        }
        d.pods.push(pod);
      }
    }
    return desired;
  }

  /** The periodic sync: attached volumes whose VolumeAttachment is gone or not attached are forgotten. */
  #syncStates(vas: Map<string, KubeObject>): void {
    for (const [key, a] of [...this.#actual]) {
      if (a.state !== "attached") continue;
      const va = vas.get(a.vaName);
      if (va !== undefined && pathString(va, "status.attached") === "true") continue;
      this.#actual.delete(key);
      this.#cluster.note(
        AttachDetachController.component,
        `sync: volume ${a.pv} is no longer attached to node ${a.node}`,
      );
    }
  }

  /** Follows attaches and detaches in flight. */
  #progress(vas: Map<string, KubeObject>, desired: Map<string, Desired>): void {
    for (const [key, a] of [...this.#actual]) {
      const va = vas.get(a.vaName);
      if (a.state === "detaching") {
        if (va === undefined) {
          this.#actual.delete(key);
          this.#cluster.note(
            AttachDetachController.component,
            `DetachVolume.Detach succeeded for volume "${a.pv}" on node "${a.node}"`,
          );
        }
        continue;
      }
      if (a.state !== "attaching") continue;
      if (va === undefined) {
        this.#actual.delete(key);
        continue;
      }
      const pods = desired.get(key)?.pods ?? [];
      if (pathString(va, "status.attached") === "true") {
        a.state = "attached";
        a.attachError = undefined;
        for (const pod of pods) {
          this.#recorder.event(referenceTo(pod, "Pod"), {
            type: "Normal",
            reason: "SuccessfulAttachVolume",
            message: `AttachVolume.Attach succeeded for volume "${a.pv}" `,
          });
        }
        continue;
      }
      const error = pathString(va, "status.attachError.message");
      if (error !== "" && error !== a.attachError) {
        a.attachError = error;
        for (const pod of pods) {
          this.#recorder.event(referenceTo(pod, "Pod"), {
            type: "Warning",
            reason: "FailedAttachVolume",
            message: `AttachVolume.Attach failed for volume "${a.pv}" : ${error}`,
          });
        }
      }
    }
  }

  #detach(
    vas: Map<string, KubeObject>,
    nodes: Map<string, KubeObject>,
    desired: Map<string, Desired>,
    now: number,
  ): void {
    const component = AttachDetachController.component;
    const maxWait = this.#constants.reconcilerMaxWaitForUnmountDuration;
    for (const [key, a] of [...this.#actual]) {
      if (desired.has(key) || a.state === "detaching") continue;
      a.detachRequestedAt ??= now;
      const node = nodes.get(a.node);
      const timeout = now - a.detachRequestedAt > maxWait &&
        !this.#constants.disableForceDetachOnTimeout;
      const healthy = node !== undefined && isNodeReady(node);
      const force = !healthy && timeout;
      const outOfService = node !== undefined &&
        taintsOf(node).some((t) => t.key === taintKeys.outOfService);
      const unique = uniqueVolumeName(a.csi);
      const mounted = node !== undefined &&
        pathList(node, "status.volumesInUse").map(String).includes(unique);
      if (mounted && !force && !outOfService) {
        if (!timeout && !this.#constants.disableForceDetachOnTimeout) {
          this.runner.wakeAt(a.detachRequestedAt + maxWait + 1);
        }
        continue;
      }
      if (force) {
        this.#cluster.note(
          component,
          `volume ${a.pv} is not safe to detach from node ${a.node}, but ` +
            `maxWaitForUnmountDuration ${maxWait / 1000}s expired, force detaching`,
        );
      } else if (outOfService && mounted) {
        this.#cluster.note(
          component,
          `node ${a.node} has the out-of-service taint, force detaching volume ${a.pv}`,
        );
      } else {
        this.#cluster.note(component, `detaching volume ${a.pv} from node ${a.node}`);
      }
      a.state = "detaching";
      const va = vas.get(a.vaName);
      if (va === undefined) {
        this.#actual.delete(key);
        continue;
      }
      if (va.metadata.deletionTimestamp === undefined) {
        this.#cluster.delete(component, "volumeattachments", { name: a.vaName });
      }
    }
  }

  #attach(vas: Map<string, KubeObject>, desired: Map<string, Desired>): void {
    const component = AttachDetachController.component;
    for (const [key, d] of desired) {
      const a = this.#actual.get(key);
      if (a !== undefined) {
        if (a.state !== "detaching") a.detachRequestedAt = undefined;
        continue;
      }
      if (d.exclusive) {
        const elsewhere = [...this.#actual.values()].filter((x) =>
          x.pv === d.pv && x.node !== d.node
        );
        // an attach or detach of this volume in flight: wait silently, as the real one does
        if (elsewhere.some((x) => x.state !== "attached")) continue;
        if (elsewhere.length > 0) {
          this.#reportMultiAttach(d, elsewhere, desired);
          continue;
        }
      }
      const vaName = attachmentName(d.csi, d.node);
      let va = vas.get(vaName);
      if (va === undefined) {
        va = this.#cluster.create(component, "volumeattachments", {
          apiVersion: "storage.k8s.io/v1",
          kind: "VolumeAttachment",
          metadata: { name: vaName },
          spec: {
            attacher: d.csi.driver,
            nodeName: d.node,
            source: { persistentVolumeName: d.pv },
          },
        });
        if (va === undefined) continue;
        this.#cluster.note(component, `attaching volume ${d.pv} to node ${d.node}`);
      }
      if (va.metadata.deletionTimestamp !== undefined) continue;
      this.#actual.set(key, {
        pv: d.pv,
        node: d.node,
        csi: d.csi,
        state: "attaching",
        vaName,
      });
    }
  }

  #reportMultiAttach(d: Desired, elsewhere: Actual[], desired: Map<string, Desired>): void {
    const otherNodes = new Set(elsewhere.map((x) => x.node));
    const others: KubeObject[] = [];
    for (const o of desired.values()) {
      if (o.pv === d.pv && otherNodes.has(o.node)) others.push(...o.pods);
    }
    for (const pod of d.pods) {
      const reportKey = `${pod.metadata.uid}\u0000${d.pv}`;
      if (this.#multiAttachReported.has(reportKey)) continue;
      this.#multiAttachReported.add(reportKey);
      let detail: string;
      if (others.length === 0) {
        detail =
          "Volume is already exclusively attached to one node and can't be attached to another";
      } else {
        const local = others.filter((o) => o.metadata.namespace === pod.metadata.namespace)
          .map((o) => o.metadata.name!);
        const foreign = others.length - local.length;
        if (local.length > 0) {
          detail = `Volume is already used by pod(s) ${local.join(", ")}`;
          if (foreign > 0) detail += ` and ${foreign} pod(s) in different namespaces`;
        } else {
          detail = `Volume is already used by ${foreign} pod(s) in different namespaces`;
        }
      }
      this.#recorder.event(referenceTo(pod, "Pod"), {
        type: "Warning",
        reason: "FailedAttachVolume",
        message: `Multi-Attach error for volume "${d.pv}" ${detail}`,
      });
    }
  }

  /** `status.volumesAttached` of each node: what is attached there and not being detached. */
  #updateNodeStatuses(nodes: Map<string, KubeObject>): void {
    const attached = new Map<string, string[]>();
    for (const a of this.#actual.values()) {
      if (a.state !== "attached") continue;
      const list = attached.get(a.node) ?? [];
      list.push(uniqueVolumeName(a.csi));
      attached.set(a.node, list);
    }
    for (const [name, node] of nodes) {
      const want = (attached.get(name) ?? []).sort();
      const have = pathList(node, "status.volumesAttached")
        .filter(isRecord)
        .map((v) => String(v.name ?? ""))
        .sort();
      if (JSON.stringify(want) === JSON.stringify(have)) continue;
      this.#cluster.mergePatch(AttachDetachController.component, "nodes", { name }, {
        status: {
          volumesAttached: want.length > 0 ? want.map((v) => ({ name: v, devicePath: "" })) : null,
        },
      }, { subresource: "status" });
    }
  }

  #pruneReports(desired: Map<string, Desired>): void {
    const live = new Set<string>();
    for (const d of desired.values()) {
      for (const pod of d.pods) live.add(`${pod.metadata.uid}\u0000${d.pv}`);
    }
    for (const k of [...this.#multiAttachReported]) {
      if (!live.has(k)) this.#multiAttachReported.delete(k);
    }
  }
}

/** Phase Succeeded/Failed, or deleting with every container seen terminated. */
function isPodTerminated(pod: KubeObject): boolean {
  const phase = pathString(pod, "status.phase");
  if (phase === "Succeeded" || phase === "Failed") return true;
  if (pod.metadata.deletionTimestamp === undefined) return false;
  const statuses = pathList(pod, "status.containerStatuses").filter(isRecord);
  return statuses.length > 0 &&
    statuses.every((s) => isRecord(s.state) && isRecord(s.state.terminated));
}
