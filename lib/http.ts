/**
 * `/healthz`, `/metrics` and `/status` (the agent's last decision and
 * timers, for the `status` command).
 *
 * @module
 */

/** The agent's health: ok, or the reason it is not. */
export interface Health {
  /** True when healthy. */
  ok: boolean;
  /** Why not (or "ok"). */
  reason: string;
}

/** What the health server asks the agent. */
export interface HealthSources {
  /** Current health. */
  health: () => Health;
  /** Prometheus text exposition. */
  metrics: () => string;
  /** The `status` report of the last decision (JSON), undefined before the first one. */
  status?: () => unknown;
}

/**
 * Split a Go-style bind address (`:8000`, `0.0.0.0:8000`, `127.0.0.1:9`,
 * `[::1]:8000`) into hostname and port. Throws on anything else.
 */
export function parseBindAddress(address: string): { hostname: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new Error(`invalid bind address "${address}": expected [host]:port such as :8000`);
  }
  return { hostname: match[1] ?? (match[2] || "0.0.0.0"), port };
}

/** Start the health server; returns a function that stops it. */
export function serveHealth(
  address: string,
  sources: HealthSources,
  onListen?: (addr: Deno.NetAddr) => void,
): { stop: () => Promise<void>; finished: Promise<void> } {
  const { hostname, port } = parseBindAddress(address);
  const server = Deno.serve({
    hostname,
    port,
    onListen: (addr) => onListen?.(addr as Deno.NetAddr),
  }, (request) => handle(request, sources));
  return { stop: () => server.shutdown(), finished: server.finished };
}

function handle(request: Request, sources: HealthSources): Response {
  const path = new URL(request.url).pathname;
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405 });
  }
  if (path === "/healthz") {
    const h = sources.health();
    return new Response(`${h.reason}\n`, {
      status: h.ok ? 200 : 500,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  }
  if (path === "/metrics") {
    return new Response(sources.metrics(), {
      headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  }
  if (path === "/status" && sources.status !== undefined) {
    const report = sources.status();
    if (report === undefined) {
      return new Response("no decision yet\n", { status: 503 });
    }
    return new Response(JSON.stringify(report), {
      headers: { "Content-Type": "application/json" },
    });
  }
  return new Response("not found: try /healthz, /metrics or /status\n", { status: 404 });
}
