// The health server: one bind-address parser for the CLI and the server,
// /healthz status codes and reasons, /metrics content type.

import assert from "node:assert/strict";
import { parseBindAddress, serveHealth } from "../lib/http.ts";
import { parseCommandLine, UsageError } from "../lib/cli.ts";

Deno.test("bind addresses: Go forms accepted, anything the server cannot bind rejected", () => {
  assert.deepEqual(parseBindAddress(":8000"), { hostname: "0.0.0.0", port: 8000 });
  assert.deepEqual(parseBindAddress("127.0.0.1:9"), { hostname: "127.0.0.1", port: 9 });
  assert.deepEqual(parseBindAddress("[::1]:8000"), { hostname: "::1", port: 8000 });
  for (const bad of ["8000", "[fe80::1%eth0]:8000", "[]:8000", "host:99999", "a:b"]) {
    assert.throws(() => parseBindAddress(bad), /invalid bind address/, bad);
    assert.throws(
      () => parseCommandLine(["--node-name", "n", "--health-bind-address", bad], {}),
      UsageError,
      `the CLI rejects ${bad} too`,
    );
  }
});

Deno.test("/healthz answers 200 or 500 with the reason; /metrics is Prometheus text", async () => {
  let health = { ok: false, reason: "caches not synced: pods on node-a: 500" };
  let port = 0;
  const server = serveHealth("127.0.0.1:0", {
    health: () => health,
    metrics: () => "ha_controller_up 1\n",
  }, (addr) => port = addr.port);
  try {
    const bad = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.deepEqual([bad.status, await bad.text()], [
      500,
      "caches not synced: pods on node-a: 500\n",
    ]);
    health = { ok: true, reason: "ok" };
    const good = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.deepEqual([good.status, await good.text()], [200, "ok\n"]);
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(metrics.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(await metrics.text(), "ha_controller_up 1\n");
    const missing = await fetch(`http://127.0.0.1:${port}/nope`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    await server.stop();
  }
});

Deno.test("/status: 503 before the first decision, then the report as JSON", async () => {
  let report: unknown = undefined;
  let port = 0;
  const server = serveHealth("127.0.0.1:0", {
    health: () => ({ ok: true, reason: "ok" }),
    metrics: () => "",
    status: () => report,
  }, (addr) => port = addr.port);
  try {
    const early = await fetch(`http://127.0.0.1:${port}/status`);
    assert.deepEqual([early.status, await early.text()], [503, "no decision yet\n"]);
    report = { node: "node-a", resources: [] };
    const answer = await fetch(`http://127.0.0.1:${port}/status`);
    assert.equal(answer.headers.get("content-type"), "application/json");
    assert.deepEqual(await answer.json(), { node: "node-a", resources: [] });
  } finally {
    await server.stop();
  }
});
