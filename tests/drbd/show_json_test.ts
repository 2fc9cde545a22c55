import assert from "node:assert/strict";
import {
  DEFAULT_RESOURCE_CONFIG,
  DrbdParseError,
  parseQuorumPolicy,
  parseShowJson,
} from "../../lib/drbd/show_json.ts";
import { sample } from "./samples.ts";

const FREEZE_PROFILE = {
  quorum: "majority",
  onNoQuorum: "suspend-io",
  onNoDataAccessible: "suspend-io",
  onSuspendedPrimaryOutdated: "force-secondary",
};

Deno.test("show --json of the 3-node resource (current utils) gives the freeze profile", async () => {
  const configs = parseShowJson(await sample("head_show_json_3node.txt"));
  assert.deepEqual([...configs], [["r0", FREEZE_PROFILE]]);
});

Deno.test("show --json of a resource with every option at its default", async () => {
  const configs = parseShowJson(await sample("head_show_json_empty_res.txt"));
  assert.deepEqual(configs.get("r0"), {
    quorum: "off",
    onNoQuorum: "suspend-io",
    onNoDataAccessible: "io-error",
    onSuspendedPrimaryOutdated: "disconnect",
  });
});

Deno.test("9.22 without --show-defaults: no options object means kernel defaults", () => {
  const text = `[
    {
        "resource": "r0",
        "_this_host": {
            "node-id": 0,
            "volumes": [
            ]
        }
    }
]
`;
  assert.deepEqual(parseShowJson(text).get("r0"), DEFAULT_RESOURCE_CONFIG);
});

Deno.test("9.22 without --show-defaults: only non-default options, old path form", () => {
  const text = `[
    {
        "resource": "r0",
        "options": {
            "on-no-data-accessible": "suspend-io",
            "auto-promote": false,
            "quorum": "majority",
            "on-suspended-primary-outdated": "force-secondary"
        },
        "_this_host": {
            "node-id": 0,
            "volumes": [
                {
                    "volume_nr": 0,
                    "device_minor": 1000,
                    "backing-disk": "/dev/vg0/r0",
                    "meta-disk": "internal"
                }
            ]
        },
        "connections": [
            {
                "path": {
                    "_this_host": "ipv4 10.0.0.1:7000",
                    "_remote_host": "ipv4 10.0.0.2:7000"
                },
                "net": {
                    "rr-conflict": "retry-connect",
                    "_name": "node-b"
                },
                "_peer_node_id": 1
            }
        ]
    }
]
`;
  assert.deepEqual(parseShowJson(text).get("r0"), FREEZE_PROFILE);
});

Deno.test("several resources, quorum as node count and all", () => {
  const text = JSON.stringify([
    { resource: "r0", options: { quorum: "2", "on-no-quorum": "io-error" } },
    { resource: "r1", options: { quorum: "all" } },
    { resource: "r10", options: {} },
  ]);
  const configs = parseShowJson(text);
  assert.deepEqual([...configs.keys()], ["r0", "r1", "r10"]);
  assert.equal(configs.get("r0")?.quorum, 2);
  assert.equal(configs.get("r0")?.onNoQuorum, "io-error");
  assert.equal(configs.get("r1")?.quorum, "all");
  assert.deepEqual(configs.get("r10"), DEFAULT_RESOURCE_CONFIG);
});

Deno.test("no resources: [ ] gives an empty map", () => {
  assert.equal(parseShowJson("[\n]\n").size, 0);
});

Deno.test("option values this version does not know are kept as printed", () => {
  const text = JSON.stringify([{
    resource: "r0",
    options: { "on-no-quorum": "freeze-forever", "on-suspended-primary-outdated": "shrug" },
  }]);
  const config = parseShowJson(text).get("r0");
  assert.equal(config?.onNoQuorum, "freeze-forever");
  assert.equal(config?.onSuspendedPrimaryOutdated, "shrug");
});

Deno.test("parseQuorumPolicy accepts the printed forms", () => {
  assert.equal(parseQuorumPolicy("off"), "off");
  assert.equal(parseQuorumPolicy("majority"), "majority");
  assert.equal(parseQuorumPolicy("all"), "all");
  assert.equal(parseQuorumPolicy("3"), 3);
  assert.equal(parseQuorumPolicy(2), 2);
});

Deno.test("malformed show output gives a DrbdParseError that says what it saw", () => {
  const cases: [string, RegExp][] = [
    ["", /Expected JSON from drbdsetup show --json, got unreadable text/],
    ["# No currently configured DRBD found.", /unreadable text/],
    ["{}", /Expected a JSON array of resources .*got an object/],
    ["[1]", /Expected resource 0 of show --json to be an object, got number 1/],
    ['[{"options": {}}]', /Expected a "resource" name in resource 0 .*got undefined/],
    [
      '[{"resource": "r0", "options": []}]',
      /"options" of resource r0 to be an object, got an array/,
    ],
    [
      '[{"resource": "r0", "options": {"quorum": "sometimes"}}]',
      /Resource r0: Expected quorum "off", "majority", "all" or a node count, got the string "sometimes"/,
    ],
    [
      '[{"resource": "r0", "options": {"on-no-quorum": 5}}]',
      /options.on-no-quorum of resource r0 to be a name, got number 5/,
    ],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => parseShowJson(text), (err: unknown) => {
      assert.ok(err instanceof DrbdParseError, `${text}: ${err}`);
      assert.match(err.message, pattern);
      return true;
    });
  }
});
