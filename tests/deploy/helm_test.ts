// The Helm chart (deploy/charts/ha-controller) under the real, pinned helm (tests/tools):
// `helm lint --strict` is clean; `helm template` renders the same agent as `kubectl kustomize
// deploy/kustomize` (DaemonSet, ServiceAccount, RBAC, probes, security, flags); every value of
// values.yaml changes the rendered output the way values.yaml says; helm refuses bad values
// through values.schema.json. The values, the schema, the README's flag table and --help list the
// same flags.

import assert from "node:assert/strict";
import yaml from "js-yaml";
import { type FlagDefinition, flagDefinitions, parseCommandLine } from "../../lib/cli.ts";
import { parseDuration } from "../../lib/duration.ts";
import { defaultOptions, type Options } from "../../lib/options.ts";
import { version } from "../../lib/version.ts";
import {
  chartDir,
  grants,
  helmTemplate,
  type Manifest,
  only,
  renderHelm,
  renderKustomize,
  renderOverlay,
  rulesOf,
  runHelm,
} from "./manifests.ts";

const repo = new URL("../../", import.meta.url).pathname;
const chart = `${chartDir}/`;

/**
 * Flags the chart leaves out on purpose; values.yaml says why for each.
 * node-name: the downward API sets NODE_NAME per node. kubeconfig: a pod uses its ServiceAccount.
 * output: belongs to the status command, which the DaemonSet does not run.
 */
const excludedFlags = ["kubeconfig", "node-name", "output"];

/**
 * Options whose chart default is not the agent's own; values.yaml says why. JSON logs, as
 * deploy/kustomize passes them, so both ways of installing run the same agent.
 */
const chartDefaults: Record<string, string> = { "log-format": "json" };

type Values = Record<string, unknown>;
type Schema = Record<string, unknown>;

const valuesText = await Deno.readTextFile(`${chart}values.yaml`);
const values = yaml.load(valuesText) as Values;
const schema = JSON.parse(await Deno.readTextFile(`${chart}values.schema.json`)) as Schema;
const chartYaml = yaml.load(await Deno.readTextFile(`${chart}Chart.yaml`)) as Values;
const options = values.options as Record<string, unknown>;
const optionSchemas = (schema.properties as Record<string, Schema>).options;
const chartFlags = flagDefinitions.filter((flag) => !excludedFlags.includes(flag.name));

const renders = new Map<string, Promise<Manifest[]>>();

/** {@linkcode renderHelm}, once per distinct set of values (the results are only read). */
function renderOnce(values: Values): Promise<Manifest[]> {
  const key = JSON.stringify(values);
  if (!renders.has(key)) renders.set(key, renderHelm(values));
  return renders.get(key)!;
}

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

Deno.test("helm lint --strict passes the chart, also with every optional object enabled", async () => {
  for (const set of [[], ["--set", "podMonitor.enabled=true,options.dry-run=true"]]) {
    const lint = await runHelm(["lint", "--strict", chartDir, ...set]);
    assert.equal(lint.code, 0, `helm lint ${set.join(" ")}: ${lint.stdout}${lint.stderr}`);
    assert.match(lint.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    assert.doesNotMatch(lint.stdout, /\[(WARNING|ERROR)\]/);
  }
});

Deno.test("values.yaml options hold every flag of --help but the excluded ones, with its default", () => {
  assert.deepEqual(Object.keys(options).sort(), chartFlags.map((flag) => flag.name).sort());
  for (const flag of chartFlags) {
    const expected = chartDefaults[flag.name] ?? flag.default;
    assert.equal(String(options[flag.name]), expected, `default of options.${flag.name}`);
    assert.equal(typeof options[flag.name], jsonType(flag), `type of options.${flag.name}`);
  }
});

Deno.test("values.yaml says why each excluded flag is not an option, and why a default differs", () => {
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
  for (const [name, value] of Object.entries(chartDefaults)) {
    assert.match(
      valuesText,
      new RegExp(`^#\\s+${name}\\s+${value}\\b`, "m"),
      `values.yaml explains options.${name}`,
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
    const expected = chartDefaults[row.name] ?? row.default;
    assert.equal(String(options[row.name]), expected, `README default of --${row.name}`);
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

Deno.test("Chart.yaml's appVersion is the agent's version and the default image tag", async () => {
  assert.equal(chartYaml.apiVersion, "v2");
  assert.equal(chartYaml.name, "ha-controller");
  assert.equal(chartYaml.version, "0.1.0");
  assert.equal(chartYaml.appVersion, version);
  assert.equal((values.image as Values).tag, "", "an empty tag means appVersion");
  const { container } = agentPod(await renderHelm());
  assert.equal(container.image, `ghcr.io/example/ha-controller:${version}`);
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

Deno.test("with default values, helm renders the same agent as kubectl kustomize", async () => {
  const [helm, kustomize] = await Promise.all([renderHelm(), renderKustomize()]);
  const kinds = (manifests: Manifest[]) => manifests.map((m) => m.kind).sort();
  // helm install --create-namespace makes the namespace; the README labels it for Pod Security.
  assert.deepEqual(kinds(helm), kinds(kustomize).filter((kind) => kind !== "Namespace"));
  assert.deepEqual(agentView(helm), agentView(kustomize));
});

Deno.test("dry-run and the PodMonitor: the helm values and the kustomize components agree", async () => {
  const [helm, kustomize] = await Promise.all([
    renderHelm({ podMonitor: { enabled: true }, options: { "dry-run": true } }),
    renderOverlay(["pod-monitor", "dry-run"]),
  ]);
  const view = agentView(helm);
  assert.equal(view.container.options.dryRun, true);
  assert.deepEqual(view.podMonitor, {
    namespace: "ha-controller",
    endpoints: [{ port: "metrics", path: "/metrics" }],
    selectsTheAgent: true,
  });
  assert.deepEqual(view, agentView(kustomize));
});

Deno.test("hostNetwork: off by default in both; the helm value and the kustomize component agree", async () => {
  const [helmDefault, helm, kustomize] = await Promise.all([
    renderHelm(),
    renderHelm({ hostNetwork: true }),
    renderOverlay(["host-network"]),
  ]);
  assert.equal(agentView(helmDefault).pod.hostNetwork, undefined);
  assert.equal(agentView(helm).pod.hostNetwork, true);
  assert.deepEqual(agentView(helm), agentView(kustomize));
});

/** One value of values.yaml, changed, and what values.yaml says the rendered chart then shows. */
interface ValueCase {
  /** Values the comparison starts from (default: none over the chart's defaults). */
  base?: Values;
  /** The change, over `base`. */
  change: Values;
  /** Asserts the documented effect on the rendered objects. */
  check: (rendered: Manifest[]) => void;
}

/** A non-default value of an option, by what the agent reads. */
function otherValue(flag: FlagDefinition): unknown {
  const current = options[flag.name];
  if (flag.kind === "bool") return !current;
  if (flag.kind === "int") return (current as number) + 3;
  if (flag.kind === "duration") return "7s";
  if (flag.name === "satellite-pod-label") return "app=satellite";
  if (flag.name === "log-format") return "text";
  throw new Error(`no other value known for options.${flag.name}: add one`);
}

/** The agent's options as it parses the DaemonSet's args. */
function agentOptions(rendered: Manifest[]): Options {
  return agentView(rendered).container.options;
}

const defaultRenderedOptions = agentOptions(await renderOnce({}));

const optionCases: Record<string, ValueCase> = Object.fromEntries(
  chartFlags.filter((flag) => flag.name !== "health-bind-address").map((flag) => {
    const value = otherValue(flag);
    return [`options.${flag.name}`, {
      change: { options: { [flag.name]: value } },
      check: (rendered: Manifest[]) => {
        const { container } = agentPod(rendered);
        assert.ok(
          container.args.includes(`--${flag.name}=${value}`),
          `args ${container.args.join(" ")} hold --${flag.name}=${value}`,
        );
        const parsed = agentOptions(rendered);
        const changed = (Object.keys(parsed) as (keyof Options)[])
          .filter((key) => parsed[key] !== defaultRenderedOptions[key]);
        assert.equal(changed.length, 1, `--${flag.name} changes one option, got ${changed}`);
      },
    }];
  }),
);

const nodeAffinity = {
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [{
        matchExpressions: [{ key: "example.com/drbd", operator: "In", values: ["true"] }],
      }],
    },
  },
};

const valueCases: Record<string, ValueCase> = {
  "image.repository": {
    change: { image: { repository: "registry.example.com/storage/ha-controller" } },
    check: (m) =>
      assert.equal(
        agentPod(m).container.image,
        `registry.example.com/storage/ha-controller:${version}`,
      ),
  },
  "image.tag": {
    change: { image: { tag: "9.9.9" } },
    check: (m) => assert.equal(agentPod(m).container.image, "ghcr.io/example/ha-controller:9.9.9"),
  },
  "image.pullPolicy": {
    change: { image: { pullPolicy: "Always" } },
    check: (m) => assert.equal(agentPod(m).container.imagePullPolicy, "Always"),
  },
  imagePullSecrets: {
    change: { imagePullSecrets: [{ name: "registry-credentials" }] },
    check: (m) =>
      assert.deepEqual(agentPod(m).pod.imagePullSecrets, [{ name: "registry-credentials" }]),
  },
  nameOverride: {
    change: { nameOverride: "drbd-ha" },
    check: (m) => {
      // The release name does not contain the new chart name: the full name is both.
      assert.deepEqual(names(m), objectNames("ha-controller-drbd-ha"));
      assert.equal(agentPod(m).labels["app.kubernetes.io/name"], "drbd-ha");
    },
  },
  fullnameOverride: {
    change: { fullnameOverride: "drbd-agent" },
    check: (m) => {
      assert.deepEqual(names(m), objectNames("drbd-agent"));
      assert.equal(agentView(m).serviceAccount, "ha-controller/drbd-agent");
    },
  },
  ...optionCases,
  "options.health-bind-address": {
    change: { options: { "health-bind-address": ":9100" } },
    check: (m) => {
      const { container } = agentPod(m);
      assert.ok(container.args.includes("--health-bind-address=:9100"));
      assert.deepEqual(container.ports, [{
        name: "metrics",
        containerPort: 9100,
        protocol: "TCP",
      }]);
      assert.equal(container.startupProbe.httpGet.port, "metrics");
      assert.equal(container.livenessProbe.httpGet.port, "metrics");
    },
  },
  "serviceAccount.create": {
    change: { serviceAccount: { create: false, name: "existing-account" } },
    check: (m) => {
      assert.equal(m.filter((o) => o.kind === "ServiceAccount").length, 0);
      assert.equal(agentPod(m).pod.serviceAccountName, "existing-account");
      assert.equal(agentView(m).bindings[0].subjects[0].name, "existing-account");
    },
  },
  "serviceAccount.annotations": {
    change: { serviceAccount: { annotations: { "example.com/owner": "storage-team" } } },
    check: (m) =>
      assert.deepEqual(only(m, "ServiceAccount").metadata, {
        ...only(m, "ServiceAccount").metadata,
        annotations: { "example.com/owner": "storage-team" },
      }),
  },
  "serviceAccount.name": {
    change: { serviceAccount: { name: "agent-account" } },
    check: (m) => {
      assert.equal(agentView(m).serviceAccount, "ha-controller/agent-account");
      assert.equal(agentPod(m).pod.serviceAccountName, "agent-account");
      for (const binding of agentView(m).bindings) {
        assert.deepEqual(binding.subjects, [
          { kind: "ServiceAccount", name: "agent-account", namespace: "ha-controller" },
        ]);
      }
    },
  },
  "rbac.create": {
    change: { rbac: { create: false } },
    check: (m) => assert.deepEqual(m.map((o) => o.kind).sort(), ["DaemonSet", "ServiceAccount"]),
  },
  "podMonitor.enabled": {
    change: { podMonitor: { enabled: true } },
    check: (m) =>
      assert.deepEqual(agentView(m).podMonitor, {
        namespace: "ha-controller",
        endpoints: [{ port: "metrics", path: "/metrics" }],
        selectsTheAgent: true,
      }),
  },
  "podMonitor.labels": {
    base: { podMonitor: { enabled: true } },
    change: { podMonitor: { labels: { release: "prometheus" } } },
    check: (m) => assert.equal(only(m, "PodMonitor").metadata.labels?.release, "prometheus"),
  },
  "podMonitor.interval": {
    base: { podMonitor: { enabled: true } },
    change: { podMonitor: { interval: "15s" } },
    check: (m) =>
      assert.deepEqual(agentView(m).podMonitor?.endpoints, [
        { port: "metrics", path: "/metrics", interval: "15s" },
      ]),
  },
  podAnnotations: {
    change: { podAnnotations: { "example.com/scrape": "true" } },
    check: (m) => assert.deepEqual(agentPod(m).annotations, { "example.com/scrape": "true" }),
  },
  podLabels: {
    change: { podLabels: { team: "storage" } },
    check: (m) => {
      assert.equal(agentPod(m).labels.team, "storage");
      assert.equal(agentView(m).selectsItsPods, true);
      // The selector never changes after install: extra labels stay out of it.
      assert.equal(agentPod(m).selector.team, undefined);
    },
  },
  hostNetwork: {
    change: { hostNetwork: true },
    check: (m) =>
      assert.deepEqual(
        [agentPod(m).pod.hostNetwork, agentPod(m).pod.dnsPolicy],
        [true, "ClusterFirstWithHostNet"],
      ),
  },
  priorityClassName: {
    change: { priorityClassName: "" },
    check: (m) => assert.equal(agentPod(m).pod.priorityClassName, undefined),
  },
  podSecurityContext: {
    change: { podSecurityContext: { fsGroup: 2000 } },
    check: (m) => assert.deepEqual(agentPod(m).pod.securityContext, { fsGroup: 2000 }),
  },
  securityContext: {
    change: { securityContext: { readOnlyRootFilesystem: false } },
    check: (m) => {
      const { container } = agentPod(m);
      assert.equal(container.securityContext.readOnlyRootFilesystem, false);
      // Helm merges maps: the rest of the default context stays.
      assert.deepEqual(container.securityContext.capabilities, {
        drop: ["ALL"],
        add: ["NET_ADMIN"],
      });
    },
  },
  resources: {
    change: { resources: { limits: { memory: "512Mi" } } },
    check: (m) =>
      assert.deepEqual(agentPod(m).container.resources, {
        requests: { cpu: "20m", memory: "160Mi" },
        limits: { memory: "512Mi" },
      }),
  },
  nodeSelector: {
    change: { nodeSelector: { "example.com/drbd": "true" } },
    check: (m) => assert.deepEqual(agentPod(m).pod.nodeSelector, { "example.com/drbd": "true" }),
  },
  tolerations: {
    change: { tolerations: [{ operator: "Exists" }] },
    check: (m) => assert.deepEqual(agentPod(m).pod.tolerations, [{ operator: "Exists" }]),
  },
  affinity: {
    change: { affinity: nodeAffinity },
    check: (m) => assert.deepEqual(agentPod(m).pod.affinity, nodeAffinity),
  },
  terminationGracePeriodSeconds: {
    change: { terminationGracePeriodSeconds: 30 },
    check: (m) => assert.equal(agentPod(m).pod.terminationGracePeriodSeconds, 30),
  },
  updateStrategy: {
    change: { updateStrategy: { type: "OnDelete", rollingUpdate: null } },
    check: (m) =>
      // deno-lint-ignore no-explicit-any
      assert.deepEqual((only(m, "DaemonSet") as any).spec.updateStrategy, { type: "OnDelete" }),
  },
};

/** The paths of values.yaml a user sets: keys, and the keys of objects the schema closes. */
function valuePaths(): string[] {
  const properties = schema.properties as Record<string, Schema>;
  return Object.keys(values).flatMap((key) => {
    const property = properties[key];
    const closed = property?.additionalProperties === false && property.properties !== undefined;
    return closed ? Object.keys(values[key] as Values).map((sub) => `${key}.${sub}`) : [key];
  }).sort();
}

Deno.test("every value of values.yaml has a case below", () => {
  assert.deepEqual(Object.keys(valueCases).sort(), valuePaths());
});

Deno.test("every value of values.yaml changes the rendered chart as values.yaml says", async () => {
  const failures: string[] = [];
  await inBatches(Object.entries(valueCases), 4, async ([path, valueCase]) => {
    try {
      const before = await renderOnce(valueCase.base ?? {});
      const after = await renderHelm(merge(valueCase.base ?? {}, valueCase.change));
      assert.notDeepEqual(after, before, `${path} changes the rendered output`);
      valueCase.check(after);
    } catch (error) {
      failures.push(`${path}: ${error instanceof Error ? error.message : error}`);
    }
  });
  assert.deepEqual(failures, []);
});

Deno.test("helm refuses values the schema does not allow, naming each one", async () => {
  const refused = [
    {
      values: { options: { "fail-over-timout": "5s" }, replicas: 2 },
      errors: [
        "- (root): Additional property replicas is not allowed",
        "- options: Additional property fail-over-timout is not allowed",
      ],
    },
    {
      values: { options: { "dry-run": "yes" } },
      errors: ["- options.dry-run: Invalid type. Expected: boolean, given: string"],
    },
    {
      values: { options: { "fail-over-timeout": "5 seconds", v: -1 } },
      errors: [
        `- options.fail-over-timeout: Does not match pattern '${durationPattern()}'`,
        "- options.v: Must be greater than or equal to 0",
      ],
    },
    {
      values: { options: { "grace-period-seconds": 2.5 } },
      errors: ["- options.grace-period-seconds: Invalid type. Expected: integer, given: number"],
    },
    {
      values: { options: { "log-format": "xml" } },
      errors: [
        '- options.log-format: options.log-format must be one of the following: "text", "json"',
      ],
    },
    {
      values: { image: { repository: "", pullPolicy: "Sometimes" } },
      errors: [
        "- image.repository: String length must be greater than or equal to 1",
        '- image.pullPolicy: image.pullPolicy must be one of the following: "Always", "IfNotPresent", "Never"',
      ],
    },
    {
      values: { podLabels: { team: 7 } },
      errors: ["- podLabels.team: Invalid type. Expected: string, given: integer"],
    },
  ];
  for (const { values: bad, errors } of refused) {
    const run = await helmTemplate(bad);
    assert.equal(run.code, 1, `helm refuses ${JSON.stringify(bad)}`);
    assert.equal(run.stdout, "");
    const lines = run.stderr.trim().split("\n");
    assert.deepEqual(lines.slice(0, 2), [
      "Error: values don't meet the specifications of the schema(s) in the following chart(s):",
      "ha-controller:",
    ]);
    assert.deepEqual(lines.slice(2).sort(), [...errors].sort(), JSON.stringify(bad));
  }
});

Deno.test("helm refuses combinations the templates cannot render, with what to do", async () => {
  const monitorWithoutServer = await helmTemplate({
    podMonitor: { enabled: true },
    options: { "health-bind-address": "" },
  });
  assert.equal(monitorWithoutServer.code, 1);
  assert.match(
    monitorWithoutServer.stderr,
    /podMonitor\.enabled needs the metrics server: options\.health-bind-address must not be empty/,
  );
  const noAccount = await helmTemplate({ serviceAccount: { create: false } });
  assert.equal(noAccount.code, 1);
  assert.match(
    noAccount.stderr,
    /serviceAccount\.name is required when serviceAccount\.create is false/,
  );
  // An empty address turns off the server, its port and both probes, and nothing else fails.
  const { container } = agentPod(await renderHelm({ options: { "health-bind-address": "" } }));
  assert.equal(container.ports, undefined);
  assert.equal(container.startupProbe, undefined);
  assert.equal(container.livenessProbe, undefined);
  assert.ok(container.args.includes("--health-bind-address="));
});

Deno.test("helm's schema accepts exactly the durations the agent parses", async () => {
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
  const disagreements: string[] = [];
  await inBatches(samples, 4, async (sample) => {
    let parsed = true;
    try {
      parseDuration(sample);
    } catch {
      parsed = false;
    }
    const run = await helmTemplate({ options: { "fail-over-timeout": sample } });
    if ((run.code === 0) !== parsed) {
      disagreements.push(
        `"${sample}": agent ${parsed ? "parses" : "refuses"}, helm: ${run.stderr}`,
      );
    }
  });
  assert.deepEqual(disagreements, []);
});

// Rendered objects, read the way the cluster would.

// deno-lint-ignore no-explicit-any
type Any = any;

/** The DaemonSet's pod template, its one container, labels and selector. */
function agentPod(rendered: Manifest[]) {
  const daemonSet = only(rendered, "DaemonSet") as Any;
  const pod = daemonSet.spec.template.spec;
  assert.equal(pod.containers.length, 1, "one container");
  return {
    pod,
    container: pod.containers[0],
    labels: daemonSet.spec.template.metadata.labels as Record<string, string>,
    annotations: daemonSet.spec.template.metadata.annotations as Record<string, string> | undefined,
    selector: daemonSet.spec.selector.matchLabels as Record<string, string>,
  };
}

/** Every object as kind/namespace/name, sorted. */
function names(rendered: Manifest[]): string[] {
  return rendered.map((m) => `${m.kind}/${m.metadata.namespace ?? ""}/${m.metadata.name}`).sort();
}

/** The chart's objects when its full name is `name`. */
function objectNames(name: string): string[] {
  return [
    `ClusterRole//${name}`,
    `ClusterRoleBinding//${name}`,
    `DaemonSet/ha-controller/${name}`,
    `Role/kube-node-lease/${name}`,
    `RoleBinding/kube-node-lease/${name}`,
    `ServiceAccount/ha-controller/${name}`,
  ].sort();
}

/**
 * What the agent gets from a set of manifests, in a form in which "equal" means "the same
 * agent": its options as the agent parses its args, its pod and container settings with named
 * ports resolved and the API server's pull-policy default applied, and its RBAC as grants.
 * Labels are left out (each tool adds its own) except that the selectors must select the pods.
 */
function agentView(rendered: Manifest[]) {
  const daemonSet = only(rendered, "DaemonSet") as Any;
  const { pod, container, labels, selector } = agentPod(rendered);
  const parsed = parseCommandLine(container.args ?? [], { NODE_NAME: "node-a" });
  assert.equal(parsed.command, "run", `args ${container.args} start the agent`);
  const ports = new Map<string, number>(
    (container.ports ?? []).map((p: Any) => [p.name, p.containerPort]),
  );
  const probe = (p: Any) =>
    p === undefined ? undefined : {
      ...p,
      httpGet: { ...p.httpGet, port: ports.get(p.httpGet.port) ?? p.httpGet.port },
    };
  const account = rendered.find((m) => m.kind === "ServiceAccount");
  const leaseRole = only(rendered, "Role");
  const monitor = rendered.find((m) => m.kind === "PodMonitor") as Any;
  const selects = (wanted: Record<string, string>) =>
    Object.entries(wanted).every(([key, value]) => labels[key] === value);
  return {
    daemonSet: `${daemonSet.metadata.namespace}/${daemonSet.metadata.name}`,
    updateStrategy: daemonSet.spec.updateStrategy,
    selectsItsPods: selects(selector),
    serviceAccount: account && `${account.metadata.namespace}/${account.metadata.name}`,
    pod: {
      serviceAccountName: pod.serviceAccountName,
      hostNetwork: pod.hostNetwork,
      dnsPolicy: pod.dnsPolicy,
      terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds,
      priorityClassName: pod.priorityClassName,
      tolerations: pod.tolerations,
      securityContext: pod.securityContext ?? {},
      nodeSelector: pod.nodeSelector ?? {},
      affinity: pod.affinity ?? {},
      imagePullSecrets: pod.imagePullSecrets ?? [],
    },
    container: {
      name: container.name,
      image: container.image,
      // The API server's default (SetDefaults_Container): Always for :latest, else IfNotPresent.
      imagePullPolicy: container.imagePullPolicy ??
        (/:latest$|^[^:]*$/.test(container.image) ? "Always" : "IfNotPresent"),
      command: container.command,
      options: parsed.command === "run" ? parsed.options : defaultOptions,
      env: container.env,
      ports: container.ports,
      startupProbe: probe(container.startupProbe),
      livenessProbe: probe(container.livenessProbe),
      securityContext: container.securityContext,
      resources: container.resources,
    },
    clusterRole: grants(rulesOf(only(rendered, "ClusterRole"))),
    leaseRole: { namespace: leaseRole.metadata.namespace, grants: grants(rulesOf(leaseRole)) },
    bindings: ["ClusterRoleBinding", "RoleBinding"].map((kind) => {
      const binding = only(rendered, kind) as Any;
      return {
        kind,
        namespace: binding.metadata.namespace,
        roleRef: binding.roleRef,
        subjects: binding.subjects,
      };
    }),
    podMonitor: monitor && {
      namespace: monitor.metadata.namespace,
      endpoints: monitor.spec.podMetricsEndpoints,
      selectsTheAgent: selects(monitor.spec.selector.matchLabels),
    },
  };
}

function durationPattern(): string {
  return (optionSchemas.properties as Record<string, Schema>)["fail-over-timeout"]
    .pattern as string;
}

/** `change` over `base`, maps merged key by key, as helm merges values files. */
function merge(base: Values, change: Values): Values {
  const out: Values = { ...base };
  for (const [key, value] of Object.entries(change)) {
    const old = out[key];
    const bothMaps = [old, value].every((v) =>
      typeof v === "object" && v !== null && !Array.isArray(v)
    );
    out[key] = bothMaps ? merge(old as Values, value as Values) : value;
  }
  return out;
}

/** Runs `work` on every item, at most `width` at a time. */
async function inBatches<T>(items: T[], width: number, work: (item: T) => Promise<void>) {
  for (let i = 0; i < items.length; i += width) {
    await Promise.all(items.slice(i, i + width).map(work));
  }
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
