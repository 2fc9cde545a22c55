/**
 * The kustomize manifests as `kubectl kustomize` renders them, parsed into
 * objects, for the deploy tests.
 *
 * @module
 */

// js-yaml comes with @kubernetes/client-node; its own loadAllYaml turns
// objects into client-node model classes, which the tests do not want.
import yaml from "js-yaml";
import { helmPath, kubectlPath, type ProgramRun, runProgram } from "../tools/mod.ts";

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

/**
 * `kubectl kustomize` of an overlay of the base with `components` (e.g.
 * `["pod-monitor", "dry-run"]`), written beside the base as a user would
 * write one (kustomize wants relative paths), and removed again.
 */
export async function renderOverlay(components: string[]): Promise<Manifest[]> {
  const dir = await Deno.makeTempDir({ dir: `${kustomizeDir}/..`, prefix: ".overlay-" });
  const base = `../${kustomizeDir.split("/").at(-1)}`;
  try {
    await Deno.writeTextFile(
      `${dir}/kustomization.yaml`,
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        `resources: [${base}]`,
        `components: [${components.map((c) => `${base}/components/${c}`).join(", ")}]`,
        "",
      ].join("\n"),
    );
    return await renderKustomize(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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

/**
 * Runs the pinned helm with `args`, with its home, cache, config and data
 * folders in a fresh temporary folder (nothing of the user's helm setup is
 * read or written) and no network: the chart has no dependencies.
 */
export async function runHelm(args: string[], stdin?: string): Promise<ProgramRun> {
  const home = await Deno.makeTempDir({ prefix: "helm-home-" });
  try {
    return await runProgram(await helmPath(), args, {
      clearEnv: true,
      env: {
        HOME: home,
        HELM_CACHE_HOME: `${home}/cache`,
        HELM_CONFIG_HOME: `${home}/config`,
        HELM_DATA_HOME: `${home}/data`,
      },
      stdin,
    });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/**
 * `helm template ha-controller <chart> --namespace ha-controller -f -` with
 * `values` (JSON, which is YAML, so every value keeps its type) over the
 * chart's defaults, as `helm install` would render it.
 */
export function helmTemplate(values: Record<string, unknown> = {}): Promise<ProgramRun> {
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
