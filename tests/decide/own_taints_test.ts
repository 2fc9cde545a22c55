import assert from "node:assert/strict";
import { decide, peersToInspect } from "../../lib/decide/mod.ts";
import type { Memory, PeerView } from "../../lib/decide/types.ts";
import type { DrbdResource } from "../../lib/drbd/model.ts";
import type { Taint } from "../../lib/kube/objects.ts";
import type { Options } from "../../lib/options.ts";
import {
  config,
  connection,
  device,
  drbdResource,
  eventSummary,
  memory,
  node,
  options,
  peer,
  sample,
  snapshot,
  summary,
  T0,
  va,
} from "./fixtures.ts";

const lostQuorum: Taint = { key: "drbd.linbit.com/lost-quorum", effect: "NoSchedule" };
const forceIoError: Taint = { key: "drbd.linbit.com/force-io-error", effect: "NoSchedule" };
const foreign: Taint = { key: "example.com/maintenance", effect: "NoSchedule" };

const withQuorum = (name: string) => drbdResource(name, { mayPromote: false });
const withoutQuorum = (name: string) =>
  drbdResource(name, {
    mayPromote: false,
    suspended: { user: false, noData: false, fencing: false, quorum: true },
    devices: [device({ quorum: false })],
  });
const forcingIo = (name: string) =>
  drbdResource(name, { role: "Secondary", mayPromote: false, forceIoFailures: true });

interface Case {
  name: string;
  resources: DrbdResource[];
  taints?: Taint[];
  memory?: Memory;
  options?: Partial<Options>;
  plan: string[];
  events?: string[];
  /** Expected quorum-loss timer of r0 afterwards. */
  timer?: number | undefined;
  verdict?: string;
}

const cases: Case[] = [
  {
    name: "quorum lost just now: timer starts, no taint",
    resources: [withoutQuorum("r0")],
    plan: [],
    timer: T0,
    verdict: "no quorum on this node for 0s of 5s before tainting it",
  },
  {
    name: "quorum lost just below the timeout: no taint",
    resources: [withoutQuorum("r0")],
    memory: memory({ quorumLostSince: { r0: T0 - 4_999 } }),
    plan: [],
    timer: T0 - 4_999,
  },
  {
    name: "quorum lost for exactly the timeout: taint",
    resources: [withoutQuorum("r0")],
    memory: memory({ quorumLostSince: { r0: T0 - 5_000 } }),
    plan: [`taint-node node-a ${lostQuorum.key}`],
    events: ["Warning NodeStorageQuorumLost/TaintedNode Node node-a"],
    timer: T0 - 5_000,
    verdict: "no quorum on this node for 5s",
  },
  {
    name: "quorum lost for long, foreign taint present: only ours is added",
    resources: [withoutQuorum("r0")],
    taints: [foreign],
    memory: memory({ quorumLostSince: { r0: T0 - 60_000 } }),
    plan: [`taint-node node-a ${lostQuorum.key}`],
  },
  {
    name: "quorum lost for long, already tainted: nothing",
    resources: [withoutQuorum("r0")],
    taints: [lostQuorum],
    memory: memory({ quorumLostSince: { r0: T0 - 60_000 } }),
    plan: [],
  },
  {
    name: "tainted, one resource lost quorum only briefly: taint stays",
    resources: [withQuorum("r1"), withoutQuorum("r0")],
    taints: [lostQuorum],
    plan: [],
    timer: T0,
  },
  {
    name: "tainted, every resource has quorum: untaint",
    resources: [withQuorum("r0"), withQuorum("r1")],
    taints: [foreign, lostQuorum],
    memory: memory({ quorumLostSince: { r0: T0 - 60_000 } }),
    plan: [`untaint-node node-a ${lostQuorum.key}`],
    events: ["Normal NodeStorageQuorumRegained/UntaintedNode Node node-a"],
    timer: undefined,
  },
  {
    name: "tainted, a resource's configuration not read yet: taint kept (L7)",
    resources: [drbdResource("r0", { mayPromote: false, config: undefined }), withQuorum("r1")],
    taints: [lostQuorum],
    plan: [],
    verdict: "quorum policy not read yet: lost-quorum taint of this node kept",
  },
  {
    name: "untainted, a resource's configuration not read yet: nothing to say",
    resources: [drbdResource("r0", { mayPromote: false, config: undefined })],
    plan: [],
    verdict: "no PV for this resource",
  },
  {
    name: "quorum lost for a minute: verdict writes the duration like the flags",
    resources: [withoutQuorum("r0")],
    taints: [lostQuorum],
    memory: memory({ quorumLostSince: { r0: T0 - 60_000 } }),
    plan: [],
    verdict: "no quorum on this node for 1m0s",
  },
  {
    name: "tainted, no DRBD resources at all: untaint",
    resources: [],
    taints: [lostQuorum],
    plan: [`untaint-node node-a ${lostQuorum.key}`],
  },
  {
    name: "healthy, foreign taints only: nothing",
    resources: [withQuorum("r0")],
    taints: [foreign, { key: lostQuorum.key, effect: "NoExecute" }],
    plan: [],
  },
  {
    name: "quorum off never taints (a device without quorum is ignored)",
    resources: [
      drbdResource("r0", {
        config: config({ quorum: "off" }),
        devices: [device({ quorum: false })],
      }),
    ],
    memory: memory({ quorumLostSince: { r0: T0 - 60_000 } }),
    plan: [],
    timer: undefined,
  },
  {
    name: "resource forcing I/O errors: force-io-error taint",
    resources: [forcingIo("r0")],
    plan: [`taint-node node-a ${forceIoError.key}`],
    events: ["Warning VolumeForcingIoErrors/TaintedNode Node node-a"],
    verdict: "forcing I/O errors",
  },
  {
    name: "forcing I/O errors, already tainted: nothing",
    resources: [forcingIo("r0")],
    taints: [forceIoError],
    plan: [],
  },
  {
    name: "no resource forces I/O errors any more: untaint",
    resources: [withQuorum("r0")],
    taints: [forceIoError, foreign],
    plan: [`untaint-node node-a ${forceIoError.key}`],
    events: ["Normal NoVolumeForcingIoErrors/UntaintedNode Node node-a"],
  },
  {
    name: "both conditions at once: both taints",
    resources: [withoutQuorum("r0"), forcingIo("r1")],
    memory: memory({ quorumLostSince: { r0: T0 - 5_000 } }),
    plan: [`taint-node node-a ${lostQuorum.key}`, `taint-node node-a ${forceIoError.key}`],
  },
  {
    name: "disableNodeTaints: no taint despite long quorum loss and forced I/O errors",
    resources: [withoutQuorum("r0"), forcingIo("r1")],
    memory: memory({ quorumLostSince: { r0: T0 - 60_000 } }),
    options: { disableNodeTaints: true },
    plan: [],
    verdict: "no quorum on this node (node taints disabled)",
  },
  {
    name: "disableNodeTaints: our taints are not removed either",
    resources: [withQuorum("r0")],
    taints: [lostQuorum, forceIoError],
    options: { disableNodeTaints: true },
    plan: [],
  },
];

for (const c of cases) {
  Deno.test(`own taints: ${c.name}`, () => {
    const s = snapshot({
      drbd: sample(c.resources),
      ownNode: node("node-a", { taints: c.taints ?? [] }),
    });
    const decision = decide(s, c.memory ?? memory(), options(c.options), T0);
    assert.deepEqual(summary(decision.plan), c.plan);
    if (c.events) assert.deepEqual(eventSummary(decision.plan), c.events);
    if ("timer" in c) assert.equal(decision.memory.quorumLostSince.get("r0"), c.timer);
    if (c.verdict !== undefined) {
      const verdict = decision.verdicts.find((v) => v.resource === c.resources[0].name);
      assert.ok(
        verdict?.decision.includes(c.verdict),
        `verdict ${JSON.stringify(verdict?.decision)} should mention ${JSON.stringify(c.verdict)}`,
      );
    }
  });
}

Deno.test("own taints: the taint action names the resources and carries only our taint", () => {
  const s = snapshot({
    drbd: sample([withoutQuorum("r0"), withoutQuorum("r1")]),
    ownNode: node("node-a", { taints: [foreign] }),
  });
  const m = memory({ quorumLostSince: { r0: T0 - 9_000, r1: T0 - 6_000 } });
  const [taint] = decide(s, m, options(), T0).plan;
  assert.ok(taint.kind === "taint-node");
  assert.deepEqual(taint.taint, lostQuorum);
  assert.equal(taint.resource, undefined);
  assert.match(taint.reason, /r0, r1.*node-a/);
  assert.equal(taint.events[0].regarding.uid, "uid-node-node-a");
});

Deno.test("own taints: a fresh resource briefly without quorum never taints", () => {
  const opts = options();
  const s = (r: DrbdResource) => snapshot({ drbd: sample([r]) });
  let m = memory();
  for (const at of [0, 1_000, 2_000, 4_000]) {
    const decision = decide(s(withoutQuorum("r0")), m, opts, T0 + at);
    assert.deepEqual(decision.plan, []);
    m = decision.memory;
  }
  const healed = decide(s(withQuorum("r0")), m, opts, T0 + 4_500);
  assert.deepEqual(healed.plan, []);
  assert.equal(healed.memory.quorumLostSince.has("r0"), false);
  // Losing quorum again starts from zero.
  const again = decide(s(withoutQuorum("r0")), healed.memory, opts, T0 + 6_000);
  assert.deepEqual(again.plan, []);
  assert.equal(again.memory.quorumLostSince.get("r0"), T0 + 6_000);
});

// --- the whole-cluster outage guard ------------------------------------------

/** r0 without quorum here, its peers `peers` not Connected. */
const cutOff = (peers: string[]) =>
  drbdResource("r0", {
    mayPromote: false,
    suspended: { user: false, noData: false, fencing: false, quorum: true },
    devices: [device({ quorum: false })],
    connections: peers.map((p) => connection(p, "Connecting")),
  });

const tainted = (name: string) => node(name, { taints: [lostQuorum] });

interface GuardCase {
  name: string;
  peers: string[];
  views: Record<string, PeerView>;
  /** ms since the quorum loss (default 5 s, the fail-over timeout). */
  lostFor?: number;
  plan: string[];
  verdict?: string;
}

const guardCases: GuardCase[] = [
  {
    name: "only this node lost quorum (its peers are Ready, untainted): taint",
    peers: ["node-b", "node-c"],
    views: { "node-b": peer(node("node-b"), []), "node-c": peer(node("node-c"), []) },
    plan: [`taint-node node-a ${lostQuorum.key}`],
  },
  {
    name: "one of two peers lost quorum too (tainted): half are down, no taint",
    peers: ["node-b", "node-c"],
    views: { "node-b": peer(tainted("node-b"), []), "node-c": peer(node("node-c"), []) },
    plan: [],
    verdict: "outage guard: 1 of 2 peer nodes (node-b) are down or lost quorum too, " +
      "so this node is not tainted",
  },
  {
    name: "one of three peers down: taint",
    peers: ["node-b", "node-c", "node-d"],
    views: {
      "node-b": peer(node("node-b", { ready: false }), []),
      "node-c": peer(node("node-c"), []),
      "node-d": peer(node("node-d"), []),
    },
    plan: [`taint-node node-a ${lostQuorum.key}`],
  },
  {
    name: "peers NotReady, unreadable or missing count as down: no taint",
    peers: ["node-b", "node-c"],
    views: {
      "node-b": peer(node("node-b", { ready: false }), []),
      "node-c": { ok: false, error: "timeout" },
    },
    plan: [],
    verdict: "outage guard: 2 of 2 peer nodes (node-b, node-c)",
  },
  {
    name: "peers not fetched (yet): no taint",
    peers: ["node-b"],
    views: {},
    plan: [],
    verdict: "outage guard: 1 of 1 peer nodes (node-b)",
  },
  {
    name: "a peer that sorts first: this node waits its turn (2 s more)",
    peers: ["node-0", "node-b"],
    views: { "node-0": peer(node("node-0"), []), "node-b": peer(node("node-b"), []) },
    plan: [],
    verdict: "no quorum on this node for 5s of 7s before tainting it",
  },
  {
    name: "a peer that sorts first tainted itself in its turn: no taint here",
    peers: ["node-0", "node-b"],
    views: { "node-0": peer(tainted("node-0"), []), "node-b": peer(node("node-b"), []) },
    lostFor: 7_000,
    plan: [],
    verdict: "outage guard: 1 of 2 peer nodes (node-0)",
  },
  {
    name: "a peer that sorts first did not act in its turn: taint",
    peers: ["node-0", "node-b"],
    views: { "node-0": peer(node("node-0"), []), "node-b": peer(node("node-b"), []) },
    lostFor: 7_000,
    plan: [`taint-node node-a ${lostQuorum.key}`],
  },
];

for (const c of guardCases) {
  Deno.test(`own taints, outage guard: ${c.name}`, () => {
    const s = snapshot({
      drbd: sample([cutOff(c.peers)]),
      peers: new Map(Object.entries(c.views)),
    });
    const m = memory({ quorumLostSince: { r0: T0 - (c.lostFor ?? 5_000) } });
    const decision = decide(s, m, options(), T0);
    assert.deepEqual(summary(decision.plan), c.plan);
    if (c.verdict !== undefined) {
      assert.ok(
        decision.verdicts[0].decision.includes(c.verdict),
        `verdict ${JSON.stringify(decision.verdicts[0].decision)} should mention ${c.verdict}`,
      );
    }
  });
}

Deno.test("own taints, outage guard: the loop fetches the peers of quorum-less resources until tainted", () => {
  const s = snapshot({ drbd: sample([cutOff(["node-c", "node-b"]), withQuorum("r1")]) });
  assert.deepEqual(peersToInspect(s, options()), ["node-b", "node-c"]);
  assert.deepEqual(peersToInspect({ ...s, ownNode: tainted("node-a") }, options()), []);
  assert.deepEqual(peersToInspect(s, options({ disableNodeTaints: true })), []);
  // With the loop's timers: only once the quorum loss lasted the fail-over timeout.
  const fresh = { memory: memory({ quorumLostSince: { r0: T0 - 1_000 } }), now: T0 };
  assert.deepEqual(peersToInspect(s, options(), fresh), []);
  const matured = { memory: memory({ quorumLostSince: { r0: T0 - 5_000 } }), now: T0 };
  assert.deepEqual(peersToInspect(s, options(), matured), ["node-b", "node-c"]);
});

// --- a node whose DRBD is not configured yet (slow satellite after a reboot) --

Deno.test("own taints: lost-quorum kept while a volume is attached here without its DRBD resource", () => {
  const attachedHere = [va("csi-a", "pvc-9", "node-a")];
  const tainted = node("node-a", { taints: [lostQuorum] });
  // No DRBD resource at all yet: "every resource has quorum" must not untaint.
  const waiting = decide(
    snapshot({ ownNode: tainted, drbd: sample([]), volumeAttachments: attachedHere }),
    memory(),
    options(),
    T0,
  );
  assert.deepEqual(summary(waiting.plan), []);
  // The resource configured with quorum: untaint.
  const configured = decide(
    snapshot({
      ownNode: tainted,
      drbd: sample([withQuorum("pvc-9")]),
      volumeAttachments: attachedHere,
    }),
    memory(),
    options(),
    T0,
  );
  assert.deepEqual(summary(configured.plan), [`untaint-node node-a ${lostQuorum.key}`]);
  // Attachments to other nodes do not keep this node's taint.
  const elsewhere = decide(
    snapshot({
      ownNode: tainted,
      drbd: sample([]),
      volumeAttachments: [va("csi-b", "pvc-9", "node-b")],
    }),
    memory(),
    options(),
    T0,
  );
  assert.deepEqual(summary(elsewhere.plan), [`untaint-node node-a ${lostQuorum.key}`]);
  // With another resource present, its verdict says why the taint stays.
  const noted = decide(
    snapshot({
      ownNode: tainted,
      drbd: sample([withQuorum("r1")]),
      volumeAttachments: attachedHere,
    }),
    memory(),
    options(),
    T0,
  );
  assert.deepEqual(summary(noted.plan), []);
  assert.match(
    noted.verdicts[0].decision,
    /lost-quorum taint kept: VolumeAttachment csi-a \(volume pvc-9\) attached to this node without a DRBD resource here yet/,
  );
});

Deno.test("own taints: the out-of-service taint ha-controller set is removed once quorum is back; an administrator's stays", () => {
  const ours = {
    key: "node.kubernetes.io/out-of-service",
    value: "ha-controller",
    effect: "NoExecute",
  };
  const admins = { ...ours, value: "nodeshutdown" };
  const withOurs = decide(
    snapshot({ ownNode: node("node-a", { taints: [ours] }), drbd: sample([withQuorum("r0")]) }),
    memory(),
    options(),
    T0,
  );
  assert.deepEqual(summary(withOurs.plan), [
    "untaint-node node-a node.kubernetes.io/out-of-service",
  ]);
  const removal = withOurs.plan[0];
  assert.ok(removal.kind === "untaint-node" && removal.taint.value === "ha-controller");
  const withAdmins = decide(
    snapshot({ ownNode: node("node-a", { taints: [admins] }), drbd: sample([withQuorum("r0")]) }),
    memory(),
    options(),
    T0,
  );
  assert.deepEqual(summary(withAdmins.plan), []);
  // Kept while a resource still lacks quorum.
  const lacking = decide(
    snapshot({ ownNode: node("node-a", { taints: [ours] }), drbd: sample([withoutQuorum("r0")]) }),
    memory(),
    options(),
    T0,
  );
  assert.ok(!summary(lacking.plan).some((a) => a.includes("out-of-service")));
});
