/**
 * ha-controller: fail DRBD-backed Kubernetes workloads over in seconds.
 *
 * `ha-controller [run]` runs the node agent; `ha-controller status` prints
 * once what it sees and would do. See `--help`.
 *
 * @module
 */

import "./lib/quiet.ts";
import { helpText, parseCommandLine, UsageError, usageHint } from "./lib/cli.ts";
import { runAgent, runStatus } from "./lib/agent.ts";
import { KubeConfigError } from "./lib/kube/client.ts";
import { setupLogging } from "./lib/log.ts";
import { version } from "./lib/version.ts";

/** Read an environment variable the permissions may not allow; undefined then, never a prompt. */
function env(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(args, { NODE_NAME: env("NODE_NAME") });
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`ha-controller: ${err.message} (${usageHint})`);
      return 2;
    }
    throw err;
  }
  try {
    switch (parsed.command) {
      case "help":
        console.log(helpText());
        return 0;
      case "version":
        console.log(`ha-controller ${version}`);
        return 0;
      case "status":
        setupLogging(parsed.options.logFormat, parsed.options.v);
        return await runStatus(parsed.options, parsed.output);
      case "run":
        setupLogging(parsed.options.logFormat, parsed.options.v);
        return await runAgent(parsed.options);
    }
  } catch (err) {
    // Like a bad flag: the user's to fix before anything ran, one line, exit 2.
    if (err instanceof KubeConfigError) {
      console.error(`ha-controller: ${err.message}`);
      return 2;
    }
    throw err;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
