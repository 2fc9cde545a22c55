/**
 * Scenarios the campaign once failed on, kept as they were drawn (the
 * generator has changed since, so their seeds now draw other scenarios).
 * tests/campaign/campaign_test.ts plays each and expects no violation.
 *
 * @module
 */

import type { Scenario } from "./plan.ts";

/** A scenario, what it broke, and what fixed it. */
export interface Regression {
  scenario: Scenario;
  /** What the campaign reported. */
  found: string;
  /** Where the fix is. */
  fixed: string;
}

const twoPlusTiebreaker = {
  nodes: ["node-a", "node-b", "node-c"],
  replicas: { diskful: ["node-a", "node-b"], diskless: ["node-c"] },
};

const stableFlag = "model: may_promote needs stable UpToDate data (tests/sim/drbd/cluster.ts " +
  "#stable(), after LINBIT/drbd calc_device_stable() and drbd-utils compute_promotion_info())";

const outageGuard = "agent: the own lost-quorum taint's outage guard and stagger by node name " +
  "(lib/decide/own_taints.ts outageGuard)";

/** Every kept regression. */
export const regressions: Regression[] = [
  {
    scenario: {
      seed: 9,
      ...twoPlusTiebreaker,
      workloads: [{ name: "app0", kind: "StatefulSet" }, { name: "app1", kind: "StatefulSet" }],
      faults: [{ at: 15000, kind: "partition", a: "node-c", b: "node-a", forMs: 65000 }],
    },
    found: "S1: the tiebreaker's agent evicted the pod on the Primary node-a, which could " +
      "still write through node-b (non-transitive partition), and L2 taint flapping",
    fixed: stableFlag,
  },
  {
    scenario: {
      seed: 11,
      ...twoPlusTiebreaker,
      workloads: [{ name: "app0", kind: "StatefulSet" }, { name: "app1", kind: "StatefulSet" }],
      faults: [
        { at: 9000, kind: "partition", a: "node-a", b: "node-c", forMs: 71000 },
        { at: 31000, kind: "reboot-all", forMs: 18000 },
      ],
    },
    found: "S1 as seed 9, with a whole-cluster reboot while the partition lasts",
    fixed: stableFlag,
  },
  {
    scenario: {
      seed: 14,
      ...twoPlusTiebreaker,
      workloads: [{ name: "app0", kind: "StatefulSet" }],
      faults: [
        { at: 4000, kind: "partition", a: "node-c", b: "node-a", forMs: 48000 },
        { at: 51000, kind: "reboot-all", forMs: 10000 },
      ],
    },
    found: "S1 as seed 9",
    fixed: stableFlag,
  },
  {
    scenario: {
      seed: 57,
      nodes: ["node-a", "node-b", "node-c", "node-d"],
      replicas: { diskful: ["node-a", "node-b"], diskless: ["node-c"] },
      workloads: [{ name: "app0", kind: "Deployment" }, { name: "app1", kind: "StatefulSet" }],
      faults: [{ at: 76000, kind: "drbd-cut", node: "node-b", forMs: 15000 }],
    },
    found: "S1: node-a's agent evicted app1-0 and deleted its VolumeAttachment on node-b " +
      "just as node-b's links came back (the taint request was in flight when DRBD reconnected)",
    fixed: "agent: every fail-over action is re-checked against the newest DRBD state right " +
      "before it runs (lib/decide/mod.ts withdrawnBy, lib/act.ts)",
  },
  {
    scenario: {
      seed: 121,
      nodes: ["node-a", "node-b", "node-c", "node-d"],
      replicas: { diskful: ["node-a", "node-b"], diskless: ["node-c"] },
      workloads: [{ name: "app0", kind: "StatefulSet" }, { name: "app1", kind: "StatefulSet" }],
      faults: [
        { at: 22000, kind: "drbd-cut", node: "node-a", forMs: 17000 },
        { at: 31000, kind: "crash", node: "node-b", forMs: 50000 },
        { at: 33000, kind: "flap", a: "node-a", b: "node-b", downMs: 6000, upMs: 11000, times: 5 },
        { at: 106000, kind: "flap", a: "node-d", b: "node-c", downMs: 8000, upMs: 4000, times: 2 },
      ],
    },
    found: "L1/L2: a split brain between node-a and node-b in the model (a diskless Primary " +
      "wrote a new generation on a peer behind it), and a pod scheduled onto node-d, which has " +
      "no replica, Pending for ever",
    fixed: "model: the DRBD audit's generation and catch-up fixes; simulated PVs name their " +
      "replica nodes in node affinity (tests/sim/cluster.ts drbdProvisioner)",
  },
  {
    scenario: {
      seed: 856,
      nodes: ["node-a", "node-b", "node-c"],
      replicas: { diskful: ["node-a", "node-b", "node-c"], diskless: [] },
      workloads: [{ name: "app0", kind: "StatefulSet" }, { name: "app1", kind: "Deployment" }],
      faults: [
        { at: 108000, kind: "partition", a: "node-b", b: "node-c", forMs: 74000 },
        { at: 114000, kind: "flap", a: "node-a", b: "node-c", downMs: 6000, upMs: 14000, times: 2 },
      ],
    },
    found: "S1: node-c's agent evicted a pod on the Primary node-b, still reachable through " +
      "node-a, because the model settled node-c's lost-peer commit while its link to node-a " +
      "was dead but not yet noticed, calling its disk UpToDate",
    fixed: "model: the lost-peer commit waits for a running Primary behind an undetected dead " +
      "link (tests/sim/drbd/cluster.ts #settleLostPeer)",
  },
  {
    scenario: {
      seed: 41,
      ...twoPlusTiebreaker,
      workloads: [{ name: "app0", kind: "StatefulSet" }],
      faults: [
        { at: 50000, kind: "crash", node: "node-c", forMs: 57000 },
        { at: 72000, kind: "drbd-cut", node: "node-a", forMs: 81000 },
        { at: 91000, kind: "api-down", forMs: 37000 },
      ],
    },
    found: "L3: every node tainted lost-quorum at once (node-c crashed and tainted by the " +
      "others, node-a cut off and node-b alone each tainted themselves)",
    fixed: outageGuard,
  },
  {
    scenario: {
      seed: 814,
      nodes: ["node-a", "node-b", "node-c", "node-d"],
      replicas: { diskful: ["node-a", "node-b", "node-c"], diskless: [] },
      workloads: [{ name: "app0", kind: "StatefulSet" }, { name: "app1", kind: "StatefulSet" }],
      faults: [
        { at: 12000, kind: "api-latency", ms: 10000, forMs: 79000 },
        { at: 43000, kind: "drbd-cut", node: "node-b", forMs: 41000 },
        { at: 53000, kind: "crash", node: "node-d", forMs: 36000 },
      ],
    },
    found: "S3: node-a's agent tainted node-b 10 s after node-b reconnected: the taint's read " +
      "of the Node took 10 s (API latency), and the update followed it unchecked",
    fixed: "agent: a taint is re-checked against the newest DRBD state between reading the " +
      "Node and updating it (lib/kube/writes.ts WriteWithdrawn, lib/act.ts)",
  },
];
