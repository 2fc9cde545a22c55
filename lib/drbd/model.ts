/**
 * The typed DRBD model that the rest of ha-controller reads.
 *
 * Nothing outside `lib/drbd/` parses drbdsetup text: the parsers there turn
 * `events2`, `status --json` and `show --json` output into these types.
 *
 * Enum-like fields keep the spelling drbdsetup printed (see DRBD_FORMATS.md
 * §1.1). A value this version does not know is kept as printed, so callers
 * compare against the known good value (for example `connectionState ===
 * "Connected"`) and treat everything else as "not that".
 *
 * @module
 */

/** Role of the local resource or of a peer (`Unknown` for an unconnected peer). */
export type Role = "Primary" | "Secondary" | "Unknown";

/** Why I/O on a resource is suspended; all false means not suspended. */
export interface SuspendReasons {
  /** `drbdsetup suspend-io` by an operator. */
  user: boolean;
  /** `on-no-data-accessible suspend-io` took effect. */
  noData: boolean;
  /** A fence-peer action is in progress. */
  fencing: boolean;
  /** `on-no-quorum suspend-io` and some volume lacks quorum. */
  quorum: boolean;
}

/** One local volume of a resource. */
export interface DrbdDevice {
  /** Volume number inside the resource. */
  volume: number;
  /** Device minor (`/dev/drbd<minor>`). */
  minor: number;
  /** Local disk state, e.g. `UpToDate`, `Diskless`, `Consistent`. */
  diskState: string;
  /** Intentionally diskless ("client") volume; undefined when drbdsetup said `unknown`. */
  client: boolean | undefined;
  /** Device is open; undefined when not reported (drbd-utils before 9.29). */
  open: boolean | undefined;
  /** This volume has quorum (always true with `quorum off`). */
  quorum: boolean;
}

/** The view of one volume on one peer. */
export interface DrbdPeerDevice {
  /** Volume number. */
  volume: number;
  /** Replication state, `Off` whenever the connection is not Connected. */
  replicationState: string;
  /** Peer disk state, `DUnknown` for an unreachable peer. */
  peerDiskState: string;
  /** Peer is intentionally diskless; undefined when drbdsetup said `unknown`. */
  peerClient: boolean | undefined;
}

/** A connection to one peer node. */
export interface DrbdConnection {
  /** The peer's node id inside the resource. */
  peerNodeId: number;
  /** Connection name: the peer's host name in the DRBD configuration. */
  name: string;
  /** Connection state, e.g. `Connected`, `Connecting`, `NetworkFailure`. */
  connectionState: string;
  /** The peer's role as last seen (`Unknown` unless Connected). */
  peerRole: Role;
  /** Peer devices, ascending volume order. */
  peerDevices: DrbdPeerDevice[];
}

/** Quorum policy: `off`, `majority`, `all` or a fixed node count. */
export type QuorumPolicy = "off" | "majority" | "all" | number;

/** What the agent needs from `drbdsetup show --json` for one resource. */
export interface DrbdResourceConfig {
  /** `options.quorum`; `off` when not shown (the kernel default). */
  quorum: QuorumPolicy;
  /** `options.on-no-quorum` (default `suspend-io`). */
  onNoQuorum: "io-error" | "suspend-io" | string;
  /** `options.on-no-data-accessible` (default `io-error`). */
  onNoDataAccessible: "io-error" | "suspend-io" | string;
  /** `options.on-suspended-primary-outdated` (default `disconnect`). */
  onSuspendedPrimaryOutdated: "disconnect" | "force-secondary" | string;
}

/** A DRBD resource as seen on this node. */
export interface DrbdResource {
  /** Resource name (LINSTOR: the PV name). */
  name: string;
  /** Local role. */
  role: Role;
  /** Suspend reasons. */
  suspended: SuspendReasons;
  /** All I/O fails until every opener closed (after a forced demotion). */
  forceIoFailures: boolean;
  /**
   * drbdsetup's may_promote: quorum, UpToDate data and no Primary anywhere.
   * undefined when the source did not say (status --json never does).
   */
  mayPromote: boolean | undefined;
  /** drbdsetup's promotion_score (0 when unknown). */
  promotionScore: number;
  /** Local volumes, ascending volume order. */
  devices: DrbdDevice[];
  /** Connections, sorted by name. */
  connections: DrbdConnection[];
  /** Configuration from `show --json`; undefined until it was read. */
  config: DrbdResourceConfig | undefined;
}

/** Whether the DRBD state could be read at all. */
export type DrbdAvailability =
  /** drbdsetup answered; `resources` is the current state. */
  | "ok"
  /** drbdsetup said the kernel module is not loaded (exit 20): nothing to watch. */
  | "not-loaded"
  /** drbdsetup failed or printed something unreadable: state unknown. */
  | "error";

/** The DRBD state of this node at one moment. */
export interface DrbdSample {
  /** Whether `resources` can be trusted. */
  availability: DrbdAvailability;
  /** Human-readable reason when availability is not `ok`. */
  message: string | undefined;
  /** Resources sorted by name; empty unless availability is `ok`. */
  resources: DrbdResource[];
  /** Milliseconds since the epoch when this state was last confirmed complete. */
  confirmedAt: number;
}

/** True when the resource has a quorum policy (majority, all or a count). */
export function hasQuorumPolicy(resource: DrbdResource): boolean {
  return resource.config !== undefined && resource.config.quorum !== "off";
}

/** True when any reason other than `user` suspends the resource. */
export function suspendedForQuorumDataOrFencing(resource: DrbdResource): boolean {
  const s = resource.suspended;
  return s.quorum || s.noData || s.fencing;
}
