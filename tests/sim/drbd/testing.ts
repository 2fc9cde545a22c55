/**
 * Helpers shared by the DRBD cluster simulation's tests: a cluster on a
 * sped-up clock, polling with a deadline, the agent's reading of a node,
 * and live events2 streams.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseEvents2Dump } from "../../../lib/drbd/events2.ts";
import type { DrbdResource } from "../../../lib/drbd/model.ts";
import { type DrbdsetupProcess, runDrbdsetup, spawnDrbdsetup } from "../../../lib/drbd/run.ts";
import { parseShowJson } from "../../../lib/drbd/show_json.ts";
import { SimClock } from "../clock.ts";
import { deadline } from "../../helpers.ts";
import { DrbdCluster, type DrbdClusterOptions } from "./cluster.ts";

/** Simulated ms per real ms: the 10.5 s detection delay takes about 20 ms. */
export const SCALE = 500;

/** Runs `test` on a new cluster (nodes a, b, c unless told) on a clock sped up by {@linkcode SCALE}. */
export async function withCluster(
  options: Partial<DrbdClusterOptions>,
  test: (cluster: DrbdCluster, clock: SimClock) => Promise<void>,
): Promise<void> {
  const clock = new SimClock({ scale: SCALE });
  const cluster = await DrbdCluster.create({ nodes: ["a", "b", "c"], clock, ...options });
  try {
    await test(cluster, clock);
  } finally {
    await cluster.stop();
    clock.stop();
  }
}

/** Polls every 5 ms for up to 5 s on an idle machine (scaled by `deadline`). */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
): Promise<void> {
  const effectiveMs = deadline(5_000);
  const end = Date.now() + effectiveMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`Timed out after ${effectiveMs}ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Resolves once the cluster's clock has run every timer due within
 * `simMs` simulated ms from now: its timers run in due order however late
 * the machine gets to them, so everything the model scheduled before that
 * time has happened (connection attempts, detections, resyncs).
 */
export async function simulatedTimePasses(cluster: DrbdCluster, simMs: number): Promise<void> {
  let passed = false;
  const cancel = cluster.clock.after(simMs, () => passed = true);
  try {
    await waitFor(() => passed, `${simMs} simulated ms to pass`);
  } finally {
    cancel();
  }
  await cluster.settled();
}

/**
 * Waits until every link of `node` in `resource` is noticed as broken on
 * both ends (each link's detection is its own event) and both ends are
 * Connecting again, so that a restore or rejoin after it meets the state
 * the test means.
 */
export async function cutOff(cluster: DrbdCluster, node: string, resource = "r0"): Promise<void> {
  // Settled means Connecting again on every end that is up: then a rejoin
  // reconnects every link after the same delay, in the order it heals them,
  // however late a loaded machine runs the detection timers.
  await waitFor(
    () =>
      cluster.nodes.every((n) =>
        !cluster.isUp(n) || cluster.view(n, resource) === undefined ||
        cluster.view(n, resource)!.connections.every((c) =>
          (n !== node && c.name !== cluster.connectionName(node)) ||
          c.connectionState === "Connecting"
        )
      ),
    `every link of ${node} seen as broken and Connecting again`,
  );
}

/** The connection state `node` shows toward `peer` in `resource`. */
export function connectionState(
  cluster: DrbdCluster,
  node: string,
  peer: string,
  resource = "r0",
): string | undefined {
  return cluster.view(node, resource)?.connections
    .find((c) => c.name === cluster.connectionName(peer))?.connectionState;
}

/** Waits until `node` shows `state` toward `peer` (and `peer` toward `node`). */
export async function waitForConnection(
  cluster: DrbdCluster,
  node: string,
  peer: string,
  state: string,
  resource = "r0",
): Promise<void> {
  await waitFor(
    () =>
      connectionState(cluster, node, peer, resource) === state &&
      connectionState(cluster, peer, node, resource) === state,
    `${node}–${peer} ${state}`,
  );
}

/** Runs the node's drbdsetup. */
export async function run(cluster: DrbdCluster, node: string, ...args: string[]) {
  return await runDrbdsetup(args, { timeoutMs: deadline(10_000), env: cluster.env(node) });
}

/** What the agent reads on `node`: events2 --now plus show --show-defaults --json. */
export async function agentView(cluster: DrbdCluster, node: string): Promise<DrbdResource[]> {
  const now = await run(cluster, node, "events2", "--now");
  assert.equal(now.code, 0, now.stderr);
  const dump = parseEvents2Dump(now.stdout);
  assert.deepEqual(dump.errors, []);
  assert.ok(dump.complete, "events2 --now ends with exists -");
  const show = await run(cluster, node, "show", "--show-defaults", "--json");
  assert.equal(show.code, 0, show.stderr);
  const configs = parseShowJson(show.stdout);
  return dump.resources.map((r) => ({ ...r, config: configs.get(r.name) }));
}

/** The agent's reading of one resource on one node. */
export async function agentResource(
  cluster: DrbdCluster,
  node: string,
  name = "r0",
): Promise<DrbdResource> {
  const resource = (await agentView(cluster, node)).find((r) => r.name === name);
  assert.ok(resource, `${node} shows ${name}`);
  return resource;
}

/** A live `drbdsetup events2` on a node, collecting its lines. */
export class Stream {
  readonly node: string;
  readonly lines: string[] = [];
  readonly #process: DrbdsetupProcess;
  readonly #reading: Promise<void>;

  constructor(cluster: DrbdCluster, node: string) {
    this.node = node;
    const process = spawnDrbdsetup(["events2"], { env: cluster.env(node) });
    this.#process = process;
    this.#reading = (async () => {
      for await (const batch of process.batches) this.lines.push(...batch);
    })();
  }

  /** The lines after the initial dump. */
  get changes(): string[] {
    return this.lines.slice(this.lines.indexOf("exists -") + 1);
  }

  /** How many lines have arrived: a mark for {@linkcode Stream.since}. */
  mark(): number {
    return this.lines.length;
  }

  /** The lines that arrived after `mark`. */
  since(mark: number): string[] {
    return this.lines.slice(mark);
  }

  async waitForLine(line: string): Promise<void> {
    await waitFor(() => this.lines.includes(line), `the stream line ${line} on ${this.node}`);
  }

  /** Waits for a line after `mark` that matches `pattern` (drbd9-tests' `event()`). */
  async waitForMatch(pattern: RegExp, mark = 0): Promise<string> {
    let found: string | undefined;
    await waitFor(() => {
      found = this.since(mark).find((l) => pattern.test(l));
      return found !== undefined;
    }, `a stream line matching ${pattern} on ${this.node}`);
    return found!;
  }

  async stop(): Promise<void> {
    await this.#process.stop();
    await this.#reading;
  }
}

/** Opens an events2 stream on every node and waits for each initial dump. */
export async function streams(
  cluster: DrbdCluster,
  nodes: readonly string[] = cluster.nodes,
): Promise<Record<string, Stream>> {
  await cluster.settled();
  const all: Record<string, Stream> = {};
  for (const node of nodes) all[node] = new Stream(cluster, node);
  for (const s of Object.values(all)) await s.waitForLine("exists -");
  return all;
}

/** Stops every stream of {@linkcode streams}. */
export async function stopStreams(all: Record<string, Stream>): Promise<void> {
  for (const s of Object.values(all)) await s.stop();
}

/**
 * drbd9-tests' forbidden patterns: fails when a line after `marks` (one per
 * stream) matches `pattern`.
 */
export function assertNoLine(
  all: Record<string, Stream>,
  marks: Record<string, number>,
  pattern: RegExp,
  what: string,
): void {
  for (const [node, s] of Object.entries(all)) {
    const hit = s.since(marks[node] ?? 0).find((l) => pattern.test(l));
    assert.equal(hit, undefined, `${what}: ${node} printed ${hit}`);
  }
}

/** The current mark of every stream. */
export function marks(all: Record<string, Stream>): Record<string, number> {
  return Object.fromEntries(Object.entries(all).map(([node, s]) => [node, s.mark()]));
}
