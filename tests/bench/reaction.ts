// Benchmark: DRBD change → first fail-over action issued, and the agent's idle RSS.
//
// Each round starts a fresh local API server, fake drbdsetup and agent
// (`--fail-over-timeout 0s`, so the measurement is the agent's own reaction),
// marks node-b NotReady, waits until the agent is healthy and idle, then
// makes DRBD report node-b lost and times how long until the first write
// reaches the API server. The time includes the events2 stream delivering
// the change, the decision cycle, the on-demand read of node-b's Node and
// pods, and the write itself.
//
// Run: npx deno task bench [rounds]

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

const rounds = Number(Deno.args[0] ?? 10);

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const reactions: number[] = [];
const rss: number[] = [];
for (let round = 0; round < rounds; round++) {
  const server = await ApiServer.start({ tls: true });
  const drbd = await FakeDrbd.create();
  await drbd.setResources([resourceOnNodeA()]);
  seedCluster(server);
  markNotReady(server, "node-b");
  const agent = await startAgent(server, drbd, ["--fail-over-timeout", "0s"]);
  try {
    await waitHealthy(agent);
    // Idle: a few quiet decision cycles (reconcile every 5 s by default, so
    // wait for the cache-change wakes of startup to settle).
    const cycles = (await metricValue(agent, "ha_controller_loop_cycle_seconds_count")) ?? 0;
    await waitFor(
      async () =>
        ((await metricValue(agent, "ha_controller_loop_cycle_seconds_count")) ?? 0) >= cycles + 1,
      15_000,
      "an idle cycle",
    );
    if (round === 0) rss.push(rssMiB(agent.child.pid));
    server.clearRequests();
    const changedAt = Date.now();
    await drbd.setResources([resourceAfterNodeBCrash()]);
    await waitFor(() => server.writes().length > 0, 10_000, "first write");
    const firstWrite = server.writes()[0];
    reactions.push(firstWrite.time.getTime() - changedAt);
    if (round === 0) {
      await waitFor(
        () => server.get("volumeattachments", undefined, "csi-pvc-1-node-b") === undefined,
        10_000,
        "fail-over done",
      );
      rss.push(rssMiB(agent.child.pid));
    }
  } finally {
    await agent.stop();
    await server.close();
    await drbd.cleanup();
  }
}

const sorted = [...reactions].sort((a, b) => a - b);
console.log(`DRBD change -> first fail-over write at the API server, ${rounds} rounds (ms):`);
console.log(
  `  min ${sorted[0]}  median ${percentile(sorted, 50)}  p95 ${percentile(sorted, 95)}  max ${
    sorted.at(-1)
  }`,
);
console.log(`Agent RSS: idle ${rss[0].toFixed(1)} MiB, after a fail-over ${rss[1].toFixed(1)} MiB`);
