/**
 * The command line: `ha-controller [run|status] [flags]`, `--help`, `--version`.
 *
 * Every flag is described once, in {@link flagDefinitions}; the parser, the
 * `--help` text and the README's flag table all follow that array. Any
 * mistake on the command line becomes a {@link UsageError} with a one-line
 * message; `main.ts` prints it with {@link usageHint} and exits with 2.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DurationError, formatDuration, parseDuration } from "./duration.ts";
import { defaultOptions, type Options } from "./options.ts";
import { version } from "./version.ts";
import { parseBindAddress } from "./http.ts";

/** A mistake on the command line; the message is one line, meant for the user. */
export class UsageError extends Error {
  /** Builds the error from its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** What `main.ts` prints after a {@link UsageError}'s message. */
export const usageHint = "run 'ha-controller --help' for usage";

/** Output format of the `status` command. */
export type OutputFormat = "table" | "json";

/** The result of parsing a command line. */
export type ParsedCommand =
  /** Run the agent, or print its view once (`status`). */
  | { command: "run" | "status"; options: Options; output: OutputFormat }
  /** Print {@link helpText} and exit 0. */
  | { command: "help" }
  /** Print the version and exit 0. */
  | { command: "version" };

/** How a flag's value is read. */
export type FlagKind = "duration" | "int" | "string" | "bool";

/** One command-line flag, as shown in `--help` and in the README. */
export interface FlagDefinition {
  /** Long name without the dashes, e.g. `fail-over-timeout`. */
  readonly name: string;
  /** How the value is read. */
  readonly kind: FlagKind;
  /** Placeholder shown as `<value>` after the name; empty for boolean flags. */
  readonly value: string;
  /** The default as shown in `--help`, e.g. `5s` or `$NODE_NAME`. */
  readonly default: string;
  /** One sentence, without trailing period. */
  readonly description: string;
}

/** Where a flag's value goes: an option, or the status output format. */
type Target = keyof Options | "output";

/** A flag plus what the parser needs to know about it. */
interface FlagSpec extends FlagDefinition {
  /** What the parsed value is stored in. */
  readonly target: Target;
  /** Completes "expected ..." in messages about a bad or missing value. */
  readonly expected: string;
}

const durationExpected = "a duration such as 5s or 1m0s";
const intExpected = "a whole number of 0 or more";
const boolExpected = "true or false";

function durationFlag(
  name: string,
  target: keyof Options,
  description: string,
): FlagSpec {
  const milliseconds = defaultOptions[target] as number;
  return {
    name,
    kind: "duration",
    value: "duration",
    default: formatDuration(milliseconds),
    description,
    target,
    expected: durationExpected,
  };
}

function intFlag(name: string, target: keyof Options, description: string): FlagSpec {
  return {
    name,
    kind: "int",
    value: "int",
    default: String(defaultOptions[target]),
    description,
    target,
    expected: intExpected,
  };
}

function boolFlag(name: string, target: keyof Options, description: string): FlagSpec {
  return {
    name,
    kind: "bool",
    value: "",
    default: String(defaultOptions[target]),
    description,
    target,
    expected: boolExpected,
  };
}

const flagSpecs: readonly FlagSpec[] = [
  boolFlag("disable-node-taints", "disableNodeTaints", "Never add or remove node taints"),
  durationFlag(
    "drbd-status-interval",
    "drbdStatusInterval",
    "How often to re-read the whole DRBD state",
  ),
  boolFlag("dry-run", "dryRun", "Read and decide, print the intended actions, change nothing"),
  durationFlag(
    "fail-over-timeout",
    "failOverTimeout",
    "How long a fail-over condition must last before the agent acts",
  ),
  boolFlag(
    "fail-over-unsafe-pods",
    "failOverUnsafePods",
    "Also fail over pods with volumes not known to be safe, such as hostPath",
  ),
  intFlag(
    "grace-period-seconds",
    "gracePeriodSeconds",
    "Grace period of evictions of pods on a Ready node",
  ),
  {
    name: "health-bind-address",
    kind: "string",
    value: "host:port",
    default: defaultOptions.healthBindAddress,
    description: "Address of the /healthz and /metrics server; empty disables it",
    target: "healthBindAddress",
    expected: "an address such as :8000 or 127.0.0.1:8000, or nothing to disable the server",
  },
  {
    name: "kubeconfig",
    kind: "string",
    value: "path",
    // Looked up when connecting, as kubectl does: lib/kube/client.ts locateKubeConfig.
    default: "$KUBECONFIG, ~/.kube/config, then in-cluster",
    description: "Path of a kubeconfig file",
    target: "kubeconfig",
    expected: "a file path",
  },
  {
    name: "log-format",
    kind: "string",
    value: "text|json",
    default: defaultOptions.logFormat,
    description: "Log format",
    target: "logFormat",
    expected: "text or json",
  },
  {
    name: "node-name",
    kind: "string",
    value: "name",
    default: "$NODE_NAME",
    description: "Kubernetes node this agent runs on; required",
    target: "nodeName",
    expected: "a node name",
  },
  durationFlag(
    "operations-timeout",
    "operationsTimeout",
    "Bound on each action, and the time within which an action is not repeated",
  ),
  boolFlag(
    "out-of-service-taint",
    "outOfServiceTaint",
    "Also taint a dead lost node node.kubernetes.io/out-of-service, so Kubernetes detaches all its volumes at once",
  ),
  {
    name: "output",
    kind: "string",
    value: "table|json",
    default: "table",
    description: "Output format of the status command; -o for short",
    target: "output",
    expected: "table or json",
  },
  durationFlag(
    "reconcile-interval",
    "reconcileInterval",
    "Longest time between two decision cycles",
  ),
  durationFlag(
    "request-timeout",
    "requestTimeout",
    "Timeout of one Kubernetes API request, watches excepted; 0 means the operations timeout",
  ),
  durationFlag(
    "resync-interval",
    "resyncInterval",
    "How often to list every watched Kubernetes kind again",
  ),
  {
    name: "satellite-pod-label",
    kind: "string",
    value: "selector",
    default: defaultOptions.satellitePodLabel,
    description: "Label selector of the LINSTOR satellite pods",
    target: "satellitePodLabel",
    expected: "a label selector such as app.kubernetes.io/component=linstor-satellite",
  },
  intFlag("v", "v", "Log verbosity: 0 info, 1 and more debug"),
];

/**
 * Every flag of `run` and `status`, sorted by name. `--help` (`-h`) and
 * `--version` are not in this list; `--help` shows them under "Usage".
 */
export const flagDefinitions: readonly FlagDefinition[] = flagSpecs.map((spec) => ({
  name: spec.name,
  kind: spec.kind,
  value: spec.value,
  default: spec.default,
  description: spec.description,
}));

const specsByName: ReadonlyMap<string, FlagSpec> = new Map(
  flagSpecs.map((spec) => [spec.name, spec]),
);

/**
 * Parses the command line (without the program name) into a command.
 *
 * Flags take `--name=value` or `--name value`; boolean flags take no value or
 * `--name=true` / `--name=false`. The command (`run`, the default, or
 * `status`) may stand before, between or after the flags. `env` supplies
 * the NODE_NAME default. `options.kubeconfig` is the `--kubeconfig` path or
 * empty: `$KUBECONFIG`, `~/.kube/config` and the in-cluster config are looked
 * up when connecting, where the Deno permissions are known.
 *
 * @throws {UsageError} on an unknown flag, a bad or missing value, an unknown
 *   command, an extra argument, `--output` without `status`, or a missing node name.
 */
export function parseCommandLine(
  givenArgs: string[],
  env: Record<string, string | undefined>,
): ParsedCommand {
  const args = upstreamSpellings(givenArgs);
  rejectSingleDashLongFlags(args);
  rejectConnectionFlags(args);

  const parseOptions: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
    version: { type: "boolean" },
  };
  for (const spec of flagSpecs) {
    parseOptions[spec.name] = { type: spec.kind === "bool" ? "boolean" : "string" };
  }
  parseOptions["output"] = { type: "string", short: "o" };

  // Not strict: parseArgs' own errors are several sentences long and refuse
  // `--flag=false`. Every token is checked below instead, and anything
  // unknown is an error all the same.
  const { tokens } = parseArgs({
    args,
    options: parseOptions,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });

  const options: Options = { ...defaultOptions };
  let output: OutputFormat = "table";
  let outputGiven = false;
  let nodeNameGiven = false;
  let help = false;
  let showVersion = false;
  let command: "run" | "status" | undefined;
  let previousBoolFlag: string | undefined;

  for (const token of tokens) {
    if (token.kind === "option-terminator") {
      previousBoolFlag = undefined;
      continue;
    }
    if (token.kind === "positional") {
      if (command !== undefined) {
        throw new UsageError(
          `unexpected argument "${token.value}" after the command ${command}` +
            boolValueHint(previousBoolFlag, token.value),
        );
      }
      if (token.value === upstreamCommand) {
        command = "run";
        previousBoolFlag = undefined;
        continue;
      }
      if (token.value !== "run" && token.value !== "status") {
        throw new UsageError(
          `unknown command "${token.value}": expected run or status` +
            boolValueHint(previousBoolFlag, token.value),
        );
      }
      command = token.value;
      previousBoolFlag = undefined;
      continue;
    }

    previousBoolFlag = undefined;
    if (token.name === "help" || token.name === "version") {
      const on = readBool(token.rawName, token.value);
      if (token.name === "help") help = on;
      else showVersion = on;
      if (token.value === undefined) previousBoolFlag = token.rawName;
      continue;
    }
    const spec = specsByName.get(token.name);
    // parseArgs maps a short option to a long one by name; only -o is a real alias.
    const unknownShort = !token.rawName.startsWith("--") && token.rawName !== "-o";
    if (spec === undefined || unknownShort) {
      throw new UsageError(`unknown flag ${token.rawName}`);
    }
    const flag = `--${spec.name}`;
    if (spec.kind === "bool") {
      setOption(options, spec.target, readBool(flag, token.value));
      if (token.value === undefined) previousBoolFlag = flag;
      continue;
    }
    const value = token.value;
    if (value === undefined || (!token.inlineValue && /^-\D/.test(value))) {
      throw new UsageError(`missing value for flag ${flag}: expected ${spec.expected}`);
    }
    const parsed = readValue(spec, value);
    switch (spec.target) {
      case "output":
        output = parsed as OutputFormat;
        outputGiven = true;
        break;
      case "nodeName":
        options.nodeName = value;
        nodeNameGiven = true;
        break;
      default:
        setOption(options, spec.target, parsed);
    }
  }

  if (help) return { command: "help" };
  if (showVersion) return { command: "version" };

  const chosen = command ?? "run";
  if (outputGiven && chosen !== "status") {
    throw new UsageError("flag --output only applies to the status command");
  }
  if (!nodeNameGiven) options.nodeName = env["NODE_NAME"] ?? "";
  if (options.nodeName === "") {
    throw new UsageError(
      "missing node name: set the flag --node-name or the environment variable NODE_NAME",
    );
  }
  return { command: chosen, options, output };
}

/**
 * The upstream HA controller's image runs `/agent [flags]`: a DaemonSet
 * written for it (the Piraeus Operator's, its Helm chart's) passes `/agent`
 * as the first argument, which reaches this program as a command. It means
 * `run`.
 */
export const upstreamCommand = "/agent";

/**
 * The upstream agent's verbosity flag also takes one dash (`-v=1`, `-v 1`,
 * klog's spelling); here it is `--v`. Nothing after `--` is touched.
 */
function upstreamSpellings(args: string[]): string[] {
  const end = args.indexOf("--");
  return args.map((arg, i) => {
    if (end !== -1 && i > end) return arg;
    if (arg === "-v" || arg.startsWith("-v=")) return `-${arg}`;
    if (/^-v\d+$/.test(arg)) return `--v=${arg.slice(2)}`;
    return arg;
  });
}

/**
 * kubectl-style connection flags the upstream agent accepts (client-go's
 * genericclioptions) and this one does not: it reads a kubeconfig's current
 * context (`--kubeconfig`) or the in-cluster configuration.
 */
const connectionFlags = new Set([
  "as",
  "as-group",
  "as-uid",
  "cache-dir",
  "certificate-authority",
  "client-certificate",
  "client-key",
  "cluster",
  "context",
  "disable-compression",
  "insecure-skip-tls-verify",
  "namespace",
  "server",
  "tls-server-name",
  "token",
  "user",
]);

function rejectConnectionFlags(args: string[]): void {
  for (const arg of args) {
    if (arg === "--") return;
    const match = /^--([a-z-]+)(=.*)?$/.exec(arg);
    if (match === null || !connectionFlags.has(match[1])) continue;
    throw new UsageError(
      `unsupported flag ${arg.replace(/=.*/, "")}: the connection comes from --kubeconfig ` +
        "(its current context) or the in-cluster service account",
    );
  }
}

/** Go programs accept `-flag`; say how to write it here instead of "unknown flag -n". */
function rejectSingleDashLongFlags(args: string[]): void {
  for (const arg of args) {
    if (arg === "--") return;
    const match = /^-([a-z][a-z-]*)(=.*)?$/.exec(arg);
    if (match === null) continue;
    const name = match[1];
    if (specsByName.has(name) || name === "help" || name === "version") {
      throw new UsageError(`unknown flag -${name}: did you mean --${name}?`);
    }
  }
}

/** Tells the user how to give a boolean flag a value, when that is what they tried. */
function boolValueHint(previousBoolFlag: string | undefined, value: string): string {
  if (previousBoolFlag === undefined || (value !== "true" && value !== "false")) return "";
  return ` (write ${previousBoolFlag}=${value} to set a boolean flag)`;
}

function readBool(flag: string, value: string | undefined): boolean {
  if (value === undefined || value === "true") return true;
  if (value === "false") return false;
  throw new UsageError(`invalid value "${value}" for flag ${flag}: expected ${boolExpected}`);
}

function readValue(spec: FlagSpec, value: string): string | number {
  const invalid = (expected: string) =>
    new UsageError(`invalid value "${value}" for flag --${spec.name}: expected ${expected}`);
  switch (spec.kind) {
    case "duration":
      try {
        return parseDuration(value);
      } catch (error) {
        if (error instanceof DurationError) throw invalid(error.expected);
        throw error;
      }
    case "int": {
      const number = Number(value);
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(number)) throw invalid(spec.expected);
      return number;
    }
    case "bool":
      throw new Error(`Expected a flag with a value, got the boolean flag --${spec.name}`);
    case "string":
      break;
  }
  switch (spec.target) {
    case "logFormat":
      if (value !== "text" && value !== "json") throw invalid(spec.expected);
      break;
    case "output":
      if (value !== "table" && value !== "json") throw invalid(spec.expected);
      break;
    case "satellitePodLabel":
      if (value.trim() === "") throw invalid(spec.expected);
      break;
    case "healthBindAddress": {
      if (value === "") break;
      // The same parser the health server uses, so what passes here binds there.
      try {
        parseBindAddress(value);
      } catch {
        throw invalid(spec.expected);
      }
      break;
    }
  }
  return value;
}

function setOption(options: Options, target: Target, value: string | number | boolean): void {
  (options as unknown as Record<string, unknown>)[target] = value;
}

/**
 * The `--help` text: usage, commands, and one line per flag of
 * {@link flagDefinitions} (`  --name <value>   description (default X)`).
 * No trailing newline, ready for `console.log`.
 */
export function helpText(): string {
  const names = flagDefinitions.map((flag) =>
    flag.value === "" ? `--${flag.name}` : `--${flag.name} <${flag.value}>`
  );
  const width = Math.max(...names.map((name) => name.length)) + 3;
  const flagLines = flagDefinitions.map((flag, i) => {
    const shownDefault = flag.default === "" ? "" : ` (default ${flag.default})`;
    return `  ${names[i].padEnd(width)}${flag.description}${shownDefault}`;
  });
  return [
    `ha-controller ${version}: fails DRBD-backed Kubernetes workloads over when a node is lost`,
    "",
    "Usage:",
    "  ha-controller [run] [flags]      Run the agent on this node (the default command)",
    "  ha-controller status [flags]     Print this node's DRBD resources and the agent's plan, once",
    "  ha-controller /agent [flags]     The same as run: the upstream HA controller's command line",
    "  ha-controller --version          Print the version",
    "  ha-controller --help             Print this help (also -h)",
    "",
    "Flags:",
    ...flagLines,
    "",
    "Durations are written like 500ms, 5s, 1m0s or 1h2m3.5s. Boolean flags take no value,",
    "or =true or =false. Values follow the flag as --flag=value or --flag value.",
    "The upstream HA controller's -v N, -v=N and -vN set the log verbosity too.",
  ].join("\n");
}
