/**
 * Parser of `drbdsetup events2` lines (DRBD_FORMATS.md §4) and the state they
 * build up.
 *
 * {@linkcode parseEvents2Line} turns one line into an {@linkcode Events2Line}
 * (or an error value: it never throws). {@linkcode Events2State} applies those
 * lines to a set of resources and hands out {@linkcode DrbdResource} copies,
 * resources sorted by name, connections by name, devices by volume.
 *
 * Accepted: `exists`, `create`, `change`, `destroy` and `rename` of resources,
 * devices, connections and peer devices; path and helper lines (checked,
 * otherwise ignored); an optional `--timestamps` prefix; the `exists -` end
 * of the initial dump; `change` lines that carry only the changed groups,
 * including bare identity-only peer-device lines; statistics keys of any
 * size (they are not read). The `--diff` form is reported as an error line.
 *
 * @module
 */

import type { DrbdConnection, DrbdDevice, DrbdPeerDevice, DrbdResource, Role } from "./model.ts";

/** Verbs that can start an events2 line. */
export type Events2Verb =
  | "exists"
  | "create"
  | "change"
  | "destroy"
  | "call"
  | "response"
  | "rename";

/** Objects an events2 line can be about. */
export type Events2Object =
  | "resource"
  | "device"
  | "connection"
  | "peer-device"
  | "path"
  | "helper";

/** One parsed events2 line. */
export type Events2Line =
  /** `exists -`: the initial dump is complete. */
  | { kind: "end-of-dump"; timestamp: string | undefined }
  /** A line about an object, its `key:value` fields in printed order. */
  | {
    kind: "object";
    verb: Events2Verb;
    object: Events2Object;
    fields: Map<string, string>;
    timestamp: string | undefined;
  }
  /** An empty line (drbdsetup prints none; tolerated). */
  | { kind: "blank" };

/** A line that could not be parsed or applied. */
export interface Events2Error {
  /** Marks the error variant. */
  kind: "error";
  /** The offending line as received. */
  line: string;
  /** What was expected and what was seen. */
  message: string;
}

const VERBS: ReadonlySet<string> = new Set([
  "exists",
  "create",
  "change",
  "destroy",
  "call",
  "response",
  "rename",
]);
const OBJECTS: ReadonlySet<string> = new Set([
  "resource",
  "device",
  "connection",
  "peer-device",
  "path",
  "helper",
]);
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?$/;

function lineError(line: string, message: string): Events2Error {
  return { kind: "error", line, message };
}

/**
 * Parses one events2 line (without its newline). Never throws: a line that
 * does not follow the grammar of §4.1 gives an {@linkcode Events2Error}.
 * Fields are split at the first colon only, since values may contain colons.
 */
export function parseEvents2Line(line: string): Events2Line | Events2Error {
  const trimmed = line.endsWith("\r") ? line.slice(0, -1) : line;
  if (trimmed.trim() === "") return { kind: "blank" };
  const tokens = trimmed.split(" ").filter((token) => token !== "");
  let timestamp: string | undefined;
  if (tokens.length > 0 && TIMESTAMP.test(tokens[0])) {
    timestamp = tokens.shift();
  }
  const [verb, object, ...rest] = tokens;
  if (verb === undefined || !VERBS.has(verb)) {
    return lineError(
      line,
      `Expected an events2 verb (exists, create, change, destroy, call, response, rename), ` +
        `got ${JSON.stringify(verb ?? "")}`,
    );
  }
  if (verb === "exists" && object === "-" && rest.length === 0) {
    return { kind: "end-of-dump", timestamp };
  }
  if (object === undefined || !OBJECTS.has(object)) {
    return lineError(
      line,
      `Expected an events2 object (resource, device, connection, peer-device, path, helper) ` +
        `after "${verb}", got ${JSON.stringify(object ?? "")}`,
    );
  }
  const fields = new Map<string, string>();
  for (const token of rest) {
    const colon = token.indexOf(":");
    if (colon <= 0) {
      return lineError(line, `Expected key:value fields, got ${JSON.stringify(token)}`);
    }
    fields.set(token.slice(0, colon), token.slice(colon + 1));
  }
  return {
    kind: "object",
    verb: verb as Events2Verb,
    object: object as Events2Object,
    fields,
    timestamp,
  };
}

/** The outcome of applying one line to an {@linkcode Events2State}. */
export type Events2Applied =
  /** Applied. `changed` says whether any resource changed; `endOfDump` marks `exists -`. */
  | { kind: "applied"; changed: boolean; endOfDump: boolean }
  /** Not applied; the state is as before the line. */
  | Events2Error;

/** Thrown inside this module to abandon a line; never escapes it. */
class LineProblem extends Error {}

function problem(message: string): never {
  throw new LineProblem(message);
}

function roleOf(value: string): Role {
  return value === "Primary" || value === "Secondary" ? value : "Unknown";
}

function yesNo(key: string, value: string): boolean {
  if (value === "yes") return true;
  if (value === "no") return false;
  return problem(`Expected ${key}:yes or ${key}:no, got ${key}:${value}`);
}

function yesNoUnknown(key: string, value: string): boolean | undefined {
  if (value === "unknown") return undefined;
  return yesNo(key, value);
}

function integer(key: string, value: string): number {
  if (!/^-?\d+$/.test(value)) return problem(`Expected a number for ${key}, got ${key}:${value}`);
  const number = Number(value);
  if (!Number.isSafeInteger(number)) {
    return problem(`Expected a number for ${key} small enough to use, got ${key}:${value}`);
  }
  return number;
}

function text(key: string, value: string): string {
  if (value === "") return problem(`Expected a value for ${key}, got an empty one`);
  return value;
}

interface Suspension {
  user: boolean;
  noData: boolean;
  fencing: boolean;
  quorum: boolean;
}

function suspensionOf(value: string): Suspension {
  const reasons = { user: false, noData: false, fencing: false, quorum: false };
  if (value === "no") return reasons;
  for (const reason of value.split(",")) {
    if (reason === "user") reasons.user = true;
    else if (reason === "no-data") reasons.noData = true;
    else if (reason === "fencing") reasons.fencing = true;
    else if (reason === "quorum") reasons.quorum = true;
    else if (reason === "") problem(`Expected suspended:no or a list of reasons, got ${value}`);
    // A reason newer than this code knows: not representable, ignored.
  }
  return reasons;
}

/** Reads fields of one line, remembering which ones were asked for. */
class FieldReader {
  #fields: Map<string, string>;
  #required: boolean;

  constructor(fields: Map<string, string>, required: boolean) {
    this.#fields = fields;
    this.#required = required;
  }

  /** The identity value `key`, which every line must carry. */
  identity(key: string): string {
    const value = this.#fields.get(key);
    if (value === undefined) return problem(`Expected the identity key ${key}:, it is missing`);
    return text(key, value);
  }

  has(key: string): boolean {
    return this.#fields.has(key);
  }

  /**
   * The state value `key`: on exists/create lines it must be present (unless
   * `optional`), on change lines undefined means "did not change".
   */
  state(key: string, optional = false): string | undefined {
    const value = this.#fields.get(key);
    if (value === undefined && this.#required && !optional) {
      return problem(`Expected ${key}: on a full line, it is missing`);
    }
    return value;
  }
}

interface ConnectionEntry {
  connection: Omit<DrbdConnection, "peerDevices">;
  peerDevices: Map<number, DrbdPeerDevice>;
}

interface ResourceEntry {
  resource: Omit<DrbdResource, "devices" | "connections" | "config">;
  devices: Map<number, DrbdDevice>;
  connections: Map<number, ConnectionEntry>;
}

function byName(a: { name: string }, b: { name: string }): number {
  // Byte-wise like drbdsetup's strcmp: "r10" before "r2".
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function byVolume(a: { volume: number }, b: { volume: number }): number {
  return a.volume - b.volume;
}

/**
 * DRBD state built from events2 lines. Lines are applied one at a time; a
 * line that cannot be parsed, refers to an object the state does not have, or
 * carries an impossible value is rejected as a whole with an
 * {@linkcode Events2Error} and leaves the state unchanged.
 */
export class Events2State {
  #resources = new Map<string, ResourceEntry>();
  #dumpComplete = false;
  #version = 0;

  /** Counts the object lines applied: unchanged while the state is. */
  get version(): number {
    return this.#version;
  }

  /** True once `exists -` was applied: the initial dump is complete. */
  get dumpComplete(): boolean {
    return this.#dumpComplete;
  }

  /** Parses and applies one line. Never throws. */
  apply(line: string): Events2Applied {
    const parsed = parseEvents2Line(line);
    if (parsed.kind === "error") return parsed;
    return this.applyLine(parsed, line);
  }

  /** Applies an already parsed line; `raw` is used in error reports. */
  applyLine(parsed: Events2Line, raw: string): Events2Applied {
    if (parsed.kind === "blank") return { kind: "applied", changed: false, endOfDump: false };
    if (parsed.kind === "end-of-dump") {
      this.#dumpComplete = true;
      return { kind: "applied", changed: false, endOfDump: true };
    }
    for (const [key, value] of parsed.fields) {
      if (value.includes("->")) {
        return lineError(
          raw,
          `Expected plain values, got ${key}:${value} (the events2 --diff form is not supported)`,
        );
      }
    }
    try {
      const before = this.#snapshotOf(parsed);
      this.#version++;
      this.#applyObject(parsed);
      const after = this.#snapshotOf(parsed);
      return { kind: "applied", changed: before !== after, endOfDump: false };
    } catch (err) {
      if (err instanceof LineProblem) return lineError(raw, err.message);
      throw err;
    }
  }

  /** The resources, deep copies, sorted; `config` is undefined. */
  resources(): DrbdResource[] {
    const resources: DrbdResource[] = [];
    for (const entry of this.#resources.values()) {
      const connections: DrbdConnection[] = [];
      for (const connectionEntry of entry.connections.values()) {
        connections.push({
          ...connectionEntry.connection,
          peerDevices: [...connectionEntry.peerDevices.values()].map((pd) => ({ ...pd }))
            .sort(byVolume),
        });
      }
      resources.push({
        ...entry.resource,
        suspended: { ...entry.resource.suspended },
        devices: [...entry.devices.values()].map((device) => ({ ...device })).sort(byVolume),
        connections: connections.sort(byName),
        config: undefined,
      });
    }
    return resources.sort(byName);
  }

  /** The part of the state a line can touch, serialized, to tell whether it changed. */
  #snapshotOf(parsed: Extract<Events2Line, { kind: "object" }>): string {
    return JSON.stringify(this.#touchable(parsed));
  }

  #touchable(parsed: Extract<Events2Line, { kind: "object" }>): unknown {
    if (parsed.object === "path" || parsed.object === "helper") return null;
    const name = parsed.fields.get("name");
    const entry = name === undefined ? undefined : this.#resources.get(name);
    if (parsed.verb === "rename") {
      const newName = parsed.fields.get("new_name");
      return [
        entry === undefined ? null : name,
        newName === undefined ? null : this.#resources.has(newName),
      ];
    }
    if (entry === undefined) return null;
    return {
      resource: entry.resource,
      devices: [...entry.devices.entries()],
      connections: [...entry.connections.entries()].map((
        [id, c],
      ) => [id, c.connection, [...c.peerDevices.entries()]]),
    };
  }

  #applyObject(line: Extract<Events2Line, { kind: "object" }>): void {
    const full = line.verb === "exists" || line.verb === "create";
    const fields = new FieldReader(line.fields, full);
    const name = fields.identity("name");
    if (line.verb === "rename") {
      if (line.object !== "resource") {
        problem(`Expected rename only for a resource, got rename ${line.object}`);
      }
      this.#rename(name, fields.identity("new_name"));
      return;
    }
    if (line.verb === "call" || line.verb === "response") {
      if (line.object !== "helper") {
        problem(`Expected ${line.verb} only for a helper, got ${line.verb} ${line.object}`);
      }
      fields.identity("helper");
      return;
    }
    switch (line.object) {
      case "resource":
        return this.#applyResource(line.verb, name, fields);
      case "device":
        return this.#applyDevice(line.verb, name, fields);
      case "connection":
        return this.#applyConnection(line.verb, name, fields);
      case "peer-device":
        return this.#applyPeerDevice(line.verb, name, fields);
      case "path":
        // Paths are not part of the model; check the identity of the connection only.
        integer("peer-node-id", fields.identity("peer-node-id"));
        return;
      case "helper":
        problem(`Expected call or response for a helper, got ${line.verb} helper`);
    }
  }

  #rename(oldName: string, newName: string): void {
    const entry = this.#resources.get(oldName);
    if (entry === undefined) problem(`Expected a known resource to rename, got ${oldName}`);
    if (oldName === newName) return;
    if (this.#resources.has(newName)) {
      problem(`Expected a new name for resource ${oldName}, but ${newName} exists already`);
    }
    this.#resources.delete(oldName);
    entry.resource.name = newName;
    this.#resources.set(newName, entry);
  }

  #resourceEntry(name: string, what: string): ResourceEntry {
    const entry = this.#resources.get(name);
    if (entry === undefined) problem(`Expected ${what} of a known resource, got unknown ${name}`);
    return entry;
  }

  #applyResource(verb: Events2Verb, name: string, fields: FieldReader): void {
    if (verb === "destroy") {
      this.#resources.delete(name);
      return;
    }
    const role = fields.state("role");
    const suspended = fields.state("suspended");
    const forceIo = fields.state("force-io-failures");
    // may_promote appeared in drbd-utils 9.14; without it the value is unknown.
    const mayPromote = fields.state("may_promote", true);
    const score = fields.state("promotion_score", true);
    const update = {
      role: role === undefined ? undefined : roleOf(role),
      suspended: suspended === undefined ? undefined : suspensionOf(suspended),
      forceIoFailures: forceIo === undefined ? undefined : yesNo("force-io-failures", forceIo),
      mayPromote: mayPromote === undefined ? undefined : yesNo("may_promote", mayPromote),
      promotionScore: score === undefined ? undefined : integer("promotion_score", score),
    };
    if (verb === "exists" || verb === "create") {
      // A full line starts the resource afresh; its objects follow.
      this.#resources.set(name, {
        resource: {
          name,
          role: update.role!,
          suspended: update.suspended!,
          forceIoFailures: update.forceIoFailures!,
          mayPromote: update.mayPromote,
          promotionScore: update.promotionScore ?? 0,
        },
        devices: new Map(),
        connections: new Map(),
      });
      return;
    }
    const resource = this.#resourceEntry(name, "a change").resource;
    if (update.role !== undefined) resource.role = update.role;
    if (update.suspended !== undefined) resource.suspended = update.suspended;
    if (update.forceIoFailures !== undefined) resource.forceIoFailures = update.forceIoFailures;
    if (update.mayPromote !== undefined) resource.mayPromote = update.mayPromote;
    if (update.promotionScore !== undefined) resource.promotionScore = update.promotionScore;
  }

  #applyDevice(verb: Events2Verb, name: string, fields: FieldReader): void {
    const volume = integer("volume", fields.identity("volume"));
    if (verb === "destroy") {
      this.#resources.get(name)?.devices.delete(volume);
      return;
    }
    const entry = this.#resourceEntry(name, `device ${volume}`);
    const minor = integer("minor", fields.identity("minor"));
    // disk, client, open, quorum (and backing_dev) are printed as one group.
    const disk = fields.state("disk");
    const groupPrinted = disk !== undefined || fields.has("quorum") || fields.has("client");
    const group = groupPrinted
      ? {
        diskState: text("disk", disk ?? problem("Expected disk: with client: and quorum:")),
        client: fields.has("client") ? yesNoUnknown("client", fields.state("client")!) : undefined,
        // No open: at all before drbd-utils 9.29.
        open: fields.has("open") ? yesNoUnknown("open", fields.state("open")!) : undefined,
        quorum: yesNo("quorum", fields.state("quorum", true) ?? problem("Expected quorum:")),
      }
      : undefined;
    if (verb === "exists" || verb === "create") {
      entry.devices.set(volume, { volume, minor, ...group! });
      return;
    }
    const device = entry.devices.get(volume);
    if (device === undefined) problem(`Expected a change of a known device, got ${name}/${volume}`);
    device.minor = minor;
    if (group !== undefined) Object.assign(device, group);
  }

  #connectionId(fields: FieldReader): number {
    return integer("peer-node-id", fields.identity("peer-node-id"));
  }

  #applyConnection(verb: Events2Verb, name: string, fields: FieldReader): void {
    const peerNodeId = this.#connectionId(fields);
    if (verb === "destroy") {
      this.#resources.get(name)?.connections.delete(peerNodeId);
      return;
    }
    const entry = this.#resourceEntry(name, `connection ${peerNodeId}`);
    const connName = fields.identity("conn-name");
    const state = fields.state("connection");
    const role = fields.state("role");
    if (verb === "exists" || verb === "create") {
      entry.connections.set(peerNodeId, {
        connection: {
          peerNodeId,
          name: connName,
          connectionState: text("connection", state!),
          peerRole: roleOf(role!),
        },
        peerDevices: new Map(),
      });
      return;
    }
    const connection = entry.connections.get(peerNodeId)?.connection;
    if (connection === undefined) {
      problem(`Expected a change of a known connection, got ${name}/${connName}`);
    }
    connection.name = connName;
    if (state !== undefined) connection.connectionState = text("connection", state);
    if (role !== undefined) connection.peerRole = roleOf(role);
  }

  #applyPeerDevice(verb: Events2Verb, name: string, fields: FieldReader): void {
    const peerNodeId = this.#connectionId(fields);
    const volume = integer("volume", fields.identity("volume"));
    if (verb === "destroy") {
      this.#resources.get(name)?.connections.get(peerNodeId)?.peerDevices.delete(volume);
      return;
    }
    const connName = fields.identity("conn-name");
    const connection = this.#resourceEntry(name, `peer device ${connName}/${volume}`)
      .connections.get(peerNodeId);
    if (connection === undefined) {
      problem(`Expected a peer device of a known connection, got ${name}/${connName}`);
    }
    const replication = fields.state("replication");
    // peer-disk and peer-client are printed together.
    const peerDisk = fields.state("peer-disk");
    const peerClient = fields.state("peer-client", true);
    const update = {
      replicationState: replication === undefined ? undefined : text("replication", replication),
      peerDiskState: peerDisk === undefined ? undefined : text("peer-disk", peerDisk),
      peerClient: peerClient === undefined ? undefined : yesNoUnknown("peer-client", peerClient),
    };
    if (verb === "exists" || verb === "create") {
      connection.peerDevices.set(volume, {
        volume,
        replicationState: update.replicationState!,
        peerDiskState: update.peerDiskState!,
        peerClient: update.peerClient,
      });
      return;
    }
    const peerDevice = connection.peerDevices.get(volume);
    if (peerDevice === undefined) {
      problem(`Expected a change of a known peer device, got ${name}/${connName}/${volume}`);
    }
    if (update.replicationState !== undefined) {
      peerDevice.replicationState = update.replicationState;
    }
    if (update.peerDiskState !== undefined) {
      peerDevice.peerDiskState = update.peerDiskState;
      peerDevice.peerClient = update.peerClient;
    }
  }
}

/** The result of {@linkcode parseEvents2Dump}. */
export interface Events2Dump {
  /** The resources, sorted, `config` undefined. */
  resources: DrbdResource[];
  /** True when the text ended the dump with `exists -`. */
  complete: boolean;
  /** One error per line that could not be applied. */
  errors: Events2Error[];
}

/**
 * Parses the whole output of `drbdsetup events2 --now` (or any run of
 * lines). Never throws; bad lines are listed in `errors`.
 */
export function parseEvents2Dump(output: string): Events2Dump {
  const state = new Events2State();
  const errors: Events2Error[] = [];
  const lines = output.split("\n");
  if (lines.at(-1) === "") lines.pop();
  for (const line of lines) {
    const applied = state.apply(line);
    if (applied.kind === "error") errors.push(applied);
  }
  return { resources: state.resources(), complete: state.dumpComplete, errors };
}
