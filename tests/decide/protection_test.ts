import assert from "node:assert/strict";
import {
  decide,
  drbdStalenessBound,
  failOverBackoffReset,
  failOverDelay,
  maxFailOverDelay,
  recordIssued,
} from "../../lib/decide/mod.ts";
import type { Memory, Snapshot } from "../../lib/decide/types.ts";
import {
  device,
  drbdResource,
  failOverScene,
  memory,
  node,
  options,
  pod,
  pv,
  sample,
  snapshot,
  summary,
  T0,
} from "./fixtures.ts";

const lostQuorum = "drbd.linbit.com/lost-quorum";
const fullFailOver = [
  `taint-node node-b ${lostQuorum}`,
  "evict-pod default/app",
  "delete-volume-attachment csi-b",
];
/** The snapshot as DRBD confirmed it at `now`. */
/** The snapshot as seen at `now`: DRBD confirmed and live kubelets' Leases renewed then. */
const at = (s: Snapshot, now: number): Snapshot => ({
  ...s,
  drbd: { ...s.drbd, confirmedAt: now },
  peers: new Map(
    [...s.peers].map(([name, view]) => [
      name,
      view.ok && view.kubeletLease
        ? {
          ...view,
          kubeletLease: { ...view.kubeletLease, renewTime: now, ageAtRead: 0, readAt: now },
        }
        : view,
    ]),
  ),
});
const expired = (extra: Parameters<typeof memory>[0] = {}) =>
  memory({ failOverSince: { "pvc-1/node-b": T0 - 5_000 }, ...extra });

// ---------------------------------------------------------------- hold back

interface HoldCase {
  name: string;
  snapshot: Snapshot;
  heldBack: RegExp;
}

const bound = drbdStalenessBound(options());

const holds: HoldCase[] = [
  {
    name: "pause annotation on the own node",
    snapshot: failOverScene({ snapshot: { ownNode: node("node-a", { actionsPaused: true }) } }),
    heldBack:
      /^actions paused by annotation drbd\.linbit\.com\/ha-controller-paused on node node-a$/,
  },
  {
    name: "DRBD state older than 2 × drbdStatusInterval + failOverTimeout",
    snapshot: failOverScene({
      snapshot: { drbd: { ...failOverScene().drbd, confirmedAt: T0 - bound - 1 } },
    }),
    heldBack: /^DRBD state is stale: last confirmed 15s ago, limit 15s$/,
  },
  {
    name: "DRBD state minutes old",
    snapshot: failOverScene({
      snapshot: { drbd: { ...failOverScene().drbd, confirmedAt: T0 - 90_000 } },
    }),
    heldBack: /^DRBD state is stale: last confirmed 1m30s ago, limit 15s$/,
  },
  {
    name: "DRBD could not be read",
    snapshot: failOverScene({
      snapshot: { drbd: sample([], { availability: "error", message: "drbdsetup exited 10" }) },
    }),
    heldBack: /^DRBD state unavailable \(error\): drbdsetup exited 10$/,
  },
  {
    name: "DRBD module not loaded",
    snapshot: failOverScene({ snapshot: { drbd: sample([], { availability: "not-loaded" }) } }),
    heldBack: /^DRBD state unavailable \(not-loaded\)$/,
  },
  {
    name: "caches not synced",
    snapshot: failOverScene({ snapshot: { cachesSynced: false } }),
    heldBack: /^Kubernetes caches have not synced yet$/,
  },
  {
    name: "own Node unknown",
    snapshot: failOverScene({ snapshot: { ownNode: undefined } }),
    heldBack: /^own Node node-a is not known$/,
  },
  {
    name: "several reasons at once",
    snapshot: failOverScene({
      snapshot: { cachesSynced: false, ownNode: undefined },
    }),
    heldBack: /^own Node node-a is not known; Kubernetes caches have not synced yet$/,
  },
];

for (const c of holds) {
  Deno.test(`hold back: ${c.name}: empty plan, heldBack says why`, () => {
    const decision = decide(c.snapshot, expired(), options(), T0);
    assert.deepEqual(decision.plan, []);
    assert.match(decision.heldBack ?? "", c.heldBack);
    // Nothing was done, so no fail-over is counted.
    assert.equal(decision.memory.failOvers.size, 0);
  });
}

Deno.test("hold back: DRBD state exactly at the staleness bound is still trusted", () => {
  assert.equal(bound, 15_000);
  const s = failOverScene({
    snapshot: { drbd: { ...failOverScene().drbd, confirmedAt: T0 - bound } },
  });
  const decision = decide(s, expired(), options(), T0);
  assert.equal(decision.heldBack, undefined);
  assert.deepEqual(summary(decision.plan), fullFailOver);
});

Deno.test("hold back: pause still computes verdicts and keeps timers running", () => {
  const s = failOverScene({ snapshot: { ownNode: node("node-a", { actionsPaused: true }) } });
  const decision = decide(s, memory(), options(), T0);
  assert.equal(decision.memory.failOverSince.get("pvc-1/node-b"), T0);
  const later = decide(at(s, T0 + 5_000), decision.memory, options(), T0 + 5_000);
  assert.deepEqual(later.plan, []);
  assert.match(
    later.verdicts[0].decision,
    /failing over node-b.*evict pod default\/app.*held back/,
  );
  // Once the annotation is gone, the agent acts at once (the condition lasted long enough).
  const resumed = decide(at(failOverScene(), T0 + 6_000), later.memory, options(), T0 + 6_000);
  assert.deepEqual(summary(resumed.plan), fullFailOver);
  assert.equal(resumed.heldBack, undefined);
});

Deno.test("hold back: untrusted data starts no timer", () => {
  const stale = failOverScene({ snapshot: { cachesSynced: false } });
  const decision = decide(stale, memory(), options(), T0);
  assert.equal(decision.memory.failOverSince.size, 0);
  assert.match(decision.verdicts[0].decision, /timer not started while held back/);
  const quorumLess = snapshot({
    cachesSynced: false,
    drbd: sample([drbdResource("r0", { devices: [device({ quorum: false })] })]),
  });
  assert.equal(decide(quorumLess, memory(), options(), T0).memory.quorumLostSince.size, 0);
});

Deno.test("hold back: unreadable DRBD drops every running timer and acts on none", () => {
  const before = memory({
    failOverSince: { "pvc-1/node-b": T0 - 60_000 },
    quorumLostSince: { r0: T0 - 60_000 },
    suspendedSince: { r0: T0 - 60_000 },
  });
  const unreadable = failOverScene({ snapshot: { drbd: sample([], { availability: "error" }) } });
  const decision = decide(unreadable, before, options(), T0);
  assert.deepEqual(decision.plan, []);
  assert.equal(decision.memory.failOverSince.size, 0);
  assert.equal(decision.memory.quorumLostSince.size, 0);
  assert.equal(decision.memory.suspendedSince.size, 0);
});

// ------------------------------------------------- timers across hold-backs

/** One decision cycle of a sequence: the snapshot seen `at` ms after T0 and what follows. */
interface Cycle {
  at: number;
  snapshot: Snapshot;
  plan: string[];
  /** Expected timers afterwards, by map and key (undefined: no timer). */
  timers: Partial<Record<"failOverSince" | "quorumLostSince" | "suspendedSince", number>>;
  verdict?: RegExp;
  /** DRBD state as last confirmed at T0 (stale when `at` is past the bound). */
  stale?: boolean;
}

const tenMinutes = 600_000;
const lost = () => failOverScene();
const quorumLess = (overrides: Partial<Snapshot> = {}) =>
  snapshot({
    drbd: sample([drbdResource("r0", { devices: [device({ quorum: false })] })]),
    ...overrides,
  });
const quorate = (overrides: Partial<Snapshot> = {}) =>
  snapshot({ drbd: sample([drbdResource("r0")]), ...overrides });
const suspendedPrimary = (suspended: boolean, overrides: Partial<Snapshot> = {}) =>
  snapshot({
    drbd: sample([drbdResource("pvc-1", {
      role: "Primary",
      mayPromote: false,
      suspended: { user: false, noData: suspended, fencing: false, quorum: false },
    })]),
    localPods: [pod("app", { nodeName: "node-a", deletionTimestamp: "2027-01-15T08:00:00Z" })],
    persistentVolumes: [pv("pvc-1")],
    ...overrides,
  });

const sequences: { name: string; cycles: Cycle[] }[] = [
  {
    name: "peer reconnected while the caches were unsynced: a new disconnect waits again",
    cycles: [
      { at: 0, snapshot: lost(), plan: [], timers: { failOverSince: T0 } },
      {
        at: tenMinutes,
        snapshot: failOverScene({
          connectionState: "Connected",
          snapshot: { cachesSynced: false },
        }),
        plan: [],
        timers: {},
      },
      {
        at: tenMinutes + 1_000,
        snapshot: lost(),
        plan: [],
        timers: { failOverSince: T0 + tenMinutes + 1_000 },
        verdict: /^waiting 0s of 5s before failing over node-b$/,
      },
      {
        at: tenMinutes + 6_000,
        snapshot: lost(),
        plan: fullFailOver,
        timers: { failOverSince: T0 + tenMinutes + 1_000 },
      },
    ],
  },
  {
    name: "peer reconnected while the own Node was unknown: timer dropped",
    cycles: [
      { at: 0, snapshot: lost(), plan: [], timers: { failOverSince: T0 } },
      {
        at: 3_000,
        snapshot: failOverScene({ connectionState: "Connected", snapshot: { ownNode: undefined } }),
        plan: [],
        timers: {},
      },
      { at: 6_000, snapshot: lost(), plan: [], timers: { failOverSince: T0 + 6_000 } },
    ],
  },
  {
    name: "peer still lost while the caches were unsynced (no PVs listed): timer kept",
    cycles: [
      { at: 0, snapshot: lost(), plan: [], timers: { failOverSince: T0 } },
      {
        at: 3_000,
        snapshot: failOverScene({
          persistentVolumes: [],
          snapshot: { cachesSynced: false, satellitePods: [] },
        }),
        plan: [],
        timers: { failOverSince: T0 },
      },
      { at: 5_000, snapshot: lost(), plan: fullFailOver, timers: { failOverSince: T0 } },
    ],
  },
  {
    name: "this node promoted while the caches were unsynced: timer dropped",
    cycles: [
      { at: 0, snapshot: lost(), plan: [], timers: { failOverSince: T0 } },
      {
        at: 3_000,
        snapshot: failOverScene({
          resource: { role: "Primary", mayPromote: false },
          snapshot: { cachesSynced: false },
        }),
        plan: [],
        timers: {},
      },
      { at: 5_000, snapshot: lost(), plan: [], timers: { failOverSince: T0 + 5_000 } },
    ],
  },
  {
    name: "untrusted Kubernetes data starts no timer",
    cycles: [
      {
        at: 0,
        snapshot: failOverScene({ snapshot: { cachesSynced: false } }),
        plan: [],
        timers: {},
      },
      { at: 1_000, snapshot: lost(), plan: [], timers: { failOverSince: T0 + 1_000 } },
    ],
  },
  {
    name: "DRBD unreadable in between: the fail-over timer starts again",
    cycles: [
      { at: 0, snapshot: lost(), plan: [], timers: { failOverSince: T0 } },
      {
        at: 3_000,
        snapshot: failOverScene({ snapshot: { drbd: sample([], { availability: "error" }) } }),
        plan: [],
        timers: {},
      },
      { at: 6_000, snapshot: lost(), plan: [], timers: { failOverSince: T0 + 6_000 } },
    ],
  },
  {
    name: "DRBD stale in between: the fail-over timer starts again",
    cycles: [
      { at: 0, snapshot: lost(), plan: [], timers: { failOverSince: T0 } },
      { at: bound + 1, snapshot: lost(), stale: true, plan: [], timers: {} },
      { at: bound + 2, snapshot: lost(), plan: [], timers: { failOverSince: T0 + bound + 2 } },
    ],
  },
  {
    name: "quorum regained while the caches were unsynced: a new loss waits again",
    cycles: [
      { at: 0, snapshot: quorumLess(), plan: [], timers: { quorumLostSince: T0 } },
      {
        at: tenMinutes,
        snapshot: quorate({ cachesSynced: false }),
        plan: [],
        timers: {},
      },
      {
        at: tenMinutes + 1_000,
        snapshot: quorumLess(),
        plan: [],
        timers: { quorumLostSince: T0 + tenMinutes + 1_000 },
      },
    ],
  },
  {
    name: "quorum still lost while the caches were unsynced: timer kept",
    cycles: [
      { at: 0, snapshot: quorumLess(), plan: [], timers: { quorumLostSince: T0 } },
      {
        at: 3_000,
        snapshot: quorumLess({ cachesSynced: false }),
        plan: [],
        timers: { quorumLostSince: T0 },
      },
      {
        at: 5_000,
        snapshot: quorumLess(),
        plan: [`taint-node node-a ${lostQuorum}`],
        timers: { quorumLostSince: T0 },
      },
    ],
  },
  {
    name: "suspension ended while the caches were unsynced: a new one waits again",
    cycles: [
      { at: 0, snapshot: suspendedPrimary(true), plan: [], timers: { suspendedSince: T0 } },
      {
        at: 3_000,
        snapshot: suspendedPrimary(false, { cachesSynced: false }),
        plan: [],
        timers: {},
      },
      {
        at: 6_000,
        snapshot: suspendedPrimary(true),
        plan: [],
        timers: { suspendedSince: T0 + 6_000 },
      },
      {
        at: 11_000,
        snapshot: suspendedPrimary(true),
        plan: ["force-demote pvc-1"],
        timers: { suspendedSince: T0 + 6_000 },
      },
    ],
  },
];

for (const c of sequences) {
  Deno.test(`timers across hold-backs: ${c.name}`, () => {
    let m = memory();
    for (const [i, cycle] of c.cycles.entries()) {
      const now = T0 + cycle.at;
      const s = cycle.stale ? at(cycle.snapshot, T0) : at(cycle.snapshot, now);
      const decision = decide(s, m, options(), now);
      assert.deepEqual(summary(decision.plan), cycle.plan, `cycle ${i}: plan`);
      const timers = {
        failOverSince: decision.memory.failOverSince.get("pvc-1/node-b"),
        quorumLostSince: decision.memory.quorumLostSince.get("r0"),
        suspendedSince: decision.memory.suspendedSince.get("pvc-1"),
      };
      assert.deepEqual(
        timers,
        {
          failOverSince: undefined,
          quorumLostSince: undefined,
          suspendedSince: undefined,
          ...cycle.timers,
        },
        `cycle ${i}: timers`,
      );
      if (cycle.verdict) assert.match(decision.verdicts[0].decision, cycle.verdict, `cycle ${i}`);
      m = recordIssued(decision.memory, decision.plan, now);
    }
  });
}

Deno.test("hold back: no taint changes on untrusted data", () => {
  const s = snapshot({
    cachesSynced: false,
    drbd: sample([drbdResource("r0", { forceIoFailures: true })]),
    ownNode: node("node-a", { taints: [{ key: lostQuorum, effect: "NoSchedule" }] }),
  });
  const decision = decide(s, memory(), options(), T0);
  assert.deepEqual(decision.plan, []);
  assert.match(decision.heldBack ?? "", /caches/);
});

Deno.test("hold back: pause and untrusted data are both reported", () => {
  const s = failOverScene({
    snapshot: { cachesSynced: false, ownNode: node("node-a", { actionsPaused: true }) },
  });
  assert.equal(
    decide(s, expired(), options(), T0).heldBack,
    "Kubernetes caches have not synced yet; " +
      "actions paused by annotation drbd.linbit.com/ha-controller-paused on node node-a",
  );
});

// ------------------------------------------------------- operations timeout

interface RepeatCase {
  name: string;
  actedAt: Record<string, number>;
  snapshot?: Snapshot;
  plan: string[];
  verdict?: RegExp;
}

const repeats: RepeatCase[] = [
  {
    name: "eviction issued just inside the window is not repeated",
    actedAt: { "evict-pod/uid-pod-app": T0 - 59_999 },
    plan: [`taint-node node-b ${lostQuorum}`, "delete-volume-attachment csi-b"],
    verdict: /not repeating evict pod default\/app \(uid uid-pod-app, grace 10s\) issued 59.9s ago/,
  },
  {
    name: "eviction issued exactly operationsTimeout ago is repeated",
    actedAt: { "evict-pod/uid-pod-app": T0 - 60_000 },
    plan: fullFailOver,
  },
  {
    name: "VolumeAttachment deletion is not repeated inside the window",
    actedAt: { "delete-volume-attachment/uid-va-csi-b": T0 - 1_000 },
    plan: [`taint-node node-b ${lostQuorum}`, "evict-pod default/app"],
    verdict: /not repeating delete volumeattachment csi-b \(uid [^)]*\) issued 1s ago/,
  },
  {
    name: "a replaced pod (new UID) is not held back by the old one's record",
    actedAt: { "evict-pod/uid-pod-old-app": T0 - 1_000 },
    plan: fullFailOver,
  },
  {
    name: "an eviction does not hold back a force-delete after the node went NotReady",
    actedAt: { "evict-pod/uid-pod-app": T0 - 1_000 },
    snapshot: failOverScene({ peerNode: node("node-b", { ready: false }) }),
    plan: [
      `taint-node node-b ${lostQuorum}`,
      "force-delete-pod default/app",
      "delete-volume-attachment csi-b",
    ],
  },
  {
    name: "taints are not subject to the window (they are only added when missing)",
    actedAt: { [`taint-node/node-b/${lostQuorum}`]: T0 - 1_000 },
    plan: fullFailOver,
  },
];

for (const c of repeats) {
  Deno.test(`operations timeout: ${c.name}`, () => {
    const decision = decide(
      c.snapshot ?? failOverScene(),
      expired({ actedAt: c.actedAt }),
      options(),
      T0,
    );
    assert.deepEqual(summary(decision.plan), c.plan);
    if (c.verdict) assert.match(decision.verdicts[0].decision, c.verdict);
  });
}

Deno.test("operations timeout: a forced demotion is not repeated inside the window", () => {
  const s = snapshot({
    drbd: sample([drbdResource("pvc-1", {
      role: "Primary",
      mayPromote: false,
      suspended: { user: false, noData: false, fencing: false, quorum: true },
    })]),
    localPods: [pod("app", { nodeName: "node-a", deletionTimestamp: "2027-01-15T08:00:00Z" })],
    persistentVolumes: [pv("pvc-1")],
  });
  const opts = options({ operationsTimeout: 30_000 });
  const first = decide(s, memory({ suspendedSince: { "pvc-1": T0 - 5_000 } }), opts, T0);
  assert.deepEqual(summary(first.plan), ["force-demote pvc-1"]);
  const issued = recordIssued(first.memory, first.plan, T0);
  const within = decide(at(s, T0 + 29_999), issued, opts, T0 + 29_999);
  assert.equal(within.heldBack, undefined);
  assert.deepEqual(within.plan, []);
  const after = decide(at(s, T0 + 30_000), issued, opts, T0 + 30_000);
  assert.deepEqual(summary(after.plan), ["force-demote pvc-1"]);
});

Deno.test("recordIssued: stamps destructive actions only and leaves its input alone", () => {
  const plan = decide(failOverScene(), expired(), options(), T0).plan;
  const before = expired();
  const after = recordIssued(before, plan, T0 + 10);
  assert.deepEqual([...after.actedAt].sort(), [
    ["delete-volume-attachment/uid-va-csi-b", T0 + 10],
    ["evict-pod/uid-pod-app", T0 + 10],
  ]);
  assert.equal(before.actedAt.size, 0);
  assert.deepEqual([...after.failOverSince], [...before.failOverSince]);
  assert.notEqual(after.failOverSince, before.failOverSince);
});

Deno.test("operations timeout: records older than the window are dropped from memory", () => {
  const m = memory({ actedAt: { "evict-pod/a": T0 - 60_000, "evict-pod/b": T0 - 59_000 } });
  const decision = decide(snapshot(), m, options(), T0);
  assert.deepEqual([...decision.memory.actedAt], [["evict-pod/b", T0 - 59_000]]);
});

// ------------------------------------------------------------------ backoff

Deno.test("backoff: delay doubles per fail-over, never below the timeout, capped", () => {
  const opts = options({ failOverTimeout: 5_000 });
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 20].map((n) => failOverDelay(n, opts)),
    [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000],
  );
  assert.equal(maxFailOverDelay, 300_000);
  assert.equal(failOverBackoffReset, 3_000_000);
  assert.equal(failOverDelay(3, options({ failOverTimeout: 600_000 })), 600_000);
});

interface BackoffCase {
  name: string;
  since: number;
  failOvers: { count: number; lastAt: number } | undefined;
  plan: string[];
  /** The record afterwards. */
  record: { count: number; lastAt: number } | undefined;
  verdict?: RegExp;
}

const backoffs: BackoffCase[] = [
  {
    name: "first fail-over after failOverTimeout, then counted",
    since: T0 - 5_000,
    failOvers: undefined,
    plan: fullFailOver,
    record: { count: 1, lastAt: T0 },
  },
  {
    name: "second fail-over waits twice as long (below)",
    since: T0 - 9_999,
    failOvers: { count: 1, lastAt: T0 - 600_000 },
    plan: [],
    record: { count: 1, lastAt: T0 - 600_000 },
    verdict: /waiting 9.9s of 10s before failing over node-b \(backoff after 1 fail-over\)/,
  },
  {
    name: "second fail-over waits twice as long (reached)",
    since: T0 - 10_000,
    failOvers: { count: 1, lastAt: T0 - 600_000 },
    plan: fullFailOver,
    record: { count: 2, lastAt: T0 },
  },
  {
    name: "third fail-over waits four times as long",
    since: T0 - 19_000,
    failOvers: { count: 2, lastAt: T0 - 600_000 },
    plan: [],
    record: { count: 2, lastAt: T0 - 600_000 },
    verdict: /of 20s .*backoff after 2 fail-overs/,
  },
  {
    name: "long waits are written like the flags",
    since: T0 - 100_000,
    failOvers: { count: 5, lastAt: T0 - 600_000 },
    plan: [],
    record: { count: 5, lastAt: T0 - 600_000 },
    verdict: /waiting 1m40s of 2m40s before failing over node-b \(backoff after 5 fail-overs\)/,
  },
  {
    name: "the wait is capped at maxFailOverDelay",
    since: T0 - 300_000,
    failOvers: { count: 12, lastAt: T0 - 600_000 },
    plan: fullFailOver,
    record: { count: 13, lastAt: T0 },
  },
  {
    name: "just below the cap",
    since: T0 - 299_999,
    failOvers: { count: 12, lastAt: T0 - 600_000 },
    plan: [],
    record: { count: 12, lastAt: T0 - 600_000 },
  },
  {
    name: "count resets after the quiet period",
    since: T0 - 5_000,
    failOvers: { count: 5, lastAt: T0 - failOverBackoffReset },
    plan: fullFailOver,
    record: { count: 1, lastAt: T0 },
  },
  {
    name: "count still applies just inside the quiet period",
    since: T0 - 5_000,
    failOvers: { count: 5, lastAt: T0 - failOverBackoffReset + 1 },
    plan: [],
    record: { count: 5, lastAt: T0 - failOverBackoffReset + 1 },
  },
  {
    name: "an ongoing fail-over keeps acting and is not counted again",
    since: T0 - 6_000,
    failOvers: { count: 1, lastAt: T0 - 1_000 },
    plan: fullFailOver,
    record: { count: 1, lastAt: T0 - 1_000 },
  },
];

for (const c of backoffs) {
  Deno.test(`backoff: ${c.name}`, () => {
    const m = memory({
      failOverSince: { "pvc-1/node-b": c.since },
      failOvers: c.failOvers ? { "pvc-1": c.failOvers } : {},
    });
    const decision = decide(failOverScene(), m, options(), T0);
    assert.deepEqual(summary(decision.plan), c.plan);
    assert.deepEqual(decision.memory.failOvers.get("pvc-1"), c.record);
    if (c.verdict) assert.match(decision.verdicts[0].decision, c.verdict);
  });
}

Deno.test("backoff: a resource failing over again and again waits longer each time", () => {
  const opts = options();
  let m: Memory = memory();
  let now = T0;
  const waited: number[] = [];
  for (let round = 0; round < 4; round++) {
    // The condition appears and lasts until the agent acts.
    const start = now;
    let decision = decide(at(failOverScene(), now), m, opts, now);
    while (decision.plan.length === 0) {
      assert.ok(now - start < 600_000, `round ${round}: no fail-over within 10 minutes`);
      now += 1_000;
      decision = decide(at(failOverScene(), now), decision.memory, opts, now);
    }
    waited.push(now - start);
    m = recordIssued(decision.memory, decision.plan, now);
    // The workload moved: the condition clears.
    now += 1_000;
    const moved = failOverScene({ peerPods: [], volumeAttachments: [] });
    m = decide(at(moved, now), m, opts, now).memory;
    now += 1_000;
  }
  assert.deepEqual(waited, [5_000, 10_000, 20_000, 40_000]);
});

Deno.test("backoff: a paused fail-over is not counted", () => {
  const s = failOverScene({ snapshot: { ownNode: node("node-a", { actionsPaused: true }) } });
  const decision = decide(s, expired(), options(), T0);
  assert.equal(decision.memory.failOvers.size, 0);
});

// ------------------------------------------------------------------- purity

Deno.test("decide: never modifies the caller's memory", () => {
  const before = memory({
    failOverSince: { "pvc-1/node-b": T0 - 5_000, "gone/node-x": T0 - 1 },
    quorumLostSince: { gone: T0 - 1 },
    actedAt: { "evict-pod/x": T0 - 120_000 },
    failOvers: { "pvc-1": { count: 1, lastAt: T0 - 600_000 } },
  });
  const copy = JSON.stringify(Object.entries(before).map(([k, v]) => [k, [...v]]));
  const decision = decide(at(failOverScene(), T0 + 5_000), before, options(), T0 + 5_000);
  assert.equal(JSON.stringify(Object.entries(before).map(([k, v]) => [k, [...v]])), copy);
  for (const key of Object.keys(before) as (keyof Memory)[]) {
    assert.notEqual(decision.memory[key], before[key], `${key} must be a new map`);
  }
});
