/**
 * The fault campaign: `npx deno task campaign --seeds N [--from S] [--seed S]`.
 *
 * Plays seeded scenarios (tests/campaign/plan.ts) on the deterministic
 * simulation, in parallel workers, and prints one line per seed that broke a
 * rule, then `N seeds, V violations (runtime)`. `--seed S` replays one seed
 * and prints its scenario, what broke, the smallest fault list that still
 * breaks it and the agents' log up to the first violation.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { describeFault, type Outcome, play, scenarioOf } from "./plan.ts";

const usage = `usage: deno task campaign [--seeds N] [--from S] [--workers W]
       deno task campaign --seed S [--no-shrink]

  --seeds N     how many seeds to play (default 100), starting at --from (default 1)
  --workers W   parallel workers (default: the number of CPUs)
  --seed S      replay one seed: its faults, violations, a shrunk fault list and the log`;

/** What a worker reports for one seed. */
export interface SeedResult {
  seed: number;
  violations: { at: number; rule: string; detail: string }[];
  simulatedSeconds: number;
  realMs: number;
  error?: string;
}

/** Plays one seed; a crash of the simulation itself is reported as an error. */
export async function runSeed(seed: number): Promise<SeedResult> {
  const t0 = performance.now();
  try {
    const outcome = await play(scenarioOf(seed));
    return {
      seed,
      violations: outcome.violations,
      simulatedSeconds: outcome.simulatedSeconds,
      realMs: performance.now() - t0,
    };
  } catch (err) {
    return {
      seed,
      violations: [],
      simulatedSeconds: 0,
      realMs: performance.now() - t0,
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    };
  }
}

function replayCommand(seed: number): string {
  return `npx deno task campaign --seed ${seed}`;
}

function fail(message: string): never {
  console.error(`campaign: ${message}\n${usage}`);
  Deno.exit(2);
}

function intFlag(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) fail(`--${name} expects a whole number, got "${value}"`);
  return Number(value);
}

/** Drops faults one at a time while the same rule still breaks. */
async function shrink(outcome: Outcome): Promise<Outcome> {
  const rule = outcome.violations[0].rule;
  let best = outcome;
  let faults = [...outcome.scenario.faults];
  for (let i = faults.length - 1; i >= 0; i--) {
    const fewer = faults.filter((_, j) => j !== i);
    const tried = await play(outcome.scenario, { faults: fewer });
    if (tried.violations.some((v) => v.rule === rule)) {
      faults = fewer;
      best = { ...tried, scenario: { ...tried.scenario, faults: fewer } };
    }
  }
  return best;
}

async function replay(seed: number, doShrink: boolean): Promise<number> {
  const scenario = scenarioOf(seed);
  console.log(
    `seed ${seed}: nodes ${scenario.nodes.join(", ")}; diskful ${
      scenario.replicas.diskful.join(", ")
    }${
      scenario.replicas.diskless.length > 0 ? `; tiebreaker ${scenario.replicas.diskless}` : ""
    }; workloads ${scenario.workloads.map((w) => `${w.kind} ${w.name}`).join(", ")}`,
  );
  for (const f of scenario.faults) console.log(`  fault ${describeFault(f)}`);
  let outcome = await play(scenario);
  if (outcome.violations.length === 0) {
    console.log(`no violations (${outcome.simulatedSeconds.toFixed(0)} simulated seconds)`);
    return 0;
  }
  for (const v of outcome.violations) {
    console.log(`  ${v.rule} at +${(v.at / 1000).toFixed(3)}s: ${v.detail}`);
  }
  if (doShrink && scenario.faults.length > 1) {
    outcome = await shrink(outcome);
    console.log(`smallest fault list that still breaks ${outcome.violations[0].rule}:`);
    for (const f of outcome.scenario.faults) console.log(`  fault ${describeFault(f)}`);
  }
  console.log("state at the end:");
  for (const line of outcome.finalState) console.log(`  ${line}`);
  console.log("agent log (newest last):");
  for (const line of outcome.log.slice(-80)) console.log(`  ${line}`);
  return 1;
}

async function campaign(from: number, count: number, workers: number): Promise<number> {
  const t0 = performance.now();
  const seeds = Array.from({ length: count }, (_, i) => from + i);
  const results: SeedResult[] = [];
  let next = 0;
  const pool = Array.from({ length: Math.min(workers, count) }, () => {
    const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
    return worker;
  });
  await Promise.all(pool.map((worker) =>
    new Promise<void>((resolve) => {
      const give = () => {
        if (next >= seeds.length) {
          worker.terminate();
          return resolve();
        }
        worker.postMessage(seeds[next++]);
      };
      worker.onmessage = (event: MessageEvent<SeedResult>) => {
        const r = event.data;
        results.push(r);
        if (r.error !== undefined) {
          console.log(
            `seed ${r.seed}: the simulation failed: ${r.error.split("\n")[0]} — replay: ${
              replayCommand(r.seed)
            }`,
          );
        } else if (r.violations.length > 0) {
          const v = r.violations[0];
          const more = r.violations.length > 1 ? ` (+${r.violations.length - 1} more)` : "";
          console.log(
            `seed ${r.seed}: ${v.rule} at +${
              (v.at / 1000).toFixed(1)
            }s: ${v.detail}${more} — replay: ${replayCommand(r.seed)}`,
          );
        }
        give();
      };
      worker.onerror = (event) => {
        event.preventDefault();
        console.log(`campaign: a worker failed: ${event.message}`);
        resolve();
      };
      give();
    })
  ));
  const violations = results.reduce((n, r) => n + r.violations.length + (r.error ? 1 : 0), 0);
  const failing = results.filter((r) => r.violations.length > 0 || r.error).length;
  const simulated = results.reduce((n, r) => n + r.simulatedSeconds, 0);
  const seconds = (performance.now() - t0) / 1000;
  if (results.length < count) {
    console.log(`campaign: only ${results.length} of ${count} seeds were played (a worker failed)`);
  }
  console.log(
    `${results.length} seeds, ${violations} violations (${failing} failing seeds; ${
      seconds.toFixed(1)
    } s, ${(simulated / 3600).toFixed(1)} simulated hours, ${workers} workers)`,
  );
  if (results.length < count) return 1;
  return violations > 0 ? 1 : 0;
}

if (import.meta.main) {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        seeds: { type: "string" },
        from: { type: "string" },
        seed: { type: "string" },
        workers: { type: "string" },
        "no-shrink": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    console.log(usage);
    Deno.exit(0);
  }
  if (values.seed !== undefined) {
    Deno.exit(await replay(intFlag(values.seed, "seed", 0), !values["no-shrink"]));
  }
  const workers = intFlag(values.workers, "workers", navigator.hardwareConcurrency || 2);
  if (workers < 1) fail("--workers must be at least 1");
  Deno.exit(
    await campaign(intFlag(values.from, "from", 1), intFlag(values.seeds, "seeds", 100), workers),
  );
}
