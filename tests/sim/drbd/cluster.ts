/**
 * The DRBD side of a simulated cluster: resources replicated over several
 * nodes, a connectivity matrix (crash, partition, flapping link) and, per
 * node, a `drbdsetup` that prints that node's view.
 *
 * The model follows DRBD_FORMATS.md §6: quorum per node (voters, majority /
 * all / N, last man standing, the diskless tiebreaker, sticky), may_promote
 * and promotion_score as drbdsetup computes them, suspension (quorum with
 * suspend-io regardless of role, no-data for a Primary, user),
 * force-io-failures (`secondary --force` with writers, and
 * on-suspended-primary-outdated force-secondary on reconnect), a surviving
 * Secondary's disk going Consistent then UpToDate (or Outdated) when the
 * Primary vanishes, and the connection sequence NetworkFailure → Unconnected
 * → Connecting after the detection delay (ping-int + ping-timeout).
 *
 * Data generations stand in for DRBD's UUIDs: a Primary that writes while a
 * diskful peer is away (or is promoted without it) starts a new generation;
 * on reconnect the side whose generation the other has seen becomes a
 * SyncTarget, and two unrelated generations are a split brain (StandAlone).
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
  /** The peer's role and disk as this node last saw them over the link. */
  seenRole: "Primary" | "Secondary";
  seenDisk: DiskState;
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
  /** Started a generation since a diskful peer went away. */
  wroteWhileDegraded: boolean;
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
        wroteWhileDegraded: false,
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
          resync: undefined,
          path: this.#linkUp(replica.node, peer.node),
        });
      }
    }
    this.#resources.set(name, resource);
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
   * set, with another Primary in sight, without UpToDate data, or without
   * quorum; the error is drbdsetup's stderr.
   */
  promote(node: string, resource: string): DrbdOpResult {
    const found = this.#replicaFor(node, resource);
    if ("error" in found) return { ok: false, error: found.error };
    const { r, x } = found;
    if (x.role === "Primary") return { ok: true };
    if (x.forceIo) {
      return { ok: false, error: heldOpenMessage(r.name, r.minors[0]).trimEnd() };
    }
    if (
      [...x.connections.values()].some((c) => c.state === "Connected" && c.seenRole === "Primary")
    ) {
      return {
        ok: false,
        error: stateChangeFailed(r.name, -1, "Multiple primaries not allowed by config"),
      };
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
    x.role = "Primary";
    // Promoted without every diskful peer: DRBD starts a new current UUID.
    if (this.#degraded(x, r)) {
      this.#newGeneration(r, x);
      x.wroteWhileDegraded = true;
    }
    this.#publish();
    return { ok: true };
  }

  /** Demotes like `drbdsetup secondary`: refused while open for writing. */
  demote(node: string, resource: string): DrbdOpResult {
    const found = this.#replicaFor(node, resource);
    if ("error" in found) return { ok: false, error: found.error };
    const answer = this.#secondary(found.r, found.x, false);
    return answer.code === 0 ? { ok: true } : { ok: false, error: answer.stderr.trimEnd() };
  }

  /**
   * Opens the device: for writing only on a Primary (auto-promote is off),
   * read-only also on a Secondary; never while force-io-failures is set.
   */
  open(node: string, resource: string, options: OpenOptions = {}): DrbdOpResult {
    const found = this.#replicaFor(node, resource);
    if ("error" in found) return { ok: false, error: found.error };
    const { r, x } = found;
    const device = `/dev/drbd${r.minors[0]}`;
    if (x.forceIo) return { ok: false, error: `open ${device}: State not recoverable` };
    // auto-promote (LINSTOR's default): opening a Secondary for writing tries
    // to promote it, and a write open of a device that is still not Primary
    // fails with EROFS (LINBIT/drbd drbd/drbd_main.c: drbd_open() calls
    // try_to_promote() when res_opts.auto_promote is set, then "if (mode &
    // BLK_OPEN_WRITE) { if (resource->role[NOW] != R_PRIMARY) err = -EROFS;").
    // After a reboot the kubelet's remount promotes this way.
    if (!options.readOnly && x.role !== "Primary" && !this.promote(node, resource).ok) {
      return { ok: false, error: `open ${device}: Read-only file system` };
    }
    if (options.readOnly) x.readers++;
    else x.writers++;
    this.#publish();
    return { ok: true };
  }

  /**
   * Closes one opener (writers first). False while I/O is frozen: the
   * unmount hangs. The last close clears force-io-failures.
   */
  close(node: string, resource: string): boolean {
    const n = this.#node(node);
    const r = this.#resource(resource);
    const x = r.replicas.get(node);
    if (!n.up || x === undefined || x.writers + x.readers === 0) return true;
    if (this.#ioStateOf(r, x) === "frozen") return false;
    if (x.writers > 0) x.writers--;
    else x.readers--;
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

  /** `secondary [--force]` (§5.1). */
  #secondary(r: Resource, x: Replica, force: boolean): FakeAnswer {
    if (x.role !== "Primary") return { code: 0, stderr: "" };
    if (x.writers > 0 && !force) return { code: 11, stderr: heldOpenMessage(r.name, r.minors[0]) };
    x.role = "Secondary";
    if (x.writers > 0) x.forceIo = true;
    this.#publish();
    return { code: 0, stderr: "" };
  }

  // --- state changes ---------------------------------------------------------

  /** The link between a and b stopped working; schedule its detection. */
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
      if (
        rx.diskful && rx.role === "Secondary" && c.seenRole === "Primary" && rx.disk === "UpToDate"
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
    for (const rx of lostPrimary) {
      if (rx.disk === "Consistent") {
        rx.disk = this.#primaryReachable(r, rx) ? "Outdated" : "UpToDate";
      }
    }
    if (lostPrimary.length > 0) this.#publish();
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

  /** Both sides are Connecting over a working link: connect, or refuse and retry. */
  #handshake(r: Resource, a: string, b: string): void {
    if (!this.#linkUp(a, b)) return;
    const ra = r.replicas.get(a)!;
    const rb = r.replicas.get(b)!;
    if (ra.connections.get(b)!.state !== "Connecting") return;
    if (rb.connections.get(a)!.state !== "Connecting") return;
    const ahead = this.#aheadOf(r, ra, rb);
    // A frozen Primary meeting newer data (§6.3).
    for (const [old, other] of [[ra, rb], [rb, ra]]) {
      if (old.role !== "Primary" || ahead !== other || !this.#suspended(r, old)) continue;
      if (r.config.onSuspendedPrimaryOutdated !== "force-secondary") {
        old.connections.get(other.node)!.state = "StandAlone";
        this.#publish();
        return;
      }
      old.role = "Secondary";
      if (old.writers > 0) old.forceIo = true;
      if (old.diskful) old.disk = "Outdated";
      this.#publish();
    }
    // Data changed on both sides: split brain (after-sb-* disconnect).
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
    const retry = () => this.#attemptConnect(r, a, b);
    if (ra.role === "Primary" && rb.role === "Primary") return retry();
    if (this.#wouldSeeTwoPrimaries(r, ra, rb) || this.#wouldSeeTwoPrimaries(r, rb, ra)) {
      return retry();
    }
    // A Primary cannot become a SyncTarget: rr-conflict retry-connect.
    const behind = ahead === ra ? rb : ahead === rb ? ra : undefined;
    if (behind?.role === "Primary" && ra.diskful && rb.diskful) return retry();
    for (const [x, y] of [[ra, rb], [rb, ra]]) {
      const c = x.connections.get(y.node)!;
      c.state = "Connected";
      c.path = true;
    }
    if (ahead === "same") {
      for (const x of [ra, rb]) {
        if (x.diskful && (x.disk === "Consistent" || x.disk === "Outdated")) x.disk = "UpToDate";
      }
    }
    // The handshake and the start of a resync are one state change.
    if ((ahead === ra || ahead === rb) && ra.diskful && rb.diskful) {
      this.#startResync(r, ahead, ahead === ra ? rb : ra);
    }
    this.#publish();
  }

  /** Starts a resync to `target`, unless it is still open (it waits for the last close). */
  #startResync(r: Resource, source: Replica, target: Replica): void {
    const key = pairKey(source.node, target.node);
    if (r.resyncs.has(key)) return;
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
      target.history = [...source.history];
      target.disk = "UpToDate";
      this.#publish();
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

  #reboot(r: Resource, x: Replica): void {
    x.role = "Secondary";
    x.writers = 0;
    x.readers = 0;
    x.forceIo = false;
    x.userSuspended = false;
    x.quorum = false;
    x.wroteWhileDegraded = false;
    if (x.diskful && x.disk !== "Inconsistent") x.disk = "Consistent";
    for (const [peer, c] of x.connections) {
      c.state = "Connecting";
      c.resync = undefined;
      c.path = false;
      const key = pairKey(x.node, peer);
      r.resyncs.get(key)?.cancel();
      r.resyncs.delete(key);
    }
  }

  /** A new data generation written by Primary `x` and every peer replicating it. */
  #newGeneration(r: Resource, x: Replica): void {
    const writers = x.diskful ? [x] : [];
    for (const [peer, c] of x.connections) {
      const y = r.replicas.get(peer)!;
      if (c.state === "Connected" && y.diskful && y.disk === "UpToDate" && c.resync === undefined) {
        writers.push(y);
      }
    }
    if (writers.length === 0) return;
    const history = [...writers[0].history, ++this.#generation];
    for (const w of writers) w.history = [...history];
  }

  /** A Primary whose application writes while a diskful peer is away starts a generation. */
  #checkWrites(): void {
    for (const r of this.#resources.values()) {
      for (const x of r.replicas.values()) {
        if (x.role !== "Primary" || x.writers === 0 || x.wroteWhileDegraded) continue;
        if (!this.#node(x.node).up || !this.#degraded(x, r)) continue;
        if (this.#ioStateOf(r, x) !== "ok") continue;
        this.#newGeneration(r, x);
        x.wroteWhileDegraded = true;
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
        if (
          x.role === "Primary" && x.writers > 0 && !x.wroteWhileDegraded && this.#degraded(x, r)
        ) {
          writesPending = true;
        }
      }
    }
    for (const n of this.#nodes.values()) {
      if (!n.up) continue;
      const views: DrbdResource[] = [];
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
      if (x.role !== "Primary" || !this.#degraded(x, r)) x.wroteWhileDegraded = false;
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

  /** The kernel's quorum computation for one node (§6.2), with its previous value as "sticky". */
  #quorumInfo(r: Resource, x: Replica): QuorumInfo {
    let upToDate = 0;
    let present = 0;
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
        else missingDiskless++;
      } else if (!connected) {
        // Not reachable and not known to be Outdated (the simulation never marks peers so).
        unknown++;
      } else if (c.seenDisk === "UpToDate") {
        upToDate++;
      } else {
        present++;
      }
    }
    const visible = upToDate + present;
    // Last man standing: with no unknown absentee, absent nodes are not voters.
    const voters = unknown > 0 ? unknown + visible : visible;
    if (r.config.quorum === "off") return { have: true, visible, voters, quorumAt: 0 };
    const at = quorumAt(r.config.quorum, voters);
    let have = visible >= at;
    const tiebreaker = voters !== 0 && voters % 2 === 0 && visible === at - 1 &&
      diskless >= Math.floor((diskless + missingDiskless) / 2) + 1 && x.quorum;
    if (!have && tiebreaker) have = true;
    if (!have && !x.diskful) {
      // A diskless node has quorum when a connected UpToDate peer has it.
      have = [...x.connections].some(([peer, c]) => {
        const y = r.replicas.get(peer)!;
        return c.state === "Connected" && y.diskful && c.seenDisk === "UpToDate" && y.quorum;
      });
    }
    return { have, visible, voters, quorumAt: at };
  }

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

  #ioStateOf(r: Resource, x: Replica): IoState {
    if (x.forceIo) return "failing";
    if (this.#suspended(r, x)) return "frozen";
    if (r.config.quorum !== "off" && !x.quorum && r.config.onNoQuorum === "io-error") {
      return "failing";
    }
    if (!this.#dataAccessible(x)) return "failing";
    return "ok";
  }

  #dataAccessible(x: Replica): boolean {
    if (x.diskful && x.disk === "UpToDate") return true;
    return [...x.connections.values()].some((c) =>
      c.state === "Connected" && c.seenDisk === "UpToDate"
    );
  }

  /** Some diskful peer is not connected. */
  #degraded(x: Replica, r: Resource): boolean {
    return [...x.connections].some(([peer, c]) =>
      r.replicas.get(peer)!.diskful && c.state !== "Connected"
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

  /** A Primary can be reached over working links (the survivors' agreement reaches it). */
  #primaryReachable(r: Resource, from: Replica): boolean {
    const seen = new Set([from.node]);
    const queue = [from.node];
    while (queue.length > 0) {
      const node = queue.shift()!;
      for (const next of r.replicas.keys()) {
        if (seen.has(next) || !this.#linkUp(node, next)) continue;
        seen.add(next);
        if (r.replicas.get(next)!.role === "Primary") return true;
        queue.push(next);
      }
    }
    return false;
  }

  /** Primary `x` connecting to `y` while `y` is connected to another Primary. */
  #wouldSeeTwoPrimaries(r: Resource, x: Replica, y: Replica): boolean {
    if (x.role !== "Primary") return false;
    return [...y.connections].some(([peer, c]) =>
      peer !== x.node && c.state === "Connected" && r.replicas.get(peer)!.role === "Primary"
    );
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
            peerDiskState: connected ? c.seenDisk : "DUnknown",
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
    const promotion = promotionInfo(view, this.dialect, (c) => {
      const y = byName.get(c.name);
      return y !== undefined && this.#stable(y);
    });
    view.mayPromote = promotion.mayPromote;
    view.promotionScore = promotion.score;
    return view;
  }

  /** show --json values beyond the model: the freeze profile's and the ping timing. */
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
    if (r === undefined || x === undefined) {
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
    return this.#node(a).up && this.#node(b).up && !this.#cuts.has(pairKey(a, b));
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
