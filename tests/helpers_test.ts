// The deadline scale that every test wait uses, as a user sets it.

import assert from "node:assert/strict";

const helpers = new URL("./helpers.ts", import.meta.url).href;

/** Runs a Deno program importing tests/helpers.ts with `HA_TEST_DEADLINE_SCALE` set (or unset). */
async function withScale(scale: string | undefined, code: string) {
  const env: Record<string, string> = {};
  if (scale !== undefined) env.HA_TEST_DEADLINE_SCALE = scale;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `import { deadline, waitFor } from ${JSON.stringify(helpers)};\n${code}`],
    env,
    clearEnv: scale === undefined,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

Deno.test("deadlines are three times an idle machine's unless HA_TEST_DEADLINE_SCALE says", async () => {
  const unset = await withScale(undefined, "console.log(deadline(1000));");
  assert.equal(unset.code, 0, unset.stderr);
  assert.equal(unset.stdout.trim(), "3000");
  const one = await withScale("1", "console.log(deadline(1000));");
  assert.equal(one.stdout.trim(), "1000");
  const half = await withScale("0.5", "console.log(deadline(999));");
  assert.equal(half.stdout.trim(), "500");
});

Deno.test("a timeout message gives the scaled deadline and the described state", async () => {
  const run = await withScale(
    "0.1",
    "await waitFor(() => false, 1000, () => 'the impossible');",
  );
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /timed out after 100ms waiting for: the impossible/);
});

Deno.test("a bad HA_TEST_DEADLINE_SCALE is refused with its value", async () => {
  for (const bad of ["0", "-2", "fast"]) {
    const run = await withScale(bad, "console.log(deadline(1000));");
    assert.notEqual(run.code, 0, bad);
    assert.match(
      run.stderr,
      new RegExp(`Expected HA_TEST_DEADLINE_SCALE to be a positive number, got "${bad}"`),
    );
  }
});
