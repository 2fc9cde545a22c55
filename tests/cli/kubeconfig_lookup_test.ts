// The CLI outside a cluster: main.ts as its own process, with exactly the
// permission flags of deno.json's `start` (production) and `local` tasks and
// a controlled environment. What is asserted is what a user sees: the exit
// code, the one line on stderr, the status output, and that the API server
// named by ~/.kube/config or $KUBECONFIG is the one used.

import assert from "node:assert/strict";
import { ApiServer } from "../sim/apiserver/mod.ts";
import { BIN_DIR, FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { resourceOnNodeA, seedCluster } from "../agent/harness.ts";
import { freePort } from "../sim/agent_process.ts";
import { waitFor } from "../helpers.ts";
import { type ProgramRun, runProgram } from "../tools/mod.ts";

const repo = new URL("../../", import.meta.url).pathname;
const tokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token";
// On a machine that is itself a pod (a CI runner in Kubernetes), the token exists and the
// lookup ends at the in-cluster step for another reason; the expected lines follow the machine.
const inAPod = await Deno.stat(tokenPath).then(() => true, () => false);
const inClusterEnv = "KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT";

/** What the lookup's last step says under `task`'s permissions with a cleared environment. */
function inClusterStep(task: Task): string {
  if (!inAPod) return `not in a cluster (no ${tokenPath})`;
  return task === "local"
    ? `in-cluster config not usable (KUBERNETES_SERVICE_HOST not visible, needs --allow-env=${inClusterEnv})`
    : "not in a cluster (KUBERNETES_SERVICE_HOST not set)";
}

/** The fix the local task's line ends with. */
const localFix = inAPod
  ? `outside a cluster use 'deno task local', or add --allow-env=${inClusterEnv} to the Deno permissions`
  : "pass --kubeconfig FILE";

type Task = "start" | "local";

/** The permission flags of a deno.json task, as `deno task` passes them. */
async function taskFlags(task: Task): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${repo}deno.json`));
  const words = (config.tasks[task] as string).split(/\s+/);
  assert.ok(words.includes("main.ts"), `task ${task} runs main.ts`);
  return words.filter((w) =>
    w.startsWith("--allow-") || w.startsWith("--ignore-") || w.startsWith("--deny-")
  );
}

/**
 * The environment of a fresh shell on a node: PATH with the fake drbdsetup
 * first (a node has drbd-utils; without a `drbdsetup` on PATH Deno adds an
 * "Info Failed to resolve 'drbdsetup'" line of its own, which these tests are
 * not about), FAKE_DRBD_DIR when `drbd` is given, HOME, NODE_NAME and whatever
 * `extra` adds; nothing inherited. Deno keeps its own cache, so the new HOME
 * does not make every run cold.
 */
function shellEnv(
  home: string | undefined,
  extra: Record<string, string> = {},
  drbd?: FakeDrbd,
): Record<string, string> {
  const parentHome = Deno.env.get("HOME") ?? "/root";
  const cache = Deno.env.get("XDG_CACHE_HOME") ?? `${parentHome}/.cache`;
  const env: Record<string, string> = {
    PATH: `${BIN_DIR}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    DENO_DIR: Deno.env.get("DENO_DIR") ?? `${cache}/deno`,
    NODE_NAME: "node-a",
    ...(drbd?.env ?? {}),
    ...extra,
  };
  if (home !== undefined) env.HOME = home;
  return env;
}

type Result = ProgramRun;

/** `deno run` of main.ts with these flags, so that the environment is exactly `env`. */
function runMainWith(
  flags: string[],
  args: string[],
  env: Record<string, string>,
): Promise<Result> {
  return runProgram(Deno.execPath(), ["run", ...flags, `${repo}main.ts`, ...args], {
    cwd: repo,
    env,
    clearEnv: true,
  });
}

/** `deno task <task> <args>`, spelled out so that the environment is exactly `env`. */
async function runTask(task: Task, args: string[], env: Record<string, string>): Promise<Result> {
  return runMainWith(await taskFlags(task), args, env);
}

/** Asserts exit code 2, nothing on stdout and exactly `line` on stderr. */
function assertOneLineExit2(result: Result, line: string, what: string): void {
  assert.equal(result.stderr, `${line}\n`, what);
  assert.equal(result.code, 2, `${what}: exit code`);
  assert.equal(result.stdout, "", `${what}: stdout`);
}

async function withTempHome(fn: (home: string) => Promise<void>): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "ha-controller-home-" });
  try {
    await fn(home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

async function writeHomeKubeconfig(home: string, text: string): Promise<string> {
  await Deno.mkdir(`${home}/.kube`, { recursive: true });
  await Deno.writeTextFile(`${home}/.kube/config`, text);
  return `${home}/.kube/config`;
}

Deno.test({
  name:
    "outside a cluster with no kubeconfig anywhere, run and status say what was tried and exit 2",
  fn: () =>
    withTempHome(async (home) => {
      for (const command of ["status", "run"]) {
        assertOneLineExit2(
          await runTask("local", [command], shellEnv(home)),
          "ha-controller: no Kubernetes configuration: --kubeconfig not given, " +
            `$KUBECONFIG not set, ~/.kube/config (${home}/.kube/config) not found, ` +
            `${inClusterStep("local")}; ${localFix}`,
          `local ${command}`,
        );
      }
      assertOneLineExit2(
        await runTask("local", ["status"], shellEnv(undefined)),
        "ha-controller: no Kubernetes configuration: --kubeconfig not given, " +
          "$KUBECONFIG not set, ~/.kube/config not tried ($HOME not set), " +
          `${inClusterStep("local")}; ${localFix}`,
        "local status without HOME",
      );
    }),
});

Deno.test({
  name:
    "under the production permissions outside a cluster, run and status point to deno task local",
  fn: () =>
    withTempHome(async (home) => {
      // A kubeconfig in HOME and in KUBECONFIG: production may see neither.
      const path = await writeHomeKubeconfig(home, "not used");
      for (const command of ["status", "run"]) {
        assertOneLineExit2(
          await runTask("start", [command], shellEnv(home, { KUBECONFIG: path })),
          "ha-controller: no Kubernetes configuration: --kubeconfig not given, " +
            "$KUBECONFIG not visible (needs --allow-env=KUBECONFIG), " +
            "~/.kube/config not tried ($HOME not visible, needs --allow-env=HOME), " +
            `${inClusterStep("start")}; outside a cluster use 'deno task local', ` +
            "or add --allow-env=KUBECONFIG,HOME to the Deno permissions",
          `start ${command}`,
        );
      }
    }),
});

Deno.test("under the production permissions --kubeconfig FILE says which permissions it lacks", async () => {
  const server = await ApiServer.start({ tls: true });
  try {
    const file = server.kubeconfigPath;
    for (const command of ["status", "run"]) {
      assertOneLineExit2(
        await runTask("start", [command, "--kubeconfig", file], shellEnv("/root")),
        `ha-controller: kubeconfig ${file} (--kubeconfig) may not be read with these Deno ` +
          `permissions; outside a cluster use 'deno task local', or add --allow-read=${file} ` +
          "and --allow-net for its API server",
        `start ${command} --kubeconfig`,
      );
    }
    // Allowed to read the file, but not to reach the server it names.
    const api = new URL(server.url);
    const hostPort = `${api.hostname}:${api.port}`;
    const flags = (await taskFlags("start")).map((flag) =>
      flag.startsWith("--allow-read=") ? `--allow-read=${file}` : flag
    );
    assertOneLineExit2(
      await runMainWith(flags, ["status", "--kubeconfig", file], shellEnv("/root")),
      "ha-controller: the Deno permissions do not allow connecting to the API server " +
        `${hostPort} of kubeconfig ${file} (--kubeconfig); outside a cluster use ` +
        `'deno task local', or add --allow-net=${hostPort}`,
      "start status, kubeconfig readable, server not reachable",
    );
    assert.deepEqual(server.requests, [], "no request was even tried");
  } finally {
    await server.close();
  }
});

Deno.test("a --kubeconfig or $KUBECONFIG that is missing or malformed is one line and exit 2", () =>
  withTempHome(async (home) => {
    await Deno.writeTextFile(`${home}/empty`, "");
    await Deno.writeTextFile(`${home}/broken`, "clusters: [\n  x");
    await Deno.writeTextFile(`${home}/no-cluster`, "apiVersion: v1\nkind: Config\n");
    const cases: [string[], Record<string, string>, string][] = [
      [
        ["--kubeconfig", `${home}/missing`],
        {},
        `kubeconfig ${home}/missing (--kubeconfig) does not exist`,
      ],
      [["--kubeconfig", `${home}/empty`], {}, `kubeconfig ${home}/empty (--kubeconfig) is empty`],
      [
        ["--kubeconfig", `${home}/broken`],
        {},
        `kubeconfig ${home}/broken (--kubeconfig) is not a valid kubeconfig: ` +
        "unexpected end of the stream within a flow collection (3:1)",
      ],
      [
        ["--kubeconfig", `${home}/no-cluster`],
        {},
        `kubeconfig ${home}/no-cluster (--kubeconfig) has no current context with a cluster ` +
        "server address",
      ],
      [
        [],
        { KUBECONFIG: `${home}/one:${home}/two` },
        `$KUBECONFIG names no existing file (${home}/one:${home}/two): correct or unset it, ` +
        "or pass --kubeconfig FILE",
      ],
      [
        [],
        { KUBECONFIG: `${home}/broken` },
        `kubeconfig ${home}/broken ($KUBECONFIG) is not a valid kubeconfig: unexpected end of the stream within a flow collection (3:1)`,
      ],
    ];
    await Promise.all(
      cases.flatMap(([args, extra, message]) =>
        ["status", "run"].map(async (command) => {
          assertOneLineExit2(
            await runTask("local", [command, ...args], shellEnv(home, extra)),
            `ha-controller: ${message}`,
            `local ${command} ${args.join(" ")} ${JSON.stringify(extra)}`,
          );
        })
      ),
    );
  }));

/** A test cluster with node-a's DRBD resource, and a HOME with or without its kubeconfig. */
async function withCluster(
  fn: (c: { server: ApiServer; drbd: FakeDrbd; home: string }) => Promise<void>,
): Promise<void> {
  const server = await ApiServer.start({ tls: true });
  const drbd = await FakeDrbd.create();
  try {
    seedCluster(server);
    await drbd.setResources([resourceOnNodeA()]);
    await withTempHome((home) => fn({ server, drbd, home }));
  } finally {
    await drbd.cleanup();
    await server.close();
  }
}

function assertStatusOfTestCluster(result: Result, what: string): void {
  assert.equal(result.code, 0, `${what}: ${result.stderr}`);
  const lines = result.stdout.split("\n");
  assert.equal(lines[0], "NODE node-a", what);
  // No agent runs: the command reads and decides itself.
  assert.match(
    lines[1],
    /^SOURCE one-shot \(no running agent answered at 127\.0\.0\.1:8000: /,
    what,
  );
  assert.deepEqual(lines.slice(2, 4), ["DRBD ok", "CLUSTER synced"], what);
  assert.ok(lines.some((line) => /^pvc-1 +Secondary +yes /.test(line)), result.stdout);
}

Deno.test("status without --kubeconfig uses ~/.kube/config under deno task local's permissions", () =>
  withCluster(async ({ server, drbd, home }) => {
    await writeHomeKubeconfig(home, await Deno.readTextFile(server.kubeconfigPath));
    const result = await runTask("local", ["status"], shellEnv(home, {}, drbd));
    assertStatusOfTestCluster(result, "local status with ~/.kube/config");
    assert.ok(server.requests.length > 0, "the API server of ~/.kube/config was asked");
  }));

Deno.test("$KUBECONFIG comes before ~/.kube/config, and its missing entries are skipped", () =>
  withCluster(async ({ server, drbd, home }) => {
    // Were ~/.kube/config read, status would fail on it.
    await writeHomeKubeconfig(home, "clusters: [");
    const result = await runTask(
      "local",
      ["status"],
      shellEnv(home, { KUBECONFIG: `${home}/missing:${server.kubeconfigPath}` }, drbd),
    );
    assertStatusOfTestCluster(result, "local status with $KUBECONFIG");
  }));

Deno.test("run without --kubeconfig uses ~/.kube/config and logs where its configuration came from", () =>
  withCluster(async ({ server, drbd, home }) => {
    const config = await writeHomeKubeconfig(home, await Deno.readTextFile(server.kubeconfigPath));
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...await taskFlags("local"),
        `${repo}main.ts`,
        `--health-bind-address=127.0.0.1:${freePort()}`,
      ],
      cwd: repo,
      env: shellEnv(home, {}, drbd),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const pump = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (chunk) => void (stderr += chunk) }),
    );
    const stdout = child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream(),
    );
    let code: number | undefined;
    try {
      await waitFor(
        () => /INFO +agent: .* starting on node node-a/.test(stderr),
        20_000,
        `the agent starting (stderr so far:\n${stderr})`,
      );
      const started = stderr.split("\n").find((line) => line.includes("starting on node"))!;
      assert.ok(started.includes(` server=${server.url}`), started);
      assert.ok(
        started.includes(` config=${JSON.stringify(`kubeconfig ${config} (~/.kube/config)`)}`),
        started,
      );
      await waitFor(
        () => server.requests.some((r) => r.verb === "watch"),
        20_000,
        `the agent watching the API server of ~/.kube/config (stderr:\n${stderr})`,
      );
    } finally {
      child.kill("SIGTERM");
      code = (await child.status).code;
      await Promise.all([pump, stdout]);
    }
    assert.equal(code, 0, stderr);
    assert.match(stderr, /agent: stopped$/m);
  }));
