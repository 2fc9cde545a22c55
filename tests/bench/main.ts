// Every benchmark of the agent in one run, printed side by side with its
// goal (issue 10). The figures are printed, never asserted: tests assert
// behaviour, benchmarks measure.
//
// - P1 reaction (reaction.ts): DRBD change -> first fail-over write at the
//   API server, p50/p99, the agent as built (events2) and the same agent
//   polling (resync every 5 s only), and their ratio.
// - P3 memory (memory.ts, scale.ts): VmRSS idle 60 s and after a fail-over
//   (in-cluster configuration, production flags), and idle in a small
//   (10 nodes, 100 pods) and a large cluster (5,000 nodes, 150,000 pods,
//   10,000 PVs and VolumeAttachments, 30 pods on the agent's node), delta.
// - P4 fan-out (scale.ts): watch events and bytes reaching the agent when
//   1,000 pods on other nodes change; bytes downloaded at start in the
//   large cluster.
// - P5 CPU (cycle.ts, in a process with the agent's V8 flags): one
//   sample+decide cycle over 1,000 DRBD resources.
// - startup (scale.ts): process start -> caches synced -> first decision,
//   in the large cluster.
//
// The agent runs in-cluster as production runs it where that is possible
// (root, for the private mount namespace of its service account); elsewhere
// the memory figures are of the kubeconfig path, which loads client-node,
// and the output says so.
//
// Run: npx deno task bench [--rounds N] [--idle-ms N] [--only p1,p3,p4,p5,startup]
// (defaults: 20 rounds per mode, 60 000 ms idle; about 10 minutes on 2 cores)

import { parseArgs } from "node:util";
import type { RequestRecord } from "../sim/apiserver/mod.ts";
import { inClusterUnavailable } from "../agent/harness.ts";
import { measureReaction, percentile } from "./reaction.ts";
import { measureMemory } from "./memory.ts";
import { inClusterSpawn, inClusterUser, measureScale } from "./scale.ts";
import { productionFlags } from "../sim/agent_process.ts";

const parts = ["p1", "p3", "p4", "p5", "startup"] as const;
type Part = typeof parts[number];

const usage =
  "usage: deno task bench [--rounds N] [--idle-ms N] [--only p1,p3,p4,p5,startup] [--kubeconfig]";

function fail(message: string): never {
  console.error(`bench: ${message}\n${usage}`);
  Deno.exit(2);
}

function positiveInteger(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) fail(`--${flag} wants a positive integer, got "${text}"`);
  return n;
}

let values;
try {
  ({ values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string" },
      "idle-ms": { type: "string" },
      only: { type: "string" },
      kubeconfig: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
if (values.help) {
  console.log(usage);
  Deno.exit(0);
}
const rounds = positiveInteger("rounds", values.rounds, 20);
const idleMs = positiveInteger("idle-ms", values["idle-ms"], 60_000);
const only = new Set<Part>(
  values.only === undefined ? parts : values.only.split(",").map((p) => {
    if (!(parts as readonly string[]).includes(p)) fail(`--only: unknown part "${p}"`);
    return p as Part;
  }),
);
const unavailable = values.kubeconfig ? "--kubeconfig given" : inClusterUnavailable();
const configuration = unavailable === null
  ? "in-cluster (service-account token and CA mounted, production flags)"
  : `kubeconfig, NOT in-cluster (${unavailable})`;

/**
 * cycle.ts in a process of its own with the agent's V8 flags (the start
 * task's), so that the figure is of the agent's garbage collector settings.
 */
async function measureCycleAsBuilt(iterations: number): Promise<Record<string, number>> {
  const v8 = (await productionFlags()).filter((f) => f.startsWith("--v8-flags="));
  console.error(`  ${iterations} iterations, ${v8.length > 0 ? v8.join(" ") : "no V8 flags"}`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      ...v8,
      new URL("./cycle.ts", import.meta.url).pathname,
      "--json",
      String(iterations),
    ],
    stderr: "inherit",
  }).output();
  if (!out.success) fail(`cycle.ts exited with ${out.code}`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

const progress = (line: string) => console.error(`  ${line}`);
const rows: [string, string, string][] = [];
const row = (figure: string, value: string, goal = "") => {
  rows.push([figure, value, goal]);
  console.error(`${figure}: ${value}`);
};
const ms = (n: number) => `${n.toFixed(n < 10 ? 1 : 0)} ms`;
const mib = (n: number) => `${n.toFixed(1)} MiB`;
const started = performance.now();
console.error(`configuration: ${configuration}`);

if (only.has("p5")) {
  console.error("P5: sample+decide cycle over 1,000 DRBD resources");
  const c = await measureCycleAsBuilt(1_000);
  for (const state of ["healthy", "node-b lost"]) {
    row(
      `P5 cycle, ${state} (median / p99)`,
      `${c[`cycle (${state}) median`].toFixed(1)} / ${c[`cycle (${state}) p99`].toFixed(1)} ms`,
      "<= 5 ms",
    );
  }
  row(
    "P5 decide alone, node-b lost (median / p99)",
    `${c["decide (node-b lost) median"].toFixed(1)} / ${
      c["decide (node-b lost) p99"].toFixed(1)
    } ms`,
  );
}

if (only.has("p1")) {
  console.error(`P1: ${rounds} rounds per mode, alternating`);
  const r = await measureReaction(rounds);
  const stats = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
  };
  const events = stats(r.events);
  const polling = stats(r.polling);
  row("P1 reaction, events2 as built (p50 / p99)", `${ms(events.p50)} / ${ms(events.p99)}`);
  row("P1 reaction, polling every 5 s (p50 / p99)", `${ms(polling.p50)} / ${ms(polling.p99)}`);
  row(
    "P1 polling / events (p50 / p99)",
    `${(polling.p50 / events.p50).toFixed(0)}x / ${(polling.p99 / events.p99).toFixed(0)}x`,
  );
}

if (only.has("p3")) {
  console.error(`P3: idle ${idleMs} ms, then one fail-over`);
  const m = await measureMemory({ idleMs, log: progress, kubeconfig: values.kubeconfig });
  row("P3 VmRSS idle", mib(m.idleMiB), "<= 64 MiB");
  row("P3 VmRSS after a fail-over", mib(m.afterFailOverMiB), "<= 72 MiB");
}

if (only.has("p3") || only.has("p4") || only.has("startup")) {
  console.error(`P3/P4/startup: small and large cluster, idle ${idleMs} ms each`);
  const s = await measureScale({
    idleMs,
    clusters: only.has("p3") ? ["small", "large"] : ["large"],
    log: progress,
    ...(unavailable === null
      ? { spawn: inClusterSpawn, agentRequest: (r: RequestRecord) => r.user === inClusterUser }
      : {}),
  });
  if (only.has("p3")) {
    row("P3 VmRSS idle, small cluster", mib(s["small.idleRssMiB"] as number));
    row("P3 VmRSS idle, large cluster", mib(s["large.idleRssMiB"] as number));
    row("P3 large - small", mib(s.rssDeltaMiB as number), "<= 10 MiB");
  }
  if (only.has("p4")) {
    row(
      `P4 fan-out: ${s["p4.podsChanged"]} pods on other nodes changed`,
      `${s["p4.agentObjectEvents"]} events, ${s["p4.agentBytes"]} bytes reach the agent`,
      "0",
    );
    row(
      "P4 downloaded at start, large cluster",
      `${(s["large.startupBytes"] as number).toLocaleString("en-US")} bytes in ${
        s["large.startupRequests"]
      } requests`,
    );
  }
  if (only.has("startup")) {
    row(
      "startup, large cluster: caches synced / first decision",
      `${ms(s["large.cachesSyncedMs"] as number)} / ${ms(s["large.firstDecisionMs"] as number)}`,
    );
  }
}

const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length), 4));
console.log(`configuration: ${configuration}`);
console.log(
  `${"figure".padEnd(widths[0])}  ${"measured".padEnd(widths[1])}  goal`,
);
for (const [figure, value, goal] of rows) {
  console.log(`${figure.padEnd(widths[0])}  ${value.padEnd(widths[1])}  ${goal}`);
}
console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`);
