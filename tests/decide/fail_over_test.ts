import assert from "node:assert/strict";
import { decide } from "../../lib/decide/mod.ts";
import { failOverRank } from "../../lib/decide/fail_over.ts";
import type { Memory, Snapshot } from "../../lib/decide/types.ts";
import type { Options } from "../../lib/options.ts";
import { claimOnlyVolume, slimPersistentVolume } from "../../lib/kube/objects.ts";
import type { V1ObjectReference, V1PersistentVolume } from "@kubernetes/client-node";
import {
  connection,
  drbdResource,
  eventSummary,
  failOverScene,
  memory,
  node,
  options,
  peer,
  pod,
  pv,
  pvcVolume,
  sample,
  summary,
  T0,
  va,
} from "./fixtures.ts";

/** Memory in which the fail-over timer for pvc-1/node-b started exactly 5 s ago. */
const expired = () => memory({ failOverSince: { "pvc-1/node-b": T0 - 5_000 } });

const lostQuorum = "drbd.linbit.com/lost-quorum";
const fullFailOver = [
  `taint-node node-b ${lostQuorum}`,
  "evict-pod default/app",
  "delete-volume-attachment csi-b",
];

interface Case {
  name: string;
  snapshot: Snapshot;
  options?: Partial<Options>;
  memory?: Memory;
  plan: string[];
  /** Substring expected in the verdict of pvc-1. */
  verdict?: string;
}

const afterTimeout: Case[] = [
  {
    name: "Ready peer: taint, evict, detach",
    snapshot: failOverScene(),
    plan: fullFailOver,
    verdict: "failing over node-b (Connecting for 5s)",
  },
  {
    name: "NotReady peer: force-delete instead of evict",
    snapshot: failOverScene({ peerNode: node("node-b", { ready: false }) }),
    plan: [
      `taint-node node-b ${lostQuorum}`,
      "force-delete-pod default/app",
      "delete-volume-attachment csi-b",
    ],
  },
  {
    name: "any non-Connected state counts (StandAlone)",
    snapshot: failOverScene({ connectionState: "StandAlone" }),
    plan: fullFailOver,
  },
  {
    name: "peer already tainted: no second taint",
    snapshot: failOverScene({
      peerNode: node("node-b", { taints: [{ key: lostQuorum, effect: "NoSchedule" }] }),
    }),
    plan: ["evict-pod default/app", "delete-volume-attachment csi-b"],
    verdict: "node already tainted",
  },
  {
    name: "same key with another effect is not our taint",
    snapshot: failOverScene({
      peerNode: node("node-b", { taints: [{ key: lostQuorum, effect: "NoExecute" }] }),
    }),
    plan: fullFailOver,
  },
  {
    name: "disableNodeTaints: no taint",
    snapshot: failOverScene(),
    options: { disableNodeTaints: true },
    plan: ["evict-pod default/app", "delete-volume-attachment csi-b"],
  },
  {
    name: "pod with ignore annotation is left alone",
    snapshot: failOverScene({ peerPods: [pod("app", { ignoreFailOver: true })] }),
    plan: [`taint-node node-b ${lostQuorum}`],
    verdict: "skip pod default/app: has the ignore-fail-over annotation",
  },
  {
    name: "owner-less pod is left alone",
    snapshot: failOverScene({ peerPods: [pod("app", { hasOwner: false })] }),
    plan: [`taint-node node-b ${lostQuorum}`],
    verdict: "skip pod default/app: has no owner",
  },
  {
    name: "pod with a hostPath volume is left alone",
    snapshot: failOverScene({
      peerPods: [
        pod("app", {
          volumes: [pvcVolume("data"), { kind: "other", name: "logs", type: "hostPath" }],
        }),
      ],
    }),
    plan: [`taint-node node-b ${lostQuorum}`],
    verdict: "logs (hostPath)",
  },
  {
    name: "failOverUnsafePods moves the hostPath pod too",
    snapshot: failOverScene({
      peerPods: [
        pod("app", {
          volumes: [pvcVolume("data"), { kind: "other", name: "logs", type: "hostPath" }],
        }),
      ],
    }),
    options: { failOverUnsafePods: true },
    plan: fullFailOver,
  },
  {
    name: "pod with a second read-write PVC on another driver is left alone",
    snapshot: failOverScene({
      peerPods: [
        pod("app", { volumes: [pvcVolume("data"), { ...pvcVolume("local"), name: "l" }] }),
      ],
      persistentVolumes: [
        pv("pvc-1"),
        pv("local-pv", {
          csiDriver: undefined,
          volumeHandle: undefined,
          claimRef: { namespace: "default", name: "local", uid: "u" },
        }),
      ],
    }),
    plan: [`taint-node node-b ${lostQuorum}`],
    verdict: "claim local not on linstor.csi.linbit.com",
  },
  {
    name: "a second PVC on another driver is safe when mounted read-only",
    snapshot: failOverScene({
      peerPods: [
        pod("app", { volumes: [pvcVolume("data"), { ...pvcVolume("local", true), name: "l" }] }),
      ],
    }),
    plan: fullFailOver,
  },
  {
    name: "a second LINSTOR PVC is safe",
    snapshot: failOverScene({
      peerPods: [
        pod("app", { volumes: [pvcVolume("data"), { ...pvcVolume("other"), name: "o" }] }),
      ],
      persistentVolumes: [
        pv("pvc-1"),
        pv("pvc-2", { claimRef: { namespace: "default", name: "other", uid: "u2" } }),
      ],
    }),
    plan: fullFailOver,
  },
  {
    name: "safe volume kinds do not block a fail-over",
    snapshot: failOverScene({
      peerPods: [
        pod("app", {
          volumes: [
            pvcVolume("data"),
            { kind: "configMap", name: "a" },
            { kind: "secret", name: "b" },
            { kind: "downwardAPI", name: "c" },
            { kind: "projected", name: "d" },
            { kind: "emptyDir", name: "e" },
            { kind: "ephemeral", name: "f" },
            { kind: "csi", name: "g" },
          ],
        }),
      ],
    }),
    plan: fullFailOver,
  },
  {
    name: "terminating pod on a Ready peer is not evicted again",
    snapshot: failOverScene({
      peerPods: [pod("app", { deletionTimestamp: "2027-01-15T08:00:00Z" })],
    }),
    plan: [`taint-node node-b ${lostQuorum}`, "delete-volume-attachment csi-b"],
    verdict: "skip pod default/app: already terminating",
  },
  {
    name: "Ready peer whose kubelet stopped renewing its Lease (crashed): force-delete",
    snapshot: failOverScene({
      peerView: peer(node("node-b"), [pod("app")], {
        renewTime: T0 - 16_000,
        durationSeconds: 40,
        ageAtRead: 16_000,
        readAt: T0,
      }),
    }),
    plan: [
      `taint-node node-b ${lostQuorum}`,
      "force-delete-pod default/app",
      "delete-volume-attachment csi-b",
    ],
  },
  {
    name:
      "Ready peer with a Lease renewed 15 s ago (1.5 renew intervals): still evicted gracefully",
    snapshot: failOverScene({
      peerView: peer(node("node-b"), [pod("app")], {
        renewTime: T0 - 15_000,
        durationSeconds: 40,
        ageAtRead: 15_000,
        readAt: T0,
      }),
    }),
    plan: fullFailOver,
  },
  {
    name: "a stale Lease is judged by the API server's clock, not this node's (skew ignored)",
    // Read 1 s ago by the server's clock, when it was 2 s old: fresh, even
    // though this node's clock (T0) is far ahead of the kubelet's.
    snapshot: failOverScene({
      peerView: peer(node("node-b"), [pod("app")], {
        renewTime: T0 - 600_000,
        durationSeconds: 40,
        ageAtRead: 2_000,
        readAt: T0 - 1_000,
      }),
    }),
    plan: [
      `taint-node node-b ${lostQuorum}`,
      "evict-pod default/app",
      "delete-volume-attachment csi-b",
    ],
  },
  {
    name: "a Lease renewed in the future (skewed kubelet clock) counts as fresh",
    snapshot: failOverScene({
      peerView: peer(node("node-b"), [pod("app")], {
        renewTime: T0 + 30_000,
        durationSeconds: 40,
        ageAtRead: -30_000,
        readAt: T0,
      }),
    }),
    plan: fullFailOver,
  },
  {
    name: "Ready peer without a kubelet Lease: evicted gracefully",
    snapshot: failOverScene({ peerView: peer(node("node-b"), [pod("app")], null) }),
    plan: fullFailOver,
  },
  {
    name: "terminating pod on a Ready peer with a stale Lease is force-deleted",
    snapshot: failOverScene({
      peerView: peer(
        node("node-b"),
        [pod("app", { deletionTimestamp: "2027-01-15T08:00:00Z" })],
        { renewTime: T0 - 60_000, durationSeconds: 40, ageAtRead: 60_000, readAt: T0 },
      ),
    }),
    plan: [
      `taint-node node-b ${lostQuorum}`,
      "force-delete-pod default/app",
      "delete-volume-attachment csi-b",
    ],
  },
  {
    name: "terminating pod on a NotReady peer is force-deleted",
    snapshot: failOverScene({
      peerNode: node("node-b", { ready: false }),
      peerPods: [pod("app", { deletionTimestamp: "2027-01-15T08:00:00Z" })],
    }),
    plan: [
      `taint-node node-b ${lostQuorum}`,
      "force-delete-pod default/app",
      "delete-volume-attachment csi-b",
    ],
  },
  {
    name: "terminating pod with the ignore annotation is not force-deleted",
    snapshot: failOverScene({
      peerNode: node("node-b", { ready: false }),
      peerPods: [pod("app", { deletionTimestamp: "2027-01-15T08:00:00Z", ignoreFailOver: true })],
    }),
    plan: [`taint-node node-b ${lostQuorum}`],
    verdict: "keep VolumeAttachment csi-b: still used by default/app",
  },
  {
    name: "only a VolumeAttachment left: taint and detach",
    snapshot: failOverScene({ peerPods: [] }),
    plan: [`taint-node node-b ${lostQuorum}`, "delete-volume-attachment csi-b"],
  },
  {
    name: "only a Running pod, no VolumeAttachment",
    snapshot: failOverScene({ volumeAttachments: [] }),
    plan: [`taint-node node-b ${lostQuorum}`, "evict-pod default/app"],
  },
  {
    name: "a Pending pod on a node whose kubelet answers is left to start there, with its " +
      "VolumeAttachment (no create/delete loop while that node's DRBD connects)",
    snapshot: failOverScene({ peerPods: [pod("app", { phase: "Pending" })] }),
    plan: [`taint-node node-b ${lostQuorum}`],
    verdict: "skip pod default/app: Pending on a node whose kubelet answers: left to start " +
      "there, keep VolumeAttachment csi-b: still used by default/app",
  },
  {
    name: "a Pending pod alone on a node whose kubelet answers: the volume is not in use there",
    snapshot: failOverScene({
      peerPods: [pod("app", { phase: "Pending" })],
      volumeAttachments: [],
    }),
    plan: [],
    verdict: "peer node-b: Connecting, volume not in use there",
  },
  {
    name: "a Pending pod on a NotReady node is force-deleted, its VolumeAttachment deleted",
    snapshot: failOverScene({
      peerNode: node("node-b", { ready: false }),
      peerPods: [pod("app", { phase: "Pending" })],
    }),
    plan: [
      `taint-node node-b ${lostQuorum}`,
      "force-delete-pod default/app",
      "delete-volume-attachment csi-b",
    ],
  },
  {
    name:
      "a Pending pod alone on a dead node (Lease stopped) counts as the volume's use: failed over",
    snapshot: failOverScene({
      peerView: peer(node("node-b"), [pod("app", { phase: "Pending" })], {
        renewTime: T0 - 60_000,
        durationSeconds: 40,
        ageAtRead: 60_000,
        readAt: T0,
      }),
      volumeAttachments: [],
    }),
    plan: [`taint-node node-b ${lostQuorum}`, "force-delete-pod default/app"],
  },
  {
    name: "pods of other claims on the peer are not touched",
    snapshot: failOverScene({
      peerPods: [pod("app"), pod("other", { volumes: [pvcVolume("unrelated")] })],
    }),
    plan: fullFailOver,
  },
  {
    name: "VolumeAttachments of other PVs or nodes are not touched",
    snapshot: failOverScene({
      volumeAttachments: [
        va("csi-b", "pvc-1", "node-b"),
        va("csi-c", "pvc-1", "node-c"),
        va("x", "pvc-9", "node-b"),
      ],
    }),
    plan: fullFailOver,
  },
  {
    name: "volume handle <resource>/<volume> maps to the resource",
    snapshot: failOverScene({ persistentVolumes: [pv("pvc-1", { volumeHandle: "pvc-1/0" })] }),
    plan: fullFailOver,
  },
  {
    name: "PV name differs from the resource: the volume handle decides",
    snapshot: failOverScene({
      persistentVolumes: [pv("pv-x", { volumeHandle: "pvc-1" })],
      volumeAttachments: [va("csi-b", "pv-x", "node-b")],
    }),
    plan: fullFailOver,
  },
  {
    name: "a Released PV naming the same claim does not count (Retain policy)",
    snapshot: failOverScene({
      persistentVolumes: [
        pv("pvc-1"),
        pv("pvc-old", { volumeHandle: "pvc-old", phase: "Released" }),
      ],
    }),
    plan: fullFailOver,
  },
  {
    name: "a VolumeAttachment of another attacher naming the PV is not touched",
    snapshot: failOverScene({
      volumeAttachments: [va("csi-b", "pvc-1", "node-b"), {
        ...va("foreign", "pvc-1", "node-b"),
        attacher: "other.csi.example.com",
      }],
    }),
    plan: fullFailOver,
  },
  {
    name: "a lost connection whose satellite pod sits on another lost node fails that node over",
    snapshot: failOverScene({
      resource: {
        connections: [connection("node-b", "Connecting"), connection("sat-b", "NetworkFailure")],
      },
      snapshot: {
        satellitePods: [pod("sat-b", { namespace: "piraeus", nodeName: "node-b", volumes: [] })],
      },
    }),
    plan: fullFailOver,
    verdict: "failing over node-b (Connecting for 5s)",
  },
  {
    name: "connection named after a satellite pod: its node is failed over",
    snapshot: failOverScene({
      resource: { connections: [connection("linstor-satellite-b", "Connecting")] },
      snapshot: {
        satellitePods: [
          pod("linstor-satellite-b", { namespace: "piraeus", nodeName: "node-b", volumes: [] }),
        ],
      },
    }),
    plan: fullFailOver,
  },
];

const noFailOver: Case[] = [
  {
    name: "peer Connected",
    snapshot: failOverScene({ connectionState: "Connected" }),
    plan: [],
    verdict: "healthy",
  },
  {
    name: "quorum off",
    snapshot: failOverScene({
      resource: { config: { ...drbdResource("x").config!, quorum: "off" } },
    }),
    plan: [],
    verdict: "no quorum policy: fail-over disabled",
  },
  {
    name: "configuration not read yet",
    snapshot: failOverScene({ resource: { config: undefined } }),
    plan: [],
    verdict: "no quorum policy: fail-over disabled",
  },
  {
    name: "may not promote (a Primary elsewhere or no UpToDate data)",
    snapshot: failOverScene({ resource: { mayPromote: false } }),
    plan: [],
    verdict: "peer node-b: Connecting (this node may not promote)",
  },
  {
    name: "this node is Primary",
    snapshot: failOverScene({ resource: { role: "Primary", mayPromote: false } }),
    plan: [],
    verdict: "peer node-b: Connecting (this node is Primary)",
  },
  {
    name: "may_promote unknown",
    snapshot: failOverScene({ resource: { mayPromote: undefined } }),
    plan: [],
  },
  {
    name: "PV without claimRef",
    snapshot: failOverScene({ persistentVolumes: [pv("pvc-1", { claimRef: undefined })] }),
    plan: [],
    verdict: "PV pvc-1 has no claim: fail-over disabled",
  },
  {
    name: "no PV",
    snapshot: failOverScene({ persistentVolumes: [] }),
    plan: [],
    verdict: "no PV for this resource",
  },
  {
    name: "PV of another CSI driver with the same handle",
    snapshot: failOverScene({
      persistentVolumes: [pv("pvc-1", { csiDriver: "other.csi.example.com" })],
    }),
    plan: [],
    verdict: "no PV for this resource",
  },
  {
    name: "all consumers mount the claim read-only",
    snapshot: failOverScene({ peerPods: [pod("app", { volumes: [pvcVolume("data", true)] })] }),
    plan: [],
    verdict: "read-only",
  },
  {
    name: "pod of the same claim name in another namespace is no consumer",
    snapshot: failOverScene({
      peerPods: [pod("app", { namespace: "other" })],
      volumeAttachments: [],
    }),
    plan: [],
    verdict: "peer node-b: Connecting, volume not in use there",
  },
  {
    name: "peer fetch failed",
    snapshot: failOverScene({ peerView: { ok: false, error: "connection refused" } }),
    plan: [],
    verdict: "peer node-b: could not fetch pods: connection refused",
  },
  {
    name: "peer not fetched",
    snapshot: failOverScene({ snapshot: { peers: new Map() } }),
    plan: [],
    verdict: "peer node-b: Connecting, node and pods not fetched",
  },
  {
    name: "peer node does not exist",
    snapshot: failOverScene({ peerNode: null }),
    plan: [],
    verdict: "node does not exist",
  },
  {
    name: "nothing uses the volume on the peer (pod Pending, no VolumeAttachment)",
    snapshot: failOverScene({
      peerPods: [pod("app", { phase: "Pending" })],
      volumeAttachments: [],
    }),
    plan: [],
    verdict: "volume not in use there",
  },
  {
    name: "finished pod and no VolumeAttachment",
    snapshot: failOverScene({
      peerPods: [pod("app", { phase: "Succeeded" })],
      volumeAttachments: [],
    }),
    plan: [],
  },
  {
    name: "resource of a Released PV: its stale claim has no consumers (H3)",
    snapshot: failOverScene({
      persistentVolumes: [
        pv("pvc-old", { volumeHandle: "pvc-1", phase: "Released" }),
        pv("pvc-new", { volumeHandle: "pvc-2" }),
      ],
      volumeAttachments: [],
    }),
    plan: [],
    verdict: "PV pvc-old is Released, not Bound to claim default/data: fail-over disabled",
  },
  {
    name: "PV without a reported phase binds no claim",
    snapshot: failOverScene({ persistentVolumes: [pv("pvc-1", { phase: "" })] }),
    plan: [],
    verdict: "PV pvc-1 is of unknown phase, not Bound to claim default/data: fail-over disabled",
  },
  {
    name: "two Bound PVs naming the same claim: ambiguous, no action",
    snapshot: failOverScene({
      persistentVolumes: [pv("pvc-1"), pv("pvc-2", { volumeHandle: "pvc-2" })],
    }),
    plan: [],
    verdict:
      "PV pvc-1 claims default/data, which Bound PV pvc-2 claims as well: fail-over disabled",
  },
  {
    name: "two Bound PVs of one resource naming the same claim: ambiguous, no action",
    snapshot: failOverScene({
      persistentVolumes: [
        pv("pv-a", { volumeHandle: "pvc-1/0" }),
        pv("pv-b", { volumeHandle: "pvc-1/1" }),
      ],
    }),
    plan: [],
    verdict: "PV pv-a claims default/data, which Bound PV pv-b claims as well",
  },
  {
    name: "a pod whose other claim has two Bound PVs is left alone",
    snapshot: failOverScene({
      peerPods: [
        pod("app", { volumes: [pvcVolume("data"), { ...pvcVolume("other"), name: "o" }] }),
      ],
      persistentVolumes: [
        pv("pvc-1"),
        pv("pvc-2", { claimRef: { namespace: "default", name: "other", uid: "u2" } }),
        pv("pvc-3", { claimRef: { namespace: "default", name: "other", uid: "u3" } }),
      ],
    }),
    plan: [`taint-node node-b ${lostQuorum}`],
    verdict: "skip pod default/app: volumes not known to be safe to move: " +
      "o (claim other has several Bound PVs)",
  },
  {
    name:
      "a pod whose other claim has two Bound PVs held claim-only (and one in full) is left alone",
    snapshot: failOverScene({
      peerPods: [
        pod("app", { volumes: [pvcVolume("data"), { ...pvcVolume("other"), name: "o" }] }),
      ],
      persistentVolumes: [
        pv("pvc-1"),
        claimOnlyVolume(
          pv("pvc-2", { claimRef: { namespace: "default", name: "other", uid: "" } }),
        )!,
        claimOnlyVolume(
          pv("pvc-3", { claimRef: { namespace: "default", name: "other", uid: "" } }),
        )!,
        pv("pvc-4", { claimRef: { namespace: "default", name: "other", uid: "u4" } }),
      ],
    }),
    plan: [`taint-node node-b ${lostQuorum}`],
    verdict: "skip pod default/app: volumes not known to be safe to move: " +
      "o (claim other has several Bound PVs)",
  },
  {
    name: "a pod whose other claim's PV, held claim-only, is not on LINSTOR is left alone",
    snapshot: failOverScene({
      peerPods: [
        pod("app", { volumes: [pvcVolume("data"), { ...pvcVolume("other"), name: "o" }] }),
      ],
      persistentVolumes: [
        pv("pvc-1"),
        claimOnlyVolume(
          pv("pvc-2", {
            csiDriver: "nfs.csi.k8s.io",
            claimRef: { namespace: "default", name: "other", uid: "" },
          }),
        )!,
      ],
    }),
    plan: [`taint-node node-b ${lostQuorum}`],
    verdict: "o (claim other not on linstor.csi.linbit.com)",
  },
  {
    name: "a pod whose other claim has only a Released LINSTOR PV is left alone",
    snapshot: failOverScene({
      peerPods: [
        pod("app", { volumes: [pvcVolume("data"), { ...pvcVolume("other"), name: "o" }] }),
      ],
      persistentVolumes: [
        pv("pvc-1"),
        pv("pvc-2", {
          claimRef: { namespace: "default", name: "other", uid: "u2" },
          phase: "Released",
        }),
      ],
    }),
    plan: [`taint-node node-b ${lostQuorum}`],
    verdict: "o (claim other not on linstor.csi.linbit.com)",
  },
  {
    name: "only a VolumeAttachment of another attacher on the peer: volume not in use there",
    snapshot: failOverScene({
      peerPods: [],
      volumeAttachments: [{ ...va("foreign", "pvc-1", "node-b"), attacher: "other.example.com" }],
    }),
    plan: [],
    verdict: "peer node-b: Connecting, volume not in use there",
  },
  {
    name: "a Connected node is not lost through another connection mapped to it (M1)",
    snapshot: failOverScene({
      resource: {
        connections: [connection("node-b", "Connected"), connection("node-c", "Connecting")],
      },
      snapshot: {
        satellitePods: [pod("node-c", { namespace: "linstor", nodeName: "node-b", volumes: [] })],
      },
    }),
    plan: [],
    verdict: "healthy",
  },
  {
    name: "several satellite pods with the connection's name: node unknown, no action",
    snapshot: failOverScene({
      resource: { connections: [connection("sat", "Connecting")] },
      snapshot: {
        satellitePods: [
          pod("sat", { namespace: "piraeus", nodeName: "node-b", volumes: [] }),
          pod("sat", { namespace: "linstor", nodeName: "node-c", volumes: [] }),
        ],
      },
    }),
    plan: [],
    verdict: "peer node-b: several satellite pods are named sat, " +
      "so the node behind that connection is unknown: no action; peer node-c: several",
  },
  {
    name: "an ambiguous Connected connection may be the lost node's: node unknown",
    snapshot: failOverScene({
      resource: {
        connections: [connection("node-b", "Connecting"), connection("sat", "Connected")],
      },
      snapshot: {
        satellitePods: [
          pod("sat", { namespace: "piraeus", nodeName: "node-b", volumes: [] }),
          pod("sat", { namespace: "linstor", nodeName: "node-c", volumes: [] }),
        ],
      },
    }),
    plan: [],
    verdict: "peer node-b: several satellite pods are named sat",
  },
  {
    name: "peer node paused by annotation: not failed over (M4)",
    snapshot: failOverScene({ peerNode: node("node-b", { actionsPaused: true }) }),
    plan: [],
    verdict: "peer node-b: Connecting while the volume is in use there; actions paused by " +
      "annotation drbd.linbit.com/ha-controller-paused on that node",
  },
  {
    name: "connection name without a satellite pod is taken as the node name",
    snapshot: failOverScene({
      resource: { connections: [connection("linstor-satellite-b", "Connecting")] },
    }),
    plan: [],
    verdict: "peer linstor-satellite-b: Connecting, node and pods not fetched",
  },
];

for (const c of [...afterTimeout, ...noFailOver]) {
  Deno.test(`fail-over: ${c.name}`, () => {
    const decision = decide(c.snapshot, c.memory ?? expired(), options(c.options), T0);
    assert.deepEqual(summary(decision.plan), c.plan);
    assert.equal(decision.heldBack, undefined);
    if (c.verdict !== undefined) {
      const verdict = decision.verdicts.find((v) => v.resource === "pvc-1");
      assert.ok(
        verdict?.decision.includes(c.verdict),
        `verdict ${JSON.stringify(verdict?.decision)} should mention ${JSON.stringify(c.verdict)}`,
      );
    }
  });
}

Deno.test("fail-over: read-only consumers elsewhere do not prevent failing over a writer", () => {
  const snapshot = failOverScene({
    snapshot: {
      localPods: [pod("reader", { nodeName: "node-a", volumes: [pvcVolume("data", true)] })],
    },
  });
  const decision = decide(snapshot, expired(), options(), T0);
  assert.deepEqual(summary(decision.plan), fullFailOver);
});

Deno.test("fail-over: actions carry reasons, grace periods and events", () => {
  const ready = decide(failOverScene(), expired(), options({ gracePeriodSeconds: 17 }), T0);
  const [taint, evict, detach] = ready.plan;
  assert.equal(taint.kind, "taint-node");
  assert.equal(taint.resource, "pvc-1");
  assert.match(taint.reason, /node-b.*pvc-1.*Connecting/);
  assert.equal(evict.kind, "evict-pod");
  assert.ok(evict.kind === "evict-pod" && evict.gracePeriodSeconds === 17);
  assert.ok(evict.kind === "evict-pod" && evict.pod.uid === "uid-pod-app");
  assert.match(evict.reason, /default\/app.*node-b.*pvc-1/);
  assert.ok(detach.kind === "delete-volume-attachment" && detach.gracePeriodSeconds === undefined);
  assert.ok(detach.kind === "delete-volume-attachment" && detach.uid === "uid-va-csi-b");
  assert.match(detach.reason, /csi-b.*pvc-1.*node-b/);
  assert.deepEqual(eventSummary(ready.plan), [
    "Warning NodeStorageQuorumLost/TaintedNode Node node-b",
    "Warning VolumeWithoutQuorum/EvictedPod Pod default/app",
    "Warning VolumeWithoutQuorum/VolumeAttachmentDeleted VolumeAttachment csi-b",
  ]);
  assert.equal(taint.events[0].regarding.uid, "uid-node-node-b");
  // related as upstream sets it: the lost node's VolumeAttachment, the pod's PV, none.
  assert.deepEqual(ready.plan.map((action) => action.events[0].related?.name), [
    "csi-b",
    "pvc-1",
    undefined,
  ]);
  assert.equal(taint.events[0].related?.kind, "VolumeAttachment");
  assert.equal(evict.events[0].related?.uid, "uid-pv-pvc-1");

  const notReady = decide(
    failOverScene({ peerNode: node("node-b", { ready: false }) }),
    expired(),
    options(),
    T0,
  );
  const [, remove, detach0] = notReady.plan;
  assert.match(remove.reason, /not Ready/);
  assert.ok(detach0.kind === "delete-volume-attachment" && detach0.gracePeriodSeconds === 0);
  assert.deepEqual(eventSummary(notReady.plan).slice(1), [
    "Warning VolumeWithoutQuorum/EvictedPod Pod default/app",
    "Warning VolumeWithoutQuorum/VolumeAttachmentDeleted VolumeAttachment csi-b",
  ]);
});

Deno.test("fail-over: verdict lists volume, claim and consumers on every known node", () => {
  const snapshot = failOverScene({
    snapshot: { localPods: [pod("local", { nodeName: "node-a" })] },
  });
  const decision = decide(snapshot, memory(), options(), T0);
  assert.deepEqual(decision.verdicts, [{
    resource: "pvc-1",
    persistentVolume: "pvc-1",
    claim: "default/data",
    consumers: ["default/app", "default/local"],
    decision: "waiting 0s of 5s before failing over node-b",
  }]);
});

Deno.test("fail-over: two lost peers of one resource are judged separately", () => {
  const resource = drbdResource("pvc-1", {
    connections: [connection("node-b", "Connecting"), connection("node-c", "NetworkFailure")],
  });
  const snapshot = failOverScene({
    snapshot: {
      drbd: sample([resource]),
      peers: new Map([
        ["node-b", peer(node("node-b"), [pod("app")])],
        ["node-c", peer(node("node-c"), [])],
      ]),
    },
  });
  const decision = decide(snapshot, expired(), options(), T0);
  assert.deepEqual(summary(decision.plan), fullFailOver);
  assert.match(
    decision.verdicts[0].decision,
    /failing over node-b.*; peer node-c: NetworkFailure, volume not in use there/,
  );
});

interface TimerCase {
  name: string;
  snapshot?: Snapshot;
  memory: Memory;
  plan: string[];
  /** Expected fail-over timer of pvc-1/node-b afterwards. */
  timer: number | undefined;
  verdict?: string;
}

const timers: TimerCase[] = [
  {
    name: "condition first seen: timer starts now, nothing done",
    memory: memory(),
    plan: [],
    timer: T0,
    verdict: "waiting 0s of 5s before failing over node-b",
  },
  {
    name: "just below the timeout: still waiting",
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 4_999 } }),
    plan: [],
    timer: T0 - 4_999,
  },
  {
    name: "part of the way: verdict shows progress",
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 3_200 } }),
    plan: [],
    timer: T0 - 3_200,
    verdict: "waiting 3.2s of 5s before failing over node-b",
  },
  {
    name: "half a second in: verdict writes it like the flags",
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 500 } }),
    plan: [],
    timer: T0 - 500,
    verdict: "waiting 500ms of 5s before failing over node-b",
  },
  {
    name: "clock went back: elapsed shows as 0s",
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 + 2_000 } }),
    plan: [],
    timer: T0 + 2_000,
    verdict: "waiting 0s of 5s before failing over node-b",
  },
  {
    name: "exactly at the timeout: fail over",
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 5_000 } }),
    plan: fullFailOver,
    timer: T0 - 5_000,
  },
  {
    name: "well past the timeout: fail over",
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 60_000 } }),
    plan: fullFailOver,
    timer: T0 - 60_000,
  },
  {
    name: "peer reconnected: timer cleared",
    snapshot: failOverScene({ connectionState: "Connected" }),
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 4_000 } }),
    plan: [],
    timer: undefined,
  },
  {
    name: "volume no longer used on the peer: timer cleared",
    snapshot: failOverScene({ peerPods: [], volumeAttachments: [] }),
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 4_000 } }),
    plan: [],
    timer: undefined,
  },
  {
    name: "this node was promoted (may not promote any more): timer cleared",
    snapshot: failOverScene({ resource: { role: "Primary", mayPromote: false } }),
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 4_000 } }),
    plan: [],
    timer: undefined,
  },
  {
    name: "peer fetch failed: running timer kept, no action",
    snapshot: failOverScene({ peerView: { ok: false, error: "timeout" } }),
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 60_000 } }),
    plan: [],
    timer: T0 - 60_000,
  },
  {
    name: "peer node paused: running timer kept, no action",
    snapshot: failOverScene({ peerNode: node("node-b", { actionsPaused: true }) }),
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 60_000 } }),
    plan: [],
    timer: T0 - 60_000,
  },
  {
    name: "node behind the connection unknown: running timer kept, no action",
    snapshot: failOverScene({
      snapshot: {
        satellitePods: [
          pod("node-b", { namespace: "piraeus", nodeName: "node-b", volumes: [] }),
          pod("node-b", { namespace: "linstor", nodeName: "node-b", volumes: [] }),
        ],
      },
    }),
    memory: memory({ failOverSince: { "pvc-1/node-b": T0 - 60_000 } }),
    plan: [],
    timer: T0 - 60_000,
    verdict: "peer node-b: several satellite pods are named node-b",
  },
  {
    name: "node behind the connection unknown: no timer started",
    snapshot: failOverScene({
      snapshot: {
        satellitePods: [
          pod("node-b", { namespace: "piraeus", nodeName: "node-b", volumes: [] }),
          pod("node-b", { namespace: "linstor", nodeName: "node-b", volumes: [] }),
        ],
      },
    }),
    memory: memory(),
    plan: [],
    timer: undefined,
  },
  {
    name: "peer fetch failed: no timer started",
    snapshot: failOverScene({ peerView: { ok: false, error: "timeout" } }),
    memory: memory(),
    plan: [],
    timer: undefined,
  },
];

for (const c of timers) {
  Deno.test(`fail-over timer: ${c.name}`, () => {
    const decision = decide(c.snapshot ?? failOverScene(), c.memory, options(), T0);
    assert.deepEqual(summary(decision.plan), c.plan);
    assert.equal(decision.memory.failOverSince.get("pvc-1/node-b"), c.timer);
    if (c.verdict !== undefined) assert.match(decision.verdicts[0].decision, new RegExp(c.verdict));
  });
}

Deno.test("fail-over timer: clears when the condition goes away and restarts when it returns", () => {
  const opts = options();
  let m = decide(failOverScene(), memory(), opts, T0).memory;
  assert.equal(m.failOverSince.get("pvc-1/node-b"), T0);
  m = decide(failOverScene({ connectionState: "Connected" }), m, opts, T0 + 3_000).memory;
  assert.equal(m.failOverSince.has("pvc-1/node-b"), false);
  const back = decide(failOverScene(), m, opts, T0 + 6_000);
  assert.deepEqual(back.plan, []);
  assert.equal(back.memory.failOverSince.get("pvc-1/node-b"), T0 + 6_000);
});

Deno.test("fail-over: the caller's memory is not modified", () => {
  const before = memory({ failOverSince: { "pvc-1/node-b": T0 - 5_000, "gone/node-x": T0 } });
  const snapshotOfBefore = JSON.stringify([...before.failOverSince], null, 0);
  const decision = decide(failOverScene(), before, options(), T0);
  assert.equal(JSON.stringify([...before.failOverSince]), snapshotOfBefore);
  assert.equal(before.failOvers.size, 0);
  assert.notEqual(decision.memory.failOverSince, before.failOverSince);
  assert.equal(decision.memory.failOvers.get("pvc-1")?.count, 1);
});

/** A LINSTOR PV as the API server sends it; no phase means no status. */
function apiPersistentVolume(
  claimRef: V1ObjectReference,
  phase: string | undefined,
): V1PersistentVolume {
  return {
    metadata: { name: "pvc-1", uid: "uid-pv-pvc-1" },
    spec: { csi: { driver: "linstor.csi.linbit.com", volumeHandle: "pvc-1" }, claimRef },
    ...(phase === undefined ? {} : { status: { phase } }),
  };
}

const claimRefCases = [
  {
    name: "claimRef of kind PersistentVolumeClaim",
    claimRef: {
      kind: "PersistentVolumeClaim",
      apiVersion: "v1",
      namespace: "default",
      name: "data",
    },
    plan: fullFailOver,
  },
  {
    name: "claimRef with empty kind and apiVersion (older binders)",
    claimRef: { kind: "", apiVersion: "", namespace: "default", name: "data" },
    plan: fullFailOver,
  },
  {
    name: "claimRef without kind and apiVersion",
    claimRef: { namespace: "default", name: "data" },
    plan: fullFailOver,
  },
  {
    name: "claimRef of another kind is no claim",
    claimRef: { kind: "Other", apiVersion: "example.com/v1", namespace: "default", name: "data" },
    plan: [],
  },
  {
    name: "PV in phase Released keeps its claimRef but binds nothing",
    claimRef: { kind: "PersistentVolumeClaim", namespace: "default", name: "data" },
    phase: "Released",
    plan: [],
  },
  {
    name: "PV without status binds nothing",
    claimRef: { kind: "PersistentVolumeClaim", namespace: "default", name: "data" },
    phase: undefined,
    plan: [],
  },
];

for (const c of claimRefCases) {
  Deno.test(`fail-over: ${c.name}`, () => {
    const phase = "phase" in c ? c.phase : "Bound";
    const slim = slimPersistentVolume(apiPersistentVolume(c.claimRef, phase));
    assert.ok(slim);
    const decision = decide(failOverScene({ persistentVolumes: [slim] }), expired(), options(), T0);
    assert.deepEqual(summary(decision.plan), c.plan);
  });
}

Deno.test("fail-over rank: a connected peer that sorts first acts first; this agent waits its turn", () => {
  // node-0 (sorts before node-a) and node-c are still Connected: node-0's agent goes first.
  const resource = {
    connections: [
      connection("node-b", "Connecting"),
      connection("node-0", "Connected"),
      connection("node-c", "Connected"),
    ],
  };
  const s = failOverScene({ resource });
  assert.equal(failOverRank(s.drbd.resources[0], s), 1);
  const early = decide(s, expired(), options(), T0);
  assert.deepEqual(summary(early.plan), []);
  assert.match(
    early.verdicts[0].decision,
    /waiting 5s of 7s before failing over node-b \(after the agent of 1 connected peer before this node\)/,
  );
  const turn = memory({ failOverSince: { "pvc-1/node-b": T0 - 7_000 } });
  assert.deepEqual(summary(decide(s, turn, options(), T0).plan), fullFailOver);

  // Peers that are not Connected, or sort after this node, do not delay it.
  const alone = failOverScene({
    resource: {
      connections: [connection("node-b", "Connecting"), connection("node-c", "Connected")],
    },
  });
  assert.equal(failOverRank(alone.drbd.resources[0], alone), 0);
  assert.deepEqual(summary(decide(alone, expired(), options(), T0).plan), fullFailOver);
});

Deno.test("fail-over: after an earlier agent's turn its actions are not repeated", () => {
  // What node-0's agent did is visible: node-b tainted, the pod terminating
  // (evicted from a Ready node), the VolumeAttachment being deleted.
  const done = failOverScene({
    peerNode: node("node-b", { taints: [{ key: lostQuorum, effect: "NoSchedule" }] }),
    peerPods: [pod("app", { deletionTimestamp: "2027-01-15T08:00:00Z" })],
    volumeAttachments: [{ ...va("csi-b", "pvc-1", "node-b"), deleting: true }],
  });
  const decision = decide(done, expired(), options(), T0);
  assert.deepEqual(summary(decision.plan), []);
  assert.match(
    decision.verdicts[0].decision,
    /node already tainted, skip pod default\/app: already terminating, VolumeAttachment csi-b already being deleted/,
  );
});

Deno.test("--out-of-service-taint: a dead peer is also tainted out-of-service, before its pods go; a live one is not", () => {
  const outOfService = "node.kubernetes.io/out-of-service";
  const dead = failOverScene({ peerNode: node("node-b", { ready: false }) });
  const plan = decide(dead, expired(), options({ outOfServiceTaint: true }), T0).plan;
  assert.deepEqual(summary(plan), [
    `taint-node node-b ${lostQuorum}`,
    `taint-node node-b ${outOfService}`,
    "force-delete-pod default/app",
    "delete-volume-attachment csi-b",
  ]);
  const taint = plan[1];
  assert.ok(taint.kind === "taint-node");
  assert.deepEqual(taint.taint, { key: outOfService, value: "ha-controller", effect: "NoExecute" });
  // Off by default; never on a node whose kubelet answers; not twice.
  assert.deepEqual(
    summary(decide(dead, expired(), options(), T0).plan)[1],
    "force-delete-pod default/app",
  );
  assert.ok(
    !summary(decide(failOverScene(), expired(), options({ outOfServiceTaint: true }), T0).plan)
      .some((a) => a.includes(outOfService)),
  );
  const already = failOverScene({
    peerNode: node("node-b", {
      ready: false,
      taints: [{ key: outOfService, value: "ha-controller", effect: "NoExecute" }],
    }),
  });
  assert.ok(
    !summary(decide(already, expired(), options({ outOfServiceTaint: true }), T0).plan)
      .some((a) => a.includes(outOfService)),
  );
});
