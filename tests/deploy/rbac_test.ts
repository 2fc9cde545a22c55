// The RBAC proof: the agents run authenticated as the ServiceAccount of
// deploy/kustomize, with the RBAC objects `kubectl kustomize` renders, in a
// simulated cluster that enforces RBAC. The seed's crash story passes without
// a single 403, and every verb of every rule is needed: without it the agent
// is refused exactly that request, and where the verb is on the fail-over's
// path, the fail-over stops there.

import assert from "node:assert/strict";
import { SimCluster, type SimClusterOptions } from "../sim/cluster.ts";
import { type AgentProcess, spawnAgent } from "../sim/agent_process.ts";
import type { ApiServer, KubeObject, RequestRecord } from "../sim/apiserver/mod.ts";
import { pathString } from "../sim/apiserver/objects.ts";
import { podClaims, taintsOf } from "../sim/controllers/kube_util.ts";
import { waitFor } from "../helpers.ts";
import { metricValue } from "../agent/harness.ts";
import { lostQuorumTaintKey } from "../../lib/names.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { KubeWriter } from "../../lib/kube/writes.ts";
import { type Manifest, only, renderKustomize, type Rule, rulesOf } from "./manifests.ts";

const rbacKinds = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];

/** One verb on one resource, granted by the ClusterRole or the Role. */
interface Grant {
  role: "ClusterRole" | "Role";
  group: string;
  resource: string;
  verb: string;
}

function grantName(g: Grant): string {
  return `${g.verb} ${g.group ? `${g.group}/` : ""}${g.resource}`;
}

/** Every verb of every rule of the rendered ClusterRole and Role. */
function grantsOf(manifests: Manifest[]): Grant[] {
  const out: Grant[] = [];
  for (const role of ["ClusterRole", "Role"] as const) {
    for (const rule of rulesOf(only(manifests, role, "ha-controller"))) {
      for (const group of rule.apiGroups) {
        for (const resource of rule.resources) {
          for (const verb of rule.verbs) out.push({ role, group, resource, verb });
        }
      }
    }
  }
  return out;
}

/** `rules` without `grant` (a rule left with no verb is dropped). */
function rulesWithout(rules: Rule[], grant: Grant): Rule[] {
  const out: Rule[] = [];
  for (const rule of rules) {
    if (!rule.apiGroups.includes(grant.group) || !rule.resources.includes(grant.resource)) {
      out.push(rule);
      continue;
    }
    // Split the rule so that only this one (group, resource, verb) goes.
    for (const group of rule.apiGroups) {
      for (const resource of rule.resources) {
        const verbs = group === grant.group && resource === grant.resource
          ? rule.verbs.filter((v) => v !== grant.verb)
          : rule.verbs;
        if (verbs.length > 0) out.push({ apiGroups: [group], resources: [resource], verbs });
      }
    }
  }
  return out;
}

/** Store the rendered ClusterRole and Role, with `without` taken out of its role. */
function setRoles(server: ApiServer, manifests: Manifest[], without?: Grant): void {
  for (const kind of ["ClusterRole", "Role"] as const) {
    const role = only(manifests, kind, "ha-controller");
    const rules = without?.role === kind ? rulesWithout(rulesOf(role), without) : rulesOf(role);
    const stored = server.get(
      kind === "Role" ? "roles" : "clusterroles",
      role.metadata.namespace,
      role.metadata.name,
    )!;
    server.update({ ...stored, rules } as KubeObject);
  }
}

/**
 * A ServiceAccount `name` bound to a copy of the ClusterRole without `grant`
 * (and to the Lease Role); returns its kubeconfig.
 */
async function reducedAccount(
  server: ApiServer,
  manifests: Manifest[],
  { name, grant }: { name: string; grant: Grant },
): Promise<string> {
  const clusterRole = only(manifests, "ClusterRole", "ha-controller");
  const namespace = only(manifests, "ServiceAccount").metadata.namespace!;
  const subjects = [{ kind: "ServiceAccount", name, namespace }];
  const roleRef = (kind: string, roleName: string) => ({
    apiGroup: "rbac.authorization.k8s.io",
    kind,
    name: roleName,
  });
  server.create({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name },
    rules: rulesWithout(rulesOf(clusterRole), grant),
  } as KubeObject);
  server.create({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name },
    roleRef: roleRef("ClusterRole", name),
    subjects,
  } as KubeObject);
  server.create({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name, namespace: "kube-node-lease" },
    roleRef: roleRef("Role", "ha-controller"),
    subjects,
  } as KubeObject);
  return await server.kubeconfigFor(namespace, name);
}

/** Create the rendered namespace and RBAC objects; returns the ServiceAccount's kubeconfig. */
async function applyRbac(server: ApiServer, manifests: Manifest[]): Promise<string> {
  for (const m of manifests) {
    if (m.kind === "Namespace") server.create(m as KubeObject);
  }
  for (const m of manifests) {
    if (rbacKinds.includes(m.kind)) server.create(m as KubeObject);
  }
  const account = only(manifests, "ServiceAccount");
  return await server.kubeconfigFor(account.metadata.namespace!, account.metadata.name);
}

/** The (group, resource, verb) a 403 refused, read from its Forbidden message. */
function refused(r: RequestRecord): string {
  const m = /cannot (\S+) resource "([^"]+)" in API group "([^"]*)"/.exec(r.denied ?? "");
  assert.ok(m, `Expected a Forbidden message naming verb, resource and group, got ${r.denied}`);
  return `${m[1]} ${m[3] ? `${m[3]}/` : ""}${m[2]}`;
}

function startCluster(
  manifests: Manifest[],
  options: { agentArgs?: string[]; constants?: SimClusterOptions["constants"] } = {},
): Promise<SimCluster> {
  return SimCluster.start({
    rbac: true,
    // The attach-detach controller notices a deleted VolumeAttachment within a second.
    constants: { reconcilerSyncDuration: 1_000, ...options.constants },
    agentArgs: options.agentArgs ?? [],
    agentKubeconfig: (server) => applyRbac(server, manifests),
  });
}

/**
 * Deploy web, crash web-0's node and wait until a new web-0 runs elsewhere,
 * the old VolumeAttachment gone.
 */
async function crashFailsOver(cluster: SimCluster, timeoutMs: number) {
  cluster.deployStatefulSet("web");
  await cluster.waitForRunningPod("web-0");
  const before = placement(cluster);
  await cluster.crash(before.node);
  const newNode = await cluster.waitForRunningPod("web-0", { notOn: before.node, timeoutMs });
  assert.notEqual(newNode, before.node);
  assert.notEqual(cluster.pod("web-0")!.metadata.uid, before.uid);
  assert.equal(cluster.server.get("volumeattachments", undefined, before.attachment), undefined);
  return { before, newNode };
}

/** web-0's node, uid and the VolumeAttachment of its volume there. */
function placement(cluster: SimCluster) {
  const pod = cluster.pod("web-0")!;
  const node = pathString(pod, "spec.nodeName");
  const pvc = cluster.server.get("persistentvolumeclaims", "default", podClaims(pod)[0].claim);
  const pv = pathString(pvc, "spec.volumeName");
  const attachment = cluster.server.list("volumeattachments").find((va) =>
    pathString(va, "spec.source.persistentVolumeName") === pv &&
    pathString(va, "spec.nodeName") === node
  );
  assert.ok(attachment, `Expected a VolumeAttachment of ${pv} on ${node}`);
  return { node, uid: pod.metadata.uid!, pv, attachment: attachment.metadata.name! };
}

Deno.test(
  "RBAC: as the kustomize ServiceAccount, the agents fail a crashed node over with no 403",
  async () => {
    const manifests = await renderKustomize();
    const cluster = await startCluster(manifests);
    try {
      const { before, newNode } = await crashFailsOver(cluster, 60_000);
      assert.ok(
        taintsOf(cluster.server.get("nodes", undefined, before.node)!).some((t) =>
          t.key === lostQuorumTaintKey
        ),
        `Expected ${lostQuorumTaintKey} on ${before.node}`,
      );
      // Every agent request was the ServiceAccount's, and none was refused.
      const account = only(manifests, "ServiceAccount");
      const user = `system:serviceaccount:${account.metadata.namespace}:${account.metadata.name}`;
      const agentWrites = cluster.server.writes().filter((r) => r.user === user);
      assert.ok(
        agentWrites.some((r) => r.resource === "volumeattachments" && r.method === "DELETE"),
        `Expected the ServiceAccount to delete the VolumeAttachment, got writes: ${
          agentWrites.map((r) => `${r.method} ${r.path}`).join(", ")
        }`,
      );
      assert.deepEqual(cluster.server.forbidden().map((r) => r.denied), []);
      assert.ok(newNode !== before.node);
      assert.deepEqual(cluster.controllers.errors, []);
    } finally {
      await cluster.stop();
    }
  },
);

/**
 * The rules of the Piraeus Operator's ClusterRole for the upstream agent
 * (piraeusdatastore/piraeus-operator pkg/resources/cluster/ha-controller/rbac.yaml
 * at 9528aa5fc740c65a5b561047e91fdd1b432813c9), OpenShift's SCC rule left out;
 * it has no Role for kubelet Leases.
 */
const operatorClusterRoleRules: Rule[] = [
  { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "delete"] },
  { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] },
  { apiGroups: [""], resources: ["pods/eviction"], verbs: ["create"] },
  {
    apiGroups: [""],
    resources: ["nodes"],
    verbs: ["get", "list", "watch", "patch", "update"],
  },
  { apiGroups: [""], resources: ["persistentvolumes"], verbs: ["get", "list", "watch"] },
  {
    apiGroups: ["storage.k8s.io"],
    resources: ["volumeattachments"],
    verbs: ["get", "list", "watch", "delete"],
  },
];

Deno.test(
  "RBAC: with the Piraeus Operator's ClusterRole for the upstream agent (no Lease Role), a crashed node still fails over; only Lease reads are refused",
  async () => {
    const manifests = (await renderKustomize())
      .filter((m) => !(m.kind === "Role" || m.kind === "RoleBinding"))
      .map((m) => m.kind === "ClusterRole" ? { ...m, rules: operatorClusterRoleRules } : m);
    const cluster = await startCluster(manifests, {
      // The node controller marks the crashed node NotReady sooner than its
      // default 50 s, so that the graceful eviction (the Lease is unreadable:
      // the node counts as responsive while Ready) turns into a force-delete.
      constants: { nodeMonitorGracePeriod: 15_000 },
    });
    try {
      await crashFailsOver(cluster, 90_000);
      assert.deepEqual(
        [...new Set(cluster.server.forbidden().map(refused))],
        ["get coordination.k8s.io/leases"],
        "the agents read the lost node's Lease, are refused, and fall back to its Ready condition",
      );
      assert.deepEqual(cluster.controllers.errors, []);
    } finally {
      await cluster.stop();
    }
  },
);

Deno.test(
  "RBAC: every verb of every rule is needed; without it the agent is refused exactly that",
  async (t) => {
    const manifests = await renderKustomize();
    const grants = grantsOf(manifests);
    const proven = new Set<string>();
    const cluster = await startCluster(manifests, {
      agentArgs: ["--fail-over-timeout=1s", "--reconcile-interval=1s", "--drbd-status-interval=1s"],
      // A dead kubelet's Lease is overdue 1.5 s after its last renewal, long
      // before DRBD notices the crash (10.5 s): the crashed node's pod is
      // force-deleted, never evicted, however fast or slow the steps run.
      constants: { nodeLeaseRenewInterval: 1_000, nodeLeaseDurationSeconds: 4 },
    });
    const server = cluster.server;

    /** With `name` removed, wait for its 403 and check that nothing else was refused. */
    async function without(name: string, trigger: () => Promise<void> | void): Promise<void> {
      const grant = grants.find((g) => grantName(g) === name);
      assert.ok(
        grant,
        `Expected the rendered roles to grant ${name}; they grant ${grants.map(grantName)}`,
      );
      setRoles(server, manifests, grant);
      server.clearRequests();
      await trigger();
      await waitFor(
        () => server.forbidden().some((r) => refused(r) === name),
        30_000,
        () =>
          `a 403 for ${name}; agent requests since the roles changed:\n${
            server.requests.filter((r) => r.user?.startsWith("system:serviceaccount:"))
              .map((r) => `${r.method} ${r.path} → ${r.status}`).join("\n")
          }\n${
            cluster.nodes.map((n) =>
              `agent on ${n}:\n${cluster.agent(n)?.stderr().split("\n").slice(-15).join("\n")}`
            ).join("\n")
          }`,
      );
      assert.deepEqual([...new Set(server.forbidden().map(refused))], [name]);
      proven.add(name);
    }

    try {
      cluster.deployStatefulSet("web");
      await cluster.waitForRunningPod("web-0");
      const before = placement(cluster);
      const oldPodThere = () => cluster.pod("web-0")?.metadata.uid === before.uid;
      const survivors = cluster.nodes.filter((n) => n !== before.node);
      const cyclesOf = async (node: string) =>
        (await metricValue(cluster.agent(node)!, "ha_controller_loop_cycle_seconds_count")) ?? 0;
      /** Wait until every survivor's agent has finished `count` more decision cycles. */
      const survivorCycles = async (count: number): Promise<void> => {
        const from = await Promise.all(survivors.map(cyclesOf));
        await waitFor(
          async () =>
            (await Promise.all(survivors.map(cyclesOf))).every((c, i) => c >= from[i] + count),
          20_000,
          `${count} more decision cycles of the agents on ${survivors.join(", ")}`,
        );
      };

      await t.step("fail-over path: each step stops at the one verb removed", async () => {
        // One crash; each step takes one verb away (restoring the previous
        // one), in the order the fail-over needs them.
        await without("get nodes", () => cluster.crash(before.node));
        assert.ok(oldPodThere(), "Expected the old pod kept while its Node cannot be read");
        await without("update nodes", () => {});
        assert.ok(oldPodThere(), "Expected the old pod kept while the Node cannot be tainted");
        // Without the kubelet's Lease the Node still looks Ready: once its
        // taint succeeded, the agent would evict the pod and delete its
        // VolumeAttachment gracefully in the same cycle, and the steps below
        // could not show that their verbs are needed. Which cycle reads the
        // Lease unreadable, and when it acts, depends on how fast the
        // machine is, so the taint is held by a failing Node update (500, not
        // a 403) until every cycle that may have read the Lease without
        // permission has ended: two more cycles of each survivor's agent
        // after the Lease may be read again.
        const holdTaint = server.faults.add({
          verb: "update",
          resource: "nodes",
          name: before.node,
          status: 500,
          message: "held by the test until the Lease step is proven",
        });
        await without("get coordination.k8s.io/leases", () => {});
        assert.ok(
          oldPodThere(),
          "Expected the old pod kept while the kubelet Lease cannot be read",
        );
        await without("delete pods", async () => {
          await survivorCycles(2);
          server.faults.remove(holdTaint);
        });
        assert.ok(oldPodThere(), "Expected the old pod kept while it cannot be deleted");
        await without("delete storage.k8s.io/volumeattachments", () => {});
        assert.ok(
          server.get("volumeattachments", undefined, before.attachment),
          "Expected the VolumeAttachment kept while it cannot be deleted",
        );
        await without("create events.k8s.io/events", () => {});
        setRoles(server, manifests);
        await cluster.waitForRunningPod("web-0", { notOn: before.node, timeoutMs: 60_000 });
      });

      const placed = placement(cluster);
      const quiet = cluster.nodes.find((n) => n !== before.node && n !== placed.node)!;

      await t.step(
        "caches: an agent starting without a list or watch verb is refused it",
        async () => {
          // One ServiceAccount per removed verb, each with its own reduced
          // ClusterRole, and one dry-run agent each, all at once.
          const variants = grants.filter((g) => g.verb === "list" || g.verb === "watch");
          const agents: AgentProcess[] = [];
          server.clearRequests();
          try {
            const users = new Map<string, string>();
            for (const [i, grant] of variants.entries()) {
              const name = `ha-controller-without-${i}`;
              const kubeconfig = await reducedAccount(server, manifests, { name, grant });
              users.set(`system:serviceaccount:ha-controller:${name}`, grantName(grant));
              agents.push(
                await spawnAgent({
                  node: quiet,
                  apiUrl: server.url,
                  kubeconfig,
                  env: cluster.drbd.env(quiet),
                  args: ["--dry-run"],
                }),
              );
            }
            const refusals = () => {
              const byUser = new Map<string, Set<string>>();
              for (const r of server.forbidden()) {
                const seen = byUser.get(r.user ?? "") ?? new Set();
                seen.add(refused(r));
                byUser.set(r.user ?? "", seen);
              }
              return byUser;
            };
            await waitFor(
              () => [...users].every(([user, name]) => refusals().get(user)?.has(name)),
              30_000,
              () =>
                `a 403 for each of ${[...users.values()].join(", ")}; missing:\n${
                  [...users].map(([user, name], i) => ({ user, name, agent: agents[i] }))
                    .filter(({ user, name }) => !refusals().get(user)?.has(name))
                    .map(({ user, name, agent }) =>
                      `${name} (${user}): requests ${
                        server.requests.filter((r) => r.user === user)
                          .map((r) =>
                            `${r.method} ${r.path} → ${r.status}`
                          ).join(", ")
                      }; stderr:\n${agent.stderr().split("\n").slice(-10).join("\n")}`
                    ).join("\n")
                }`,
            );
            const seen = refusals();
            for (const [user, name] of users) {
              assert.deepEqual([...seen.get(user)!], [name], `403s of ${user}`);
              proven.add(name);
            }
            assert.deepEqual([...seen.keys()].sort(), [...users.keys()].sort());
          } finally {
            await Promise.all(agents.map((agent) => agent.stop()));
          }
        },
      );

      await t.step("events: a repeat of an Event needs patch on events", async () => {
        // The agents' own writer, as their ServiceAccount: the first Event is
        // created, its repeat counts up the Event's series with a patch.
        const account = only(manifests, "ServiceAccount");
        const kubeconfig = await server.kubeconfigFor(
          account.metadata.namespace!,
          account.metadata.name,
        );
        const client = await KubeClient.connect({ kubeconfig, requestTimeoutMs: 5_000 });
        try {
          const writer = new KubeWriter(client, quiet);
          const node = server.get("nodes", undefined, quiet)!;
          const event = {
            regarding: {
              kind: "Node",
              apiVersion: "v1",
              namespace: undefined,
              name: quiet,
              uid: node.metadata.uid!,
            },
            type: "Normal" as const,
            reason: "RbacProof",
            action: "Repeated",
            note: "an Event recorded twice",
          };
          // Refused the patch, the writer records the repeat as a new Event.
          await without("patch events.k8s.io/events", async () => {
            await writer.recordEvent(event, Date.now());
            await writer.recordEvent(event, Date.now() + 1_000);
          });
          setRoles(server, manifests);
          await writer.recordEvent(event, Date.now() + 2_000);
          const recorded = server.list("events.k8s.io/events")
            .filter((e) => e.reason === "RbacProof");
          assert.deepEqual(recorded.map((e) => pathString(e, "series.count")).sort(), ["", "2"]);
        } finally {
          client.close();
        }
      });

      await t.step("force-io: the own pod's eviction needs pods/eviction", async () => {
        await without("create pods/eviction", async () => {
          const demoted = await new Deno.Command(`${cluster.drbd.binDir(placed.node)}/drbdsetup`, {
            args: ["secondary", "--force", placed.pv],
            env: cluster.drbd.env(placed.node),
            stdout: "piped",
            stderr: "piped",
          }).output();
          assert.equal(demoted.code, 0, new TextDecoder().decode(demoted.stderr));
        });
        assert.equal(cluster.pod("web-0")?.metadata.uid, placed.uid);
        setRoles(server, manifests);
      });

      assert.deepEqual([...proven].sort(), grants.map(grantName).sort());
    } finally {
      await cluster.stop();
    }
  },
);
