import assert from "node:assert/strict";
import type { DrbdResource, DrbdSample } from "../../lib/drbd/model.ts";
import type { Log } from "../../lib/log.ts";
import {
  DrbdSampler,
  type DrbdSamplerOptions,
  NOT_LOADED_MESSAGE,
  sampleOnce,
} from "../../lib/drbd/sampler.ts";
import { FakeDrbd } from "../sim/drbd/fake_drbd.ts";
import { device, nodeB, nodeC, peerDevice, r0 } from "./samples.ts";
import { deadline } from "../helpers.ts";

const FREEZE = {
  quorum: "majority" as const,
  onNoQuorum: "suspend-io",
  onNoDataAccessible: "suspend-io",
  onSuspendedPrimaryOutdated: "force-secondary",
};

/** r0 with the freeze profile, as the sampler reports it. */
function configured(overrides: Partial<DrbdResource> = {}): DrbdResource {
  return r0({ config: { ...FREEZE }, ...overrides });
}

/** node-b lost, seen from the Primary. */
function peerLost(): DrbdResource {
  return configured({
    promotionScore: 10101,
    connections: [
      nodeB({
        connectionState: "Connecting",
        peerRole: "Unknown",
        peerDevices: [peerDevice({ replicationState: "Off", peerDiskState: "DUnknown" })],
      }),
      nodeC(),
    ],
  });
}

/** Polls every 10 ms; `timeoutMs` is an idle machine's deadline, scaled by `deadline`. */
async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const effectiveMs = deadline(timeoutMs);
  const end = performance.now() + effectiveMs;
  while (!(await condition())) {
    if (performance.now() > end) {
      assert.fail(`timed out after ${effectiveMs}ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

type Level = keyof Log;

interface Harness {
  fake: FakeDrbd;
  sampler: DrbdSampler;
  logs: { level: Level; message: string }[];
  changes: () => number;
  clock: { now: number; broken?: string };
}

/** A Log that keeps every message. */
function recordingLog(logs: Harness["logs"]): Log {
  const at = (level: Level) => (message: string) => {
    logs.push({ level, message });
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

async function withSampler(
  options: Partial<DrbdSamplerOptions> & { dialect?: "current" | "9.22" },
  setup: (fake: FakeDrbd) => Promise<void>,
  test: (h: Harness) => Promise<void>,
): Promise<void> {
  const fake = await FakeDrbd.create({ dialect: options.dialect });
  const logs: Harness["logs"] = [];
  let changes = 0;
  const clock: Harness["clock"] = { now: 1_000_000 };
  const sampler = new DrbdSampler({
    statusIntervalMs: 60_000,
    timeoutMs: deadline(10_000),
    restartDelayMinMs: 50,
    restartDelayMaxMs: 200,
    stallSettleMs: 50,
    ...options,
    env: options.env ?? fake.env,
    now: () => {
      if (clock.broken !== undefined) throw new Error(clock.broken);
      return clock.now;
    },
    log: recordingLog(logs),
    onChange: () => changes++,
  });
  try {
    await setup(fake);
    sampler.start();
    await test({ fake, sampler, logs, changes: () => changes, clock });
  } finally {
    await sampler.stop();
    const left = await fake.streamPids();
    await fake.cleanup();
    assert.deepEqual(left, [], "events2 processes left running after stop()");
  }
}

const showFreeze = { showOptions: { options: { "auto-promote": false } } };

function okWith(sample: DrbdSample, resources: DrbdResource[]): boolean {
  return sample.availability === "ok" &&
    JSON.stringify(sample.resources) === JSON.stringify(resources);
}

Deno.test("the sampler reads the state, merges the options and follows live changes", async () => {
  await withSampler(
    {},
    (fake) => fake.setResources([configured()], showFreeze),
    async ({ fake, sampler, changes }) => {
      await waitFor("the first state", () => okWith(sampler.sample(), [configured()]));
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
      const before = changes();
      // The resync interval is a minute: only the stream can deliver this.
      await fake.setResources([peerLost()], showFreeze);
      await waitFor("the change via events2", () => okWith(sampler.sample(), [peerLost()]));
      assert.ok(changes() > before, "onChange was not called");
      assert.deepEqual(
        (await fake.calls()).map((argv) => argv.join(" ")).sort(),
        ["events2", "events2 --now", "show --show-defaults --json"],
      );
    },
  );
});

Deno.test("a resource created after the start gets its options at once, not at the next resync", async () => {
  await withSampler(
    {},
    (fake) => fake.setResources([configured()], showFreeze),
    async ({ fake, sampler }) => {
      await waitFor("the first state", () => okWith(sampler.sample(), [configured()]));
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
      const fresh = configured({ name: "r1" });
      await fake.setResources([configured(), fresh], showFreeze);
      // The resync interval is a minute: only a resync the new resource
      // triggered can have read its quorum policy within this deadline
      // (scaled, it stays well below a minute).
      await waitFor(
        "the new resource's options",
        () =>
          sampler.sample().resources.find((r) => r.name === "r1")?.config?.quorum === "majority",
        5_000,
      );
    },
  );
});

Deno.test("a dying stream is restarted; while it cannot run the sample goes stale", async () => {
  await withSampler(
    { stableAfterMs: 300 },
    (fake) => fake.setResources([configured()], showFreeze),
    async ({ fake, sampler, logs, clock }) => {
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
      await waitFor("the first state", () => okWith(sampler.sample(), [configured()]));
      const [firstPid] = await fake.streamPids();
      const confirmedAt = sampler.sample().confirmedAt;
      await fake.setFailure("events2", { code: 1, stderr: "events2: netlink trouble" });
      clock.now += 1_000;
      await fake.killStreams();
      await waitFor(
        "three failed restarts",
        () => logs.filter((l) => l.message.includes("restarting it in")).length >= 4,
      );
      const delays = logs.filter((l) => l.message.includes("restarting it in"))
        .map((l) => Number(/restarting it in (\d+) ms/.exec(l.message)![1]));
      assert.deepEqual(delays.slice(0, 4), [50, 100, 200, 200]);
      assert.match(
        logs.find((l) => l.message.includes("exited with code 1"))!.message,
        /^drbdsetup events2 exited with code 1: events2: netlink trouble; restarting it in \d+ ms$/,
      );
      clock.now += 1_000;
      const stale = sampler.sample();
      assert.equal(stale.availability, "ok");
      assert.equal(
        stale.confirmedAt,
        confirmedAt,
        "the state must not look fresh while the stream is down",
      );
      await sampler.resync();
      const failed = sampler.sample();
      assert.equal(failed.availability, "error");
      assert.equal(
        failed.message,
        "drbdsetup events2 --now failed with exit code 1: events2: netlink trouble",
      );
      assert.deepEqual(failed.resources, []);

      await fake.setFailure("events2", undefined);
      await waitFor("a new stream", async () => {
        const pids = await fake.streamPids();
        return pids.length === 1 && pids[0] !== firstPid;
      });
      await waitFor("ok again", () => okWith(sampler.sample(), [configured()]));
      assert.equal(sampler.sample().confirmedAt, clock.now);

      // After running well for stableAfterMs, the delay starts small again.
      await new Promise((resolve) => setTimeout(resolve, 400));
      const count = logs.length;
      await fake.killStreams();
      await waitFor(
        "the restart message",
        () => logs.slice(count).some((l) => l.message.includes("restarting it in")),
      );
      assert.match(
        logs.slice(count).find((l) => l.message.includes("restarting it in"))!.message,
        /^drbdsetup events2 was killed by SIGKILL; restarting it in 50 ms$/,
      );
    },
  );
});

Deno.test("while live, only a resync that agrees confirms the state; failed ones do not", async () => {
  await withSampler(
    {},
    (fake) => fake.setResources([configured()], showFreeze),
    async ({ fake, sampler, clock }) => {
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
      await waitFor("the first state", () => okWith(sampler.sample(), [configured()]));
      const startedAt = clock.now;
      assert.equal(sampler.sample().confirmedAt, startedAt);

      clock.now += 10_000;
      await fake.setResources([peerLost()], showFreeze);
      await waitFor("the change via events2", () => okWith(sampler.sample(), [peerLost()]));
      assert.equal(sampler.sample().confirmedAt, startedAt, "a stream change confirms nothing");
      await sampler.resync();
      const agreedAt = clock.now;
      assert.equal(sampler.sample().confirmedAt, agreedAt, "an agreeing resync confirms");

      // The stream goes on, but no full read can vouch for it any more.
      await fake.setFailure("events2", { code: 10, stderr: "all: Failure: (170) Bad thing" });
      for (let i = 0; i < 3; i++) {
        clock.now += 60_000;
        await sampler.resync();
      }
      await fake.setResources([configured()], showFreeze);
      await waitFor("the next change via events2", () => okWith(sampler.sample(), [configured()]));
      assert.equal(sampler.sample().confirmedAt, agreedAt, "failed resyncs must not confirm");

      await fake.setFailure("events2", undefined);
      clock.now += 1_000;
      await sampler.resync();
      assert.ok(okWith(sampler.sample(), [configured()]));
      assert.equal(sampler.sample().confirmedAt, clock.now);
    },
  );
});

Deno.test("after an unreadable stream line the sample is an error until a resync agrees", async () => {
  await withSampler(
    {},
    (fake) => fake.setResources([configured()], showFreeze),
    async ({ fake, sampler, logs, changes, clock }) => {
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
      await waitFor("the first state", () => okWith(sampler.sample(), [configured()]));
      await sampler.resync();
      const confirmedAt = sampler.sample().confirmedAt;
      // Resyncs fail from now on; the running stream is not affected.
      await fake.setFailure("events2", { code: 10, stderr: "all: Failure: (170) Bad thing" });
      const before = changes();
      const bad = "change connection name:r0 peer-node-id:1 conn-name:node-b connection";
      await fake.appendStreamLines([bad]);
      await waitFor("the error", () => sampler.sample().availability === "error");
      assert.deepEqual(sampler.sample(), {
        availability: "error",
        message: `drbdsetup events2 printed an unreadable line ${JSON.stringify(bad)}: ` +
          `Expected key:value fields, got "connection"; waiting for a resync to agree`,
        resources: [],
        confirmedAt,
      });
      assert.ok(changes() > before, "onChange was not called");
      // The line makes the sampler resync at once; that resync fails.
      await waitFor(
        "the failed resync",
        () => logs.some((l) => l.message.startsWith("DRBD resync")),
      );
      // Readable changes that follow do not make the stream trusted again either.
      const seen = changes();
      await fake.setResources([peerLost()], showFreeze);
      await waitFor("the change via events2", () => changes() > seen);
      const [pid] = await fake.streamPids();
      clock.now += 60_000;
      await sampler.resync();
      assert.equal(sampler.sample().availability, "error", "a failed resync vouches for nothing");

      await fake.setFailure("events2", undefined);
      clock.now += 1_000;
      await sampler.resync();
      const trusted = sampler.sample();
      assert.ok(okWith(trusted, [peerLost()]), JSON.stringify(trusted));
      assert.equal(trusted.confirmedAt, clock.now);
      assert.deepEqual(await fake.streamPids(), [pid], "the agreeing stream was kept");
      assert.ok(logs.some((l) => l.message.includes("agrees with the events2 stream again")));
    },
  );
});

Deno.test("an unexpected failure while watching the stream is logged and retried", async () => {
  const errors: string[] = [];
  await withSampler(
    { onError: (command) => errors.push(command) },
    (fake) => fake.setResources([configured()], showFreeze),
    async ({ fake, sampler, logs, clock }) => {
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
      await waitFor("the first state", () => okWith(sampler.sample(), [configured()]));
      const [firstPid] = await fake.streamPids();
      clock.broken = "the clock is broken";
      await fake.killStreams();
      await waitFor("the failure in the log", () =>
        logs.some((l) =>
          l.level === "error" &&
          /^Watching drbdsetup events2 failed unexpectedly: the clock is broken; restarting it in \d+ ms$/
            .test(l.message)
        ));
      assert.ok(errors.includes("events2"), "onError was not called");
      clock.broken = undefined;
      await waitFor("a new stream", async () => {
        const pids = await fake.streamPids();
        return pids.length === 1 && pids[0] !== firstPid;
      });
      await fake.setResources([peerLost()], showFreeze);
      await waitFor("the change via the new stream", () => okWith(sampler.sample(), [peerLost()]));
    },
  );
});

Deno.test("an onError callback that throws is logged and the sampler carries on", async () => {
  await withSampler(
    {
      onError: () => {
        throw new Error("counter broken");
      },
    },
    (fake) => fake.setResources([configured()], showFreeze),
    async ({ fake, sampler, logs }) => {
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
      await waitFor("the first state", () => okWith(sampler.sample(), [configured()]));
      const [firstPid] = await fake.streamPids();
      await fake.setFailure("events2", { code: 1, stderr: "events2: netlink trouble" });
      await fake.killStreams();
      await waitFor(
        "the callback failure in the log",
        () =>
          logs.some((l) =>
            l.level === "error" && l.message === "onError callback failed: counter broken"
          ),
      );
      await sampler.resync();
      assert.equal(sampler.sample().availability, "error");
      assert.equal(
        sampler.sample().message,
        "drbdsetup events2 --now failed with exit code 1: events2: netlink trouble",
      );
      await fake.setFailure("events2", undefined);
      await waitFor("a new stream", async () => {
        const pids = await fake.streamPids();
        return pids.length === 1 && pids[0] !== firstPid;
      });
      await fake.setResources([peerLost()], showFreeze);
      await waitFor("the change via the new stream", () => okWith(sampler.sample(), [peerLost()]));
    },
  );
});

Deno.test("a stalled stream is noticed by the resync, which heals it", async () => {
  await withSampler(
    { statusIntervalMs: 150 },
    (fake) => fake.setResources([configured()], showFreeze),
    async ({ fake, sampler, logs }) => {
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
      await waitFor("the first state", () => okWith(sampler.sample(), [configured()]));
      const [stalledPid] = await fake.streamPids();
      // The state changes, but the running events2 never says so.
      await fake.setResources([peerLost()], { ...showFreeze, silent: true });
      await waitFor("the resync to adopt the change", () => okWith(sampler.sample(), [peerLost()]));
      const warning = logs.find((l) => l.message.includes("missed changes"));
      assert.equal(
        warning?.message,
        "drbdsetup events2 missed changes of r0; adopting the resync state and restarting the stream",
      );
      assert.equal(warning?.level, "warn");
      await waitFor("a fresh stream", async () => {
        const pids = await fake.streamPids();
        return pids.length === 1 && pids[0] !== stalledPid;
      });
      // The new stream follows changes again.
      await fake.setResources([configured()], showFreeze);
      await waitFor(
        "the change via the new stream",
        () => okWith(sampler.sample(), [configured()]),
      );
    },
  );
});

Deno.test("resync() on demand adopts what the stream missed", async () => {
  await withSampler(
    {},
    (fake) => fake.setResources([configured()], showFreeze),
    async ({ fake, sampler }) => {
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
      await waitFor("the first state", () => okWith(sampler.sample(), [configured()]));
      await fake.setResources([peerLost()], { ...showFreeze, silent: true });
      await sampler.resync();
      assert.ok(okWith(sampler.sample(), [peerLost()]), JSON.stringify(sampler.sample()));
    },
  );
});

Deno.test("without the DRBD module: not-loaded, checked again at every resync", async () => {
  await withSampler(
    { statusIntervalMs: 100 },
    (fake) => fake.setModuleMissing(true),
    async ({ fake, sampler, logs, clock }) => {
      await waitFor("not-loaded", () => sampler.sample().availability === "not-loaded");
      const sample = sampler.sample();
      assert.equal(sample.message, NOT_LOADED_MESSAGE);
      assert.equal(sample.message, "DRBD not loaded: nothing to watch");
      assert.deepEqual(sample.resources, []);
      const checks = () =>
        fake.calls().then((c) => c.filter((a) => a.join(" ") === "events2 --now").length);
      const before = await checks();
      await waitFor("two more checks", async () => await checks() >= before + 2);
      assert.deepEqual(await fake.streamPids(), []);
      assert.equal(logs.filter((l) => l.message.startsWith(NOT_LOADED_MESSAGE)).length, 1);

      clock.now += 1_000;
      await fake.setResources([configured()], showFreeze);
      await fake.setModuleMissing(false);
      await waitFor("DRBD watched again", () => okWith(sampler.sample(), [configured()]));
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
    },
  );
});

Deno.test("a missing drbdsetup binary is an error sample, not a crash", async () => {
  const empty = await Deno.makeTempDir();
  try {
    await withSampler(
      { env: { PATH: empty }, statusIntervalMs: 100 },
      () => Promise.resolve(),
      async ({ sampler }) => {
        await waitFor("the error", () => sampler.sample().availability === "error");
        await waitFor(
          "the reason",
          () => /no drbdsetup program on PATH/.test(sampler.sample().message ?? ""),
        );
        assert.deepEqual(sampler.sample().resources, []);
      },
    );
  } finally {
    await Deno.remove(empty);
  }
});

Deno.test("an unreadable stream line is logged and the resync keeps the state right", async () => {
  await withSampler(
    { stallSettleMs: 20 },
    (fake) => fake.setResources([configured()], showFreeze),
    async ({ fake, sampler, logs }) => {
      await waitFor("the live stream", async () => (await fake.streamPids()).length === 1);
      await waitFor("the first state", () => okWith(sampler.sample(), [configured()]));
      await fake.setResources([peerLost()], { ...showFreeze, silent: true });
      await fake.appendStreamLines([
        "change connection name:r0 peer-node-id:1 conn-name:node-b connection",
      ]);
      await waitFor("the warning", () => logs.some((l) => l.message.includes("unreadable line")));
      // The bad line makes the sampler compare at once, long before the next interval.
      await waitFor("the resync", () => okWith(sampler.sample(), [peerLost()]));
    },
  );
});

Deno.test("stop() right after start() leaves nothing running", async () => {
  await withSampler(
    {},
    (fake) => fake.setResources([configured()], showFreeze),
    async () => {},
  );
});

Deno.test("sampleOnce reads events2 --now and show --show-defaults --json", async () => {
  const fake = await FakeDrbd.create();
  try {
    await fake.setResources([configured()], showFreeze);
    const sample = await sampleOnce({ timeoutMs: deadline(10_000), env: fake.env, now: () => 42 });
    assert.deepEqual(sample, {
      availability: "ok",
      message: undefined,
      resources: [configured()],
      confirmedAt: 42,
    });
    assert.deepEqual((await fake.calls()).map((a) => a.join(" ")).sort(), [
      "events2 --now",
      "show --show-defaults --json",
    ]);
  } finally {
    await fake.cleanup();
  }
});

Deno.test("sampleOnce against 9.22: no open:, options only with --show-defaults", async () => {
  const fake = await FakeDrbd.create({ dialect: "9.22" });
  try {
    await fake.setResources([configured()], showFreeze);
    const sample = await sampleOnce({ timeoutMs: deadline(10_000), env: fake.env });
    assert.equal(sample.availability, "ok");
    assert.deepEqual(sample.resources, [configured({ devices: [device({ open: undefined })] })]);
  } finally {
    await fake.cleanup();
  }
});

Deno.test("sampleOnce reports not-loaded and errors as samples", async () => {
  const fake = await FakeDrbd.create();
  try {
    await fake.setModuleMissing(true);
    assert.deepEqual(
      await sampleOnce({ timeoutMs: deadline(10_000), env: fake.env, now: () => 7 }),
      {
        availability: "not-loaded",
        message: NOT_LOADED_MESSAGE,
        resources: [],
        confirmedAt: 7,
      },
    );
    await fake.setModuleMissing(false);
    await fake.setResources([configured()], showFreeze);
    await fake.setFailure("show", {
      code: 20,
      stderr: "received netlink error reply: Invalid argument",
    });
    const noShow = await sampleOnce({ timeoutMs: deadline(10_000), env: fake.env });
    assert.equal(noShow.availability, "ok");
    assert.equal(noShow.resources[0].config, undefined);
    assert.equal(
      noShow.message,
      "resource options unknown: drbdsetup show --show-defaults --json failed with exit code 20: " +
        "received netlink error reply: Invalid argument",
    );
    await fake.setFailure("events2", { code: 10, stderr: "all: Failure: (170) Bad thing" });
    const failed = await sampleOnce({ timeoutMs: deadline(10_000), env: fake.env });
    assert.deepEqual(failed, {
      availability: "error",
      message: "drbdsetup events2 --now failed with exit code 10: all: Failure: (170) Bad thing",
      resources: [],
      confirmedAt: 0,
    });
  } finally {
    await fake.cleanup();
  }
});
