/**
 * Keeps the fake drbdsetup honest: what it prints is compared byte for byte
 * with the reference samples and the texts of DRBD_FORMATS.md.
 */
import assert from "node:assert/strict";
import type { DrbdResource } from "../../lib/drbd/model.ts";
import { runDrbdsetup, spawnDrbdsetup } from "../../lib/drbd/run.ts";
import { type FakeDialect, FakeDrbd, type SetResourcesOptions } from "../sim/drbd/fake_drbd.ts";
import {
  device,
  nodeB,
  nodeC,
  peerDevice,
  r0,
  sample,
  sampleLines,
  without922Fields,
} from "./samples.ts";

async function withFake(
  dialect: FakeDialect,
  test: (fake: FakeDrbd, run: (...args: string[]) => Promise<Output>) => Promise<void>,
): Promise<void> {
  const fake = await FakeDrbd.create({ dialect });
  try {
    await test(fake, (...args) => runDrbdsetup(args, { timeoutMs: 10_000, env: fake.env }));
  } finally {
    await fake.cleanup();
  }
}

interface Output {
  stdout: string;
  stderr: string;
  code: number;
}

const FREEZE: DrbdResource["config"] = {
  quorum: "majority",
  onNoQuorum: "suspend-io",
  onNoDataAccessible: "suspend-io",
  onSuspendedPrimaryOutdated: "force-secondary",
};
const SAMPLE_EXTRAS: SetResourcesOptions = {
  showOptions: { options: { "auto-promote": false }, net: { "rr-conflict": "retry-connect" } },
};

function emptyR0(): DrbdResource {
  return r0({ role: "Secondary", devices: [], connections: [], config: undefined });
}

function r1(): DrbdResource {
  const diskless = peerDevice({ peerDiskState: "Diskless", peerClient: true });
  return r0({
    name: "r1",
    role: "Secondary",
    mayPromote: true,
    promotionScore: 10202,
    devices: [
      device({ volume: 0, minor: 1001, open: false }),
      device({ volume: 1, minor: 1002, open: false }),
    ],
    connections: [
      nodeB({ peerDevices: [peerDevice(), peerDevice({ volume: 1 })] }),
      nodeC({ peerDevices: [diskless, { ...diskless, volume: 1 }] }),
    ],
  });
}

Deno.test("fake events2 --now prints the reference dump, current and 9.22", async () => {
  for (const dialect of ["current", "9.22"] as const) {
    await withFake(dialect, async (fake, run) => {
      await fake.setResources([r0()]);
      const output = await run("events2", "--now");
      const expected = await sample("head_events2_now.txt");
      assert.equal(output.stdout, dialect === "current" ? expected : without922Fields(expected));
      assert.equal(output.code, 0);
    });
  }
});

Deno.test("fake events2 --now with two resources and two volumes matches the reference", async () => {
  await withFake("current", async (fake, run) => {
    await fake.setResources([r0(), r1()]);
    assert.equal(
      (await run("events2", "--now")).stdout,
      await sample("head_events2_now_two_res.txt"),
    );
    assert.equal((await run("events2", "--now", "r9")).stdout, "exists -\n");
  });
});

Deno.test("fake show --json prints the reference documents", async () => {
  await withFake("current", async (fake, run) => {
    await fake.setResources([r0({ config: FREEZE })], SAMPLE_EXTRAS);
    assert.equal(
      (await run("show", "--show-defaults", "--json")).stdout,
      await sample("head_show_json_3node.txt"),
    );
    await fake.setResources([emptyR0()]);
    assert.equal(
      (await run("show", "--json")).stdout,
      await sample("head_show_json_empty_res.txt"),
    );
    assert.deepEqual(await run("show", "--json", "nosuch"), {
      stdout: "[\n]\n",
      stderr: "",
      code: 0,
    });
  });
});

Deno.test("fake show --json in 9.22 hides defaults unless --show-defaults is given", async () => {
  await withFake("9.22", async (fake, run) => {
    await fake.setResources([emptyR0()]);
    // DRBD_FORMATS.md §3.2, the 9.22 form without --show-defaults.
    assert.equal(
      (await run("show", "--json")).stdout,
      `[
    {
        "resource": "r0",
        "_this_host": {
            "node-id": 0,
            "volumes": [
            ]
        }
    }
]
`,
    );
    const withDefaults = (await run("show", "--show-defaults", "--json")).stdout;
    const expected = (await sample("head_show_json_empty_res.txt"))
      .replace(
        `"on-suspended-primary-outdated": "disconnect",\n`,
        `"on-suspended-primary-outdated": "disconnect"\n`,
      )
      .replace(/ *"drbd8-api-compatibility": false\n/, "");
    assert.equal(withDefaults, expected);

    await fake.setResources([r0({ config: FREEZE })], SAMPLE_EXTRAS);
    const sparse = JSON.parse((await run("show", "--json")).stdout);
    assert.deepEqual(sparse[0].options, {
      "on-no-data-accessible": "suspend-io",
      "auto-promote": false,
      "quorum": "majority",
      "on-suspended-primary-outdated": "force-secondary",
    });
    assert.deepEqual(sparse[0].connections[0], {
      path: { _this_host: "ipv4 10.0.0.1:7000", _remote_host: "ipv4 10.0.0.2:7000" },
      net: { "rr-conflict": "retry-connect", _name: "node-b" },
      _peer_node_id: 1,
    });
  });
});

Deno.test("fake live events2 replays the Primary-loses-Secondary sequence byte for byte", async () => {
  await withFake("current", async (fake) => {
    await fake.setResources([r0()]);
    const stream = spawnDrbdsetup(["events2"], { env: fake.env });
    const expected = await sampleLines("head_events2_seq_primary_loses_secondary.txt");
    const lost = (state: string) =>
      r0({
        promotionScore: 10101,
        connections: [
          nodeB({
            connectionState: state,
            peerRole: "Unknown",
            peerDevices: [peerDevice({ replicationState: "Off", peerDiskState: "DUnknown" })],
          }),
          nodeC(),
        ],
      });
    const steps = [
      () => fake.setResources([lost("NetworkFailure")]),
      () =>
        fake.appendStreamLines([
          "call helper name:r0 peer-node-id:1 conn-name:node-b helper:disconnected",
          "response helper name:r0 peer-node-id:1 conn-name:node-b helper:disconnected status:0",
        ]),
      () => fake.setResources([lost("Unconnected")]),
      () => fake.setResources([lost("Connecting")]),
    ];
    const seen: string[] = [];
    for await (const batch of stream.batches) {
      seen.push(...batch);
      if (seen.length >= expected.length) break;
      if (batch.includes("exists -")) { for (const step of steps) await step(); }
    }
    await stream.stop();
    assert.deepEqual(seen, expected);
  });
});

Deno.test("fake secondary --force during a quorum loss prints the forced demotion", async () => {
  await withFake("current", async (fake, run) => {
    const frozen = r0({
      suspended: { user: false, noData: false, fencing: false, quorum: true },
      promotionScore: 0,
      devices: [device({ quorum: false })],
      connections: [
        nodeB({
          connectionState: "NetworkFailure",
          peerRole: "Unknown",
          peerDevices: [peerDevice({ replicationState: "Off", peerDiskState: "DUnknown" })],
        }),
        nodeC({
          connectionState: "NetworkFailure",
          peerRole: "Unknown",
          peerDevices: [
            peerDevice({ replicationState: "Off", peerDiskState: "DUnknown", peerClient: true }),
          ],
        }),
      ],
    });
    await fake.setResources([r0()]);
    await fake.setResources([frozen]);
    // Plain secondary refuses while the device is open for writing.
    const plain = await run("secondary", "r0");
    assert.equal(plain.code, 11);
    assert.match(
      plain.stderr,
      /^r0: State change failed: \(-12\) Device is held open by someone\n/,
    );
    assert.deepEqual(await run("secondary", "--force", "r0"), { stdout: "", stderr: "", code: 0 });
    // Already Secondary: succeeds silently and changes nothing.
    assert.deepEqual(await run("secondary", "--force", "r0"), { stdout: "", stderr: "", code: 0 });
    const stream = (await Deno.readTextFile(`${fake.dir}/events.log`)).split("\n");
    const quorumLoss = await sampleLines("head_events2_seq_quorum_loss.txt");
    assert.equal(stream.at(-2), quorumLoss.at(-2));
    assert.equal(stream.at(-2), "change resource name:r0 role:Secondary force-io-failures:yes");
    assert.match(
      (await run("events2", "--now")).stdout,
      /^exists resource name:r0 role:Secondary suspended:quorum force-io-failures:yes may_promote:no promotion_score:0\n/,
    );
    // The openers close: the next state change clears force-io-failures.
    await fake.setResources([{
      ...frozen,
      role: "Secondary",
      devices: [device({ quorum: false, open: false })],
    }]);
    const after = (await Deno.readTextFile(`${fake.dir}/events.log`)).split("\n");
    assert.ok(after.includes("change resource name:r0 force-io-failures:no"), after.join("\n"));
  });
});

Deno.test("fake exit codes and texts for unknown resources and a missing module", async () => {
  await withFake("current", async (fake, run) => {
    await fake.setResources([r0()]);
    assert.deepEqual(await run("status", "--json", "nosuch"), {
      stdout: "[\n]\n\n",
      stderr: "nosuch: No such resource\n",
      code: 10,
    });
    assert.deepEqual(await run("secondary", "--force", "nosuch"), {
      stdout: "",
      stderr:
        "nosuch: Failure: (158) Unknown resource\nadditional info from kernel:\nunknown resource\n",
      code: 10,
    });
    await fake.setModuleMissing(true);
    for (const command of ["status", "events2", "show"]) {
      const output = await run(command, "--json");
      assert.equal(output.code, 20, command);
      assert.equal(output.stdout, "");
      const lines = output.stderr.split("\n");
      assert.match(
        lines[0],
        /^modprobe: FATAL: Module drbd not found in directory \/lib\/modules\/\S+$/,
      );
      assert.equal(lines[1], "Failed to modprobe drbd (No such file or directory)");
    }
    assert.equal((await run("secondary", "--force", "r0")).code, 0);
    assert.deepEqual(
      (await fake.calls()).map((argv) => argv[0]),
      ["status", "secondary", "status", "events2", "show", "secondary"],
    );
  });
});

Deno.test("fake drbdsetup refuses what it does not simulate", async () => {
  await withFake("current", async (_fake, run) => {
    const statistics = await run("events2", "--now", "--statistics");
    assert.equal(statistics.code, 20);
    assert.equal(statistics.stderr, "fake drbdsetup: events2 --statistics is not simulated\n");
    assert.equal((await run("primary", "r0")).code, 20);
  });
});
