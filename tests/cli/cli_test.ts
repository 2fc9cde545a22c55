import assert from "node:assert/strict";
import {
  flagDefinitions,
  helpText,
  parseCommandLine,
  type ParsedCommand,
  UsageError,
  usageHint,
} from "../../lib/cli.ts";
import { defaultOptions, type Options } from "../../lib/options.ts";

const env = { NODE_NAME: "node-a" };

/** Parses a command line that must give `run` or `status`, and returns that. */
function parseRun(
  args: string[],
  environment: Record<string, string | undefined> = env,
): Extract<ParsedCommand, { options: Options }> {
  const parsed = parseCommandLine(args, environment);
  assert.ok(parsed.command === "run" || parsed.command === "status", JSON.stringify(parsed));
  return parsed;
}

/** Asserts that the command line fails with exactly this one-line message. */
function assertUsageError(
  args: string[],
  message: string,
  environment: Record<string, string | undefined> = env,
): void {
  assert.throws(() => parseCommandLine(args, environment), (error: unknown) => {
    assert.ok(error instanceof UsageError, `${JSON.stringify(args)}: ${error}`);
    assert.equal(error.message, message, JSON.stringify(args));
    assert.ok(!error.message.includes("\n"), "the message is one line");
    return true;
  });
}

Deno.test("no arguments runs the agent with every default", () => {
  assert.deepEqual(parseCommandLine([], { NODE_NAME: "node-a" }), {
    command: "run",
    output: "table",
    options: {
      nodeName: "node-a",
      kubeconfig: "",
      drbdStatusInterval: 5_000,
      failOverTimeout: 5_000,
      gracePeriodSeconds: 10,
      operationsTimeout: 60_000,
      reconcileInterval: 5_000,
      requestTimeout: 0,
      resyncInterval: 300_000,
      v: 0,
      disableNodeTaints: false,
      failOverUnsafePods: false,
      outOfServiceTaint: false,
      satellitePodLabel: "app.kubernetes.io/component=linstor-satellite",
      healthBindAddress: ":8000",
      dryRun: false,
      logFormat: "text",
    },
  });
});

Deno.test("run and status are the commands; status prints a table unless told json", () => {
  assert.equal(parseRun(["run"]).command, "run");
  const status = parseRun(["status"]);
  assert.equal(status.command, "status");
  assert.equal(status.output, "table");
  assert.equal(parseRun(["status", "-o", "json"]).output, "json");
  assert.equal(parseRun(["status", "-ojson"]).output, "json");
  assert.equal(parseRun(["status", "--output", "json"]).output, "json");
  assert.equal(parseRun(["status", "--output=json"]).output, "json");
  assert.equal(parseRun(["-o", "json", "status"]).output, "json");
  assert.equal(parseRun(["status", "--output=table"]).output, "table");
});

Deno.test("the command may stand before, between or after the flags", () => {
  for (
    const args of [
      ["status", "--dry-run", "--v=2"],
      ["--dry-run", "status", "--v=2"],
      ["--dry-run", "--v=2", "status"],
      ["--dry-run", "--v=2", "--", "status"],
    ]
  ) {
    const parsed = parseRun(args);
    assert.equal(parsed.command, "status", JSON.stringify(args));
    assert.equal(parsed.options.dryRun, true);
    assert.equal(parsed.options.v, 2);
  }
});

Deno.test("every valued flag accepts --flag=value and --flag value", () => {
  const values: [string, string, keyof Options, unknown][] = [
    ["drbd-status-interval", "10s", "drbdStatusInterval", 10_000],
    ["fail-over-timeout", "1m0s", "failOverTimeout", 60_000],
    ["grace-period-seconds", "30", "gracePeriodSeconds", 30],
    ["node-name", "node-b", "nodeName", "node-b"],
    ["operations-timeout", "1h2m3.5s", "operationsTimeout", 3_723_500],
    ["reconcile-interval", "500ms", "reconcileInterval", 500],
    ["request-timeout", "1.5s", "requestTimeout", 1_500],
    ["resync-interval", "0", "resyncInterval", 0],
    ["v", "3", "v", 3],
    ["kubeconfig", "/etc/kube/config", "kubeconfig", "/etc/kube/config"],
    ["satellite-pod-label", "app=satellite", "satellitePodLabel", "app=satellite"],
    ["health-bind-address", "127.0.0.1:9000", "healthBindAddress", "127.0.0.1:9000"],
    ["log-format", "json", "logFormat", "json"],
  ];
  for (const [flag, value, option, expected] of values) {
    assert.equal(parseRun([`--${flag}=${value}`]).options[option], expected, `--${flag}=`);
    assert.equal(parseRun([`--${flag}`, value]).options[option], expected, `--${flag} `);
  }
});

Deno.test("the last of a repeated flag wins", () => {
  assert.equal(parseRun(["--v=1", "--v=4"]).options.v, 4);
  assert.equal(parseRun(["--dry-run", "--dry-run=false"]).options.dryRun, false);
});

Deno.test("boolean flags take no value, =true or =false", () => {
  const booleans: [string, keyof Options][] = [
    ["disable-node-taints", "disableNodeTaints"],
    ["fail-over-unsafe-pods", "failOverUnsafePods"],
    ["dry-run", "dryRun"],
  ];
  for (const [flag, option] of booleans) {
    assert.equal(parseRun([]).options[option], false, flag);
    assert.equal(parseRun([`--${flag}`]).options[option], true, flag);
    assert.equal(parseRun([`--${flag}=true`]).options[option], true, flag);
    assert.equal(parseRun([`--${flag}=false`]).options[option], false, flag);
  }
});

Deno.test("the node name comes from --node-name, else NODE_NAME", () => {
  assert.equal(parseRun([], { NODE_NAME: "from-env" }).options.nodeName, "from-env");
  assert.equal(
    parseRun(["--node-name=from-flag"], { NODE_NAME: "from-env" }).options.nodeName,
    "from-flag",
  );
  assert.equal(parseRun(["--node-name", "from-flag"], {}).options.nodeName, "from-flag");
});

Deno.test("the kubeconfig option is the --kubeconfig path; $KUBECONFIG is looked up when connecting", () => {
  assert.equal(parseRun([], { NODE_NAME: "n" }).options.kubeconfig, "");
  // tests/kube/kubeconfig_test.ts covers $KUBECONFIG, ~/.kube/config and in-cluster.
  assert.equal(parseRun([], { NODE_NAME: "n", KUBECONFIG: "/k" }).options.kubeconfig, "");
  assert.equal(
    parseRun(["--kubeconfig=/flag"], { NODE_NAME: "n", KUBECONFIG: "/k" }).options.kubeconfig,
    "/flag",
  );
});

Deno.test("an empty --health-bind-address disables the server; IPv6 addresses work", () => {
  assert.equal(parseRun(["--health-bind-address="]).options.healthBindAddress, "");
  assert.equal(parseRun(["--health-bind-address", ""]).options.healthBindAddress, "");
  assert.equal(
    parseRun(["--health-bind-address=[::1]:8000"]).options.healthBindAddress,
    "[::1]:8000",
  );
  assert.equal(parseRun(["--health-bind-address=:0"]).options.healthBindAddress, ":0");
});

Deno.test("a negative duration given as a separate value is read as a value", () => {
  assertUsageError(
    ["--fail-over-timeout", "-5s"],
    'invalid value "-5s" for flag --fail-over-timeout: expected a duration that is not negative, such as 5s or 1m0s',
  );
});

Deno.test("--help and -h ask for help, even without a node name", () => {
  for (const args of [["--help"], ["-h"], ["status", "--help"], ["--help", "--version"]]) {
    assert.deepEqual(parseCommandLine(args, {}), { command: "help" }, JSON.stringify(args));
  }
  assert.equal(parseCommandLine(["--help=false"], env).command, "run");
});

Deno.test("the upstream agent's command line: /agent first, -v in every klog spelling", () => {
  for (const args of [["/agent", "-v=3"], ["/agent", "-v", "3"], ["-v3", "/agent"], ["--v=3"]]) {
    const parsed = parseRun(args);
    assert.equal(parsed.command, "run", JSON.stringify(args));
    assert.equal(parsed.options.v, 3, JSON.stringify(args));
  }
  // After "--" nothing is rewritten: a lone -v there is an extra argument.
  assertUsageError(["/agent", "--", "-v"], 'unexpected argument "-v" after the command run');
});

Deno.test("every mistake is a UsageError with one clear line", () => {
  const cases: [string[], string][] = [
    [["--foo"], "unknown flag --foo"],
    [["--foo=bar"], "unknown flag --foo"],
    [["-x"], "unknown flag -x"],
    [["-hx"], "unknown flag -x"],
    [["-v"], "missing value for flag --v: expected a whole number of 0 or more"],
    [["-v=x"], 'invalid value "x" for flag --v: expected a whole number of 0 or more'],
    [
      ["--context=prod"],
      "unsupported flag --context: the connection comes from --kubeconfig " +
      "(its current context) or the in-cluster service account",
    ],
    [
      ["--server", "https://x"],
      "unsupported flag --server: the connection comes from " +
      "--kubeconfig (its current context) or the in-cluster service account",
    ],
    [["/agent", "status"], 'unexpected argument "status" after the command run'],
    [["-node-name=a"], "unknown flag -node-name: did you mean --node-name?"],
    [["-dry-run"], "unknown flag -dry-run: did you mean --dry-run?"],
    [["start"], 'unknown command "start": expected run or status'],
    [["help"], 'unknown command "help": expected run or status'],
    [["run", "now"], 'unexpected argument "now" after the command run'],
    [["status", "run"], 'unexpected argument "run" after the command status'],
    [
      ["--dry-run", "false"],
      'unknown command "false": expected run or status (write --dry-run=false to set a boolean flag)',
    ],
    [
      ["status", "--disable-node-taints", "true"],
      'unexpected argument "true" after the command status (write --disable-node-taints=true to set a boolean flag)',
    ],
    [
      ["--fail-over-timeout=5x"],
      'invalid value "5x" for flag --fail-over-timeout: expected a duration such as 5s or 1m0s',
    ],
    [
      ["--fail-over-timeout=-5s"],
      'invalid value "-5s" for flag --fail-over-timeout: expected a duration that is not negative, such as 5s or 1m0s',
    ],
    [
      ["--reconcile-interval=5"],
      'invalid value "5" for flag --reconcile-interval: expected a duration with a unit (ns, us, ms, s, m or h), such as 5s or 1m0s',
    ],
    [
      ["--drbd-status-interval", ""],
      'invalid value "" for flag --drbd-status-interval: expected a duration such as 5s or 1m0s',
    ],
    [
      ["--operations-timeout=1.2.3s"],
      'invalid value "1.2.3s" for flag --operations-timeout: expected a duration such as 5s or 1m0s',
    ],
    [
      ["--request-timeout=forever"],
      'invalid value "forever" for flag --request-timeout: expected a duration such as 5s or 1m0s',
    ],
    [
      ["--resync-interval=-1m"],
      'invalid value "-1m" for flag --resync-interval: expected a duration that is not negative, such as 5s or 1m0s',
    ],
    [
      ["--fail-over-timeout"],
      "missing value for flag --fail-over-timeout: expected a duration such as 5s or 1m0s",
    ],
    [
      ["--fail-over-timeout", "--dry-run"],
      "missing value for flag --fail-over-timeout: expected a duration such as 5s or 1m0s",
    ],
    [
      ["--grace-period-seconds=-1"],
      'invalid value "-1" for flag --grace-period-seconds: expected a whole number of 0 or more',
    ],
    [
      ["--grace-period-seconds=1.5"],
      'invalid value "1.5" for flag --grace-period-seconds: expected a whole number of 0 or more',
    ],
    [
      ["--grace-period-seconds=10s"],
      'invalid value "10s" for flag --grace-period-seconds: expected a whole number of 0 or more',
    ],
    [
      ["--grace-period-seconds="],
      'invalid value "" for flag --grace-period-seconds: expected a whole number of 0 or more',
    ],
    [
      ["--grace-period-seconds"],
      "missing value for flag --grace-period-seconds: expected a whole number of 0 or more",
    ],
    [["--v=-1"], 'invalid value "-1" for flag --v: expected a whole number of 0 or more'],
    [["--v=debug"], 'invalid value "debug" for flag --v: expected a whole number of 0 or more'],
    [
      ["--v=99999999999999999999"],
      'invalid value "99999999999999999999" for flag --v: expected a whole number of 0 or more',
    ],
    [["--v"], "missing value for flag --v: expected a whole number of 0 or more"],
    [["--dry-run=yes"], 'invalid value "yes" for flag --dry-run: expected true or false'],
    [["--dry-run="], 'invalid value "" for flag --dry-run: expected true or false'],
    [
      ["--disable-node-taints=1"],
      'invalid value "1" for flag --disable-node-taints: expected true or false',
    ],
    [
      ["--fail-over-unsafe-pods=False"],
      'invalid value "False" for flag --fail-over-unsafe-pods: expected true or false',
    ],
    [["--help=please"], 'invalid value "please" for flag --help: expected true or false'],
    [["--log-format=xml"], 'invalid value "xml" for flag --log-format: expected text or json'],
    [["--log-format"], "missing value for flag --log-format: expected text or json"],
    [["status", "-o", "yaml"], 'invalid value "yaml" for flag --output: expected table or json'],
    [["status", "-o"], "missing value for flag --output: expected table or json"],
    [["-o", "json"], "flag --output only applies to the status command"],
    [["run", "--output=table"], "flag --output only applies to the status command"],
    [
      ["--health-bind-address=8000"],
      'invalid value "8000" for flag --health-bind-address: expected an address such as :8000 or 127.0.0.1:8000, or nothing to disable the server',
    ],
    [
      ["--health-bind-address=:70000"],
      'invalid value ":70000" for flag --health-bind-address: expected an address such as :8000 or 127.0.0.1:8000, or nothing to disable the server',
    ],
    [
      ["--satellite-pod-label="],
      'invalid value "" for flag --satellite-pod-label: expected a label selector such as app.kubernetes.io/component=linstor-satellite',
    ],
    [["--node-name"], "missing value for flag --node-name: expected a node name"],
    [["--kubeconfig"], "missing value for flag --kubeconfig: expected a file path"],
  ];
  for (const [args, message] of cases) assertUsageError(args, message);
});

Deno.test("run and status need a node name", () => {
  const message =
    "missing node name: set the flag --node-name or the environment variable NODE_NAME";
  assertUsageError([], message, {});
  assertUsageError(["status"], message, {});
  assertUsageError([], message, { NODE_NAME: "" });
  assertUsageError(["--node-name="], message, { NODE_NAME: "node-a" });
});

Deno.test("the usage hint names the help flag", () => {
  assert.equal(usageHint, "run 'ha-controller --help' for usage");
});

/** The flag lines of the help text: name, placeholder, description and default. */
function helpFlagLines(): { name: string; value: string; description: string; shown: string }[] {
  const text = helpText();
  const section = text.slice(text.indexOf("\nFlags:\n") + "\nFlags:\n".length);
  const lines = section.slice(0, section.indexOf("\n\n")).split("\n");
  return lines.map((line) => {
    const match = /^ {2}--([a-z-]+)(?: <([^>]+)>)? {3,}(.*?)(?: \(default (.*)\))?$/.exec(line);
    assert.ok(match !== null, `flag line: ${JSON.stringify(line)}`);
    return { name: match[1], value: match[2] ?? "", description: match[3], shown: match[4] ?? "" };
  });
}

Deno.test("--help lists every flag exactly once, as flagDefinitions says", () => {
  const lines = helpFlagLines();
  assert.deepEqual(
    lines.map((line) => line.name),
    flagDefinitions.map((flag) => flag.name),
  );
  assert.equal(new Set(lines.map((line) => line.name)).size, lines.length);
  for (const [i, line] of lines.entries()) {
    const flag = flagDefinitions[i];
    assert.equal(line.value, flag.value, flag.name);
    assert.equal(line.description, flag.description, flag.name);
    assert.equal(line.shown, flag.default, flag.name);
  }
  const text = helpText();
  for (const flag of flagDefinitions) {
    const mentions = text.split(/(?=--)/).filter((part) =>
      new RegExp(`^--${flag.name}(?![a-z-])`).test(part)
    );
    assert.equal(mentions.length, 1, `--${flag.name} appears once`);
  }
  for (const usage of ["ha-controller [run]", "ha-controller status", "--version", "--help"]) {
    assert.ok(text.includes(usage), usage);
  }
});

Deno.test("flagDefinitions cover every option, and show its default", () => {
  const names = flagDefinitions.map((flag) => flag.name);
  assert.deepEqual(names, [...names].sort(), "sorted by name");
  assert.deepEqual(names, [
    "disable-node-taints",
    "drbd-status-interval",
    "dry-run",
    "fail-over-timeout",
    "fail-over-unsafe-pods",
    "grace-period-seconds",
    "health-bind-address",
    "kubeconfig",
    "log-format",
    "node-name",
    "operations-timeout",
    "out-of-service-taint",
    "output",
    "reconcile-interval",
    "request-timeout",
    "resync-interval",
    "satellite-pod-label",
    "v",
  ]);
  const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const optionFlags = names.filter((name) => name !== "output").map(camel).sort();
  assert.deepEqual(optionFlags, Object.keys(defaultOptions).sort());

  const shown = Object.fromEntries(flagDefinitions.map((flag) => [flag.name, flag.default]));
  assert.deepEqual(shown, {
    "disable-node-taints": "false",
    "drbd-status-interval": "5s",
    "dry-run": "false",
    "fail-over-timeout": "5s",
    "fail-over-unsafe-pods": "false",
    "grace-period-seconds": "10",
    "health-bind-address": ":8000",
    "kubeconfig": "$KUBECONFIG, ~/.kube/config, then in-cluster",
    "log-format": "text",
    "node-name": "$NODE_NAME",
    "operations-timeout": "1m0s",
    "out-of-service-taint": "false",
    "output": "table",
    "reconcile-interval": "5s",
    "request-timeout": "0s",
    "resync-interval": "5m0s",
    "satellite-pod-label": "app.kubernetes.io/component=linstor-satellite",
    "v": "0",
  });
});

Deno.test("parsing twice gives independent options", () => {
  const first = parseRun(["--dry-run"]);
  first.options.v = 7;
  assert.equal(parseRun([]).options.v, 0);
  assert.equal(defaultOptions.v, 0);
});
