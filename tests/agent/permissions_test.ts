// The agent's Deno permissions: the production flags are the least that
// work, the same in `start` and `compile`, and deny everything else.

import assert from "node:assert/strict";
import { productionFlags, testFlags } from "./harness.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";

const repo = new URL("../../", import.meta.url).pathname;

Deno.test("start and compile use the same, least permission flags", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${repo}deno.json`));
  const flagsOf = (task: string) =>
    task.split(/\s+/).filter((w) => w.startsWith("--allow-") || w.startsWith("--ignore-")).sort();
  const expected = [
    "--allow-env=NODE_NAME,KUBERNETES_SERVICE_HOST,KUBERNETES_SERVICE_PORT",
    "--allow-net=0.0.0.0/0:443,0.0.0.0:8000,127.0.0.1:8000",
    "--allow-read=/var/run/secrets/kubernetes.io/serviceaccount",
    "--allow-run=drbdsetup",
    "--ignore-env",
  ];
  assert.deepEqual(flagsOf(config.tasks.start), expected);
  assert.deepEqual(flagsOf(config.tasks.compile), expected);
  const production = await productionFlags();
  assert.deepEqual(production.filter((w) => !w.startsWith("--v8-flags=")).sort(), expected);
  // The V8 flags (README, "Performance") are the same wherever the agent runs.
  const v8FlagsOf = (task: string) => task.split(/\s+/).filter((w) => w.startsWith("--v8-flags="));
  assert.equal(v8FlagsOf(config.tasks.start).length, 1);
  for (const task of ["compile", "local"]) {
    assert.deepEqual(v8FlagsOf(config.tasks[task]), v8FlagsOf(config.tasks.start), task);
  }
  assert.deepEqual(
    production.filter((w) => w.startsWith("--v8-flags=")),
    v8FlagsOf(config.tasks.start),
  );
});

Deno.test("with the agent's flags only drbdsetup may be spawned; no write, ffi, sys or foreign env", async () => {
  const drbd = await FakeDrbd.create();
  try {
    const flags = await testFlags("127.0.0.1:1", "127.0.0.1:2", "/nonexistent/kubeconfig");
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, `${repo}tests/agent/permission_probe.ts`],
      env: { ...drbd.env, HOME: "/root" },
      cwd: repo,
    }).output();
    const text = new TextDecoder().decode(stdout);
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.deepEqual(text.trim().split("\n"), [
      "run drbdsetup: allowed",
      "run sh: denied (NotCapable)",
      "run /bin/true: denied (NotCapable)",
      "write /tmp: denied (NotCapable)",
      "read /etc/passwd: denied (NotCapable)",
      "ffi: denied (NotCapable)",
      "sys: denied (NotCapable)",
      "env HOME is hidden: allowed",
    ]);
  } finally {
    await drbd.cleanup();
  }
});
