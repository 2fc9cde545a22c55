/**
 * A whole simulated cluster: the local API server, Kubernetes controllers
 * (node lifecycle, kubelets, scheduler, StatefulSets, attach-detach, the
 * LINSTOR attacher), DRBD on every node with its own `drbdsetup`, and the
 * real ha-controller agent as a process per node.
 *
 * ```ts
 * const cluster = await SimCluster.start({ agents: true });
 * await cluster.deployStatefulSet("web");
 * const node = await cluster.waitForRunningPod("web-0");
 * cluster.crash(node);
 * ```
 *
 * Time: Kubernetes and DRBD run on one SimClock (`scale`); the agents run in
 * real time with their own flags.
 *
 * @module
 */

import { ApiServer, type KubeObject } from "./apiserver/mod.ts";
import { SimClock } from "./clock.ts";
import { DrbdCluster } from "./drbd/cluster.ts";
import type { FakeDialect } from "./drbd/fake_drbd.ts";
import {
  Controllers,
  type KubeConstants,
  linstorProvisioner,
  type Provisioner,
} from "./controllers/mod.ts";
import { type AgentProcess, spawnAgent, waitHealthy } from "./agent_process.ts";
import { Timeline } from "./timeline.ts";
import { statefulSet } from "./controllers/testing.ts";
import { waitFor } from "../helpers.ts";
import yaml from "js-yaml";

/** Options of {@linkcode SimCluster.start}. */
export interface SimClusterOptions {
  /** Worker nodes (default node-a, node-b, node-c). */
  nodes?: string[];
  /** Simulated ms per real ms for Kubernetes and DRBD (default 1). */
  scale?: number;
  /** Kubernetes constants to override (simulated ms). */
  constants?: Partial<KubeConstants>;
  /** Run the agent on every node (default true). */
  agents?: boolean;
  /** Extra flags for every agent. */
  agentArgs?: string[];
  /** drbd-utils dialect of every node's drbdsetup (default current). */
  dialect?: FakeDialect;
  /**
   * Where provisioned volumes get their replicas: diskful nodes and
   * diskless tiebreakers (default: the first two nodes diskful, the third
   * a tiebreaker).
   */
  replicas?: { diskful: string[]; diskless: string[] };
  /** Resource options of provisioned volumes (default: the recommended freeze profile). */
  drbdConfig?: Parameters<DrbdCluster["addResource"]>[1]["config"];
  /**
   * DRBD connection names (LINSTOR node names) by node, where they differ
   * from the Kubernetes node names (default: the node names).
   */
  connectionNames?: Record<string, string>;
  /**
   * Enforce RBAC in the API server from the start (default true). Unless
   * `agentKubeconfig` says otherwise, the agents then run as the project's
   * own ServiceAccount with the ClusterRole and Role from deploy/kustomize,
   * so every scenario also proves those rules are enough.
   */
  rbac?: boolean;
  /**
   * Makes the kubeconfig every agent uses, once the API server runs and
   * before any agent starts: for example a ServiceAccount's, after creating
   * its RBAC objects (default: the project's ServiceAccount with RBAC on,
   * the admin kubeconfig with RBAC off).
   */
  agentKubeconfig?: (server: ApiServer) => Promise<string>;
}

/** A running simulated cluster. */
export class SimCluster {
  /** The API server (kubectl: `--kubeconfig cluster.server.kubeconfigPath`). */
  readonly server: ApiServer;
  /** The cluster clock. */
  readonly clock: SimClock;
  /** DRBD on every node. */
  readonly drbd: DrbdCluster;
  /** The Kubernetes controllers and kubelets. */
  readonly controllers: Controllers;
  /** What a user would notice, from the start. */
  readonly timeline: Timeline;
  /** Worker nodes. */
  readonly nodes: string[];
  readonly #agents = new Map<string, AgentProcess>();
  readonly #agentArgs: string[];
  readonly #agentKubeconfig: string;
  readonly #projectRbac: boolean;

  private constructor(parts: {
    server: ApiServer;
    clock: SimClock;
    drbd: DrbdCluster;
    controllers: Controllers;
    nodes: string[];
    agentArgs: string[];
    agentKubeconfig: string;
    projectRbac: boolean;
  }) {
    this.server = parts.server;
    this.clock = parts.clock;
    this.drbd = parts.drbd;
    this.controllers = parts.controllers;
    this.nodes = parts.nodes;
    this.#agentArgs = parts.agentArgs;
    this.#agentKubeconfig = parts.agentKubeconfig;
    this.#projectRbac = parts.projectRbac;
    this.timeline = new Timeline(parts.server, parts.clock);
  }

  /** Start everything; with agents, wait until every agent is healthy. */
  static async start(options: SimClusterOptions = {}): Promise<SimCluster> {
    const nodes = options.nodes ?? ["node-a", "node-b", "node-c"];
    const clock = new SimClock({ scale: options.scale ?? 1 });
    const server = await ApiServer.start({
      tls: true,
      now: () => clock.date(),
      rbac: options.rbac ?? true,
    });
    const drbd = await DrbdCluster.create({
      nodes,
      clock,
      dialect: options.dialect,
      connectionNames: options.connectionNames,
    });
    const provisioner = drbdProvisioner(
      drbd,
      options.replicas ?? { diskful: nodes.slice(0, 2), diskless: nodes.slice(2, 3) },
      options.drbdConfig,
    );
    const controllers = new Controllers({
      clock,
      server,
      drbd,
      nodes,
      constants: options.constants,
      provisioner,
    });
    controllers.start();
    const cluster = new SimCluster({
      server,
      clock,
      drbd,
      controllers,
      nodes,
      agentArgs: options.agentArgs ?? [],
      agentKubeconfig: options.agentKubeconfig
        ? await options.agentKubeconfig(server)
        : (options.rbac ?? true)
        ? await projectServiceAccount(server)
        : server.kubeconfigPath,
      projectRbac: options.agentKubeconfig === undefined && (options.rbac ?? true),
    });
    if (options.agents ?? true) {
      await Promise.all(nodes.map((node) => cluster.startAgent(node)));
      await Promise.all([...cluster.#agents.values()].map((agent) => waitHealthy(agent)));
    }
    return cluster;
  }

  /** The agent process on `node`, if one runs. */
  agent(node: string): AgentProcess | undefined {
    return this.#agents.get(node);
  }

  /** Start (or restart) the agent on `node`. */
  async startAgent(node: string, args: string[] = []): Promise<AgentProcess> {
    await this.#agents.get(node)?.stop();
    const agent = await spawnAgent({
      node,
      apiUrl: this.server.url,
      kubeconfig: this.#agentKubeconfig,
      env: this.drbd.env(node),
      args: [...this.#agentArgs, ...args],
    });
    this.#agents.set(node, agent);
    return agent;
  }

  /** Kill the agent on `node` at once (SIGKILL). */
  async killAgent(node: string): Promise<void> {
    await this.#agents.get(node)?.kill();
    this.#agents.delete(node);
  }

  /** Create a StatefulSet with one `data` claim per pod on LINSTOR storage. */
  deployStatefulSet(
    name: string,
    options: { replicas?: number; annotations?: Record<string, string> } = {},
  ): KubeObject {
    return this.server.create(statefulSet(name, options));
  }

  /** The pod `name` (namespace default), if it exists. */
  pod(name: string, namespace = "default"): KubeObject | undefined {
    return this.server.get("pods", namespace, name);
  }

  /** Wait until pod `name` is Running and Ready, not terminating; returns its node. */
  async waitForRunningPod(
    name: string,
    options: { timeoutMs?: number; notOn?: string; namespace?: string } = {},
  ): Promise<string> {
    let node = "";
    await waitFor(
      () => {
        const pod = this.pod(name, options.namespace);
        // deno-lint-ignore no-explicit-any
        const p = pod as any;
        if (!p || p.metadata.deletionTimestamp || p.status?.phase !== "Running") return false;
        if (options.notOn !== undefined && p.spec.nodeName === options.notOn) return false;
        const ready = (p.status.conditions ?? []).some((c: { type: string; status: string }) =>
          c.type === "Ready" && c.status === "True"
        );
        node = p.spec.nodeName;
        return ready;
      },
      options.timeoutMs ?? 30_000,
      `pod ${name} Running and Ready${
        options.notOn ? ` on a node other than ${options.notOn}` : ""
      }`,
    );
    return node;
  }

  /**
   * A node dies without warning: its kubelet stops (no heartbeats, no
   * confirmations), DRBD peers lose it after their detection delay, and its
   * agent is killed.
   */
  async crash(node: string): Promise<void> {
    this.timeline.mark(`node ${node} crashed`);
    this.controllers.kubelet(node).crash();
    this.drbd.crash(node);
    await this.killAgent(node);
  }

  /**
   * A crashed node boots again (DRBD and kubelet come back; the agent is
   * restarted). `drbdConfigured: false`: its DRBD resources stay
   * unconfigured (a slow LINSTOR satellite) until `drbd.configure(node)`.
   */
  async restore(
    node: string,
    options: { agent?: boolean; drbdConfigured?: boolean } = {},
  ): Promise<void> {
    this.timeline.mark(`node ${node} restored`);
    this.drbd.restore(node, { configured: options.drbdConfigured });
    this.controllers.kubelet(node).restore({ rebooted: true });
    if (options.agent ?? true) await this.startAgent(node);
  }

  /**
   * Stop agents, controllers, DRBD and the API server. When the agents ran
   * with the project's own RBAC rules, any request those rules refused is an
   * error: the deploy/ manifests would break that scenario in a real cluster.
   */
  async stop(): Promise<void> {
    const refused = this.#projectRbac ? this.server.forbidden() : [];
    this.timeline.stop();
    await Promise.all([...this.#agents.values()].map((agent) => agent.stop()));
    this.#agents.clear();
    this.controllers.stop();
    await this.drbd.stop();
    this.clock.stop();
    await this.server.close();
    if (refused.length > 0) {
      throw new Error(
        `The project's RBAC rules refused agent requests: ${
          refused.map((r) => `${r.method} ${r.path}: ${r.denied}`).join("; ")
        }`,
      );
    }
  }
}

/**
 * LINSTOR's provisioning: every new PV of the `linstor` class is also a DRBD
 * resource with these replicas.
 */
export function drbdProvisioner(
  drbd: DrbdCluster,
  replicas: { diskful: string[]; diskless: string[] },
  config?: SimClusterOptions["drbdConfig"],
): Provisioner {
  // The simulated attacher (controllers/csi_attacher.ts) can attach only
  // where a replica exists, so the PVs say so in their node affinity, as
  // linstor-csi does with allowRemoteVolumeAccess off; a real LINSTOR that
  // allows remote access would add a diskless replica on any other node.
  const base = linstorProvisioner({ nodes: [...replicas.diskful, ...replicas.diskless] });
  return (claim) => {
    const pv = base(claim);
    if (pv?.metadata.name) drbd.addResource(pv.metadata.name, { ...replicas, config });
    return pv;
  };
}

const kustomizeDir = new URL("../../deploy/kustomize/", import.meta.url);

/**
 * Create the project's Namespace, ServiceAccount and RBAC objects from
 * deploy/kustomize (plain YAML, no kustomize needed) and return a kubeconfig
 * that authenticates as that ServiceAccount.
 */
export async function projectServiceAccount(server: ApiServer): Promise<string> {
  const objects: KubeObject[] = [];
  for (const file of ["namespace.yaml", "service_account.yaml", "rbac.yaml"]) {
    const text = await Deno.readTextFile(new URL(file, kustomizeDir));
    for (const doc of yaml.loadAll(text)) if (doc) objects.push(doc as KubeObject);
  }
  for (const obj of objects) server.create(obj);
  const account = objects.find((o) => o.kind === "ServiceAccount");
  if (!account?.metadata.namespace) {
    throw new Error(
      "Expected a namespaced ServiceAccount in deploy/kustomize/service_account.yaml",
    );
  }
  return await server.kubeconfigFor(account.metadata.namespace, account.metadata.name!);
}
