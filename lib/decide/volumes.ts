/**
 * Mapping between a DRBD resource, the PersistentVolumes it backs, their
 * claims and the pods that use them, plus the per-pod checks the rules share.
 *
 * @module
 */

import type { DrbdResource } from "../drbd/model.ts";
import {
  type ClaimRef,
  drbdResourceOfVolume,
  type PersistentVolumeInfo,
  type PodInfo,
} from "../kube/objects.ts";
import { linstorCsiDriver } from "../names.ts";
import type { Snapshot } from "./types.ts";

/** One PV backed by a DRBD resource, with the claim bound to it (if any). */
export interface VolumeBinding {
  /** The PV. */
  persistentVolume: PersistentVolumeInfo;
  /** The claim from the PV's claimRef; undefined when unbound. */
  claim: ClaimRef | undefined;
}

/** A local DRBD resource with the PVs it backs, sorted by PV name. */
export interface ResourceView {
  /** The DRBD resource. */
  resource: DrbdResource;
  /** PVs whose volume handle names the resource (usually exactly one). */
  bindings: VolumeBinding[];
}

/** The PVs backed by DRBD resource `resource`, sorted by name. */
export function bindingsOfResource(
  resource: string,
  persistentVolumes: PersistentVolumeInfo[],
): VolumeBinding[] {
  return persistentVolumes
    .filter((pv) => drbdResourceOfVolume(pv) === resource)
    .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    .map((pv) => ({ persistentVolume: pv, claim: pv.claimRef }));
}

/** The claims of a resource's PVs (PVs without a claim are left out). */
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
 * emptyDir, ephemeral, csi, read-only PVCs and PVCs whose PV is on the
 * LINSTOR CSI driver. Node-local data (hostPath, local PVs, ...) is not.
 */
export function unsafeVolumes(
  pod: PodInfo,
  persistentVolumes: PersistentVolumeInfo[],
): string[] {
  const unsafe: string[] = [];
  for (const v of pod.volumes) {
    if (v.kind === "other") {
      unsafe.push(`${v.name} (${v.type})`);
    } else if (v.kind === "pvc" && !v.readOnly) {
      const pv = persistentVolumes.find((p) =>
        p.claimRef !== undefined && p.claimRef.namespace === pod.namespace &&
        p.claimRef.name === v.claimName
      );
      if (pv?.csiDriver !== linstorCsiDriver) {
        unsafe.push(`${v.name} (claim ${v.claimName} not on ${linstorCsiDriver})`);
      }
    }
  }
  return unsafe;
}

/**
 * Kubernetes node name behind a DRBD connection name: the node of the
 * satellite pod with that name if one exists, else the name itself.
 */
export function nodeOfConnection(connectionName: string, satellitePods: PodInfo[]): string {
  const satellite = satellitePods.find((p) => p.name === connectionName);
  return satellite && satellite.nodeName !== "" ? satellite.nodeName : connectionName;
}

/**
 * Every pod known to the agent that uses one of the claims: local pods and
 * the pods of peers that were read successfully, without duplicates.
 */
export function knownConsumers(
  claims: ClaimRef[],
  snapshot: Pick<Snapshot, "localPods" | "peers">,
): PodInfo[] {
  const byUid = new Map<string, PodInfo>();
  const candidates: PodInfo[] = [...snapshot.localPods];
  for (const peer of snapshot.peers.values()) {
    if (peer.ok) candidates.push(...peer.pods);
  }
  for (const pod of candidates) {
    if (podUsesAnyClaim(pod, claims) && !byUid.has(pod.uid)) byUid.set(pod.uid, pod);
  }
  return [...byUid.values()];
}
