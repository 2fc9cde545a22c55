// The in-process drbdsetup (tests/sim/drbd/in_process.ts) against the script
// (tests/sim/drbd/bin/drbdsetup): both fakes get the same states, failures and
// module state, and every command must print the same stdout and stderr and
// exit the same way. The deterministic simulation runs the agent on the
// in-process one, so this is what keeps it honest.

import assert from "node:assert/strict";
import { type FakeDialect, FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { simulatedKernelRelease } from "../sim/drbd/in_process.ts";
import { runDrbdsetup, spawnDrbdsetup } from "../../lib/drbd/run.ts";
import { resourceAfterNodeBCrash, resourceOnNodeA } from "../agent/harness.ts";
import type { DrbdResource } from "../../lib/drbd/model.ts";
import { deadline, waitFor } from "../helpers.ts";

interface Answer {
  code: number;
  stdout: string;
  stderr: string;
}

const kernel = await new Deno.Command("uname", { args: ["-r"] }).output();
const realRelease = new TextDecoder().decode(kernel.stdout).trim();

/** Both fakes with the same setup. */
async function pair(dialect: FakeDialect): Promise<{ script: FakeDrbd; memory: FakeDrbd }> {
  const script = await FakeDrbd.create({ dialect });
  const memory = await FakeDrbd.create({ dialect, inProcess: true });
  return { script, memory };
}

async function run(fake: FakeDrbd, args: string[]): Promise<Answer> {
  const options = fake.dir === ""
    ? { timeoutMs: deadline(10_000), spawn: fake.spawn }
    : { timeoutMs: deadline(10_000), env: fake.env };
  const result = await runDrbdsetup(args, options);
  // The script names the machine's kernel in modprobe's message.
  return {
    ...result,
    stderr: result.stderr.replaceAll(`/lib/modules/${realRelease}`, "/lib/modules/KERNEL")
      .replaceAll(`/lib/modules/${simulatedKernelRelease}`, "/lib/modules/KERNEL"),
  };
}

async function assertSameAnswers(
  fakes: { script: FakeDrbd; memory: FakeDrbd },
  commands: string[][],
  what: string,
): Promise<void> {
  for (const args of commands) {
    const fromScript = await run(fakes.script, args);
    const inProcess = await run(fakes.memory, args);
    assert.deepEqual(inProcess, fromScript, `${what}: drbdsetup ${args.join(" ")}`);
  }
}

const readCommands = [
  ["events2", "--now"],
  ["events2", "--now", "r0"],
  ["events2", "--now", "nope"],
  ["show", "--json"],
  ["show", "--show-defaults", "--json"],
  ["show", "--json", "r0"],
  ["status", "--json"],
  ["status", "--json", "r0"],
  ["status", "--json", "nope"],
  ["status", "nope"],
  ["status"],
  ["events2", "--full"],
  ["events2", "--bogus"],
  ["events2", "r0"],
  ["show"],
  ["show", "--bogus"],
  ["down", "r0"],
  [],
];

async function withPair(
  dialect: FakeDialect,
  fn: (fakes: { script: FakeDrbd; memory: FakeDrbd }) => Promise<void>,
): Promise<void> {
  const fakes = await pair(dialect);
  try {
    await fn(fakes);
  } finally {
    await fakes.script.cleanup();
    await fakes.memory.cleanup();
  }
}

async function setBoth(
  fakes: { script: FakeDrbd; memory: FakeDrbd },
  resources: DrbdResource[],
): Promise<void> {
  await fakes.script.setResources(resources);
  await fakes.memory.setResources(resources);
}

for (const dialect of ["current", "9.22"] as const) {
  Deno.test(`in-process drbdsetup answers reads as the script does (${dialect})`, async () => {
    await withPair(dialect, async (fakes) => {
      await assertSameAnswers(fakes, readCommands, "no resources");
      await setBoth(fakes, [resourceOnNodeA()]);
      await assertSameAnswers(fakes, readCommands, "one Primary");
      await setBoth(fakes, [resourceAfterNodeBCrash(), { ...resourceOnNodeA(), name: "r1" }]);
      await assertSameAnswers(fakes, readCommands, "two resources, a peer lost");
    });
  });
}

Deno.test("in-process drbdsetup fails, demotes and misses the module as the script does", async () => {
  await withPair("current", async (fakes) => {
    const opened = resourceOnNodeA();
    opened.devices = opened.devices.map((d) => ({ ...d, open: true }));
    await setBoth(fakes, [opened]);
    const demotions = [["secondary", "r0"], ["secondary"], ["secondary", "--bogus", "r0"], [
      "secondary",
      "nope",
    ]];
    await assertSameAnswers(fakes, demotions, "a Primary held open");
    await assertSameAnswers(fakes, [["secondary", "--force", "r0"], ...readCommands], "forced");
    await assertSameAnswers(fakes, [["secondary", "r0"]], "already Secondary");
    for (const fake of [fakes.script, fakes.memory]) {
      await fake.setFailure("events2", { code: 20, stderr: "Failed to connect to netlink" });
    }
    await assertSameAnswers(fakes, readCommands, "events2 failing");
    for (const fake of [fakes.script, fakes.memory]) {
      await fake.setFailure("events2", undefined);
      await fake.setModuleMissing(true);
    }
    await assertSameAnswers(fakes, [...readCommands, ["secondary", "r0"]], "module missing");
    for (const fake of [fakes.script, fakes.memory]) await fake.setModuleMissing(false);
    await assertSameAnswers(fakes, readCommands, "module back");
    assert.deepEqual(await fakes.memory.calls(), await fakes.script.calls(), "calls.log");
  });
});

Deno.test("in-process drbdsetup serves secondary through the handler, as the script does", async () => {
  await withPair("current", async (fakes) => {
    await setBoth(fakes, [resourceOnNodeA()]);
    const seen: string[][] = [];
    for (const fake of [fakes.script, fakes.memory]) {
      await fake.serveCommands(["secondary"], (args) => {
        seen.push(args);
        return Promise.resolve({
          code: 11,
          stderr: "r0: State change failed: (-12) Device is held open by someone",
        });
      });
    }
    await assertSameAnswers(fakes, [["secondary", "--force", "r0"], ["secondary", "r0"]], "served");
    assert.deepEqual(seen, [
      ["secondary", "--force", "r0"],
      ["secondary", "--force", "r0"],
      ["secondary", "r0"],
      ["secondary", "r0"],
    ]);
  });
});

/** `events2` of both fakes, read into `lines`, once both printed their dump. */
async function openStreams(fakes: { script: FakeDrbd; memory: FakeDrbd }) {
  const streams = [fakes.script, fakes.memory].map((fake) => {
    const process = spawnDrbdsetup(
      ["events2"],
      fake.dir === "" ? { spawn: fake.spawn } : { env: fake.env },
    );
    const lines: string[] = [];
    const reading = (async () => {
      for await (const batch of process.batches) lines.push(...batch);
    })();
    return { fake, process, lines, reading };
  });
  await waitFor(
    () => streams.every((s) => s.lines.includes("exists -")),
    10_000,
    "dumps",
  );
  return streams;
}

Deno.test("in-process events2 stream prints the dump, then the same change lines, and dies when killed", async () => {
  await withPair("current", async (fakes) => {
    await setBoth(fakes, [resourceOnNodeA()]);
    const streams = await openStreams(fakes);
    const [script, memory] = streams;
    await setBoth(fakes, [resourceAfterNodeBCrash()]);
    await setBoth(fakes, []);
    await waitFor(
      () =>
        script.lines.length === memory.lines.length &&
        script.lines.at(-1)?.startsWith("destroy resource") === true,
      10_000,
      () => `the same lines (script ${script.lines.length}, in process ${memory.lines.length})`,
    );
    assert.deepEqual(memory.lines, script.lines);
    assert.deepEqual((await fakes.memory.streamPids()).length, 1, "one live stream in process");
    assert.equal(await fakes.memory.killStreams("SIGKILL"), 1);
    const exit = await memory.process.exited;
    assert.equal(exit.signal, "SIGKILL");
    assert.deepEqual(await fakes.memory.streamPids(), []);
    await memory.reading;
    await script.process.stop();
    await script.reading;
  });
});

Deno.test("in process: a hanging drbdsetup answers nothing until the caller's timeout kills it", async () => {
  const fake = await FakeDrbd.create({ inProcess: true });
  try {
    fake.setHanging(true);
    await assert.rejects(
      runDrbdsetup(["events2", "--now"], { timeoutMs: 50, spawn: fake.spawn }),
      /did not finish in time and was killed/,
    );
    fake.setHanging(false);
    const answer = await run(fake, ["events2", "--now"]);
    assert.equal(answer.code, 0);
    assert.match(answer.stdout, /exists -\n$/);
  } finally {
    await fake.cleanup();
  }
});

Deno.test("silent events2 streams print the dump and then nothing, in process as from the script", async () => {
  await withPair("current", async (fakes) => {
    await setBoth(fakes, [resourceOnNodeA()]);
    for (const fake of [fakes.script, fakes.memory]) await fake.setStreamsSilent(true);
    const streams = await openStreams(fakes);
    const [script, memory] = streams;
    const dump = [...script.lines];
    await setBoth(fakes, [resourceAfterNodeBCrash()]);
    // The script's tail would have printed the change within 50 ms.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(script.lines, dump, "the script's stream stays silent");
    assert.deepEqual(memory.lines, dump, "the in-process stream stays silent");
    assert.equal((await fakes.script.streamPids()).length, 1, "the script's stream still runs");
    assert.equal((await fakes.memory.streamPids()).length, 1, "the in-process stream still runs");
    // The change is there for a poll, the same from both.
    await assertSameAnswers(fakes, readCommands, "silent streams, a peer lost");
    const now = await run(fakes.script, ["events2", "--now"]);
    assert.match(now.stdout, /connection:Connecting/);
    // Streams started after the mode is cleared follow the changes again.
    for (const fake of [fakes.script, fakes.memory]) await fake.setStreamsSilent(false);
    await script.process.stop();
    await memory.process.stop();
    await script.reading;
    await memory.reading;
    assert.deepEqual(await fakes.memory.streamPids(), []);
  });
});
