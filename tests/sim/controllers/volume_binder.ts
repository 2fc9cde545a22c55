/**
 * A simulated PersistentVolume controller: binds claims to volumes and,
 * through an optional provisioner hook, creates volumes for claims nothing
 * fits.
 *
 * A claim is bound to, in this order: the PV named in its `spec.volumeName`;
 * a PV pre-bound to it (`spec.claimRef` naming the claim); the smallest
 * Available PV without a claimRef whose storage class, access modes and
 * capacity fit. Binding writes the PV's claimRef and `Bound` phase, then the
 * claim's `volumeName`, bind annotations and `Bound` status. A new PV without
 * a claimRef becomes Available.
 *
 * @module
 */

import type { KubeObject } from "../apiserver/objects.ts";
import { isRecord, pathList, pathRecord, pathString } from "../apiserver/objects.ts";
import type { Cluster } from "./cluster.ts";
import type { KubeConstants } from "./constants.ts";
import { EventRecorder, referenceTo } from "./events.ts";
import { isTerminating, linstorDriver } from "./kube_util.ts";
import { Runner } from "./runner.ts";

/** Makes a PV for a claim nothing fits; undefined when it cannot (the claim stays Pending). */
export type Provisioner = (claim: KubeObject) => KubeObject | undefined;

/** Options of {@link linstorProvisioner}. */
export interface LinstorProvisionerOptions {
  /** Nodes the volume is reachable from (PV node affinity on the hostname label); all when absent. */
  nodes?: string[];
  /** PV name for a claim (default `pvc-<claim uid>`); it is also the DRBD resource name. */
  name?: (claim: KubeObject) => string;
}

/**
 * A provisioner making LINSTOR CSI volumes: PV named `pvc-<claim uid>` (or
 * `options.name(claim)`), volume handle = PV name = DRBD resource name,
 * capacity and access modes of the claim, pre-bound to the claim.
 */
export function linstorProvisioner(options: LinstorProvisionerOptions = {}): Provisioner {
  return (claim) => {
    const name = options.name?.(claim) ?? `pvc-${claim.metadata.uid}`;
    const spec: Record<string, unknown> = {
      capacity: { storage: pathString(claim, "spec.resources.requests.storage") || "1Gi" },
      accessModes: pathList(claim, "spec.accessModes").length > 0
        ? pathList(claim, "spec.accessModes")
        : ["ReadWriteOnce"],
      persistentVolumeReclaimPolicy: "Delete",
      storageClassName: pathString(claim, "spec.storageClassName"),
      volumeMode: pathString(claim, "spec.volumeMode") || "Filesystem",
      csi: {
        driver: linstorDriver,
        volumeHandle: name,
        fsType: "ext4",
        volumeAttributes: { "linstor.csi.linbit.com/uses-volume-context": "true" },
      },
      claimRef: {
        kind: "PersistentVolumeClaim",
        apiVersion: "v1",
        namespace: claim.metadata.namespace,
        name: claim.metadata.name,
        uid: claim.metadata.uid,
      },
    };
    if (options.nodes !== undefined) {
      spec.nodeAffinity = {
        required: {
          nodeSelectorTerms: [{
            matchExpressions: [{
              key: "kubernetes.io/hostname",
              operator: "In",
              values: options.nodes,
            }],
          }],
        },
      };
    }
    return {
      apiVersion: "v1",
      kind: "PersistentVolume",
      metadata: {
        name,
        annotations: { "pv.kubernetes.io/provisioned-by": linstorDriver },
      },
      spec,
    };
  };
}

const units: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/** Bytes of a quantity such as `10Gi` (NaN when unreadable). */
export function quantityBytes(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)([a-zA-Z]*)$/.exec(quantity.trim());
  if (m === null || !(m[2] in units)) return NaN;
  return Number(m[1]) * units[m[2]];
}

/** The simulated PersistentVolume controller. */
export class VolumeBinder {
  /** `source.component` of its Events. */
  static readonly component = "persistentvolume-controller";
  /** Its loop. */
  readonly runner: Runner;
  #cluster: Cluster;
  #provision: Provisioner | undefined;
  #recorder: EventRecorder;
  #provisioned = new Set<string>();

  /** A stopped binder; start its {@link runner}. */
  constructor(
    cluster: Cluster,
    constants: KubeConstants,
    options: { provisioner?: Provisioner } = {},
  ) {
    this.#cluster = cluster;
    this.#provision = options.provisioner;
    this.#recorder = new EventRecorder(cluster, { component: VolumeBinder.component });
    this.runner = new Runner(cluster, {
      name: VolumeBinder.component,
      periodMs: constants.controllerResyncPeriod,
      run: () => this.#sync(),
    });
  }

  #sync(): void {
    const component = VolumeBinder.component;
    for (const pv of this.#cluster.list("persistentvolumes")) {
      const claimRef = pathRecord(pv, "spec.claimRef");
      const phase = pathString(pv, "status.phase");
      if (Object.keys(claimRef).length === 0 && phase !== "Available" && phase !== "Released") {
        const next = structuredClone(pv);
        next.status = { ...pathRecord(pv, "status"), phase: "Available" };
        this.#cluster.update(component, "persistentvolumes", next, { subresource: "status" });
      }
    }
    for (const claim of this.#cluster.list("persistentvolumeclaims")) {
      if (isTerminating(claim)) continue;
      if (pathString(claim, "status.phase") === "Bound") continue;
      this.#bindClaim(claim);
    }
  }

  #bindClaim(claim: KubeObject): void {
    const component = VolumeBinder.component;
    const namespace = claim.metadata.namespace!;
    const name = claim.metadata.name!;
    const volumeName = pathString(claim, "spec.volumeName");
    let pv: KubeObject | undefined;
    let byController = false;
    if (volumeName !== "") {
      pv = this.#cluster.get("persistentvolumes", { name: volumeName });
      if (pv === undefined) return;
    } else {
      const pvs = this.#cluster.list("persistentvolumes");
      pv = pvs.find((p) => claimRefNames(p, claim));
      if (pv === undefined) {
        pv = pvs
          .filter((p) => fitsClaim(p, claim))
          .sort((a, b) => capacityOf(a) - capacityOf(b))[0];
        byController = pv !== undefined;
      }
    }
    if (pv === undefined) {
      this.#provisionFor(claim);
      return;
    }
    const pvRef = pathRecord(pv, "spec.claimRef");
    if (pvRef.uid !== undefined && pvRef.uid !== claim.metadata.uid) return;
    if (pvRef.uid === undefined || pathString(pv, "status.phase") !== "Bound") {
      const next = structuredClone(pv);
      const spec = pathRecord(next, "spec");
      spec.claimRef = {
        kind: "PersistentVolumeClaim",
        apiVersion: "v1",
        namespace,
        name,
        uid: claim.metadata.uid,
        resourceVersion: claim.metadata.resourceVersion,
      };
      next.spec = spec;
      const stored = this.#cluster.update(component, "persistentvolumes", next);
      if (stored === undefined) return;
      const bound = structuredClone(stored);
      bound.status = { ...pathRecord(stored, "status"), phase: "Bound" };
      pv = this.#cluster.update(component, "persistentvolumes", bound, { subresource: "status" });
      if (pv === undefined) return;
    }
    const nextClaim = structuredClone(claim);
    const spec = pathRecord(nextClaim, "spec");
    spec.volumeName = pv.metadata.name;
    nextClaim.spec = spec;
    const annotations: Record<string, string> = {
      ...(claim.metadata.annotations ?? {}),
      "pv.kubernetes.io/bind-completed": "yes",
    };
    if (byController) annotations["pv.kubernetes.io/bound-by-controller"] = "yes";
    nextClaim.metadata.annotations = annotations;
    const storedClaim = this.#cluster.update(component, "persistentvolumeclaims", nextClaim);
    if (storedClaim === undefined) return;
    const boundClaim = structuredClone(storedClaim);
    boundClaim.status = {
      ...pathRecord(storedClaim, "status"),
      phase: "Bound",
      accessModes: pathList(pv, "spec.accessModes"),
      capacity: pathRecord(pv, "spec.capacity"),
    };
    if (
      this.#cluster.update(component, "persistentvolumeclaims", boundClaim, {
        subresource: "status",
      })
    ) {
      this.#cluster.note(component, `bound claim ${namespace}/${name} to ${pv.metadata.name}`);
    }
  }

  #provisionFor(claim: KubeObject): void {
    const uid = claim.metadata.uid!;
    if (this.#provision === undefined || this.#provisioned.has(uid)) return;
    const pv = this.#provision(claim);
    if (pv === undefined) return;
    this.#provisioned.add(uid);
    const created = this.#cluster.create(VolumeBinder.component, "persistentvolumes", pv);
    if (created === undefined) return;
    const driver = pathString(created, "spec.csi.driver") || VolumeBinder.component;
    new EventRecorder(this.#cluster, { component: driver }).event(
      referenceTo(claim, "PersistentVolumeClaim"),
      {
        type: "Normal",
        reason: "ProvisioningSucceeded",
        message: `Successfully provisioned volume ${created.metadata.name}`,
      },
    );
  }
}

function claimRefNames(pv: KubeObject, claim: KubeObject): boolean {
  const ref = pathRecord(pv, "spec.claimRef");
  if (ref.name !== claim.metadata.name || ref.namespace !== claim.metadata.namespace) return false;
  return ref.uid === undefined || ref.uid === claim.metadata.uid;
}

function capacityOf(pv: KubeObject): number {
  return quantityBytes(pathString(pv, "spec.capacity.storage"));
}

function fitsClaim(pv: KubeObject, claim: KubeObject): boolean {
  if (Object.keys(pathRecord(pv, "spec.claimRef")).length > 0) return false;
  if (pathString(pv, "status.phase") !== "Available") return false;
  if (pathString(pv, "spec.storageClassName") !== pathString(claim, "spec.storageClassName")) {
    return false;
  }
  const modes = pathList(pv, "spec.accessModes");
  if (!pathList(claim, "spec.accessModes").every((m) => modes.includes(m))) return false;
  const wanted = quantityBytes(pathString(claim, "spec.resources.requests.storage") || "0");
  const selector = pathRecord(claim, "spec.selector");
  const labels = pv.metadata.labels ?? {};
  const matchLabels = isRecord(selector.matchLabels) ? selector.matchLabels : {};
  for (const [k, v] of Object.entries(matchLabels)) if (labels[k] !== v) return false;
  return !(capacityOf(pv) < wanted);
}
