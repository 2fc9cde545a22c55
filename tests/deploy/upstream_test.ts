// Drop-in for the upstream HA controller: the container arguments that the
// Piraeus Operator's DaemonSet and the upstream Helm chart pass to the
// upstream image start this agent unchanged (only the image differs), and it
// fails a crashed node over with them. The README's migration table of
// defaults that differ from the upstream binary matches the code.

import assert from "node:assert/strict";
import yaml from "js-yaml";
import { parseCommandLine } from "../../lib/cli.ts";
import { formatDuration } from "../../lib/duration.ts";
import { defaultOptions, type Options } from "../../lib/options.ts";
import { ApiServer } from "../sim/apiserver/mod.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { spawnAgent, waitHealthy } from "../sim/agent_process.ts";
import { waitFor } from "../helpers.ts";
import {
  markNotReady,
  resourceAfterNodeBCrash,
  resourceOnNodeA,
  seedCluster,
} from "../agent/harness.ts";
import { type Manifest, runHelm } from "./manifests.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const repo = new URL("../../", import.meta.url).pathname;
const upstreamChart = new URL("./upstream_chart", import.meta.url).pathname;

/**
 * The container `args` of the Piraeus Operator's ha-controller DaemonSet
 * (piraeusdatastore/piraeus-operator pkg/resources/cluster/ha-controller/daemonset.yaml
 * at 40dde4fce43c50efba0a272a5475102db91dd7d9); NODE_NAME comes from the
 * downward API, the health probes use port 8000.
 */
const operatorArgs = ["/agent", "--v=1"];

/** Every option the upstream chart's values.yaml names (commented out there but `v`). */
const upstreamChartOptions = {
  "v": 5,
  "drbd-status-interval": "5s",
  "fail-over-timeout": "5s",
  "operations-timeout": "30s",
  "reconcile-interval": "5s",
  "resync-interval": "15m",
  "grace-period-seconds": 10,
};

/** The upstream chart's container args, rendered by real helm with `values`. */
async function chartArgs(values: Record<string, unknown>): Promise<string[]> {
  const run = await runHelm(
    ["template", "upstream", upstreamChart, "--values", "-"],
    JSON.stringify(values),
  );
  assert.equal(run.code, 0, run.stderr);
  const [configMap] = (yaml.loadAll(run.stdout) as (Manifest | null)[])
    .filter((m) => m !== null) as Obj[];
  return yaml.load(configMap.data.args) as string[];
}

Deno.test("upstream chart: its args, rendered by helm, are /agent then --option=value", async () => {
  assert.deepEqual(await chartArgs({}), ["/agent", "--v=2"]);
  assert.deepEqual(await chartArgs({ options: upstreamChartOptions }), [
    "/agent",
    "--drbd-status-interval=5s",
    "--fail-over-timeout=5s",
    "--grace-period-seconds=10",
    "--operations-timeout=30s",
    "--reconcile-interval=5s",
    "--resync-interval=15m",
    "--v=5",
  ]);
});

Deno.test("upstream args: the operator's and the chart's command lines parse as run with their values", async () => {
  const env = { NODE_NAME: "node-a" };
  const operator = parseCommandLine(operatorArgs, env);
  assert.deepEqual(operator, {
    command: "run",
    output: "table",
    options: { ...defaultOptions, nodeName: "node-a", v: 1 },
  });
  const chart = parseCommandLine(await chartArgs({ options: upstreamChartOptions }), env);
  assert.deepEqual(chart, {
    command: "run",
    output: "table",
    options: {
      ...defaultOptions,
      nodeName: "node-a",
      v: 5,
      drbdStatusInterval: 5_000,
      failOverTimeout: 5_000,
      gracePeriodSeconds: 10,
      operationsTimeout: 30_000,
      reconcileInterval: 5_000,
      resyncInterval: 900_000,
    },
  });
});

/** Defaults of the upstream binary (cmd/agent/main.go) that differ from this agent's. */
const upstreamDefaults: Partial<Record<keyof Options, number>> = {
  operationsTimeout: 30_000,
  reconcileInterval: 10_000,
  resyncInterval: 900_000,
};

Deno.test("README's migration notes list every default that differs from the upstream binary", async () => {
  const readme = await Deno.readTextFile(`${repo}README.md`);
  const start = readme.indexOf("### Migrating from the upstream HA controller");
  assert.ok(start >= 0, "README has a migration section");
  const section = readme.slice(start, readme.indexOf("\n## ", start));
  const flagOf: Record<string, string> = {
    operationsTimeout: "operations-timeout",
    reconcileInterval: "reconcile-interval",
    resyncInterval: "resync-interval",
  };
  for (const [option, upstream] of Object.entries(upstreamDefaults)) {
    const ours = defaultOptions[option as keyof Options] as number;
    assert.notEqual(ours, upstream, `${option} differs`);
    const row = new RegExp(
      `\\| \`--${flagOf[option]}\` +\\| \`${formatDuration(upstream)}\` +\\| \`${
        formatDuration(ours)
      }\` +\\|`,
    );
    assert.match(section, row, `a row for --${flagOf[option]}`);
  }
});

/** A crash of node-b under the agent started with `args` (as a DaemonSet would, NODE_NAME set). */
async function failOverWith(args: string[]): Promise<void> {
  const server = await ApiServer.start({ tls: true });
  const drbd = await FakeDrbd.create();
  await drbd.setResources([resourceOnNodeA()]);
  const { podUid } = seedCluster(server);
  const agent = await spawnAgent({
    node: "node-a",
    apiUrl: server.url,
    kubeconfig: server.kubeconfigPath,
    env: drbd.env,
    leadingArgs: args,
    nodeNameFromEnv: true,
  });
  try {
    await waitHealthy(agent);
    // The upstream verbosity flag took effect: debug lines.
    await waitFor(
      () => / DEBUG /.test(agent.stderr()),
      15_000,
      () => `a debug line:\n${agent.stderr()}`,
    );
    markNotReady(server, "node-b");
    await drbd.setResources([resourceAfterNodeBCrash()]);
    // The upstream defaults: 5s fail-over timeout, 5s DRBD status interval.
    await waitFor(
      () => server.get("volumeattachments", undefined, "csi-pvc-1-node-b") === undefined,
      40_000,
      () => `VolumeAttachment deleted (agent stderr:\n${agent.stderr()})`,
    );
    const pod = server.get("pods", "default", "web-0") as Obj;
    assert.ok(pod === undefined || pod.metadata.uid !== podUid, "the pod on node-b is gone");
    const nodeB = server.get("nodes", undefined, "node-b") as Obj;
    assert.ok(nodeB.spec.taints.some((t: Obj) => t.key === "drbd.linbit.com/lost-quorum"));
  } finally {
    assert.equal(await agent.stop(), 0, `agent exits 0 on SIGTERM (stderr:\n${agent.stderr()})`);
    await server.close();
    await drbd.cleanup();
  }
}

Deno.test("upstream args: the Piraeus Operator's DaemonSet args start this agent, which fails a crashed node over", async () => {
  await failOverWith(operatorArgs);
});

Deno.test("upstream args: the upstream chart's rendered args start this agent, which fails a crashed node over", async () => {
  await failOverWith(await chartArgs({ options: upstreamChartOptions }));
});
