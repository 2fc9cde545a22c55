/**
 * The playground: `npx deno task demo [--no-agent] [--keep]`.
 *
 * Starts a simulated 3-node cluster with ha-controller on every node, runs
 * a StatefulSet on a DRBD volume (2 replicas and a diskless tiebreaker),
 * crashes the node running it, and prints what happens, with times.
 * `--no-agent` also runs the same crash on a cluster without ha-controller,
 * sped up, and prints both timelines side by side. `--keep` leaves the
 * cluster running afterwards for kubectl.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { SimCluster } from "./cluster.ts";
import type { KubeObject } from "./apiserver/mod.ts";
import { formatTimeline, type Milestone } from "./timeline.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    "no-agent": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (args.values.help) {
  console.log(`Usage: deno task demo [--no-agent] [--keep]

  --no-agent   also run the same crash without ha-controller (sped up 30x) and compare
  --keep       keep the cluster running afterwards and print how to use kubectl with it`);
  Deno.exit(0);
}

/** The attach-detach controller's resync period used here (kube-controller-manager default: 1m). */
const syncPeriodMs = 10_000;
/** The stock run's time scale. */
const stockScale = 30;
/** How long the stock run is watched, simulated. */
const stockWatchMs = 15 * 60_000;

// deno-lint-ignore no-explicit-any
type Obj = any;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("   ").trimEnd()).join("\n");
}

function podStatus(pod: Obj): string {
  if (pod.metadata.deletionTimestamp) return "Terminating";
  return pod.status?.phase === "Running" ? "Running" : "ContainerCreating";
}

/** What `kubectl get nodes` and `kubectl get pods -o wide` would show. */
function showCluster(cluster: SimCluster): string {
  const nodes = cluster.server.list("nodes").map((n: KubeObject) => {
    const o = n as Obj;
    const ready = (o.status?.conditions ?? []).find((c: Obj) => c.type === "Ready");
    const taints = (o.spec?.taints ?? []).map((t: Obj) => t.key).join(",");
    return [o.metadata.name, ready?.status === "True" ? "Ready" : "NotReady", taints || "<none>"];
  });
  const pods = cluster.server.list("pods", "default").map((p: KubeObject) => {
    const o = p as Obj;
    const ready = (o.status?.conditions ?? []).some((c: Obj) =>
      c.type === "Ready" && c.status === "True"
    );
    return [o.metadata.name, ready ? "1/1" : "0/1", podStatus(o), o.spec?.nodeName ?? "<none>"];
  });
  return `$ kubectl get nodes\n${table([["NAME", "STATUS", "TAINTS"], ...nodes])}\n\n` +
    `$ kubectl get pods -o wide\n${table([["NAME", "READY", "STATUS", "NODE"], ...pods])}`;
}

/** Crash the node running web-0 and follow until the replacement runs (or `untilMs` passes). */
async function crashStory(
  cluster: SimCluster,
  untilMs: number,
  before?: (cluster: SimCluster, node: string) => void,
): Promise<{
  crashed: string;
  milestones: Milestone[];
  recoveredAfterMs: number | undefined;
}> {
  cluster.deployStatefulSet("web");
  const crashed = await cluster.waitForRunningPod("web-0", { timeoutMs: 30_000 });
  before?.(cluster, crashed);
  const start = cluster.timeline.milestones().length;
  const crashedAt = cluster.clock.now();
  await cluster.crash(crashed);
  let recoveredAfterMs: number | undefined;
  try {
    await cluster.waitForRunningPod("web-0", {
      notOn: crashed,
      timeoutMs: cluster.clock.real(untilMs),
    });
    recoveredAfterMs = cluster.clock.now() - crashedAt;
  } catch {
    // Not recovered within the watch window: that is the point of the stock run.
  }
  const crashMark = cluster.timeline.milestones()[start];
  const milestones = cluster.timeline.milestones().slice(start).map((m) => ({
    ...m,
    at: m.at - crashMark.at,
  }));
  return { crashed, milestones, recoveredAfterMs };
}

/** The milestones that tell the story, in the user's words. */
function keyMoments(milestones: Milestone[], crashed: string): Map<string, number | undefined> {
  const first = (re: RegExp) => milestones.find((m) => re.test(m.what))?.at;
  return new Map([
    ["node crashed", first(/crashed/)],
    ["node NotReady (no heartbeat)", first(new RegExp(`node ${crashed} NotReady`))],
    [
      "node tainted lost-quorum",
      first(new RegExp(`node ${crashed} tainted drbd.linbit.com/lost-quorum`)),
    ],
    ["old pod Terminating", first(/web-0 Terminating/)],
    ["old pod gone", first(/web-0 deleted/)],
    ["Multi-Attach warning", first(/FailedAttachVolume/)],
    [
      "volume detached from the lost node",
      first(new RegExp(`volumeattachment .* deleted \\(${crashed}\\)`)),
    ],
    ["replacement Running", first(new RegExp(`web-0 Running on (?!${crashed})`))],
  ]);
}

function seconds(ms: number | undefined, notReached: string): string {
  return ms === undefined ? notReached : `${(ms / 1000).toFixed(1)}s`;
}

console.log(
  "Starting a simulated cluster: 3 workers, ha-controller on each (real agent processes),",
);
console.log("DRBD with 2 replicas and a diskless tiebreaker per volume.");
console.log(
  `(The attach-detach controller resyncs every ${
    syncPeriodMs / 1000
  }s here; Kubernetes' default is 1m.)\n`,
);

const withAgents = await SimCluster.start({ constants: { reconcilerSyncDuration: syncPeriodMs } });
const stockRun = args.values["no-agent"]
  ? SimCluster.start({
    agents: false,
    scale: stockScale,
    constants: { reconcilerSyncDuration: syncPeriodMs },
  })
  : undefined;
try {
  const stockStory = stockRun?.then((cluster) => crashStory(cluster, stockWatchMs));
  const story = await crashStory(withAgents, 120_000, (cluster, node) => {
    console.log(showCluster(cluster).replace(/^/gm, "  "));
    console.log(`\nCrashing ${node}, which runs web-0 (no shutdown, no goodbye to its peers).\n`);
  });
  console.log(`Timeline with ha-controller (seconds after the crash):\n`);
  console.log(formatTimeline(story.milestones));
  console.log(`\n${showCluster(withAgents).replace(/^/gm, "  ")}`);
  console.log(
    `\nweb-0 was Running again ${
      seconds(story.recoveredAfterMs, "(not within 2 min)")
    } after the crash ` +
      "(DRBD noticed the loss after ~10.5s, ha-controller waited its 5s --fail-over-timeout).",
  );
  if (stockStory) {
    const stock = await stockStory;
    const ours = keyMoments(story.milestones, story.crashed);
    const theirs = keyMoments(stock.milestones, stock.crashed);
    const rows = [["", "with ha-controller", `stock Kubernetes (run ${stockScale}x sped up)`]];
    for (const [i, [what, at]] of [...ours].entries()) {
      const stockAt = [...theirs.values()][i];
      rows.push([what, seconds(at, "-"), seconds(stockAt, "not within 15 min")]);
    }
    console.log(
      `\nSide by side (simulated time after the crash):\n\n${table(rows).replace(/^/gm, "  ")}`,
    );
    console.log(
      "\nWithout ha-controller the pod is evicted only after the 300s unreachable toleration and then stays\n" +
        "Terminating, because only its dead kubelet could confirm the deletion; the StatefulSet waits for it.",
    );
  }
  if (args.values.keep) {
    console.log(`\nThe cluster keeps running. Try:\n`);
    console.log(`  kubectl --kubeconfig ${withAgents.server.kubeconfigPath} get pods -o wide`);
    console.log(`  kubectl --kubeconfig ${withAgents.server.kubeconfigPath} get events`);
    console.log(`\nPress Ctrl-C to stop.`);
    await new Promise<void>((resolve) => Deno.addSignalListener("SIGINT", () => resolve()));
  }
} finally {
  await withAgents.stop();
  await (await stockRun)?.stop();
}
