// The decision loop with fake edges: what it carries out, in which order,
// when it retries, and when it refuses.

import assert from "node:assert/strict";
import { type Actuators, Executor } from "../lib/act.ts";
import { AgentLoop, type ClusterView } from "../lib/loop.ts";
import { ApiError } from "../lib/kube/client.ts";
import type { WriteOutcome } from "../lib/kube/writes.ts";
import { failOverScene, options, T0 } from "./decide/fixtures.ts";
import type { DrbdSample } from "../lib/drbd/model.ts";
import type { Options } from "../lib/options.ts";
import { type Clock, systemClock } from "../lib/clock.ts";
import { waitFor } from "./helpers.ts";

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** Actuators that record calls; `fail` decides per call whether to throw. */
function recordingActuators(fail: (call: string) => Error | undefined = () => undefined) {
  const calls: string[] = [];
  const act = (call: string): Promise<WriteOutcome> => {
    calls.push(call);
    const err = fail(call);
    return err ? Promise.reject(err) : Promise.resolve("done");
  };
  const actuators: Actuators = {
    addTaint: (node, taint) => act(`taint ${node} ${taint.key}`),
    removeTaint: (node, taint) => act(`untaint ${node} ${taint.key}`),
    evictPod: (pod) => act(`evict ${pod.namespace}/${pod.name}`),
    forceDeletePod: (pod) => act(`force-delete ${pod.namespace}/${pod.name}`),
    deleteVolumeAttachment: (name) => act(`delete-va ${name}`),
    forceSecondary: (resource) => act(`secondary --force ${resource}`),
    recordEvent: () => Promise.resolve(),
  };
  return { calls, actuators };
}

/** A loop over the standard fail-over scene (fail-over timeout already passed). */
function sceneLoop(
  actuators: Actuators,
  extra: {
    clock: { now: number };
    confirmPlan?: () => Promise<string | undefined>;
    opts?: Partial<Options>;
    /** Replaces the scene's DRBD state from now on (the sampler saw a change). */
    drbd?: { current?: DrbdSample };
  },
) {
  const opts = options({ failOverTimeout: 0, ...extra.opts });
  const scene = failOverScene();
  const { nodeName: _n, drbd: _d, peers, ...cluster } = scene;
  // Real timers, a hand-set wall clock.
  const clock: Clock = { ...systemClock, now: () => extra.clock.now };
  return new AgentLoop({
    options: opts,
    sampleDrbd: () => ({ ...(extra.drbd?.current ?? scene.drbd), confirmedAt: extra.clock.now }),
    readCluster: (): ClusterView => cluster,
    fetchPeer: (node) => Promise.resolve(peers.get(node)!),
    confirmPlan: extra.confirmPlan,
    executor: new Executor(actuators, {
      dryRun: false,
      operationsTimeoutMs: 1_000,
      log: quiet,
      clock,
    }),
    clock,
    log: quiet,
  });
}

Deno.test("a plan runs in phases: taint, then pods, then VolumeAttachments", async () => {
  const { calls, actuators } = recordingActuators();
  const loop = sceneLoop(actuators, { clock: { now: T0 } });
  await loop.cycle();
  assert.deepEqual(calls, [
    "taint node-b drbd.linbit.com/lost-quorum",
    "evict default/app",
    "delete-va csi-b",
  ]);
});

Deno.test("a peer that reconnects while its taint is written keeps its pod and VolumeAttachment", async () => {
  const drbd: { current?: DrbdSample } = {};
  const { calls, actuators } = recordingActuators((call) => {
    if (call.startsWith("taint node-b")) {
      // The partition heals while the taint request is on its way.
      const healed = structuredClone(failOverScene().drbd);
      healed.resources[0].connections[0].connectionState = "Connected";
      drbd.current = healed;
    }
    return undefined;
  });
  const report = await sceneLoop(actuators, { clock: { now: T0 }, drbd }).cycle();
  assert.deepEqual(calls, ["taint node-b drbd.linbit.com/lost-quorum"]);
  assert.deepEqual(report?.executed.map((e) => `${e.action.kind} ${e.result}`), [
    "taint-node done",
    "evict-pod withdrawn",
    "delete-volume-attachment deferred",
  ]);
});

Deno.test("a failed action waits out a backoff (and Retry-After) before it is tried again", async () => {
  const { calls, actuators } = recordingActuators((call) =>
    call.startsWith("evict")
      ? new ApiError("evict", "/x", {
        status: 429,
        reason: "TooManyRequests",
        message: "Cannot evict pod as it would violate the pod's disruption budget.",
        retryAfterSeconds: 5,
      })
      : undefined
  );
  const clock = { now: T0 };
  const loop = sceneLoop(actuators, { clock });
  await loop.cycle();
  const evictions = () => calls.filter((c) => c.startsWith("evict")).length;
  assert.equal(evictions(), 1);
  clock.now = T0 + 2_000; // past the 1 s backoff, but not past Retry-After: 5
  await loop.cycle();
  assert.equal(evictions(), 1, "Retry-After is honoured");
  clock.now = T0 + 5_100;
  await loop.cycle();
  assert.equal(evictions(), 2, "retried after Retry-After");
  clock.now = T0 + 6_000; // second failure: the backoff doubled to 2 s, Retry-After 5 s wins
  await loop.cycle();
  assert.equal(evictions(), 2);
});

Deno.test("a veto from confirmPlan stops everything done to other nodes, taints included", async () => {
  const { calls, actuators } = recordingActuators();
  const loop = sceneLoop(actuators, {
    clock: { now: T0 },
    confirmPlan: () => Promise.resolve("actions paused by annotation on node node-a"),
  });
  const report = await loop.cycle();
  assert.deepEqual(calls, []);
  assert.ok(report, "the cycle completed");
});

Deno.test("a failed eviction keeps the VolumeAttachment; a failed taint keeps the pods", async () => {
  const evictFails = recordingActuators((call) =>
    call.startsWith("evict") ? new Error("eviction refused") : undefined
  );
  const report = await sceneLoop(evictFails.actuators, { clock: { now: T0 } }).cycle();
  assert.deepEqual(evictFails.calls, [
    "taint node-b drbd.linbit.com/lost-quorum",
    "evict default/app",
  ]);
  assert.deepEqual(
    report!.executed.map((e) => `${e.action.kind} ${e.result}`),
    ["taint-node done", "evict-pod failed", "delete-volume-attachment deferred"],
  );
  const taintFails = recordingActuators((call) =>
    call.startsWith("taint") ? new Error("conflict storm") : undefined
  );
  await sceneLoop(taintFails.actuators, { clock: { now: T0 } }).cycle();
  assert.deepEqual(taintFails.calls, ["taint node-b drbd.linbit.com/lost-quorum"]);
});

Deno.test("a cycle that throws is logged and the loop goes on", async () => {
  const errors: string[] = [];
  const { actuators } = recordingActuators();
  const loop = new AgentLoop({
    options: options(),
    sampleDrbd: () => {
      throw new Error("sampler exploded");
    },
    readCluster: () => {
      throw new Error("unreachable");
    },
    fetchPeer: () => Promise.reject(new Error("unreachable")),
    executor: new Executor(actuators, { dryRun: false, operationsTimeoutMs: 1_000, log: quiet }),
    log: { ...quiet, error: (m: string) => errors.push(m) },
  });
  assert.equal(await loop.cycle(), undefined);
  assert.deepEqual(errors, ["decision cycle failed: sampler exploded"]);
  assert.equal(await loop.cycle(), undefined, "a second cycle runs too");
});

Deno.test("the loop decides again when a timer matures, not a whole reconcile interval later", async () => {
  const { calls, actuators } = recordingActuators();
  // An hour's reconcile interval: far beyond the (scaled) deadline below.
  const opts = options({ failOverTimeout: 200, reconcileInterval: 3_600_000 });
  const scene = failOverScene();
  const { nodeName: _n, drbd: _d, peers, ...cluster } = scene;
  const loop = new AgentLoop({
    options: opts,
    sampleDrbd: () => ({ ...scene.drbd, confirmedAt: Date.now() }),
    readCluster: (): ClusterView => cluster,
    fetchPeer: (node) => Promise.resolve(peers.get(node)!),
    executor: new Executor(actuators, { dryRun: false, operationsTimeoutMs: 1_000, log: quiet }),
    log: quiet,
  });
  const stop = new AbortController();
  loop.wake();
  const running = loop.run(stop.signal);
  try {
    // With an hour's reconcile interval, only the timer's own wake-up can act by the deadline.
    await waitFor(() => calls.includes("evict default/app"), 5_000, "fail-over after 200 ms");
  } finally {
    stop.abort();
    await running;
  }
});
