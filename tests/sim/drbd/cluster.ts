/**
 * The DRBD side of a simulated cluster: resources replicated over several
 * nodes, a connectivity matrix (crash, partition, flapping link) and, per
 * node, a `drbdsetup` that prints that node's view.
 *
 * The model follows DRBD_FORMATS.md §6 and, rule by rule, the DRBD 9 code
 * it cites: quorum per node (voters, majority / all / N, last man standing,
 * quorumless nodes, the diskless tiebreaker, sticky, diskless nodes
 * inheriting quorum), may_promote and promotion_score as drbdsetup computes
 * them, suspension (quorum with suspend-io regardless of role, no-data for a
 * Primary, user), force-io-failures (`secondary --force` with writers, and
 * on-suspended-primary-outdated force-secondary on reconnect), the outcome
 * of DRBD's two-phase commits (a surviving Secondary's disk going Consistent
 * then UpToDate, weak nodes Outdated while a Primary is reachable only
 * through others, a second Primary in the partition refused), and the
 * connection sequence NetworkFailure → Unconnected → Connecting after the
 * detection delay (ping-int + ping-timeout).
 *
 * Sources, cited at each rule: "drbd_state.c" and "drbd_receiver.c" are
 * LINBIT/drbd 9.2-era code (read at Philipp-Reisner/drbd
 * 2308900638617ff87605d4479be415854bec7738; LINBIT/drbd
 * 366da6aabb3fe15e98c5fc32aef857ac9a508d52 for 9.0), "drbd-utils" is
 * LINBIT/drbd-utils user/v9/drbdsetup_events2.c, and "drbd9-tests" is
 * LINBIT/drbd9-tests tests/<name> (ported in drbd9_tests_test.ts). Where the
 * model is simpler than DRBD the comment says so and why it errs on the
 * pessimistic side for a fail-over agent: the simulation may let a node
 * promote or keep writing in more situations than DRBD, never in fewer.
 *
 * Data generations stand in for DRBD's UUIDs and bitmaps: a Primary that
 * writes after it lost a diskful peer (or is promoted without one) starts a
 * new generation, which only the replicas it writes to share; on reconnect
 * the side whose generation the other has seen becomes a SyncTarget, and
 * two unrelated generations are a split brain (StandAlone). Generations
 * cannot merge: where DRBD would resync only the differing blocks from
 * several sources, the model copies one source's history.
 *
 * Every node has its own {@linkcode FakeDrbd} state directory. After every
 * state change the cluster renders each node's view into it, one state change
 * at a time, so a live `events2` stream receives the same batches of change
 * lines the kernel would send. `secondary` is answered by the cluster itself
 * (see {@linkcode FakeDrbd.serveCommands}), so an agent's forced demotion
 * lands in the model. A crashed node's drbdsetup behaves as if the DRBD
 * module could not be loaded (exit 20, or 0 for `secondary`, with modprobe's
 * message), and its live events2 streams are killed.
 *
 * Not modelled (no API for it): graceful `down`/`disconnect` (a peer that
 * leaves politely is Outdated, drbd_state.c outdate_on_disconnect()),
 * attach/detach, fencing, quorum-minimum-redundancy, allow-two-primaries.
 *
 * Times are simulated milliseconds of the given {@linkcode SimClock}.
 *
 * @module
 */

import type {
  DrbdConnection,
  DrbdResource,
  DrbdResourceConfig,
  SuspendReasons,
} from "../../../lib/drbd/model.ts";
import type { SimClock } from "../clock.ts";
import type { DrbdHooks, DrbdOpResult, IoState } from "../drbd_hooks.ts";
import {
  connectionKey,
  type FakeAnswer,
  type FakeDialect,
  FakeDrbd,
  heldOpenMessage,
  promotionInfo,
  resyncKey,
} from "./fake_drbd.ts";

/**
 * The resource options of LINSTOR's "freeze" profile (DRBD_FORMATS.md §6.3),
 * the default of {@linkcode DrbdCluster.addResource}.
 */
export const FREEZE_CONFIG: Readonly<DrbdResourceConfig> = Object.freeze({
  quorum: "majority",
  onNoQuorum: "suspend-io",
  onNoDataAccessible: "suspend-io",
  onSuspendedPrimaryOutdated: "force-secondary",
});

/** Options of {@linkcode DrbdCluster.create}. */
export interface DrbdClusterOptions {
  /** Node names (the connection names peers see). */
  nodes: string[];
  /** The drbd-utils every node's drbdsetup imitates (default `current`). */
  dialect?: FakeDialect;
  /**
   * Every node's drbdsetup answers in process from memory
   * ({@linkcode FakeDrbd.spawn}), for the deterministic simulation (default false).
   */
  inProcess?: boolean;
  /** The clock all delays run on. */
  clock: SimClock;
  /** DRBD's ping-int in simulated ms (default 10 000). */
  pingIntMs?: number;
  /** DRBD's ping-timeout in simulated ms (default 500). */
  pingTimeoutMs?: number;
  /** From both sides Connecting over a working link to Connected, simulated ms (default 1 000). */
  connectMs?: number;
  /** Length of a resync, simulated ms (default 2 000). */
  resyncMs?: number;
  /**
   * The name peers see for a node's connection (LINSTOR's node name), by
   * node; default the node name itself.
   */
  connectionNames?: Record<string, string>;
}

/** Options of {@linkcode DrbdCluster.addResource}. */
export interface AddResourceOptions {
  /** Nodes with a disk (node ids 0, 1, ... in this order). */
  diskful: string[];
  /** Intentionally diskless nodes (tiebreakers), numbered after the diskful ones. */
  diskless?: string[];
  /** Resource options; the rest comes from {@linkcode FREEZE_CONFIG}. */
  config?: Partial<DrbdResourceConfig>;
  /** Number of volumes (default 1). */
  volumes?: number;
}

/** Options of {@linkcode DrbdCluster.crash}. */
export interface CrashOptions {
  /**
   * `silent` (default): power loss; peers notice after ping-int +
   * ping-timeout. `reset`: the node's sockets were reset (process killed,
   * reboot); peers notice at once.
   */
  detection?: "silent" | "reset";
}

/** Options of {@linkcode DrbdCluster.restore}. */
export interface RestoreOptions {
  /**
   * true (default): the node rebooted: its resources come up Secondary,
   * closed, with the disk Consistent until a peer confirms it. false: the
   * node was only cut off (a paused VM, a dead switch port); it kept its
   * state, e.g. a frozen Primary.
   */
  reboot?: boolean;
  /**
   * false: the node boots but its DRBD resources are not configured yet
   * (after a reboot DRBD has nothing until LINSTOR's satellite runs
   * `drbdadm adjust`; a slow satellite leaves them unconfigured): its
   * drbdsetup shows no resource and answers "Unknown resource", and it
   * connects to nobody until {@linkcode DrbdCluster.configure}. Default true.
   */
  configured?: boolean;
}

/** Options of {@linkcode DrbdCluster.flap}. */
export interface FlapOptions {
  /** How long the link is down each time, simulated ms. */
  downMs: number;
  /** How long it is up between two cuts, simulated ms. */
  upMs: number;
  /** How many cuts. */
  times: number;
}

/** Options of {@linkcode DrbdCluster.open}. */
export interface OpenOptions {
  /** A read-only opener: allowed on a Secondary, never blocks a demotion. */
  readOnly?: boolean;
}

type DiskState = "UpToDate" | "Consistent" | "Outdated" | "Inconsistent" | "Diskless";
type ConnectionState =
  | "Connected"
  | "NetworkFailure"
  | "Unconnected"
  | "Connecting"
  | "StandAlone";

/** One node's connection to one peer, for one resource. */
interface Connection {
  state: ConnectionState;
  /**
   * The peer's role and disk as this node last saw them over the link. A
   * lost peer's disk stays Outdated or Inconsistent when it was, otherwise
   * it becomes DUnknown in the view (drbd_state.c sanitize_state(): "if
   * (peer_disk_state[NEW] > D_UNKNOWN || peer_disk_state[NEW] <
   * D_INCONSISTENT) peer_disk_state[NEW] = D_UNKNOWN").
   */
  seenRole: "Primary" | "Secondary";
  seenDisk: DiskState;
  /**
   * The connection was established once (MDF_PEER_DEVICE_SEEN /
   * MDF_NODE_EXISTS): a diskless peer never seen is no quorum voter.
   */
  seen: boolean;
  /** This side's part in a running resync. */
  resync: "source" | "target" | undefined;
  /** The path is established (it lags behind a break by one notification). */
  path: boolean;
}

/** One node's replica of one resource. */
interface Replica {
  node: string;
  nodeId: number;
  diskful: boolean;
  role: "Primary" | "Secondary";
  disk: DiskState;
  /** Data generations, oldest first; the last is the current one (diskful only). */
  history: number[];
  /** Read-write openers. */
  writers: number;
  /** Read-only openers. */
  readers: number;
  forceIo: boolean;
  userSuspended: boolean;
  quorum: boolean;
  /**
   * The nodes of this node's partition as of its last two-phase commit
   * (drbd_state.c resource->members, update_members()); an absent peer
   * outside it is "quorumless".
   */
  members: Set<string>;
  /**
   * Primary through auto-promote on open, not `drbdsetup primary`
   * (EXPLICIT_PRIMARY unset): the last writer's close demotes it.
   */
  autoPromoted: boolean;
  /**
   * A Primary lost contact to a peer's data: its next write starts a new
   * generation (NEW_CUR_UUID).
   */
  newUuid: boolean;
  /** Connections by peer name. */
  connections: Map<string, Connection>;
}

interface Resource {
  name: string;
  config: DrbdResourceConfig;
  minors: number[];
  /** By node, in node-id order. */
  replicas: Map<string, Replica>;
  /** Pending detections of a broken link, by node pair. */
  detections: Map<string, () => void>;
  /** Pending connection attempts, by node pair. */
  attempts: Map<string, () => void>;
  /** Running resyncs (progress in percent), by node pair. */
  resyncs: Map<string, { done: number; cancel: () => void }>;
  /** Other timers of this resource. */
  timers: Set<() => void>;
}

interface SimNode {
  name: string;
  up: boolean;
  /** Its DRBD resources are configured (see `RestoreOptions.configured`). */
  configured: boolean;
  fake: FakeDrbd;
  /** Renders run one after another, in the order of the state changes. */
  chain: Promise<void>;
  /** The last view queued for rendering, serialized. */
  lastView: string;
}

interface QuorumInfo {
  have: boolean;
  visible: number;
  voters: number;
  quorumAt: number;
}

/** From NetworkFailure to Unconnected after a break (§6.4: up to about 1 s in all). */
const UNCONNECTED_AFTER_MS = 500;
/** From NetworkFailure to Connecting. */
const CONNECTING_AFTER_MS = 1_000;
/** How soon a writing application issues its next write. */
const WRITE_AFTER_MS = 50;
const FIRST_MINOR = 1000;

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\n${b}` : `${b}\n${a}`;
}

function quorumAt(policy: DrbdResourceConfig["quorum"], voters: number): number {
  if (policy === "majority") return Math.floor(voters / 2) + 1;
  if (policy === "all") return voters;
  return Number(policy);
}

function stateChangeFailed(resource: string, code: number, text: string): string {
  return `${resource}: State change failed: (${code}) ${text}`;
}

/** The DRBD side of a simulated cluster (see the module documentation). */
export class DrbdCluster implements DrbdHooks {
  /** The node names. */
  readonly nodes: readonly string[];
  /** The drbd-utils every node's drbdsetup imitates. */
  readonly dialect: FakeDialect;
  /** The clock all delays run on. */
  readonly clock: SimClock;
  /** How long a silently dead peer goes unnoticed: ping-int + ping-timeout, simulated ms. */
  readonly detectionMs: number;
  readonly #pingIntMs: number;
  readonly #pingTimeoutMs: number;
  readonly #connectMs: number;
  readonly #resyncMs: number;
  readonly #connectionNames: Record<string, string>;
  readonly #nodes = new Map<string, SimNode>();
  readonly #resources = new Map<string, Resource>();
  readonly #cuts = new Set<string>();
  readonly #listeners = new Set<() => void>();
  readonly #timers = new Set<() => void>();
  readonly #renderErrors: unknown[] = [];
  #generation = 0;
  #nextMinor = FIRST_MINOR;
  #writeCheck: (() => void) | undefined;
  #notifyQueued = false;
  #stopped = false;

  private constructor(options: DrbdClusterOptions, fakes: FakeDrbd[]) {
    this.nodes = Object.freeze([...options.nodes]);
    this.dialect = options.dialect ?? "current";
    this.clock = options.clock;
    this.#pingIntMs = options.pingIntMs ?? 10_000;
    this.#pingTimeoutMs = options.pingTimeoutMs ?? 500;
    this.detectionMs = this.#pingIntMs + this.#pingTimeoutMs;
    this.#connectMs = options.connectMs ?? 1_000;
    this.#resyncMs = options.resyncMs ?? 2_000;
    this.#connectionNames = { ...options.connectionNames };
    options.nodes.forEach((name, i) => {
      this.#nodes.set(name, {
        name,
        up: true,
        configured: true,
        fake: fakes[i],
        chain: Promise.resolve(),
        lastView: "[]",
      });
    });
  }

  /** Makes the nodes, each with its own drbdsetup state directory, all up and linked. */
  static async create(options: DrbdClusterOptions): Promise<DrbdCluster> {
    if (options.nodes.length === 0) throw new Error("Expected at least one node, got none");
    if (new Set(options.nodes).size !== options.nodes.length) {
      throw new Error(`Expected distinct node names, got ${options.nodes.join(", ")}`);
    }
    const fakes: FakeDrbd[] = [];
    for (const _ of options.nodes) {
      fakes.push(await FakeDrbd.create({ dialect: options.dialect, inProcess: options.inProcess }));
    }
    const cluster = new DrbdCluster(options, fakes);
    for (const node of options.nodes) {
      await cluster.#node(node).fake.serveCommands(
        ["secondary"],
        (args) => cluster.#answer(node, args),
      );
    }
    return cluster;
  }

  // --- drbdsetup per node ----------------------------------------------------

  /** The directory holding `drbdsetup`; put it first on the node's agent's PATH. */
  binDir(node: string): string {
    return this.#node(node).fake.binDir;
  }

  /** Environment for a process on `node`: PATH with its drbdsetup first, and its state directory. */
  env(node: string): Record<string, string> {
    return this.#node(node).fake.env;
  }

  /** The fake drbdsetup of `node` (its calls, failure injection, live streams). */
  fake(node: string): FakeDrbd {
    return this.#node(node).fake;
  }

  /** Resolves once every state change so far is visible to every node's drbdsetup. */
  async settled(): Promise<void> {
    for (;;) {
      const chains = [...this.#nodes.values()].map((n) => n.chain);
      await Promise.all(chains);
      if ([...this.#nodes.values()].every((n, i) => n.chain === chains[i])) break;
    }
    if (this.#renderErrors.length > 0) {
      throw new Error(`Expected every render to succeed, got: ${this.#renderErrors[0]}`, {
        cause: this.#renderErrors[0],
      });
    }
  }

  /** Cancels every timer, waits for renders and removes every state directory. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const cancel of [...this.#timers]) cancel();
    this.#timers.clear();
    await Promise.all([...this.#nodes.values()].map((n) => n.chain));
    for (const node of this.#nodes.values()) await node.fake.cleanup();
  }

  // --- resources -------------------------------------------------------------

  /** Creates a resource, its data UpToDate on every diskful node, all nodes Secondary. */
  addResource(name: string, options: AddResourceOptions): void {
    if (this.#resources.has(name)) throw new Error(`Expected a new resource name, got ${name}`);
    const diskless = options.diskless ?? [];
    const participants = [...options.diskful, ...diskless];
    if (options.diskful.length === 0) {
      throw new Error(`Expected at least one diskful node for ${name}, got none`);
    }
    if (new Set(participants).size !== participants.length) {
      throw new Error(`Expected each node once in ${name}, got ${participants.join(", ")}`);
    }
    for (const node of participants) this.#node(node);
    const volumes = options.volumes ?? 1;
    const minors = Array.from({ length: volumes }, () => this.#nextMinor++);
    const generation = ++this.#generation;
    const resource: Resource = {
      name,
      config: { ...FREEZE_CONFIG, ...options.config },
      minors,
      replicas: new Map(),
      detections: new Map(),
      attempts: new Map(),
      resyncs: new Map(),
      timers: new Set(),
    };
    participants.forEach((node, nodeId) => {
      const diskful = nodeId < options.diskful.length;
      resource.replicas.set(node, {
        node,
        nodeId,
        diskful,
        role: "Secondary",
        disk: diskful ? "UpToDate" : "Diskless",
        history: diskful ? [generation] : [],
        writers: 0,
        readers: 0,
        forceIo: false,
        userSuspended: false,
        quorum: false,
        members: new Set(participants),
        autoPromoted: false,
        newUuid: false,
        connections: new Map(),
      });
    });
    for (const replica of resource.replicas.values()) {
      for (const peer of resource.replicas.values()) {
        if (peer === replica) continue;
        replica.connections.set(peer.node, {
          state: this.#linkUp(replica.node, peer.node) ? "Connected" : "Connecting",
          seenRole: "Secondary",
          seenDisk: peer.disk,
          seen: this.#linkUp(replica.node, peer.node),
          resync: undefined,
          path: this.#linkUp(replica.node, peer.node),
        });
      }
    }
    this.#resources.set(name, resource);
    this.#updateMembers(resource);
    for (const [a, b] of this.#pairs(resource)) this.#attemptConnect(resource, a, b);
    this.#publish();
  }

  /** Removes a resource everywhere (`destroy` lines on live streams). */
  removeResource(name: string): void {
    const resource = this.#resource(name);
    this.#cancelResourceTimers(resource);
    this.#resources.delete(name);
    this.#publish();
  }

  /** The resource names, in creation order. */
  resources(): string[] {
    return [...this.#resources.keys()];
  }

  /**
   * What `node`'s drbdsetup shows of `resource` (as the agent's parsers
   * would read it, `open` included in both dialects); undefined when the node
   * has no replica.
   */
  view(node: string, resource: string): DrbdResource | undefined {
    this.#node(node);
    const r = this.#resource(resource);
    return r.replicas.has(node) ? this.#viewOf(r, node) : undefined;
  }

  /** The nodes on which `resource` is Primary (a crashed node keeps its last role). */
  primaries(resource: string): string[] {
    return [...this.#resource(resource).replicas.values()]
      .filter((r) => r.role === "Primary").map((r) => r.node);
  }

  /** How many openers (read-write and read-only) `node`'s device of `resource` has. */
  openCount(node: string, resource: string): number {
    const x = this.#resource(resource).replicas.get(node);
    return x === undefined ? 0 : x.writers + x.readers;
  }

  /** The name `node`'s peers give their connection to it. */
  connectionName(node: string): string {
    return this.#connectionNames[node] ?? node;
  }

  /** Whether `node` is up. */
  isUp(node: string): boolean {
    return this.#node(node).up;
  }

  // --- connectivity ----------------------------------------------------------

  /**
   * The node dies. Its peers notice after the detection delay (or at once
   * with `detection: "reset"`); its drbdsetup behaves as if the DRBD module
   * were missing and its live events2 streams end.
   */
  crash(node: string, options: CrashOptions = {}): void {
    const n = this.#node(node);
    if (!n.up) return;
    n.up = false;
    this.#enqueue(n, async () => {
      await n.fake.setModuleMissing(true);
      await n.fake.killStreams();
    });
    for (const resource of this.#resources.values()) {
      if (!resource.replicas.has(node)) continue;
      for (const peer of resource.replicas.keys()) {
        if (peer !== node) this.#linkDown(resource, node, peer, options.detection ?? "silent");
      }
    }
    this.#publish();
  }

  /** The node comes back and reconnects; see {@linkcode RestoreOptions}. */
  restore(node: string, options: RestoreOptions = {}): void {
    const n = this.#node(node);
    if (n.up) return;
    const reboot = options.reboot ?? true;
    n.up = true;
    n.configured = options.configured ?? true;
    n.lastView = "";
    for (const resource of this.#resources.values()) {
      const replica = resource.replicas.get(node);
      if (replica === undefined) continue;
      if (reboot) this.#reboot(resource, replica);
      for (const peer of resource.replicas.keys()) {
        if (peer === node) continue;
        const key = pairKey(node, peer);
        const pending = resource.detections.get(key);
        if (pending !== undefined) {
          pending();
          resource.detections.delete(key);
        }
        // A rebooted node's new connection attempt resets what its peers still think is up.
        if (reboot) this.#breakConnection(resource, node, peer);
        this.#attemptConnect(resource, node, peer);
      }
    }
    this.#publish();
    // drbdsetup answers again once it shows the node's current state, not the one before the crash.
    this.#enqueue(n, () => n.fake.setModuleMissing(false));
  }

  /**
   * The node's DRBD resources get configured (its satellite ran `drbdadm
   * adjust`): they show up as they came up at boot and connect to their
   * peers.
   */
  configure(node: string): void {
    const n = this.#node(node);
    if (!n.up || n.configured) return;
    n.configured = true;
    n.lastView = "";
    for (const resource of this.#resources.values()) {
      if (!resource.replicas.has(node)) continue;
      for (const peer of resource.replicas.keys()) {
        if (peer !== node) this.#attemptConnect(resource, node, peer);
      }
    }
    this.#publish();
  }

  /** Cuts the link between two nodes; both notice after the detection delay. */
  partition(a: string, b: string): void {
    this.#node(a);
    this.#node(b);
    if (a === b) throw new Error(`Expected two different nodes, got ${a} twice`);
    this.#cuts.add(pairKey(a, b));
    for (const resource of this.#resources.values()) {
      if (resource.replicas.has(a) && resource.replicas.has(b)) {
        this.#linkDown(resource, a, b, "silent");
      }
    }
    this.#publish();
  }

  /**
   * Repairs the link between two nodes. Before the break was noticed nothing
   * happened; afterwards the nodes reconnect (and resync) once both are
   * Connecting again.
   */
  heal(a: string, b: string): void {
    this.#node(a);
    this.#node(b);
    this.#cuts.delete(pairKey(a, b));
    for (const resource of this.#resources.values()) {
      if (!resource.replicas.has(a) || !resource.replicas.has(b)) continue;
      const key = pairKey(a, b);
      const pending = resource.detections.get(key);
      if (pending !== undefined) {
        pending();
        resource.detections.delete(key);
      }
      this.#attemptConnect(resource, a, b);
    }
    this.#publish();
  }

  /** Cuts every link of `node` (the node stays up: its agent and drbdsetup keep running). */
  isolate(node: string): void {
    for (const other of this.nodes) if (other !== node) this.partition(node, other);
  }

  /** Repairs every link of `node`. */
  rejoin(node: string): void {
    for (const other of this.nodes) if (other !== node) this.heal(node, other);
  }

  /** Cuts and repairs a link `times` times; resolves after the last repair. */
  flap(a: string, b: string, options: FlapOptions): Promise<void> {
    return new Promise((resolve) => {
      let left = options.times;
      const cut = () => {
        if (left <= 0 || this.#stopped) return resolve();
        left--;
        this.partition(a, b);
        this.#after(options.downMs, () => {
          this.heal(a, b);
          if (left <= 0) return resolve();
          this.#after(options.upMs, cut);
        });
      };
      cut();
    });
  }

  // --- DrbdHooks -------------------------------------------------------------

  /**
   * Promotes like `drbdsetup primary`: refused while force-io-failures is
   * set, with another Primary in the partition, without UpToDate data, or
   * without quorum; the error is drbdsetup's stderr.
   */
  promote(node: string, resource: string): DrbdOpResult {
    const found = this.#replicaFor(node, resource);
    if ("error" in found) return { ok: false, error: found.error };
    return this.#promote(found.r, found.x, true);
  }

  /** Demotes like `drbdsetup secondary`: refused while open for writing. */
  demote(node: string, resource: string): DrbdOpResult {
    const found = this.#replicaFor(node, resource);
    if ("error" in found) return { ok: false, error: found.error };
    const answer = this.#secondary(found.r, found.x, false);
    return answer.code === 0 ? { ok: true } : { ok: false, error: answer.stderr.trimEnd() };
  }

  /**
   * Opens the device: for writing on a Primary, or on a Secondary that
   * auto-promote can promote; read-only also on a Secondary; never while
   * force-io-failures is set.
   */
  open(node: string, resource: string, options: OpenOptions = {}): DrbdOpResult {
    const found = this.#replicaFor(node, resource);
    if ("error" in found) return { ok: false, error: found.error };
    const { r, x } = found;
    const device = `/dev/drbd${r.minors[0]}`;
    // drbd_main.c drbd_open(): "if (resource->fail_io[NOW]) rv = -ENOTRECOVERABLE".
    if (x.forceIo) return { ok: false, error: `open ${device}: State not recoverable` };
    // auto-promote (LINSTOR's default): opening a Secondary for writing tries
    // to promote it, and a write open of a device that is still not Primary
    // fails with EROFS (LINBIT/drbd drbd/drbd_main.c: drbd_open() calls
    // try_to_promote() when res_opts.auto_promote is set, then "if (mode &
    // BLK_OPEN_WRITE) { if (resource->role[NOW] != R_PRIMARY) err = -EROFS;").
    // After a reboot the kubelet's remount promotes this way.
    if (!options.readOnly && x.role !== "Primary") {
      if (!this.#promote(r, x, false).ok) {
        return { ok: false, error: `open ${device}: Read-only file system` };
      }
    }
    if (options.readOnly) x.readers++;
    else x.writers++;
    this.#publish();
    return { ok: true };
  }

  /**
   * Closes one opener (writers first). False while I/O is frozen: the
   * unmount hangs. The last writer's close demotes an auto-promoted
   * Primary; the last close clears force-io-failures.
   */
  close(node: string, resource: string): boolean {
    const n = this.#node(node);
    const r = this.#resource(resource);
    const x = r.replicas.get(node);
    if (!n.up || x === undefined || x.writers + x.readers === 0) return true;
    if (this.#ioStateOf(r, x) === "frozen") return false;
    if (x.writers > 0) x.writers--;
    else x.readers--;
    // Auto-demote: drbd_main.c drbd_release(): "if (resource->res_opts.auto_promote &&
    // open_rw_cnt == 0 && resource->role[NOW] == R_PRIMARY && !test_bit(EXPLICIT_PRIMARY,
    // ...)) ... drbd_set_role(resource, R_SECONDARY, ...)".
    if (x.writers === 0 && x.role === "Primary" && x.autoPromoted) {
      x.role = "Secondary";
      x.autoPromoted = false;
      x.newUuid = false;
      this.#publish();
      this.#twoPhaseCommit(r);
    }
    // drbd_release(): "if (open_ro_cnt == 0 && open_rw_cnt == 0 && resource->fail_io[NOW])
    // ... resource->fail_io[NEW] = false".
    if (x.writers + x.readers === 0 && x.forceIo) {
      x.forceIo = false;
      this.#publish();
      this.#startPendingResyncs(r, x);
    }
    this.#publish();
    return true;
  }

  /** How I/O on `node`'s replica behaves now. */
  ioState(node: string, resource: string): IoState {
    const n = this.#node(node);
    const r = this.#resources.get(resource);
    const x = r?.replicas.get(node);
    if (!n.up || r === undefined || x === undefined) return "absent";
    return this.#ioStateOf(r, x);
  }

  /** Calls `listener` (in a microtask) after state changes; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** `drbdsetup suspend-io` / `resume-io`. */
  setUserSuspended(node: string, resource: string, suspended: boolean): void {
    const found = this.#replicaFor(node, resource);
    if ("error" in found) throw new Error(found.error);
    found.x.userSuspended = suspended;
    this.#publish();
  }

  // --- served drbdsetup commands ---------------------------------------------

  async #answer(node: string, args: string[]): Promise<FakeAnswer> {
    const [command, ...rest] = args;
    if (command !== "secondary") {
      return { code: 20, stderr: `fake drbdsetup: ${command} is not served by the cluster` };
    }
    const force = rest.includes("--force");
    const name = rest.find((arg) => !arg.startsWith("-")) ?? "";
    const n = this.#node(node);
    if (!n.up) {
      // secondary exits 0 when the module cannot be loaded (§5.3).
      return {
        code: 0,
        stderr: "modprobe: FATAL: Module drbd not found in directory /lib/modules/sim\n" +
          "Failed to modprobe drbd (No such file or directory)\n",
      };
    }
    const r = this.#resources.get(name);
    const x = r?.replicas.get(node);
    if (r === undefined || x === undefined) {
      return {
        code: 10,
        stderr: `${name}: Failure: (158) Unknown resource\nadditional info from kernel:\n` +
          "unknown resource\n",
      };
    }
    const answer = this.#secondary(r, x, force);
    // drbdsetup returns after the state change, which events2 then shows.
    await n.chain;
    return answer;
  }

  /**
   * `secondary [--force]` (§5.1). Refused while open for writing
   * (drbd_state.c __is_valid_soft_transition(): Primary → Secondary with
   * open_rw_cnt and without CS_FS_IGN_OPENERS is SS_DEVICE_IN_USE); forced,
   * it demotes and fails I/O until the last opener closes (drbd_nl.c
   * drbd_set_role(): "forced demotion", flags |= CS_FS_IGN_OPENERS;
   * sanitize_state(): "if (rw_count) resource->fail_io[NEW] = true").
   * Read-only openers never block it.
   */
  #secondary(r: Resource, x: Replica, force: boolean): FakeAnswer {
    if (x.role !== "Primary") return { code: 0, stderr: "" };
    if (x.writers > 0 && !force) return { code: 11, stderr: heldOpenMessage(r.name, r.minors[0]) };
    x.role = "Secondary";
    x.autoPromoted = false;
    // finish_state_change(): "if (role[OLD] == R_PRIMARY && role[NEW] == R_SECONDARY)
    // clear_bit(NEW_CUR_UUID, &device->flags)".
    x.newUuid = false;
    if (x.writers > 0) x.forceIo = true;
    this.#publish();
    // Its neighbours are stable again: weak nodes catch up (see #twoPhaseCommit).
    this.#twoPhaseCommit(r);
    return { code: 0, stderr: "" };
  }

  /**
   * `drbdsetup primary` (explicit) or auto-promote on open. The checks and
   * their order follow drbd_state.c __is_valid_soft_transition() and the
   * promotion's two-phase commit:
   * - fail_io → SS_DEVICE_IN_USE ("Secondary → Primary && fail_io[NEW]");
   * - a connected Primary → SS_TWO_PRIMARIES (no allow-two-primaries);
   * - no UpToDate data, local or on a connected peer → SS_NO_UP_TO_DATE_DISK
   *   (drbd_data_accessible());
   * - no quorum → SS_NO_QUORUM with "%d of %d nodes visible, need %d for quorum";
   * - a Primary elsewhere in the partition → SS_TWO_PRIMARIES
   *   (change_cluster_wide_state() check_primaries_distances(): "if
   *   (nr_primaries > 1 && !multiple_primaries_allowed(resource)) return
   *   SS_TWO_PRIMARIES", primary_nodes being collected from every node the
   *   two-phase commit reaches).
   * Not modelled: a peer with read-only openers refusing (SS_PRIMARY_READER,
   * check_ro_cnt_and_primary()); the model promotes there, which is
   * pessimistic.
   */
  #promote(r: Resource, x: Replica, explicit: boolean): DrbdOpResult {
    if (x.role === "Primary") {
      // drbd_nl.c drbd_adm_set_role() sets EXPLICIT_PRIMARY on success.
      if (explicit) x.autoPromoted = false;
      return { ok: true };
    }
    if (x.forceIo) {
      return { ok: false, error: heldOpenMessage(r.name, r.minors[0]).trimEnd() };
    }
    const twoPrimaries = {
      ok: false as const,
      error: stateChangeFailed(r.name, -1, "Multiple primaries not allowed by config"),
    };
    if (
      [...x.connections.values()].some((c) => c.state === "Connected" && c.seenRole === "Primary")
    ) {
      return twoPrimaries;
    }
    if (!this.#dataAccessible(x)) {
      return { ok: false, error: stateChangeFailed(r.name, -2, "Need access to UpToDate data") };
    }
    if (!x.quorum) {
      const q = this.#quorumInfo(r, x);
      return {
        ok: false,
        error: `${stateChangeFailed(r.name, -25, "No quorum")}\nadditional info from kernel:\n` +
          `${q.visible} of ${q.voters} nodes visible, need ${q.quorumAt} for quorum`,
      };
    }
    if ([...this.#partition(r, x)].some((n) => r.replicas.get(n)!.role === "Primary")) {
      return twoPrimaries;
    }
    x.role = "Primary";
    x.autoPromoted = !explicit;
    // Promoted without every diskful peer: DRBD starts a new current UUID
    // (drbd_state.c finish_state_change(): "if (role[OLD] == R_SECONDARY &&
    // role[NEW] == R_PRIMARY) create_new_uuid = true"); the absent peers
    // resync on return.
    if (this.#degraded(x, r)) this.#newGeneration(r, x);
    x.newUuid = false;
    this.#publish();
    this.#twoPhaseCommit(r, x);
    return { ok: true };
  }

  // --- state changes ---------------------------------------------------------

  /**
   * The link between a and b stopped working; schedule its detection. A
   * silent break is noticed after ping-int + ping-timeout: an idle
   * connection sends a ping after ping-int and gives up when the PingAck
   * does not come within ping-timeout (drbd_receiver.c: "PingAck did not
   * arrive in time", then C_NETWORK_FAILURE; defaults DRBD_PING_INT_DEF 10
   * s, DRBD_PING_TIMEO_DEF 5 tenths, drbd_limits.h). The model always takes
   * the longest such delay (pessimistic: the old Primary may write longer,
   * the survivors learn later). A reset is noticed at once (the peer's
   * sockets were shut down). Not modelled: ko-count × timeout (C_TIMEOUT)
   * and one-sided breaks (DRBD's tests drop single packet types).
   */
  #linkDown(r: Resource, a: string, b: string, detection: "silent" | "reset"): void {
    const key = pairKey(a, b);
    r.attempts.get(key)?.();
    r.attempts.delete(key);
    if (r.detections.has(key)) return;
    const connectedA = r.replicas.get(a)!.connections.get(b)!.state === "Connected";
    const connectedB = r.replicas.get(b)!.connections.get(a)!.state === "Connected";
    if (!connectedA && !connectedB) return;
    if (detection === "reset") {
      this.#breakConnection(r, a, b);
      return;
    }
    const cancel = this.#after(this.detectionMs, () => {
      r.detections.delete(key);
      if (this.#linkUp(a, b)) return;
      this.#breakConnection(r, a, b);
      this.#publish();
    });
    r.detections.set(key, cancel);
  }

  /**
   * Both ends drop the connection: NetworkFailure, a Secondary that lost the
   * Primary goes Consistent and then, after the survivors' "lost peer"
   * agreement, UpToDate (or Outdated while a Primary is still reachable);
   * the `disconnected` helper runs; Unconnected and Connecting follow.
   *
   * Sequence: drbd_state.c is_valid_conn_transition(): "After a network
   * error only C_UNCONNECTED or C_DISCONNECTING may follow"; the receiver
   * then restarts with C_CONNECTING (drbd_receiver.c conn_connect()). The
   * delays (UNCONNECTED_AFTER_MS, CONNECTING_AFTER_MS) are the about 1 s
   * seen on real systems (LINBIT/drbd issue #27).
   */
  #breakConnection(r: Resource, a: string, b: string): void {
    const key = pairKey(a, b);
    const lostPrimary: Replica[] = [];
    const broken: [Replica, Replica][] = [];
    for (const [x, y] of [[a, b], [b, a]]) {
      const rx = r.replicas.get(x)!;
      const c = rx.connections.get(y)!;
      if (c.state !== "Connected") continue;
      c.state = "NetworkFailure";
      c.resync = undefined;
      broken.push([rx, r.replicas.get(y)!]);
      // finish_state_change(): "if (lost_contact_to_peer_data(peer_disk_state)) { if
      // (role[NEW] == R_PRIMARY && ... drbd_data_accessible(device, NEW)) create_new_uuid =
      // true" — a peer seen Inconsistent, Consistent or UpToDate that is gone.
      if (
        rx.role === "Primary" && r.replicas.get(y)!.diskful &&
        ["Inconsistent", "Consistent", "UpToDate"].includes(c.seenDisk)
      ) {
        rx.newUuid = true;
      }
      // drbd_state.c sanitize_state(): maybe_crashed_primary (a Primary lost
      // through a network error) "&& !connected_primaries && disk_state[NEW] ==
      // D_UP_TO_DATE && role[NOW] == R_SECONDARY" → D_CONSISTENT.
      const otherPrimary = [...rx.connections].some(([p, o]) =>
        p !== y && o.state === "Connected" && o.seenRole === "Primary"
      );
      if (
        rx.diskful && rx.role === "Secondary" && c.seenRole === "Primary" &&
        rx.disk === "UpToDate" && !otherPrimary
      ) {
        rx.disk = "Consistent";
        lostPrimary.push(rx);
      }
    }
    if (broken.length === 0) return;
    const resync = r.resyncs.get(key);
    if (resync !== undefined) {
      resync.cancel();
      r.resyncs.delete(key);
    }
    this.#publish();
    // The survivors' "lost peer" two-phase commit, a separate state change
    // (drbd_state.c update_members() schedules twopc_after_lost_peer();
    // do_twopc_after_lost_peer(): "if (phase == PH_COMMIT &&
    // (reply->primary_nodes & ~directly_reachable)) __outdate_myself(resource);
    // else ... if (device->disk_state[NOW] == D_CONSISTENT &&
    // may_return_to_up_to_date(device, NOW)) __change_disk_state(device,
    // D_UP_TO_DATE)"). drbd9-tests quorum-isolate-primary test_quick_promote
    // relies on it. The model settles it at once over working links; while
    // an established connection in the partition runs over a dead link that
    // is not noticed yet, the commit waits for it (see #settleLostPeer).
    for (const rx of lostPrimary) this.#settleLostPeer(r, rx);
    if (lostPrimary.length > 0) this.#publish();
    this.#updateMembers(r);
    this.#twoPhaseCommit(r);
    for (const [rx, ry] of broken) rx.connections.get(ry.node)!.path = false;
    this.#publish();
    for (const [rx, ry] of broken) {
      const peer = this.connectionName(ry.node);
      const id = `name:${r.name} peer-node-id:${ry.nodeId} conn-name:${peer}`;
      this.#streamLines(rx.node, [
        `call helper ${id} helper:disconnected`,
        `response helper ${id} helper:disconnected status:0`,
      ]);
    }
    const step = (from: ConnectionState, to: ConnectionState) => {
      for (const [rx, ry] of broken) {
        const c = rx.connections.get(ry.node)!;
        if (c.state === from) c.state = to;
      }
      this.#publish();
    };
    this.#resourceTimer(r, UNCONNECTED_AFTER_MS, () => step("NetworkFailure", "Unconnected"));
    this.#resourceTimer(r, CONNECTING_AFTER_MS, () => {
      step("Unconnected", "Connecting");
      this.#attemptConnect(r, a, b);
    });
  }

  /** Schedules a connection attempt between a and b (one at a time per pair). */
  #attemptConnect(r: Resource, a: string, b: string): void {
    const key = pairKey(a, b);
    if (r.attempts.has(key) || !this.#linkUp(a, b)) return;
    const ca = r.replicas.get(a)!.connections.get(b)!;
    const cb = r.replicas.get(b)!.connections.get(a)!;
    if (ca.state !== "Connecting" || cb.state !== "Connecting") return;
    const cancel = this.#after(this.#connectMs, () => {
      r.attempts.delete(key);
      this.#handshake(r, a, b);
    });
    r.attempts.set(key, cancel);
  }

  /**
   * Both sides are Connecting over a working link: connect, or refuse and
   * retry. The model's net options are rr-conflict retry-connect (see
   * #showOptions), so a refused handshake is retried, never StandAlone,
   * except for a split brain.
   */
  #handshake(r: Resource, a: string, b: string): void {
    if (!this.#linkUp(a, b)) return;
    const ra = r.replicas.get(a)!;
    const rb = r.replicas.get(b)!;
    if (ra.connections.get(b)!.state !== "Connecting") return;
    if (rb.connections.get(a)!.state !== "Connecting") return;
    const retry = () => this.#attemptConnect(r, a, b);
    const ahead = this.#aheadOf(r, ra, rb);
    // A suspended Primary meeting newer data (§6.3). drbd_receiver.c
    // connect_work(): "force_demote = resource->role[NOW] == R_PRIMARY &&
    // resource->res_opts.on_susp_primary_outdated == SPO_FORCE_SECONDARY;
    // retry = retry || force_demote" (retry: rr-conflict retry-connect); the
    // refused handshake arms the connect timer (about 1 s) and calls
    // apply_local_state_change(connection, OUTDATE_DISKS, force_demote). On a
    // suspended Primary that acts only with on-no-data-accessible io-error or
    // force-secondary: the disk that would be SyncTarget goes Outdated, and
    // force_demote makes it Secondary ("Remote node has more recent data;
    // force secondary!") with fail_io while it is open. Once its data is gone
    // with on-no-data-accessible io-error, the frozen I/O fails
    // (drbd_state.c finish_state_change(): unfreeze_io; see #ioStateOf).
    for (const [old, other] of [[ra, rb], [rb, ra]]) {
      if (old.role !== "Primary" || ahead !== other || !this.#suspended(r, old)) continue;
      const forceDemote = r.config.onSuspendedPrimaryOutdated === "force-secondary";
      if (!forceDemote && r.config.onNoDataAccessible !== "io-error") return retry();
      let changed = false;
      if (old.diskful && old.disk !== "Outdated") {
        old.disk = "Outdated";
        changed = true;
      }
      if (forceDemote) {
        old.role = "Secondary";
        old.autoPromoted = false;
        old.newUuid = false;
        if (old.writers > 0) old.forceIo = true;
        changed = true;
      }
      if (changed) {
        this.#publish();
        this.#twoPhaseCommit(r);
      }
      return retry();
    }
    // Data changed on both sides: split brain (after-sb-* disconnect, the
    // default: drbd_receiver.c drbd_sync_handshake() → SPLIT_BRAIN_DISCONNECT,
    // "Split-Brain detected, dropping connection!", helper split-brain).
    if (ahead === "diverged" && ra.diskful && rb.diskful) {
      for (const [x, y] of [[ra, rb], [rb, ra]]) {
        x.connections.get(y.node)!.state = "StandAlone";
        const peer = this.connectionName(y.node);
        const id = `name:${r.name} peer-node-id:${y.nodeId} conn-name:${peer}`;
        this.#publish();
        this.#streamLines(x.node, [
          `call helper ${id} helper:split-brain`,
          `response helper ${id} helper:split-brain status:0`,
        ]);
      }
      return;
    }
    // Two partitions with a Primary each cannot join: the connect's two-phase
    // commit collects primary_nodes from both (drbd_state.c
    // change_cluster_wide_state() check_primaries_distances(): SS_TWO_PRIMARIES).
    const partitions = new Set([...this.#partition(r, ra), ...this.#partition(r, rb)]);
    if ([...partitions].filter((n) => r.replicas.get(n)!.role === "Primary").length > 1) {
      return retry();
    }
    // A Primary cannot become a SyncTarget (drbd_receiver.c sync_descriptors
    // SYNC_TARGET_PRIMARY_RECONNECT with rr-conflict retry-connect).
    const behind = ahead === ra ? rb : ahead === rb ? ra : undefined;
    if (behind?.role === "Primary" && ra.diskful && rb.diskful) return retry();
    for (const [x, y] of [[ra, rb], [rb, ra]]) {
      const c = x.connections.get(y.node)!;
      c.state = "Connected";
      c.path = true;
      c.seen = true;
      c.seenRole = y.role;
      c.seenDisk = y.disk;
      // update_members(): "add a fresh connection to the members". DRBD's
      // initiator takes every node the commit reached; adding only the peer
      // keeps more absent nodes quorumless (pessimistic: more quorum).
      x.members.add(y.node);
    }
    if (ahead === "same") {
      for (const [x, y] of [[ra, rb], [rb, ra]]) {
        if (!x.diskful) continue;
        // sanitize_state(): Consistent → UpToDate on connect when
        // may_be_up_to_date() (always without fencing); Outdated → the peer's
        // UpToDate when the peer is stable ("Upgrade myself from D_OUTDATED if
        // 1) We connect to stable D_UP_TO_DATE(or D_CONSISTENT) peer without
        // resync"), and not while a Primary is reachable only through others.
        if (x.disk === "Consistent") x.disk = this.#weak(r, x) ? "Outdated" : "UpToDate";
        if (
          x.disk === "Outdated" && y.diskful && y.disk === "UpToDate" && this.#stable(y) &&
          !this.#weak(r, x)
        ) {
          x.disk = "UpToDate";
        }
      }
      for (const [x, y] of [[ra, rb], [rb, ra]]) x.connections.get(y.node)!.seenDisk = y.disk;
    }
    // The handshake and the start of a resync are one state change.
    if ((ahead === ra || ahead === rb) && ra.diskful && rb.diskful) {
      this.#startResync(r, ahead, ahead === ra ? rb : ra);
    }
    this.#publish();
    this.#twoPhaseCommit(r);
  }

  /**
   * Starts a resync to `target`, unless it is still open (it waits for the
   * last close; DRBD also resyncs a target with read-only openers, the
   * model waits, so its data is behind longer) or already a SyncTarget of
   * another peer (drbd_state.c drbd_select_sync_target(): one active resync
   * per target, the others paused).
   */
  #startResync(r: Resource, source: Replica, target: Replica): void {
    const key = pairKey(source.node, target.node);
    if (r.resyncs.has(key)) return;
    if ([...target.connections.values()].some((c) => c.resync === "target")) return;
    if (target.writers + target.readers > 0) {
      if (target.disk !== "Outdated") {
        target.disk = "Outdated";
        this.#publish();
      }
      return;
    }
    target.disk = "Inconsistent";
    source.connections.get(target.node)!.resync = "source";
    target.connections.get(source.node)!.resync = "target";
    const progress = this.#after(this.#resyncMs / 2, () => {
      const running = r.resyncs.get(key);
      if (running === undefined) return;
      running.done = 50;
      this.#publish();
    });
    const finish = this.#after(this.#resyncMs, () => {
      r.resyncs.delete(key);
      const cs = source.connections.get(target.node)!;
      const ct = target.connections.get(source.node)!;
      if (cs.state !== "Connected" || ct.state !== "Connected") return;
      cs.resync = undefined;
      ct.resync = undefined;
      // A target that wrote meanwhile (a Primary SyncTarget) already holds
      // the source's data plus its own writes.
      if (!target.history.includes(source.history.at(-1)!)) target.history = [...source.history];
      target.disk = "UpToDate";
      this.#publish();
      // A finished SyncTarget is stable again and may be a source for others.
      this.#twoPhaseCommit(r);
    });
    r.resyncs.set(key, {
      done: 0,
      cancel: () => {
        progress();
        finish();
      },
    });
    this.#publish();
  }

  /** After force-io-failures cleared: resync from every connected peer that is ahead. */
  #startPendingResyncs(r: Resource, x: Replica): void {
    if (!x.diskful) return;
    for (const [peer, c] of x.connections) {
      const y = r.replicas.get(peer)!;
      if (c.state === "Connected" && y.diskful && this.#aheadOf(r, x, y) === y) {
        this.#startResync(r, y, x);
      }
    }
  }

  /**
   * A rebooted node: Secondary, closed, disk Consistent until a peer
   * confirms it. DRBD attaches such a disk UpToDate when no peer has
   * fencing (drbd_state.c disk_state_from_md() / may_be_up_to_date():
   * only peers with MDF_PEER_FENCING are checked); the model's Consistent
   * only changes what the lone node shows: without connections it has no
   * quorum either way, and on connect both go UpToDate or resync. Not
   * modelled: RESTORE_QUORUM (9.2 keeps an UpToDate node's quorum from
   * before the reboot until it learns better); the model starts without
   * quorum, which can make a lone rebooted node less promotable than DRBD's.
   * Peers known Outdated stay so (drbd_state.c restore_outdated_in_pdsk():
   * MDF_PEER_OUTDATED → D_OUTDATED).
   */
  #reboot(r: Resource, x: Replica): void {
    x.role = "Secondary";
    x.writers = 0;
    x.readers = 0;
    x.forceIo = false;
    x.userSuspended = false;
    x.quorum = false;
    x.autoPromoted = false;
    x.newUuid = false;
    if (x.diskful && x.disk !== "Inconsistent") x.disk = "Consistent";
    for (const [peer, c] of x.connections) {
      c.state = "Connecting";
      c.resync = undefined;
      c.path = false;
      if (c.seenDisk === "Inconsistent") c.seenDisk = "Outdated";
      const key = pairKey(x.node, peer);
      r.resyncs.get(key)?.cancel();
      r.resyncs.delete(key);
    }
  }

  /**
   * The replicas a write of Primary `x` reaches: its own disk and every
   * connected UpToDate peer, except one it is resyncing as SyncSource
   * (DRBD 9 replicates to direct peers only; drbd_req.c
   * drbd_should_do_remote()). A link that is cut but not yet noticed still
   * counts: in DRBD such a write waits for the break to be noticed and is
   * then missing on that peer, which the model's next write (50 ms later)
   * accounts for with a new generation.
   */
  #writeSet(r: Resource, x: Replica): Replica[] {
    const writers = x.diskful ? [x] : [];
    for (const [peer, c] of x.connections) {
      const y = r.replicas.get(peer)!;
      if (c.state === "Connected" && y.diskful && y.disk === "UpToDate" && c.resync !== "source") {
        writers.push(y);
      }
    }
    return writers;
  }

  /**
   * A new data generation written by Primary `x` and every peer replicating
   * it. A Primary that is still a SyncTarget writes on top of its
   * SyncSource's data, which is what it holds once the resync is done.
   */
  #newGeneration(r: Resource, x: Replica): void {
    const writers = this.#writeSet(r, x);
    const base = writers.find((w) => w.disk === "UpToDate") ?? writers[0];
    if (base === undefined) return;
    const history = [...base.history, ++this.#generation];
    for (const w of writers) w.history = [...history];
  }

  /**
   * A Primary whose application writes after it lost contact to a peer's
   * data starts a generation, once per loss (a peer that leaves while
   * another is already away misses the later writes too; in DRBD its
   * bitmap records them).
   */
  #checkWrites(): void {
    for (const r of this.#resources.values()) {
      for (const x of r.replicas.values()) {
        if (x.role !== "Primary" || x.writers === 0 || !x.newUuid) continue;
        if (!this.#node(x.node).up || this.#ioStateOf(r, x) !== "ok") continue;
        this.#newGeneration(r, x);
        x.newUuid = false;
      }
    }
  }

  // --- derived state ---------------------------------------------------------

  /** Brings derived state up to date, queues every node's new view, tells listeners. */
  #publish(): void {
    if (this.#stopped) return;
    const helperLines = new Map<string, string[]>();
    let writesPending = false;
    for (const r of this.#resources.values()) {
      this.#recompute(r, helperLines);
      for (const x of r.replicas.values()) {
        if (x.role === "Primary" && x.writers > 0 && x.newUuid) {
          writesPending = true;
        }
      }
    }
    for (const n of this.#nodes.values()) {
      if (!n.up) continue;
      const views: DrbdResource[] = [];
      if (!n.configured) {
        if (n.lastView !== "[]") {
          n.lastView = "[]";
          this.#enqueue(n, () => n.fake.setResources([], { showOptions: this.#showOptions() }));
        }
        continue;
      }
      const resyncDone: Record<string, number> = {};
      const pathEstablished: Record<string, boolean> = {};
      for (const r of this.#resources.values()) {
        const x = r.replicas.get(n.name);
        if (x === undefined) continue;
        views.push(this.#viewOf(r, n.name));
        for (const [peer, c] of x.connections) {
          if (c.path !== (c.state === "Connected")) {
            pathEstablished[connectionKey(r.name, r.replicas.get(peer)!.nodeId)] = c.path;
          }
          if (c.resync === undefined) continue;
          const done = r.resyncs.get(pairKey(n.name, peer))?.done ?? 0;
          const y = r.replicas.get(peer)!;
          for (let volume = 0; volume < r.minors.length; volume++) {
            resyncDone[resyncKey(r.name, y.nodeId, volume)] = done;
          }
        }
      }
      const text = JSON.stringify([views, resyncDone, pathEstablished]);
      if (text !== n.lastView) {
        n.lastView = text;
        const options = { showOptions: this.#showOptions(), resyncDone, pathEstablished };
        this.#enqueue(n, () => n.fake.setResources(views, options));
      }
      const lines = helperLines.get(n.name);
      if (lines !== undefined) this.#streamLines(n.name, lines);
    }
    if (writesPending && this.#writeCheck === undefined) {
      this.#writeCheck = this.#after(WRITE_AFTER_MS, () => {
        this.#writeCheck = undefined;
        this.#checkWrites();
      });
    }
    this.#notify();
  }

  #recompute(r: Resource, helperLines: Map<string, string[]>): void {
    for (const x of r.replicas.values()) {
      for (const [peer, c] of x.connections) {
        if (c.state !== "Connected" || !this.#linkUp(x.node, peer)) continue;
        const y = r.replicas.get(peer)!;
        c.seenRole = y.role;
        c.seenDisk = y.disk;
      }
    }
    // A diskless node's quorum can come from its diskful peers: those first.
    const ordered = [...r.replicas.values()].sort((p, q) => Number(q.diskful) - Number(p.diskful));
    for (const x of ordered) {
      const before = x.quorum;
      x.quorum = this.#quorumInfo(r, x).have;
      if (before && !x.quorum && x.role === "Primary") {
        const lines = helperLines.get(x.node) ?? [];
        r.minors.forEach((minor, volume) => {
          const id = `name:${r.name} volume:${volume} minor:${minor}`;
          lines.push(
            `call helper ${id} helper:quorum-lost`,
            `response helper ${id} helper:quorum-lost status:0`,
          );
        });
        helperLines.set(x.node, lines);
      }
    }
  }

  /**
   * The kernel's quorum computation for one node (§6.2), with its previous
   * value (have_quorum[NOW]) for the quorumless and sticky tiebreaker rules.
   * drbd_state.c (9.2) __calc_quorum_with_disk() / __calc_quorum_no_disk()
   * classify the nodes, calc_quorum() decides:
   * - self: diskful counts as up_to_date (UpToDate) or present (any other
   *   disk); intentionally diskless counts as diskless;
   * - a connected peer: diskless (intentional), up_to_date, or present;
   * - an absent peer: missing_diskless (intentional diskless); outdated when
   *   its disk was last seen Outdated or Inconsistent ("disk_state <=
   *   D_OUTDATED"); quorumless when this node had quorum and the peer left
   *   its partition ("NODE_MASK(node_id) & quorumless_nodes", 9.1.13 /
   *   9.2.2, drbd9-tests quorum-check-quorumless); else unknown;
   * - a diskless peer never connected is no node at all for a diskful node
   *   ("a fresh (before connected once), intentional diskless peer gets
   *   ignored"). MDF_PEER_OUTDATED from a graceful disconnect is not
   *   modelled (no graceful disconnect).
   * Then: "if (qd.outdated + qd.quorumless + qd.unknown >= quorum_at) {
   * qd.unknown += qd.quorumless; qd.quorumless = 0; }"; last man standing,
   * "When all the absent nodes are D_OUTDATED (no one D_UNKNOWN) ... We
   * remove them from the voters"; quorum_at = calc_quorum_at() (majority
   * voters/2+1, all, or N); "have_quorum = qd.quorate_peers || (up_to_date
   * + present) >= quorum_at && up_to_date >= min_redundancy_at" (no
   * quorum-minimum-redundancy in the model: as if off, pessimistic); then
   * the diskless tiebreaker (see below).
   */
  #quorumInfo(r: Resource, x: Replica): QuorumInfo {
    let upToDate = 0;
    let present = 0;
    let outdated = 0;
    let quorumless = 0;
    let unknown = 0;
    let diskless = 0;
    let missingDiskless = 0;
    if (x.diskful) {
      if (x.disk === "UpToDate") upToDate++;
      else present++;
    } else {
      diskless++;
    }
    for (const [peer, c] of x.connections) {
      const y = r.replicas.get(peer)!;
      const connected = c.state === "Connected";
      if (!y.diskful) {
        if (connected) diskless++;
        else if (c.seen || !x.diskful) missingDiskless++;
      } else if (connected) {
        if (c.seenDisk === "UpToDate") upToDate++;
        else present++;
      } else if (c.seenDisk === "Outdated" || c.seenDisk === "Inconsistent") {
        outdated++;
      } else if (x.quorum && !x.members.has(peer)) {
        quorumless++;
      } else {
        unknown++;
      }
    }
    const visible = upToDate + present;
    if (r.config.quorum === "off") return { have: true, visible, voters: visible, quorumAt: 0 };
    const absent = outdated + quorumless + unknown;
    // "Check if a partition containing all missing nodes might have quorum".
    if (absent >= quorumAt(r.config.quorum, absent + visible)) {
      unknown += quorumless;
      quorumless = 0;
    }
    const voters = unknown > 0 ? outdated + quorumless + unknown + visible : visible;
    const at = quorumAt(r.config.quorum, voters);
    let have = visible >= at;
    // A diskless node has quorum when a connected UpToDate peer has it
    // (__calc_quorum_no_disk(): "if (disk_state == D_UP_TO_DATE &&
    // test_bit(PEER_QUORATE, &peer_device->flags)) qd->quorate_peers++", 9.2).
    // The model reads the peer's quorum at once, DRBD from its state packet.
    if (!have && !x.diskful) {
      have = [...x.connections].some(([peer, c]) => {
        const y = r.replicas.get(peer)!;
        return c.state === "Connected" && y.diskful && c.seenDisk === "UpToDate" && y.quorum;
      });
    }
    // The diskless tiebreaker: an even number of voters, one vote short, a
    // majority of the diskless nodes in sight, and quorum before: keep it
    // (calc_quorum(): "if (!have_quorum && voters != 0 && voters % 2 == 0 &&
    // qd.up_to_date + qd.present == quorum_at - 1 && qd.diskless >=
    // diskless_majority_at && device->have_quorum[NOW])", "Would lose quorum,
    // but using tiebreaker logic to keep"). Sticky: it only keeps quorum,
    // never regains it (drbd9-tests quorum-tiebreaker cases 2 and 3).
    const tiebreaker = voters !== 0 && voters % 2 === 0 && visible === at - 1 &&
      diskless >= Math.floor((diskless + missingDiskless) / 2) + 1 && x.quorum;
    if (!have && tiebreaker) have = true;
    return { have, visible, voters, quorumAt: at };
  }

  /**
   * The suspend reasons events2 shows (drbd_state.c sanitize_state()):
   * quorum with on-no-quorum suspend-io and no quorum, whatever the role
   * ("resource->susp_quorum[NEW] = resource->res_opts.on_no_quorum ==
   * ONQ_SUSPEND_IO ? !resource_has_quorum : false"); no-data for a Primary
   * without UpToDate data and on-no-data-accessible suspend-io
   * ("volume_lost_data_access && on_no_data == OND_SUSPEND_IO", cleared with
   * "volumes_have_data_access"); user from `suspend-io`. Fencing is not
   * modelled.
   */
  #suspension(r: Resource, x: Replica): SuspendReasons {
    return {
      user: x.userSuspended,
      noData: x.role === "Primary" && r.config.onNoDataAccessible === "suspend-io" &&
        !this.#dataAccessible(x),
      fencing: false,
      quorum: r.config.quorum !== "off" && r.config.onNoQuorum === "suspend-io" && !x.quorum,
    };
  }

  #suspended(r: Resource, x: Replica): boolean {
    const s = this.#suspension(r, x);
    return s.user || s.noData || s.fencing || s.quorum;
  }

  /**
   * How I/O behaves:
   * - force-io-failures fails everything, frozen requests included
   *   (finish_state_change(): "if (!resource->fail_io[OLD] &&
   *   resource->fail_io[NEW]) unfreeze_io = true");
   * - a Primary that lost its UpToDate data with on-no-data-accessible
   *   io-error fails its I/O even while suspended ("unfreeze_io = true" when
   *   "role[NEW] == R_PRIMARY && !drbd_data_accessible(device, NEW) &&
   *   on_no_data == OND_IO_ERROR"); DRBD may hold new requests again while
   *   still suspended, the model fails them (no write succeeds either way);
   * - any suspend reason freezes;
   * - no quorum with on-no-quorum io-error fails (drbd_req.c
   *   drbd_req_complete(): "quorum = on_no_quorum == ONQ_IO_ERROR ?
   *   resource->cached_all_devices_have_quorum : true; m->error = ok &&
   *   quorum ? 0 : (error ?: -EIO)");
   * - no UpToDate data anywhere fails.
   */
  #ioStateOf(r: Resource, x: Replica): IoState {
    if (x.forceIo) return "failing";
    if (
      x.role === "Primary" && r.config.onNoDataAccessible === "io-error" && !this.#dataAccessible(x)
    ) {
      return "failing";
    }
    if (this.#suspended(r, x)) return "frozen";
    if (r.config.quorum !== "off" && !x.quorum && r.config.onNoQuorum === "io-error") {
      return "failing";
    }
    if (!this.#dataAccessible(x)) return "failing";
    return "ok";
  }

  /** Some diskful peer is not connected. */
  #degraded(x: Replica, r: Resource): boolean {
    return [...x.connections].some(([peer, c]) =>
      r.replicas.get(peer)!.diskful && c.state !== "Connected"
    );
  }

  /**
   * UpToDate data is reachable: the local disk or a connected peer's
   * (drbd_state.c drbd_data_accessible(); allow-remote-read is not modelled).
   */
  #dataAccessible(x: Replica): boolean {
    if (x.diskful && x.disk === "UpToDate") return true;
    return [...x.connections.values()].some((c) =>
      c.state === "Connected" && c.seenDisk === "UpToDate"
    );
  }

  /**
   * Whether `y` flags its data as stable (UUID_FLAG_STABLE) to its peers: a
   * Primary is; a node connected to a Primary, or a SyncTarget, is not
   * (LINBIT/drbd drbd_state.c calc_device_stable(), drbd_main.c
   * drbd_device_stable(): "Unstable are neighbors of a primary and resync
   * target nodes"). The kernel re-sends its UUIDs whenever the flag changes
   * (w_after_state_change(): "Inform peers about being unstable", and
   * UUID_FLAG_GOT_STABLE); the model lets peers see the new flag at once,
   * where DRBD needs one packet.
   */
  #stable(y: Replica): boolean {
    if (y.role === "Primary") return true;
    for (const c of y.connections.values()) {
      if (c.state !== "Connected") continue;
      if (c.seenRole === "Primary" || c.resync === "target") return false;
    }
    return true;
  }

  /**
   * The nodes a two-phase commit started at `x` reaches: x and everyone
   * linked to it over established connections whose link works (DRBD
   * forwards cluster-wide requests to nodes not directly connected,
   * drbd_state.c change_cluster_wide_state(), nested_twopc_request()). A
   * cut link that is not yet noticed holds DRBD's commit until it is; the
   * model leaves that node out at once.
   */
  #partition(r: Resource, x: Replica, options: { established?: boolean } = {}): Set<string> {
    const seen = new Set([x.node]);
    const queue = [x.node];
    while (queue.length > 0) {
      const node = queue.shift()!;
      for (const [peer, c] of r.replicas.get(node)!.connections) {
        if (seen.has(peer) || c.state !== "Connected") continue;
        if (!options.established && !this.#linkUp(node, peer)) continue;
        seen.add(peer);
        queue.push(peer);
      }
    }
    return seen;
  }

  /**
   * Ends the lost-peer two-phase commit of `x` (Consistent after losing its
   * Primary): Outdated when a Primary is still in its partition, else
   * UpToDate. The commit's packets go over established connections; one
   * whose link died unnoticed holds the reply back until the link returns
   * (TCP delivers it, and the commit completes with that peer's answer) or
   * until the connection is noticed broken (the commit goes on without it),
   * which matters when a running Primary is behind that link.
   * Until then `x` stays Consistent, so it does not offer stable UpToDate
   * data. drbd9-tests tests/outdate: a node whose Primary is still reachable
   * through the chain becomes Outdated.
   */
  #settleLostPeer(r: Resource, x: Replica): void {
    if (x.disk !== "Consistent" || !this.#node(x.node).up) return;
    const reachable = this.#partition(r, x);
    const established = this.#partition(r, x, { established: true });
    // Only a running Primary behind such a link changes the answer; a
    // crashed one's connections break by the same detection (the recorded
    // sequence of a Primary's crash settles at once, DRBD_FORMATS.md §6.4).
    const behindDeadLink = [...established].some((n) =>
      !reachable.has(n) && this.#node(n).up && r.replicas.get(n)!.role === "Primary"
    );
    if (behindDeadLink) {
      this.#after(100, () => {
        this.#settleLostPeer(r, x);
        this.#publish();
      });
      return;
    }
    const primary = [...reachable].some((n) =>
      n !== x.node && r.replicas.get(n)!.role === "Primary"
    );
    x.disk = primary ? "Outdated" : "UpToDate";
  }

  /**
   * A "weak" node: a Primary is in its partition but not directly connected
   * (the Primary reports "reply->weak_nodes |= ~directly_reachable"; every
   * commit does "if (reply->primary_nodes & ~directly_reachable)
   * __outdate_myself(resource)", drbd_state.c do_change_cstate(),
   * do_twopc_after_lost_peer()). drbd9-tests outdate: "weak nodes become
   * Outdated".
   */
  #weak(r: Resource, x: Replica): boolean {
    for (const node of this.#partition(r, x)) {
      if (node === x.node || r.replicas.get(node)!.role !== "Primary") continue;
      const c = x.connections.get(node)!;
      if (c.state !== "Connected" || !this.#linkUp(x.node, node)) return true;
    }
    return false;
  }

  /**
   * resource->members after the lost-peer two-phase commit: the nodes it
   * reached (drbd_state.c update_members(): "in case we initiated 2PC we
   * know the reachable nodes ... resource->members =
   * reply->reachable_nodes"). The model takes the nodes reachable over
   * connections still Connected, at once. DRBD's commit cannot finish while
   * its partition holds a cut link nobody noticed yet, and it updates only
   * the nodes that lost a peer (each starts its own commit); both keep its
   * members larger for a while. Smaller members only make more absent
   * nodes quorumless (pessimistic: more quorum).
   */
  #updateMembers(r: Resource): void {
    const done = new Set<string>();
    for (const x of r.replicas.values()) {
      if (done.has(x.node)) continue;
      const part = new Set([x.node]);
      const queue = [x.node];
      while (queue.length > 0) {
        const node = queue.shift()!;
        for (const [peer, c] of r.replicas.get(node)!.connections) {
          if (c.state !== "Connected" || part.has(peer)) continue;
          part.add(peer);
          queue.push(peer);
        }
      }
      for (const node of part) {
        done.add(node);
        r.replicas.get(node)!.members = new Set(part);
      }
    }
  }

  /**
   * What the commit of a two-phase commit (promotion, connect, lost peer)
   * and the stability changes after it do to the disks, in one pass after
   * the event:
   * - weak nodes go Outdated (see #weak): UpToDate or Consistent → Outdated
   *   (__outdate_myself(): "if (device->disk_state[NOW] > D_OUTDATED)");
   * - a new Primary marks absent peers of its partition Outdated
   *   (do_change_role(): "if (NODE_MASK(peer_device->node_id) &
   *   reachable_nodes && peer_device->disk_state[NEW] == D_UNKNOWN &&
   *   want_bitmap(peer_device)) __change_peer_disk_state(peer_device,
   *   D_OUTDATED)");
   * - a replica connected to a stable UpToDate peer catches up: Outdated
   *   with the same data becomes UpToDate (sanitize_state(): "Upgrade
   *   myself from D_OUTDATED if ... 2) The peer just became stable"), and
   *   one with older data resyncs from it (w_after_state_change(): a peer
   *   that got stable offers "all peers a resync", UUID_FLAG_GOT_STABLE;
   *   drbd_notify_peers_lost_primary(): survivors of a lost Primary
   *   reconcile, drbd9-tests quorum-isolate-primary: "reconciliation
   *   resync", outdate: "previously weak nodes become UpToDate").
   */
  #twoPhaseCommit(r: Resource, promoted?: Replica): void {
    let changed = false;
    for (const x of r.replicas.values()) {
      if (!x.diskful || x.role === "Primary") continue;
      if ((x.disk === "UpToDate" || x.disk === "Consistent") && this.#weak(r, x)) {
        x.disk = "Outdated";
        changed = true;
      }
    }
    if (promoted !== undefined) {
      const part = this.#partition(r, promoted);
      for (const [peer, c] of promoted.connections) {
        const y = r.replicas.get(peer)!;
        if (c.state === "Connected" || !y.diskful || !part.has(peer)) continue;
        if (c.seenDisk === "Outdated" || c.seenDisk === "Inconsistent") continue;
        c.seenDisk = "Outdated";
        changed = true;
      }
    }
    if (changed) this.#publish();
    const resyncs: [Replica, Replica][] = [];
    let upgraded = false;
    for (const x of r.replicas.values()) {
      if (!x.diskful || x.role === "Primary") continue;
      if ([...x.connections.values()].some((c) => c.resync === "target")) continue;
      for (const [peer, c] of x.connections) {
        const y = r.replicas.get(peer)!;
        if (c.state !== "Connected" || !this.#linkUp(x.node, peer) || c.resync !== undefined) {
          continue;
        }
        if (!y.diskful || y.disk !== "UpToDate" || !this.#stable(y)) continue;
        const ahead = this.#aheadOf(r, x, y);
        if (ahead === y) {
          resyncs.push([y, x]);
          break;
        }
        if (ahead === "same" && x.disk === "Outdated" && !this.#weak(r, x)) {
          x.disk = "UpToDate";
          upgraded = true;
          break;
        }
      }
    }
    if (upgraded) this.#publish();
    for (const [source, target] of resyncs) this.#startResync(r, source, target);
  }

  /** The data generations a node stands for: its own, or a diskless node's diskful peers'. */
  #historyOf(r: Resource, x: Replica): number[] | undefined {
    if (x.diskful) return x.history;
    const peers = [...x.connections]
      .filter(([, c]) => c.state === "Connected")
      .map(([peer]) => r.replicas.get(peer)!)
      .filter((y) => y.diskful)
      .sort((p, q) => Number(q.role === "Primary") - Number(p.role === "Primary"));
    return peers[0]?.history;
  }

  /** Which of two replicas has the newer data. */
  #aheadOf(r: Resource, a: Replica, b: Replica): Replica | "same" | "diverged" | "unknown" {
    const ha = this.#historyOf(r, a);
    const hb = this.#historyOf(r, b);
    if (ha === undefined || hb === undefined || ha.length === 0 || hb.length === 0) {
      return "unknown";
    }
    const ca = ha.at(-1)!;
    const cb = hb.at(-1)!;
    if (ca === cb) return "same";
    if (hb.includes(ca)) return b;
    if (ha.includes(cb)) return a;
    return "diverged";
  }

  #viewOf(r: Resource, node: string): DrbdResource {
    const x = r.replicas.get(node)!;
    const connections: DrbdConnection[] = [...x.connections]
      .sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0))
      .map(([peer, c]) => {
        const y = r.replicas.get(peer)!;
        const connected = c.state === "Connected";
        const replication = !connected
          ? "Off"
          : c.resync === "source"
          ? "SyncSource"
          : c.resync === "target"
          ? "SyncTarget"
          : "Established";
        return {
          peerNodeId: y.nodeId,
          name: this.connectionName(peer),
          connectionState: c.state,
          peerRole: connected ? c.seenRole : "Unknown",
          peerDevices: r.minors.map((_, volume) => ({
            volume,
            replicationState: replication,
            peerDiskState: connected || c.seenDisk === "Outdated" || c.seenDisk === "Inconsistent"
              ? c.seenDisk
              : "DUnknown",
            peerClient: !y.diskful,
          })),
        };
      });
    const view: DrbdResource = {
      name: r.name,
      role: x.role,
      suspended: this.#suspension(r, x),
      forceIoFailures: x.forceIo,
      mayPromote: undefined,
      promotionScore: 0,
      devices: r.minors.map((minor, volume) => ({
        volume,
        minor,
        diskState: x.disk,
        client: !x.diskful,
        open: x.writers + x.readers > 0,
        quorum: x.quorum,
      })),
      connections,
      config: { ...r.config },
    };
    const byName = new Map(
      [...x.connections.keys()].map((peer) => [this.connectionName(peer), r.replicas.get(peer)!]),
    );
    // may_promote / promotion_score are drbd-utils' (compute_promotion_info(),
    // see promotionInfo()), fed the peers' UUID_FLAG_STABLE from #stable.
    const promotion = promotionInfo(view, this.dialect, (c) => {
      const y = byName.get(c.name);
      return y !== undefined && this.#stable(y);
    });
    view.mayPromote = promotion.mayPromote;
    view.promotionScore = promotion.score;
    return view;
  }

  /**
   * show --json values beyond the model: the freeze profile's and the ping
   * timing. rr-conflict retry-connect is what #handshake does with a
   * refused connection. auto-promote shows the freeze profile's "no", yet
   * #promote / open() auto-promote as DRBD's default "yes" does (the
   * kubelet's remount after a reboot relies on it).
   */
  #showOptions() {
    return {
      options: { "auto-promote": false },
      net: {
        "rr-conflict": "retry-connect",
        "ping-int": String(Math.round(this.#pingIntMs / 1000)),
        "ping-timeout": String(Math.round(this.#pingTimeoutMs / 100)),
      },
    };
  }

  // --- plumbing --------------------------------------------------------------

  #node(name: string): SimNode {
    const node = this.#nodes.get(name);
    if (node === undefined) {
      throw new Error(`Expected one of the nodes ${this.nodes.join(", ")}, got ${name}`);
    }
    return node;
  }

  #resource(name: string): Resource {
    const resource = this.#resources.get(name);
    if (resource === undefined) {
      throw new Error(
        `Expected one of the resources ${[...this.#resources.keys()].join(", ")}, got ${name}`,
      );
    }
    return resource;
  }

  #replicaFor(node: string, resource: string): { r: Resource; x: Replica } | { error: string } {
    const n = this.#node(node);
    const r = this.#resources.get(resource);
    const x = r?.replicas.get(node);
    if (r === undefined || x === undefined || !n.configured) {
      return { error: `${resource}: Failure: (158) Unknown resource` };
    }
    if (!n.up) return { error: `${node} is down` };
    return { r, x };
  }

  #pairs(r: Resource): [string, string][] {
    const nodes = [...r.replicas.keys()];
    return nodes.flatMap((a, i) => nodes.slice(i + 1).map((b) => [a, b] as [string, string]));
  }

  #linkUp(a: string, b: string): boolean {
    const x = this.#node(a);
    const y = this.#node(b);
    return x.up && y.up && x.configured && y.configured && !this.#cuts.has(pairKey(a, b));
  }

  #enqueue(n: SimNode, task: () => Promise<void>): void {
    n.chain = n.chain.then(task).catch((err) => {
      if (!this.#stopped) this.#renderErrors.push(err);
    });
  }

  #streamLines(node: string, lines: string[]): void {
    const n = this.#node(node);
    if (n.up && !this.#stopped) this.#enqueue(n, () => n.fake.appendStreamLines(lines));
  }

  #after(simMs: number, fn: () => void): () => void {
    const cancel = this.clock.after(simMs, () => {
      this.#timers.delete(cancel);
      if (!this.#stopped) fn();
    });
    this.#timers.add(cancel);
    return () => {
      cancel();
      this.#timers.delete(cancel);
    };
  }

  #resourceTimer(r: Resource, simMs: number, fn: () => void): void {
    const cancel = this.#after(simMs, () => {
      r.timers.delete(cancel);
      fn();
    });
    r.timers.add(cancel);
  }

  #cancelResourceTimers(r: Resource): void {
    for (const cancel of r.detections.values()) cancel();
    for (const cancel of r.attempts.values()) cancel();
    for (const resync of r.resyncs.values()) resync.cancel();
    for (const cancel of r.timers) cancel();
    r.detections.clear();
    r.attempts.clear();
    r.resyncs.clear();
    r.timers.clear();
  }

  #notify(): void {
    if (this.#notifyQueued) return;
    this.#notifyQueued = true;
    queueMicrotask(() => {
      this.#notifyQueued = false;
      if (this.#stopped) return;
      for (const listener of [...this.#listeners]) {
        try {
          listener();
        } catch (err) {
          console.error(`A DRBD change listener failed: ${err}`);
        }
      }
    });
  }
}
