// The seed's story end to end: a node running a StatefulSet pod on a DRBD
// volume (two diskful replicas and a diskless tiebreaker) crashes. With the
// agents the pod runs again on a survivor within seconds; without them the
// stock Kubernetes timeline applies: Terminating for ever until an operator
// force-deletes the pod, then a Multi-Attach error until the 6 minute force
// detach. Both recovery times are printed for the closing note.

import assert from "node:assert/strict";
import { SimCluster } from "../sim/cluster.ts";
import { formatTimeline, type Milestone } from "../sim/timeline.ts";
import { type KubeObject, pathString } from "../sim/apiserver/objects.ts";
import type { RequestRecord } from "../sim/apiserver/mod.ts";
import { simulatedTime } from "../sim/controllers/testing.ts";
import { podClaims, taintsOf } from "../sim/controllers/kube_util.ts";
import { deadline, waitFor } from "../helpers.ts";
import {
  eventReason,
  lostQuorumTaintKey,
  reportingController,
  taintEffect,
} from "../../lib/names.ts";
import { defaultOptions } from "../../lib/options.ts";
import { failOverStaggerMs } from "../../lib/decide/protection.ts";
import { type AgentProcess, metricValue } from "../agent/harness.ts";

/** The pod `web-0` with its node, uid and the VolumeAttachment of its volume there. */
interface Placement {
  node: string;
  podUid: string;
  pv: string;
  attachment: KubeObject;
}

function placement(cluster: SimCluster, podName: string): Placement {
  const pod = cluster.pod(podName);
  assert.ok(pod, `Expected pod ${podName} to exist, got none`);
  const node = pathString(pod, "spec.nodeName");
  const claim = podClaims(pod)[0]?.claim;
  const pvc = cluster.server.get("persistentvolumeclaims", "default", claim);
  const pv = pathString(pvc, "spec.volumeName");
  const attachment = cluster.server.list("volumeattachments").find((va) =>
    pathString(va, "spec.source.persistentVolumeName") === pv &&
    pathString(va, "spec.nodeName") === node
  );
  assert.ok(attachment, `Expected a VolumeAttachment of ${pv} on ${node}, got none`);
  return { node, podUid: pod.metadata.uid!, pv, attachment };
}

/** Core Events with `reason` about the object named `name`. */
function events(cluster: SimCluster, reason: string, name: string): KubeObject[] {
  return cluster.server.list("events").filter((e) =>
    pathString(e, "reason") === reason && pathString(e, "involvedObject.name") === name
  );
}

/** The first milestone after `from` whose text matches. */
function milestoneAfter(cluster: SimCluster, from: Milestone, pattern: RegExp): Milestone {
  const found = cluster.timeline.milestones().find((m) => m.at >= from.at && pattern.test(m.what));
  assert.ok(
    found,
    `Expected a milestone matching ${pattern} after "${from.what}", got:\n` +
      formatTimeline(cluster.timeline.milestones()),
  );
  return found;
}

function waitForMilestone(cluster: SimCluster, pattern: RegExp, timeoutMs: number) {
  return waitFor(
    () => cluster.timeline.find(pattern) !== undefined,
    timeoutMs,
    () =>
      `a milestone matching ${pattern}; so far:\n${formatTimeline(cluster.timeline.milestones())}`,
  );
}

/** Wait for `count` decision cycles of `agent` that end after `until` (performance.now()). */
async function cyclesAfter(agent: AgentProcess, count: number, until: number): Promise<void> {
  let start: number | undefined;
  await waitFor(
    async () => {
      if (performance.now() < until) return false;
      const now = (await metricValue(agent, "ha_controller_loop_cycle_seconds_count")) ?? 0;
      start ??= now;
      return now >= start + count;
    },
    30_000,
    () => `${count} more decision cycles (stderr:\n${agent.stderr()})`,
  );
}

function fromAgents(request: RequestRecord): boolean {
  return request.user?.startsWith("system:serviceaccount:") ?? false;
}

function bodyOf(request: RequestRecord): Record<string, unknown> {
  return (request.body ?? {}) as Record<string, unknown>;
}

function succeeded(request: RequestRecord): boolean {
  return request.status >= 200 && request.status < 300;
}

Deno.test("with agents, a crashed node's StatefulSet pod runs on a survivor within seconds", async () => {
  // The attach-detach controller learns of a VolumeAttachment deleted by
  // someone else only at its periodic sync (1 min by default); recovery is
  // measured with a 1 s sync, as a cluster tuned for fast fail-over runs.
  const cluster = await SimCluster.start({ constants: { reconcilerSyncDuration: 1_000 } });
  try {
    cluster.deployStatefulSet("web");
    await cluster.waitForRunningPod("web-0");
    const before = placement(cluster, "web-0");
    const survivors = cluster.nodes.filter((n) => n !== before.node);
    // Two diskful replicas and a diskless tiebreaker, as the seed's story has it.
    const view = cluster.drbd.view(before.node, before.pv);
    assert.ok(view, `Expected DRBD resource ${before.pv} on ${before.node}, got none`);
    assert.deepEqual(
      view.connections.map((c) => c.peerDevices[0].peerClient).sort(),
      [false, true],
    );
    assert.equal(view.role, "Primary");

    await cluster.crash(before.node);
    const crashed = cluster.timeline.find(/crashed/)!;
    const newNode = await cluster.waitForRunningPod("web-0", {
      notOn: before.node,
      timeoutMs: 60_000,
    });

    assert.ok(survivors.includes(newNode), `Expected a survivor, got ${newNode}`);
    const replacement = cluster.pod("web-0")!;
    assert.notEqual(replacement.metadata.uid, before.podUid);

    // The crashed node is tainted so nothing new is scheduled there.
    const node = cluster.server.get("nodes", undefined, before.node)!;
    const taints = taintsOf(node);
    assert.ok(
      taints.some((t) => t.key === lostQuorumTaintKey && t.effect === taintEffect),
      `Expected taint ${lostQuorumTaintKey}:${taintEffect} on ${before.node}, got ` +
        JSON.stringify(taints),
    );

    // The old pod is gone, removed by an agent with its uid as precondition.
    assert.ok(
      !cluster.server.list("pods").some((p) => p.metadata.uid === before.podUid),
      "Expected the old pod to be gone",
    );
    const podRemovals = cluster.server.requests.filter((r) =>
      succeeded(r) && r.resource === "pods" && r.name === "web-0" &&
      ((r.method === "DELETE" &&
        (bodyOf(r).preconditions as { uid?: string } | undefined)?.uid === before.podUid) ||
        r.subresource === "eviction")
    );
    assert.ok(podRemovals.length > 0, "Expected an agent to delete or evict the old pod");

    // The old VolumeAttachment was force-detached by an agent: deleted with its uid as precondition.
    const vaName = before.attachment.metadata.name!;
    assert.equal(cluster.server.get("volumeattachments", undefined, vaName), undefined);
    const vaDeletes = cluster.server.requests.filter((r) =>
      r.method === "DELETE" && r.resource === "volumeattachments" && r.name === vaName
    );
    for (const r of vaDeletes) {
      assert.equal(
        (bodyOf(r).preconditions as { uid?: string } | undefined)?.uid,
        before.attachment.metadata.uid,
        "Expected every DELETE of the old VolumeAttachment to carry its uid as precondition",
      );
    }
    assert.ok(
      vaDeletes.some(succeeded),
      "Expected a successful DELETE of the old VolumeAttachment",
    );
    // Each survivor's agent deleted it at most once (below: only one did).
    for (const survivor of survivors) {
      const done = cluster.agent(survivor)!.stderr().split("\n")
        .filter((l) => l.includes(`did: delete volumeattachment ${vaName} `));
      assert.ok(
        done.length <= 1,
        `Expected ${survivor}'s agent to delete ${vaName} once, got:\n${done.join("\n")}`,
      );
    }

    // Events with the seed's reasons, from ha-controller. An agent records
    // an action's Event after the action: the agent that removed the pod may
    // still be sending its Event while another agent, whose removal found
    // the pod gone, has gone on to detach the volume and the replacement runs.
    const fromAgent = (e: KubeObject) =>
      pathString(e, "reportingComponent") === reportingController && e.type === "Warning";
    for (
      const [reason, name, what] of [
        [eventReason.nodeStorageQuorumLost, before.node, `node ${before.node}`],
        [eventReason.volumeWithoutQuorum, "web-0", "pod web-0"],
        [eventReason.volumeWithoutQuorum, vaName, `VolumeAttachment ${vaName}`],
      ]
    ) {
      await waitFor(
        () => events(cluster, reason, name).some(fromAgent),
        10_000,
        () =>
          `a ${reason} Event on ${what} from ${reportingController}; Events so far:\n${
            cluster.server.list("events").map((e) =>
              `${pathString(e, "reason")} on ${pathString(e, "involvedObject.name")}`
            ).join("\n")
          }`,
      );
    }

    // Exactly one agent acted on the failure: the survivors rank by node
    // name, the later one waits failOverStaggerMs more and then finds the
    // work done. Counted after two decision cycles of every survivor past
    // its turn.
    const turnsOver = performance.now() + failOverStaggerMs;
    await Promise.all(survivors.map((n) => cyclesAfter(cluster.agent(n)!, 2, turnsOver)));
    const agentWrites = cluster.server.requests.filter((r) =>
      fromAgents(r) && r.method !== "GET" && r.resource !== "events"
    ).map((r) => `${r.method} ${r.resource}${r.subresource ? `/${r.subresource}` : ""} ${r.name}`);
    assert.deepEqual(
      agentWrites.filter((w) => !w.startsWith("PUT nodes")).sort(),
      [`DELETE pods web-0`, `DELETE volumeattachments ${vaName}`].sort(),
      "one removal of the pod and one of the VolumeAttachment, by one agent",
    );
    for (
      const [reason, name] of [
        [eventReason.nodeStorageQuorumLost, before.node],
        [eventReason.volumeWithoutQuorum, "web-0"],
        [eventReason.volumeWithoutQuorum, vaName],
      ]
    ) {
      const recorded = events(cluster, reason, name).filter(fromAgent);
      assert.equal(
        recorded.length,
        1,
        `one ${reason} Event on ${name}, got from ${
          recorded.map((e) => pathString(e, "reportingInstance")).join(", ")
        }`,
      );
    }

    // Within fail-over-timeout + DRBD's detection delay + 2 s, in simulated
    // (here real) time. The 2 s are the agents' and Kubernetes' own work after
    // the fail-over timeout, which a loaded machine stretches: they are a
    // deadline (scaled); the simulated delays are not.
    const running = milestoneAfter(
      cluster,
      crashed,
      new RegExp(`pod default/web-0 Running on ${newNode}`),
    );
    const recoveryMs = running.at - crashed.at;
    const boundMs = defaultOptions.failOverTimeout + cluster.drbd.detectionMs + deadline(2_000);
    console.log(formatTimeline(cluster.timeline.milestones()));
    console.log(
      `with agents: replacement Running on ${newNode} ${(recoveryMs / 1000).toFixed(1)} s ` +
        `after the crash (bound ${(boundMs / 1000).toFixed(1)} s)`,
    );
    assert.ok(
      recoveryMs <= boundMs,
      `Expected the replacement Running within ${boundMs} ms of the crash, got ${recoveryMs} ms`,
    );
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});

/**
 * Crash web-0's node and measure until its replacement runs elsewhere;
 * prints the timeline and `what`, checks the recovery against `boundMs`
 * (given the cluster, to use its DRBD detection delay).
 */
async function crashAndRecover(
  cluster: SimCluster,
  what: string,
  boundOf: (cluster: SimCluster) => number,
): Promise<{ before: Placement; newNode: string }> {
  cluster.deployStatefulSet("web");
  await cluster.waitForRunningPod("web-0");
  const before = placement(cluster, "web-0");
  await cluster.crash(before.node);
  const crashed = cluster.timeline.find(/crashed/)!;
  const newNode = await cluster.waitForRunningPod("web-0", {
    notOn: before.node,
    timeoutMs: 120_000,
  });
  const running = milestoneAfter(
    cluster,
    crashed,
    new RegExp(`pod default/web-0 Running on ${newNode}`),
  );
  const recoveryMs = running.at - crashed.at;
  const boundMs = boundOf(cluster);
  console.log(formatTimeline(cluster.timeline.milestones()));
  console.log(
    `${what}: replacement Running on ${newNode} ${(recoveryMs / 1000).toFixed(1)} s after ` +
      `the crash (bound ${(boundMs / 1000).toFixed(1)} s)`,
  );
  assert.ok(recoveryMs <= boundMs, `Expected Running within ${boundMs} ms, got ${recoveryMs} ms`);
  return { before, newNode };
}

Deno.test("with agents and kube-controller-manager's defaults, the replacement waits for the attach-detach sync (up to 60 s)", async () => {
  // Stock constants: the attach-detach controller notices the deleted
  // VolumeAttachment only at its next 60 s sync, the one wait the agent
  // cannot shorten without the out-of-service taint.
  const cluster = await SimCluster.start();
  try {
    await crashAndRecover(
      cluster,
      "with agents, default kube-controller-manager",
      (c) => defaultOptions.failOverTimeout + c.drbd.detectionMs + 60_000 + deadline(5_000),
    );
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});

Deno.test("with --out-of-service-taint and kube-controller-manager's defaults, no wait for the sync; the taint goes when the node is back", async () => {
  const cluster = await SimCluster.start({ agentArgs: ["--out-of-service-taint"] });
  try {
    // The crashed kubelet's Lease is overdue after 15 s (1.5 × 40 s / 4),
    // before DRBD's 10.5 s detection plus the 5 s fail-over timeout end.
    const { before } = await crashAndRecover(
      cluster,
      "with agents and --out-of-service-taint, default kube-controller-manager",
      (c) => defaultOptions.failOverTimeout + c.drbd.detectionMs + deadline(10_000),
    );
    const outOfService = (node: string) =>
      taintsOf(cluster.server.get("nodes", undefined, node)!).filter((t) =>
        t.key === "node.kubernetes.io/out-of-service"
      );
    assert.deepEqual(outOfService(before.node), [
      { key: "node.kubernetes.io/out-of-service", value: "ha-controller", effect: "NoExecute" },
    ]);

    // The node is back: its own agent removes both taints once DRBD has quorum.
    await cluster.restore(before.node);
    await waitFor(
      () => outOfService(before.node).length === 0,
      60_000,
      () => `out-of-service removed:\n${formatTimeline(cluster.timeline.milestones())}`,
    );
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});

Deno.test("without agents, a crashed node's pod waits for an operator and the 6 minute force detach", async () => {
  // Stock Kubernetes constants, sped up 30 times: 15 simulated minutes take 30 s.
  const cluster = await SimCluster.start({ agents: false, scale: 30 });
  try {
    cluster.deployStatefulSet("web");
    await cluster.waitForRunningPod("web-0");
    const before = placement(cluster, "web-0");
    await cluster.crash(before.node);
    const crashed = cluster.timeline.find(/crashed/)!;

    // NotReady once the node-monitor grace period (50 s) has passed without heartbeats.
    await waitForMilestone(cluster, new RegExp(`node ${before.node} NotReady`), 20_000);
    const notReady = milestoneAfter(cluster, crashed, new RegExp(`node ${before.node} NotReady`));
    assert.ok(notReady.at - crashed.at >= 40_000, `NotReady too early: ${notReady.at}`);

    // Evicted after the default 300 s toleration of the unreachable taint, and stuck Terminating.
    const terminating = new RegExp(`pod default/web-0 Terminating on ${before.node}`);
    await waitForMilestone(cluster, terminating, 30_000);
    const evicted = milestoneAfter(cluster, crashed, terminating);
    assert.ok(
      evicted.at - notReady.at >= 295_000,
      `Expected the eviction 300 s after NotReady, got ${evicted.at - notReady.at} ms`,
    );
    // A simulated minute later the pod is still there and nothing replaced it:
    // the StatefulSet controller waits for the old object to be gone.
    await simulatedTime(cluster.clock, 60_000);
    const stuck = cluster.pod("web-0");
    assert.equal(stuck?.metadata.uid, before.podUid);
    assert.ok(stuck?.metadata.deletionTimestamp, "Expected the old pod to be Terminating");
    assert.equal(
      cluster.timeline.milestones().filter((m) =>
        m.at > crashed.at && /pod default\/web-0 created/.test(m.what)
      ).length,
      0,
    );

    // The operator force-deletes the pod, as the Kubernetes documentation says.
    cluster.timeline.mark("operator force-deletes pod web-0");
    const forced = cluster.timeline.milestones().at(-1)!;
    cluster.server.delete("pods", "default", "web-0", { gracePeriodSeconds: 0 });

    // The replacement is scheduled at once, but its volume is still attached to the dead node.
    await waitFor(
      () => {
        const pod = cluster.pod("web-0");
        return pod !== undefined && pod.metadata.uid !== before.podUid &&
          events(cluster, "FailedAttachVolume", "web-0").some((e) =>
            pathString(e, "involvedObject.uid") === pod.metadata.uid &&
            pathString(e, "type") === "Warning" &&
            pathString(e, "message").startsWith(`Multi-Attach error for volume "${before.pv}"`)
          );
      },
      20_000,
      "a Multi-Attach FailedAttachVolume warning on the replacement",
    );
    assert.ok(cluster.server.get("volumeattachments", undefined, before.attachment.metadata.name!));

    // It runs only after the attach-detach controller's 6 minute force detach.
    const newNode = await cluster.waitForRunningPod("web-0", {
      notOn: before.node,
      timeoutMs: 40_000,
    });
    const running = milestoneAfter(
      cluster,
      forced,
      new RegExp(`pod default/web-0 Running on ${newNode}`),
    );
    const detached = milestoneAfter(
      cluster,
      forced,
      new RegExp(`volumeattachment ${before.attachment.metadata.name} deleted`),
    );
    assert.ok(
      detached.at - forced.at >= 360_000,
      `Expected the force detach 6 min after the pod was deleted, got ${
        detached.at - forced.at
      } ms`,
    );
    assert.ok(running.at >= detached.at);
    // Nobody but the simulated control plane wrote anything.
    assert.deepEqual(cluster.server.writes(), []);
    const node = cluster.server.get("nodes", undefined, before.node)!;
    assert.ok(
      !taintsOf(node).some((t) => t.key === lostQuorumTaintKey),
    );
    console.log(formatTimeline(cluster.timeline.milestones()));
    const minutes = (ms: number) => `${(ms / 60_000).toFixed(1)} min`;
    console.log(
      `without agents: NotReady after ${(notReady.at - crashed.at) / 1000} s, Terminating after ` +
        `${minutes(evicted.at - crashed.at)}, operator force-delete at ` +
        `${minutes(forced.at - crashed.at)}, replacement Running on ${newNode} ` +
        `${minutes(running.at - crashed.at)} after the crash (simulated, scale 30)`,
    );
    assert.deepEqual(cluster.controllers.errors, []);
  } finally {
    await cluster.stop();
  }
});
