// Real kubectl against a whole simulated cluster (controllers, kubelets,
// DRBD), as the README's playground suggests using it.

import assert from "node:assert/strict";
import { SimCluster } from "../sim/cluster.ts";
import { deadline, waitFor } from "../helpers.ts";
import { kubectlPath } from "../tools/mod.ts";

async function run(
  cluster: SimCluster,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const { code, stdout, stderr } = await new Deno.Command(await kubectlPath(), {
    args: ["--kubeconfig", cluster.server.kubeconfigPath, ...args],
    stdin: "null",
  }).output();
  return { code, out: new TextDecoder().decode(stdout), err: new TextDecoder().decode(stderr) };
}

Deno.test({
  name:
    "kubectl: get, taint, annotate, force delete, events, volumeattachments and watch on a simulated cluster",
  async fn() {
    const cluster = await SimCluster.start({ agents: false, scale: 5 });
    try {
      cluster.deployStatefulSet("web");
      const node = await cluster.waitForRunningPod("web-0");

      const pods = await run(cluster, ["get", "pods", "-o", "wide"]);
      assert.equal(pods.code, 0, pods.err);
      const podLine = pods.out.split("\n").find((l) => l.startsWith("web-0"));
      assert.ok(podLine, pods.out);
      assert.match(
        podLine,
        new RegExp(`^web-0\\s+1/1\\s+Running\\s+0\\s+\\S+\\s+\\S+\\s+${node}\\s`),
      );

      const nodes = await run(cluster, ["get", "nodes"]);
      assert.equal(nodes.code, 0, nodes.err);
      for (const n of cluster.nodes) assert.match(nodes.out, new RegExp(`^${n}\\s+Ready\\s`, "m"));

      const taint = await run(cluster, [
        "taint",
        "node",
        node,
        "example.com/maintenance=yes:NoSchedule",
      ]);
      assert.equal(taint.code, 0, taint.err);
      assert.match(taint.out, new RegExp(`node/${node} tainted`));
      // deno-lint-ignore no-explicit-any
      const tainted = cluster.server.get("nodes", undefined, node) as any;
      assert.ok(
        tainted.spec.taints.some((t: { key: string }) => t.key === "example.com/maintenance"),
      );

      const annotate = await run(cluster, [
        "annotate",
        "node",
        node,
        "drbd.linbit.com/ha-controller-paused=true",
      ]);
      assert.equal(annotate.code, 0, annotate.err);
      // deno-lint-ignore no-explicit-any
      const annotated = cluster.server.get("nodes", undefined, node) as any;
      assert.equal(annotated.metadata.annotations["drbd.linbit.com/ha-controller-paused"], "true");

      const vas = await run(cluster, ["get", "volumeattachments"]);
      assert.equal(vas.code, 0, vas.err);
      assert.match(
        vas.out,
        new RegExp(`linstor\\.csi\\.linbit\\.com\\s+pvc-\\S+\\s+${node}\\s+true`),
      );

      // Watch while the pod is force-deleted: the watch prints the change.
      const watcher = new Deno.Command(await kubectlPath(), {
        args: [
          "--kubeconfig",
          cluster.server.kubeconfigPath,
          "get",
          "pods",
          "-w",
          `--request-timeout=${deadline(20_000)}ms`,
        ],
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
      }).spawn();
      let watched = "";
      const reading = watcher.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
        new WritableStream({ write: (chunk) => void (watched += chunk) }),
      );
      await waitFor(() => watched.includes("web-0"), 10_000, "kubectl get pods -w lists web-0");
      const uid = cluster.pod("web-0")?.metadata.uid;
      const del = await run(cluster, ["delete", "pod", "web-0", "--force", "--grace-period=0"]);
      assert.equal(del.code, 0, del.err);
      assert.match(del.err + del.out, /pod "web-0" force deleted/);
      await waitFor(
        () => cluster.pod("web-0") !== undefined && cluster.pod("web-0")?.metadata.uid !== uid,
        20_000,
        "the StatefulSet recreates web-0",
      );
      await waitFor(
        () => watched.split("\n").filter((l) => l.startsWith("web-0")).length >= 2,
        10_000,
        "watch output",
      );
      watcher.kill("SIGTERM");
      await watcher.status;
      await reading.catch(() => {});
      await watcher.stderr.cancel();

      const events = await run(cluster, ["get", "events"]);
      assert.equal(events.code, 0, events.err);
      assert.match(events.out, /Scheduled/);
    } finally {
      await cluster.stop();
    }
  },
});
