/**
 * A small Prometheus registry (counters, gauges, histograms with labels,
 * text exposition format 0.0.4) and the agent's metrics, defined in one place.
 *
 * The DRBD gauges reuse the names and labels of drbd-reactor's prometheus
 * plugin, so dashboards and alerts written for it work on this agent's
 * `/metrics` too. They are rebuilt from each {@link DrbdSample} by
 * {@link updateDrbdMetrics}, so a resource that disappears stops being exported.
 *
 * @module
 */

import type { ActionResult } from "./act.ts";
import type { Action } from "./decide/types.ts";
import type { DrbdAvailability, DrbdSample } from "./drbd/model.ts";
import { version } from "./version.ts";

/** The value of the HTTP Content-Type header for {@link Registry.render}'s output. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8";

/** Label values of one series, keyed by label name. */
export type LabelSet<L extends string> = Readonly<Record<L, string>>;

/** What every metric is declared with. */
export interface MetricOptions<L extends string> {
  /** Metric name, e.g. `ha_controller_actions_total`. */
  name: string;
  /** One line saying what is measured. */
  help: string;
  /** Label names, in the order they are rendered; none by default. */
  labelNames?: readonly L[];
}

/** What a histogram is declared with. */
export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Upper bounds of the buckets, ascending; `+Inf` is added. */
  buckets: readonly number[];
}

/** Count and sum of one histogram series. */
export interface HistogramValue {
  /** Number of observations. */
  count: number;
  /** Sum of the observed values. */
  sum: number;
}

const metricNamePattern = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelNamePattern = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The part every metric type shares: name, help, label names and the series by key. */
abstract class Family<L extends string, S> {
  /** Metric name. */
  readonly name: string;
  /** Help text. */
  readonly help: string;
  /** Label names in render order. */
  readonly labelNames: readonly L[];
  /** Series by {@link Family.key}, with their label values in label-name order. */
  protected readonly series = new Map<string, { values: string[]; state: S }>();

  constructor(options: MetricOptions<L>, reservedLabels: readonly string[]) {
    if (!metricNamePattern.test(options.name)) {
      throw new Error(
        `Expected a metric name matching ${metricNamePattern}, got "${options.name}"`,
      );
    }
    const labelNames = options.labelNames ?? [];
    for (const label of labelNames) {
      if (
        !labelNamePattern.test(label) || label.startsWith("__") || reservedLabels.includes(label)
      ) {
        throw new Error(`Expected a usable label name for ${options.name}, got "${label}"`);
      }
    }
    if (new Set(labelNames).size !== labelNames.length) {
      throw new Error(`Expected distinct label names for ${options.name}, got ${labelNames}`);
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = labelNames;
  }

  /** The Prometheus type name. */
  abstract readonly type: "counter" | "gauge" | "histogram";

  /** The state of a new series. */
  protected abstract initial(): S;

  /** Appends the sample lines of one series. */
  protected abstract renderSeries(lines: string[], values: string[], state: S): void;

  /** Label values in label-name order; throws unless `labels` has exactly the declared names. */
  protected valuesOf(labels: LabelSet<L>): string[] {
    const given = Object.keys(labels);
    const complete = given.length === this.labelNames.length &&
      this.labelNames.every((label) => typeof labels[label] === "string");
    if (!complete) {
      throw new Error(
        `Expected labels {${this.labelNames.join(", ")}} for ${this.name}, got {${
          given.join(", ")
        }}`,
      );
    }
    return this.labelNames.map((label) => labels[label]);
  }

  /** The state of the series with these labels, created when missing. */
  protected stateOf(labels: LabelSet<L>): S {
    const values = this.valuesOf(labels);
    const key = JSON.stringify(values);
    let entry = this.series.get(key);
    if (entry === undefined) {
      entry = { values, state: this.initial() };
      this.series.set(key, entry);
    }
    return entry.state;
  }

  /** The state of the series with these labels, or undefined. */
  protected existingStateOf(labels: LabelSet<L>): S | undefined {
    return this.series.get(JSON.stringify(this.valuesOf(labels)))?.state;
  }

  /** Removes the series with these labels, if it exists. */
  remove(labels: LabelSet<L>): void {
    this.series.delete(JSON.stringify(this.valuesOf(labels)));
  }

  /** Appends HELP, TYPE and every series, in label-value order; nothing when there are no series. */
  render(lines: string[]): void {
    if (this.series.size === 0) return;
    lines.push(`# HELP ${this.name} ${escapeHelp(this.help)}`);
    lines.push(`# TYPE ${this.name} ${this.type}`);
    const entries = [...this.series.values()].sort((a, b) => compareValues(a.values, b.values));
    for (const entry of entries) this.renderSeries(lines, entry.values, entry.state);
  }

  /** `{a="x",b="y"}` for these values plus any extra pairs; empty when there are none. */
  protected labelText(values: string[], extra: [string, string][] = []): string {
    const pairs: [string, string][] = this.labelNames.map((label, i) => [label, values[i]]);
    pairs.push(...extra);
    if (pairs.length === 0) return "";
    return `{${pairs.map(([label, value]) => `${label}="${escapeLabelValue(value)}"`).join(",")}}`;
  }
}

/** Splits `set(value)` / `set(labels, value)` style arguments. */
function labelsAndNumber<L extends string>(
  first: LabelSet<L> | number | undefined,
  second: number | undefined,
  fallback: number | undefined,
): [LabelSet<L>, number] {
  if (typeof first === "number") return [{} as LabelSet<L>, first];
  const value = second ?? fallback;
  if (value === undefined) throw new Error("Expected a number after the labels, got nothing");
  return [first ?? ({} as LabelSet<L>), value];
}

/** A value that only goes up (until the process restarts). */
export class Counter<L extends string = never> extends Family<L, { value: number }> {
  /** Prometheus type. */
  readonly type = "counter";

  /** Declares a counter; use {@link Registry.counter}. */
  constructor(options: MetricOptions<L>) {
    super(options, []);
    if (this.labelNames.length === 0) this.stateOf({} as LabelSet<L>);
  }

  protected initial(): { value: number } {
    return { value: 0 };
  }

  /** Adds `amount` (default 1) to the series without labels. */
  inc(amount?: number): void;
  /** Adds `amount` (default 1) to the series with these labels. */
  inc(labels: LabelSet<L>, amount?: number): void;
  inc(first?: LabelSet<L> | number, second?: number): void {
    const [labels, amount] = labelsAndNumber(first, second, 1);
    if (!Number.isFinite(amount) || amount < 0) {
      throw new Error(`Expected a finite amount of 0 or more for ${this.name}, got ${amount}`);
    }
    this.stateOf(labels).value += amount;
  }

  /** The current value, or undefined when the series does not exist. */
  get(labels: LabelSet<L> = {} as LabelSet<L>): number | undefined {
    return this.existingStateOf(labels)?.value;
  }

  protected renderSeries(lines: string[], values: string[], state: { value: number }): void {
    lines.push(`${this.name}${this.labelText(values)} ${formatNumber(state.value)}`);
  }
}

/**
 * A value that goes up and down. {@link Gauge.reset} drops every series, so a
 * gauge family can be rebuilt from scratch (reset, then set what exists now).
 */
export class Gauge<L extends string = never> extends Family<L, { value: number }> {
  /** Prometheus type. */
  readonly type = "gauge";

  /** Declares a gauge; use {@link Registry.gauge}. */
  constructor(options: MetricOptions<L>) {
    super(options, []);
    if (this.labelNames.length === 0) this.stateOf({} as LabelSet<L>);
  }

  protected initial(): { value: number } {
    return { value: 0 };
  }

  /** Sets the series without labels. */
  set(value: number): void;
  /** Sets the series with these labels. */
  set(labels: LabelSet<L>, value: number): void;
  set(first: LabelSet<L> | number, second?: number): void {
    const [labels, value] = labelsAndNumber(first, second, undefined);
    this.stateOf(labels).value = value;
  }

  /** The current value, or undefined when the series does not exist. */
  get(labels: LabelSet<L> = {} as LabelSet<L>): number | undefined {
    return this.existingStateOf(labels)?.value;
  }

  /** Drops every series (also the one without labels) until the next `set`. */
  reset(): void {
    this.series.clear();
  }

  protected renderSeries(lines: string[], values: string[], state: { value: number }): void {
    lines.push(`${this.name}${this.labelText(values)} ${formatNumber(state.value)}`);
  }
}

/** Per-series state of a histogram: observations per bucket (not cumulative), sum, count. */
interface HistogramState {
  bucketCounts: number[];
  sum: number;
  count: number;
}

/** Observations counted in buckets by upper bound, with their sum and count. */
export class Histogram<L extends string = never> extends Family<L, HistogramState> {
  /** Prometheus type. */
  readonly type = "histogram";
  /** Upper bounds, ascending, without `+Inf`. */
  readonly buckets: readonly number[];

  /** Declares a histogram; use {@link Registry.histogram}. */
  constructor(options: HistogramOptions<L>) {
    super(options, ["le"]);
    const buckets = options.buckets;
    for (const [i, bound] of buckets.entries()) {
      if (!Number.isFinite(bound) || (i > 0 && bound <= buckets[i - 1])) {
        throw new Error(
          `Expected finite, strictly ascending buckets for ${this.name}, got ${buckets.join(", ")}`,
        );
      }
    }
    this.buckets = [...buckets];
    if (this.labelNames.length === 0) this.stateOf({} as LabelSet<L>);
  }

  protected initial(): HistogramState {
    return { bucketCounts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  /** Records one value in the series without labels. */
  observe(value: number): void;
  /** Records one value in the series with these labels. */
  observe(labels: LabelSet<L>, value: number): void;
  observe(first: LabelSet<L> | number, second?: number): void {
    const [labels, value] = labelsAndNumber(first, second, undefined);
    if (Number.isNaN(value)) throw new Error(`Expected a number for ${this.name}, got NaN`);
    const state = this.stateOf(labels);
    const bucket = this.buckets.findIndex((bound) => value <= bound);
    if (bucket >= 0) state.bucketCounts[bucket] += 1;
    state.sum += value;
    state.count += 1;
  }

  /** Count and sum, or undefined when the series does not exist. */
  get(labels: LabelSet<L> = {} as LabelSet<L>): HistogramValue | undefined {
    const state = this.existingStateOf(labels);
    return state === undefined ? undefined : { count: state.count, sum: state.sum };
  }

  protected renderSeries(lines: string[], values: string[], state: HistogramState): void {
    let cumulative = 0;
    for (const [i, bound] of this.buckets.entries()) {
      cumulative += state.bucketCounts[i];
      const labels = this.labelText(values, [["le", formatNumber(bound)]]);
      lines.push(`${this.name}_bucket${labels} ${cumulative}`);
    }
    lines.push(`${this.name}_bucket${this.labelText(values, [["le", "+Inf"]])} ${state.count}`);
    lines.push(`${this.name}_sum${this.labelText(values)} ${formatNumber(state.sum)}`);
    lines.push(`${this.name}_count${this.labelText(values)} ${state.count}`);
  }
}

/** Any metric a registry holds. */
type AnyFamily = Counter<string> | Gauge<string> | Histogram<string>;

/** A set of metrics rendered together; each name may be registered once. */
export class Registry {
  readonly #families = new Map<string, AnyFamily>();

  /** Declares and registers a counter. */
  counter<L extends string = never>(options: MetricOptions<L>): Counter<L> {
    return this.#add(new Counter(options));
  }

  /** Declares and registers a gauge. */
  gauge<L extends string = never>(options: MetricOptions<L>): Gauge<L> {
    return this.#add(new Gauge(options));
  }

  /** Declares and registers a histogram. */
  histogram<L extends string = never>(options: HistogramOptions<L>): Histogram<L> {
    return this.#add(new Histogram(options));
  }

  #add<F extends { name: string }>(family: F): F {
    if (this.#families.has(family.name)) {
      throw new Error(`Expected a new metric name, got "${family.name}" a second time`);
    }
    this.#families.set(family.name, family as unknown as AnyFamily);
    return family;
  }

  /**
   * Every metric in text exposition format 0.0.4: families sorted by name,
   * series sorted by label values (numbers numerically), families without
   * series left out. Empty when nothing is left.
   */
  render(): string {
    const lines: string[] = [];
    const names = [...this.#families.keys()].sort();
    for (const name of names) this.#families.get(name)!.render(lines);
    return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
  }
}

/** A sample value as Prometheus writes it: `NaN`, `+Inf`, `-Inf`, or the shortest decimal. */
function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabelValue(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** Orders label values pairwise; two whole numbers compare by value (volume 2 before 10). */
function compareValues(a: string[], b: string[]): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    if (/^\d+$/.test(a[i]) && /^\d+$/.test(b[i])) return Number(a[i]) - Number(b[i]);
    return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// The agent's metrics.

/** DRBD roles exported as one series each (drbd-reactor style enum gauge). */
export const drbdRoles = ["Primary", "Secondary", "Unknown"] as const;

/** DRBD disk states exported as one series each. */
export const drbdDiskStates = [
  "Diskless",
  "Attaching",
  "Detaching",
  "Failed",
  "Negotiating",
  "Inconsistent",
  "Outdated",
  "DUnknown",
  "Consistent",
  "UpToDate",
] as const;

/** DRBD connection states exported as one series each. */
export const drbdConnectionStates = [
  "StandAlone",
  "Disconnecting",
  "Unconnected",
  "Timeout",
  "BrokenPipe",
  "NetworkFailure",
  "ProtocolError",
  "TearDown",
  "Connecting",
  "Connected",
] as const;

/** Every availability a {@link DrbdSample} can report. */
export const drbdAvailabilities: readonly DrbdAvailability[] = ["ok", "not-loaded", "error"];

/** Every kind of action, so their counters exist (at 0) before the first action. */
export const actionKinds: readonly Action["kind"][] = [
  "taint-node",
  "untaint-node",
  "evict-pod",
  "force-delete-pod",
  "delete-volume-attachment",
  "force-demote",
];

/** Action results whose counters exist (at 0) from the start. */
export const actionResultsShownFromStart: readonly ActionResult[] = ["done", "already", "failed"];

/** Bucket bounds (seconds) of the fail-over reaction time: 5 ms to 60 s. */
export const failOverReactionBuckets: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2,
  3,
  5,
  7.5,
  10,
  15,
  20,
  30,
  45,
  60,
];

/** Bucket bounds (seconds) of one decision cycle: 1 ms to 10 s. */
export const loopCycleBuckets: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** Handles of every metric the agent exports. */
export interface AgentMetrics {
  /** The registry to render for `/metrics`. */
  registry: Registry;

  /** `drbd_resource_resources`: number of DRBD resources on this node. */
  drbdResources: Gauge;
  /** `drbd_resource_role{name,drbd_resource_role}`: 1 for the current role, 0 for the others. */
  drbdResourceRole: Gauge<"name" | "drbd_resource_role">;
  /** `drbd_resource_suspended{name}`: 1 when I/O is suspended for any reason. */
  drbdResourceSuspended: Gauge<"name">;
  /** `drbd_resource_maypromote{name}`: 1 when the resource may be promoted. */
  drbdResourceMayPromote: Gauge<"name">;
  /** `drbd_resource_promotionscore{name}`: drbdsetup's promotion score. */
  drbdResourcePromotionScore: Gauge<"name">;
  /** `drbd_resource_forceiofailures{name}`: 1 while all I/O is failed on purpose. */
  drbdResourceForceIoFailures: Gauge<"name">;
  /** `drbd_device_quorum{name,volume,minor}`: 1 when the volume has quorum. */
  drbdDeviceQuorum: Gauge<"name" | "volume" | "minor">;
  /** `drbd_device_state{name,volume,minor,drbd_device_state}`: 1 for the current disk state. */
  drbdDeviceState: Gauge<"name" | "volume" | "minor" | "drbd_device_state">;
  /** `drbd_connection_state{name,conn_name,peer_node_id,drbd_connection_state}`. */
  drbdConnectionState: Gauge<"name" | "conn_name" | "peer_node_id" | "drbd_connection_state">;

  /** `ha_controller_build_info{version}`: always 1. */
  buildInfo: Gauge<"version">;
  /** `ha_controller_drbd_availability{availability}`: 1 for the current availability. */
  drbdAvailability: Gauge<"availability">;
  /** `ha_controller_drbd_confirmed_timestamp_seconds`: when the DRBD state was last complete. */
  drbdConfirmedTimestamp: Gauge;
  /** `ha_controller_actions_total{kind,result}`: actions carried out, by outcome. */
  actions: Counter<"kind" | "result">;
  /** `ha_controller_failover_reaction_seconds`: first sight of a lost peer to fail-over action. */
  failOverReaction: Histogram;
  /** `ha_controller_drbdsetup_errors_total{command}`: failed drbdsetup runs. */
  drbdsetupErrors: Counter<"command">;
  /** `ha_controller_api_requests_total{verb,code}`: Kubernetes API requests by answer. */
  apiRequests: Counter<"verb" | "code">;
  /** `ha_controller_loop_cycle_seconds`: duration of one decision cycle. */
  loopCycleSeconds: Histogram;
  /** `ha_controller_last_good_cycle_timestamp_seconds`: end of the last complete cycle. */
  lastGoodCycle: Gauge;
  /** `ha_controller_held_back{reason}`: 1 while the agent does nothing on purpose. */
  heldBack: Gauge<"reason">;
  /** `ha_controller_caches_synced`: 1 once every Kubernetes cache has listed and watches. */
  cachesSynced: Gauge;
  /** `process_resident_memory_bytes`: the process's RSS, read at scrape time. */
  residentMemory: Gauge;
  /** `ha_controller_heap_bytes{kind}`: V8 heap `total` and `used`, and `external` memory. */
  heap: Gauge<"kind">;
}

/**
 * Registers every metric of the agent in a new registry and returns the
 * handles. The action counters start at 0 for every kind with the results
 * `done`, `already` and `failed`; the DRBD gauges and the timestamps are
 * absent until first set.
 */
export function createAgentMetrics(): AgentMetrics {
  const registry = new Registry();
  const resource = ["name"] as const;
  const device = ["name", "volume", "minor"] as const;

  const metrics: AgentMetrics = {
    registry,
    drbdResources: registry.gauge({
      name: "drbd_resource_resources",
      help: "Number of DRBD resources on this node",
    }),
    drbdResourceRole: registry.gauge({
      name: "drbd_resource_role",
      help: "Role of the DRBD resource on this node: 1 for the current role",
      labelNames: ["name", "drbd_resource_role"],
    }),
    drbdResourceSuspended: registry.gauge({
      name: "drbd_resource_suspended",
      help: "1 when I/O on the DRBD resource is suspended, for any reason",
      labelNames: resource,
    }),
    drbdResourceMayPromote: registry.gauge({
      name: "drbd_resource_maypromote",
      help: "1 when the DRBD resource may be promoted to Primary on this node",
      labelNames: resource,
    }),
    drbdResourcePromotionScore: registry.gauge({
      name: "drbd_resource_promotionscore",
      help: "Promotion score of the DRBD resource on this node; higher is better",
      labelNames: resource,
    }),
    drbdResourceForceIoFailures: registry.gauge({
      name: "drbd_resource_forceiofailures",
      help: "1 while the DRBD resource fails all I/O on purpose, as after a forced demotion",
      labelNames: resource,
    }),
    drbdDeviceQuorum: registry.gauge({
      name: "drbd_device_quorum",
      help: "1 when the DRBD volume has quorum",
      labelNames: device,
    }),
    drbdDeviceState: registry.gauge({
      name: "drbd_device_state",
      help: "Local disk state of the DRBD volume: 1 for the current state",
      labelNames: [...device, "drbd_device_state"],
    }),
    drbdConnectionState: registry.gauge({
      name: "drbd_connection_state",
      help: "State of the DRBD connection to a peer: 1 for the current state",
      labelNames: ["name", "conn_name", "peer_node_id", "drbd_connection_state"],
    }),

    buildInfo: registry.gauge({
      name: "ha_controller_build_info",
      help: "Always 1; the version label says which ha-controller runs",
      labelNames: ["version"],
    }),
    drbdAvailability: registry.gauge({
      name: "ha_controller_drbd_availability",
      help: "Whether drbdsetup could be read (ok), DRBD is not loaded, or reading failed (error)",
      labelNames: ["availability"],
    }),
    drbdConfirmedTimestamp: registry.gauge({
      name: "ha_controller_drbd_confirmed_timestamp_seconds",
      help: "Unix time when the DRBD state was last confirmed complete",
    }),
    actions: registry.counter({
      name: "ha_controller_actions_total",
      help: "Actions the agent carried out (or printed in dry-run), by kind and result",
      labelNames: ["kind", "result"],
    }),
    failOverReaction: registry.histogram({
      name: "ha_controller_failover_reaction_seconds",
      help: "Seconds from first seeing a fail-over condition to issuing the fail-over action",
      buckets: failOverReactionBuckets,
    }),
    drbdsetupErrors: registry.counter({
      name: "ha_controller_drbdsetup_errors_total",
      help: "drbdsetup runs that failed or printed something unreadable, by subcommand",
      labelNames: ["command"],
    }),
    apiRequests: registry.counter({
      name: "ha_controller_api_requests_total",
      help: "Kubernetes API requests by verb and HTTP status code (error: no answer)",
      labelNames: ["verb", "code"],
    }),
    loopCycleSeconds: registry.histogram({
      name: "ha_controller_loop_cycle_seconds",
      help: "Seconds one decision cycle took, from snapshot to the end of its actions",
      buckets: loopCycleBuckets,
    }),
    lastGoodCycle: registry.gauge({
      name: "ha_controller_last_good_cycle_timestamp_seconds",
      help: "Unix time when the last cycle with complete data ended",
    }),
    heldBack: registry.gauge({
      name: "ha_controller_held_back",
      help: "1 while the agent does nothing on purpose, with the reason",
      labelNames: ["reason"],
    }),
    cachesSynced: registry.gauge({
      name: "ha_controller_caches_synced",
      help: "1 once every Kubernetes cache has listed and is watching",
    }),
    residentMemory: registry.gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size of the agent process in bytes",
    }),
    heap: registry.gauge({
      name: "ha_controller_heap_bytes",
      help:
        "JavaScript memory in bytes: V8 heap committed (total) and in use (used), and memory of buffers outside the heap (external)",
      labelNames: ["kind"],
    }),
  };

  metrics.buildInfo.set({ version }, 1);
  for (const kind of actionKinds) {
    for (const result of actionResultsShownFromStart) metrics.actions.inc({ kind, result }, 0);
  }
  // Until the first DRBD sample and the first good cycle there is nothing to say.
  metrics.drbdResources.reset();
  metrics.drbdConfirmedTimestamp.reset();
  metrics.lastGoodCycle.reset();
  metrics.residentMemory.reset();
  return metrics;
}

/**
 * Rebuilds every DRBD gauge from one sample: resources that are gone
 * disappear from `/metrics`. When the state could not be read (`error`) the
 * per-resource gauges and the resource count are left out rather than shown
 * as zero; when DRBD is not loaded the count is 0.
 */
export function updateDrbdMetrics(metrics: AgentMetrics, sample: DrbdSample): void {
  const gauges = [
    metrics.drbdResources,
    metrics.drbdResourceRole,
    metrics.drbdResourceSuspended,
    metrics.drbdResourceMayPromote,
    metrics.drbdResourcePromotionScore,
    metrics.drbdResourceForceIoFailures,
    metrics.drbdDeviceQuorum,
    metrics.drbdDeviceState,
    metrics.drbdConnectionState,
    metrics.drbdAvailability,
  ];
  for (const gauge of gauges) gauge.reset();

  for (const availability of drbdAvailabilities) {
    metrics.drbdAvailability.set({ availability }, availability === sample.availability ? 1 : 0);
  }
  if (sample.confirmedAt > 0) metrics.drbdConfirmedTimestamp.set(sample.confirmedAt / 1000);
  if (sample.availability === "error") return;

  metrics.drbdResources.set(sample.resources.length);
  for (const resource of sample.resources) {
    const name = resource.name;
    setEnum(drbdRoles, resource.role, (role, value) => {
      metrics.drbdResourceRole.set({ name, drbd_resource_role: role }, value);
    });
    const s = resource.suspended;
    metrics.drbdResourceSuspended.set({ name }, flag(s.user || s.noData || s.fencing || s.quorum));
    if (resource.mayPromote !== undefined) {
      metrics.drbdResourceMayPromote.set({ name }, flag(resource.mayPromote));
    }
    metrics.drbdResourcePromotionScore.set({ name }, resource.promotionScore);
    metrics.drbdResourceForceIoFailures.set({ name }, flag(resource.forceIoFailures));

    for (const device of resource.devices) {
      const labels = { name, volume: String(device.volume), minor: String(device.minor) };
      metrics.drbdDeviceQuorum.set(labels, flag(device.quorum));
      setEnum(drbdDiskStates, device.diskState, (state, value) => {
        metrics.drbdDeviceState.set({ ...labels, drbd_device_state: state }, value);
      });
    }
    for (const connection of resource.connections) {
      const labels = {
        name,
        conn_name: connection.name,
        peer_node_id: String(connection.peerNodeId),
      };
      setEnum(drbdConnectionStates, connection.connectionState, (state, value) => {
        metrics.drbdConnectionState.set({ ...labels, drbd_connection_state: state }, value);
      });
    }
  }
}

/**
 * Shows why the agent holds back (one series with value 1 per reason), or
 * nothing when it does not. Reasons are the decision's stable codes
 * (`own-node-unknown`, `caches-not-synced`, `drbd-unavailable`,
 * `drbd-stale`, `paused`), so the label set stays small.
 */
export function setHeldBack(metrics: AgentMetrics, codes: readonly string[]): void {
  metrics.heldBack.reset();
  for (const reason of codes) metrics.heldBack.set({ reason }, 1);
}

/** What {@linkcode updateMemoryMetrics} reads: `Deno.memoryUsage()`'s fields. */
export type MemoryUsage = Pick<Deno.MemoryUsage, "rss" | "heapTotal" | "heapUsed" | "external">;

/**
 * Sets the memory gauges, from `Deno.memoryUsage()` unless given; the agent
 * calls it when `/metrics` is scraped.
 */
export function updateMemoryMetrics(
  metrics: AgentMetrics,
  usage: MemoryUsage = Deno.memoryUsage(),
): void {
  metrics.residentMemory.set(usage.rss);
  metrics.heap.set({ kind: "total" }, usage.heapTotal);
  metrics.heap.set({ kind: "used" }, usage.heapUsed);
  metrics.heap.set({ kind: "external" }, usage.external);
}

/** One series per known state, 1 for the current one; an unknown current state is added. */
function setEnum(
  known: readonly string[],
  current: string,
  set: (state: string, value: number) => void,
): void {
  for (const state of known) set(state, state === current ? 1 : 0);
  if (!known.includes(current)) set(current, 1);
}

function flag(value: boolean): number {
  return value ? 1 : 0;
}
