// The kustomize manifests render with kubectl, pass the agent only flags it
// knows, and grant exactly the requests the agent makes.

import assert from "node:assert/strict";
import { flagDefinitions, parseCommandLine } from "../../lib/cli.ts";
import {
  grants,
  type Manifest,
  only,
  renderKustomize,
  renderOverlay,
  rulesOf,
} from "./manifests.ts";
import { forceIoErrorTaintKey, lostQuorumTaintKey, outOfServiceTaintKey } from "../../lib/names.ts";

/** What the agent requests (lib/kube/*.ts, lib/agent.ts), sorted. */
const expectedClusterRules = [
  { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "update", "watch"] },
  { apiGroups: [""], resources: ["persistentvolumes"], verbs: ["list", "watch"] },
  { apiGroups: [""], resources: ["pods"], verbs: ["delete", "list", "watch"] },
  { apiGroups: [""], resources: ["pods/eviction"], verbs: ["create"] },
  { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] },
  {
    apiGroups: ["storage.k8s.io"],
    resources: ["volumeattachments"],
    verbs: ["delete", "list", "watch"],
  },
];

/** Every (group, resource, verb) a set of rules grants, as sorted strings. */
function agentContainer(manifests: Manifest[]) {
  const ds = only(manifests, "DaemonSet", "ha-controller");
  // deno-lint-ignore no-explicit-any
  const spec = (ds as any).spec.template.spec;
  assert.equal(spec.containers.length, 1);
  return { spec, container: spec.containers[0] };
}

Deno.test("kubectl kustomize renders the namespace, RBAC and DaemonSet", async () => {
  const manifests = await renderKustomize();
  assert.deepEqual(
    manifests.map((m) => `${m.kind}/${m.metadata.namespace ?? ""}/${m.metadata.name}`).sort(),
    [
      "ClusterRole//ha-controller",
      "ClusterRoleBinding//ha-controller",
      "DaemonSet/ha-controller/ha-controller",
      "Namespace//ha-controller",
      "Role/kube-node-lease/ha-controller",
      "RoleBinding/kube-node-lease/ha-controller",
      "ServiceAccount/ha-controller/ha-controller",
    ],
  );
  const { spec, container } = agentContainer(manifests);
  assert.equal(spec.serviceAccountName, "ha-controller");
  assert.equal(spec.priorityClassName, "system-node-critical");
  // DRBD 9.2 and later answer in the pod's network namespace.
  assert.equal(spec.hostNetwork, undefined);
  assert.equal(spec.dnsPolicy, undefined);
  assert.equal(container.image, "ghcr.io/example/ha-controller:0.1.0");
  assert.deepEqual(container.env, [
    { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
  ]);
  for (const probe of [container.startupProbe, container.livenessProbe]) {
    assert.deepEqual(probe.httpGet, { path: "/healthz", port: 8000 });
  }
  assert.deepEqual(container.resources, {
    requests: { cpu: "20m", memory: "160Mi" },
    limits: { memory: "256Mi" },
  });
  assert.equal(container.securityContext.privileged, false);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext.capabilities, {
    drop: ["ALL"],
    add: ["NET_ADMIN"],
  });
  const tolerated = spec.tolerations.map((t: { key: string }) => t.key);
  for (
    const key of [
      lostQuorumTaintKey,
      forceIoErrorTaintKey,
      outOfServiceTaintKey,
      "node-role.kubernetes.io/control-plane",
    ]
  ) {
    assert.ok(tolerated.includes(key), `Expected a toleration of ${key}, got ${tolerated}`);
  }
});

Deno.test("the DaemonSet passes the agent only flags it knows, and they parse", async () => {
  const { container } = agentContainer(await renderKustomize());
  const known = new Set(flagDefinitions.map((f) => f.name));
  const args: string[] = container.args;
  assert.equal(container.command, undefined, "Expected the image's entry point, not a command");
  for (const arg of args) {
    const name = /^--([a-z0-9-]+)(=|$)/.exec(arg)?.[1];
    assert.ok(name !== undefined && known.has(name), `Expected a known --flag, got ${arg}`);
  }
  // The same line the agent would see, with NODE_NAME from the downward API.
  const parsed = parseCommandLine(args, { NODE_NAME: "node-a" });
  assert.equal(parsed.command, "run");
  assert.ok(parsed.command === "run" && parsed.options.nodeName === "node-a");
});

Deno.test(
  "the ClusterRole grants exactly what the agent requests, Leases only in kube-node-lease",
  async () => {
    const manifests = await renderKustomize();
    assert.deepEqual(
      grants(rulesOf(only(manifests, "ClusterRole", "ha-controller"))),
      grants(expectedClusterRules),
    );
    const role = only(manifests, "Role", "ha-controller");
    assert.equal(role.metadata.namespace, "kube-node-lease");
    assert.deepEqual(grants(rulesOf(role)), ["coordination.k8s.io/leases:get"]);
    for (const kind of ["ClusterRoleBinding", "RoleBinding"]) {
      // deno-lint-ignore no-explicit-any
      const binding = only(manifests, kind, "ha-controller") as any;
      assert.deepEqual(binding.subjects, [
        { kind: "ServiceAccount", name: "ha-controller", namespace: "ha-controller" },
      ]);
      assert.equal(binding.roleRef.name, "ha-controller");
    }
  },
);

Deno.test("the components add a PodMonitor for /metrics and --dry-run", async () => {
  const manifests = await renderOverlay(["pod-monitor", "dry-run"]);
  const { spec, container } = agentContainer(manifests);
  assert.deepEqual(container.args.slice(-1), ["--dry-run"]);
  // deno-lint-ignore no-explicit-any
  const monitor = only(manifests, "PodMonitor", "ha-controller") as any;
  assert.deepEqual(monitor.spec.podMetricsEndpoints, [{ port: "metrics", path: "/metrics" }]);
  // deno-lint-ignore no-explicit-any
  const daemonSet = only(manifests, "DaemonSet", "ha-controller") as any;
  for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels)) {
    assert.equal(daemonSet.spec.template.metadata.labels[k], v);
  }
  assert.ok(
    container.ports.some((p: { name: string; containerPort: number }) =>
      p.name === "metrics" && p.containerPort === 8000
    ),
  );
  assert.equal(spec.hostNetwork, undefined);
});

Deno.test("the host-network component puts the pod in the host's network namespace", async () => {
  const { spec } = agentContainer(await renderOverlay(["host-network"]));
  assert.deepEqual([spec.hostNetwork, spec.dnsPolicy], [true, "ClusterFirstWithHostNet"]);
});
