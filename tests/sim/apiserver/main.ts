/**
 * Runs the simulated API server by hand, for kubectl:
 *
 * ```sh
 * deno run -A tests/sim/apiserver/main.ts --port 6443 --tls
 * KUBECONFIG=<printed path> kubectl get nodes
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ApiServer } from "./server.ts";

const usage = `Usage: main.ts [--port N] [--tls] [--token T] [--no-auth] [--no-eviction] [--demo]
               [--rbac] [--service-account NS/NAME]...

  --port N        port on 127.0.0.1 (default: a free one)
  --tls           serve HTTPS with a generated CA (default: plain HTTP)
  --token T       bearer token (default: random)
  --no-auth       do not check the bearer token
  --no-eviction   answer 404 for pods/eviction
  --demo          seed two nodes, a pod on each and a VolumeAttachment
  --rbac          enforce RBAC for every user but the admin
  --service-account NS/NAME
                  also write a kubeconfig of that ServiceAccount and print its path
`;

/** Seeds a small cluster to look at with kubectl. */
function seedDemo(server: ApiServer): void {
  for (const name of ["node-a", "node-b"]) {
    server.create({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name, labels: { "kubernetes.io/hostname": name } },
      status: {
        conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }],
        addresses: [{ type: "InternalIP", address: name === "node-a" ? "10.0.0.1" : "10.0.0.2" }],
        nodeInfo: { kubeletVersion: "v1.32.4", osImage: "Debian GNU/Linux 12" },
      },
    });
    server.create({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `web-${name.slice(-1)}`, namespace: "default", labels: { app: "web" } },
      spec: { nodeName: name, containers: [{ name: "web", image: "nginx" }] },
      status: {
        phase: "Running",
        conditions: [{ type: "Ready", status: "True" }],
        containerStatuses: [{ name: "web", ready: true, restartCount: 0 }],
        podIPs: [{ ip: name === "node-a" ? "10.1.0.5" : "10.1.1.5" }],
      },
    });
  }
  server.create({
    apiVersion: "storage.k8s.io/v1",
    kind: "VolumeAttachment",
    metadata: { name: "csi-demo", finalizers: ["external-attacher/linstor-csi-linbit-com"] },
    spec: {
      attacher: "linstor.csi.linbit.com",
      nodeName: "node-a",
      source: { persistentVolumeName: "pvc-demo" },
    },
    status: { attached: true },
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string" },
      tls: { type: "boolean", default: false },
      token: { type: "string" },
      "no-auth": { type: "boolean", default: false },
      "no-eviction": { type: "boolean", default: false },
      demo: { type: "boolean", default: false },
      rbac: { type: "boolean", default: false },
      "service-account": { type: "string", multiple: true, default: [] },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`Expected --port to be a port number, got "${values.port}"`);
    Deno.exit(2);
  }
  const server = await ApiServer.start({
    tls: values.tls,
    port,
    token: values.token,
    auth: values["no-auth"] ? false : undefined,
    eviction: !values["no-eviction"],
    rbac: values.rbac,
  });
  if (values.demo) seedDemo(server);
  console.log(server.kubeconfigPath);
  for (const account of values["service-account"]) {
    const [namespace, name, ...rest] = account.split("/");
    if (!namespace || !name || rest.length > 0) {
      console.error(`Expected --service-account as NAMESPACE/NAME, got "${account}"`);
      await server.close();
      Deno.exit(2);
    }
    console.log(await server.kubeconfigFor(namespace, name));
  }
  console.error(`API server listening on ${server.url}; Ctrl-C stops it`);
  const stop = () => {
    server.close().then(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) await main();
