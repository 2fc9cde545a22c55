/**
 * Parser of `drbdsetup show --json` (DRBD_FORMATS.md §3), usually run with
 * `--show-defaults`: reads the four resource options the agent acts on.
 *
 * drbd-utils before 9.33 print only non-default values without
 * `--show-defaults`, and leave out `options` altogether when every resource
 * option is default; a missing key therefore means the kernel default (§3.4).
 *
 * @module
 */

import type { DrbdResourceConfig, QuorumPolicy } from "./model.ts";

/** Kernel defaults of the resource options the agent reads (§3.4). */
export const DEFAULT_RESOURCE_CONFIG: Readonly<DrbdResourceConfig> = Object.freeze({
  quorum: "off",
  onNoQuorum: "suspend-io",
  onNoDataAccessible: "io-error",
  onSuspendedPrimaryOutdated: "disconnect",
});

/** drbdsetup printed something that is not the expected show JSON. */
export class DrbdParseError extends Error {
  /** Builds the error with a message that says what was expected and what was seen. */
  constructor(message: string) {
    super(message);
    this.name = "DrbdParseError";
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  return typeof value === "object" ? "an object" : `${typeof value} ${String(value)}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads a quorum value: `off`, `majority`, `all`, or a node count (printed as
 * a string such as `"2"`; a JSON number is accepted too).
 */
export function parseQuorumPolicy(value: unknown): QuorumPolicy {
  if (value === "off" || value === "majority" || value === "all") return value;
  if (typeof value === "string" && /^\d+$/.test(value)) return Number(value);
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  throw new DrbdParseError(
    `Expected quorum "off", "majority", "all" or a node count, got ${describe(value)}`,
  );
}

function optionString(
  options: Record<string, unknown>,
  key: string,
  fallback: string,
  resource: string,
): string {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== "string" || value === "") {
    throw new DrbdParseError(
      `Expected options.${key} of resource ${resource} to be a name, got ${describe(value)}`,
    );
  }
  return value;
}

/**
 * Parses the stdout of `drbdsetup show --json [--show-defaults]` into the
 * configuration of every resource, by resource name. Throws
 * {@linkcode DrbdParseError} for text that is not JSON or not shaped like
 * show's output.
 */
export function parseShowJson(output: string): Map<string, DrbdResourceConfig> {
  let document: unknown;
  try {
    document = JSON.parse(output);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new DrbdParseError(
      `Expected JSON from drbdsetup show --json, got unreadable text: ${reason}`,
    );
  }
  if (!Array.isArray(document)) {
    throw new DrbdParseError(
      `Expected a JSON array of resources from drbdsetup show --json, got ${describe(document)}`,
    );
  }
  const configs = new Map<string, DrbdResourceConfig>();
  document.forEach((entry: unknown, index: number) => {
    if (!isObject(entry)) {
      throw new DrbdParseError(
        `Expected resource ${index} of show --json to be an object, got ${describe(entry)}`,
      );
    }
    const name = entry["resource"];
    if (typeof name !== "string" || name === "") {
      throw new DrbdParseError(
        `Expected a "resource" name in resource ${index} of show --json, got ${describe(name)}`,
      );
    }
    const options = entry["options"] ?? {};
    if (!isObject(options)) {
      throw new DrbdParseError(
        `Expected "options" of resource ${name} to be an object, got ${describe(options)}`,
      );
    }
    let quorum: QuorumPolicy;
    try {
      quorum = options["quorum"] === undefined
        ? DEFAULT_RESOURCE_CONFIG.quorum
        : parseQuorumPolicy(options["quorum"]);
    } catch (err) {
      throw new DrbdParseError(`Resource ${name}: ${(err as Error).message}`);
    }
    configs.set(name, {
      quorum,
      onNoQuorum: optionString(options, "on-no-quorum", DEFAULT_RESOURCE_CONFIG.onNoQuorum, name),
      onNoDataAccessible: optionString(
        options,
        "on-no-data-accessible",
        DEFAULT_RESOURCE_CONFIG.onNoDataAccessible,
        name,
      ),
      onSuspendedPrimaryOutdated: optionString(
        options,
        "on-suspended-primary-outdated",
        DEFAULT_RESOURCE_CONFIG.onSuspendedPrimaryOutdated,
        name,
      ),
    });
  });
  return configs;
}
