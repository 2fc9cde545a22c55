import assert from "node:assert/strict";
import {
  contentType,
  createAgentMetrics,
  failOverReactionBuckets,
  Registry,
  setHeldBack,
  updateDrbdMetrics,
  updateMemoryMetrics,
} from "../lib/metrics.ts";
import type { DrbdResource, DrbdSample } from "../lib/drbd/model.ts";

Deno.test("a registry renders counters, gauges and histograms in text format 0.0.4", () => {
  const registry = new Registry();
  const requests = registry.counter({
    name: "app_requests_total",
    help: "Requests served",
    labelNames: ["verb", "code"],
  });
  const temperature = registry.gauge({ name: "app_temperature_celsius", help: "Temperature" });
  const latency = registry.histogram({
    name: "app_latency_seconds",
    help: "Latency",
    buckets: [0.1, 1, 10],
  });
  requests.inc({ verb: "get", code: "200" });
  requests.inc({ verb: "get", code: "200" }, 2);
  requests.inc({ code: "404", verb: "get" });
  temperature.set(21.5);
  latency.observe(0.05);
  latency.observe(1);
  latency.observe(3);
  latency.observe(100);

  assert.equal(
    registry.render(),
    `# HELP app_latency_seconds Latency
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{le="0.1"} 1
app_latency_seconds_bucket{le="1"} 2
app_latency_seconds_bucket{le="10"} 3
app_latency_seconds_bucket{le="+Inf"} 4
app_latency_seconds_sum 104.05
app_latency_seconds_count 4
# HELP app_requests_total Requests served
# TYPE app_requests_total counter
app_requests_total{verb="get",code="200"} 3
app_requests_total{verb="get",code="404"} 1
# HELP app_temperature_celsius Temperature
# TYPE app_temperature_celsius gauge
app_temperature_celsius 21.5
`,
  );
  assert.equal(requests.get({ verb: "get", code: "200" }), 3);
  assert.equal(requests.get({ verb: "put", code: "200" }), undefined);
  assert.deepEqual(latency.get(), { count: 4, sum: 104.05 });
  assert.equal(contentType, "text/plain; version=0.0.4; charset=utf-8");
});

Deno.test("histograms with labels put le last, and count each series on its own", () => {
  const registry = new Registry();
  const duration = registry.histogram({
    name: "job_seconds",
    help: "Job duration",
    labelNames: ["job"],
    buckets: [1, 5],
  });
  duration.observe({ job: "b" }, 5);
  duration.observe({ job: "a" }, 0);
  assert.equal(
    registry.render(),
    `# HELP job_seconds Job duration
# TYPE job_seconds histogram
job_seconds_bucket{job="a",le="1"} 1
job_seconds_bucket{job="a",le="5"} 1
job_seconds_bucket{job="a",le="+Inf"} 1
job_seconds_sum{job="a"} 0
job_seconds_count{job="a"} 1
job_seconds_bucket{job="b",le="1"} 0
job_seconds_bucket{job="b",le="5"} 1
job_seconds_bucket{job="b",le="+Inf"} 1
job_seconds_sum{job="b"} 5
job_seconds_count{job="b"} 1
`,
  );
});

Deno.test("label values and help texts are escaped", () => {
  const registry = new Registry();
  const gauge = registry.gauge({
    name: "odd_values",
    help: 'Back\\slash, "quotes" and a\nnew line',
    labelNames: ["value"],
  });
  gauge.set({ value: 'C:\\drbd "r0"\nnext' }, 1);
  assert.equal(
    registry.render(),
    `# HELP odd_values Back\\\\slash, "quotes" and a\\nnew line
# TYPE odd_values gauge
odd_values{value="C:\\\\drbd \\"r0\\"\\nnext"} 1
`,
  );
});

Deno.test("order is stable: families by name, series by label values, numbers numerically", () => {
  const registry = new Registry();
  const b = registry.gauge({ name: "b_metric", help: "B", labelNames: ["volume", "name"] });
  const a = registry.gauge({ name: "a_metric", help: "A" });
  b.set({ volume: "10", name: "r0" }, 3);
  b.set({ volume: "2", name: "r1" }, 2);
  b.set({ volume: "2", name: "r0" }, 1);
  b.set({ volume: "x", name: "r0" }, 4);
  a.set(7);
  const expected = `# HELP a_metric A
# TYPE a_metric gauge
a_metric 7
# HELP b_metric B
# TYPE b_metric gauge
b_metric{volume="2",name="r0"} 1
b_metric{volume="2",name="r1"} 2
b_metric{volume="10",name="r0"} 3
b_metric{volume="x",name="r0"} 4
`;
  assert.equal(registry.render(), expected);
  assert.equal(registry.render(), expected, "rendering again gives the same text");
});

Deno.test("special values render as NaN, +Inf and -Inf", () => {
  const registry = new Registry();
  const gauge = registry.gauge({ name: "special", help: "Special", labelNames: ["case"] });
  gauge.set({ case: "nan" }, NaN);
  gauge.set({ case: "plus" }, Infinity);
  gauge.set({ case: "minus" }, -Infinity);
  gauge.set({ case: "small" }, 0.005);
  gauge.set({ case: "negative" }, -2);
  assert.equal(
    registry.render(),
    `# HELP special Special
# TYPE special gauge
special{case="minus"} -Inf
special{case="nan"} NaN
special{case="negative"} -2
special{case="plus"} +Inf
special{case="small"} 0.005
`,
  );
});

Deno.test("families without series are left out; reset drops every series of a gauge", () => {
  const registry = new Registry();
  registry.counter({ name: "never_total", help: "Never counted", labelNames: ["x"] });
  const plain = registry.counter({ name: "plain_total", help: "Plain" });
  const resources = registry.gauge({ name: "resources", help: "R", labelNames: ["name"] });
  const count = registry.gauge({ name: "resource_count", help: "C" });
  assert.equal(
    registry.render(),
    `# HELP plain_total Plain
# TYPE plain_total counter
plain_total 0
# HELP resource_count C
# TYPE resource_count gauge
resource_count 0
`,
  );

  resources.set({ name: "r0" }, 1);
  resources.set({ name: "r1" }, 1);
  resources.reset();
  resources.set({ name: "r1" }, 0);
  count.reset();
  plain.inc();
  assert.equal(
    registry.render(),
    `# HELP plain_total Plain
# TYPE plain_total counter
plain_total 1
# HELP resources R
# TYPE resources gauge
resources{name="r1"} 0
`,
  );
  resources.remove({ name: "r1" });
  plain.inc(0);
  assert.equal(
    registry.render(),
    "# HELP plain_total Plain\n# TYPE plain_total counter\nplain_total 1\n",
  );
  assert.equal(new Registry().render(), "");
});

Deno.test("misuse is refused with a message that says what was expected", () => {
  const registry = new Registry();
  const counter = registry.counter({ name: "c_total", help: "C", labelNames: ["a", "b"] });
  assert.throws(() => counter.inc({ a: "1" } as never), {
    message: "Expected labels {a, b} for c_total, got {a}",
  });
  assert.throws(() => counter.inc({ a: "1", b: "2", c: "3" } as never), {
    message: "Expected labels {a, b} for c_total, got {a, b, c}",
  });
  assert.throws(() => counter.inc(), { message: "Expected labels {a, b} for c_total, got {}" });
  assert.throws(() => counter.inc({ a: "1", b: "2" }, -1), {
    message: "Expected a finite amount of 0 or more for c_total, got -1",
  });
  assert.throws(() => registry.gauge({ name: "c_total", help: "again" }), {
    message: 'Expected a new metric name, got "c_total" a second time',
  });
  assert.throws(() => registry.gauge({ name: "bad-name", help: "x" }), {
    message: 'Expected a metric name matching /^[a-zA-Z_:][a-zA-Z0-9_:]*$/, got "bad-name"',
  });
  assert.throws(() => registry.gauge({ name: "g", help: "x", labelNames: ["__x"] }), {
    message: 'Expected a usable label name for g, got "__x"',
  });
  assert.throws(() => registry.gauge({ name: "g", help: "x", labelNames: ["a", "a"] }), {
    message: "Expected distinct label names for g, got a,a",
  });
  assert.throws(
    () => registry.histogram({ name: "h", help: "x", labelNames: ["le"], buckets: [1] }),
    { message: 'Expected a usable label name for h, got "le"' },
  );
  assert.throws(() => registry.histogram({ name: "h", help: "x", buckets: [1, 1] }), {
    message: "Expected finite, strictly ascending buckets for h, got 1, 1",
  });
  const histogram = registry.histogram({ name: "h", help: "x", buckets: [1] });
  assert.throws(() => histogram.observe(NaN), { message: "Expected a number for h, got NaN" });
  const gauge = registry.gauge({ name: "g2", help: "x", labelNames: ["a"] });
  assert.throws(() => gauge.set({ a: "1" } as never as number), {
    message: "Expected a number after the labels, got nothing",
  });
});

// ---------------------------------------------------------------------------
// The agent's metrics.

function resource(overrides: Partial<DrbdResource> = {}): DrbdResource {
  return {
    name: "pvc-1",
    role: "Secondary",
    suspended: { user: false, noData: false, fencing: false, quorum: false },
    forceIoFailures: false,
    mayPromote: true,
    promotionScore: 10101,
    devices: [
      { volume: 0, minor: 1000, diskState: "UpToDate", client: false, open: false, quorum: true },
    ],
    connections: [
      {
        peerNodeId: 1,
        name: "node-b",
        connectionState: "Connecting",
        peerRole: "Unknown",
        peerDevices: [],
      },
    ],
    config: undefined,
    ...overrides,
  };
}

function sample(resources: DrbdResource[], overrides: Partial<DrbdSample> = {}): DrbdSample {
  return {
    availability: "ok",
    message: undefined,
    resources,
    confirmedAt: 1_700_000_000_500,
    ...overrides,
  };
}

/** The sample lines of the families whose name starts with `prefix`, without HELP/TYPE. */
function samples(text: string, prefix: string): string[] {
  return text.split("\n").filter((line) => line.startsWith(prefix));
}

/** The `# TYPE` lines of a render, as "name type". */
function types(text: string): string[] {
  return text.split("\n").filter((line) => line.startsWith("# TYPE ")).map((line) =>
    line.slice("# TYPE ".length)
  );
}

Deno.test("the agent's metrics, as rendered before anything happened", () => {
  const metrics = createAgentMetrics();
  const text = metrics.registry.render();
  assert.deepEqual(types(text), [
    "ha_controller_actions_total counter",
    "ha_controller_build_info gauge",
    "ha_controller_caches_synced gauge",
    "ha_controller_failover_reaction_seconds histogram",
    "ha_controller_loop_cycle_seconds histogram",
  ]);
  assert.deepEqual(samples(text, "ha_controller_build_info"), [
    'ha_controller_build_info{version="0.1.0"} 1',
  ]);
  assert.deepEqual(samples(text, "ha_controller_caches_synced"), ["ha_controller_caches_synced 0"]);
  assert.deepEqual(samples(text, 'ha_controller_actions_total{kind="evict-pod"'), [
    'ha_controller_actions_total{kind="evict-pod",result="already"} 0',
    'ha_controller_actions_total{kind="evict-pod",result="done"} 0',
    'ha_controller_actions_total{kind="evict-pod",result="failed"} 0',
  ]);
  assert.equal(samples(text, "ha_controller_actions_total").length, 6 * 3);
});

Deno.test("every metric the agent promises exists once set, with its type", () => {
  const metrics = createAgentMetrics();
  updateDrbdMetrics(metrics, sample([resource()]));
  metrics.actions.inc({ kind: "evict-pod", result: "done" });
  metrics.failOverReaction.observe(6.2);
  metrics.drbdsetupErrors.inc({ command: "events2" });
  metrics.apiRequests.inc({ verb: "list", code: "200" });
  metrics.loopCycleSeconds.observe(0.002);
  metrics.lastGoodCycle.set(1_700_000_001);
  setHeldBack(metrics, ["caches-not-synced"]);
  metrics.cachesSynced.set(1);
  updateMemoryMetrics(metrics, {
    rss: 62_000_000,
    heapTotal: 9_000_000,
    heapUsed: 7_500_000,
    external: 1_200_000,
  });
  assert.deepEqual(types(metrics.registry.render()), [
    "drbd_connection_state gauge",
    "drbd_device_quorum gauge",
    "drbd_device_state gauge",
    "drbd_resource_forceiofailures gauge",
    "drbd_resource_maypromote gauge",
    "drbd_resource_promotionscore gauge",
    "drbd_resource_resources gauge",
    "drbd_resource_role gauge",
    "drbd_resource_suspended gauge",
    "ha_controller_actions_total counter",
    "ha_controller_api_requests_total counter",
    "ha_controller_build_info gauge",
    "ha_controller_caches_synced gauge",
    "ha_controller_drbd_availability gauge",
    "ha_controller_drbd_confirmed_timestamp_seconds gauge",
    "ha_controller_drbdsetup_errors_total counter",
    "ha_controller_failover_reaction_seconds histogram",
    "ha_controller_heap_bytes gauge",
    "ha_controller_held_back gauge",
    "ha_controller_last_good_cycle_timestamp_seconds gauge",
    "ha_controller_loop_cycle_seconds histogram",
    "process_resident_memory_bytes gauge",
  ]);
  const text = metrics.registry.render();
  assert.deepEqual(samples(text, "process_resident_memory_bytes"), [
    "process_resident_memory_bytes 62000000",
  ]);
  assert.deepEqual(samples(text, "ha_controller_heap_bytes"), [
    'ha_controller_heap_bytes{kind="external"} 1200000',
    'ha_controller_heap_bytes{kind="total"} 9000000',
    'ha_controller_heap_bytes{kind="used"} 7500000',
  ]);
  assert.deepEqual(samples(text, "ha_controller_api_requests_total"), [
    'ha_controller_api_requests_total{verb="list",code="200"} 1',
  ]);
  assert.deepEqual(samples(text, "ha_controller_drbdsetup_errors_total"), [
    'ha_controller_drbdsetup_errors_total{command="events2"} 1',
  ]);
  assert.deepEqual(samples(text, "ha_controller_held_back"), [
    'ha_controller_held_back{reason="caches-not-synced"} 1',
  ]);
  assert.deepEqual(samples(text, "ha_controller_last_good_cycle_timestamp_seconds"), [
    "ha_controller_last_good_cycle_timestamp_seconds 1700000001",
  ]);
  assert.deepEqual(samples(text, "ha_controller_failover_reaction_seconds_"), [
    'ha_controller_failover_reaction_seconds_bucket{le="0.005"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="0.01"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="0.025"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="0.05"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="0.1"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="0.25"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="0.5"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="1"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="2"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="3"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="5"} 0',
    'ha_controller_failover_reaction_seconds_bucket{le="7.5"} 1',
    'ha_controller_failover_reaction_seconds_bucket{le="10"} 1',
    'ha_controller_failover_reaction_seconds_bucket{le="15"} 1',
    'ha_controller_failover_reaction_seconds_bucket{le="20"} 1',
    'ha_controller_failover_reaction_seconds_bucket{le="30"} 1',
    'ha_controller_failover_reaction_seconds_bucket{le="45"} 1',
    'ha_controller_failover_reaction_seconds_bucket{le="60"} 1',
    'ha_controller_failover_reaction_seconds_bucket{le="+Inf"} 1',
    "ha_controller_failover_reaction_seconds_sum 6.2",
    "ha_controller_failover_reaction_seconds_count 1",
  ]);
  assert.equal(failOverReactionBuckets[0], 0.005);
  assert.equal(failOverReactionBuckets.at(-1), 60);
});

Deno.test("DRBD gauges show one resource the way drbd-reactor names them", () => {
  const metrics = createAgentMetrics();
  updateDrbdMetrics(
    metrics,
    sample([resource({
      suspended: { user: false, noData: false, fencing: false, quorum: true },
    })]),
  );
  const text = metrics.registry.render();
  const drbd = text.slice(0, text.indexOf("# HELP ha_controller_"));
  assert.equal(
    drbd,
    `# HELP drbd_connection_state State of the DRBD connection to a peer: 1 for the current state
# TYPE drbd_connection_state gauge
drbd_connection_state{name="pvc-1",conn_name="node-b",peer_node_id="1",drbd_connection_state="BrokenPipe"} 0
drbd_connection_state{name="pvc-1",conn_name="node-b",peer_node_id="1",drbd_connection_state="Connected"} 0
drbd_connection_state{name="pvc-1",conn_name="node-b",peer_node_id="1",drbd_connection_state="Connecting"} 1
drbd_connection_state{name="pvc-1",conn_name="node-b",peer_node_id="1",drbd_connection_state="Disconnecting"} 0
drbd_connection_state{name="pvc-1",conn_name="node-b",peer_node_id="1",drbd_connection_state="NetworkFailure"} 0
drbd_connection_state{name="pvc-1",conn_name="node-b",peer_node_id="1",drbd_connection_state="ProtocolError"} 0
drbd_connection_state{name="pvc-1",conn_name="node-b",peer_node_id="1",drbd_connection_state="StandAlone"} 0
drbd_connection_state{name="pvc-1",conn_name="node-b",peer_node_id="1",drbd_connection_state="TearDown"} 0
drbd_connection_state{name="pvc-1",conn_name="node-b",peer_node_id="1",drbd_connection_state="Timeout"} 0
drbd_connection_state{name="pvc-1",conn_name="node-b",peer_node_id="1",drbd_connection_state="Unconnected"} 0
# HELP drbd_device_quorum 1 when the DRBD volume has quorum
# TYPE drbd_device_quorum gauge
drbd_device_quorum{name="pvc-1",volume="0",minor="1000"} 1
# HELP drbd_device_state Local disk state of the DRBD volume: 1 for the current state
# TYPE drbd_device_state gauge
drbd_device_state{name="pvc-1",volume="0",minor="1000",drbd_device_state="Attaching"} 0
drbd_device_state{name="pvc-1",volume="0",minor="1000",drbd_device_state="Consistent"} 0
drbd_device_state{name="pvc-1",volume="0",minor="1000",drbd_device_state="DUnknown"} 0
drbd_device_state{name="pvc-1",volume="0",minor="1000",drbd_device_state="Detaching"} 0
drbd_device_state{name="pvc-1",volume="0",minor="1000",drbd_device_state="Diskless"} 0
drbd_device_state{name="pvc-1",volume="0",minor="1000",drbd_device_state="Failed"} 0
drbd_device_state{name="pvc-1",volume="0",minor="1000",drbd_device_state="Inconsistent"} 0
drbd_device_state{name="pvc-1",volume="0",minor="1000",drbd_device_state="Negotiating"} 0
drbd_device_state{name="pvc-1",volume="0",minor="1000",drbd_device_state="Outdated"} 0
drbd_device_state{name="pvc-1",volume="0",minor="1000",drbd_device_state="UpToDate"} 1
# HELP drbd_resource_forceiofailures 1 while the DRBD resource fails all I/O on purpose, as after a forced demotion
# TYPE drbd_resource_forceiofailures gauge
drbd_resource_forceiofailures{name="pvc-1"} 0
# HELP drbd_resource_maypromote 1 when the DRBD resource may be promoted to Primary on this node
# TYPE drbd_resource_maypromote gauge
drbd_resource_maypromote{name="pvc-1"} 1
# HELP drbd_resource_promotionscore Promotion score of the DRBD resource on this node; higher is better
# TYPE drbd_resource_promotionscore gauge
drbd_resource_promotionscore{name="pvc-1"} 10101
# HELP drbd_resource_resources Number of DRBD resources on this node
# TYPE drbd_resource_resources gauge
drbd_resource_resources 1
# HELP drbd_resource_role Role of the DRBD resource on this node: 1 for the current role
# TYPE drbd_resource_role gauge
drbd_resource_role{name="pvc-1",drbd_resource_role="Primary"} 0
drbd_resource_role{name="pvc-1",drbd_resource_role="Secondary"} 1
drbd_resource_role{name="pvc-1",drbd_resource_role="Unknown"} 0
# HELP drbd_resource_suspended 1 when I/O on the DRBD resource is suspended, for any reason
# TYPE drbd_resource_suspended gauge
drbd_resource_suspended{name="pvc-1"} 1
`,
  );
  assert.deepEqual(samples(text, "ha_controller_drbd_"), [
    'ha_controller_drbd_availability{availability="error"} 0',
    'ha_controller_drbd_availability{availability="not-loaded"} 0',
    'ha_controller_drbd_availability{availability="ok"} 1',
    "ha_controller_drbd_confirmed_timestamp_seconds 1700000000.5",
  ]);
});

Deno.test("DRBD gauges are rebuilt each time: a vanished resource disappears", () => {
  const metrics = createAgentMetrics();
  updateDrbdMetrics(metrics, sample([resource({ name: "pvc-1" }), resource({ name: "pvc-2" })]));
  assert.equal(metrics.drbdResources.get(), 2);
  updateDrbdMetrics(
    metrics,
    sample([resource({ name: "pvc-2", role: "Primary", mayPromote: false })]),
  );
  const text = metrics.registry.render();
  assert.ok(!text.includes('name="pvc-1"'), "no series of pvc-1 is left");
  assert.deepEqual(samples(text, "drbd_resource_role"), [
    'drbd_resource_role{name="pvc-2",drbd_resource_role="Primary"} 1',
    'drbd_resource_role{name="pvc-2",drbd_resource_role="Secondary"} 0',
    'drbd_resource_role{name="pvc-2",drbd_resource_role="Unknown"} 0',
  ]);
  assert.deepEqual(samples(text, "drbd_resource_maypromote"), [
    'drbd_resource_maypromote{name="pvc-2"} 0',
  ]);
  assert.deepEqual(samples(text, "drbd_resource_resources"), ["drbd_resource_resources 1"]);
});

Deno.test("an unknown DRBD state gets its own series; an unknown may-promote is left out", () => {
  const metrics = createAgentMetrics();
  updateDrbdMetrics(
    metrics,
    sample([resource({
      mayPromote: undefined,
      forceIoFailures: true,
      connections: [{
        peerNodeId: 2,
        name: "node-c",
        connectionState: "?",
        peerRole: "Unknown",
        peerDevices: [],
      }],
    })]),
  );
  const text = metrics.registry.render();
  assert.deepEqual(samples(text, "drbd_resource_maypromote"), []);
  assert.deepEqual(samples(text, "drbd_resource_forceiofailures"), [
    'drbd_resource_forceiofailures{name="pvc-1"} 1',
  ]);
  const connection = samples(text, "drbd_connection_state");
  assert.equal(connection.length, 11);
  assert.equal(
    connection[0],
    'drbd_connection_state{name="pvc-1",conn_name="node-c",peer_node_id="2",drbd_connection_state="?"} 1',
  );
  assert.ok(connection.slice(1).every((line) => line.endsWith(" 0")));
});

Deno.test("unreadable DRBD state hides the DRBD gauges; DRBD not loaded shows zero resources", () => {
  const metrics = createAgentMetrics();
  updateDrbdMetrics(metrics, sample([resource()]));
  updateDrbdMetrics(
    metrics,
    sample([], { availability: "error", message: "drbdsetup failed", confirmedAt: 0 }),
  );
  let text = metrics.registry.render();
  assert.deepEqual(samples(text, "drbd_"), []);
  assert.deepEqual(samples(text, "ha_controller_drbd_"), [
    'ha_controller_drbd_availability{availability="error"} 1',
    'ha_controller_drbd_availability{availability="not-loaded"} 0',
    'ha_controller_drbd_availability{availability="ok"} 0',
    "ha_controller_drbd_confirmed_timestamp_seconds 1700000000.5",
  ]);

  updateDrbdMetrics(
    metrics,
    sample([], { availability: "not-loaded", confirmedAt: 1_700_000_010_000 }),
  );
  text = metrics.registry.render();
  assert.deepEqual(samples(text, "drbd_"), ["drbd_resource_resources 0"]);
  assert.deepEqual(samples(text, "ha_controller_drbd_"), [
    'ha_controller_drbd_availability{availability="error"} 0',
    'ha_controller_drbd_availability{availability="not-loaded"} 1',
    'ha_controller_drbd_availability{availability="ok"} 0',
    "ha_controller_drbd_confirmed_timestamp_seconds 1700000010",
  ]);
});

Deno.test("held back shows the current reasons only", () => {
  const metrics = createAgentMetrics();
  setHeldBack(metrics, ["paused"]);
  setHeldBack(metrics, ["drbd-unavailable", "paused"]);
  assert.deepEqual(samples(metrics.registry.render(), "ha_controller_held_back"), [
    'ha_controller_held_back{reason="drbd-unavailable"} 1',
    'ha_controller_held_back{reason="paused"} 1',
  ]);
  setHeldBack(metrics, []);
  assert.deepEqual(samples(metrics.registry.render(), "ha_controller_held_back"), []);
});
