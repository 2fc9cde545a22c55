// Benchmark: DRBD change → first fail-over write at the API server, for the
// agent as built and for the same agent in a seed-style polling mode.
//
// Each round starts a fresh local API server, fake drbdsetup and agent
// (production defaults except `--fail-over-timeout 0s`, so the measurement is
// the agent's own reaction), marks node-b NotReady, waits until the agent is
// healthy and has run an idle decision cycle, waits a random time in
// [0, --drbd-status-interval) so that the change lands at a random phase of
// the agent's resync timer, then makes DRBD report node-b lost and times how
// long until the first write reaches the API server.
//
// - events: the agent as built. The fake's `events2` stream prints the
//   change at once; the time includes the stream delivering it, the decision
//   cycle, the on-demand read of node-b's Node and pods, and the write.
// - polling: the same agent binary, `--drbd-status-interval 5s` (the
//   default), against a fake whose `events2` stream prints its initial dump
//   and then stays silent (`FakeDrbd.setStreamsSilent`). The agent learns the
//   change only at its next resync (`events2 --now` + `show --json`), which
//   disagrees with the quiet stream; the sampler then waits its stall-settle
//   time (250 ms) for the stream to catch up before it adopts the resync's
//   state and wakes the loop. The round checks the agent's log that this is
//   how it learnt the change.
//
// Rounds of the two modes alternate, so load on the machine affects both alike.
//
// Run: npx deno task bench [rounds]   (default 20 rounds per mode)

import { ApiServer } from "../sim/apiserver/mod.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { waitFor } from "../helpers.ts";
import {
  markNotReady,
  metricValue,
  resourceAfterNodeBCrash,
  resourceOnNodeA,
  seedCluster,
  startAgent,
  waitHealthy,
} from "../agent/harness.ts";
import { defaultOptions } from "../../lib/options.ts";

/** The two ways the agent can learn of a DRBD change. */
export type ReactionMode = "events" | "polling";

/** The resync period of both modes: the agent's default `--drbd-status-interval`. */
const statusIntervalMs = defaultOptions.drbdStatusInterval;

/** What the sampler logs when a resync finds a change the stream did not print. */
const missedChange = "drbdsetup events2 missed changes of pvc-1";

/** The `p`th percentile (nearest rank) of an ascending list. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** One round: a fresh cluster and agent, one DRBD change, ms until the first write. */
async function reactOnce(mode: ReactionMode): Promise<number> {
  const server = await ApiServer.start({ tls: true });
  const drbd = await FakeDrbd.create();
  await drbd.setResources([resourceOnNodeA()]);
  if (mode === "polling") await drbd.setStreamsSilent(true);
  seedCluster(server);
  markNotReady(server, "node-b");
  const args = ["--fail-over-timeout", "0s"];
  if (mode === "polling") args.push("--drbd-status-interval", `${statusIntervalMs / 1000}s`);
  const agent = await startAgent(server, drbd, args);
  try {
    await waitHealthy(agent);
    // Idle: one more decision cycle after healthy (reconcile every 5 s by
    // default), so the cache-change wakes of startup have settled.
    const cycleCount = "ha_controller_loop_cycle_seconds_count";
    const cycles = (await metricValue(agent, cycleCount)) ?? 0;
    await waitFor(
      async () => ((await metricValue(agent, cycleCount)) ?? 0) >= cycles + 1,
      15_000,
      "an idle cycle",
    );
    // A random phase relative to the resync timer (it runs from the agent's start).
    await new Promise((resolve) => setTimeout(resolve, Math.random() * statusIntervalMs));
    if (agent.stderr().includes(missedChange)) throw new Error("a stall before the change");
    server.clearRequests();
    const changedAt = Date.now();
    await drbd.setResources([resourceAfterNodeBCrash()]);
    await waitFor(
      () => server.writes().length > 0,
      statusIntervalMs + 10_000,
      () => `first write (agent stderr:\n${agent.stderr()})`,
    );
    const reaction = server.writes()[0].time.getTime() - changedAt;
    const learntByResync = agent.stderr().includes(missedChange);
    if (learntByResync !== (mode === "polling")) {
      throw new Error(
        `${mode} round: expected the change to arrive by ${
          mode === "polling" ? "a resync" : "the events2 stream"
        }; agent stderr:\n${agent.stderr()}`,
      );
    }
    return reaction;
  } finally {
    await agent.stop();
    await server.close();
    await drbd.cleanup();
  }
}

/**
 * Measures `rounds` reactions per mode (ms from the DRBD change to the first
 * fail-over write at the API server), rounds of the two modes alternating.
 */
export async function measureReaction(
  rounds: number,
): Promise<{ events: number[]; polling: number[] }> {
  const events: number[] = [];
  const polling: number[] = [];
  for (let round = 0; round < rounds; round++) {
    events.push(await reactOnce("events"));
    polling.push(await reactOnce("polling"));
  }
  return { events, polling };
}

if (import.meta.main) {
  const rounds = Number(Deno.args[0] ?? 20);
  const started = performance.now();
  const result = await measureReaction(rounds);
  const wallS = (performance.now() - started) / 1000;
  console.log(
    `DRBD change -> first fail-over write at the API server, ${rounds} rounds per mode (ms):`,
  );
  const p50: Record<string, number> = {};
  const p99: Record<string, number> = {};
  for (const mode of ["events", "polling"] as const) {
    const sorted = [...result[mode]].sort((a, b) => a - b);
    p50[mode] = percentile(sorted, 50);
    p99[mode] = percentile(sorted, 99);
    const label = mode === "events"
      ? "events (as built, live events2)"
      : `polling (resync every ${statusIntervalMs / 1000} s only)`;
    console.log(
      `  ${label.padEnd(36)}min ${sorted[0]}  p50 ${p50[mode]}  p99 ${p99[mode]}  max ${
        sorted.at(-1)
      }`,
    );
  }
  console.log(
    `  polling / events: p50 ${(p50.polling / p50.events).toFixed(0)}x, ` +
      `p99 ${(p99.polling / p99.events).toFixed(0)}x`,
  );
  console.log(`  wall time ${wallS.toFixed(0)} s`);
}
