import assert from "node:assert/strict";
import { version } from "../../lib/version.ts";
import { parseCommandLine } from "../../lib/cli.ts";

Deno.test("the version matches package.json", async () => {
  const packageJson = JSON.parse(
    await Deno.readTextFile(new URL("../../package.json", import.meta.url)),
  );
  assert.equal(version, packageJson.version);
});

Deno.test("--version asks for the version, without needing a node name", () => {
  assert.deepEqual(parseCommandLine(["--version"], {}), { command: "version" });
  assert.deepEqual(parseCommandLine(["status", "--version"], {}), { command: "version" });
});
