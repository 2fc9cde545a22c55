// A small cluster for agent tests: the local API server, a fake drbdsetup,
// and the real agent started as its own process with the production
// permission flags (only the cluster address and kubeconfig path differ).

import { ApiServer, type KubeObject } from "../sim/apiserver/mod.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { type ProgramRun, runProgram } from "../tools/mod.ts";
import type { DrbdConnection, DrbdResource } from "../../lib/drbd/model.ts";
import {
  type AgentProcess,
  freePort,
  productionFlags,
  spawnAgent,
  testFlags,
} from "../sim/agent_process.ts";

export {
  type AgentProcess,
  freePort,
  productionFlags,
  testFlags,
  waitHealthy,
} from "../sim/agent_process.ts";

const repo = new URL("../../", import.meta.url).pathname;

/** A peer connection as DRBD shows it. */
export function peer(
  name: string,
  id: number,
  state: { connected: boolean; role?: "Primary" | "Secondary"; diskless?: boolean },
): DrbdConnection {
  return {
    peerNodeId: id,
    name,
    connectionState: state.connected ? "Connected" : "Connecting",
    peerRole: state.connected ? state.role ?? "Secondary" : "Unknown",
    peerDevices: [{
      volume: 0,
      replicationState: state.connected ? "Established" : "Off",
      peerDiskState: state.connected ? (state.diskless ? "Diskless" : "UpToDate") : "DUnknown",
      peerClient: state.diskless === true,
    }],
  };
}

/** Resource `pvc-1` on node-a: a Secondary replica, node-b the Primary, node-c a diskless tiebreaker. */
export function resourceOnNodeA(overrides: Partial<DrbdResource> = {}): DrbdResource {
  return {
    name: "pvc-1",
    role: "Secondary",
    suspended: { user: false, noData: false, fencing: false, quorum: false },
    forceIoFailures: false,
    mayPromote: false,
    promotionScore: 10102,
    devices: [{
      volume: 0,
      minor: 1000,
      diskState: "UpToDate",
      client: false,
      open: false,
      quorum: true,
    }],
    connections: [
      peer("node-b", 1, { connected: true, role: "Primary" }),
      peer("node-c", 2, { connected: true, diskless: true }),
    ],
    config: {
      quorum: "majority",
      onNoQuorum: "suspend-io",
      onNoDataAccessible: "suspend-io",
      onSuspendedPrimaryOutdated: "force-secondary",
    },
    ...overrides,
  };
}

/** The same resource after node-b crashed: its connection is gone and node-a may promote. */
export function resourceAfterNodeBCrash(): DrbdResource {
  return resourceOnNodeA({
    mayPromote: true,
    promotionScore: 10101,
    connections: [
      peer("node-b", 1, { connected: false }),
      peer("node-c", 2, { connected: true, diskless: true }),
    ],
  });
}

function nodeObject(name: string): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: { "kubernetes.io/hostname": name } },
    spec: {},
    status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }] },
  };
}

/** Objects of the seed's story: a StatefulSet pod on node-b using PV pvc-1. */
export function seedCluster(server: ApiServer): { podUid: string; vaUid: string } {
  for (const n of ["node-a", "node-b", "node-c"]) server.create(nodeObject(n));
  const pvc = server.create({
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: "data-web-0", namespace: "default" },
    spec: {
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: "1Gi" } },
      volumeName: "pvc-1",
    },
  });
  server.create({
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name: "pvc-1" },
    spec: {
      accessModes: ["ReadWriteOnce"],
      capacity: { storage: "1Gi" },
      csi: { driver: "linstor.csi.linbit.com", volumeHandle: "pvc-1" },
      claimRef: {
        kind: "PersistentVolumeClaim",
        apiVersion: "v1",
        namespace: "default",
        name: "data-web-0",
        uid: pvc.metadata.uid,
      },
    },
    status: { phase: "Bound" },
  });
  const pod = server.create({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "web-0",
      namespace: "default",
      ownerReferences: [{
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        name: "web",
        uid: "sts-uid",
        controller: true,
      }],
    },
    spec: {
      nodeName: "node-b",
      containers: [{ name: "web", image: "nginx" }],
      volumes: [{ name: "data", persistentVolumeClaim: { claimName: "data-web-0" } }],
    },
    status: { phase: "Running" },
  });
  const va = server.create({
    apiVersion: "storage.k8s.io/v1",
    kind: "VolumeAttachment",
    metadata: { name: "csi-pvc-1-node-b" },
    spec: {
      attacher: "linstor.csi.linbit.com",
      nodeName: "node-b",
      source: { persistentVolumeName: "pvc-1" },
    },
    status: { attached: true },
  });
  return { podUid: pod.metadata.uid!, vaUid: va.metadata.uid! };
}

/** Mark a node NotReady as the node lifecycle controller does after missed heartbeats. */
export function markNotReady(server: ApiServer, name: string): void {
  const node = server.get("nodes", undefined, name)!;
  server.update({
    ...node,
    status: {
      conditions: [{
        type: "Ready",
        status: "Unknown",
        reason: "NodeStatusUnknown",
        message: "Kubelet stopped posting node status.",
      }],
    },
  });
}

/** Start the agent on node-a of the small test cluster, with `args`. */
export function startAgent(
  server: ApiServer,
  drbd: FakeDrbd,
  args: string[],
): Promise<AgentProcess> {
  return spawnAgent({
    node: "node-a",
    apiUrl: server.url,
    kubeconfig: server.kubeconfigPath,
    env: drbd.env,
    args,
  });
}

const serviceAccountMount = "/run/secrets/kubernetes.io/serviceaccount";

/**
 * Why the agent cannot be run in-cluster here ({@linkcode startInClusterAgent}),
 * or null when it can.
 */
export function inClusterUnavailable(): string | null {
  if (Deno.build.os !== "linux") return `needs Linux, this is ${Deno.build.os}`;
  if (Deno.uid() !== 0) return "a private mount namespace for the service account needs root";
  const probe = new Deno.Command("unshare", {
    args: ["--mount", "--propagation", "private", "--", "/bin/true"],
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  if (!probe.success) {
    return `unshare --mount is not permitted: ${new TextDecoder().decode(probe.stderr).trim()}`;
  }
  return null;
}

/**
 * The shell that runs `"$@"` in the private mount namespace with `$1` (the
 * service-account directory) mounted where the kubelet puts it. `$2` is an
 * empty directory that keeps the host's /run reachable.
 */
const namespaceScript = [
  "set -e",
  'sa="$1"; hostrun="$2"; shift 2',
  'mount --rbind /run "$hostrun"',
  "mount -t tmpfs -o mode=0755 tmpfs /run",
  'for entry in "$hostrun"/* "$hostrun"/.[!.]*; do',
  '  [ -e "$entry" ] || [ -L "$entry" ] || continue',
  '  [ "${entry##*/}" = secrets ] && continue',
  '  ln -s "$entry" "/run/${entry##*/}"',
  "done",
  `mkdir -p ${serviceAccountMount}`,
  `mount --bind "$sa" ${serviceAccountMount}`,
  `mount -o remount,bind,ro ${serviceAccountMount}`,
  'exec "$@"',
].join("\n");

/**
 * Start the agent on node-a with the in-cluster configuration, as the
 * DaemonSet runs it: the production permission flags (only `--allow-net`
 * narrowed to this server and the health port), no kubeconfig, the
 * service-account token (the account of deploy/) and CA read-only at
 * /var/run/secrets/kubernetes.io/serviceaccount, and the address in
 * KUBERNETES_SERVICE_HOST/PORT. The service-account directory is visible to
 * the agent alone: it runs in a private mount namespace (which needs root,
 * see {@linkcode inClusterUnavailable}) where /run (/var/run links to it) is
 * a fresh tmpfs holding the account's directory, a read-only bind mount as
 * the kubelet mounts its projected volume, and a symlink to every other
 * entry of the host's /run. Stopping or killing the agent removes the
 * directory.
 */
export async function startInClusterAgent(
  server: ApiServer,
  drbd: FakeDrbd,
  args: string[],
): Promise<AgentProcess> {
  const work = await Deno.makeTempDir({ prefix: "ha-in-cluster-" });
  const sa = `${work}/serviceaccount`;
  await Deno.mkdir(sa);
  await Deno.mkdir(`${work}/hostrun`);
  await Deno.writeTextFile(`${sa}/token`, server.serviceAccountToken("ha", "ha-controller"));
  await Deno.writeTextFile(`${sa}/ca.crt`, server.caPem!);
  await Deno.writeTextFile(`${sa}/namespace`, "ha");
  const api = new URL(server.url);
  const agent = await spawnAgent({
    node: "node-a",
    apiUrl: server.url,
    kubeconfig: undefined,
    env: {
      ...drbd.env,
      KUBERNETES_SERVICE_HOST: api.hostname,
      KUBERNETES_SERVICE_PORT: api.port,
    },
    args,
    wrapper: [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "--",
      "/bin/sh",
      "-c",
      namespaceScript,
      "sh",
      sa,
      `${work}/hostrun`,
    ],
  });
  const removeWork = () => Deno.remove(work, { recursive: true }).catch(() => {});
  return {
    ...agent,
    stop: async () => {
      const code = await agent.stop();
      await removeWork();
      return code;
    },
    kill: async () => {
      await agent.kill();
      await removeWork();
    },
  };
}

/** Read one metric value (first series matching `prefix`), or undefined. */
export async function metricValue(
  agent: AgentProcess,
  prefix: string,
): Promise<number | undefined> {
  const text = await (await fetch(`${agent.healthUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/**
 * Runs `main.ts --version` once, so Deno has transpiled and cached every
 * module of the agent before an agent is measured: the first `deno run`
 * after a change transpiles the TypeScript in the agent's own process, which
 * left it ~9 MiB larger than every later start (a compiled binary never
 * does that).
 *
 * @throws {Error} when it does not exit 0.
 */
export async function warmModuleCache(): Promise<void> {
  const run = await runMain(["--version"]);
  if (run.code !== 0) {
    throw new Error(`main.ts --version exited ${run.code}: ${run.stderr.trim()}`);
  }
}

/** What a finished `main.ts` process printed and how it exited. */
export type CommandResult = ProgramRun;

/**
 * Run `main.ts` to completion (`status`, `--help`, ...) with the production
 * permission flags; with `server`, network access to it and read access to
 * its kubeconfig instead (as for `startAgent`); with `drbd`, the fake
 * drbdsetup on PATH.
 */
export async function runMain(
  args: string[],
  cluster: { server?: ApiServer; drbd?: FakeDrbd; healthHostPort?: string } = {},
): Promise<CommandResult> {
  let flags = await productionFlags();
  if (cluster.server !== undefined) {
    const api = new URL(cluster.server.url);
    flags = await testFlags(
      `${api.hostname}:${api.port}`,
      cluster.healthHostPort ?? `127.0.0.1:${freePort()}`,
      cluster.server.kubeconfigPath,
    );
  }
  return await runProgram(Deno.execPath(), ["run", ...flags, `${repo}main.ts`, ...args], {
    cwd: repo,
    env: cluster.drbd?.env,
  });
}

/** The agent's /healthz answer. */
export async function healthz(agent: AgentProcess): Promise<{ status: number; body: string }> {
  const response = await fetch(`${agent.healthUrl}/healthz`);
  return { status: response.status, body: await response.text() };
}

/**
 * The value of the metric `name` whose labels include all of `labels` (any
 * order), or undefined when /metrics has no such series.
 */
export async function metricSample(
  agent: AgentProcess,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const text = await (await fetch(`${agent.healthUrl}/metrics`)).text();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const have = match[2] ?? "";
    if (wanted.every((pair) => have.split(",").includes(pair))) return Number(match[3]);
  }
  return undefined;
}
