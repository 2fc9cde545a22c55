/**
 * The one HTTP path to the Kubernetes API.
 *
 * `@kubernetes/client-node` loads the kubeconfig (file, KUBECONFIG or
 * in-cluster service account) and computes TLS material and auth headers;
 * requests and watches go through Deno's own `fetch` with a
 * `Deno.createHttpClient` for the cluster CA. client-node's own Watch is not
 * used: under Deno its abort and dead-server detection do not work
 * (see the README), and one request path lets every call be timed out and
 * counted the same way.
 *
 * @module
 */

import { KubeConfig } from "@kubernetes/client-node";
import type https from "node:https";
import { errorMessage } from "../errors.ts";

// Kept here too while callers still import it from the Kubernetes edge.
export { errorMessage };

/** Verbs as counted in metrics and logged. */
export type Verb =
  | "get"
  | "list"
  | "watch"
  | "create"
  | "update"
  | "patch"
  | "delete"
  | "evict";

/** Called after every API response (or transport failure, code "error"). */
export type RequestObserver = (verb: Verb, code: string) => void;

/** A Kubernetes API error (non-2xx answer or transport failure). */
export class ApiError extends Error {
  /** HTTP status, 0 for a transport failure or timeout. */
  readonly status: number;
  /** Status reason (e.g. `NotFound`, `Conflict`), or `Timeout` / `Transport`. */
  readonly reason: string;
  /** Seconds the server asked us to wait (Retry-After), if any. */
  readonly retryAfterSeconds: number | undefined;
  /** Status `details`, when the server sent them. */
  readonly details: Record<string, unknown> | undefined;

  /** Create an error for `verb path`. */
  constructor(
    verb: Verb,
    path: string,
    init: {
      status: number;
      reason: string;
      message: string;
      retryAfterSeconds?: number;
      details?: Record<string, unknown>;
    },
  ) {
    const what = init.status === 0 ? init.reason.toLowerCase() : `${init.status} ${init.reason}`;
    super(`${verb} ${path} failed (${what}): ${init.message}`);
    this.name = "ApiError";
    this.status = init.status;
    this.reason = init.reason;
    this.retryAfterSeconds = init.retryAfterSeconds;
    this.details = init.details;
  }
}

/** Options of a single request. */
export interface RequestOptions {
  /** Query parameters; undefined values are left out. */
  query?: Record<string, string | number | boolean | undefined>;
  /** JSON body. */
  body?: unknown;
  /** Content-Type of the body (default application/json). */
  contentType?: string;
  /** Per-request timeout in ms; 0 or undefined uses the client's default. */
  timeoutMs?: number;
  /** Abort signal from the caller. */
  signal?: AbortSignal;
}

/** How the client reaches the API server. */
export interface ClientOptions {
  /** Path of a kubeconfig; empty: in-cluster config. */
  kubeconfig: string;
  /** Default timeout for non-watch requests in ms; 0 means none. */
  requestTimeoutMs: number;
  /** Called after every request. */
  observe?: RequestObserver;
}

const authRefreshMs = 60_000;

/** A connection to one Kubernetes API server. */
export class KubeClient {
  /** Base URL, without a trailing slash. */
  readonly server: string;
  readonly #kc: KubeConfig;
  readonly #http: Deno.HttpClient | undefined;
  readonly #requestTimeoutMs: number;
  readonly #observe: RequestObserver;
  #headers: Record<string, string> = {};
  #headersAt = -Infinity;

  private constructor(
    kc: KubeConfig,
    server: string,
    http: Deno.HttpClient | undefined,
    options: ClientOptions,
  ) {
    this.#kc = kc;
    this.server = server;
    this.#http = http;
    this.#requestTimeoutMs = options.requestTimeoutMs;
    this.#observe = options.observe ?? (() => {});
  }

  /**
   * Load the configuration and prepare TLS. Throws an Error with a clear
   * message when no configuration can be found or it is unusable.
   */
  static async connect(options: ClientOptions): Promise<KubeClient> {
    const kc = new KubeConfig();
    const file = options.kubeconfig;
    try {
      if (file) kc.loadFromFile(file);
      else kc.loadFromCluster();
    } catch (err) {
      throw new Error(
        `Cannot load the Kubernetes configuration from ${
          file ? `kubeconfig ${file}` : "the in-cluster service account"
        }: ${errorMessage(err)}`,
      );
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster?.server) {
      throw new Error(
        file
          ? `Kubeconfig ${file} has no current cluster with a server address`
          : "Not running in a cluster: KUBERNETES_SERVICE_HOST is not set; use --kubeconfig",
      );
    }
    const server = cluster.server.replace(/\/+$/, "");
    const tls: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(tls);
    let http: Deno.HttpClient | undefined;
    if (server.startsWith("https:")) {
      if (cluster.skipTLSVerify) {
        throw new Error(
          "insecure-skip-tls-verify is not supported for https servers: give the cluster CA instead",
        );
      }
      const caCerts = tls.ca ? [pem(tls.ca)] : undefined;
      const cert = tls.cert ? pem(tls.cert) : undefined;
      const key = tls.key ? pem(tls.key) : undefined;
      http = cert && key
        ? Deno.createHttpClient({ caCerts, cert, key })
        : Deno.createHttpClient({ caCerts });
    }
    const client = new KubeClient(kc, server, http, options);
    await client.#authHeaders();
    return client;
  }

  /** Release the HTTP client. */
  close(): void {
    this.#http?.close();
  }

  async #authHeaders(): Promise<Record<string, string>> {
    // Service-account tokens are rotated on disk; re-read them regularly.
    if (performance.now() - this.#headersAt < authRefreshMs) return this.#headers;
    const opts: https.RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (typeof v === "string" || typeof v === "number") headers[k] = String(v);
    }
    if (opts.auth) headers.Authorization = `Basic ${btoa(opts.auth)}`;
    this.#headers = headers;
    this.#headersAt = performance.now();
    return headers;
  }

  /** Build the URL of `path` with `query`. */
  url(path: string, query?: RequestOptions["query"]): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined) params.set(k, String(v));
    }
    const qs = params.toString();
    return `${this.server}${path}${qs ? `?${qs}` : ""}`;
  }

  /**
   * Send one request and parse the JSON answer. Non-2xx answers and transport
   * failures throw ApiError.
   */
  async request<T>(
    verb: Verb,
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<T> {
    return (await this.requestWithDate<T>(verb, method, path, options)).body;
  }

  /**
   * Like `request`, plus the server's clock: the answer's `Date` header in
   * ms since the epoch (undefined when missing). Lets callers compare
   * server-written times without trusting this machine's clock.
   */
  async requestWithDate<T>(
    verb: Verb,
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<{ body: T; serverDate: number | undefined }> {
    const response = await this.#send(verb, method, path, options, false);
    try {
      const date = Date.parse(response.body.headers.get("Date") ?? "");
      const text = await response.body.text();
      return {
        body: (text ? JSON.parse(text) : {}) as T,
        serverDate: Number.isFinite(date) ? date : undefined,
      };
    } catch (err) {
      this.#observe(verb, "error");
      throw new ApiError(verb, path, {
        status: 0,
        reason: "Transport",
        message: `unreadable response: ${errorMessage(err)}`,
      });
    } finally {
      response.done();
    }
  }

  /**
   * Open a watch (or any streaming GET). The caller reads `body` and must call
   * `done()`; aborting `signal` ends the stream.
   */
  openStream(
    path: string,
    query: RequestOptions["query"],
    signal: AbortSignal,
  ): Promise<{ body: Response; done: () => void }> {
    return this.#send("watch", "GET", path, { query, signal }, true);
  }

  async #send(
    verb: Verb,
    method: string,
    path: string,
    options: RequestOptions,
    stream: boolean,
  ): Promise<{ body: Response; done: () => void }> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort);
    const timeoutMs = stream ? 0 : (options.timeoutMs || this.#requestTimeoutMs);
    let timedOut = false;
    const timer = timeoutMs > 0
      ? setTimeout(() => {
        timedOut = true;
        controller.abort(new Error("timeout"));
      }, timeoutMs)
      : undefined;
    const done = () => {
      if (timer !== undefined) clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    };
    let response: Response;
    try {
      const headers: Record<string, string> = {
        ...(await this.#authHeaders()),
        Accept: "application/json",
        "User-Agent": "ha-controller",
      };
      if (options.body !== undefined) {
        headers["Content-Type"] = options.contentType ?? "application/json";
      }
      response = await fetch(this.url(path, options.query), {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: controller.signal,
        client: this.#http,
      });
    } catch (err) {
      done();
      this.#observe(verb, "error");
      if (options.signal?.aborted) throw err;
      throw new ApiError(verb, path, {
        status: 0,
        reason: timedOut ? "Timeout" : "Transport",
        message: timedOut ? `no answer within ${timeoutMs}ms` : transportMessage(err),
      });
    }
    this.#observe(verb, String(response.status));
    if (response.ok) return { body: response, done };
    let status: Record<string, unknown> = {};
    try {
      status = JSON.parse(await response.text());
    } catch {
      // A non-JSON error body: keep the HTTP status only.
    } finally {
      done();
    }
    const retryAfter = Number(response.headers.get("Retry-After"));
    throw new ApiError(verb, path, {
      status: response.status,
      reason: typeof status.reason === "string" && status.reason
        ? status.reason
        : response.statusText,
      message: typeof status.message === "string" ? status.message : response.statusText,
      retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
      details: typeof status.details === "object" && status.details !== null
        ? status.details as Record<string, unknown>
        : undefined,
    });
  }
}

function pem(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return new TextDecoder().decode(value);
  if (Array.isArray(value)) return value.map(pem).join("\n");
  return String(value);
}

function transportMessage(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
  // The URL is already in the ApiError's "verb path" prefix; Deno repeats it
  // with every query parameter, which buries the actual reason.
  return `${errorMessage(err)}${cause}`.replace(/ for url \([^)]*\)/g, "");
}

/** True for "not found" answers, which count as done for deletes. */
export function isNotFound(err: unknown): boolean {
  return err instanceof ApiError && err.status === 404;
}
