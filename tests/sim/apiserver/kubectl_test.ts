import assert from "node:assert/strict";
import { ApiServer } from "./mod.ts";
import type { ApiServerOptions, KubeObject } from "./mod.ts";
import { waitFor } from "./testing.ts";
import { deadline } from "../../helpers.ts";
import { kubectlPath } from "../../tools/mod.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface Ctx {
  server: ApiServer;
  kubectl: (...args: string[]) => Promise<Run>;
  spawn: (...args: string[]) => Deno.ChildProcess;
}

function kubectlTest(name: string, options: ApiServerOptions, body: (ctx: Ctx) => Promise<void>) {
  Deno.test(name, async () => {
    const kubectl = await kubectlPath();
    const server = await ApiServer.start(options);
    const cacheDir = await Deno.makeTempDir({ prefix: "kubectl-cache-" });
    const command = (args: string[]) =>
      new Deno.Command(kubectl, {
        args: ["--kubeconfig", server.kubeconfigPath, "--cache-dir", cacheDir, ...args],
        env: { HOME: cacheDir },
        stdout: "piped",
        stderr: "piped",
      });
    try {
      await body({
        server,
        kubectl: async (...args) => {
          const out = await command(args).output();
          return {
            code: out.code,
            stdout: new TextDecoder().decode(out.stdout),
            stderr: new TextDecoder().decode(out.stderr),
          };
        },
        spawn: (...args) => command(args).spawn(),
      });
    } finally {
      await server.close();
      await Deno.remove(cacheDir, { recursive: true });
    }
  });
}

function seed(server: ApiServer): void {
  server.create({
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: "node-a", labels: { "node-role.kubernetes.io/control-plane": "" } },
    status: {
      conditions: [{ type: "Ready", status: "True" }],
      addresses: [{ type: "InternalIP", address: "10.0.0.1" }],
      nodeInfo: { kubeletVersion: "v1.32.4" },
    },
  });
  server.create({
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: "node-b" },
    spec: { unschedulable: true },
    status: { conditions: [{ type: "Ready", status: "Unknown" }] },
  });
  server.create({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "web-0", namespace: "default" },
    spec: { nodeName: "node-a", containers: [{ name: "web", image: "nginx" }] },
    status: {
      phase: "Running",
      podIPs: [{ ip: "10.1.0.5" }],
      containerStatuses: [{ name: "web", ready: true, restartCount: 2 }],
    },
  });
}

/** Splits kubectl's table output into rows of cells. */
function rows(text: string): string[][] {
  return text.trim().split("\n").map((line) => line.trim().split(/\s{2,}/));
}

kubectlTest("kubectl get pods -o wide prints the server-side table", { tls: true }, async (ctx) => {
  seed(ctx.server);
  const out = await ctx.kubectl("get", "pods", "-o", "wide");
  assert.equal(out.code, 0, out.stderr);
  const [header, row] = rows(out.stdout);
  assert.deepEqual(header, [
    "NAME",
    "READY",
    "STATUS",
    "RESTARTS",
    "AGE",
    "IP",
    "NODE",
    "NOMINATED NODE",
    "READINESS GATES",
  ]);
  assert.deepEqual([...row.slice(0, 4), ...row.slice(5)], [
    "web-0",
    "1/1",
    "Running",
    "2",
    "10.1.0.5",
    "node-a",
    "<none>",
    "<none>",
  ]);
  const list = ctx.server.requests.find((r) => r.verb === "list" && r.resource === "pods")!;
  assert.match(list.accept ?? "", /as=Table/);
});

kubectlTest("kubectl get nodes shows status and roles", { tls: true }, async (ctx) => {
  seed(ctx.server);
  const out = await ctx.kubectl("get", "nodes");
  assert.equal(out.code, 0, out.stderr);
  const table = rows(out.stdout);
  assert.deepEqual(table[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
  assert.deepEqual([...table[1].slice(0, 3), table[1][4]], [
    "node-a",
    "Ready",
    "control-plane",
    "v1.32.4",
  ]);
  assert.deepEqual(table[2].slice(0, 3), ["node-b", "Unknown,SchedulingDisabled", "<none>"]);
});

kubectlTest(
  "kubectl taint adds and removes taints with a strategic merge patch",
  { tls: true },
  async (ctx) => {
    seed(ctx.server);
    const taints = () =>
      (ctx.server.get("nodes", undefined, "node-a")!.spec as { taints?: unknown }).taints;
    const add = await ctx.kubectl("taint", "node", "node-a", "example.com/lost=yes:NoExecute");
    assert.equal(add.code, 0, add.stderr);
    assert.equal(add.stdout.trim(), "node/node-a tainted");
    assert.deepEqual(taints(), [{ key: "example.com/lost", value: "yes", effect: "NoExecute" }]);
    const second = await ctx.kubectl("taint", "node", "node-a", "other:NoSchedule");
    assert.equal(second.code, 0, second.stderr);
    assert.equal((taints() as unknown[]).length, 2);
    const remove = await ctx.kubectl("taint", "node", "node-a", "example.com/lost-");
    assert.equal(remove.code, 0, remove.stderr);
    assert.equal(remove.stdout.trim(), "node/node-a untainted");
    assert.deepEqual(taints(), [{ key: "other", effect: "NoSchedule" }]);
    const last = await ctx.kubectl("taint", "node", "node-a", "other-");
    assert.equal(last.code, 0, last.stderr);
    assert.equal(taints(), undefined);
    const patches = ctx.server.writes().filter((r) => r.verb === "patch");
    assert.equal(patches.length, 4);
    assert.ok(patches.every((p) => p.contentType === "application/strategic-merge-patch+json"));
    assert.equal(patches[0].query.fieldManager, "kubectl-taint");
  },
);

kubectlTest("kubectl annotate sets and removes an annotation", { tls: true }, async (ctx) => {
  seed(ctx.server);
  const set = await ctx.kubectl("annotate", "pod", "web-0", "example.com/note=hello");
  assert.equal(set.code, 0, set.stderr);
  assert.equal(set.stdout.trim(), "pod/web-0 annotated");
  assert.deepEqual(ctx.server.get("pods", "default", "web-0")!.metadata.annotations, {
    "example.com/note": "hello",
  });
  const unset = await ctx.kubectl("annotate", "pod", "web-0", "example.com/note-");
  assert.equal(unset.code, 0, unset.stderr);
  assert.equal(ctx.server.get("pods", "default", "web-0")!.metadata.annotations, undefined);
});

kubectlTest(
  "kubectl delete --force --grace-period=0 removes the pod at once",
  { tls: true },
  async (ctx) => {
    seed(ctx.server);
    const out = await ctx.kubectl("delete", "pod", "web-0", "--force", "--grace-period=0");
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout.trim(), 'pod "web-0" force deleted');
    assert.equal(ctx.server.get("pods", "default", "web-0"), undefined);
    const del = ctx.server.writes().find((r) => r.verb === "delete")!;
    assert.deepEqual(del.body, { gracePeriodSeconds: 0, propagationPolicy: "Background" });
    const missing = await ctx.kubectl("get", "pod", "web-0");
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim(), 'Error from server (NotFound): pods "web-0" not found');
  },
);

kubectlTest("kubectl get events and volumeattachments", { tls: true }, async (ctx) => {
  seed(ctx.server);
  const now = new Date();
  ctx.server.create({
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: "node-a.1", namespace: "default" },
    involvedObject: { kind: "Node", name: "node-a" },
    reason: "NodeNotReady",
    message: "Node node-a status is now: NodeNotReady",
    type: "Normal",
    source: { component: "node-controller" },
    firstTimestamp: now.toISOString().replace(/\.\d+Z$/, "Z"),
    lastTimestamp: now.toISOString().replace(/\.\d+Z$/, "Z"),
    count: 1,
  });
  ctx.server.create({
    apiVersion: "storage.k8s.io/v1",
    kind: "VolumeAttachment",
    metadata: { name: "csi-123", finalizers: ["external-attacher/linstor-csi-linbit-com"] },
    spec: {
      attacher: "linstor.csi.linbit.com",
      nodeName: "node-a",
      source: { persistentVolumeName: "pvc-1" },
    },
    status: { attached: true },
  });
  const events = await ctx.kubectl("get", "events");
  assert.equal(events.code, 0, events.stderr);
  const ev = rows(events.stdout);
  assert.deepEqual(ev[0], ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
  assert.deepEqual(ev[1].slice(1), [
    "Normal",
    "NodeNotReady",
    "node/node-a",
    "Node node-a status is now: NodeNotReady",
  ]);
  const vas = await ctx.kubectl("get", "volumeattachments");
  assert.equal(vas.code, 0, vas.stderr);
  const va = rows(vas.stdout);
  assert.deepEqual(va[0], ["NAME", "ATTACHER", "PV", "NODE", "ATTACHED", "AGE"]);
  assert.deepEqual(va[1].slice(0, 5), [
    "csi-123",
    "linstor.csi.linbit.com",
    "pvc-1",
    "node-a",
    "true",
  ]);
});

kubectlTest(
  "kubectl works with legacy discovery over plain HTTP",
  { aggregatedDiscovery: false },
  async (ctx) => {
    seed(ctx.server);
    const out = await ctx.kubectl("get", "no", "-o", "name");
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(out.stdout.trim().split("\n"), ["node/node-a", "node/node-b"]);
    const paths = ctx.server.requests.map((r) => r.path);
    assert.ok(paths.includes("/api/v1"), "legacy resource list fetched");
    assert.ok(paths.includes("/apis/storage.k8s.io/v1"), "group resource lists fetched");
  },
);

kubectlTest("kubectl get pods -w prints changes and exits when the server ends the watch", {
  tls: true,
}, async (ctx) => {
  seed(ctx.server);
  const child = ctx.spawn("get", "pods", "-w");
  await waitFor(() => ctx.server.openWatchCount() === 1, {
    what: "kubectl's watch",
    timeoutMs: 10_000,
  });
  ctx.server.create({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "web-1", namespace: "default" },
    spec: { nodeName: "node-a", containers: [{ name: "web", image: "nginx" }] },
    status: { phase: "Pending" },
  } as KubeObject);
  // the ADDED event is queued on the stream before the stream's normal end
  ctx.server.endWatches();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const table = rows(new TextDecoder().decode(out.stdout));
  assert.deepEqual(table[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
  assert.deepEqual(table.slice(1).map((r) => r[0]), ["web-0", "web-1"]);
});

kubectlTest(
  "a graceful kubectl delete waits until the pod is really removed",
  { tls: true },
  async (ctx) => {
    seed(ctx.server);
    const child = ctx.spawn("delete", "pod", "web-0", `--timeout=${deadline(20_000)}ms`);
    await waitFor(() => ctx.server.openWatchCount() === 1, {
      what: "kubectl's wait",
      timeoutMs: 10_000,
    });
    const pod = ctx.server.get("pods", "default", "web-0")!;
    assert.ok(pod.metadata.deletionTimestamp, "the pod is terminating meanwhile");
    const watch = ctx.server.requests.find((r) => r.verb === "watch")!;
    assert.equal(watch.query.fieldSelector, "metadata.name=web-0");
    // what a kubelet does once the containers stopped
    ctx.server.delete("pods", "default", "web-0", {
      gracePeriodSeconds: 0,
      preconditions: { uid: pod.metadata.uid },
    });
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout).trim(), 'pod "web-0" deleted');
  },
);
