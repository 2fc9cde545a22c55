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
];
