/**
 * Test equipment: a fake `drbdsetup` on PATH, driven from TypeScript.
 *
 * {@linkcode FakeDrbd.create} makes a state directory; the bash script in
 * `bin/drbdsetup` reads it. Put {@linkcode FakeDrbd.env} into the child's
 * environment (PATH and FAKE_DRBD_DIR) and the program under test runs the
 * fake. {@linkcode FakeDrbd.setResources} renders the model the way
 * drbd-utils prints it (DRBD_FORMATS.md §3 and §4), current or 9.22 dialect,
 * and appends the matching `change` lines to the live events2 stream.
 *
 * Things the model does not carry are filled in the way the reference's
 * example cluster does: local node id = the smallest id no peer uses,
 * addresses 10.0.0.(node id + 1):7000, backing disk /dev/vg0/NAME[b, c, ...], option
 * values at their kernel defaults (except the four the model has).
 *
 * Keep this honest to the formats: it is grown into a full simulator later,
 * and it must never be bent to make the agent pass.
 *
 * @module
 */

import type { DrbdConnection, DrbdResource, DrbdResourceConfig } from "../../../lib/drbd/model.ts";
import type { DrbdsetupSpawner } from "../../../lib/drbd/run.ts";
import { FileDir, InProcessDrbdsetup, MemoryDir, type StateDir } from "./in_process.ts";

/** Which drbd-utils the fake imitates. */
export type FakeDialect =
  /** drbd-utils after 9.34: `open:` in events2, show --json with every default. */
  | "current"
  /** drbd-utils 9.22 (Debian 12): no `open:`, show --json without defaults unless asked. */
  | "9.22";

/** Options of {@linkcode FakeDrbd.create}. */
export interface FakeDrbdOptions {
  /** The drbd-utils version to imitate (default `current`). */
  dialect?: FakeDialect;
  /**
   * Keep the state directory in memory and answer drbdsetup in process
   * through {@linkcode FakeDrbd.spawn} (the deterministic simulation); there
   * is no `bin/drbdsetup` then (default false).
   */
  inProcess?: boolean;
}

/** Options of {@linkcode FakeDrbd.setResources}. */
export interface SetResourcesOptions {
  /**
   * Change the state without telling the live events2 stream: simulates a
   * stream that stalled or lost events. `events2 --now` shows the new state.
   */
  silent?: boolean;
  /**
   * Option values the model does not carry, shown by show --json for every
   * resource, e.g. `{ options: { "auto-promote": false }, net: { "rr-conflict":
   * "retry-connect" } }`. The model's `config` always wins for its four options.
   */
  showOptions?: ShowOptionOverrides;
  /**
   * Resync progress in percent per peer device ({@linkcode resyncKey}), shown
   * as events2 `done:` and in status --json while a peer device is in a
   * resync state (default 0).
   */
  resyncDone?: Record<string, number>;
  /**
   * Whether a connection's path is established, by {@linkcode connectionKey};
   * by default it is exactly while the connection is Connected. The kernel
   * reports a broken path in a notification of its own, after the state
   * change that broke the connection (§6.4).
   */
  pathEstablished?: Record<string, boolean>;
}

/** What a `drbdsetup` command answered, for {@linkcode FakeDrbd.serveCommands}. */
export interface FakeAnswer {
  /** Exit code. */
  code: number;
  /** Text on stderr (a newline is added when missing). */
  stderr: string;
}

/**
 * Answers the commands a simulation takes over (see
 * {@linkcode FakeDrbd.serveCommands}); gets the arguments after `drbdsetup`.
 */
export type FakeCommandHandler = (args: string[]) => Promise<FakeAnswer>;

/** Option values for show --json beyond the model (see {@linkcode SetResourcesOptions}). */
export interface ShowOptionOverrides {
  /** Resource options (`options`). */
  options?: Record<string, string | boolean>;
  /** Net options of every connection (`net`). */
  net?: Record<string, string | boolean>;
}

/** A failure to simulate for one drbdsetup subcommand. */
export interface FakeFailure {
  /** Exit code. */
  code: number;
  /** Text on stderr (a newline is added when missing). */
  stderr: string;
}

/**
 * The ones of `pids` that still exist. Asks bash (`kill -0`), because Deno
 * does not let tests read /proc/PID unless they run with a bare --allow-all.
 */
export async function runningPids(pids: number[]): Promise<number[]> {
  if (pids.length === 0) return [];
  const script = 'for pid in "$@"; do kill -0 "$pid" 2>/dev/null && echo "$pid"; done; true';
  const output = await new Deno.Command("bash", {
    args: ["-c", script, "bash", ...pids.map(String)],
    stdin: "null",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(output.stdout).split("\n").filter((line) => line !== "")
    .map(Number).sort((a, b) => a - b);
}

/** The directory holding the fake `drbdsetup` script. */
export const BIN_DIR = new URL("./bin/", import.meta.url).pathname.replace(/\/$/, "");
const DEFAULT_CONFIG: DrbdResourceConfig = {
  quorum: "off",
  onNoQuorum: "suspend-io",
  onNoDataAccessible: "io-error",
  onSuspendedPrimaryOutdated: "disconnect",
};

function yesNo(value: boolean): string {
  return value ? "yes" : "no";
}

function yesNoUnknown(value: boolean | undefined): string {
  return value === undefined ? "unknown" : yesNo(value);
}

function suspendedText(resource: DrbdResource): string {
  const s = resource.suspended;
  const reasons = [
    s.user ? "user" : "",
    s.noData ? "no-data" : "",
    s.fencing ? "fencing" : "",
    s.quorum ? "quorum" : "",
  ].filter((r) => r !== "");
  return reasons.length === 0 ? "no" : reasons.join(",");
}

/** The node id the example cluster gives this node: the smallest one no peer has. */
function localNodeId(resource: DrbdResource): number {
  const used = new Set(resource.connections.map((c) => c.peerNodeId));
  let id = 0;
  while (used.has(id)) id++;
  return id;
}

function address(nodeId: number): string {
  return `10.0.0.${nodeId + 1}`;
}

/** `/dev/vg0/r1` for volume 0, then `/dev/vg0/r1b`, `/dev/vg0/r1c`, ... (as in §4.4). */
function backingDisk(resource: DrbdResource, volume: number): string {
  const suffix = volume === 0 ? "" : volume < 26 ? String.fromCharCode(97 + volume) : `-${volume}`;
  return `/dev/vg0/${resource.name}${suffix}`;
}

/** An events2 object line split into identity and change groups. */
interface Rendered {
  object: string;
  identity: string;
  /** Groups of `key:value` fields that are printed together on change lines. */
  groups: string[];
}

function renderedLine(verb: string, r: Rendered): string {
  return [verb, r.object, r.identity, ...r.groups].filter((part) => part !== "").join(" ");
}

/**
 * drbdsetup's may_promote and promotion_score (DRBD_FORMATS.md §6.1), from
 * what the resource shows: its role, force-io-failures, the devices' quorum
 * and disk states and the peers' roles and disk states.
 *
 * may_promote also needs every volume's UpToDate data to be "stable": the
 * local disk is UpToDate, or an UpToDate peer sent UUID_FLAG_STABLE
 * (drbd-utils user/v9/drbdsetup_events2.c compute_promotion_info(), since
 * 9.16). `stable` says which peers did; the kernel sets the flag unless the
 * peer neighbours a Primary or is a SyncTarget (LINBIT/drbd drbd_main.c
 * drbd_device_stable(), drbd_state.c calc_device_stable()). A lone fake has
 * no peers' peers to look at, so by default every peer is stable.
 */
export function promotionInfo(
  resource: DrbdResource,
  dialect: FakeDialect,
  stable: (connection: DrbdConnection) => boolean = () => true,
): { mayPromote: boolean; score: number } {
  const none = { mayPromote: false, score: 0 };
  if (resource.devices.length === 0) return none;
  // Since 9.28 force-io-failures forces no/0; 9.22 does not look at it.
  if (resource.forceIoFailures && dialect === "current") return none;
  if (resource.devices.some((d) => !d.quorum)) return none;
  let minReplicas = Infinity;
  let stableData = true;
  for (const device of resource.devices) {
    let replicas = device.diskState === "UpToDate" ? 1 : 0;
    let stableHere = replicas === 1;
    for (const connection of resource.connections) {
      const peer = connection.peerDevices.find((pd) => pd.volume === device.volume);
      if (peer?.peerDiskState !== "UpToDate") continue;
      replicas++;
      if (stable(connection)) stableHere = true;
    }
    if (replicas === 0) return none;
    minReplicas = Math.min(minReplicas, replicas);
    if (!stableHere) stableData = false;
  }
  const a =
    resource.devices.every((d) => ["UpToDate", "Consistent", "Inconsistent"].includes(d.diskState))
      ? 1
      : 0;
  const b = Math.min(99, resource.devices.filter((d) => d.diskState === "UpToDate").length);
  const c = Math.min(99, minReplicas);
  const primary = resource.role === "Primary" ||
    resource.connections.some((c) => c.peerRole === "Primary");
  return { mayPromote: !primary && stableData, score: a * 10000 + b * 100 + c };
}

/** What the kernel adds when `secondary` meets a device open for writing (§5.1). */
export function heldOpenMessage(resource: string, minor: number): string {
  return `${resource}: State change failed: (-12) Device is held open by someone\n` +
    "additional info from kernel:\n" +
    `/dev/drbd${minor} open_cnt:1, writable:1; list of openers follows\n` +
    `drbd${minor} opened by mount (pid 4242) at 2026-11-25 02:59:00.123\n`;
}

/**
 * Options of show --json, in drbd-utils' print order, with their kernel
 * defaults (§3.2-§3.4). `since922` false marks keys a 9.22 drbd-utils does
 * not know, so it never prints them.
 */
interface OptionSpec {
  key: string;
  value: string | boolean;
  newerThan922?: boolean;
}

const RESOURCE_OPTIONS: OptionSpec[] = [
  { key: "cpu-mask", value: "" },
  { key: "on-no-data-accessible", value: "io-error" },
  { key: "auto-promote", value: true },
  { key: "peer-ack-window", value: "4096s" },
  { key: "peer-ack-delay", value: "100" },
  { key: "twopc-timeout", value: "300" },
  { key: "twopc-retry-timeout", value: "1" },
  { key: "auto-promote-timeout", value: "20" },
  { key: "max-io-depth", value: "8000" },
  { key: "quorum", value: "off" },
  { key: "on-no-quorum", value: "suspend-io" },
  { key: "quorum-minimum-redundancy", value: "off" },
  { key: "on-suspended-primary-outdated", value: "disconnect" },
  { key: "drbd8-api-compatibility", value: false, newerThan922: true },
];

/** The values a resource's options block shows: overrides, then the model's config. */
function resourceOptionValues(
  config: DrbdResourceConfig,
  overrides: ShowOptionOverrides,
): Map<string, string | boolean> {
  return new Map<string, string | boolean>([
    ...Object.entries(overrides.options ?? {}),
    ["on-no-data-accessible", config.onNoDataAccessible],
    ["quorum", String(config.quorum)],
    ["on-no-quorum", config.onNoQuorum],
    ["on-suspended-primary-outdated", config.onSuspendedPrimaryOutdated],
  ]);
}

const DISK_OPTIONS: OptionSpec[] = [
  { key: "size", value: "0s" },
  { key: "on-io-error", value: "detach" },
  { key: "disk-barrier", value: false },
  { key: "disk-flushes", value: true },
  { key: "disk-drain", value: true },
  { key: "md-flushes", value: true },
  { key: "resync-after", value: "-1" },
  { key: "al-extents", value: "1237" },
  { key: "al-updates", value: true },
  { key: "discard-zeroes-if-aligned", value: true },
  { key: "disable-write-same", value: false },
  { key: "disk-timeout", value: "0" },
  { key: "read-balancing", value: "prefer-local" },
  { key: "rs-discard-granularity", value: "0" },
  { key: "bitmap", value: true },
  { key: "max-bio-size", value: "1048576" },
  { key: "diskless", value: "no" },
  { key: "block-size", value: "512", newerThan922: true },
  { key: "discard-granularity", value: "4294967295", newerThan922: true },
];

const NET_OPTIONS: OptionSpec[] = [
  { key: "transport", value: "" },
  { key: "load-balance-paths", value: false, newerThan922: true },
  { key: "protocol", value: "C" },
  { key: "timeout", value: "60" },
  { key: "max-epoch-size", value: "2048" },
  { key: "connect-int", value: "10" },
  { key: "ping-int", value: "10" },
  { key: "sndbuf-size", value: "0" },
  { key: "rcvbuf-size", value: "0" },
  { key: "ko-count", value: "7" },
  { key: "allow-two-primaries", value: false },
  { key: "cram-hmac-alg", value: "" },
  { key: "shared-secret", value: "" },
  { key: "after-sb-0pri", value: "disconnect" },
  { key: "after-sb-1pri", value: "disconnect" },
  { key: "after-sb-2pri", value: "disconnect" },
  { key: "always-asbp", value: false },
  { key: "rr-conflict", value: "disconnect" },
  { key: "ping-timeout", value: "5" },
  { key: "data-integrity-alg", value: "" },
  { key: "tcp-cork", value: true },
  { key: "on-congestion", value: "block" },
  { key: "congestion-fill", value: "0s" },
  { key: "congestion-extents", value: "1237" },
  { key: "csums-alg", value: "" },
  { key: "csums-after-crash-only", value: false },
  { key: "verify-alg", value: "" },
  { key: "use-rle", value: true },
  { key: "socket-check-timeout", value: "0" },
  { key: "fencing", value: "dont-care" },
  { key: "max-buffers", value: "2048" },
  { key: "allow-remote-read", value: true },
  { key: "tls", value: false, newerThan922: true },
  { key: "tls-keyring", value: "(null)", newerThan922: true },
  { key: "tls-privkey", value: "(null)", newerThan922: true },
  { key: "tls-certificate", value: "(null)", newerThan922: true },
  { key: "rdma-ctrl-rcvbuf-size", value: "0", newerThan922: true },
  { key: "rdma-ctrl-sndbuf-size", value: "0", newerThan922: true },
];

const PEER_DEVICE_OPTIONS: OptionSpec[] = [
  { key: "resync-rate", value: "250k" },
  { key: "c-plan-ahead", value: "20" },
  { key: "c-delay-target", value: "10" },
  { key: "c-fill-target", value: "100s" },
  { key: "c-max-rate", value: "102400k" },
  { key: "c-min-rate", value: "250k" },
  { key: "bitmap", value: true },
  { key: "resync-without-replication", value: true, newerThan922: true },
  { key: "peer-tiebreaker", value: true, newerThan922: true },
];

/** How show --json is printed. */
interface ShowStyle {
  /** Print defaults too (current always; 9.22 only with --show-defaults). */
  defaults: boolean;
  dialect: FakeDialect;
  overrides: ShowOptionOverrides;
}

function indent(level: number): string {
  return "    ".repeat(level);
}

function jsonValue(value: string | boolean): string {
  return typeof value === "boolean" ? String(value) : JSON.stringify(value);
}

/** The `"name": {` block lines of an options object, or none when nothing is shown. */
function optionsBlock(
  name: string,
  options: OptionSpec[],
  level: number,
  style: ShowStyle,
  values: Map<string, string | boolean> = new Map(),
  extra: [string, string][] = [],
): string[] {
  const shown = options.map((o) => ({ ...o, shownValue: values.get(o.key) ?? o.value }))
    .filter((o) => {
      if (style.dialect === "9.22" && o.newerThan922) return false;
      return style.defaults || o.shownValue !== o.value;
    });
  const entries = [
    ...shown.map((o) => `${indent(level + 1)}"${o.key}": ${jsonValue(o.shownValue)}`),
    ...extra.map(([key, value]) => `${indent(level + 1)}"${key}": ${value}`),
  ];
  if (entries.length === 0) return [];
  return [`${indent(level)}"${name}": {`, entries.join(",\n"), `${indent(level)}}`];
}

/** Joins the members of a JSON object (each possibly several lines) with commas. */
function members(list: string[][]): string {
  return list.filter((m) => m.length > 0).map((m) => m.join("\n")).join(",\n");
}

function showVolume(resource: DrbdResource, volume: number, style: ShowStyle): string {
  const device = resource.devices.find((d) => d.volume === volume)!;
  const l = 4;
  const parts: string[][] = [
    [`${indent(l + 1)}"volume_nr": ${volume}`],
    [`${indent(l + 1)}"device_minor": ${device.minor}`],
  ];
  if (device.diskState !== "Diskless") {
    parts.push([
      `${indent(l + 1)}"backing-disk": ${JSON.stringify(backingDisk(resource, volume))}`,
    ]);
    parts.push([`${indent(l + 1)}"meta-disk": "internal"`]);
    parts.push(optionsBlock("disk", DISK_OPTIONS, l + 1, style));
  } else if (device.client === true) {
    parts.push([`${indent(l + 1)}"disk": "none"`]);
  }
  return `${indent(l)}{\n${members(parts)}\n${indent(l)}}`;
}

function showPaths(local: number, peer: number, style: ShowStyle): string[] {
  const l = 4;
  if (style.dialect === "9.22") {
    return [
      `${indent(l)}"path": {`,
      `${indent(l + 1)}"_this_host": "ipv4 ${address(local)}:7000",\n` +
      `${indent(l + 1)}"_remote_host": "ipv4 ${address(peer)}:7000"`,
      `${indent(l)}}`,
    ];
  }
  const host = (name: string, nodeId: number, last: boolean) =>
    `${indent(l + 2)}"${name}": {\n` +
    `${indent(l + 3)}"address": "${address(nodeId)}",\n` +
    `${indent(l + 3)}"port": 7000,\n` +
    `${indent(l + 3)}"family": "ipv4"\n` +
    `${indent(l + 2)}}${last ? "" : ","}`;
  return [
    `${indent(l)}"paths": [`,
    `${indent(l + 1)}{\n${host("this_host", local, false)}\n${host("remote_host", peer, true)}\n` +
    `${indent(l + 1)}}`,
    `${indent(l)}]`,
  ];
}

function showConnection(resource: DrbdResource, index: number, style: ShowStyle): string {
  const connection = resource.connections[index];
  const l = 3;
  const parts: string[][] = [showPaths(localNodeId(resource), connection.peerNodeId, style)];
  if (connection.connectionState === "StandAlone") {
    parts.push([`${indent(l + 1)}"_is_standalone": true`]);
  }
  if (style.dialect === "current") {
    parts.push([`${indent(l + 1)}"_cstate": ${JSON.stringify(connection.connectionState)}`]);
  }
  parts.push(
    optionsBlock(
      "net",
      NET_OPTIONS,
      l + 1,
      style,
      new Map(Object.entries(style.overrides.net ?? {})),
      [["_name", JSON.stringify(connection.name)]],
    ),
  );
  const volumes = connection.peerDevices.map((pd) => {
    const block = optionsBlock("disk", PEER_DEVICE_OPTIONS, l + 3, style);
    const inner = members([[`${indent(l + 3)}"volume_nr": ${pd.volume}`], block]);
    return block.length === 0 ? undefined : `${indent(l + 2)}{\n${inner}\n${indent(l + 2)}}`;
  }).filter((v) => v !== undefined);
  if (volumes.length > 0) {
    parts.push([`${indent(l + 1)}"volumes": [`, volumes.join(",\n"), `${indent(l + 1)}]`]);
  }
  parts.push([`${indent(l + 1)}"_peer_node_id": ${connection.peerNodeId}`]);
  return `${indent(l)}{\n${members(parts)}\n${indent(l)}}`;
}

/** One resource object of show --json, without a trailing comma or newline. */
function showResource(resource: DrbdResource, style: ShowStyle): string {
  const config = resource.config ?? DEFAULT_CONFIG;
  const l = 1;
  const volumes = resource.devices.map((d) => showVolume(resource, d.volume, style));
  const thisHost = [
    `${indent(l + 2)}"node-id": ${localNodeId(resource)},`,
    `${indent(l + 2)}"volumes": [`,
    ...(volumes.length > 0 ? [volumes.join(",\n")] : []),
    `${indent(l + 2)}]`,
  ];
  const parts: string[][] = [
    [`${indent(l + 1)}"resource": ${JSON.stringify(resource.name)}`],
    optionsBlock(
      "options",
      RESOURCE_OPTIONS,
      l + 1,
      style,
      resourceOptionValues(config, style.overrides),
    ),
    [`${indent(l + 1)}"_this_host": {`, thisHost.join("\n"), `${indent(l + 1)}}`],
  ];
  if (resource.connections.length > 0) {
    const connections = resource.connections.map((_, i) => showConnection(resource, i, style));
    parts.push([`${indent(l + 1)}"connections": [`, connections.join(",\n"), `${indent(l + 1)}]`]);
  }
  return `${indent(l)}{\n${members(parts)}\n${indent(l)}}`;
}

/** Replication states in which drbdsetup shows resync progress (`done:`, sync details). */
const RESYNC_STATES: ReadonlySet<string> = new Set([
  "SyncSource",
  "SyncTarget",
  "PausedSyncS",
  "PausedSyncT",
]);

/** The key of {@linkcode SetResourcesOptions.pathEstablished} for one connection. */
export function connectionKey(resource: string, peerNodeId: number): string {
  return `${resource}/${peerNodeId}`;
}

/** Whether the path of `connection` is shown established. */
function pathIsEstablished(
  resource: DrbdResource,
  connection: DrbdConnection,
  overrides: Record<string, boolean>,
): boolean {
  return overrides[connectionKey(resource.name, connection.peerNodeId)] ??
    connection.connectionState === "Connected";
}

/** The key of {@linkcode SetResourcesOptions.resyncDone} for one peer device. */
export function resyncKey(resource: string, peerNodeId: number, volume: number): string {
  return `${resource}/${peerNodeId}/${volume}`;
}

/**
 * Device statistics the model does not carry: those of the reference
 * example (§2.4) for a volume with a disk, nothing read or written for a
 * diskless client.
 */
const DEVICE_SIZE_KIB = 1048508;

function statusDevice(
  resource: DrbdResource,
  volume: number,
  dialect: FakeDialect,
): string {
  const d = resource.devices.find((device) => device.volume === volume)!;
  const withDisk = d.diskState !== "Diskless";
  // Writes wait while a Primary's I/O is suspended (§2.4, "Quorum lost while Primary").
  const s = resource.suspended;
  const frozen = resource.role === "Primary" && d.open === true &&
    (s.user || s.noData || s.fencing || s.quorum) && !resource.forceIoFailures;
  const keys: [string, string][] = [
    ["volume", String(d.volume)],
    ["minor", String(d.minor)],
    ["disk-state", JSON.stringify(d.diskState)],
    ["client", String(d.client === true)],
  ];
  if (dialect === "current") keys.push(["open", String(d.open === true)]);
  keys.push(
    ["quorum", String(d.quorum)],
    ["size", String(DEVICE_SIZE_KIB)],
    ["read", withDisk ? "9117" : "0"],
    ["written", withDisk ? "204908" : "0"],
    ["al-writes", withDisk ? "21" : "0"],
    ["bm-writes", withDisk ? "3" : "0"],
    ["upper-pending", frozen ? "1" : "0"],
    ["lower-pending", "0"],
  );
  return `    {\n${keys.map(([k, v]) => `      "${k}": ${v}`).join(",\n")}\n    }`;
}

function statusHost(name: string, nodeId: number): string {
  return `          "${name}": {\n` +
    `            "address": "${address(nodeId)}",\n` +
    `            "port": 7000,\n` +
    `            "family": "ipv4"\n` +
    `          }`;
}

function statusPeerDevice(
  resource: DrbdResource,
  connectionIndex: number,
  volume: number,
  resyncDone: Record<string, number>,
): string {
  const c = resource.connections[connectionIndex];
  const pd = c.peerDevices.find((p) => p.volume === volume)!;
  const syncing = RESYNC_STATES.has(pd.replicationState);
  const done = syncing ? resyncDone[resyncKey(resource.name, c.peerNodeId, volume)] ?? 0 : 100;
  const outOfSync = Math.round(DEVICE_SIZE_KIB * (1 - done / 100));
  const keys: [string, string][] = [
    ["volume", String(pd.volume)],
    ["replication-state", JSON.stringify(pd.replicationState)],
    ["peer-disk-state", JSON.stringify(pd.peerDiskState)],
    ["peer-client", String(pd.peerClient === true)],
    ["resync-suspended", '"no"'],
    ["received", "0"],
    ["sent", pd.peerClient === true ? "0" : "204908"],
    ["out-of-sync", String(outOfSync)],
    ["pending", "0"],
    ["unacked", "0"],
    ["has-sync-details", String(syncing)],
    ["has-online-verify-details", "false"],
    ["percent-in-sync", (100 * (1 - outOfSync / DEVICE_SIZE_KIB)).toFixed(2)],
  ];
  if (syncing) {
    // A resync at a steady 12.19 MiB/s (the reference example's rate).
    const total = DEVICE_SIZE_KIB * 2;
    const synced = Math.round(total * done / 100);
    const elapsedMs = Math.round(synced / 2 / 1024 / 12.19 * 1000);
    const etaSeconds = done >= 100 ? 0 : (total - synced) / 2 / 1024 / 12.19;
    keys.push(
      ["rs-total", String(total)],
      ["rs-dt-start-ms", String(elapsedMs)],
      ["rs-paused-ms", "0"],
      ["rs-dt0-ms", String(elapsedMs)],
      ["rs-db0-sectors", String(synced)],
      ["rs-dt1-ms", "3000"],
      ["rs-db1-sectors", done > 0 ? "75000" : "0"],
      ["rs-failed", "0"],
      ["rs-same-csum", "0"],
      ["want", "0.00"],
      ["db0/dt0 [MiB/s]", done > 0 ? "12.19" : "0.00"],
      ["db1/dt1 [MiB/s]", done > 0 ? "12.21" : "0.00"],
      ["estimated-seconds-to-finish", done > 0 ? etaSeconds.toFixed(0) : "987654321"],
      ["db/dt [MiB/s]", done > 0 ? "12.19" : "0.00"],
      ["percent-resync-done", done.toFixed(2)],
    );
  }
  return `        {\n${keys.map(([k, v]) => `          "${k}": ${v}`).join(",\n")}\n        }`;
}

function statusConnection(
  resource: DrbdResource,
  index: number,
  dialect: FakeDialect,
  extras: { resyncDone: Record<string, number>; pathEstablished: Record<string, boolean> },
): string {
  const c = resource.connections[index];
  const lines = [
    "    {",
    `      "peer-node-id": ${c.peerNodeId},`,
    `      "name": ${JSON.stringify(c.name)},`,
    // drbdsetup really prints a space before this newline (§2.1).
    `      "connection-state": ${JSON.stringify(c.connectionState)}, `,
    `      "congested": false,`,
    `      "peer-role": ${JSON.stringify(c.peerRole)},`,
  ];
  if (dialect === "current") lines.push(`      "tls": false,`);
  lines.push(`      "ap-in-flight": 0,`, `      "rs-in-flight": 0,`);
  if (dialect === "current") {
    const established = pathIsEstablished(resource, c, extras.pathEstablished);
    lines.push(
      `      "paths": [`,
      `        {\n${statusHost("this_host", localNodeId(resource))},\n` +
        `${statusHost("remote_host", c.peerNodeId)},\n` +
        `          "established": ${established}\n        } ],`,
    );
  }
  const peerDevices = c.peerDevices.map((pd) =>
    statusPeerDevice(resource, index, pd.volume, extras.resyncDone)
  );
  lines.push(
    peerDevices.length === 0
      ? `      "peer_devices": [\n ]`
      : `      "peer_devices": [\n${peerDevices.join(",\n")} ]`,
  );
  return `${lines.join("\n")}\n    }`;
}

/**
 * One resource object of `status --json` (§2.1), without a trailing newline.
 * Statistics the model does not carry are those of the reference example.
 */
export function statusResource(
  resource: DrbdResource,
  dialect: FakeDialect,
  extras: { resyncDone?: Record<string, number>; pathEstablished?: Record<string, boolean> } = {},
): string {
  const known = {
    resyncDone: extras.resyncDone ?? {},
    pathEstablished: extras.pathEstablished ?? {},
  };
  const s = resource.suspended;
  const devices = resource.devices.map((d) => statusDevice(resource, d.volume, dialect));
  const connections = resource.connections.map((_, i) =>
    statusConnection(resource, i, dialect, known)
  );
  return [
    "{",
    `  "name": ${JSON.stringify(resource.name)},`,
    `  "node-id": ${localNodeId(resource)},`,
    `  "role": ${JSON.stringify(resource.role)},`,
    `  "suspended": ${s.user || s.noData || s.fencing || s.quorum},`,
    `  "suspended-user": ${s.user},`,
    `  "suspended-no-data": ${s.noData},`,
    `  "suspended-fencing": ${s.fencing},`,
    `  "suspended-quorum": ${s.quorum},`,
    `  "force-io-failures": ${resource.forceIoFailures},`,
    `  "write-ordering": "flush",`,
    devices.length === 0 ? `  "devices": [\n ],` : `  "devices": [\n${devices.join(",\n")} ],`,
    connections.length === 0
      ? `  "connections": [\n ]`
      : `  "connections": [\n${connections.join(",\n")} ]`,
    "}",
  ].join("\n");
}

/** Fields of a parsed events2 line, for diffing. */
interface ParsedLine {
  object: string;
  identity: string;
  fields: Map<string, string>;
}

/** Reads an exists dump back, keyed by object and identity (not the parser under test). */
function readDump(text: string): Map<string, ParsedLine> {
  const identityKeys: Record<string, string[]> = {
    resource: ["name"],
    device: ["name", "volume", "minor"],
    connection: ["name", "peer-node-id", "conn-name"],
    "peer-device": ["name", "peer-node-id", "conn-name", "volume"],
    path: ["name", "peer-node-id", "conn-name", "local", "peer"],
  };
  const lines = new Map<string, ParsedLine>();
  for (const line of text.split("\n")) {
    const [verb, object, ...tokens] = line.split(" ");
    if (verb !== "exists" || object === undefined || object === "-") continue;
    const fields = new Map(tokens.map((t) => {
      const colon = t.indexOf(":");
      return [t.slice(0, colon), t.slice(colon + 1)] as [string, string];
    }));
    const keys = identityKeys[object] ?? [];
    const identity = keys.map((k) => `${k}:${fields.get(k)}`).join(" ");
    lines.set(`${object} ${identity}`, { object, identity, fields });
  }
  return lines;
}

function groupFields(group: string): Map<string, string> {
  return new Map(
    group.split(" ").map((t) => {
      const colon = t.indexOf(":");
      return [t.slice(0, colon), t.slice(colon + 1)] as [string, string];
    }),
  );
}

/** A fake drbdsetup and its state directory. */
export class FakeDrbd {
  /** The state directory (FAKE_DRBD_DIR); "" when in process. */
  readonly dir: string;
  /** The directory holding the `drbdsetup` script; put it first on PATH. */
  readonly binDir: string = BIN_DIR;
  /** The imitated drbd-utils version. */
  readonly dialect: FakeDialect;
  #resources: DrbdResource[] = [];
  #resyncDone: Record<string, number> = {};
  #pathEstablished: Record<string, boolean> = {};
  /** Files as last written, by path relative to the state directory. */
  #written = new Map<string, string>();
  #serving: CommandServer | undefined;
  /** Where the state goes: the directory on disk, or memory. */
  readonly #state: StateDir;
  /** In process: the drbdsetup that answers from memory. */
  readonly #inProcess: InProcessDrbdsetup | undefined;
  /** In process: the handler of served commands. */
  #servedHandler: FakeCommandHandler | undefined;

  private constructor(dir: string, dialect: FakeDialect, memory: MemoryDir | undefined) {
    this.dir = dir;
    this.dialect = dialect;
    this.#state = memory ?? new FileDir(dir);
    this.#inProcess = memory === undefined ? undefined : new InProcessDrbdsetup(
      memory,
      (args) => this.#servedHandler?.(args),
    );
  }

  /**
   * Makes a temporary state directory (or, `inProcess`, one in memory) with
   * no resources and the module loaded.
   */
  static async create(options: FakeDrbdOptions = {}): Promise<FakeDrbd> {
    const dialect = options.dialect ?? "current";
    if (options.inProcess) {
      const memory = new MemoryDir();
      const fake = new FakeDrbd("", dialect, memory);
      // The script picks the 9.22 documents by this directory's existence.
      if (dialect === "9.22") memory.files.set("show-defaults", "");
      memory.files.set("calls.log", "");
      memory.files.set("events.log", "");
      await fake.#writeState([], {});
      return fake;
    }
    const dir = await Deno.makeTempDir({ prefix: "fake-drbd-" });
    const fake = new FakeDrbd(dir, dialect, undefined);
    await Deno.mkdir(`${dir}/fail`);
    await Deno.mkdir(`${dir}/streams`);
    for (const sub of ["show", "status", "demote"]) await Deno.mkdir(`${dir}/${sub}`);
    // The script picks the 9.22 documents by this directory's existence.
    if (fake.dialect === "9.22") await Deno.mkdir(`${dir}/show-defaults`);
    await Deno.writeTextFile(`${dir}/calls.log`, "");
    await Deno.writeTextFile(`${dir}/events.log`, "");
    await fake.#writeState([], {});
    return fake;
  }

  /**
   * The process seam for the agent's drbdsetup calls when in process
   * (`lib/drbd/run.ts`'s {@linkcode DrbdsetupSpawner}).
   *
   * @throws {Error} when the fake is a script on disk.
   */
  get spawn(): DrbdsetupSpawner {
    if (this.#inProcess === undefined) {
      throw new Error("Expected an in-process FakeDrbd (create({ inProcess: true }))");
    }
    return this.#inProcess.spawn;
  }

  /** Environment for a process that should run the fake: PATH and FAKE_DRBD_DIR. */
  get env(): Record<string, string> {
    const path = Deno.env.get("PATH") ?? "/usr/bin:/bin";
    return { PATH: `${this.binDir}:${path}`, FAKE_DRBD_DIR: this.dir };
  }

  /** The resources as last set (demotions done by the fake are not reflected here). */
  get resources(): DrbdResource[] {
    return structuredClone(this.#resources);
  }

  /**
   * Makes `resources` the DRBD state: `events2 --now` and `show --json`
   * print it from now on, and a running `events2` receives the change,
   * create and destroy lines that lead there from the previous state (the
   * state as drbdsetup last printed it, so demotions by the fake count).
   * Resources keep the given order as their creation order.
   */
  async setResources(resources: DrbdResource[], options: SetResourcesOptions = {}): Promise<void> {
    const previous = readDump(await this.#state.read("now.txt") ?? "");
    this.#resources = structuredClone(resources);
    this.#resyncDone = { ...options.resyncDone };
    this.#pathEstablished = { ...options.pathEstablished };
    const lines: string[] = [];
    for (const resource of resources) lines.push(...this.#changesOf(resource, previous));
    for (const [key, line] of previous) {
      if (line.object === "resource" && !resources.some((r) => `resource name:${r.name}` === key)) {
        lines.push(...this.#destroyAll(line.fields.get("name")!, previous));
      }
    }
    await this.#writeState(resources, options.showOptions ?? {});
    if (!options.silent && lines.length > 0) await this.appendStreamLines(lines);
  }

  /** Appends raw lines to the live events2 stream (helper lines, malformed lines, ...). */
  async appendStreamLines(lines: string[]): Promise<void> {
    await this.#state.append("events.log", lines.map((l) => `${l}\n`).join(""));
  }

  /**
   * Makes the live `events2` streams started from now on print their initial
   * dump and then nothing until killed (true), as an agent that only polls
   * would see DRBD: changes show only in `events2 --now` and `show`. Streams
   * already running keep the mode they started with.
   */
  async setStreamsSilent(silent: boolean): Promise<void> {
    if (silent) await this.#state.write("streams-silent", "");
    else await this.#state.remove("streams-silent");
  }

  /** Makes every command behave as if the DRBD kernel module could not be loaded (§5.3). */
  async setModuleMissing(missing: boolean): Promise<void> {
    if (missing) await this.#state.write("module-missing", "");
    else await this.#state.remove("module-missing");
  }

  /**
   * Takes `drbdsetup` off PATH (true) or puts it back: new commands fail to
   * start, running ones go on. In process only.
   */
  setMissing(missing: boolean): void {
    if (this.#inProcess === undefined) {
      throw new Error("Expected an in-process FakeDrbd to take drbdsetup away");
    }
    this.#inProcess.missing = missing;
  }

  /**
   * Makes new `drbdsetup` commands hang (true) until killed, or answer again
   * (false); commands that hang already stay hung. In process only.
   */
  setHanging(hanging: boolean): void {
    if (this.#inProcess === undefined) {
      throw new Error("Expected an in-process FakeDrbd to make drbdsetup hang");
    }
    this.#inProcess.hanging = hanging;
  }

  /** Makes `drbdsetup COMMAND ...` fail with this exit code and stderr; undefined clears it. */
  async setFailure(command: string, failure: FakeFailure | undefined): Promise<void> {
    const path = `fail/${command}`;
    if (failure === undefined) {
      await this.#state.remove(path);
      return;
    }
    const stderr = failure.stderr === "" || failure.stderr.endsWith("\n")
      ? failure.stderr
      : `${failure.stderr}\n`;
    await this.#state.write(path, `${failure.code}\n${stderr}`);
  }

  /** The arguments of every drbdsetup invocation so far, oldest first. */
  async calls(): Promise<string[][]> {
    const text = await this.#state.read("calls.log") ?? "";
    return text.split("\n").filter((line) => line !== "").map((line) =>
      line.split("\x1f").slice(0, -1)
    );
  }

  /**
   * Process ids of the live `events2` streams that still exist (one that
   * ended but was not yet reaped by its parent still counts).
   */
  async streamPids(): Promise<number[]> {
    if (this.#inProcess !== undefined) return this.#inProcess.streamPids;
    const pids: number[] = [];
    for await (const entry of Deno.readDir(`${this.dir}/streams`)) pids.push(Number(entry.name));
    return await runningPids(pids);
  }

  /**
   * Ends every live events2 stream with a signal, as if drbdsetup had died.
   * Returns how many were running.
   */
  async killStreams(signal: Deno.Signal = "SIGKILL"): Promise<number> {
    if (this.#inProcess !== undefined) return this.#inProcess.killStreams(signal);
    const pids = await this.streamPids();
    for (const pid of pids) {
      try {
        Deno.kill(pid, signal);
      } catch {
        // Ended meanwhile.
      }
    }
    return pids.length;
  }

  /**
   * Lets `handler` answer the given drbdsetup subcommands from now on (the
   * cluster simulation answers `secondary`, so its model decides). The
   * script still checks its options, the failure injection and the module;
   * then it writes the arguments to `requests/PID` and waits up to 10 s for
   * `responses/PID` (exit code, then stderr) and a wake-up on the FIFO
   * `responses/PID.wake`. Requests are noticed through a file system watcher,
   * with a poll every 100 ms as a fallback.
   */
  async serveCommands(commands: string[], handler: FakeCommandHandler): Promise<void> {
    if (this.#serving !== undefined || this.#servedHandler !== undefined) {
      throw new Error("Expected one command server, got a second");
    }
    if (this.#inProcess !== undefined) {
      this.#servedHandler = handler;
      await this.#state.write("served", commands.map((c) => `${c}\n`).join(""));
      return;
    }
    await Deno.mkdir(`${this.dir}/requests`, { recursive: true });
    await Deno.mkdir(`${this.dir}/responses`, { recursive: true });
    await Deno.writeTextFile(`${this.dir}/served`, commands.map((c) => `${c}\n`).join(""));
    this.#serving = new CommandServer(this.dir, handler);
  }

  /** Stops answering commands (see {@linkcode serveCommands}); waits for answers in flight. */
  async stopServing(): Promise<void> {
    if (this.#inProcess !== undefined) {
      this.#servedHandler = undefined;
      await this.#state.remove("served");
      return;
    }
    const server = this.#serving;
    if (server === undefined) return;
    this.#serving = undefined;
    await Deno.remove(`${this.dir}/served`).catch(() => {});
    await server.stop();
  }

  /** Kills leftover streams and removes the state directory. */
  async cleanup(): Promise<void> {
    await this.stopServing();
    await this.killStreams();
    if (this.#inProcess === undefined) await Deno.remove(this.dir, { recursive: true });
  }

  // --- rendering -----------------------------------------------------------

  #resourceLine(resource: DrbdResource): Rendered {
    const groups = [
      `role:${resource.role}`,
      `suspended:${suspendedText(resource)}`,
      `force-io-failures:${yesNo(resource.forceIoFailures)}`,
    ];
    // may_promote is computed by drbdsetup 9.14 and later; the model may leave it unknown.
    if (resource.mayPromote !== undefined) {
      groups.push(
        `may_promote:${yesNo(resource.mayPromote)} promotion_score:${resource.promotionScore}`,
      );
    }
    return { object: "resource", identity: `name:${resource.name}`, groups };
  }

  #connectionLines(resource: DrbdResource): Rendered[] {
    return resource.connections.map((c) => ({
      object: "connection",
      identity: `name:${resource.name} peer-node-id:${c.peerNodeId} conn-name:${c.name}`,
      groups: [`connection:${c.connectionState}`, `role:${c.peerRole}`],
    }));
  }

  #deviceLines(resource: DrbdResource): Rendered[] {
    return resource.devices.map((d) => {
      const disk = d.diskState === "Diskless" ? "none" : backingDisk(resource, d.volume);
      const open = this.dialect === "current" ? ` open:${yesNoUnknown(d.open)}` : "";
      return {
        object: "device",
        identity: `name:${resource.name} volume:${d.volume} minor:${d.minor}`,
        groups: [
          `backing_dev:${disk} disk:${d.diskState} client:${yesNoUnknown(d.client)}${open} ` +
          `quorum:${yesNo(d.quorum)}`,
        ],
      };
    });
  }

  #peerDeviceLines(resource: DrbdResource, index: number): Rendered[] {
    const c = resource.connections[index];
    return c.peerDevices.map((pd) => {
      const groups = [
        `replication:${pd.replicationState}`,
        `peer-disk:${pd.peerDiskState} peer-client:${yesNoUnknown(pd.peerClient)}`,
        "resync-suspended:no",
      ];
      if (RESYNC_STATES.has(pd.replicationState)) {
        const done = this.#resyncDone[resyncKey(resource.name, c.peerNodeId, pd.volume)] ?? 0;
        groups.push(`done:${done.toFixed(2)}`);
      }
      return {
        object: "peer-device",
        identity: `name:${resource.name} peer-node-id:${c.peerNodeId} conn-name:${c.name} ` +
          `volume:${pd.volume}`,
        groups,
      };
    });
  }

  #pathLine(resource: DrbdResource, index: number): Rendered {
    const c = resource.connections[index];
    const local = localNodeId(resource);
    return {
      object: "path",
      identity: `name:${resource.name} peer-node-id:${c.peerNodeId} conn-name:${c.name} ` +
        `local:ipv4:${address(local)}:7000 peer:ipv4:${address(c.peerNodeId)}:7000`,
      groups: [`established:${yesNo(pathIsEstablished(resource, c, this.#pathEstablished))}`],
    };
  }

  /** The exists dump of one resource, in drbdsetup's order (§4.3). */
  #dumpOf(resource: DrbdResource): string[] {
    const lines = [renderedLine("exists", this.#resourceLine(resource))];
    // drbdsetup prepends to its lists: reverse creation order, descending volumes.
    for (const c of this.#connectionLines(resource).reverse()) {
      lines.push(renderedLine("exists", c));
    }
    for (const d of this.#deviceLines(resource).reverse()) lines.push(renderedLine("exists", d));
    for (let i = resource.connections.length - 1; i >= 0; i--) {
      for (const pd of this.#peerDeviceLines(resource, i).reverse()) {
        lines.push(renderedLine("exists", pd));
      }
      lines.push(renderedLine("exists", this.#pathLine(resource, i)));
    }
    return lines;
  }

  /** The lines that take `previous` to `resource`, in batch order (§4.3). */
  #changesOf(resource: DrbdResource, previous: Map<string, ParsedLine>): string[] {
    const changes: string[] = [];
    const creates: string[] = [];
    const diff = (r: Rendered) => {
      const before = previous.get(`${r.object} ${r.identity}`);
      if (before === undefined) {
        creates.push(renderedLine("create", r));
        return;
      }
      const changed = r.groups.filter((group) =>
        [...groupFields(group)].some(([key, value]) => before.fields.get(key) !== value)
      );
      if (changed.length > 0) changes.push(renderedLine("change", { ...r, groups: changed }));
    };
    const isNew = !previous.has(`resource name:${resource.name}`);
    diff(this.#resourceLine(resource));
    if (isNew) {
      // A new resource: its objects are created one notification at a time.
      for (const d of this.#deviceLines(resource)) diff(d);
      for (const c of this.#connectionLines(resource)) diff(c);
      resource.connections.forEach((_, i) => {
        for (const pd of this.#peerDeviceLines(resource, i)) diff(pd);
        diff(this.#pathLine(resource, i));
      });
      return creates;
    }
    for (const c of this.#connectionLines(resource)) diff(c);
    for (const d of this.#deviceLines(resource)) diff(d);
    resource.connections.forEach((_, i) => {
      for (const pd of this.#peerDeviceLines(resource, i)) diff(pd);
      diff(this.#pathLine(resource, i));
    });
    // Objects that are gone: paths, peer devices, connections, devices.
    const current = new Set<string>();
    const all = [
      ...this.#connectionLines(resource),
      ...this.#deviceLines(resource),
      ...resource.connections.flatMap((_, i) => [
        ...this.#peerDeviceLines(resource, i),
        this.#pathLine(resource, i),
      ]),
    ];
    for (const r of all) current.add(`${r.object} ${r.identity}`);
    const destroys: string[] = [];
    for (const object of ["path", "peer-device", "connection", "device"]) {
      for (const [key, line] of previous) {
        if (line.object !== object || line.fields.get("name") !== resource.name) continue;
        if (!current.has(key)) destroys.push(this.#destroyLine(line));
      }
    }
    return [...changes, ...creates, ...destroys];
  }

  #destroyLine(line: ParsedLine): string {
    // A destroyed device is named without its minor.
    const identity = line.object === "device"
      ? `name:${line.fields.get("name")} volume:${line.fields.get("volume")}`
      : line.identity;
    return `destroy ${line.object} ${identity}`;
  }

  #destroyAll(name: string, previous: Map<string, ParsedLine>): string[] {
    const lines: string[] = [];
    for (const object of ["path", "peer-device", "connection", "device", "resource"]) {
      for (const line of previous.values()) {
        if (line.object === object && line.fields.get("name") === name) {
          lines.push(this.#destroyLine(line));
        }
      }
    }
    return lines;
  }

  /** What `secondary` and `secondary --force` do to a Primary (§5.1). */
  #demotionFiles(resource: DrbdResource): Map<string, string> {
    const files = new Map<string, string>();
    const open = resource.devices.filter((d) => d.open === true);
    for (const kind of ["plain", "force"] as const) {
      const forceIo = kind === "force" && open.length > 0;
      const demoted: DrbdResource = { ...resource, role: "Secondary", forceIoFailures: forceIo };
      if (resource.mayPromote !== undefined) {
        const promotion = promotionInfo(demoted, this.dialect);
        demoted.mayPromote = promotion.mayPromote;
        demoted.promotionScore = promotion.score;
      }
      const before = this.#resourceLine(resource);
      const after = this.#resourceLine(demoted);
      const changed = after.groups.filter((g, i) => g !== before.groups[i]);
      files.set(`${kind}.line`, `${renderedLine("exists", after)}\n`);
      files.set(`${kind}.change`, `${renderedLine("change", { ...after, groups: changed })}\n`);
    }
    if (open.length > 0) {
      const minor = open[0].minor;
      files.set("held-open", heldOpenMessage(resource.name, minor));
    }
    return files;
  }

  /**
   * Writes every file of the state directory that changed, each atomically
   * (a drbdsetup running meanwhile reads the old or the new file, never a
   * missing or half-written one); `resources` and `now.txt` go last, then
   * files of resources that are gone are removed.
   */
  async #writeState(resources: DrbdResource[], overrides: ShowOptionOverrides): Promise<void> {
    const files = new Map<string, string>();
    for (const resource of resources) {
      files.set(
        `show/${resource.name}.json`,
        showResource(resource, {
          defaults: this.dialect === "current",
          dialect: this.dialect,
          overrides,
        }),
      );
      if (this.dialect === "9.22") {
        files.set(
          `show-defaults/${resource.name}.json`,
          showResource(resource, { defaults: true, dialect: "9.22", overrides }),
        );
      }
      files.set(
        `status/${resource.name}.json`,
        statusResource(resource, this.dialect, {
          resyncDone: this.#resyncDone,
          pathEstablished: this.#pathEstablished,
        }),
      );
      for (const [name, text] of this.#demotionFiles(resource)) {
        files.set(`demote/${resource.name}/${name}`, text);
      }
    }
    files.set("resources", resources.map((r) => `${r.name}\n`).join(""));
    files.set("now.txt", resources.flatMap((r) => this.#dumpOf(r)).map((l) => `${l}\n`).join(""));
    const last = ["resources", "now.txt"];
    for (const [path, text] of [...files].sort(([a], [b]) => last.indexOf(a) - last.indexOf(b))) {
      // The script's own `secondary` edits now.txt, so the dump is always written.
      if (!last.includes(path) && this.#written.get(path) === text) continue;
      await this.#state.write(path, text);
      this.#written.set(path, text);
    }
    for (const path of [...this.#written.keys()]) {
      if (files.has(path)) continue;
      await this.#state.remove(path);
      this.#written.delete(path);
    }
  }
}

/**
 * Answers requests that the script hands over (see
 * {@linkcode FakeDrbd.serveCommands}).
 */
class CommandServer {
  readonly #dir: string;
  readonly #handler: FakeCommandHandler;
  readonly #watcher: Deno.FsWatcher;
  readonly #poll: ReturnType<typeof setInterval>;
  readonly #seen = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
  #watching: Promise<void>;
  #stopped = false;

  constructor(dir: string, handler: FakeCommandHandler) {
    this.#dir = dir;
    this.#handler = handler;
    this.#watcher = Deno.watchFs(`${dir}/requests`, { recursive: false });
    this.#watching = this.#watch();
    this.#poll = setInterval(() => this.#scan(), 100);
    this.#scan();
  }

  async #watch(): Promise<void> {
    try {
      for await (const _event of this.#watcher) this.#scan();
    } catch {
      // Closed.
    }
  }

  #scan(): void {
    if (this.#stopped) return;
    const scan = (async () => {
      try {
        for await (const entry of Deno.readDir(`${this.#dir}/requests`)) {
          if (this.#stopped || this.#seen.has(entry.name)) continue;
          this.#seen.add(entry.name);
          this.#track(this.#answer(entry.name));
        }
      } catch {
        // The state directory is being removed.
      }
    })();
    this.#track(scan);
  }

  #track(promise: Promise<void>): void {
    this.#inFlight.add(promise);
    promise.finally(() => this.#inFlight.delete(promise));
  }

  async #answer(name: string): Promise<void> {
    const request = `${this.#dir}/requests/${name}`;
    let text: string;
    try {
      text = await Deno.readTextFile(request);
      await Deno.remove(request);
    } catch {
      // Answered already (two scans listed it), or the directory is gone.
      this.#seen.delete(name);
      return;
    }
    let answer: FakeAnswer;
    try {
      answer = await this.#handler(text.split("\x1f").slice(0, -1));
    } catch (err) {
      answer = { code: 20, stderr: `fake drbdsetup: ${err instanceof Error ? err.message : err}` };
    }
    const stderr = answer.stderr === "" || answer.stderr.endsWith("\n")
      ? answer.stderr
      : `${answer.stderr}\n`;
    try {
      const response = `${this.#dir}/responses/${name}`;
      await Deno.writeTextFile(`${response}.tmp`, `${answer.code}\n${stderr}`);
      await Deno.rename(`${response}.tmp`, response);
      // Opened for reading and writing, so the open never waits for a reader.
      const wake = await Deno.open(`${response}.wake`, { read: true, write: true });
      try {
        await wake.write(new Uint8Array([10]));
      } finally {
        wake.close();
      }
    } catch {
      // The caller gave up waiting (and removed its FIFO), or the directory is gone.
    } finally {
      this.#seen.delete(name);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#poll);
    this.#watcher.close();
    await this.#watching;
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }
}
