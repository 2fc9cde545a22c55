import assert from "node:assert/strict";
import { decide } from "../../lib/decide/mod.ts";
import type { SuspendReasons } from "../../lib/drbd/model.ts";
import type { PersistentVolumeInfo, PodInfo } from "../../lib/kube/objects.ts";
import {
  device,
  drbdResource,
  eventSummary,
  memory,
  options,
  pod,
  pv,
  sample,
  snapshot,
  summary,
  T0,
  va,
} from "./fixtures.ts";

const none: SuspendReasons = { user: false, noData: false, fencing: false, quorum: false };
const terminating = "2027-01-15T08:00:00Z";
const local = (name: string, overrides: Partial<PodInfo> = {}) =>
  pod(name, { nodeName: "node-a", ...overrides });

interface Case {
  name: string;
  role?: "Primary" | "Secondary";
  suspended: Partial<SuspendReasons>;
  localPods: PodInfo[];
  persistentVolumes?: PersistentVolumeInfo[];
  /** When the suspension was first seen; default: exactly failOverTimeout ago. */
  since?: number | undefined;
  plan: string[];
  verdict?: string;
  /** Expected suspension timer afterwards (default: unchanged `since`). */
  timer?: number | undefined;
}

const cases: Case[] = [
  {
    name: "suspended for quorum, only pod terminating: force-demote",
    suspended: { quorum: true },
    localPods: [local("app", { deletionTimestamp: terminating })],
    plan: ["force-demote pvc-1"],
    verdict: "Primary suspended (quorum) with no running pod: force-demoting",
  },
  {
    name: "suspended for no-data: force-demote",
    suspended: { noData: true },
    localPods: [local("app", { deletionTimestamp: terminating })],
    plan: ["force-demote pvc-1"],
  },
  {
    name: "suspended for fencing: force-demote",
    suspended: { fencing: true },
    localPods: [local("app", { deletionTimestamp: terminating })],
    plan: ["force-demote pvc-1"],
  },
  {
    name: "suspended by the user only: leave it alone",
    suspended: { user: true },
    localPods: [local("app", { deletionTimestamp: terminating })],
    plan: [],
    timer: undefined,
    verdict: "healthy",
  },
  {
    name: "user plus quorum: force-demote",
    suspended: { user: true, quorum: true },
    localPods: [local("app", { deletionTimestamp: terminating })],
    plan: ["force-demote pvc-1"],
  },
  {
    name: "not Primary: nothing to demote",
    role: "Secondary",
    suspended: { quorum: true },
    localPods: [local("app", { deletionTimestamp: terminating })],
    plan: [],
    timer: undefined,
  },
  {
    name: "not suspended: nothing",
    suspended: {},
    localPods: [local("app", { deletionTimestamp: terminating })],
    plan: [],
    timer: undefined,
  },
  {
    name: "a consumer still runs: wait",
    suspended: { quorum: true },
    localPods: [local("app", { deletionTimestamp: terminating }), local("web")],
    plan: [],
    verdict: "still used by running pod default/web",
  },
  {
    name: "a Pending consumer whose sandbox is not ready (volumes not mounted) does not block",
    suspended: { quorum: true },
    localPods: [
      local("app", { deletionTimestamp: terminating }),
      local("web", { phase: "Pending", sandboxReady: false }),
    ],
    plan: ["force-demote pvc-1"],
    verdict: "with no running pod: force-demoting",
  },
  {
    name: "a Pending consumer whose volumes may be mounted (sandbox ready: pulling images) blocks",
    suspended: { quorum: true },
    localPods: [local("web", { phase: "Pending", sandboxReady: true })],
    plan: [],
    verdict: "still used by running pod default/web",
  },
  {
    name: "a Pending consumer without a sandbox condition blocks (it may have mounted)",
    suspended: { quorum: true },
    localPods: [local("web", { phase: "Pending", sandboxReady: undefined })],
    plan: [],
  },
  {
    name: "a Pending consumer running an init container blocks the demotion",
    suspended: { quorum: true },
    localPods: [local("web", { phase: "Pending", containerRunning: true })],
    plan: [],
    verdict: "still used by running pod default/web",
  },
  {
    name: "a terminating consumer whose container still runs does not block",
    suspended: { quorum: true },
    localPods: [local("web", { deletionTimestamp: terminating, containerRunning: true })],
    plan: ["force-demote pvc-1"],
  },
  {
    name: "a consumer of unknown phase blocks the demotion",
    suspended: { quorum: true },
    localPods: [local("web", { phase: "" })],
    plan: [],
    verdict: "still used by running pod default/web",
  },
  {
    name: "a consumer in phase Unknown blocks the demotion",
    suspended: { quorum: true },
    localPods: [local("web", { phase: "Unknown" })],
    plan: [],
  },
  {
    name: "consumers finished (Failed, Succeeded): force-demote",
    suspended: { quorum: true },
    localPods: [local("app", { phase: "Failed" }), local("web", { phase: "Succeeded" })],
    plan: ["force-demote pvc-1"],
  },
  {
    name: "suspension just seen: timer starts, no demotion",
    suspended: { quorum: true },
    localPods: [local("app", { deletionTimestamp: terminating })],
    since: undefined,
    plan: [],
    timer: T0,
    verdict: "Primary suspended (quorum) for 0s of 5s before force-demoting",
  },
  {
    name: "suspended for fencing just below failOverTimeout: no demotion",
    suspended: { fencing: true },
    localPods: [local("app", { deletionTimestamp: terminating })],
    since: T0 - 4_999,
    plan: [],
    verdict: "Primary suspended (fencing) for 4.9s of 5s before force-demoting",
  },
  {
    name: "suspended for a minute: demote",
    suspended: { noData: true },
    localPods: [local("app", { deletionTimestamp: terminating })],
    since: T0 - 60_000,
    plan: ["force-demote pvc-1"],
  },
  {
    name: "timer runs while a consumer still runs",
    suspended: { quorum: true },
    localPods: [local("web")],
    since: undefined,
    plan: [],
    timer: T0,
  },
  {
    name: "suspension over: timer cleared",
    suspended: {},
    localPods: [local("app", { deletionTimestamp: terminating })],
    since: T0 - 60_000,
    plan: [],
    timer: undefined,
  },
  {
    name: "a Released PV (its claim deleted) with nothing running: force-demote",
    suspended: { quorum: true },
    localPods: [local("app")],
    persistentVolumes: [pv("pvc-1", { phase: "Released" })],
    plan: ["force-demote pvc-1"],
  },
  {
    name: "no local pod uses the volume (force-deleted pod): force-demote",
    suspended: { quorum: true },
    localPods: [local("other", { volumes: [] })],
    plan: ["force-demote pvc-1"],
    verdict: "with no running pod: force-demoting",
  },
  {
    name: "no local pod at all: force-demote",
    suspended: { fencing: true },
    localPods: [],
    plan: ["force-demote pvc-1"],
  },
  {
    name: "no local pod, suspension just seen: timer starts, no demotion",
    suspended: { quorum: true },
    localPods: [],
    since: undefined,
    plan: [],
    timer: T0,
    verdict: "for 0s of 5s before force-demoting",
  },
  {
    name: "no local pod, suspended by the user only: leave it alone",
    suspended: { user: true },
    localPods: [],
    plan: [],
    timer: undefined,
    verdict: "healthy",
  },
  {
    name: "backs no PV (not a Kubernetes volume): left alone",
    suspended: { quorum: true },
    localPods: [local("app", { deletionTimestamp: terminating })],
    persistentVolumes: [],
    plan: [],
    verdict: "backs no PersistentVolume: left alone",
  },
];

for (const c of cases) {
  Deno.test(`suspended demotion: ${c.name}`, () => {
    const resource = drbdResource("pvc-1", {
      role: c.role ?? "Primary",
      mayPromote: false,
      suspended: { ...none, ...c.suspended },
      devices: [device({ quorum: !c.suspended.quorum, open: true })],
    });
    const s = snapshot({
      drbd: sample([resource]),
      localPods: c.localPods,
      persistentVolumes: c.persistentVolumes ?? [pv("pvc-1")],
    });
    const since = "since" in c ? c.since : T0 - 5_000;
    const m = memory({ suspendedSince: since === undefined ? {} : { "pvc-1": since } });
    // Node taints are off so that the plan shows only what this rule decides.
    const decision = decide(s, m, options({ disableNodeTaints: true }), T0);
    assert.deepEqual(summary(decision.plan), c.plan);
    const timer = "timer" in c ? c.timer : since;
    assert.equal(decision.memory.suspendedSince.get("pvc-1"), timer);
    if (c.verdict !== undefined) {
      assert.ok(
        decision.verdicts[0].decision.includes(c.verdict),
        `verdict ${JSON.stringify(decision.verdicts[0].decision)} should mention ${c.verdict}`,
      );
    }
  });
}

Deno.test("suspended demotion: events on the PV and its claim, reason names the pods", () => {
  const resource = drbdResource("pvc-1", {
    role: "Primary",
    mayPromote: false,
    suspended: { ...none, quorum: true, noData: true },
    devices: [device({ quorum: false, open: true })],
  });
  const s = snapshot({
    drbd: sample([resource]),
    localPods: [pod("app", { nodeName: "node-a", deletionTimestamp: terminating })],
    persistentVolumes: [pv("pvc-1")],
  });
  const m = memory({ suspendedSince: { "pvc-1": T0 - 65_000 } });
  const [demote] = decide(s, m, options({ disableNodeTaints: true }), T0).plan;
  assert.ok(demote.kind === "force-demote");
  // The resource of a forced demotion is always a name (a type error if it could be undefined).
  const name: string = demote.resource;
  assert.equal(name, "pvc-1");
  assert.match(demote.reason, /pvc-1.*quorum, no-data.*for 1m5s.*default\/app/);
  assert.deepEqual(eventSummary([demote]), [
    "Warning VolumeWithoutQuorum/ForcedVolumeDemotion PersistentVolume pvc-1",
    "Warning VolumeWithoutQuorum/ForcedVolumeDemotion PersistentVolumeClaim default/data",
  ]);
  assert.equal(demote.events[1].regarding.uid, "uid-pvc-data");
  // No VolumeAttachment of pvc-1 on node-a in this snapshot: nothing related.
  assert.equal(demote.events[0].related, undefined);
});

Deno.test("suspended demotion: with no local pod the reason says so", () => {
  const resource = drbdResource("pvc-1", {
    role: "Primary",
    mayPromote: false,
    suspended: { ...none, quorum: true },
    devices: [device({ quorum: false, open: true })],
  });
  const s = snapshot({ drbd: sample([resource]), localPods: [], persistentVolumes: [pv("pvc-1")] });
  const m = memory({ suspendedSince: { "pvc-1": T0 - 5_000 } });
  const [demote] = decide(s, m, options({ disableNodeTaints: true }), T0).plan;
  assert.ok(demote.kind === "force-demote");
  assert.match(demote.reason, /for 5s and no local pod uses it, so it is demoted by force/);
});

Deno.test("suspended demotion: events relate to this node's VolumeAttachment", () => {
  const resource = drbdResource("pvc-1", {
    role: "Primary",
    mayPromote: false,
    suspended: { ...none, quorum: true },
    devices: [device({ quorum: false, open: true })],
  });
  const s = snapshot({
    drbd: sample([resource]),
    localPods: [],
    persistentVolumes: [pv("pvc-1")],
    volumeAttachments: [va("csi-b", "pvc-1", "node-b"), va("csi-a", "pvc-1", "node-a")],
  });
  const m = memory({ suspendedSince: { "pvc-1": T0 - 5_000 } });
  const [demote] = decide(s, m, options({ disableNodeTaints: true }), T0).plan;
  assert.deepEqual(demote.events.map((e) => [e.regarding.kind, e.related?.name]), [
    ["PersistentVolume", "csi-a"],
    ["PersistentVolumeClaim", "csi-a"],
  ]);
});
