/**
 * Mapping between a DRBD resource, the PersistentVolumes it backs, their
 * claims and the pods that use them, plus the per-pod checks the rules share.
 *
 * @module
 */

import type { DrbdResource } from "../drbd/model.ts";
import {
  claimId,
  type ClaimRef,
  drbdResourceOfVolume,
  type HeldVolume,
  type PersistentVolumeInfo,
  type PodInfo,
  type SatellitePodInfo,
  type VolumeAttachmentInfo,
} from "../kube/objects.ts";
import { linstorCsiDriver } from "../names.ts";
import { derivedOf } from "../unchanging.ts";
import type { Snapshot } from "./types.ts";

/** One PV backed by a DRBD resource, with the claim that uses it now (if known). */
export interface VolumeBinding {
  /** The PV. */
  persistentVolume: PersistentVolumeInfo;
  /**
   * The claim from the PV's claimRef: only when the PV is Bound and no other
   * Bound PV names the same claim; undefined otherwise.
   */
  claim: ClaimRef | undefined;
  /** Why the PV's claimRef does not count (not Bound, or ambiguous); undefined when it does. */
  claimIgnored: string | undefined;
}

/** A local DRBD resource with the PVs it backs, sorted by PV name. */
export interface ResourceView {
  /** The DRBD resource. */
  resource: DrbdResource;
  /** PVs whose volume handle names the resource (usually exactly one). */
  bindings: readonly VolumeBinding[];
}

/**
 * The PVs backed by DRBD resource `resource`, sorted by name. Only a Bound
 * PV binds its claim: a Released PV keeps the claimRef of a deleted claim,
 * whose name a new claim may have taken. When two Bound PVs name the same
 * claim, neither binds it (which one the pods use is unknown).
 */
export function bindingsOfResource(
  resource: string,
  persistentVolumes: readonly HeldVolume[],
): readonly VolumeBinding[] {
  return new SnapshotIndex({ persistentVolumes }).bindingsOf(resource);
}

/**
 * Lookups of one snapshot by DRBD resource and by claim, built once per
 * decision (in linear time) instead of scanning every PV and pod for every
 * resource. Answers exactly what the scanning functions answer, in the same
 * order. The snapshot must not change while the index is used.
 */
export class SnapshotIndex {
  readonly #persistentVolumes: readonly HeldVolume[];
  readonly #pods: Pick<Snapshot, "localPods" | "peers"> | undefined;
  #byResource: Map<string, PersistentVolumeInfo[]> | undefined;
  #bindings: Map<string, readonly VolumeBinding[]> | undefined;
  #boundByClaim: Map<string, HeldVolume | HeldVolume[]> | undefined;
  #consumersByClaim: Map<string, { at: number; pod: PodInfo }[]> | undefined;

  /** An index of the PVs and, when given, of the pods known to the agent. */
  constructor(
    snapshot: Pick<Snapshot, "persistentVolumes"> & Partial<Pick<Snapshot, "localPods" | "peers">>,
  ) {
    this.#persistentVolumes = snapshot.persistentVolumes;
    this.#pods = snapshot.localPods === undefined || snapshot.peers === undefined
      ? undefined
      : { localPods: snapshot.localPods, peers: snapshot.peers };
  }

  /** See {@linkcode bindingsOfResource}. */
  bindingsOf(resource: string): readonly VolumeBinding[] {
    this.#bindings ??= bindingsMemo(this.#persistentVolumes);
    const known = this.#bindings.get(resource);
    if (known !== undefined) return known;
    this.#byResource ??= pvMaps(this.#persistentVolumes).byResource;
    const bindings = [...(this.#byResource.get(resource) ?? [])]
      .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
      .map((pv) => this.#bindingOf(pv));
    this.#bindings.set(resource, bindings);
    return bindings;
  }

  /** Bound PVs whose claimRef names `claim` (by namespace and name), in snapshot order. */
  boundTo(claim: { namespace: string; name: string }): readonly HeldVolume[] {
    this.#boundByClaim ??= pvMaps(this.#persistentVolumes).boundByClaim;
    const bound = this.#boundByClaim.get(claimId(claim.namespace, claim.name));
    return bound === undefined ? [] : Array.isArray(bound) ? bound : [bound];
  }

  /** See {@linkcode knownConsumers}; needs the pods given to the constructor. */
  consumersOf(claims: ClaimRef[]): PodInfo[] {
    if (this.#pods === undefined) throw new Error("Expected an index with the snapshot's pods");
    if (this.#consumersByClaim === undefined) {
      this.#consumersByClaim = new Map();
      candidatePods(this.#pods).forEach((pod, at) => {
        for (const v of pod.volumes) {
          if (v.kind !== "pvc") continue;
          const key = claimId(pod.namespace, v.claimName);
          const list = this.#consumersByClaim!.get(key);
          if (list === undefined) this.#consumersByClaim!.set(key, [{ at, pod }]);
          else if (list[list.length - 1].at !== at) list.push({ at, pod });
        }
      });
    }
    const byClaim = this.#consumersByClaim;
    const found = claims.length === 1
      ? byClaim.get(claimId(claims[0].namespace, claims[0].name)) ?? []
      : claims.flatMap((c) => byClaim.get(claimId(c.namespace, c.name)) ?? [])
        .sort((a, b) => a.at - b.at);
    if (found.length <= 1) return found.map(({ pod }) => pod);
    const byUid = new Map<string, PodInfo>();
    for (const { pod } of found) if (!byUid.has(pod.uid)) byUid.set(pod.uid, pod);
    return [...byUid.values()];
  }

  #bindingOf(pv: PersistentVolumeInfo): VolumeBinding {
    const unbound = { persistentVolume: pv, claim: undefined };
    if (pv.claimRef === undefined) return { ...unbound, claimIgnored: undefined };
    const claim = claimKey(pv.claimRef);
    if (pv.phase !== "Bound") {
      const phase = pv.phase === "" ? "of unknown phase" : pv.phase;
      return { ...unbound, claimIgnored: `is ${phase}, not Bound to claim ${claim}` };
    }
    // By name: a claim-only PV (objects.ts) carries no uid; names are unique.
    const others = this.boundTo(pv.claimRef).filter((other) => other.name !== pv.name);
    if (others.length > 0) {
      const names = others.map((other) => other.name).join(", ");
      return {
        ...unbound,
        claimIgnored: `claims ${claim}, which Bound PV ${names} claims as well`,
      };
    }
    return { persistentVolume: pv, claim: pv.claimRef, claimIgnored: undefined };
  }
}

/**
 * Full PVs by DRBD resource and by name, Bound PVs (full and claim-only) by
 * claim (`claimId`); lists in array order.
 */
interface PvMaps {
  byResource: Map<string, PersistentVolumeInfo[]>;
  /** One PV, or several (a claim bound twice): most claims have one, held without an array. */
  boundByClaim: Map<string, HeldVolume | HeldVolume[]>;
  fullByName: Map<string, PersistentVolumeInfo>;
}

/**
 * The maps of a PV array, built once per array: the caches hand out the same
 * array until a PV changes, so a cluster of 10,000 PVs is not indexed again
 * every decision cycle. A claim-only PV's claim key is its own string.
 */
const pvMaps = derivedOf((persistentVolumes: readonly HeldVolume[]): PvMaps => {
  const maps: PvMaps = { byResource: new Map(), boundByClaim: new Map(), fullByName: new Map() };
  const bind = (claim: string, pv: HeldVolume) => {
    const known = maps.boundByClaim.get(claim);
    if (known === undefined) maps.boundByClaim.set(claim, pv);
    else if (Array.isArray(known)) known.push(pv);
    else maps.boundByClaim.set(claim, [known, pv]);
  };
  for (const pv of persistentVolumes) {
    if (pv.claimOnly) {
      bind(pv.claim, pv);
      continue;
    }
    maps.fullByName.set(pv.name, pv);
    const name = drbdResourceOfVolume(pv);
    if (name !== undefined) append(maps.byResource, name, pv);
    if (pv.phase === "Bound" && pv.claimRef !== undefined) {
      bind(claimId(pv.claimRef.namespace, pv.claimRef.name), pv);
    }
  }
  return maps;
});

/** The PVs of a snapshot held in full, by name (see `pvMaps`). */
export function fullVolumesByName(
  persistentVolumes: readonly HeldVolume[],
): Map<string, PersistentVolumeInfo> {
  return pvMaps(persistentVolumes).fullByName;
}

/** `bindingsOf` answers, by DRBD resource, filled as asked (see `pvMaps`). */
const bindingsMemo = derivedOf((_: readonly HeldVolume[]) =>
  new Map<string, readonly VolumeBinding[]>()
);

/** VolumeAttachments by PV name, in array order (see `pvMaps`); none without a PV name. */
export const attachmentsByVolume = derivedOf((attachments: readonly VolumeAttachmentInfo[]) => {
  const byVolume = new Map<string, VolumeAttachmentInfo[]>();
  for (const va of attachments) {
    if (va.persistentVolumeName !== undefined) append(byVolume, va.persistentVolumeName, va);
  }
  return byVolume;
});

/** Satellite pods by name, in array order (see `pvMaps`). */
const satellitesByName = derivedOf((satellitePods: readonly SatellitePodInfo[]) => {
  const byName = new Map<string, PodInfo[]>();
  for (const pod of satellitePods) append(byName, pod.name, pod);
  return byName;
});

function append<V>(map: Map<string, V[]>, key: string, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Local pods, then the pods of every peer that was read successfully. */
function candidatePods(snapshot: Pick<Snapshot, "localPods" | "peers">): PodInfo[] {
  const candidates: PodInfo[] = [...snapshot.localPods];
  for (const peer of snapshot.peers.values()) {
    if (peer.ok) candidates.push(...peer.pods);
  }
  return candidates;
}

/** The claims bound to a resource's PVs (see `VolumeBinding.claim`). */
export function claimsOf(view: ResourceView): ClaimRef[] {
  const claims: ClaimRef[] = [];
  for (const binding of view.bindings) {
    if (binding.claim) claims.push(binding.claim);
  }
  return claims;
}

/** `namespace/name` of a claim. */
export function claimKey(claim: ClaimRef): string {
  return `${claim.namespace}/${claim.name}`;
}

/** `namespace/name` of a pod. */
export function podKey(pod: { namespace: string; name: string }): string {
  return `${pod.namespace}/${pod.name}`;
}

/** True when the pod mounts any of `claims` through a pvc volume. */
export function podUsesAnyClaim(pod: PodInfo, claims: ClaimRef[]): boolean {
  return pod.volumes.some((v) =>
    v.kind === "pvc" &&
    claims.some((c) => c.namespace === pod.namespace && c.name === v.claimName)
  );
}

/** True when every pvc volume through which the pod uses one of `claims` is read-only. */
export function podUsesClaimsReadOnly(pod: PodInfo, claims: ClaimRef[]): boolean {
  let uses = false;
  for (const v of pod.volumes) {
    if (v.kind !== "pvc") continue;
    if (!claims.some((c) => c.namespace === pod.namespace && c.name === v.claimName)) continue;
    uses = true;
    if (!v.readOnly) return false;
  }
  return uses;
}

/** The pod finished (Succeeded or Failed): it holds no volume open any more. */
export function podIsTerminal(pod: PodInfo): boolean {
  return pod.phase === "Succeeded" || pod.phase === "Failed";
}

/**
 * Names of the pod's volumes that are not known to be safe to fail over,
 * each as `name (kind)`. Safe: configMap, secret, downwardAPI, projected,
 * emptyDir, ephemeral, csi, read-only PVCs and PVCs whose only Bound PV is
 * on the LINSTOR CSI driver. Node-local data (hostPath, local PVs, ...) is
 * not, and neither is a claim with no or several Bound PVs.
 */
export function unsafeVolumes(
  pod: PodInfo,
  persistentVolumes: readonly HeldVolume[],
  index: SnapshotIndex = new SnapshotIndex({ persistentVolumes }),
): string[] {
  const unsafe: string[] = [];
  for (const v of pod.volumes) {
    if (v.kind === "other") {
      unsafe.push(`${v.name} (${v.type})`);
    } else if (v.kind === "pvc" && !v.readOnly) {
      const pvs = index.boundTo({ namespace: pod.namespace, name: v.claimName });
      if (pvs.length > 1) {
        unsafe.push(`${v.name} (claim ${v.claimName} has several Bound PVs)`);
      } else if (pvs[0]?.csiDriver !== linstorCsiDriver) {
        unsafe.push(`${v.name} (claim ${v.claimName} not on ${linstorCsiDriver})`);
      }
    }
  }
  return unsafe;
}

/** The Kubernetes node behind a DRBD connection name (see `nodeOfConnection`). */
export type ConnectionNode =
  /** Exactly one node. */
  | { known: true; node: string }
  /** Several satellite pods have that name: the node is unknown. */
  | { known: false; candidates: string[] };

/**
 * Kubernetes node behind a DRBD connection name: the node of the one
 * satellite pod with that name, else the name itself (no such pod, or it is
 * not scheduled yet). Several satellite pods with that name (in different
 * namespaces) make the node unknown; `candidates` lists their nodes (the
 * name itself for an unscheduled one), sorted, without duplicates.
 */
export function nodeOfConnection(
  connectionName: string,
  satellitePods: readonly SatellitePodInfo[],
): ConnectionNode {
  const named = satellitesByName(satellitePods).get(connectionName) ?? [];
  const nodes = named.map((p) => p.nodeName !== "" ? p.nodeName : connectionName);
  if (named.length <= 1) return { known: true, node: nodes[0] ?? connectionName };
  return { known: false, candidates: [...new Set(nodes)].sort() };
}

/**
 * Every pod known to the agent that uses one of the claims: local pods and
 * the pods of peers that were read successfully, without duplicates.
 */
export function knownConsumers(
  claims: ClaimRef[],
  snapshot: Pick<Snapshot, "localPods" | "peers">,
  index?: SnapshotIndex,
): PodInfo[] {
  if (index !== undefined) return index.consumersOf(claims);
  const byUid = new Map<string, PodInfo>();
  for (const pod of candidatePods(snapshot)) {
    if (podUsesAnyClaim(pod, claims) && !byUid.has(pod.uid)) byUid.set(pod.uid, pod);
  }
  return [...byUid.values()];
}
