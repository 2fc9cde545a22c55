// Where the agent finds its Kubernetes configuration: kubectl's order, and
// places the Deno permissions hide count as absent. The hosts here are
// fakes, so the in-cluster cases run on any machine; tests/cli/
// kubeconfig_lookup_test.ts runs the real program.

import assert from "node:assert/strict";
import {
  type EnvLookup,
  type FileLookup,
  KubeConfigError,
  type KubeConfigHost,
  type KubeConfigSource,
  loadKubeConfig,
  locateKubeConfig,
  serviceAccountTokenPath,
} from "../../lib/kube/client.ts";

const inCluster = {
  KUBERNETES_SERVICE_HOST: "10.96.0.1",
  KUBERNETES_SERVICE_PORT: "443",
};

/** A process that sees `env` (null: hidden by the permissions) and `files`. */
function fakeHost(
  env: Record<string, string | null>,
  files: Record<string, FileLookup>,
): KubeConfigHost {
  return {
    env(name: string): EnvLookup {
      const value = env[name];
      return value === null ? { hidden: true } : { hidden: false, value };
    },
    file: (path: string) => files[path] ?? "missing",
  };
}

/** The production permissions: KUBECONFIG and HOME hidden, only the service account readable. */
function productionHost(files: Record<string, FileLookup>): KubeConfigHost {
  return fakeHost({ KUBECONFIG: null, HOME: null, ...inCluster }, files);
}

function assertLookupFails(run: () => unknown, message: string): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof KubeConfigError, String(err));
    assert.equal(err.message, message);
    return true;
  });
}

async function assertLoadFails(run: () => Promise<unknown>, message: string): Promise<void> {
  await assert.rejects(run, (err: unknown) => {
    assert.ok(err instanceof KubeConfigError, String(err));
    assert.equal(err.message, message);
    return true;
  });
}

Deno.test("the lookup follows kubectl: --kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster", () => {
  const everything = fakeHost(
    { KUBECONFIG: "/env/config", HOME: "/home/me", ...inCluster },
    {
      "/flag/config": "present",
      "/env/config": "present",
      "/home/me/.kube/config": "present",
      [serviceAccountTokenPath]: "present",
    },
  );
  const cases: [string, KubeConfigHost, KubeConfigSource][] = [
    ["--kubeconfig first", everything, {
      kind: "files",
      files: ["/flag/config"],
      via: "--kubeconfig",
    }],
    ["then $KUBECONFIG", everything, { kind: "files", files: ["/env/config"], via: "$KUBECONFIG" }],
    [
      "then ~/.kube/config",
      fakeHost({ HOME: "/home/me/", ...inCluster }, {
        "/home/me/.kube/config": "present",
        [serviceAccountTokenPath]: "present",
      }),
      { kind: "files", files: ["/home/me/.kube/config"], via: "~/.kube/config" },
    ],
    [
      "then in-cluster",
      fakeHost({ HOME: "/home/me", ...inCluster }, { [serviceAccountTokenPath]: "present" }),
      { kind: "in-cluster" },
    ],
  ];
  for (const [what, host, expected] of cases) {
    const flag = what === "--kubeconfig first" ? "/flag/config" : "";
    assert.deepEqual(locateKubeConfig(flag, host), expected, what);
  }
});

Deno.test("under the production permissions the DaemonSet ends at the in-cluster config", () => {
  // Even with a kubeconfig on disk: the permissions hide HOME and KUBECONFIG.
  const host = productionHost({
    "/root/.kube/config": "denied",
    [serviceAccountTokenPath]: "present",
  });
  assert.deepEqual(locateKubeConfig("", host), { kind: "in-cluster" });
});

Deno.test("$KUBECONFIG is a list: missing entries are skipped, every existing file is kept", () => {
  const host = fakeHost({ KUBECONFIG: "/a::/missing:/b", HOME: "/home/me" }, {
    "/a": "present",
    "/b": "present",
    "/home/me/.kube/config": "present",
  });
  assert.deepEqual(locateKubeConfig("", host), {
    kind: "files",
    files: ["/a", "/b"],
    via: "$KUBECONFIG",
  });
  // An empty list is no list, as for kubectl.
  assert.deepEqual(
    locateKubeConfig(
      "",
      fakeHost({ KUBECONFIG: ":", HOME: "/h" }, { "/h/.kube/config": "present" }),
    ),
    { kind: "files", files: ["/h/.kube/config"], via: "~/.kube/config" },
  );
});

Deno.test("a path the user named but that is missing or hidden is one clear error", () => {
  const host = fakeHost({ HOME: "/home/me" }, { "/secret": "denied" });
  assertLookupFails(
    () => locateKubeConfig("/nope", host),
    "kubeconfig /nope (--kubeconfig) does not exist",
  );
  assertLookupFails(
    () => locateKubeConfig("/secret", host),
    "kubeconfig /secret (--kubeconfig) may not be read with these Deno permissions; " +
      "outside a cluster use 'deno task local', or add --allow-read=/secret and --allow-net " +
      "for its API server",
  );
  assertLookupFails(
    () => locateKubeConfig("", fakeHost({ KUBECONFIG: "/x:/y", HOME: "/home/me" }, {})),
    "$KUBECONFIG names no existing file (/x:/y): correct or unset it, or pass --kubeconfig FILE",
  );
  assertLookupFails(
    () => locateKubeConfig("", fakeHost({ KUBECONFIG: "/x:/secret" }, { "/secret": "denied" })),
    "kubeconfig /secret ($KUBECONFIG) may not be read with these Deno permissions; " +
      "outside a cluster use 'deno task local', or add --allow-read=/secret and --allow-net " +
      "for its API server",
  );
});

Deno.test("when nothing is found, the one line names every place tried and the fix", () => {
  const cases: [string, KubeConfigHost, string][] = [
    [
      "a workstation",
      fakeHost({ HOME: "/home/me" }, {}),
      "no Kubernetes configuration: --kubeconfig not given, $KUBECONFIG not set, " +
      "~/.kube/config (/home/me/.kube/config) not found, not in a cluster " +
      `(no ${serviceAccountTokenPath}); pass --kubeconfig FILE`,
    ],
    [
      "no HOME",
      fakeHost({ KUBECONFIG: "" }, {}),
      "no Kubernetes configuration: --kubeconfig not given, $KUBECONFIG not set, " +
      "~/.kube/config not tried ($HOME not set), not in a cluster " +
      `(no ${serviceAccountTokenPath}); pass --kubeconfig FILE`,
    ],
    [
      "the production permissions outside a cluster",
      productionHost({}),
      "no Kubernetes configuration: --kubeconfig not given, " +
      "$KUBECONFIG not visible (needs --allow-env=KUBECONFIG), " +
      "~/.kube/config not tried ($HOME not visible, needs --allow-env=HOME), " +
      `not in a cluster (no ${serviceAccountTokenPath}); outside a cluster use ` +
      "'deno task local', or add --allow-env=KUBECONFIG,HOME to the Deno permissions",
    ],
    [
      "a token but no service address",
      fakeHost({ HOME: "/home/me", KUBERNETES_SERVICE_HOST: "10.96.0.1" }, {
        [serviceAccountTokenPath]: "present",
      }),
      "no Kubernetes configuration: --kubeconfig not given, $KUBECONFIG not set, " +
      "~/.kube/config (/home/me/.kube/config) not found, " +
      "not in a cluster (KUBERNETES_SERVICE_PORT not set); pass --kubeconfig FILE",
    ],
    [
      "a token but the service address hidden",
      fakeHost({ HOME: "/home/me", KUBERNETES_SERVICE_HOST: null }, {
        [serviceAccountTokenPath]: "present",
      }),
      "no Kubernetes configuration: --kubeconfig not given, $KUBECONFIG not set, " +
      "~/.kube/config (/home/me/.kube/config) not found, in-cluster config not usable " +
      "(KUBERNETES_SERVICE_HOST not visible, needs " +
      "--allow-env=KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT); outside a cluster use " +
      "'deno task local', or add --allow-env=KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT " +
      "to the Deno permissions",
    ],
    [
      "unreadable files",
      fakeHost({ HOME: "/home/me" }, {
        "/home/me/.kube/config": "denied",
        [serviceAccountTokenPath]: "denied",
      }),
      "no Kubernetes configuration: --kubeconfig not given, $KUBECONFIG not set, " +
      "~/.kube/config (/home/me/.kube/config) not readable " +
      "(needs --allow-read=/home/me/.kube/config), in-cluster config not readable " +
      "(needs --allow-read=/var/run/secrets/kubernetes.io/serviceaccount); outside a cluster " +
      "use 'deno task local', or add --allow-read=/home/me/.kube/config," +
      "/var/run/secrets/kubernetes.io/serviceaccount to the Deno permissions",
    ],
  ];
  for (const [what, host, message] of cases) {
    assert.throws(() => locateKubeConfig("", host), (err: unknown) => {
      assert.ok(err instanceof KubeConfigError, `${what}: ${err}`);
      assert.equal(err.message, message, what);
      assert.ok(!err.message.includes("\n"), `${what}: one line`);
      return true;
    });
  }
});

function kubeconfig(name: string, server: string, currentContext: string | undefined): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    `clusters: [{ name: ${name}, cluster: { server: "${server}" } }]`,
    `users: [{ name: ${name}, user: { token: t-${name} } }]`,
    `contexts: [{ name: ${name}, context: { cluster: ${name}, user: ${name} } }]`,
    ...(currentContext === undefined ? [] : [`current-context: ${currentContext}`]),
    "",
  ].join("\n");
}

Deno.test("several $KUBECONFIG files merge as kubectl merges them: the first to set a value wins", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kubeconfig-merge-" });
  try {
    await Deno.writeTextFile(`${dir}/a`, kubeconfig("a", "https://a.example:6443", undefined));
    await Deno.writeTextFile(`${dir}/b`, kubeconfig("b", "https://b.example:6443", "b"));
    await Deno.writeTextFile(`${dir}/c`, kubeconfig("b", "https://c.example:6443", "a"));
    const kc = await loadKubeConfig({
      kind: "files",
      files: [`${dir}/a`, `${dir}/b`, `${dir}/c`],
      via: "$KUBECONFIG",
    });
    assert.equal(kc.getCurrentContext(), "b");
    assert.deepEqual(kc.getClusters().map((c) => [c.name, c.server]), [
      ["a", "https://a.example:6443"],
      ["b", "https://b.example:6443"],
    ]);
    assert.equal(kc.getCurrentCluster()?.server, "https://b.example:6443");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a kubeconfig that is empty, a directory or not YAML is one line naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kubeconfig-bad-" });
  try {
    await Deno.writeTextFile(`${dir}/empty`, "\n");
    await Deno.writeTextFile(`${dir}/broken`, "clusters: [\n  x");
    const cases: [string, string][] = [
      [`${dir}/empty`, `kubeconfig ${dir}/empty ($KUBECONFIG) is empty`],
      [
        `${dir}/broken`,
        `kubeconfig ${dir}/broken ($KUBECONFIG) is not a valid kubeconfig: ` +
        "unexpected end of the stream within a flow collection (3:1)",
      ],
      [dir, `cannot read kubeconfig ${dir} ($KUBECONFIG): Is a directory (os error 21)`],
      [`${dir}/gone`, `kubeconfig ${dir}/gone ($KUBECONFIG) does not exist`],
    ];
    for (const [file, message] of cases) {
      await assertLoadFails(
        () => loadKubeConfig({ kind: "files", files: [file], via: "$KUBECONFIG" }),
        message,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
