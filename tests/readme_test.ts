// The README's flag table and permission list stay in step with --help and deno.json.

import assert from "node:assert/strict";
import { flagDefinitions, helpText } from "../lib/cli.ts";

const repo = new URL("../", import.meta.url).pathname;
const readme = await Deno.readTextFile(`${repo}README.md`);

function tableRows(startMarker: string, endMarker: string): string[][] {
  const start = readme.indexOf(startMarker);
  const end = readme.indexOf(endMarker, start);
  assert.ok(start >= 0 && end > start, `README has the ${startMarker} ... ${endMarker} block`);
  return readme.slice(start, end).split("\n")
    .filter((l) => l.startsWith("| `"))
    .map((l) => l.split("|").slice(1, -1).map((c) => c.trim()));
}

Deno.test("README flag table lists every flag of --help with the same default and meaning", () => {
  const rows = tableRows("<!-- flag-table", "<!-- end flag-table -->");
  const fromReadme = rows.map(([flag, def, meaning]) => ({
    name: flag.replace(/^`--|`$/g, ""),
    default: def.replace(/^`|`$/g, ""),
    description: meaning,
  }));
  const fromCode = flagDefinitions.map((f) => ({
    name: f.name,
    default: f.default,
    description: f.description,
  }));
  assert.deepEqual(fromReadme, fromCode);
  const help = helpText();
  for (const f of flagDefinitions) {
    assert.ok(help.includes(`--${f.name}`), `--help mentions --${f.name}`);
  }
});

Deno.test("README permission table matches the start task's flags", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${repo}deno.json`));
  const flags: string[] = (config.tasks.start as string).split(/\s+/).filter((w) =>
    w.startsWith("--allow-") || w.startsWith("--ignore-")
  );
  const start = readme.search(/^\| permission +\| value +\| why +\|/m);
  assert.ok(start >= 0, "README has a permission table");
  const rows = readme.slice(start).split("\n").slice(2).filter((l) => l.startsWith("|"))
    .map((l) => l.split("|").slice(1, -1).map((c) => c.trim().replace(/^`|`$/g, "")));
  const documented = rows.map(([flag, value]) => value ? `${flag}=${value}` : flag).sort();
  assert.deepEqual(documented, [...flags].sort());
});

Deno.test("CI runs exactly the README's two commands, plus the drbd-utils install it describes", async () => {
  const quickStart = readme.slice(readme.indexOf("## Quick start"), readme.indexOf("## Install"));
  const testBlock = /The test suite, which CI runs[\s\S]*?```sh\n([\s\S]*?)```/.exec(quickStart);
  assert.ok(testBlock, "the Quick start shows the test commands");
  const commands = testBlock[1].split("\n").map((line) => line.replace(/#.*/, "").trim())
    .filter((line) => line !== "");
  assert.deepEqual(commands, ["npm ci", "npx deno task test"]);
  // The commands .ci/run runs: every line that is not a comment, a shell setting or a control
  // line of the drbd-utils block.
  const ci = await Deno.readTextFile(`${repo}.ci/run`);
  const steps = ci.split("\n").map((line) => line.trim())
    .filter((line) => /^(npm|npx|apt-get|\{ apt-get)\b/.test(line));
  // Without options, so that quiet flags may change.
  const words = (line: string) => line.split(/\s+/).filter((w) => !w.startsWith("-")).join(" ");
  assert.deepEqual(steps.map(words), [
    "npm ci",
    "{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install \\",
    "npx deno task test",
  ]);
  assert.match(ci, /install -y -qq\s*\\\n\s*--no-install-recommends drbd-utils/);
  assert.match(
    readme,
    /`\.ci\/run` is `npm ci`, then \(as root with `apt-get`\) Debian's\s+`drbd-utils`/,
  );
});

Deno.test("README's Performance section gives the agent's V8 flags and the bench task's flags", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${repo}deno.json`));
  const start = readme.indexOf("## Performance");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  const v8 = (config.tasks.start as string).split(/\s+/).filter((w) => w.startsWith("--v8-flags="));
  for (const flag of v8) assert.ok(section.includes(`\`${flag}\``), `Performance names ${flag}`);
  assert.match(config.tasks.bench, /tests\/bench\/main\.ts$/);
  assert.ok(section.includes("npx deno task bench"));
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `${repo}tests/bench/main.ts`, "--help"],
  }).output();
  assert.equal(help.code, 0);
  const flags = new TextDecoder().decode(help.stdout).match(/--[a-z-]+/g) ?? [];
  assert.ok(flags.length >= 4, "the bench's usage names its flags");
  for (const flag of flags) assert.ok(section.includes(flag), `Performance names ${flag}`);
});
