/**
 * The Kubernetes edge: the client, the caches the rules read, on-demand peer
 * reads and all writes.
 *
 * @module
 */

import type {
  V1Node,
  V1PersistentVolume,
  V1Pod,
  V1VolumeAttachment,
} from "@kubernetes/client-node";
import type { KubeClient } from "./client.ts";
import { type CacheLogger, ListWatchCache } from "./cache.ts";
import { linstorCsiDriver } from "../names.ts";
import {
  claimOnlyVolume,
  drbdResourceOfVolume,
  type HeldVolume,
  type NodeInfo,
  type PodInfo,
  type SatellitePodInfo,
  slimNode,
  slimPersistentVolume,
  slimPod,
  slimSatellitePod,
  slimVolumeAttachment,
  type VolumeAttachmentInfo,
} from "./objects.ts";

export { ApiError, errorMessage, isNotFound, KubeClient } from "./client.ts";
export { KubeWriter, microTime, type WriteOutcome } from "./writes.ts";
export { fetchPeer } from "./peers.ts";
export * from "./objects.ts";

/** Options of the cache set. */
export interface CacheSetOptions {
  /** This node's name. */
  nodeName: string;
  /** Label selector of satellite pods. */
  satellitePodLabel: string;
  /** Full relist period in ms. */
  resyncIntervalMs: number;
  /** Called after any cache changed. */
  onChange: () => void;
  /** Logger. */
  log: CacheLogger;
  /** Watch timeoutSeconds (tests use small values). */
  watchTimeoutSeconds?: number;
  /** Grace for a silent watch past its timeout, ms. */
  watchGraceMs?: number;
  /** First backoff delay, ms. */
  backoffInitialMs?: number;
}

/**
 * The caches the rules read: exactly what they need, nothing cluster-wide
 * about pods, and of volumes what this node's DRBD resources need.
 *
 * Volumes are filtered by the DRBD resources of this node, which `want()`
 * names (call it before `start()` with the first DRBD sample, then with
 * every sample that could be read):
 * - a PV whose volume handle names such a resource is held in full; every
 *   other PV that is Bound to a claim is held claim-only (name, claim,
 *   driver; see `claimOnlyVolume`), since the rules ask of
 *   every claim a pod mounts whether it is Bound to one LINSTOR PV; other PVs
 *   are not held;
 * - a VolumeAttachment is held when it is LINSTOR's and attaches the PV of
 *   such a resource, or attaches any volume to this node (its DRBD resource
 *   may not be configured here yet: see the own-taint rule).
 * A resource `want()` names for the first time makes both caches list again
 * (they report themselves unsynced meanwhile, so the rules hold back rather
 * than decide without the volume); resources are never forgotten, so one
 * that comes and goes does not make them list again.
 */
export class KubeCaches {
  /** This node's Node (field selector on its name). */
  readonly ownNode: ListWatchCache<NodeInfo>;
  /** Pods bound to this node. */
  readonly localPods: ListWatchCache<PodInfo>;
  /** LINSTOR satellite pods (by label). */
  readonly satellitePods: ListWatchCache<SatellitePodInfo>;
  /** The PVs of this node's DRBD resources in full, every other Bound PV claim-only. */
  readonly persistentVolumes: ListWatchCache<HeldVolume>;
  /** LINSTOR VolumeAttachments of the PVs of this node's DRBD resources, and to this node. */
  readonly volumeAttachments: ListWatchCache<VolumeAttachmentInfo>;
  /** DRBD resources of this node, as `want()` named them. */
  readonly #resources = new Set<string>();
  /** PV names whose VolumeAttachments are held: the resources', and PVs named otherwise. */
  readonly #attachedVolumes = new Set<string>();
  #started = false;

  /** Create (not start) the caches. */
  constructor(client: KubeClient, options: CacheSetOptions) {
    const common = {
      onChange: options.onChange,
      resyncIntervalMs: options.resyncIntervalMs,
      log: options.log,
      watchTimeoutSeconds: options.watchTimeoutSeconds,
      watchGraceMs: options.watchGraceMs,
      backoffInitialMs: options.backoffInitialMs,
    };
    const podKey = (p: { namespace: string; name: string }) => `${p.namespace}/${p.name}`;
    this.ownNode = new ListWatchCache(client, {
      ...common,
      name: `node ${options.nodeName}`,
      path: "/api/v1/nodes",
      fieldSelector: `metadata.name=${options.nodeName}`,
      convert: (raw) => slimNode(raw as V1Node),
      key: (n) => n.name,
    });
    this.localPods = new ListWatchCache(client, {
      ...common,
      name: `pods on ${options.nodeName}`,
      path: "/api/v1/pods",
      fieldSelector: `spec.nodeName=${options.nodeName}`,
      convert: (raw) => slimPod(raw as V1Pod),
      key: podKey,
    });
    this.satellitePods = new ListWatchCache(client, {
      ...common,
      name: "satellite pods",
      path: "/api/v1/pods",
      labelSelector: options.satellitePodLabel,
      convert: (raw) => slimSatellitePod(raw as V1Pod),
      key: podKey,
    });
    this.persistentVolumes = new ListWatchCache(client, {
      ...common,
      name: "persistent volumes",
      path: "/api/v1/persistentvolumes",
      convert: (raw) => {
        const pv = slimPersistentVolume(raw as V1PersistentVolume);
        if (pv === undefined) return undefined;
        const resource = this.#localResourceOf(pv);
        if (resource === undefined) return claimOnlyVolume(pv) ?? pv;
        // A PV not named after its resource: its attachments name the PV.
        if (pv.name !== resource) this.#holdAttachmentsOf(pv.name);
        return pv;
      },
      keep: (pv) => pv.claimOnly === true || this.#localResourceOf(pv) !== undefined,
      key: (pv) => pv.name,
    });
    this.volumeAttachments = new ListWatchCache(client, {
      ...common,
      name: "volume attachments",
      path: "/apis/storage.k8s.io/v1/volumeattachments",
      convert: (raw) => slimVolumeAttachment(raw as V1VolumeAttachment),
      keep: (va) =>
        va.attacher === linstorCsiDriver && va.persistentVolumeName !== undefined &&
        (this.#attachedVolumes.has(va.persistentVolumeName) || va.nodeName === options.nodeName),
      key: (va) => va.name,
    });
  }

  #all(): ListWatchCache<unknown>[] {
    return [
      this.ownNode,
      this.localPods,
      this.satellitePods,
      this.persistentVolumes,
      this.volumeAttachments,
    ] as ListWatchCache<unknown>[];
  }

  /**
   * Name this node's DRBD resources (all of them, from a sample that could
   * be read). One named for the first time after `start()` makes the volume
   * caches list again.
   */
  want(resources: Iterable<string>): void {
    let grew = false;
    for (const name of resources) {
      if (this.#resources.has(name)) continue;
      this.#resources.add(name);
      this.#attachedVolumes.add(name);
      grew = true;
    }
    if (grew && this.#started) {
      this.persistentVolumes.relist();
      this.volumeAttachments.relist();
    }
  }

  #localResourceOf(pv: HeldVolume): string | undefined {
    if (pv.claimOnly) return undefined;
    const resource = drbdResourceOfVolume(pv);
    return resource !== undefined && this.#resources.has(resource) ? resource : undefined;
  }

  #holdAttachmentsOf(volume: string): void {
    if (this.#attachedVolumes.has(volume)) return;
    this.#attachedVolumes.add(volume);
    if (this.#started) this.volumeAttachments.relist();
  }

  /** Start every cache. */
  start(): void {
    this.#started = true;
    for (const c of this.#all()) c.start();
  }

  /** Stop every cache. */
  async stop(): Promise<void> {
    await Promise.all(this.#all().map((c) => c.stop()));
  }

  /** True when every cache is synced. */
  get synced(): boolean {
    return this.#all().every((c) => c.synced);
  }

  /** Why caches are not synced, one entry per cache ([] when synced). */
  problems(): string[] {
    return this.#all().filter((c) => !c.synced).map((c) => c.problem || `${c.name}: not synced`);
  }

  /** Wait until all caches synced or the timeout passed. */
  async waitSynced(timeoutMs: number): Promise<boolean> {
    const results = await Promise.all(this.#all().map((c) => c.waitSynced(timeoutMs)));
    return results.every(Boolean);
  }
}
