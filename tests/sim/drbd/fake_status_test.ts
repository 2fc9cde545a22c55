/**
 * The fake's `status --json` against the reference samples, byte for byte
 * (DRBD_FORMATS.md §2), and `secondary` answered by a simulation.
 */
import assert from "node:assert/strict";
import { runDrbdsetup } from "../../../lib/drbd/run.ts";
import { device, nodeB, nodeC, peerDevice, r0, sample } from "../../drbd/samples.ts";
import { type FakeDialect, FakeDrbd, resyncKey } from "./fake_drbd.ts";

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

const SUSPENDED_QUORUM = { user: false, noData: false, fencing: false, quorum: true };

function lost(connection: typeof nodeB, client: boolean, state = "Connecting") {
  return connection({
    connectionState: state,
    peerRole: "Unknown",
    peerDevices: [
      peerDevice({ replicationState: "Off", peerDiskState: "DUnknown", peerClient: client }),
    ],
  });
}

Deno.test("fake status --json prints the reference documents byte for byte", async () => {
  await withFake("current", async (fake, run) => {
    await fake.setResources([r0()]);
    assert.equal(
      (await run("status", "--json")).stdout,
      await sample("head_status_json_3node.txt"),
    );
    // -v and -s do not change the JSON.
    assert.equal(
      (await run("status", "--json", "--verbose", "--statistics", "r0")).stdout,
      await sample("head_status_json_3node.txt"),
    );

    await fake.setResources([r0({
      suspended: SUSPENDED_QUORUM,
      devices: [device({ quorum: false })],
      connections: [lost(nodeB, false), lost(nodeC, true)],
    })]);
    assert.equal(
      (await run("status", "--json")).stdout,
      await sample("head_status_json_no_quorum.txt"),
    );

    await fake.setResources([r0({ role: "Secondary", forceIoFailures: true })]);
    assert.equal(
      (await run("status", "--json")).stdout,
      await sample("head_status_json_force_secondary.txt"),
    );

    // The sample's counters (an underflowed ap-in-flight, 4 KiB out of sync) are not modelled.
    await fake.setResources([r0({ connections: [lost(nodeB, false), nodeC()] })]);
    const peerLost = (await sample("head_status_json_peer_lost.txt"))
      .replace('"ap-in-flight": 18446744073709551608', '"ap-in-flight": 0')
      .replace('"out-of-sync": 4,', '"out-of-sync": 0,');
    assert.equal((await run("status", "--json")).stdout, peerLost);
  });
});

Deno.test("fake status --json: two resources, 9.22 form, empty lists", async () => {
  await withFake("current", async (fake, run) => {
    const diskless = peerDevice({ peerDiskState: "Diskless", peerClient: true });
    const r1 = r0({
      name: "r1",
      role: "Secondary",
      devices: [
        device({ volume: 0, minor: 1001, open: false }),
        device({ volume: 1, minor: 1002, open: false }),
      ],
      connections: [
        nodeB({ peerDevices: [peerDevice(), peerDevice({ volume: 1 })] }),
        nodeC({ peerDevices: [diskless, { ...diskless, volume: 1 }] }),
      ],
    });
    // Sorted by name, whatever the creation order.
    await fake.setResources([r1, r0()]);
    assert.equal(
      (await run("status", "--json")).stdout,
      await sample("head_status_json_two_res.txt"),
    );
    await fake.setResources([r0({ role: "Secondary", devices: [], connections: [] })]);
    assert.match(
      (await run("status", "--json")).stdout,
      /"devices": \[\n \],\n {2}"connections": \[\n \]\n\}\n\]\n\n$/,
    );
  });
  await withFake("9.22", async (fake, run) => {
    await fake.setResources([r0()]);
    // No "open", "tls" or "paths" before drbd-utils 9.26/9.28/9.29.
    const expected = (await sample("head_status_json_3node.txt"))
      .replace(/ {6}"open": true,\n/, "")
      .replaceAll(/ {6}"tls": false,\n/g, "")
      .replaceAll(/ {6}"paths": \[\n[\s\S]*?\} \],\n/g, "");
    assert.equal((await run("status", "--json")).stdout, expected);
  });
});

Deno.test("fake status --json and events2 show resync progress", async () => {
  await withFake("current", async (fake, run) => {
    const syncing = r0({
      connections: [
        nodeB({
          peerDevices: [
            peerDevice({ replicationState: "SyncSource", peerDiskState: "Inconsistent" }),
          ],
        }),
        nodeC(),
      ],
    });
    await fake.setResources([syncing], { resyncDone: { [resyncKey("r0", 1, 0)]: 50 } });
    const status = (await run("status", "--json")).stdout;
    const reference = JSON.parse(await sample("head_status_json_sync.txt"));
    const shown = JSON.parse(status);
    const keys = (doc: typeof shown) => Object.keys(doc[0].connections[0].peer_devices[0]);
    assert.deepEqual(keys(shown), keys(reference));
    assert.equal(shown[0].connections[0].peer_devices[0]["percent-resync-done"], 50);
    assert.match(status, /"percent-resync-done": 50\.00\n/);
    assert.match(
      (await run("events2", "--now")).stdout,
      /^exists peer-device name:r0 peer-node-id:1 conn-name:node-b volume:0 replication:SyncSource peer-disk:Inconsistent peer-client:no resync-suspended:no done:50\.00$/m,
    );
  });
});

Deno.test("fake secondary answered by a simulation", async () => {
  await withFake("current", async (fake, run) => {
    await fake.setResources([r0()]);
    const seen: string[][] = [];
    await fake.serveCommands(["secondary"], (args) => {
      seen.push(args);
      return Promise.resolve({
        code: 11,
        stderr: "r0: State change failed: (-12) Device is held open by someone",
      });
    });
    assert.deepEqual(await run("secondary", "r0"), {
      stdout: "",
      stderr: "r0: State change failed: (-12) Device is held open by someone\n",
      code: 11,
    });
    assert.equal((await run("secondary", "--force=yes", "r0")).code, 11);
    assert.deepEqual(seen, [["secondary", "r0"], ["secondary", "--force", "r0"]]);
    // Option errors are still the script's.
    assert.equal((await run("secondary", "--bogus", "r0")).code, 20);
    assert.equal((await run("secondary")).code, 1);
    await fake.stopServing();
    // Without a server the script decides again: r0 is open for writing.
    assert.equal((await run("secondary", "r0")).code, 11);
    assert.equal((await run("secondary", "--force", "r0")).code, 0);
  });
});
