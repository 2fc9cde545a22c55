// The Helm chart (deploy/charts/ha-controller) stays in step with the agent: its values, its
// values.schema.json, the README's flag table and --help list the same flags with the same
// defaults; its RBAC and security settings are those of deploy/kustomize. There is no helm
// binary here, so the templates themselves are only checked for the values they use.

import assert from "node:assert/strict";
import yaml from "js-yaml";
import { type FlagDefinition, flagDefinitions } from "../../lib/cli.ts";
import { parseDuration } from "../../lib/duration.ts";
import { version } from "../../lib/version.ts";

const repo = new URL("../../", import.meta.url).pathname;
const chart = `${repo}deploy/charts/ha-controller/`;
const kustomize = `${repo}deploy/kustomize/`;

/**
 * Flags the chart leaves out on purpose; values.yaml says why for each.
 * node-name: the downward API sets NODE_NAME per node. kubeconfig: a pod uses its ServiceAccount.
 * output: belongs to the status command, which the DaemonSet does not run.
 */
const excludedFlags = ["kubeconfig", "node-name", "output"];

type Values = Record<string, unknown>;
type Schema = Record<string, unknown>;

const valuesText = await Deno.readTextFile(`${chart}values.yaml`);
const values = yaml.load(valuesText) as Values;
const schema = JSON.parse(await Deno.readTextFile(`${chart}values.schema.json`)) as Schema;
const chartYaml = yaml.load(await Deno.readTextFile(`${chart}Chart.yaml`)) as Values;
const options = values.options as Record<string, unknown>;
const optionSchemas = (schema.properties as Record<string, Schema>).options;
const chartFlags = flagDefinitions.filter((flag) => !excludedFlags.includes(flag.name));

function readmeFlagTable(): { name: string; default: string }[] {
  const readme = Deno.readTextFileSync(`${repo}README.md`);
  const start = readme.indexOf("<!-- flag-table");
  const end = readme.indexOf("<!-- end flag-table -->", start);
  assert.ok(start >= 0 && end > start, "README has the flag-table block");
  return readme.slice(start, end).split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) => line.split("|").slice(1, -1).map((cell) => cell.trim()))
    .map(([flag, def]) => ({
      name: flag.replace(/^`--|`$/g, ""),
      default: def.replace(/^`|`$/g, ""),
    }));
}

Deno.test("values.yaml options hold every flag of --help but the excluded ones, with its default", () => {
  assert.deepEqual(Object.keys(options).sort(), chartFlags.map((flag) => flag.name).sort());
  for (const flag of chartFlags) {
    assert.equal(String(options[flag.name]), flag.default, `default of options.${flag.name}`);
    assert.equal(typeof options[flag.name], jsonType(flag), `type of options.${flag.name}`);
  }
});

Deno.test("values.yaml says why each excluded flag is not an option", () => {
  for (const name of excludedFlags) {
    assert.ok(
      flagDefinitions.some((flag) => flag.name === name),
      `excluded flag --${name} exists in --help`,
    );
    assert.match(
      valuesText,
      new RegExp(`^#\\s+${name}\\s+\\S`, "m"),
      `values.yaml explains ${name}`,
    );
  }
});

Deno.test("the README flag table, the schema's options and the values list the same flags", () => {
  const readme = readmeFlagTable();
  assert.deepEqual(
    readme.map((row) => row.name).sort(),
    flagDefinitions.map((flag) => flag.name).sort(),
  );
  const fromReadme = readme.filter((row) => !excludedFlags.includes(row.name));
  const optionProperties = optionSchemas.properties as Record<string, Schema>;
  assert.deepEqual(Object.keys(optionProperties).sort(), fromReadme.map((row) => row.name).sort());
  for (const row of fromReadme) {
    assert.equal(String(options[row.name]), row.default, `README default of --${row.name}`);
  }
});

Deno.test("the schema types each option as the agent reads it, and no other key", () => {
  assert.equal(optionSchemas.additionalProperties, false);
  const properties = optionSchemas.properties as Record<string, Schema>;
  for (const flag of chartFlags) {
    const property = properties[flag.name];
    assert.ok(property !== undefined, `schema has options.${flag.name}`);
    const expected = flag.kind === "int" ? "integer" : flag.kind === "bool" ? "boolean" : "string";
    assert.equal(property.type, expected, `schema type of options.${flag.name}`);
    assert.equal(property.description, descriptionOf(flag), `description of options.${flag.name}`);
    if (flag.kind === "duration") assert.ok(property.pattern, `options.${flag.name} has a pattern`);
  }
});

Deno.test("the schema's duration pattern accepts exactly what the agent parses", () => {
  const pattern = new RegExp(
    (optionSchemas.properties as Record<string, Schema>)["fail-over-timeout"].pattern as string,
    "u",
  );
  const samples = [
    "0",
    "0s",
    "5s",
    "1m0s",
    "1h2m3.5s",
    "500ms",
    "250us",
    "250\u00b5s",
    "1.5h",
    ".5s",
    "+5s",
    "",
    "5",
    "-5s",
    "5 s",
    "5sec",
    "s",
    "1d",
    "5s ",
  ];
  for (const sample of samples) {
    let parsed = true;
    try {
      parseDuration(sample);
    } catch {
      parsed = false;
    }
    assert.equal(pattern.test(sample), parsed, `pattern and parser agree on "${sample}"`);
  }
});

Deno.test("Chart.yaml's appVersion is the agent's version and the default image tag", () => {
  assert.equal(chartYaml.apiVersion, "v2");
  assert.equal(chartYaml.name, "ha-controller");
  assert.equal(chartYaml.version, "0.1.0");
  assert.equal(chartYaml.appVersion, version);
  assert.equal((values.image as Values).tag, "", "an empty tag means appVersion");
  const daemonSet = Deno.readTextFileSync(`${chart}templates/daemonset.yaml`);
  assert.ok(daemonSet.includes(".Values.image.tag | default .Chart.AppVersion"));
});

Deno.test("values.schema.json is draft-07 and values.yaml validates against it", () => {
  assert.equal(schema.$schema, "http://json-schema.org/draft-07/schema#");
  assertKnownKeywords(schema, "#");
  assert.deepEqual(validate(schema, values), []);
});

Deno.test("the schema rejects an unknown option, a wrong type and a malformed duration", () => {
  const withOptions = (change: Record<string, unknown>) => ({
    ...values,
    options: { ...options, ...change },
  });
  assert.deepEqual(validate(schema, withOptions({ "fail-over-timout": "5s" })), [
    "#/options: unknown key fail-over-timout",
  ]);
  assert.deepEqual(validate(schema, withOptions({ "dry-run": "yes" })), [
    "#/options/dry-run: expected boolean, got string",
  ]);
  assert.deepEqual(validate(schema, withOptions({ "fail-over-timeout": "5 seconds" })), [
    "#/options/fail-over-timeout: expected a string matching the pattern, got 5 seconds",
  ]);
  assert.deepEqual(validate(schema, withOptions({ v: -1 })), [
    "#/options/v: expected at least 0, got -1",
  ]);
  assert.deepEqual(validate(schema, { ...values, replicas: 2 }), ["#: unknown key replicas"]);
});

Deno.test("every .Values path the templates use exists in values.yaml", async () => {
  const used = new Set<string>();
  for await (const entry of Deno.readDir(`${chart}templates`)) {
    const text = await Deno.readTextFile(`${chart}templates/${entry.name}`);
    for (const match of text.matchAll(/\.Values((?:\.[A-Za-z][A-Za-z0-9]*)+)/g)) {
      used.add(match[1].slice(1));
    }
  }
  assert.ok(used.size > 10, `templates use values, found ${[...used].join(", ")}`);
  for (const path of used) {
    let node: unknown = values;
    for (const key of path.split(".")) {
      assert.ok(
        typeof node === "object" && node !== null && key in node,
        `values.yaml has ${path}`,
      );
      node = (node as Values)[key];
    }
  }
});

Deno.test("templates are left to helm (deno fmt skips them) and render options as flags", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  // deno fmt cannot parse Go templates: they are excluded, not formatted.
  assert.ok(config.fmt.exclude.includes("deploy/charts/ha-controller/templates/"));
  const daemonSet = await Deno.readTextFile(`${chart}templates/daemonset.yaml`);
  assert.ok(daemonSet.includes("{{- range $key, $value := .Values.options }}"));
  assert.ok(daemonSet.includes('printf "--%s=%v" $key $value | quote'));
  assert.ok(daemonSet.includes("fieldPath: spec.nodeName"));
  assert.ok(daemonSet.includes("path: /healthz"));
});

Deno.test("the chart's RBAC rules are those of deploy/kustomize", async () => {
  const documents = yaml.loadAll(await Deno.readTextFile(`${kustomize}rbac.yaml`)) as Values[];
  const rulesOf = (kind: string) => documents.find((doc) => doc.kind === kind)?.rules;
  assert.deepEqual(await templateRules("clusterrole.yaml"), rulesOf("ClusterRole"));
  assert.deepEqual(await templateRules("role.yaml"), rulesOf("Role"));
  const role = await Deno.readTextFile(`${chart}templates/role.yaml`);
  assert.match(role, /kind: Role\n[\s\S]*namespace: kube-node-lease\n/);
});

Deno.test("the chart's pod security and tolerations are those of deploy/kustomize", async () => {
  const daemonSet = yaml.load(await Deno.readTextFile(`${kustomize}daemonset.yaml`)) as {
    spec: { template: { spec: Values & { containers: Values[] } } };
  };
  const pod = daemonSet.spec.template.spec;
  assert.deepEqual(values.securityContext, pod.containers[0].securityContext);
  assert.deepEqual(values.tolerations, pod.tolerations);
  assert.equal(values.priorityClassName, pod.priorityClassName);
  assert.equal(pod.hostNetwork, true);
  const template = await Deno.readTextFile(`${chart}templates/daemonset.yaml`);
  assert.match(template, /^ {6}hostNetwork: true$/m);
});

/** The rules of a template: its `rules:` block, up to the next document or template action. */
async function templateRules(file: string): Promise<unknown> {
  const text = await Deno.readTextFile(`${chart}templates/${file}`);
  const start = text.indexOf("\nrules:\n");
  assert.ok(start >= 0, `${file} has rules`);
  const block = text.slice(start).split(/\n(?:---|\{\{)/)[0];
  assert.ok(!block.includes("{{"), `${file}'s rules are plain YAML`);
  return (yaml.load(block) as Values).rules;
}

function jsonType(flag: FlagDefinition): string {
  if (flag.kind === "int") return "number";
  if (flag.kind === "bool") return "boolean";
  return "string";
}

/** The schema's description of an option: the flag's, plus what the chart does with it. */
function descriptionOf(flag: FlagDefinition): string {
  if (flag.name === "health-bind-address") {
    return "Address of the /healthz and /metrics server; empty disables it, the probes and the " +
      "PodMonitor";
  }
  return flag.description;
}

// The subset of JSON Schema draft-07 the chart's schema uses; anything else is refused, so the
// validator below never ignores a constraint silently.
const knownKeywords = new Set([
  "$schema",
  "title",
  "description",
  "type",
  "properties",
  "additionalProperties",
  "required",
  "items",
  "enum",
  "pattern",
  "minimum",
  "minLength",
]);

function assertKnownKeywords(node: Schema, where: string): void {
  for (const [keyword, value] of Object.entries(node)) {
    assert.ok(knownKeywords.has(keyword), `${where}: keyword ${keyword} is in the checked subset`);
    if (keyword === "properties") {
      for (const [name, child] of Object.entries(value as Record<string, Schema>)) {
        assertKnownKeywords(child, `${where}/properties/${name}`);
      }
    } else if (
      (keyword === "items" || keyword === "additionalProperties") && typeof value === "object"
    ) {
      assertKnownKeywords(value as Schema, `${where}/${keyword}`);
    }
  }
}

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

/** Validates `value` against `node`; returns one message per violation. */
function validate(node: Schema, value: unknown, where = "#"): string[] {
  const type = typeOf(value);
  if (node.type !== undefined) {
    const allowed = node.type === "number" ? ["number", "integer"] : [node.type];
    if (!allowed.includes(type)) return [`${where}: expected ${node.type}, got ${type}`];
  }
  const errors: string[] = [];
  if (node.enum !== undefined && !(node.enum as unknown[]).includes(value)) {
    errors.push(`${where}: expected one of ${(node.enum as unknown[]).join(", ")}, got ${value}`);
  }
  if (typeof value === "string") {
    if (node.pattern !== undefined && !new RegExp(node.pattern as string, "u").test(value)) {
      errors.push(`${where}: expected a string matching the pattern, got ${value}`);
    }
    if (node.minLength !== undefined && value.length < (node.minLength as number)) {
      errors.push(`${where}: expected at least ${node.minLength} characters, got ${value.length}`);
    }
  }
  if (typeof value === "number" && node.minimum !== undefined && value < (node.minimum as number)) {
    errors.push(`${where}: expected at least ${node.minimum}, got ${value}`);
  }
  if (type === "array" && node.items !== undefined) {
    (value as unknown[]).forEach((item, i) => {
      errors.push(...validate(node.items as Schema, item, `${where}/${i}`));
    });
  }
  if (type === "object") {
    const object = value as Record<string, unknown>;
    const properties = (node.properties ?? {}) as Record<string, Schema>;
    for (const name of (node.required ?? []) as string[]) {
      if (!(name in object)) errors.push(`${where}: missing key ${name}`);
    }
    for (const [name, child] of Object.entries(object)) {
      if (name in properties) {
        errors.push(...validate(properties[name], child, `${where}/${name}`));
      } else if (node.additionalProperties === false) {
        errors.push(`${where}: unknown key ${name}`);
      } else if (typeof node.additionalProperties === "object") {
        errors.push(...validate(node.additionalProperties as Schema, child, `${where}/${name}`));
      }
    }
  }
  return errors;
}
