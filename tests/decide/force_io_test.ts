import assert from "node:assert/strict";
import { decide } from "../../lib/decide/mod.ts";
import type { PodInfo } from "../../lib/kube/objects.ts";
import {
  drbdResource,
  eventSummary,
  memory,
  node,
  options,
  pod,
  pv,
  pvcVolume,
  sample,
  snapshot,
  summary,
  T0,
} from "./fixtures.ts";

const forceIoTaint = "taint-node node-a drbd.linbit.com/force-io-error";
const local = (name: string, overrides: Partial<PodInfo> = {}) =>
  pod(name, { nodeName: "node-a", ...overrides });

interface Case {
  name: string;
  forcing?: boolean;
  localPods: PodInfo[];
  plan: string[];
  verdict?: string;
}

const cases: Case[] = [
  {
    name: "local consumer is evicted, node tainted",
    localPods: [local("app")],
    plan: [forceIoTaint, "evict-pod default/app"],
    verdict: "forcing I/O errors: evict pod default/app",
  },
  {
    name: "read-only consumer is evicted too (it keeps the device open)",
    localPods: [local("app", { volumes: [pvcVolume("data", true)] })],
    plan: [forceIoTaint, "evict-pod default/app"],
  },
  {
    name: "pod with the ignore annotation stays",
    localPods: [local("app", { ignoreFailOver: true })],
    plan: [forceIoTaint],
    verdict: "skip pod default/app: has the ignore-fail-over annotation",
  },
  {
    name: "owner-less pod stays",
    localPods: [local("app", { hasOwner: false })],
    plan: [forceIoTaint],
    verdict: "skip pod default/app: has no owner",
  },
  {
    name: "already terminating pod is skipped",
    localPods: [local("app", { deletionTimestamp: "2027-01-15T08:00:00Z" })],
    plan: [forceIoTaint],
    verdict: "pod default/app already terminating",
  },
  {
    name: "pods of other claims stay",
    localPods: [local("app"), local("other", { volumes: [pvcVolume("unrelated")] })],
    plan: [forceIoTaint, "evict-pod default/app"],
  },
  {
    name: "not forcing I/O errors: nothing",
    forcing: false,
    localPods: [local("app")],
    plan: [],
    verdict: "healthy",
  },
];

for (const c of cases) {
  Deno.test(`force-io: ${c.name}`, () => {
    const resource = drbdResource("pvc-1", {
      mayPromote: false,
      forceIoFailures: c.forcing ?? true,
    });
    const s = snapshot({
      drbd: sample([resource]),
      localPods: c.localPods,
      persistentVolumes: [pv("pvc-1")],
    });
    const decision = decide(s, memory(), options(), T0);
    assert.deepEqual(summary(decision.plan), c.plan);
    if (c.verdict !== undefined) {
      assert.ok(
        decision.verdicts[0].decision.includes(c.verdict),
        `verdict ${JSON.stringify(decision.verdicts[0].decision)} should mention ${c.verdict}`,
      );
    }
  });
}

Deno.test("force-io: eviction carries grace period, reason and event", () => {
  const s = snapshot({
    drbd: sample([drbdResource("pvc-1", { mayPromote: false, forceIoFailures: true })]),
    ownNode: node("node-a", {
      taints: [{ key: "drbd.linbit.com/force-io-error", effect: "NoSchedule" }],
    }),
    localPods: [local("app")],
    persistentVolumes: [pv("pvc-1")],
  });
  const [evict] = decide(s, memory(), options({ gracePeriodSeconds: 3 }), T0).plan;
  assert.ok(evict.kind === "evict-pod");
  assert.equal(evict.gracePeriodSeconds, 3);
  assert.equal(evict.resource, "pvc-1");
  assert.match(evict.reason, /default\/app.*pvc-1.*forces I\/O errors.*node-a/);
  assert.deepEqual(eventSummary([evict]), [
    "Warning VolumeForcingIoErrors/EvictedPod Pod default/app",
  ]);
});
