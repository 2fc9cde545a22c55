import assert from "node:assert/strict";
import {
  DrbdsetupError,
  forceSecondary,
  runDrbdsetup,
  runDrbdsetupChecked,
  spawnDrbdsetup,
} from "../../lib/drbd/run.ts";
import { parseEvents2Dump } from "../../lib/drbd/events2.ts";
import { FakeDrbd, runningPids } from "../sim/drbd/fake_drbd.ts";
import { r0 } from "./samples.ts";

const TIMEOUT_MS = 10_000;

async function withFake(
  test: (fake: FakeDrbd) => Promise<void>,
  options: { dialect?: "current" | "9.22" } = {},
): Promise<void> {
  const fake = await FakeDrbd.create(options);
  try {
    await test(fake);
  } finally {
    await fake.cleanup();
  }
}

/** A directory with a custom `drbdsetup` script, for process-level behaviour. */
async function withScript(
  script: string,
  test: (env: Record<string, string>, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "drbdsetup-script-" });
  try {
    await Deno.writeTextFile(`${dir}/drbdsetup`, `#!/usr/bin/env bash\n${script}\n`);
    await Deno.chmod(`${dir}/drbdsetup`, 0o755);
    await test({ PATH: `${dir}:/usr/bin:/bin`, SCRIPT_DIR: dir }, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function processGone(pid: number): Promise<boolean> {
  return (await runningPids([pid])).length === 0;
}

async function rejection(promise: Promise<unknown>): Promise<DrbdsetupError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof DrbdsetupError, `expected a DrbdsetupError, got ${err}`);
    return err;
  }
  assert.fail("expected the call to fail");
}

Deno.test("a missing drbdsetup binary gives a clear not-found error", async () => {
  const empty = await Deno.makeTempDir();
  try {
    const err = await rejection(
      runDrbdsetup(["events2", "--now"], { timeoutMs: TIMEOUT_MS, env: { PATH: empty } }),
    );
    assert.equal(err.failure, "not-found");
    assert.equal(err.notLoaded, false);
    assert.equal(
      err.message,
      "drbdsetup events2 --now cannot run: no drbdsetup program on PATH (is drbd-utils installed?)",
    );
    assert.throws(
      () => spawnDrbdsetup(["events2"], { env: { PATH: empty } }),
      (e: unknown) => e instanceof DrbdsetupError && e.failure === "not-found",
    );
  } finally {
    await Deno.remove(empty);
  }
});

Deno.test("a permission denial gives a clear not-capable error", async () => {
  const dir = await Deno.makeTempDir();
  const fake = await FakeDrbd.create();
  try {
    const runModule = new URL("../../lib/drbd/run.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/probe.ts`,
      `import { runDrbdsetup } from ${JSON.stringify(runModule)};\n` +
        `try { await runDrbdsetup(["events2", "--now"], { timeoutMs: 1000 }); console.log("ran"); }\n` +
        `catch (err) { console.log(JSON.stringify({ failure: err.failure, message: err.message })); }\n`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--no-config", `--allow-read=${dir}`, `${dir}/probe.ts`],
      stdin: "null",
      // A drbdsetup on PATH, so only the permission stands in the way.
      env: fake.env,
    }).output();
    const printed = new TextDecoder().decode(output.stdout).trim();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.deepEqual(JSON.parse(printed), {
      failure: "not-capable",
      message: "drbdsetup events2 --now cannot run: not allowed by Deno permissions " +
        "(start the agent with --allow-run=drbdsetup)",
    });
  } finally {
    await fake.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exit 20 for a missing module is recognisable as not loaded", async () => {
  await withFake(async (fake) => {
    await fake.setModuleMissing(true);
    for (const args of [["events2", "--now"], ["status", "--json"], ["show", "--json"]]) {
      const result = await runDrbdsetup(args, { timeoutMs: TIMEOUT_MS, env: fake.env });
      assert.equal(result.code, 20);
      assert.equal(result.stdout, "");
      const err = await rejection(
        runDrbdsetupChecked(args, { timeoutMs: TIMEOUT_MS, env: fake.env }),
      );
      assert.equal(err.notLoaded, true);
      assert.equal(err.code, 20);
      assert.deepEqual(err.args, args);
      assert.match(
        err.message,
        new RegExp(
          `^drbdsetup ${args.join(" ")} failed with exit code 20: modprobe: FATAL: Module drbd ` +
            `not found in directory /lib/modules/.*; Failed to modprobe drbd \\(No such file or directory\\)$`,
        ),
      );
    }
  });
});

Deno.test("exit 20 for a usage error is not taken for a missing module", async () => {
  await withFake(async (fake) => {
    const err = await rejection(
      runDrbdsetupChecked(["events2", "--bogus"], { timeoutMs: TIMEOUT_MS, env: fake.env }),
    );
    assert.equal(err.code, 20);
    assert.equal(err.notLoaded, false);
    assert.equal(
      err.message,
      "drbdsetup events2 --bogus failed with exit code 20: " +
        "drbdsetup events2: unrecognized option '--bogus'",
    );
  });
});

Deno.test("a failure without stderr says so", async () => {
  await withScript("exit 11", async (env) => {
    const err = await rejection(
      runDrbdsetupChecked(["primary", "r0"], { timeoutMs: TIMEOUT_MS, env }),
    );
    assert.equal(
      err.message,
      "drbdsetup primary r0 failed with exit code 11 and printed nothing on stderr",
    );
  });
});

Deno.test("secondary --force demotes; an open device leaves force-io-failures set", async () => {
  await withFake(async (fake) => {
    await fake.setResources([r0()]);
    const outcome = await forceSecondary("r0", { timeoutMs: TIMEOUT_MS, env: fake.env });
    assert.equal(outcome, "demoted");
    const now = await runDrbdsetupChecked(["events2", "--now"], {
      timeoutMs: TIMEOUT_MS,
      env: fake.env,
    });
    const [resource] = parseEvents2Dump(now).resources;
    assert.equal(resource.role, "Secondary");
    assert.equal(resource.forceIoFailures, true);
    assert.deepEqual((await fake.calls()).at(0), ["secondary", "--force", "r0"]);
  });
});

Deno.test("secondary --force on a vanished resource reports resource-gone (exit 10)", async () => {
  await withFake(async (fake) => {
    const result = await runDrbdsetup(["secondary", "--force", "pvc-gone"], {
      timeoutMs: TIMEOUT_MS,
      env: fake.env,
    });
    assert.equal(result.code, 10);
    assert.equal(
      result.stderr,
      "pvc-gone: Failure: (158) Unknown resource\nadditional info from kernel:\nunknown resource\n",
    );
    assert.equal(
      await forceSecondary("pvc-gone", { timeoutMs: TIMEOUT_MS, env: fake.env }),
      "resource-gone",
    );
  });
});

Deno.test("secondary --force without the module reports not-loaded (drbdsetup exits 0)", async () => {
  await withFake(async (fake) => {
    await fake.setModuleMissing(true);
    assert.equal(
      await forceSecondary("r0", { timeoutMs: TIMEOUT_MS, env: fake.env }),
      "not-loaded",
    );
  });
});

Deno.test("secondary --force failing otherwise throws with exit code and stderr", async () => {
  await withFake(async (fake) => {
    await fake.setResources([r0()]);
    await fake.setFailure("secondary", {
      code: 11,
      stderr: "r0: State change failed: (-10) State change was refused by peer node",
    });
    const err = await rejection(forceSecondary("r0", { timeoutMs: TIMEOUT_MS, env: fake.env }));
    assert.equal(err.code, 11);
    assert.equal(
      err.message,
      "drbdsetup secondary --force r0 failed with exit code 11: " +
        "r0: State change failed: (-10) State change was refused by peer node",
    );
  });
});

Deno.test("a drbdsetup that hangs is killed after the timeout", async () => {
  await withScript(`echo $$ > "$SCRIPT_DIR/pid"; exec sleep 30`, async (env, dir) => {
    const err = await rejection(runDrbdsetup(["events2", "--now"], { timeoutMs: 200, env }));
    assert.equal(err.failure, "timeout");
    assert.match(err.message, /^drbdsetup events2 --now did not finish in time and was killed/);
    const pid = Number(await Deno.readTextFile(`${dir}/pid`));
    assert.ok(await processGone(pid), `process ${pid} still runs`);
  });
});

Deno.test("a grandchild holding the pipes open does not keep a timed-out call waiting", async () => {
  await withScript(
    `sleep 30 & echo $! > "$SCRIPT_DIR/grandchild"; exec sleep 30`,
    async (env, dir) => {
      try {
        const err = await rejection(runDrbdsetup(["status"], { timeoutMs: 200, env }));
        assert.equal(err.failure, "timeout");
      } finally {
        Deno.kill(Number(await Deno.readTextFile(`${dir}/grandchild`)), "SIGKILL");
      }
    },
  );
});

Deno.test("an abort signal stops drbdsetup", async () => {
  await withScript(`exec sleep 30`, async (env) => {
    const controller = new AbortController();
    const call = runDrbdsetup(["events2", "--now"], {
      timeoutMs: TIMEOUT_MS,
      env,
      signal: controller.signal,
    });
    controller.abort();
    const err = await rejection(call);
    assert.equal(err.failure, "aborted");
    assert.equal(err.message, "drbdsetup events2 --now was stopped before it finished");
  });
});

Deno.test("the events2 stream delivers the dump, then live lines, and stops on request", async () => {
  await withFake(async (fake) => {
    await fake.setResources([r0()]);
    const stream = spawnDrbdsetup(["events2"], { env: fake.env });
    const seen: string[] = [];
    let appended = false;
    for await (const batch of stream.batches) {
      seen.push(...batch);
      if (!appended && seen.includes("exists -")) {
        appended = true;
        await fake.appendStreamLines([
          "change resource name:r0 may_promote:no promotion_score:10101",
        ]);
      }
      if (seen.at(-1)?.startsWith("change resource")) break;
    }
    const exit = await stream.stop();
    assert.equal(exit.stopped, true);
    assert.equal(seen.length, 10);
    assert.equal(seen[8], "exists -");
    assert.equal(seen[9], "change resource name:r0 may_promote:no promotion_score:10101");
    assert.deepEqual(await fake.streamPids(), []);
  });
});

Deno.test("a stream that fails reports its exit code and stderr", async () => {
  await withFake(async (fake) => {
    await fake.setModuleMissing(true);
    const stream = spawnDrbdsetup(["events2"], { env: fake.env });
    const lines: string[] = [];
    for await (const batch of stream.batches) lines.push(...batch);
    const exit = await stream.exited;
    assert.deepEqual(lines, []);
    assert.equal(exit.code, 20);
    assert.equal(exit.stopped, false);
    assert.match(exit.stderr, /Failed to modprobe drbd/);
  });
});

Deno.test("a stream whose grandchild keeps stdout open still ends and reports its exit", async () => {
  await withScript(
    `echo "exists -"; sleep 30 & echo $! > "$SCRIPT_DIR/grandchild"; exit 3`,
    async (env, dir) => {
      try {
        const stream = spawnDrbdsetup(["events2"], { env });
        const lines: string[] = [];
        // Ends only because the reader gives up on the pipe after the grace time.
        for await (const batch of stream.batches) lines.push(...batch);
        const exit = await stream.exited;
        assert.deepEqual(lines, ["exists -"]);
        assert.equal(exit.code, 3);
        assert.equal(exit.stopped, false);
      } finally {
        Deno.kill(Number(await Deno.readTextFile(`${dir}/grandchild`)), "SIGKILL");
      }
    },
  );
});
