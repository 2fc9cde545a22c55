import assert from "node:assert/strict";
import {
  type Events2Applied,
  Events2State,
  parseEvents2Dump,
  parseEvents2Line,
} from "../../lib/drbd/events2.ts";
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

function stateFrom(lines: string[]): Events2State {
  const state = new Events2State();
  for (const line of lines) {
    const applied = state.apply(line);
    assert.equal(applied.kind, "applied", `line ${line}: ${JSON.stringify(applied)}`);
  }
  return state;
}

function errorOf(applied: Events2Applied): string {
  assert.equal(applied.kind, "error", `expected an error, got ${JSON.stringify(applied)}`);
  return (applied as { message: string }).message;
}

const dumpLines = () => sampleLines("head_events2_now.txt");

Deno.test("events2 --now dump of the example Primary gives the model", async () => {
  const dump = parseEvents2Dump(await sample("head_events2_now.txt"));
  assert.deepEqual(dump.errors, []);
  assert.equal(dump.complete, true);
  assert.deepEqual(dump.resources, [r0()]);
});

Deno.test("events2 --now --statistics gives the same model (statistics are not read)", async () => {
  const dump = parseEvents2Dump(await sample("head_events2_now_statistics.txt"));
  assert.deepEqual(dump.errors, []);
  assert.deepEqual(dump.resources, [r0()]);
});

Deno.test("9.22 dialect without open: gives open undefined", async () => {
  const dump = parseEvents2Dump(without922Fields(await sample("head_events2_now.txt")));
  assert.deepEqual(dump.errors, []);
  assert.deepEqual(dump.resources, [r0({ devices: [device({ open: undefined })] })]);
});

Deno.test("two resources: sorted by name, devices and peer devices by ascending volume", async () => {
  const dump = parseEvents2Dump(await sample("head_events2_now_two_res.txt"));
  assert.deepEqual(dump.errors, []);
  assert.deepEqual(dump.resources.map((r) => r.name), ["r0", "r1"]);
  const r1 = dump.resources[1];
  assert.equal(r1.role, "Secondary");
  assert.equal(r1.mayPromote, true);
  assert.equal(r1.promotionScore, 10202);
  assert.deepEqual(r1.devices, [
    device({ volume: 0, minor: 1001, open: false }),
    device({ volume: 1, minor: 1002, open: false }),
  ]);
  assert.deepEqual(r1.connections.map((c) => c.name), ["node-b", "node-c"]);
  assert.deepEqual(r1.connections[0].peerDevices.map((pd) => pd.volume), [0, 1]);
  assert.deepEqual(r1.connections[1].peerDevices, [
    peerDevice({ volume: 0, peerDiskState: "Diskless", peerClient: true }),
    peerDevice({ volume: 1, peerDiskState: "Diskless", peerClient: true }),
  ]);
});

Deno.test("a dump without exists - is reported incomplete", async () => {
  const lines = await dumpLines();
  const dump = parseEvents2Dump(lines.slice(0, -1).join("\n"));
  assert.equal(dump.complete, false);
  assert.deepEqual(dump.errors, []);
});

Deno.test("Primary loses its Secondary, with timestamps", async () => {
  const state = new Events2State();
  let endOfDumpSeen = false;
  for (const line of await sampleLines("head_events2_timestamps.txt")) {
    const applied = state.apply(line);
    assert.equal(applied.kind, "applied", line);
    if (applied.kind === "applied" && applied.endOfDump) endOfDumpSeen = true;
  }
  assert.equal(endOfDumpSeen, true);
  assert.deepEqual(state.resources(), [
    r0({
      promotionScore: 10101,
      connections: [
        nodeB({
          connectionState: "Connecting",
          peerRole: "Unknown",
          peerDevices: [peerDevice({ replicationState: "Off", peerDiskState: "DUnknown" })],
        }),
        nodeC(),
      ],
    }),
  ]);
});

Deno.test("the --full form of the same sequence gives the same result", async () => {
  const full = stateFrom(await sampleLines("head_events2_seq_primary_loses_secondary_full.txt"));
  const plain = stateFrom(await sampleLines("head_events2_seq_primary_loses_secondary.txt"));
  assert.deepEqual(full.resources(), plain.resources());
  assert.equal(full.resources()[0].connections[0].connectionState, "Connecting");
});

Deno.test("Secondary sees the Primary crash: Consistent, then may_promote, then promoted", async () => {
  const lines = await sampleLines("head_events2_seq_secondary_sees_primary_crash.txt");
  const state = new Events2State();
  const seen: { disk: string; mayPromote: boolean | undefined }[] = [];
  for (const line of lines) {
    assert.equal(state.apply(line).kind, "applied", line);
    if (!state.dumpComplete) continue;
    const [resource] = state.resources();
    const last = seen.at(-1);
    const now = { disk: resource.devices[0].diskState, mayPromote: resource.mayPromote };
    if (last === undefined || last.disk !== now.disk || last.mayPromote !== now.mayPromote) {
      seen.push(now);
    }
  }
  assert.deepEqual(seen, [
    { disk: "UpToDate", mayPromote: false },
    { disk: "Consistent", mayPromote: false },
    { disk: "Consistent", mayPromote: true },
    { disk: "UpToDate", mayPromote: true },
    { disk: "UpToDate", mayPromote: false },
  ]);
  const [resource] = state.resources();
  assert.equal(resource.role, "Primary");
  assert.equal(resource.connections[0].peerRole, "Unknown");
});

Deno.test("quorum loss: suspended quorum, forced demotion, force-io-failures set then cleared", async () => {
  const lines = await sampleLines("head_events2_seq_quorum_loss.txt");
  const state = stateFrom(lines.slice(0, -1));
  let [resource] = state.resources();
  assert.deepEqual(resource.suspended, {
    user: false,
    noData: false,
    fencing: false,
    quorum: true,
  });
  assert.equal(resource.role, "Secondary");
  assert.equal(resource.forceIoFailures, true);
  assert.equal(resource.devices[0].quorum, false);
  assert.deepEqual(resource.connections.map((c) => c.peerDevices[0].peerDiskState), [
    "DUnknown",
    "DUnknown",
  ]);
  assert.equal(resource.connections[1].peerDevices[0].peerClient, true);
  state.apply(lines.at(-1)!);
  [resource] = state.resources();
  assert.equal(resource.forceIoFailures, false);
  assert.equal(resource.suspended.quorum, true);
});

Deno.test("resync progress: done-only and identity-only peer-device lines are accepted", async () => {
  const state = stateFrom(await sampleLines("head_events2_sync_statistics.txt"));
  assert.equal(state.resources()[0].connections[0].peerDevices[0].replicationState, "SyncSource");
  const progress = await sampleLines("head_events2_resync_progress.txt");
  assert.equal(progress[0], "exists -");
  for (const line of progress.slice(1)) assert.equal(state.apply(line).kind, "applied", line);
  const bare = state.apply("change peer-device name:r0 peer-node-id:1 conn-name:node-b volume:0");
  assert.deepEqual(bare, { kind: "applied", changed: false, endOfDump: false });
  assert.deepEqual(state.resources()[0].connections[0].peerDevices[0], peerDevice());
});

Deno.test("suspended lists set exactly the named reasons", async () => {
  const state = stateFrom(await dumpLines());
  state.apply("change resource name:r0 suspended:user,quorum");
  assert.deepEqual(state.resources()[0].suspended, {
    user: true,
    noData: false,
    fencing: false,
    quorum: true,
  });
  state.apply("change resource name:r0 suspended:no-data,fencing");
  assert.deepEqual(state.resources()[0].suspended, {
    user: false,
    noData: true,
    fencing: true,
    quorum: false,
  });
  state.apply("change resource name:r0 suspended:no");
  assert.deepEqual(state.resources()[0].suspended, {
    user: false,
    noData: false,
    fencing: false,
    quorum: false,
  });
});

Deno.test("unknown enum values are kept as printed; roles other than Primary/Secondary are Unknown", async () => {
  const state = stateFrom(await dumpLines());
  for (
    const line of [
      "change resource name:r0 role:?",
      "change connection name:r0 peer-node-id:1 conn-name:node-b connection:Rebooting role:Sleepy",
      "change device name:r0 volume:0 minor:1000 backing_dev:/dev/vg0/r0 disk:? client:no open:yes quorum:yes",
      "change peer-device name:r0 peer-node-id:1 conn-name:node-b volume:0 replication:Teleporting",
    ]
  ) {
    assert.equal(state.apply(line).kind, "applied", line);
  }
  const [resource] = state.resources();
  assert.equal(resource.role, "Unknown");
  assert.equal(resource.devices[0].diskState, "?");
  assert.equal(resource.connections[0].connectionState, "Rebooting");
  assert.equal(resource.connections[0].peerRole, "Unknown");
  assert.equal(resource.connections[0].peerDevices[0].replicationState, "Teleporting");
});

Deno.test("client:unknown and peer-client:unknown become undefined", async () => {
  const state = stateFrom(await dumpLines());
  state.apply(
    "change device name:r0 volume:0 minor:1000 backing_dev:none disk:Diskless client:unknown open:unknown quorum:yes",
  );
  state.apply(
    "change peer-device name:r0 peer-node-id:2 conn-name:node-c volume:0 peer-disk:Diskless peer-client:unknown",
  );
  const [resource] = state.resources();
  assert.deepEqual(
    resource.devices[0],
    device({
      diskState: "Diskless",
      client: undefined,
      open: undefined,
    }),
  );
  assert.equal(resource.connections[1].peerDevices[0].peerClient, undefined);
});

Deno.test("64-bit counters in statistics lines do not break anything", async () => {
  const state = stateFrom(await sampleLines("head_events2_now_statistics.txt"));
  const before = state.resources();
  const applied = state.apply(
    "change connection name:r0 peer-node-id:1 conn-name:node-b congested:no " +
      "ap-in-flight:18446744073709551608 rs-in-flight:18446744073709551615",
  );
  assert.deepEqual(applied, { kind: "applied", changed: false, endOfDump: false });
  state.apply(
    "change device name:r0 volume:0 minor:1000 upper-pending:4294967294 lower-pending:4294967292",
  );
  assert.deepEqual(state.resources(), before);
});

Deno.test("path and helper lines are accepted and change nothing", async () => {
  const state = stateFrom(await dumpLines());
  const before = state.resources();
  for (
    const line of [
      "change path name:r0 peer-node-id:1 conn-name:node-b local:ipv4:10.0.0.1:7000 peer:ipv4:10.0.0.2:7000 established:no",
      "call helper name:r0 peer-node-id:1 conn-name:node-b helper:disconnected",
      "response helper name:r0 peer-node-id:1 conn-name:node-b helper:disconnected status:0",
      "call helper name:r0 volume:0 minor:1000 helper:quorum-lost",
      "destroy path name:r0 peer-node-id:1 conn-name:node-b local:ipv6:[fe80::1]:7000 peer:ipv6:[fe80::2]:7000",
    ]
  ) {
    assert.deepEqual(state.apply(line), { kind: "applied", changed: false, endOfDump: false });
  }
  assert.deepEqual(state.resources(), before);
});

Deno.test("create and destroy of every object (upstream events2-all-create-destroy)", () => {
  const state = new Events2State();
  const lines = [
    "exists -",
    "create resource name:some-resource role:Secondary suspended:no force-io-failures:no may_promote:no promotion_score:0",
    "create device name:some-resource volume:0 minor:1000 backing_dev:none disk:Diskless client:no open:no quorum:yes",
    "create connection name:some-resource peer-node-id:1 conn-name:some-peer connection:StandAlone role:Unknown",
    "create peer-device name:some-resource peer-node-id:1 conn-name:some-peer volume:0 replication:Off peer-disk:DUnknown peer-client:no resync-suspended:no",
    "create path name:some-resource peer-node-id:1 conn-name:some-peer local:ipv4:1.2.3.4:7789 peer:ipv4:5.6.7.8:7790 established:no",
  ];
  for (const line of lines) assert.equal(state.apply(line).kind, "applied", line);
  assert.deepEqual(state.resources(), [{
    name: "some-resource",
    role: "Secondary",
    suspended: { user: false, noData: false, fencing: false, quorum: false },
    forceIoFailures: false,
    mayPromote: false,
    promotionScore: 0,
    devices: [{
      volume: 0,
      minor: 1000,
      diskState: "Diskless",
      client: false,
      open: false,
      quorum: true,
    }],
    connections: [{
      peerNodeId: 1,
      name: "some-peer",
      connectionState: "StandAlone",
      peerRole: "Unknown",
      peerDevices: [{
        volume: 0,
        replicationState: "Off",
        peerDiskState: "DUnknown",
        peerClient: false,
      }],
    }],
    config: undefined,
  }]);
  const destroys = [
    "destroy path name:some-resource peer-node-id:1 conn-name:some-peer local:ipv4:1.2.3.4:7789 peer:ipv4:5.6.7.8:7790",
    "destroy peer-device name:some-resource peer-node-id:1 conn-name:some-peer volume:0",
  ];
  for (const line of destroys) state.apply(line);
  assert.deepEqual(state.resources()[0].connections[0].peerDevices, []);
  state.apply("destroy connection name:some-resource peer-node-id:1 conn-name:some-peer");
  state.apply("destroy device name:some-resource volume:0");
  assert.deepEqual(state.resources()[0].connections, []);
  assert.deepEqual(state.resources()[0].devices, []);
  assert.deepEqual(state.apply("destroy resource name:some-resource"), {
    kind: "applied",
    changed: true,
    endOfDump: false,
  });
  assert.deepEqual(state.resources(), []);
});

Deno.test("rename moves the resource to its new name", async () => {
  const state = stateFrom(await dumpLines());
  assert.equal(state.apply("rename resource name:r0 new_name:pvc-1234").kind, "applied");
  assert.deepEqual(state.resources(), [r0({ name: "pvc-1234" })]);
  assert.match(
    errorOf(state.apply("rename resource name:gone new_name:other")),
    /known resource to rename, got gone/,
  );
});

Deno.test("malformed lines give an error and leave the state unchanged", async () => {
  const state = stateFrom(await dumpLines());
  const before = state.resources();
  const cases: [string, RegExp][] = [
    ["garbage", /Expected an events2 verb .*got "garbage"/],
    ["change", /Expected an events2 object .*got ""/],
    ["change volume name:r0", /Expected an events2 object .*got "volume"/],
    ["change resource name:r0 role", /Expected key:value fields, got "role"/],
    ["change resource role:Primary", /Expected the identity key name:, it is missing/],
    [
      "change resource name:r0 force-io-failures:maybe",
      /force-io-failures:yes or .*got force-io-failures:maybe/,
    ],
    ["change resource name:r0 role:Secondary promotion_score:lots", /number for promotion_score/],
    ["change device name:r0 volume:x minor:1000 disk:UpToDate quorum:yes", /number for volume/],
    ["change device name:r0 volume:0 minor:1000 disk:UpToDate client:no", /quorum/],
    [
      "change device name:r0 volume:7 minor:1007 disk:UpToDate client:no quorum:yes",
      /known device, got r0\/7/,
    ],
    [
      "change device name:nosuch volume:0 minor:1000 disk:UpToDate quorum:yes",
      /known resource, got unknown nosuch/,
    ],
    [
      "change connection name:r0 peer-node-id:9 conn-name:node-z connection:Connected",
      /known connection/,
    ],
    [
      "exists connection name:r0 peer-node-id:3 conn-name:node-d role:Secondary",
      /connection: on a full line/,
    ],
    ["exists resource name:r9 suspended:no", /role: on a full line/],
    ["create helper name:r0 helper:fence-peer", /call or response for a helper/],
    ["call device name:r0 volume:0 minor:1000", /call only for a helper/],
    [
      "change connection name:r0 peer-node-id:1 conn-name:node-b connection:Connected->NetworkFailure",
      /--diff form is not supported/,
    ],
  ];
  for (const [line, pattern] of cases) {
    const message = errorOf(state.apply(line));
    assert.match(message, pattern, `${line} gave ${message}`);
  }
  assert.deepEqual(state.resources(), before);
});

Deno.test("the --diff form is unparsable but never throws", async () => {
  const dump = parseEvents2Dump(await sample("head_events2_seq_primary_loses_secondary_diff.txt"));
  assert.ok(dump.errors.length > 0);
  assert.ok(dump.errors.some((e) => /--diff form is not supported/.test(e.message)));
  assert.equal(dump.complete, true);
});

Deno.test("parseEvents2Line keeps colons in values and reads the timestamp", () => {
  const line = parseEvents2Line(
    "2026-11-25T02:59:00.986822+01:00 change path name:r0 peer-node-id:1 conn-name:node-b " +
      "local:ipv6:[fe80::1]:7000 peer:ipv4:10.0.0.2:7000 established:no",
  );
  assert.equal(line.kind, "object");
  if (line.kind !== "object") return;
  assert.equal(line.timestamp, "2026-11-25T02:59:00.986822+01:00");
  assert.equal(line.verb, "change");
  assert.equal(line.object, "path");
  assert.equal(line.fields.get("local"), "ipv6:[fe80::1]:7000");
  assert.equal(line.fields.get("peer"), "ipv4:10.0.0.2:7000");
  assert.deepEqual(parseEvents2Line("2026-11-25T02:59:00.986810+01:00 exists -"), {
    kind: "end-of-dump",
    timestamp: "2026-11-25T02:59:00.986810+01:00",
  });
  assert.deepEqual(parseEvents2Line(""), { kind: "blank" });
});

Deno.test("changed is reported only when the model changed", async () => {
  const state = stateFrom(await dumpLines());
  assert.deepEqual(state.apply("change resource name:r0 role:Primary"), {
    kind: "applied",
    changed: false,
    endOfDump: false,
  });
  assert.deepEqual(state.apply("change resource name:r0 may_promote:no promotion_score:10101"), {
    kind: "applied",
    changed: true,
    endOfDump: false,
  });
});

Deno.test("resources() hands out copies", async () => {
  const state = stateFrom(await dumpLines());
  const first = state.resources();
  first[0].role = "Secondary";
  first[0].devices[0].diskState = "Failed";
  first[0].connections[0].peerDevices[0].peerDiskState = "Failed";
  first[0].suspended.quorum = true;
  assert.deepEqual(state.resources(), [r0()]);
});
