/**
 * The kustomize manifests as `kubectl kustomize` renders them, parsed into
 * objects, for the deploy tests.
 *
 * @module
 */

// js-yaml comes with @kubernetes/client-node; its own loadAllYaml turns
// objects into client-node model classes, which the tests do not want.
import yaml from "js-yaml";
import { kubectlPath } from "../tools/mod.ts";

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
