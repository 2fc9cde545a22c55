// The in-cluster configuration (what the DaemonSet uses) without
// @kubernetes/client-node: the service-account token and CA, the address
// from KUBERNETES_SERVICE_HOST/PORT, and the token re-read as the kubelet
// rotates it. Also the kubeconfig path's exec auth plugin, the one place
// client-node is still loaded for.

import assert from "node:assert/strict";
import { ApiServer } from "../sim/apiserver/mod.ts";
import {
  type EnvLookup,
  KubeClient,
  KubeConfigError,
  loadInClusterConfig,
} from "../../lib/kube/client.ts";
import { type Clock, systemClock } from "../../lib/clock.ts";
import type { Log } from "../../lib/log.ts";

function env(values: Record<string, string | null>): (name: string) => EnvLookup {
  return (name) => {
    const value = values[name];
    return value === null ? { hidden: true } : { hidden: false, value };
  };
}

const ipv4 = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };

async function withServiceAccount(
  files: Record<string, string>,
  body: (dir: string) => Promise<void> | void,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ha-sa-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function assertFails(run: () => unknown, message: string): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof KubeConfigError, String(err));
    assert.equal(err.message, message);
    return true;
  });
}

Deno.test("in-cluster: the address, token and CA are read as client-go reads them (IPv6 in brackets)", async () => {
  await withServiceAccount({ token: "tok-1\n", "ca.crt": "PEM\n" }, (dir) => {
    const config = loadInClusterConfig({ dir, env: env(ipv4) });
    assert.deepEqual(config, {
      server: "https://10.96.0.1:443",
      caPem: "PEM",
      caPath: `${dir}/ca.crt`,
      tokenPath: `${dir}/token`,
      token: "tok-1",
    });
    for (const host of ["fd00:10:96::1", "[fd00:10:96::1]"]) {
      const v6 = loadInClusterConfig({
        dir: `${dir}/`,
        env: env({ KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: "6443" }),
      });
      assert.equal(v6.server, "https://[fd00:10:96::1]:6443");
    }
  });
});

Deno.test("in-cluster: what is missing or unusable is one line that names it", async () => {
  const what = "cannot load the in-cluster service account";
  await withServiceAccount({ token: "tok", "ca.crt": "PEM" }, async (dir) => {
    const cases: [Record<string, string | null>, string][] = [
      [{ KUBERNETES_SERVICE_PORT: "443" }, `${what}: KUBERNETES_SERVICE_HOST is not set`],
      [{ ...ipv4, KUBERNETES_SERVICE_PORT: " " }, `${what}: KUBERNETES_SERVICE_PORT is not set`],
      [
        { ...ipv4, KUBERNETES_SERVICE_HOST: null },
        `${what}: KUBERNETES_SERVICE_HOST is not visible ` +
        "(needs --allow-env=KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT)",
      ],
      [
        { ...ipv4, KUBERNETES_SERVICE_PORT: "https" },
        `${what}: KUBERNETES_SERVICE_PORT "https" is not a port number`,
      ],
      [
        { ...ipv4, KUBERNETES_SERVICE_PORT: "70000" },
        `${what}: KUBERNETES_SERVICE_PORT "70000" is not a port number`,
      ],
      [
        { ...ipv4, KUBERNETES_SERVICE_HOST: "a b" },
        `${what}: KUBERNETES_SERVICE_HOST "a b" is not a host name or address`,
      ],
    ];
    for (const [values, message] of cases) {
      assertFails(() => loadInClusterConfig({ dir, env: env(values) }), message);
    }
    await Deno.writeTextFile(`${dir}/token`, " \n");
    assertFails(
      () => loadInClusterConfig({ dir, env: env(ipv4) }),
      `${what}: its token ${dir}/token is empty`,
    );
    await Deno.remove(`${dir}/token`);
    assertFails(
      () => loadInClusterConfig({ dir, env: env(ipv4) }),
      `${what}: no token (${dir}/token does not exist)`,
    );
    await Deno.writeTextFile(`${dir}/token`, "tok");
    await Deno.remove(`${dir}/ca.crt`);
    assertFails(
      () => loadInClusterConfig({ dir, env: env(ipv4) }),
      `${what}: no CA certificate (${dir}/ca.crt does not exist)`,
    );
  });
});

/** The system clock with a monotonic reading that can be moved ahead. */
function steppedClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return {
    ...systemClock,
    monotonic: () => performance.now() + offset,
    advance: (ms: number) => offset += ms,
  };
}

function captureLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  const add = (level: string) => (message: string) => lines.push(`${level} ${message}`);
  return { lines, debug: add("DEBUG"), info: add("INFO"), warn: add("WARN"), error: add("ERROR") };
}

/** Users the server saw on `GET /api/v1/nodes`, in order. */
function nodeListUsers(server: ApiServer): (string | undefined)[] {
  return server.requests.filter((r) => r.method === "GET" && r.path === "/api/v1/nodes")
    .map((r) => r.user);
}

Deno.test("in-cluster: requests carry the service-account token; a rotated token is used after the minute's re-read, a vanished one is kept", async () => {
  const server = await ApiServer.start({ tls: true });
  const clock = steppedClock();
  const log = captureLog();
  try {
    const api = new URL(server.url);
    await withServiceAccount({
      token: server.serviceAccountToken("ha", "ha-controller"),
      "ca.crt": server.caPem!,
    }, async (dir) => {
      const client = await KubeClient.connect({
        kubeconfig: "",
        requestTimeoutMs: 5_000,
        clock,
        log,
        serviceAccount: {
          dir,
          env: env({ KUBERNETES_SERVICE_HOST: api.hostname, KUBERNETES_SERVICE_PORT: api.port }),
        },
      });
      try {
        assert.equal(client.server, server.url);
        assert.equal(client.source, "the in-cluster service account");
        const list = () => client.request("list", "GET", "/api/v1/nodes");
        await list();
        // The kubelet writes the new token; within the minute the old one is still used.
        await Deno.writeTextFile(
          `${dir}/token`,
          server.userToken({ username: "rotated", groups: [] }) + "\n",
        );
        clock.advance(30_000);
        await list();
        clock.advance(30_001);
        await list();
        assert.deepEqual(nodeListUsers(server), [
          "system:serviceaccount:ha:ha-controller",
          "system:serviceaccount:ha:ha-controller",
          "rotated",
        ]);
        // A token file that cannot be read: a warning, and the last token stays in use.
        await Deno.remove(`${dir}/token`);
        clock.advance(60_001);
        await list();
        assert.equal(nodeListUsers(server).at(-1), "rotated");
        assert.ok(
          log.lines.some((line) =>
            line.startsWith(
              `WARN cannot re-read the service-account token ${dir}/token, keeping the previous one: `,
            )
          ),
          log.lines.join("\n"),
        );
      } finally {
        client.close();
      }
    });
  } finally {
    await server.close();
  }
});

Deno.test("in-cluster: a CA that is not a certificate is one clear error at start", async () => {
  await withServiceAccount({ token: "tok", "ca.crt": "not a certificate" }, async (dir) => {
    await assert.rejects(
      KubeClient.connect({
        kubeconfig: "",
        requestTimeoutMs: 1_000,
        serviceAccount: { dir, env: env({ ...ipv4, KUBERNETES_SERVICE_HOST: "127.0.0.1" }) },
      }),
      (err: unknown) => {
        assert.ok(err instanceof KubeConfigError, String(err));
        assert.match(
          err.message,
          new RegExp(
            `^cannot use the in-cluster service account: its CA certificate ${dir}/ca\\.crt is not usable: no PEM certificate in it$`,
          ),
        );
        return true;
      },
    );
  });
});

Deno.test("a kubeconfig whose user is an exec plugin authenticates with the plugin's token", async () => {
  const server = await ApiServer.start({ tls: true });
  const dir = await Deno.makeTempDir({ prefix: "ha-exec-" });
  try {
    const token = server.userToken({ username: "exec-user", groups: ["system:masters"] });
    const plugin = `${dir}/credential-plugin`;
    await Deno.writeTextFile(
      plugin,
      [
        "#!/bin/sh",
        `echo called >> ${dir}/calls`,
        `echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",` +
        `"status":{"token":"${token}"}}'`,
        "",
      ].join("\n"),
    );
    await Deno.chmod(plugin, 0o755);
    const kubeconfig = `${dir}/kubeconfig`;
    const original = await Deno.readTextFile(server.kubeconfigPath);
    await Deno.writeTextFile(
      kubeconfig,
      original.replace(
        /^ {4}token: .*$/m,
        [
          "    exec:",
          "      apiVersion: client.authentication.k8s.io/v1",
          `      command: ${plugin}`,
          "      interactiveMode: Never",
        ].join("\n"),
      ),
    );
    assert.doesNotMatch(await Deno.readTextFile(kubeconfig), /token:/);
    const client = await KubeClient.connect({ kubeconfig, requestTimeoutMs: 5_000 });
    try {
      await client.request("list", "GET", "/api/v1/nodes");
      assert.deepEqual(nodeListUsers(server), ["exec-user"]);
      assert.ok((await Deno.readTextFile(`${dir}/calls`)).includes("called"));
    } finally {
      client.close();
    }
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
