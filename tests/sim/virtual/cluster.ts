/**
 * The deterministic simulation: a whole cluster in one process on one
 * virtual clock. The API server answers in process, every node's drbdsetup
 * answers from memory, the Kubernetes controllers and kubelets are the
 * simulator's, and every node runs the real agent ({@linkcode VirtualAgent}).
 * A seed fixes every random choice (UIDs, jitter, fault draws), and time
 * moves only when everything has settled, so the same seed gives the same
 * run, event for event.
 *
 * ```ts
 * const cluster = await VirtualCluster.start({ seed: 7 });
 * cluster.deployStatefulSet("web");
 * await cluster.runUntil(() => cluster.runningPod("web-0") !== undefined, 120_000);
 * cluster.crash(cluster.runningPod("web-0")!);
 * await cluster.run(60_000);
 * await cluster.stop();
 * ```
 *
 * @module
 */

import { ApiServer, type KubeObject } from "../apiserver/mod.ts";
import { SimClock } from "../clock.ts";
import { DrbdCluster } from "../drbd/cluster.ts";
import { Controllers, type KubeConstants } from "../controllers/mod.ts";
import { drbdProvisioner, projectServiceAccount } from "../cluster.ts";
import { claim, deployment, statefulSet } from "../controllers/testing.ts";
import { Random } from "../random.ts";
import { type AgentLogLine, VirtualAgent, type VirtualAgentOptions } from "./agent.ts";

/** Options of {@linkcode VirtualCluster.start}. */
export interface VirtualClusterOptions {
  /** Fixes every random choice. */
  seed: number;
  /** Worker nodes (default node-a, node-b, node-c). */
  nodes?: string[];
  /** Replicas of provisioned volumes (default: first two diskful, the third a tiebreaker). */
  replicas?: { diskful: string[]; diskless: string[] };
  /** Kubernetes constants to override (simulated ms). */
  constants?: Partial<KubeConstants>;
  /** Flags of every agent. */
  agentArgs?: string[];
  /** Start an agent on every node (default true). */
  agents?: boolean;
  /** Receives agent log lines (default: kept per agent). */
  onAgentLog?: (line: AgentLogLine) => void;
  /** Sees every agent request as it reaches the API server. */
  onAgentRequest?: VirtualAgentOptions["onRequest"];
}

/** A running deterministic simulation. */
export class VirtualCluster {
  /** The virtual clock. */
  readonly clock: SimClock;
  /** The in-process API server. */
  readonly server: ApiServer;
  /** DRBD on every node. */
  readonly drbd: DrbdCluster;
  /** Controllers and kubelets. */
  readonly controllers: Controllers;
  /** Worker nodes. */
  readonly nodes: string[];
  /** The seed. */
  readonly seed: number;
  readonly #agents = new Map<string, VirtualAgent>();
  readonly #workloads = new Map<string, "StatefulSet" | "Deployment">();

  private constructor(parts: {
    clock: SimClock;
    server: ApiServer;
    drbd: DrbdCluster;
    controllers: Controllers;
    nodes: string[];
    seed: number;
  }) {
    this.clock = parts.clock;
    this.server = parts.server;
    this.drbd = parts.drbd;
    this.controllers = parts.controllers;
    this.nodes = parts.nodes;
    this.seed = parts.seed;
  }

  /** Builds the cluster at virtual time 0 and starts every component. */
  static async start(options: VirtualClusterOptions): Promise<VirtualCluster> {
    const nodes = options.nodes ?? ["node-a", "node-b", "node-c"];
    const random = new Random(options.seed);
    const clock = new SimClock({ virtual: true });
    const apiRandom = random.fork("apiserver");
    const server = await ApiServer.inProcess({
      now: () => clock.date(),
      timers: clock,
      random: () => apiRandom.next(),
      faultSeed: random.fork("faults").int(1, 2 ** 31),
      rbac: true,
    });
    // The agents run as the project's ServiceAccount with deploy/kustomize's
    // RBAC rules, as in a real cluster.
    const kubeconfig = await projectServiceAccount(server);
    const drbd = await DrbdCluster.create({ nodes, clock, inProcess: true });
    const controllers = new Controllers({
      clock,
      server,
      drbd,
      nodes,
      constants: options.constants,
      provisioner: drbdProvisioner(
        drbd,
        options.replicas ?? { diskful: nodes.slice(0, 2), diskless: nodes.slice(2, 3) },
      ),
    });
    const cluster = new VirtualCluster({
      clock,
      server,
      drbd,
      controllers,
      nodes,
      seed: options.seed,
    });
    controllers.start();
    for (const node of nodes) {
      cluster.#agents.set(
        node,
        new VirtualAgent({
          node,
          clock,
          server,
          kubeconfig,
          drbd: drbd.fake(node),
          random: random.fork(`agent ${node}`),
          args: options.agentArgs,
          onLog: options.onAgentLog,
          onRequest: options.onAgentRequest,
        }),
      );
    }
    if (options.agents ?? true) { for (const agent of cluster.#agents.values()) agent.start(); }
    return cluster;
  }

  /** The agent of `node`. */
  agent(node: string): VirtualAgent {
    const agent = this.#agents.get(node);
    if (agent === undefined) throw new Error(`Expected a node of the cluster, got ${node}`);
    return agent;
  }

  /** Lets `ms` of simulated time pass. */
  async run(ms: number): Promise<void> {
    await this.clock.run(this.clock.now() + ms);
  }

  /**
   * Lets time pass until `condition` holds (checked after every timer) or
   * `limitMs` passed; returns whether it held.
   */
  async runUntil(condition: () => boolean, limitMs: number): Promise<boolean> {
    await this.clock.run(this.clock.now() + limitMs, condition);
    return condition();
  }

  /** Creates a StatefulSet with one `data` claim per pod on LINSTOR storage. */
  deployStatefulSet(name: string, options: { replicas?: number } = {}): KubeObject {
    this.#workloads.set(name, "StatefulSet");
    return this.server.create(statefulSet(name, options));
  }

  /** Creates a one-pod Deployment using the claim `data-<name>` on LINSTOR storage. */
  deployDeployment(name: string): KubeObject {
    this.#workloads.set(name, "Deployment");
    this.server.create(claim(`data-${name}`));
    return this.server.create(deployment(name, { claim: `data-${name}` }));
  }

  /**
   * The node where a pod of workload `name` (made by {@linkcode deployStatefulSet}
   * or {@linkcode deployDeployment}) runs Ready and is not terminating.
   */
  workloadNode(name: string): string | undefined {
    const kind = this.#workloads.get(name);
    if (kind === undefined) throw new Error(`Expected a deployed workload, got ${name}`);
    if (kind === "StatefulSet") return this.runningPod(`${name}-0`);
    for (const pod of this.server.peekAll("pods", "default")) {
      if (pod.metadata.labels?.app !== name) continue;
      const node = this.runningPod(pod.metadata.name!);
      if (node !== undefined) return node;
    }
    return undefined;
  }

  /** The node where pod `name` runs Ready and is not terminating, or undefined. */
  runningPod(name: string, namespace = "default"): string | undefined {
    // deno-lint-ignore no-explicit-any
    const p = this.server.peek("pods", namespace, name) as any;
    if (!p || p.metadata.deletionTimestamp || p.status?.phase !== "Running") return undefined;
    const ready = (p.status.conditions ?? []).some((c: { type: string; status: string }) =>
      c.type === "Ready" && c.status === "True"
    );
    return ready ? p.spec.nodeName : undefined;
  }

  /** A node dies: kubelet, DRBD and agent stop at once (peers notice DRBD after ping-timeout). */
  crash(node: string): void {
    this.controllers.kubelet(node).crash();
    this.drbd.crash(node);
    this.agent(node).kill();
  }

  /** A crashed node boots again, its agent too. */
  restore(node: string): void {
    this.drbd.restore(node);
    this.controllers.kubelet(node).restore({ rebooted: true });
    this.agent(node).start();
  }

  /** Requests the project's RBAC rules refused (they would break a real cluster). */
  refused(): string[] {
    return this.server.forbidden().map((r) => `${r.method} ${r.path}: ${r.denied}`);
  }

  /** Stops the agents (letting time run for their shutdown), then everything else. */
  async stop(): Promise<void> {
    const stopping = [...this.#agents.values()].map((agent) => agent.stop());
    // The agents finish their cycle and close their watches on the clock.
    let done = false;
    const all = Promise.all(stopping).finally(() => done = true);
    await this.clock.run(this.clock.now() + 120_000, () => done);
    this.controllers.stop();
    await this.drbd.stop();
    this.clock.stop();
    await this.server.close();
    await all;
  }
}
