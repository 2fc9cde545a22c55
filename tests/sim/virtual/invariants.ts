/**
 * The safety and liveness rules the fault campaign checks, against the
 * simulation's ground truth (the DRBD model and the API server's store), not
 * against what any agent believes.
 *
 * - S1: no pod of a volume is evicted or deleted, and no VolumeAttachment of
 *   it deleted, by an agent while that pod's (attachment's) node still has a
 *   replica of the volume that can write: up, Primary, I/O not suspended or
 *   failing. Checked when the request reaches the API server.
 * - S2: never two writers of a volume: at most one writable Primary, and at
 *   most one running pod of the volume on a node whose replica can write.
 *   Checked after every simulation step.
 * - S3: no agent taints a healthy node (up, every DRBD connection of every
 *   resource it has Connected, for at least {@linkcode healthyForMs}: an
 *   agent cannot know of a reconnect that happened a moment ago) with
 *   `drbd.linbit.com/lost-quorum`.
 * - S4: no destructive request from an agent whose DRBD state has been
 *   unreadable for longer than the staleness bound.
 * - L1 (liveness): when a node running a workload's pod crashes and a
 *   quorum of the volume's replicas survives, a pod of it runs again within
 *   the fail-over bound (checked by the fault plan, which knows the faults);
 *   and once every fault has healed, every workload runs again.
 * - L2: once every fault has healed no lost-quorum taint remains, and
 *   agents do not switch a node's taint on and off over and over.
 * - L3: never does every node carry the lost-quorum taint at once (a whole
 *   cluster tainted keeps every pod, the storage stack's own included, off
 *   every node: piraeus-operator PR #561). Checked after every step.
 *
 * @module
 */

import type { KubeObject } from "../apiserver/mod.ts";
import type { VirtualCluster } from "./cluster.ts";

/**
 * How long a node must have been healthy before a lost-quorum taint on it
 * breaks S3: an agent sees DRBD through events2 and decides at most every
 * 100 ms, so a link that came back within this time may not be known yet.
 */
export const healthyForMs = 1_000;

/** The taint the agent puts on a lost node. */
const lostQuorumTaint = "drbd.linbit.com/lost-quorum";

/** A broken rule. */
export interface Violation {
  /** Simulated ms since the run began. */
  at: number;
  /** `S1` ... `S4`, `L1` ... `L3`. */
  rule: string;
  /** What happened, in words. */
  detail: string;
}

/** An agent's request, as it reaches the API server. */
export interface AgentRequest {
  /** The agent's node. */
  node: string;
  /** HTTP method. */
  method: string;
  /** URL path. */
  path: string;
  /** The JSON body, parsed, if any. */
  body: unknown;
}

// deno-lint-ignore no-explicit-any
type Any = any;

/** Checks the rules on one {@linkcode VirtualCluster}. */
export class Invariants {
  readonly violations: Violation[] = [];
  readonly #cluster: VirtualCluster;
  readonly #startedAt: number;
  readonly #staleBoundMs: number;
  /** Since when each node's drbdsetup cannot be read (set by the fault plan). */
  readonly unreadableSince = new Map<string, number>();
  #taintChanges = new Map<string, number>();
  /** Since when each node has been healthy, as seen by the last {@linkcode check}. */
  #healthySince = new Map<string, number>();

  /** `staleBoundMs`: how long an agent may act on a state it last read. */
  constructor(cluster: VirtualCluster, staleBoundMs: number) {
    this.#cluster = cluster;
    this.#startedAt = cluster.clock.now();
    this.#staleBoundMs = staleBoundMs;
  }

  #add(rule: string, detail: string): void {
    const at = this.#cluster.clock.now() - this.#startedAt;
    // One report per rule and subject is enough.
    if (this.violations.some((v) => v.rule === rule && v.detail === detail)) return;
    this.violations.push({ at, rule, detail });
  }

  /** Whether `node`'s replica of `resource` can write now. */
  writable(node: string, resource: string): boolean {
    const drbd = this.#cluster.drbd;
    return drbd.isUp(node) && drbd.primaries(resource).includes(node) &&
      drbd.ioState(node, resource) === "ok";
  }

  /** The DRBD resources (PV names) a pod's claims are bound to. */
  #resourcesOf(pod: Readonly<KubeObject>): string[] {
    const server = this.#cluster.server;
    const out: string[] = [];
    for (const volume of (pod as Any).spec?.volumes ?? []) {
      const claim = volume.persistentVolumeClaim?.claimName;
      if (typeof claim !== "string") continue;
      const pvc = server.peek("persistentvolumeclaims", pod.metadata.namespace, claim) as Any;
      const pv = pvc?.spec?.volumeName;
      if (typeof pv === "string" && this.#cluster.drbd.resources().includes(pv)) out.push(pv);
    }
    return out;
  }

  /** Checks an agent's request before the server handles it (S1, S3, S4). */
  onAgentRequest(request: AgentRequest): void {
    const { method, path } = request;
    const server = this.#cluster.server;
    let destructive: string | undefined;
    const pod = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)(\/eviction)?$/.exec(path);
    if (pod && (method === "DELETE" || (method === "POST" && pod[3] !== undefined))) {
      destructive = `${pod[3] ? "evict" : "delete"} pod ${pod[1]}/${pod[2]}`;
      const object = server.peek("pods", pod[1], pod[2]) as Any;
      const node = object?.spec?.nodeName;
      if (object !== undefined && typeof node === "string") {
        for (const resource of this.#resourcesOf(object)) {
          if (this.writable(node, resource)) {
            this.#add(
              "S1",
              `agent on ${request.node}: ${destructive} on ${node}, whose replica of ${resource} can still write`,
            );
          }
        }
      }
    }
    const va = /^\/apis\/storage\.k8s\.io\/v1\/volumeattachments\/([^/]+)$/.exec(path);
    if (va && method === "DELETE") {
      destructive = `delete VolumeAttachment ${va[1]}`;
      const object = server.peek("volumeattachments", undefined, va[1]) as Any;
      const node = object?.spec?.nodeName;
      const resource = object?.spec?.source?.persistentVolumeName;
      if (
        typeof node === "string" && typeof resource === "string" && this.writable(node, resource)
      ) {
        this.#add(
          "S1",
          `agent on ${request.node}: ${destructive} of ${node}, whose replica of ${resource} can still write`,
        );
      }
    }
    const nodeWrite = /^\/api\/v1\/nodes\/([^/]+)$/.exec(path);
    if (nodeWrite && (method === "PUT" || method === "PATCH")) {
      this.#checkTaint(request, nodeWrite[1]);
    }
    if (destructive !== undefined) {
      const since = this.unreadableSince.get(request.node);
      const now = this.#cluster.clock.now();
      if (since !== undefined && now - since > this.#staleBoundMs) {
        this.#add(
          "S4",
          `agent on ${request.node}: ${destructive} ${
            Math.round((now - since) / 1000)
          }s after its DRBD state became unreadable`,
        );
      }
    }
  }

  #checkTaint(request: AgentRequest, name: string): void {
    const taints: Any[] = (request.body as Any)?.spec?.taints ?? [];
    const wants = taints.some((t) => t?.key === lostQuorumTaint);
    const current = this.#cluster.server.peek("nodes", undefined, name) as Any;
    const has = ((current?.spec?.taints ?? []) as Any[]).some((t) => t?.key === lostQuorumTaint);
    if (wants !== has) this.#taintChanges.set(name, (this.#taintChanges.get(name) ?? 0) + 1);
    if (!wants || has || !this.#healthy(name)) return;
    const since = this.#healthySince.get(name);
    if (since === undefined || this.#cluster.clock.now() - since < healthyForMs) return;
    this.#add("S3", `agent on ${request.node}: lost-quorum taint on healthy node ${name}`);
  }

  /** Up, and every DRBD connection of every replica it has Connected. */
  #healthy(node: string): boolean {
    const drbd = this.#cluster.drbd;
    if (!drbd.isUp(node)) return false;
    for (const resource of drbd.resources()) {
      const view = drbd.view(node, resource);
      if (view === undefined) continue;
      if (view.connections.some((c) => c.connectionState !== "Connected")) return false;
    }
    return true;
  }

  /** Checks the whole state (S2); call after every step. */
  check(): void {
    const { drbd, server } = this.#cluster;
    const now = this.#cluster.clock.now();
    for (const node of this.#cluster.nodes) {
      if (!this.#healthy(node)) this.#healthySince.delete(node);
      else if (!this.#healthySince.has(node)) this.#healthySince.set(node, now);
    }
    for (const resource of drbd.resources()) {
      const writers = this.#cluster.nodes.filter((n) => this.writable(n, resource));
      if (writers.length > 1) {
        this.#add("S2", `${resource} has writable Primaries on ${writers.join(" and ")}`);
      }
    }
    const nodes = server.peekAll("nodes");
    const tainted = nodes.filter((node) =>
      (((node as Any).spec?.taints ?? []) as Any[]).some((t) => t?.key === lostQuorumTaint)
    );
    if (nodes.length > 1 && tainted.length === nodes.length) {
      this.#add("L3", `every node (${nodes.length}) carries ${lostQuorumTaint}`);
    }
    const running = new Map<string, string[]>();
    for (const pod of server.peekAll("pods")) {
      const p = pod as Any;
      const node = p.spec?.nodeName;
      if (typeof node !== "string" || p.status?.phase !== "Running") continue;
      for (const resource of this.#resourcesOf(pod)) {
        if (!this.writable(node, resource)) continue;
        const list = running.get(resource) ?? [];
        list.push(`${p.metadata.name}@${node}`);
        running.set(resource, list);
      }
    }
    for (const [resource, pods] of running) {
      if (new Set(pods.map((p) => p.split("@")[1])).size > 1) {
        this.#add("S2", `${resource} is written by running pods ${pods.join(" and ")}`);
      }
    }
  }

  /**
   * Liveness after every fault healed: a pod of every workload Running and
   * Ready on some node, and no node tainted lost-quorum. Returns what is missing.
   */
  unconverged(workloads: string[]): string[] {
    const missing: string[] = [];
    for (const name of workloads) {
      if (this.#cluster.workloadNode(name) === undefined) {
        missing.push(`pod of ${name} not running`);
      }
    }
    for (const node of this.#cluster.server.peekAll("nodes")) {
      const taints = ((node as Any).spec?.taints ?? []) as Any[];
      if (taints.some((t) => t?.key === lostQuorumTaint)) {
        missing.push(`node ${node.metadata.name} still tainted ${lostQuorumTaint}`);
      }
    }
    return missing;
  }

  /** Records the liveness outcome: `missing` from {@linkcode unconverged} after the bound. */
  reportUnconverged(missing: string[], boundMs: number): void {
    for (const what of missing) {
      this.#add(what.startsWith("pod") ? "L1" : "L2", `${what} ${boundMs / 1000}s after healing`);
    }
  }

  /** Records a broken liveness rule found by the fault plan (the L1 fail-over bound). */
  report(rule: string, detail: string): void {
    this.#add(rule, detail);
  }

  /** How often agents switched a node's lost-quorum taint on or off. */
  taintChanges(node: string): number {
    return this.#taintChanges.get(node) ?? 0;
  }
}
