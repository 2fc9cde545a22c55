import assert from "node:assert/strict";
import { decide, peersToInspect, withdrawnBy } from "../../lib/decide/mod.ts";
import type { Snapshot } from "../../lib/decide/types.ts";
import {
  config,
  connection,
  drbdResource,
  failOverScene,
  memory,
  node,
  options,
  peer,
  pod,
  pv,
  pvcVolume,
  sample,
  snapshot,
  summary,
  T0,
  va,
} from "./fixtures.ts";
import { device } from "./fixtures.ts";

interface InspectCase {
  name: string;
  snapshot: Snapshot;
  peers: string[];
}

const inspect: InspectCase[] = [
  { name: "lost peer of a fail-over candidate", snapshot: failOverScene(), peers: ["node-b"] },
  {
    name: "Connected peer",
    snapshot: failOverScene({ connectionState: "Connected" }),
    peers: [],
  },
  {
    name: "satellite pod name mapped to its node",
    snapshot: failOverScene({
      resource: { connections: [connection("sat-b", "NetworkFailure")] },
      snapshot: { satellitePods: [pod("sat-b", { nodeName: "node-b", volumes: [] })] },
    }),
    peers: ["node-b"],
  },
  {
    name: "a node with a Connected connection is not lost through another one mapped to it",
    snapshot: failOverScene({
      resource: {
        connections: [connection("node-b", "Connected"), connection("sat-b", "NetworkFailure")],
      },
      snapshot: { satellitePods: [pod("sat-b", { nodeName: "node-b", volumes: [] })] },
    }),
    peers: [],
  },
  {
    name: "several satellite pods with the connection's name: not fetched",
    snapshot: failOverScene({
      resource: { connections: [connection("sat-b", "NetworkFailure")] },
      snapshot: {
        satellitePods: [
          pod("sat-b", { namespace: "piraeus", nodeName: "node-b", volumes: [] }),
          pod("sat-b", { namespace: "linstor", nodeName: "node-c", volumes: [] }),
        ],
      },
    }),
    peers: [],
  },
  {
    name: "PV not Bound",
    snapshot: failOverScene({ persistentVolumes: [pv("pvc-1", { phase: "Released" })] }),
    peers: [],
  },
  {
    name: "quorum off",
    snapshot: failOverScene({ resource: { config: config({ quorum: "off" }) } }),
    peers: [],
  },
  {
    name: "may not promote",
    snapshot: failOverScene({ resource: { mayPromote: false } }),
    peers: [],
  },
  { name: "no PV", snapshot: failOverScene({ persistentVolumes: [] }), peers: [] },
  {
    name: "PV without claim",
    snapshot: failOverScene({ persistentVolumes: [pv("pvc-1", { claimRef: undefined })] }),
    peers: [],
  },
  {
    name: "several resources: sorted, no duplicates, never this node",
    snapshot: snapshot({
      drbd: sample([
        drbdResource("pvc-1", {
          connections: [connection("node-c", "Connecting"), connection("node-b", "StandAlone")],
        }),
        drbdResource("pvc-2", {
          connections: [connection("node-b", "Connecting"), connection("node-a", "Connecting")],
        }),
      ]),
      persistentVolumes: [
        pv("pvc-1"),
        pv("pvc-2", { claimRef: { namespace: "default", name: "other", uid: "u2" } }),
      ],
    }),
    peers: ["node-b", "node-c"],
  },
];

for (const c of inspect) {
  Deno.test(`peersToInspect: ${c.name}`, () => {
    const { peers: _ignored, ...withoutPeers } = c.snapshot;
    assert.deepEqual(peersToInspect(withoutPeers, options()), c.peers);
  });
}

Deno.test("decide: every local resource gets a verdict, healthy ones say so", () => {
  const s = snapshot({
    drbd: sample([
      drbdResource("pvc-1", { connections: [connection("node-b")] }),
      drbdResource("scratch", { connections: [connection("node-b")] }),
    ]),
    persistentVolumes: [pv("pvc-1")],
    localPods: [pod("app", { nodeName: "node-a" })],
  });
  assert.deepEqual(decide(s, memory(), options(), T0).verdicts, [
    {
      resource: "pvc-1",
      persistentVolume: "pvc-1",
      claim: "default/data",
      consumers: ["default/app"],
      decision: "healthy",
    },
    {
      resource: "scratch",
      persistentVolume: undefined,
      claim: undefined,
      consumers: [],
      decision: "no PV for this resource",
    },
  ]);
});

Deno.test("decide: two resources failing over the same node taint it once", () => {
  const resources = ["pvc-1", "pvc-2"].map((name) =>
    drbdResource(name, { connections: [connection("node-b", "Connecting")] })
  );
  const s = snapshot({
    drbd: sample(resources),
    persistentVolumes: [
      pv("pvc-1"),
      pv("pvc-2", { claimRef: { namespace: "default", name: "logs", uid: "u2" } }),
    ],
    volumeAttachments: [va("csi-1", "pvc-1", "node-b"), va("csi-2", "pvc-2", "node-b")],
    peers: new Map([[
      "node-b",
      peer(node("node-b"), [
        pod("app", { volumes: [pvcVolume("data"), { ...pvcVolume("logs"), name: "logs" }] }),
      ]),
    ]]),
  });
  const m = memory({ failOverSince: { "pvc-1/node-b": T0 - 5_000, "pvc-2/node-b": T0 - 5_000 } });
  assert.deepEqual(summary(decide(s, m, options(), T0).plan), [
    "taint-node node-b drbd.linbit.com/lost-quorum",
    "evict-pod default/app",
    "delete-volume-attachment csi-1",
    "delete-volume-attachment csi-2",
  ]);
});

Deno.test("decide: a resource backing two PVs fails over both claims", () => {
  const s = failOverScene({
    persistentVolumes: [
      pv("pv-a", { volumeHandle: "pvc-1/0" }),
      pv("pv-b", {
        volumeHandle: "pvc-1/1",
        claimRef: { namespace: "default", name: "second", uid: "u2" },
      }),
    ],
    peerPods: [pod("app"), pod("two", { volumes: [pvcVolume("second")] })],
    volumeAttachments: [va("csi-a", "pv-a", "node-b"), va("csi-b", "pv-b", "node-b")],
  });
  const decision = decide(
    s,
    memory({ failOverSince: { "pvc-1/node-b": T0 - 5_000 } }),
    options(),
    T0,
  );
  assert.deepEqual(summary(decision.plan), [
    "taint-node node-b drbd.linbit.com/lost-quorum",
    "evict-pod default/app",
    "evict-pod default/two",
    "delete-volume-attachment csi-a",
    "delete-volume-attachment csi-b",
  ]);
  assert.equal(decision.verdicts[0].persistentVolume, "pv-a, pv-b");
  assert.equal(decision.verdicts[0].claim, "default/data, default/second");
});

Deno.test("decide: wakeAt is when the earliest running timer matures", () => {
  // A fresh loss: the fail-over timer starts now and matures after failOverTimeout.
  const fresh = decide(failOverScene(), memory(), options(), T0);
  assert.deepEqual(summary(fresh.plan), []);
  assert.equal(fresh.wakeAt, T0 + 5_000);
  // Half-way: the same deadline.
  const halfWay = decide(
    failOverScene(),
    memory({ failOverSince: { "pvc-1/node-b": T0 - 2_500 } }),
    options(),
    T0,
  );
  assert.equal(halfWay.wakeAt, T0 + 2_500);
  // After a fail-over was counted, the next one backs off: 2 × failOverTimeout.
  const backedOff = decide(
    failOverScene(),
    memory({ failOvers: { "pvc-1": { count: 1, lastAt: T0 - 60_000 } } }),
    options(),
    T0,
  );
  assert.equal(backedOff.wakeAt, T0 + 10_000);
  // Nothing running: no deadline.
  assert.equal(decide(snapshot(), memory(), options(), T0).wakeAt, undefined);
});

Deno.test("withdrawnBy: a fail-over action holds only while this node may promote and the peer is lost", () => {
  const scene = failOverScene();
  const plan = decide(scene, memory({}), options({ failOverTimeout: 0 }), T0).plan;
  const evict = plan.find((a) => a.kind === "evict-pod")!;
  assert.ok(evict, summary(plan).join("\n"));
  assert.equal(withdrawnBy(evict, scene.drbd, scene), undefined, "nothing changed");
  const lost = scene.drbd.resources[0];
  const with_ = (r: Partial<typeof lost>) => sample([{ ...lost, ...r }]);
  assert.equal(
    withdrawnBy(evict, with_({ connections: [connection("node-b")] }), scene),
    "node node-b is connected to DRBD resource pvc-1 again",
  );
  assert.equal(
    withdrawnBy(evict, with_({ mayPromote: false }), scene),
    "this node may no longer promote DRBD resource pvc-1",
  );
  assert.equal(withdrawnBy(evict, sample([]), scene), "DRBD resource pvc-1 is gone");
  assert.match(
    withdrawnBy(
      evict,
      sample([], { availability: "error", message: "drbdsetup hangs" }),
      scene,
    )!,
    /^DRBD cannot be read now: drbdsetup hangs$/,
  );
});

Deno.test("withdrawnBy: the own lost-quorum taint holds while some resource lacks quorum", () => {
  const without = sample([drbdResource("pvc-1", { devices: [device({ quorum: false })] })]);
  const scene = snapshot({ drbd: without });
  const taint = {
    kind: "taint-node" as const,
    node: "node-a",
    taint: { key: "drbd.linbit.com/lost-quorum", effect: "NoSchedule" },
    reason: "r",
    resource: undefined,
    events: [],
  };
  assert.equal(withdrawnBy(taint, without, scene), undefined);
  assert.equal(
    withdrawnBy(taint, sample([drbdResource("pvc-1")]), scene),
    "every DRBD resource has quorum again",
  );
  // Other nodes' taints and other actions without a peer are not re-checked.
  assert.equal(withdrawnBy({ ...taint, node: "node-b" }, sample([]), scene), undefined);
});

Deno.test("withdrawnBy: a forced demotion holds only while the resource is a suspended Primary", () => {
  const suspended = drbdResource("pvc-1", {
    role: "Primary",
    suspended: { user: false, noData: false, fencing: false, quorum: true },
    devices: [device({ quorum: false })],
  });
  const scene = snapshot({ drbd: sample([suspended]) });
  const demote = {
    kind: "force-demote" as const,
    resource: "pvc-1",
    reason: "r",
    events: [],
  };
  assert.equal(withdrawnBy(demote, scene.drbd, scene), undefined);
  assert.equal(
    withdrawnBy(
      demote,
      sample([{ ...suspended, suspended: { ...suspended.suspended, quorum: false } }]),
      scene,
    ),
    "DRBD resource pvc-1 is no longer suspended",
  );
  assert.equal(
    withdrawnBy(demote, sample([{ ...suspended, role: "Secondary" }]), scene),
    "DRBD resource pvc-1 is no longer Primary",
  );
  assert.equal(withdrawnBy(demote, sample([]), scene), "DRBD resource pvc-1 is gone");
});
