/**
 * The kustomize manifests as `kubectl kustomize` renders them, parsed into
 * objects, for the deploy tests.
 *
 * @module
 */

// js-yaml comes with @kubernetes/client-node; its own loadAllYaml turns
// objects into client-node model classes, which the tests do not want.
import yaml from "js-yaml";
import { helmPath, kubectlPath } from "../tools/mod.ts";

/** The kustomize base. */
export const kustomizeDir = new URL("../../deploy/kustomize", import.meta.url).pathname;

/** One rendered Kubernetes object (only the fields the tests read are typed). */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** An RBAC rule as written in a (Cluster)Role. */
export interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** `kubectl kustomize <dir>` parsed; throws with kubectl's stderr when it fails. */
export async function renderKustomize(dir: string = kustomizeDir): Promise<Manifest[]> {
  const output = await new Deno.Command(await kubectlPath(), {
    args: ["kustomize", dir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success) {
    throw new Error(`Expected kubectl kustomize ${dir} to succeed, got: ${stderr}`);
  }
  return yaml.loadAll(new TextDecoder().decode(output.stdout)) as Manifest[];
}

/** The one object of `kind` (and `name`, when given); throws when there is not exactly one. */
export function only(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter((m) =>
    m.kind === kind && (name === undefined || m.metadata.name === name)
  );
  if (found.length !== 1) {
    throw new Error(`Expected one ${kind}${name ? ` ${name}` : ""}, got ${found.length}`);
  }
  return found[0];
}

/** The rules of a ClusterRole or Role. */
export function rulesOf(role: Manifest): Rule[] {
  return (role.rules ?? []) as Rule[];
}

/** The chart. */
export const chartDir = new URL("../../deploy/charts/ha-controller", import.meta.url).pathname;

/** What a helm run printed. */
export interface HelmRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the pinned helm with `args`, with its home, cache, config and data
 * folders in a fresh temporary folder (nothing of the user's helm setup is
 * read or written) and no network: the chart has no dependencies.
 */
export async function runHelm(args: string[], stdin?: string): Promise<HelmRun> {
  const home = await Deno.makeTempDir({ prefix: "helm-home-" });
  try {
    const child = new Deno.Command(await helmPath(), {
      args,
      clearEnv: true,
      env: {
        HOME: home,
        HELM_CACHE_HOME: `${home}/cache`,
        HELM_CONFIG_HOME: `${home}/config`,
        HELM_DATA_HOME: `${home}/data`,
      },
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
    }
    const output = await child.output();
    return {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/**
 * `helm template ha-controller <chart> --namespace ha-controller -f -` with
 * `values` (JSON, which is YAML, so every value keeps its type) over the
 * chart's defaults, as `helm install` would render it.
 */
export function helmTemplate(values: Record<string, unknown> = {}): Promise<HelmRun> {
  return runHelm(
    ["template", "ha-controller", chartDir, "--namespace", "ha-controller", "--values", "-"],
    JSON.stringify(values),
  );
}

/** {@linkcode helmTemplate} parsed; throws with helm's stderr when it fails. */
export async function renderHelm(values: Record<string, unknown> = {}): Promise<Manifest[]> {
  const run = await helmTemplate(values);
  if (run.code !== 0) {
    throw new Error(
      `Expected helm template with ${JSON.stringify(values)} to succeed, got: ${run.stderr}`,
    );
  }
  return (yaml.loadAll(run.stdout) as (Manifest | null)[]).filter((m) => m !== null);
}

/** Each verb of each rule as `group/resource:verb`, sorted and once, so rule layout does not matter. */
export function grants(rules: Rule[]): string[] {
  const out = new Set<string>();
  for (const rule of rules) {
    for (const group of rule.apiGroups) {
      for (const resource of rule.resources) {
        for (const verb of rule.verbs) out.add(`${group}/${resource}:${verb}`);
      }
    }
  }
  return [...out].sort();
}
