/**
 * Small builders for decision tests: every builder returns a healthy,
 * complete object and takes overrides for what a test case is about.
 *
 * The standard scene (`failOverScene`): this node `node-a` runs
 * Secondary replica of resource `pvc-1` (quorum majority, may promote);
 * the connection to `node-b` is `Connecting`; PV `pvc-1` is bound to claim
 * `default/data`; pod `default/app` (owned, Running) uses it on `node-b`,
 * and VolumeAttachment `csi-b` attaches `pvc-1` to `node-b`.
 *
 * @module
 */

import type {
  DrbdConnection,
  DrbdDevice,
  DrbdResource,
  DrbdResourceConfig,
  DrbdSample,
} from "../../lib/drbd/model.ts";
import type {
  HeldVolume,
  NodeInfo,
  PersistentVolumeInfo,
  PodInfo,
  PodVolume,
  VolumeAttachmentInfo,
} from "../../lib/kube/objects.ts";
import { linstorCsiDriver } from "../../lib/names.ts";
import { defaultOptions, type Options } from "../../lib/options.ts";
import {
  type Action,
  emptyMemory,
  type KubeletLease,
  type Memory,
  type PeerView,
  type Snapshot,
} from "../../lib/decide/types.ts";

/** A fixed "now" for every test. */
export const T0 = 1_800_000_000_000;

/** Options as the tests use them: node-a, 5 s fail-over timeout, 60 s operations timeout. */
export function options(overrides: Partial<Options> = {}): Options {
  return { ...defaultOptions, nodeName: "node-a", ...overrides };
}

/** A DRBD device: volume 0, UpToDate, with quorum. */
export function device(overrides: Partial<DrbdDevice> = {}): DrbdDevice {
  return {
    volume: 0,
    minor: 1000,
    diskState: "UpToDate",
    client: false,
    open: false,
    quorum: true,
    ...overrides,
  };
}

/** A DRBD connection, Connected unless `state` says otherwise. */
export function connection(name: string, state = "Connected"): DrbdConnection {
  const connected = state === "Connected";
  return {
    peerNodeId: 1,
    name,
    connectionState: state,
    peerRole: connected ? "Secondary" : "Unknown",
    peerDevices: [{
      volume: 0,
      replicationState: connected ? "Established" : "Off",
      peerDiskState: connected ? "UpToDate" : "DUnknown",
      peerClient: false,
    }],
  };
}

/** Resource configuration with `quorum majority` and the default on-no-* policies. */
export function config(overrides: Partial<DrbdResourceConfig> = {}): DrbdResourceConfig {
  return {
    quorum: "majority",
    onNoQuorum: "suspend-io",
    onNoDataAccessible: "io-error",
    onSuspendedPrimaryOutdated: "disconnect",
    ...overrides,
  };
}

/** A healthy local Secondary that may promote, with quorum majority and one device. */
export function drbdResource(name: string, overrides: Partial<DrbdResource> = {}): DrbdResource {
  return {
    name,
    role: "Secondary",
    suspended: { user: false, noData: false, fencing: false, quorum: false },
    forceIoFailures: false,
    mayPromote: true,
    promotionScore: 10101,
    devices: [device()],
    connections: [],
    config: config(),
    ...overrides,
  };
}

/** A DRBD sample confirmed at T0. */
export function sample(resources: DrbdResource[], overrides: Partial<DrbdSample> = {}): DrbdSample {
  return { availability: "ok", message: undefined, resources, confirmedAt: T0, ...overrides };
}

/** A Ready node without taints. */
export function node(name: string, overrides: Partial<NodeInfo> = {}): NodeInfo {
  return {
    name,
    uid: `uid-node-${name}`,
    resourceVersion: "1",
    ready: true,
    taints: [],
    actionsPaused: false,
    ...overrides,
  };
}

/** A read-write pvc volume named `data`. */
export function pvcVolume(claimName: string, readOnly = false): PodVolume {
  return { kind: "pvc", name: "data", claimName, readOnly };
}

/** An owned, Running pod in `default` on node-b using claim `data`. */
export function pod(name: string, overrides: Partial<PodInfo> = {}): PodInfo {
  return {
    namespace: "default",
    name,
    uid: `uid-pod-${name}`,
    nodeName: "node-b",
    phase: "Running",
    deletionTimestamp: undefined,
    containerRunning: false,
    sandboxReady: true,
    hasOwner: true,
    ignoreFailOver: false,
    volumes: [pvcVolume("data"), { kind: "secret", name: "token" }],
    ...overrides,
  };
}

/** A LINSTOR PV whose volume handle is its name, Bound to `default/data`. */
export function pv(
  name: string,
  overrides: Partial<PersistentVolumeInfo> = {},
): PersistentVolumeInfo {
  return {
    name,
    uid: `uid-pv-${name}`,
    csiDriver: linstorCsiDriver,
    volumeHandle: name,
    claimRef: { namespace: "default", name: "data", uid: "uid-pvc-data" },
    phase: "Bound",
    ...overrides,
  };
}

/** A VolumeAttachment of `pvName` to `nodeName`. */
export function va(name: string, pvName: string, nodeName: string): VolumeAttachmentInfo {
  return {
    name,
    uid: `uid-va-${name}`,
    nodeName,
    persistentVolumeName: pvName,
    attacher: linstorCsiDriver,
    deleting: false,
  };
}

/**
 * A successfully fetched peer; its kubelet renewed its 40 s Lease at T0
 * unless `lease` says otherwise (null: no Lease at all).
 */
export function peer(
  nodeInfo: NodeInfo | null,
  pods: PodInfo[],
  lease: KubeletLease | null = { renewTime: T0, durationSeconds: 40, ageAtRead: 0, readAt: T0 },
): PeerView {
  return { ok: true, node: nodeInfo, pods, kubeletLease: lease };
}

/** A complete, trusted snapshot of node-a with nothing in it. */
export function snapshot(overrides: Partial<Snapshot> = {}): Snapshot {
  return {
    nodeName: "node-a",
    drbd: sample([]),
    ownNode: node("node-a"),
    localPods: [],
    satellitePods: [],
    persistentVolumes: [],
    volumeAttachments: [],
    peers: new Map(),
    cachesSynced: true,
    ...overrides,
  };
}

/** Knobs of the standard fail-over scene. */
export interface SceneOptions {
  /** State of the connection to node-b. */
  connectionState?: string;
  /** Overrides for resource pvc-1. */
  resource?: Partial<DrbdResource>;
  /** Node-b as fetched (null: it does not exist). */
  peerNode?: NodeInfo | null;
  /** Pods fetched for node-b. */
  peerPods?: PodInfo[];
  /** The whole peer view (e.g. a fetch error); replaces peerNode/peerPods. */
  peerView?: PeerView;
  /** PVs. */
  persistentVolumes?: HeldVolume[];
  /** VolumeAttachments. */
  volumeAttachments?: VolumeAttachmentInfo[];
  /** Any other snapshot field. */
  snapshot?: Partial<Snapshot>;
}

/** The standard fail-over scene (see the module comment), with overrides. */
export function failOverScene(scene: SceneOptions = {}): Snapshot {
  const resource = drbdResource("pvc-1", {
    connections: [connection("node-b", scene.connectionState ?? "Connecting")],
    ...scene.resource,
  });
  const view = scene.peerView ??
    peer(
      scene.peerNode === undefined ? node("node-b") : scene.peerNode,
      scene.peerPods ?? [pod("app")],
    );
  return snapshot({
    drbd: sample([resource]),
    persistentVolumes: scene.persistentVolumes ?? [pv("pvc-1")],
    volumeAttachments: scene.volumeAttachments ?? [va("csi-b", "pvc-1", "node-b")],
    peers: new Map([["node-b", view]]),
    ...scene.snapshot,
  });
}

/** Memory with the given timers and records (plain objects for readability). */
export function memory(parts: {
  failOverSince?: Record<string, number>;
  quorumLostSince?: Record<string, number>;
  suspendedSince?: Record<string, number>;
  actedAt?: Record<string, number>;
  failOvers?: Record<string, { count: number; lastAt: number }>;
} = {}): Memory {
  const m = emptyMemory();
  for (const [k, v] of Object.entries(parts.failOverSince ?? {})) m.failOverSince.set(k, v);
  for (const [k, v] of Object.entries(parts.quorumLostSince ?? {})) m.quorumLostSince.set(k, v);
  for (const [k, v] of Object.entries(parts.suspendedSince ?? {})) m.suspendedSince.set(k, v);
  for (const [k, v] of Object.entries(parts.actedAt ?? {})) m.actedAt.set(k, v);
  for (const [k, v] of Object.entries(parts.failOvers ?? {})) m.failOvers.set(k, v);
  return m;
}

/** One line per action: kind and target, e.g. `evict-pod default/app`. */
export function summary(plan: Action[]): string[] {
  return plan.map((action) => {
    switch (action.kind) {
      case "taint-node":
      case "untaint-node":
        return `${action.kind} ${action.node} ${action.taint.key}`;
      case "evict-pod":
      case "force-delete-pod":
        return `${action.kind} ${action.pod.namespace}/${action.pod.name}`;
      case "delete-volume-attachment":
        return `${action.kind} ${action.name}`;
      case "force-demote":
        return `${action.kind} ${action.resource}`;
    }
  });
}

/** One line per event: `reason/action Kind namespace/name`. */
export function eventSummary(plan: Action[]): string[] {
  return plan.flatMap((action) =>
    action.events.map((e) => {
      const target = e.regarding.namespace
        ? `${e.regarding.namespace}/${e.regarding.name}`
        : e.regarding.name;
      return `${e.type} ${e.reason}/${e.action} ${e.regarding.kind} ${target}`;
    })
  );
}
