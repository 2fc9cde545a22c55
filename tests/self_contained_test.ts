// The suite needs nothing but a clone of this repository and `npm ci`: no test reads a file
// outside the checkout, runs a tool from the machine's PATH where the pinned one exists, or is
// skipped quietly. Only the drbd-utils chroot test may skip, and it says why.

import assert from "node:assert/strict";

const repo = new URL("../", import.meta.url);
const repoPath = repo.pathname;

/** Every .ts file under tests/, as repository-relative paths. */
async function testSources(dir = "tests"): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(new URL(dir, repo))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...await testSources(path));
    else if (entry.name.endsWith(".ts")) found.push(path);
  }
  return found.sort();
}

const sources = await Promise.all(
  (await testSources()).map(async (path) => ({
    path,
    text: await Deno.readTextFile(new URL(path, repo)),
  })),
);

/** Where `text` matches `pattern`, as `file:line: the line`. */
function matches(pattern: RegExp, except: string[] = []): string[] {
  return sources.filter(({ path }) => !except.includes(path)).flatMap(({ path, text }) =>
    text.split("\n").flatMap((line, i) =>
      pattern.test(line) ? [`${path}:${i + 1}: ${line.trim()}`] : []
    )
  );
}

Deno.test("every file a test names relative to itself lies inside the repository", () => {
  assert.ok(sources.length > 50, `found ${sources.length} test sources`);
  const outside: string[] = [];
  for (const { path, text } of sources) {
    const base = new URL(path, repo);
    for (const match of text.matchAll(/new URL\(\s*"([^"]+)",\s*import\.meta\.url\s*\)/g)) {
      const target = new URL(match[1], base);
      if (target.protocol === "file:" && !target.pathname.startsWith(repoPath)) {
        outside.push(`${path}: ${match[1]} is ${target.pathname}`);
      }
    }
  }
  assert.deepEqual(outside, []);
});

Deno.test("no test reads the shared reference folder beside the repository", () => {
  // This file spells the names it looks for, so it is left out.
  assert.deepEqual(
    matches(/shared\/reference|\.\.\/\.\.\/\.\.\/shared/, ["tests/self_contained_test.ts"]),
    [],
  );
});

Deno.test("kubectl and helm are the pinned ones, never a path on the machine", () => {
  assert.deepEqual(
    matches(/["'`]\/(usr\/)?(local\/)?s?bin\/(kubectl|helm)\b/, ["tests/self_contained_test.ts"]),
    [],
  );
  assert.deepEqual(
    matches(/new Deno\.Command\(\s*["'`](kubectl|helm)["'`]/, ["tests/self_contained_test.ts"]),
    [],
  );
});

// Both need root for a private mount namespace (CI runs as root).
Deno.test("only the chroot and in-cluster tests may be skipped, and they print why", () => {
  const skips = matches(
    /\bignore\s*:|Deno\.test\.ignore|\bif\s*\([^)]*\)\s*Deno\.test\b/,
    ["tests/self_contained_test.ts"],
  );
  assert.deepEqual(skips.map((hit) => hit.split(":")[0]).sort(), [
    "tests/agent/in_cluster_test.ts",
    "tests/deploy/rootfs_test.ts",
  ]);
  const text = (path: string) => sources.find((source) => source.path === path)!.text;
  assert.match(
    text("tests/deploy/rootfs_test.ts"),
    /console\.warn\(`tests\/deploy\/rootfs_test\.ts: SKIPPING the chroot test: \$\{skipReason\}`\)/,
  );
  assert.match(
    text("tests/agent/in_cluster_test.ts"),
    /console\.warn\(`tests\/agent\/in_cluster_test\.ts: SKIPPING the in-cluster test: \$\{skipReason\}`\)/,
  );
});
