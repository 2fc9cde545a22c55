/**
 * Helpers for tests that talk to the simulated API server over HTTP without
 * a Kubernetes client: authenticated fetch, a watch reader, and polling.
 *
 * @module
 */

import type { ApiServer } from "./server.ts";
import { deadline } from "../../helpers.ts";

/** A `fetch` bound to the server: its CA (with TLS) and its bearer token. */
export interface ServerFetch {
  /** Fetches `path` (relative to the server URL). */
  (path: string, init?: RequestInit): Promise<Response>;
  /** Releases the TLS client. */
  close(): void;
}

/** Makes a fetch that trusts the server's CA and sends its token. */
export function serverFetch(server: ApiServer, options: { token?: string } = {}): ServerFetch {
  const client = server.caPem !== undefined
    ? Deno.createHttpClient({ caCerts: [server.caPem] })
    : undefined;
  const token = options.token ?? server.token;
  const f = ((path: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    if (token !== "" && !headers.has("authorization")) {
      headers.set("authorization", `Bearer ${token}`);
    }
    const request: RequestInit & { client?: Deno.HttpClient } = { ...init, headers };
    if (client !== undefined) request.client = client;
    return fetch(`${server.url}${path}`, request);
  }) as ServerFetch;
  f.close = () => client?.close();
  return f;
}

/** One decoded watch event. */
export interface WatchEvent {
  /** ADDED, MODIFIED, DELETED, BOOKMARK or ERROR. */
  type: string;
  /** The object (or Status for ERROR). */
  // deno-lint-ignore no-explicit-any
  object: any;
}

/** A watch being read in the background. */
export interface WatchReader {
  /** HTTP status of the watch response. */
  status: number;
  /** Content-Type of the watch response. */
  contentType: string | null;
  /** Events received so far. */
  events: WatchEvent[];
  /** Resolves when the stream ends: `"closed"` normally, `"error"` when cut. */
  ended: Promise<"closed" | "error">;
  /** Whether the stream ended. */
  done: () => boolean;
  /** Stops reading and closes the connection. */
  cancel: () => Promise<void>;
}

/** Starts a watch request and collects its events. */
export async function readWatch(f: ServerFetch, path: string): Promise<WatchReader> {
  const response = await f(path);
  const events: WatchEvent[] = [];
  let finished = false;
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const ended = (async (): Promise<"closed" | "error"> => {
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line !== "") events.push(JSON.parse(line));
        }
      }
      return "closed";
    } catch {
      return "error";
    } finally {
      finished = true;
    }
  })();
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    events,
    ended,
    done: () => finished,
    cancel: async () => {
      await reader.cancel().catch(() => {});
      await ended;
    },
  };
}

/**
 * Polls `condition` every 10 ms until it holds; throws once `timeoutMs`
 * (default 3000, an idle machine's deadline, scaled by `deadline` of
 * tests/helpers.ts) has passed.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; what?: string } = {},
): Promise<void> {
  const effectiveMs = deadline(options.timeoutMs ?? 3000);
  const end = Date.now() + effectiveMs;
  while (!(await condition())) {
    if (Date.now() > end) {
      throw new Error(
        `Expected ${options.what ?? "the condition"} within ${effectiveMs} ms, it did not happen`,
      );
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}
