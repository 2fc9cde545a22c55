import assert from "node:assert/strict";
import { ApiServer } from "./mod.ts";
import { kubectlPath, type ProgramRun, runProgram } from "../../tools/mod.ts";

const agent = "system:serviceaccount:ha:ha-controller";

const manifests = `apiVersion: v1
kind: Namespace
metadata:
  name: ha
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ha-controller
  namespace: ha
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: ha-controller
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/eviction"]
  verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: ha-controller
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: ha-controller
subjects:
- kind: ServiceAccount
  name: ha-controller
  namespace: ha
`;

Deno.test({
  name: "kubectl applies RBAC manifests and is refused, can-i and whoami as the ServiceAccount",
}, async () => {
  const kubectlBinary = await kubectlPath();
  const server = await ApiServer.start({ tls: true, rbac: true });
  const dir = await Deno.makeTempDir({ prefix: "kubectl-rbac-" });
  const kubectl = (kubeconfig: string, args: string[], stdin?: string): Promise<ProgramRun> =>
    runProgram(
      kubectlBinary,
      ["--kubeconfig", kubeconfig, "--cache-dir", `${dir}/cache`, ...args],
      { env: { HOME: dir }, stdin },
    );
  try {
    server.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "web-0", namespace: "default" },
      spec: { nodeName: "node-a", containers: [{ name: "web", image: "nginx" }] },
      status: { phase: "Running" },
    });
    const admin = server.kubeconfigPath;
    const applied = await kubectl(admin, ["apply", "--validate=false", "-f", "-"], manifests);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /clusterrole.rbac.authorization.k8s.io\/ha-controller created/);
    assert.match(
      applied.stdout,
      /clusterrolebinding.rbac.authorization.k8s.io\/ha-controller created/,
    );
    const resources = await kubectl(admin, [
      "api-resources",
      "--api-group=rbac.authorization.k8s.io",
      "-o",
      "name",
    ]);
    assert.deepEqual(resources.stdout.trim().split("\n").sort(), [
      "clusterrolebindings.rbac.authorization.k8s.io",
      "clusterroles.rbac.authorization.k8s.io",
      "rolebindings.rbac.authorization.k8s.io",
      "roles.rbac.authorization.k8s.io",
    ]);
    const roles = await kubectl(admin, ["get", "clusterroles", "-o", "name"]);
    assert.equal(roles.stdout.trim(), "clusterrole.rbac.authorization.k8s.io/ha-controller");

    const sa = await server.kubeconfigFor("ha", "ha-controller");
    const listed = await kubectl(sa, ["get", "pods", "-n", "default", "-o", "name"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout.trim(), "pod/web-0");

    const deleted = await kubectl(sa, ["delete", "pod", "web-0", "-n", "default", "--wait=false"]);
    assert.equal(deleted.code, 1);
    assert.equal(
      deleted.stderr.trim(),
      `Error from server (Forbidden): pods "web-0" is forbidden: User "${agent}" cannot delete ` +
        `resource "pods" in API group "" in the namespace "default"`,
    );
    assert.ok(server.get("pods", "default", "web-0") !== undefined);
    assert.equal(server.forbidden().at(-1)?.user, agent);

    const nodes = await kubectl(sa, ["get", "nodes"]);
    assert.equal(nodes.code, 1);
    assert.match(
      nodes.stderr,
      /nodes is forbidden: User "system:serviceaccount:ha:ha-controller" cannot list resource "nodes" in API group "" at the cluster scope/,
    );

    const canList = await kubectl(sa, ["auth", "can-i", "list", "pods", "-n", "default"]);
    assert.equal(canList.stdout.trim(), "yes");
    assert.equal(canList.code, 0);
    const canDelete = await kubectl(sa, ["auth", "can-i", "delete", "pods", "-n", "default"]);
    assert.equal(canDelete.stdout.trim(), "no");
    assert.equal(canDelete.code, 1);
    const canEvict = await kubectl(sa, [
      "auth",
      "can-i",
      "create",
      "pods",
      "--subresource=eviction",
      "-n",
      "default",
    ]);
    assert.equal(canEvict.stdout.trim(), "yes");
    const adminCan = await kubectl(admin, ["auth", "can-i", "delete", "nodes"]);
    assert.equal(adminCan.stdout.trim(), "yes");

    const whoami = await kubectl(sa, ["auth", "whoami", "-o", "json"]);
    assert.equal(whoami.code, 0, whoami.stderr);
    assert.equal(JSON.parse(whoami.stdout).status.userInfo.username, agent);

    const list = await kubectl(sa, ["auth", "can-i", "--list", "-n", "default"]);
    assert.equal(list.code, 0, list.stderr);
    const podsLine = list.stdout.split("\n").find((l) => l.startsWith("pods "));
    assert.ok(podsLine !== undefined, list.stdout);
    assert.match(podsLine, /\[get list watch\]/);

    // switching RBAC off lets the same kubeconfig delete
    server.setRbac(false);
    const allowed = await kubectl(sa, ["delete", "pod", "web-0", "-n", "default", "--wait=false"]);
    assert.equal(allowed.code, 0, allowed.stderr);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
