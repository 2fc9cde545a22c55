// What the agents leave alone when a node crashes, and what they fail over
// only when told to, in a whole simulated cluster with the real agent on
// every node: annotated, owner-less and hostPath pods, read-only consumers,
// volumes without a quorum policy, PVs without a claim; and DRBD connection
// names that are LINSTOR satellite pod names rather than node names.
//
// Kubernetes runs 5 times faster than real time here (DRBD notices a dead
// peer after 2.1 s); the agents run with a 1 s fail-over timeout and
// reconcile interval, since these scenarios are about what happens, not how
// fast. The attach-detach controller's periodic sync is 1 s, so a
// VolumeAttachment an agent deletes is noticed at once.

import assert from "node:assert/strict";
import { SimCluster, type SimClusterOptions } from "../sim/cluster.ts";
import { formatTimeline } from "../sim/timeline.ts";
import { type KubeObject, pathString } from "../sim/apiserver/objects.ts";
import type { RequestRecord } from "../sim/apiserver/mod.ts";
import {
  attachmentName,
  linstorDriver,
  podClaims,
  taintsOf,
} from "../sim/controllers/kube_util.ts";
import { claim, linstorPv } from "../sim/controllers/testing.ts";
import { metricSample } from "../agent/harness.ts";
import { waitFor } from "../helpers.ts";
import { ignoreFailOverAnnotation, lostQuorumTaintKey } from "../../lib/names.ts";

/** Fail-over timeout and reconcile interval of the agents, seconds. */
const agentPeriodSeconds = 1;
const fastAgents = [
  "--fail-over-timeout",
  `${agentPeriodSeconds}s`,
  "--reconcile-interval",
  `${agentPeriodSeconds}s`,
];

function start(options: SimClusterOptions = {}): Promise<SimCluster> {
  return SimCluster.start({
    scale: 5,
    constants: { reconcilerSyncDuration: 1_000 },
    agentArgs: fastAgents,
    ...options,
  });
}

/** A StatefulSet like `deployStatefulSet`'s, with extra pod volumes and annotations. */
function statefulSet(
  name: string,
  options: {
    volumes?: Record<string, unknown>[];
    claimTemplates?: boolean;
  },
): KubeObject {
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name, namespace: "default" },
    spec: {
      replicas: 1,
      serviceName: name,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [{ name: "app", image: "registry.example/app:1" }],
          volumes: options.volumes,
        },
      },
      volumeClaimTemplates: options.claimTemplates === false ? undefined : [{
        metadata: { name: "data" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          storageClassName: "linstor",
          resources: { requests: { storage: "1Gi" } },
        },
      }],
    },
  };
}

/** The running pod `name`: its node, uid, PV (= DRBD resource) and VolumeAttachment. */
async function runningPod(cluster: SimCluster, name: string) {
  const node = await cluster.waitForRunningPod(name);
  const pod = cluster.pod(name)!;
  const claimName = podClaims(pod)[0].claim;
  const pvc = cluster.server.get("persistentvolumeclaims", "default", claimName);
  const pv = pathString(pvc, "spec.volumeName");
  const attachment = attachmentOf(cluster, pv, node);
  assert.ok(attachment, `Expected a VolumeAttachment of ${pv} on ${node}, got none`);
  return { name, node, uid: pod.metadata.uid!, pv, attachment };
}

function attachmentOf(cluster: SimCluster, pv: string, node: string): KubeObject | undefined {
  return cluster.server.list("volumeattachments").find((va) =>
    pathString(va, "spec.source.persistentVolumeName") === pv &&
    pathString(va, "spec.nodeName") === node
  );
}

function hasLostQuorumTaint(cluster: SimCluster, node: string): boolean {
  const obj = cluster.server.get("nodes", undefined, node);
  return obj !== undefined && taintsOf(obj).some((t) => t.key === lostQuorumTaintKey);
}

function describe(requests: RequestRecord[]): string {
  return requests.map((r) => `${r.method} ${r.path} → ${r.status}`).join("\n") || "(none)";
}

/** Agent requests that delete or evict pod `name`. */
function podRemovals(cluster: SimCluster, name: string): RequestRecord[] {
  return cluster.server.writes().filter((r) =>
    r.resource === "pods" && r.name === name &&
    (r.method === "DELETE" || r.subresource === "eviction")
  );
}

/** Agent requests that delete VolumeAttachments. */
function detaches(cluster: SimCluster): RequestRecord[] {
  return cluster.server.writes().filter((r) =>
    r.method === "DELETE" && r.resource === "volumeattachments"
  );
}

async function metric(
  cluster: SimCluster,
  node: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const agent = cluster.agent(node);
  assert.ok(agent, `Expected an agent on ${node}, got none`);
  return await metricSample(agent, name, labels);
}

/**
 * Waits until the agents on the survivors had every chance to act on the
 * loss of `lost` for `resource`: each agent's decision cycles show its DRBD
 * connection to `lost` down and one of them may promote the resource (so
 * their fail-over timers run, started by a cycle that ended before); then
 * the fail-over timeout plus a reconcile interval passes, and every
 * survivor's agent completes two more decision cycles, so at least one whole
 * cycle of each starts after its fail-over was due.
 */
async function agentsHadTheirChance(
  cluster: SimCluster,
  { lost, resource }: { lost: string; resource: string },
): Promise<void> {
  const survivors = cluster.nodes.filter((n) => n !== lost);
  const connection = cluster.drbd.connectionName(lost);
  await waitFor(
    async () => {
      for (const node of survivors) {
        const connected = await metric(cluster, node, "drbd_connection_state", {
          name: resource,
          conn_name: connection,
          drbd_connection_state: "Connected",
        });
        if (connected !== 0) return false;
      }
      const mayPromote = await Promise.all(
        survivors.map((node) =>
          metric(cluster, node, "drbd_resource_maypromote", { name: resource })
        ),
      );
      return mayPromote.includes(1);
    },
    20_000,
    `the survivors' agents seeing ${connection} lost for ${resource}, one may promote`,
  );
  const dueAt = performance.now() + 2 * agentPeriodSeconds * 1000;
  await waitFor(
    () => performance.now() >= dueAt,
    2 * agentPeriodSeconds * 1000 + 5_000,
    "the fail-over timeout and a reconcile interval to pass",
  );
  const cycles = new Map<string, number>();
  for (const node of survivors) {
    cycles.set(node, (await metric(cluster, node, "ha_controller_loop_cycle_seconds_count")) ?? 0);
  }
  await waitFor(
    async () => {
      for (const node of survivors) {
        const count = await metric(cluster, node, "ha_controller_loop_cycle_seconds_count") ?? 0;
        if (count < cycles.get(node)! + 2) return false;
      }
      return true;
    },
    20_000,
    "two more complete decision cycles on every survivor",
  );
}

/** Waits for the lost-quorum taint on `node` (the agents judged the fail-over). */
function waitForLostQuorumTaint(cluster: SimCluster, node: string): Promise<void> {
  return waitFor(
    () => hasLostQuorumTaint(cluster, node),
    20_000,
    () =>
      `taint ${lostQuorumTaintKey} on ${node}; so far:\n` +
      formatTimeline(cluster.timeline.milestones()),
  );
}

/**
 * The agents judged a crash of a node whose pod is exempt: the node is
 * tainted, but the pod and its VolumeAttachment stay.
 */
async function assertLeftAlone(
  cluster: SimCluster,
  pod: { name: string; node: string; uid: string; pv: string; attachment: KubeObject },
): Promise<void> {
  await waitForLostQuorumTaint(cluster, pod.node);
  await agentsHadTheirChance(cluster, { lost: pod.node, resource: pod.pv });
  assert.deepEqual(podRemovals(cluster, pod.name), [], describe(cluster.server.writes()));
  assert.deepEqual(detaches(cluster), [], describe(cluster.server.writes()));
  const now = cluster.pod(pod.name);
  assert.equal(now?.metadata.uid, pod.uid);
  assert.equal(now?.metadata.deletionTimestamp, undefined);
  const attachment = attachmentOf(cluster, pod.pv, pod.node);
  assert.equal(attachment?.metadata.uid, pod.attachment.metadata.uid);
}

/** Nothing at all was written: no taint, no eviction, no deletion, no Event. */
/**
 * Crash the pod's node, let the agents have their chance, and show nothing
 * was written: no write at all, no taint, the pod and its attachment as before.
 */
async function assertCrashChangesNothing(
  cluster: SimCluster,
  pod: Awaited<ReturnType<typeof runningPod>>,
): Promise<void> {
  await cluster.crash(pod.node);
  await agentsHadTheirChance(cluster, { lost: pod.node, resource: pod.pv });
  assertNoWrites(cluster, pod.node);
  assert.equal(cluster.pod(pod.name)?.metadata.uid, pod.uid);
  assert.ok(cluster.server.get("volumeattachments", undefined, pod.attachment.metadata.name!));
  assert.deepEqual(cluster.controllers.errors, []);
}

function assertNoWrites(cluster: SimCluster, lost: string): void {
  assert.deepEqual(cluster.server.writes(), [], describe(cluster.server.writes()));
  assert.ok(!hasLostQuorumTaint(cluster, lost));
}

Deno.test("a pod with the ignore-fail-over annotation and its VolumeAttachment are left alone", async () => {
  const cluster = await start();
  try {
    cluster.deployStatefulSet("web", { annotations: { [ignoreFailOverAnnotation]: "true" } });
    const pod = await runningPod(cluster, "web-0");
    await cluster.crash(pod.node);
    await assertLeftAlone(cluster, pod);
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});

Deno.test("a pod without an owner, which nothing would recreate, is left alone", async () => {
  const cluster = await start();
  try {
    cluster.server.create(claim("solo-data"));
    cluster.server.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "solo", namespace: "default" },
      spec: {
        containers: [{ name: "app", image: "registry.example/app:1" }],
        volumes: [{ name: "data", persistentVolumeClaim: { claimName: "solo-data" } }],
      },
    });
    const pod = await runningPod(cluster, "solo");
    await cluster.crash(pod.node);
    await assertLeftAlone(cluster, pod);
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});

const hostPathVolume = { name: "cache", hostPath: { path: "/var/lib/web-cache" } };

Deno.test("a pod with a hostPath volume is exempt: its node-local data cannot move", async () => {
  const cluster = await start();
  try {
    cluster.server.create(statefulSet("web", { volumes: [hostPathVolume] }));
    const pod = await runningPod(cluster, "web-0");
    await cluster.crash(pod.node);
    await assertLeftAlone(cluster, pod);
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});

Deno.test("with --fail-over-unsafe-pods the hostPath pod is failed over to a survivor", async () => {
  const cluster = await start({ agentArgs: [...fastAgents, "--fail-over-unsafe-pods"] });
  try {
    cluster.server.create(statefulSet("web", { volumes: [hostPathVolume] }));
    const pod = await runningPod(cluster, "web-0");
    await cluster.crash(pod.node);
    const newNode = await cluster.waitForRunningPod("web-0", {
      notOn: pod.node,
      timeoutMs: 60_000,
    });
    assert.notEqual(cluster.pod("web-0")?.metadata.uid, pod.uid);
    assert.ok(hasLostQuorumTaint(cluster, pod.node));
    assert.ok(
      podRemovals(cluster, "web-0").some((r) => r.status >= 200 && r.status < 300),
      `Expected an agent to evict or delete web-0, got:\n${describe(cluster.server.writes())}`,
    );
    const vaName = pod.attachment.metadata.name!;
    assert.equal(cluster.server.get("volumeattachments", undefined, vaName), undefined);
    assert.ok(
      detaches(cluster).some((r) => r.name === vaName && r.status >= 200 && r.status < 300),
      `Expected an agent to delete ${vaName}, got:\n${describe(cluster.server.writes())}`,
    );
    console.log(`hostPath pod with --fail-over-unsafe-pods: running again on ${newNode}`);
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});

Deno.test("read-only consumers: nothing is failed over", async () => {
  const cluster = await start();
  try {
    cluster.server.create(claim("shared"));
    cluster.server.create(statefulSet("reader", {
      claimTemplates: false,
      volumes: [{ name: "data", persistentVolumeClaim: { claimName: "shared", readOnly: true } }],
    }));
    const pod = await runningPod(cluster, "reader-0");
    await assertCrashChangesNothing(cluster, pod);
  } finally {
    await cluster.stop();
  }
});

Deno.test("a volume without a DRBD quorum policy: nothing is failed over", async () => {
  const cluster = await start({ drbdConfig: { quorum: "off" } });
  try {
    cluster.deployStatefulSet("web");
    const pod = await runningPod(cluster, "web-0");
    assert.equal(cluster.drbd.view(pod.node, pod.pv)?.config?.quorum, "off");
    await assertCrashChangesNothing(cluster, pod);
  } finally {
    await cluster.stop();
  }
});

Deno.test("a PV without a claimRef, attached to the crashed node: nothing is failed over", async () => {
  const cluster = await start();
  try {
    // A LINSTOR volume attached by hand, with no claim: nothing says which pods use it.
    const pv = "pv-unclaimed";
    cluster.drbd.addResource(pv, { diskful: ["node-a", "node-b"], diskless: ["node-c"] });
    cluster.server.create(linstorPv(pv));
    const vaName = attachmentName({ driver: linstorDriver, volumeHandle: pv }, "node-a");
    cluster.server.create({
      apiVersion: "storage.k8s.io/v1",
      kind: "VolumeAttachment",
      metadata: { name: vaName },
      spec: { attacher: linstorDriver, nodeName: "node-a", source: { persistentVolumeName: pv } },
    });
    await waitFor(
      () =>
        pathString(
            cluster.server.get("volumeattachments", undefined, vaName),
            "status.attached",
          ) ===
          "true" && cluster.drbd.primaries(pv).join() === "node-a",
      10_000,
      `${pv} attached and Primary on node-a`,
    );
    const uid = cluster.server.get("volumeattachments", undefined, vaName)!.metadata.uid;
    await cluster.crash("node-a");
    await agentsHadTheirChance(cluster, { lost: "node-a", resource: pv });
    assertNoWrites(cluster, "node-a");
    assert.equal(cluster.server.get("volumeattachments", undefined, vaName)?.metadata.uid, uid);
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});

Deno.test("DRBD connections named after satellite pods: the crashed node behind one is failed over", async () => {
  const connectionNames = {
    "node-a": "linstor-satellite-7f9c2",
    "node-b": "linstor-satellite-d41e8",
    "node-c": "linstor-satellite-0b3a5",
  };
  const cluster = await start({ connectionNames });
  try {
    for (const [node, name] of Object.entries(connectionNames)) {
      cluster.server.create({
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name,
          namespace: "piraeus-datastore",
          labels: { "app.kubernetes.io/component": "linstor-satellite" },
        },
        spec: {
          nodeName: node,
          containers: [{ name: "linstor-satellite", image: "registry.example/satellite:1" }],
        },
      });
    }
    cluster.deployStatefulSet("web");
    const pod = await runningPod(cluster, "web-0");
    const survivor = cluster.nodes.find((n) => n !== pod.node)!;
    assert.ok(
      cluster.drbd.view(survivor, pod.pv)?.connections.some((c) =>
        c.name === connectionNames[pod.node as keyof typeof connectionNames]
      ),
      "Expected DRBD to name the connection after the satellite pod",
    );
    await cluster.crash(pod.node);
    const newNode = await cluster.waitForRunningPod("web-0", {
      notOn: pod.node,
      timeoutMs: 30_000,
    });
    assert.ok(hasLostQuorumTaint(cluster, pod.node));
    assert.ok(
      podRemovals(cluster, "web-0").some((r) => r.status >= 200 && r.status < 300),
      `Expected an agent to evict or delete web-0, got:\n${describe(cluster.server.writes())}`,
    );
    const vaName = pod.attachment.metadata.name!;
    assert.equal(cluster.server.get("volumeattachments", undefined, vaName), undefined);
    assert.ok(detaches(cluster).some((r) => r.name === vaName));
    // Nothing was written about a node named like a connection.
    assert.deepEqual(
      cluster.server.writes().filter((r) =>
        Object.values(connectionNames).some((name) => r.path.includes(`/nodes/${name}`))
      ),
      [],
    );
    console.log(`satellite connection names: web-0 running again on ${newNode}`);
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});
