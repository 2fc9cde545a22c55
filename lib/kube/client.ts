/**
 * The one HTTP path to the Kubernetes API.
 *
 * The configuration is looked up as kubectl does (see {@link locateKubeConfig}):
 * `--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`, else the
 * in-cluster service account. The in-cluster configuration (what the
 * DaemonSet always uses) is read here, as client-go's `InClusterConfig` does:
 * the token and CA files and KUBERNETES_SERVICE_HOST / _PORT, the token
 * re-read every minute because the kubelet rotates it on disk.
 * `@kubernetes/client-node` is loaded only for kubeconfig files (with their
 * exec and OIDC auth plugins), by a dynamic import: importing it costs about
 * 70 MiB of resident memory, most of the agent's footprint. Requests and
 * watches go through Deno's own `fetch` with a `Deno.createHttpClient` for
 * the cluster CA. client-node's own Watch is not used: under Deno its abort
 * and dead-server detection do not work (see the README), and one request
 * path lets every call be timed out and counted the same way.
 *
 * @module
 */

import type { KubeConfig } from "@kubernetes/client-node";
import type https from "node:https";
import { delimiter, dirname } from "node:path";
import { errorMessage } from "../errors.ts";
import { type Clock, systemClock } from "../clock.ts";
import { type Log, logger } from "../log.ts";

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

/**
 * A Kubernetes configuration that cannot be found or used. The message is one
 * line meant for the user: what was tried or what is wrong, and how to fix it.
 * `main.ts` prints it and exits with 2, as for a bad flag.
 */
export class KubeConfigError extends Error {
  /** Builds the error from its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "KubeConfigError";
  }
}

/** The directory of the service-account files every pod is given. */
export const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The service-account token; without it this process is not in a cluster. */
export const serviceAccountTokenPath = `${serviceAccountDir}/token`;

/** An environment variable as this process may see it. */
export type EnvLookup =
  /** The Deno permissions hide it (not in `--allow-env`, or `--ignore-env`). */
  | { hidden: true }
  /** Visible; `value` is undefined when the variable is unset. */
  | { hidden: false; value: string | undefined };

/** Whether a file is there, as far as this process may know: "denied" when it may not read it. */
export type FileLookup = "present" | "missing" | "denied";

/** What the kubeconfig lookup sees of the process: its environment and its files. */
export interface KubeConfigHost {
  /** Look up an environment variable. */
  env(name: string): EnvLookup;
  /** Look up a file. */
  file(path: string): FileLookup;
}

/**
 * This process, asked the way that never prompts: the Deno permissions are
 * queried first, and whatever they do not grant counts as hidden or denied.
 */
export const processHost: KubeConfigHost = { env: lookupEnv, file: lookupFile };

function lookupEnv(name: string): EnvLookup {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return { hidden: true };
  }
  try {
    return { hidden: false, value: Deno.env.get(name) };
  } catch {
    return { hidden: true };
  }
}

function lookupFile(path: string): FileLookup {
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") return "denied";
  try {
    Deno.statSync(path);
    return "present";
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "missing";
    if (err instanceof Deno.errors.NotCapable) return "denied";
    // Something else (a directory in the way, ...): reading it will say what.
    return "present";
  }
}

/** Where the Kubernetes configuration comes from. */
export type KubeConfigSource =
  /** Kubeconfig files, merged in order as kubectl does; `via` says how they were found. */
  | { kind: "files"; files: string[]; via: "--kubeconfig" | "$KUBECONFIG" | "~/.kube/config" }
  /** The pod's service account and KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT. */
  | { kind: "in-cluster" };

const localTaskHint = "outside a cluster use 'deno task local'";

/**
 * Find the Kubernetes configuration in kubectl's order: the `--kubeconfig`
 * path (`flag`, unless empty), else the existing files of `$KUBECONFIG` (a
 * `:`-separated list; missing entries are skipped), else `~/.kube/config`,
 * else the in-cluster service account (its token file plus
 * KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT).
 *
 * A variable or file that the Deno permissions hide counts as absent and is
 * never asked for, so nothing prompts and nothing crashes. The production
 * permissions (`deno task start`, the compiled binary) expose neither
 * KUBECONFIG nor HOME and read only the service-account directory, so in the
 * DaemonSet the lookup always ends at the in-cluster config.
 *
 * @throws {KubeConfigError} when the `--kubeconfig` file or a `$KUBECONFIG`
 *   file is missing or may not be read, when `$KUBECONFIG` names no existing
 *   file, or when nothing is found; the message lists every place tried.
 */
export function locateKubeConfig(
  flag: string,
  host: KubeConfigHost = processHost,
): KubeConfigSource {
  if (flag !== "") {
    const state = host.file(flag);
    if (state === "denied") throw readDenied(flag, "--kubeconfig");
    if (state === "missing") throw notFound(flag, "--kubeconfig");
    return { kind: "files", files: [flag], via: "--kubeconfig" };
  }

  const tried = ["--kubeconfig not given"];
  // What the permissions would have to allow for the places they hid.
  const hiddenEnv: string[] = [];
  const hiddenFiles: string[] = [];

  const kubeconfigEnv = host.env("KUBECONFIG");
  const listed = kubeconfigEnv.hidden
    ? []
    : (kubeconfigEnv.value ?? "").split(delimiter).filter((path) => path !== "");
  if (kubeconfigEnv.hidden) {
    tried.push("$KUBECONFIG not visible (needs --allow-env=KUBECONFIG)");
    hiddenEnv.push("KUBECONFIG");
  } else if (listed.length === 0) {
    tried.push("$KUBECONFIG not set");
  } else {
    const files: string[] = [];
    for (const path of listed) {
      const state = host.file(path);
      if (state === "denied") throw readDenied(path, "$KUBECONFIG");
      if (state === "present") files.push(path);
    }
    if (files.length === 0) {
      throw new KubeConfigError(
        `$KUBECONFIG names no existing file (${listed.join(delimiter)}): ` +
          "correct or unset it, or pass --kubeconfig FILE",
      );
    }
    return { kind: "files", files, via: "$KUBECONFIG" };
  }

  const home = host.env("HOME");
  if (home.hidden) {
    tried.push("~/.kube/config not tried ($HOME not visible, needs --allow-env=HOME)");
    hiddenEnv.push("HOME");
  } else if (!home.value) {
    tried.push("~/.kube/config not tried ($HOME not set)");
  } else {
    const path = `${home.value.replace(/\/+$/, "")}/.kube/config`;
    const state = host.file(path);
    if (state === "present") return { kind: "files", files: [path], via: "~/.kube/config" };
    if (state === "denied") {
      tried.push(`~/.kube/config (${path}) not readable (needs --allow-read=${path})`);
      hiddenFiles.push(path);
    } else {
      tried.push(`~/.kube/config (${path}) not found`);
    }
  }

  const token = host.file(serviceAccountTokenPath);
  if (token === "denied") {
    tried.push(`in-cluster config not readable (needs --allow-read=${serviceAccountDir})`);
    hiddenFiles.push(serviceAccountDir);
  } else if (token === "missing") {
    tried.push(`not in a cluster (no ${serviceAccountTokenPath})`);
  } else {
    const problem = inClusterEnvProblem(host);
    if (problem === undefined) return { kind: "in-cluster" };
    tried.push(problem.text);
    hiddenEnv.push(...problem.hidden);
  }

  const allow = [
    hiddenEnv.length > 0 ? `--allow-env=${hiddenEnv.join(",")}` : "",
    hiddenFiles.length > 0 ? `--allow-read=${hiddenFiles.join(",")}` : "",
  ].filter((flag) => flag !== "").join(" ");
  const fix = allow === ""
    ? "pass --kubeconfig FILE"
    : `${localTaskHint}, or add ${allow} to the Deno permissions`;
  throw new KubeConfigError(`no Kubernetes configuration: ${tried.join(", ")}; ${fix}`);
}

const inClusterEnv = ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"];

/** Why the in-cluster address is unknown, or undefined when both variables are set. */
function inClusterEnvProblem(
  host: KubeConfigHost,
): { text: string; hidden: string[] } | undefined {
  for (const name of inClusterEnv) {
    const value = host.env(name);
    if (value.hidden) {
      return {
        text: `in-cluster config not usable (${name} not visible, needs --allow-env=${
          inClusterEnv.join(",")
        })`,
        hidden: inClusterEnv,
      };
    }
    if (!value.value) return { text: `not in a cluster (${name} not set)`, hidden: [] };
  }
  return undefined;
}

function readDenied(path: string, via: string): KubeConfigError {
  return new KubeConfigError(
    `kubeconfig ${path} (${via}) may not be read with these Deno permissions; ` +
      `${localTaskHint}, or add --allow-read=${path} and --allow-net for its API server`,
  );
}

function notFound(path: string, via: string): KubeConfigError {
  return new KubeConfigError(`kubeconfig ${path} (${via}) does not exist`);
}

/** How messages name a configuration source. */
export function describeKubeConfigSource(source: KubeConfigSource): string {
  if (source.kind === "in-cluster") return "the in-cluster service account";
  return `kubeconfig ${source.files.join(delimiter)} (${source.via})`;
}

/** Kubeconfig files, as {@link locateKubeConfig} finds them. */
export type KubeConfigFiles = Extract<KubeConfigSource, { kind: "files" }>;

/**
 * Read and parse the kubeconfig files `source` names; several files are
 * merged as kubectl does (the first file to set a name or the current
 * context wins). Loads `@kubernetes/client-node` on first use.
 *
 * @throws {KubeConfigError} when a file is missing, unreadable, empty or not a kubeconfig.
 */
export async function loadKubeConfig(source: KubeConfigFiles): Promise<KubeConfig> {
  // Read first: a missing file is reported without loading the library.
  const texts = source.files.map((file) => [file, readKubeConfigText(file, source.via)]);
  // A string literal, so that `deno compile` and `deno bundle` embed the package.
  const { KubeConfig } = await import("@kubernetes/client-node");
  const [first, ...rest] = texts.map(([file, text]) => {
    const kc = new KubeConfig();
    try {
      kc.loadFromString(text);
      kc.makePathsAbsolute(dirname(file));
    } catch (err) {
      throw new KubeConfigError(
        `kubeconfig ${file} (${source.via}) is not a valid kubeconfig: ${firstLine(err)}`,
      );
    }
    return kc;
  });
  for (const later of rest) mergeKubeConfig(first, later);
  return first;
}

function readKubeConfigText(path: string, via: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw notFound(path, via);
    if (err instanceof Deno.errors.NotCapable) throw readDenied(path, via);
    throw new KubeConfigError(`cannot read kubeconfig ${path} (${via}): ${readReason(err)}`);
  }
  if (text.trim() === "") throw new KubeConfigError(`kubeconfig ${path} (${via}) is empty`);
  return text;
}

/** A file error's reason: Deno ends the message with the operation and the path, named already. */
function readReason(err: unknown): string {
  return firstLine(err).replace(/: \w+ '[^']*'$/, "");
}

/** The in-cluster configuration, as client-go's `InClusterConfig` reads it. */
export interface InClusterConfig {
  /** `https://HOST:PORT` from KUBERNETES_SERVICE_HOST/PORT; an IPv6 host in brackets. */
  server: string;
  /** The cluster CA (PEM) from `ca.crt`. */
  caPem: string;
  /** Path of `ca.crt`, for messages. */
  caPath: string;
  /** Path of the token file, re-read as the kubelet rotates it. */
  tokenPath: string;
  /** The token as read now. */
  token: string;
}

/** Where the in-cluster configuration is read from: the fixed paths and this process, by default. */
export interface InClusterSource {
  /** The service-account directory (default {@linkcode serviceAccountDir}). */
  dir?: string;
  /** Environment lookup (default this process's, asked without prompting). */
  env?: (name: string) => EnvLookup;
}

const inClusterWhat = "cannot load the in-cluster service account";

/**
 * Read the in-cluster configuration: the token and `ca.crt` of the
 * service-account directory, and the API server at
 * `https://KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT` (an IPv6 host in
 * brackets, as Go's `net.JoinHostPort` writes it).
 *
 * @throws {KubeConfigError} (one line) when a variable is unset, hidden or
 *   not usable, or the token or CA is missing, unreadable or empty.
 */
export function loadInClusterConfig(source: InClusterSource = {}): InClusterConfig {
  const dir = (source.dir ?? serviceAccountDir).replace(/\/+$/, "");
  const env = source.env ?? lookupEnv;
  const value = (name: string): string => {
    const found = env(name);
    if (found.hidden) {
      throw new KubeConfigError(
        `${inClusterWhat}: ${name} is not visible (needs --allow-env=${inClusterEnv.join(",")})`,
      );
    }
    const text = found.value?.trim() ?? "";
    if (text === "") throw new KubeConfigError(`${inClusterWhat}: ${name} is not set`);
    return text;
  };
  const host = value("KUBERNETES_SERVICE_HOST");
  const port = value("KUBERNETES_SERVICE_PORT");
  if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new KubeConfigError(
      `${inClusterWhat}: KUBERNETES_SERVICE_PORT ${JSON.stringify(port)} is not a port number`,
    );
  }
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  const server = `https://${bare.includes(":") ? `[${bare}]` : bare}:${port}`;
  try {
    new URL(server);
  } catch {
    throw new KubeConfigError(
      `${inClusterWhat}: KUBERNETES_SERVICE_HOST ${
        JSON.stringify(host)
      } is not a host name or address`,
    );
  }
  const tokenPath = `${dir}/token`;
  const token = readServiceAccountFile(tokenPath, "token");
  const caPath = `${dir}/ca.crt`;
  const caPem = readServiceAccountFile(caPath, "CA certificate");
  return { server, caPem, caPath, tokenPath, token };
}

/** A service-account file's content, trimmed; a clear one-line error when it cannot be had. */
function readServiceAccountFile(path: string, what: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new KubeConfigError(`${inClusterWhat}: no ${what} (${path} does not exist)`);
    }
    if (err instanceof Deno.errors.NotCapable) {
      throw new KubeConfigError(
        `${inClusterWhat}: its ${what} ${path} may not be read (needs --allow-read=${
          path.slice(0, path.lastIndexOf("/"))
        })`,
      );
    }
    throw new KubeConfigError(
      `${inClusterWhat}: cannot read its ${what} ${path}: ${readReason(err)}`,
    );
  }
  const trimmed = text.trim();
  if (trimmed === "") throw new KubeConfigError(`${inClusterWhat}: its ${what} ${path} is empty`);
  return trimmed;
}

function mergeKubeConfig(into: KubeConfig, later: KubeConfig): void {
  if (!into.currentContext) into.currentContext = later.currentContext;
  into.clusters = mergeNamed(into.clusters, later.clusters);
  into.users = mergeNamed(into.users, later.users);
  into.contexts = mergeNamed(into.contexts, later.contexts);
}

function mergeNamed<T extends { name: string }>(first: T[] | undefined, later: T[] | undefined) {
  const merged = [...(first ?? [])];
  for (const entry of later ?? []) {
    if (!merged.some((known) => known.name === entry.name)) merged.push(entry);
  }
  return merged;
}

/** The first line of an error's message: YAML errors append an excerpt of the file. */
function firstLine(err: unknown): string {
  return errorMessage(err).split("\n")[0].trim();
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
  /** The `--kubeconfig` path; empty: look the configuration up as {@link locateKubeConfig} does. */
  kubeconfig: string;
  /** Default timeout for non-watch requests in ms; 0 means none. */
  requestTimeoutMs: number;
  /** Called after every request. */
  observe?: RequestObserver;
  /**
   * Sends the HTTP requests (default the global `fetch`; the simulation
   * answers in process). Only the transport is replaced: URLs, headers,
   * timeouts and error handling stay this client's.
   */
  fetch?: typeof fetch;
  /** Request timeouts and the token re-read interval run on this clock (default the system's). */
  clock?: Clock;
  /**
   * Use the in-cluster configuration read from here instead of looking the
   * configuration up (tests point it at a temporary directory and their own
   * environment; production always looks up, and reads the fixed paths).
   */
  serviceAccount?: InClusterSource;
  /** Where a failed token re-read is logged (default the `kube` logger). */
  log?: Log;
}

/**
 * How often the auth headers are computed again: the service-account token
 * is re-read from disk (the kubelet rotates it; client-go re-reads it every
 * minute too), and a kubeconfig's auth is asked again (client-node caches an
 * exec plugin's credential until it expires).
 */
const authRefreshMs = 60_000;

/** Computes a request's auth headers again. */
type AuthRefresh = () => Promise<Record<string, string>>;

/** Everything a client needs of its configuration. */
interface Prepared {
  server: string;
  http: Deno.HttpClient | undefined;
  refresh: AuthRefresh;
  /** The headers as of now, when already known (the token just read). */
  headers?: Record<string, string>;
}

/**
 * A response body as text, decoded chunk by chunk as it arrives. Unlike
 * `Response.text()`, which gathers the whole body into one native buffer
 * (for a 500-object list page, hundreds of KiB that glibc's malloc then
 * keeps in its heap), only one chunk at a time is held outside the
 * JavaScript heap.
 */
async function readText(response: Response): Promise<string> {
  if (response.body === null) return "";
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of response.body) text += decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
}

/** A connection to one Kubernetes API server. */
export class KubeClient {
  /** Base URL, without a trailing slash. */
  readonly server: string;
  /** Where the configuration came from, e.g. `kubeconfig /root/.kube/config (~/.kube/config)`. */
  readonly source: string;
  readonly #refresh: AuthRefresh;
  readonly #http: Deno.HttpClient | undefined;
  readonly #requestTimeoutMs: number;
  readonly #observe: RequestObserver;
  readonly #fetch: typeof fetch;
  /** The clock of this client and of the caches and reads built on it. */
  readonly clock: Clock;
  #headers: Record<string, string> = {};
  #headersAt = -Infinity;
  #refreshing: Promise<Record<string, string>> | undefined;

  private constructor(prepared: Prepared, source: string, options: ClientOptions) {
    this.server = prepared.server;
    this.source = source;
    this.#refresh = prepared.refresh;
    this.#http = prepared.http;
    this.#requestTimeoutMs = options.requestTimeoutMs;
    this.#observe = options.observe ?? (() => {});
    this.#fetch = options.fetch ?? fetch;
    this.clock = options.clock ?? systemClock;
    if (prepared.headers !== undefined) {
      this.#headers = prepared.headers;
      this.#headersAt = this.clock.monotonic();
    }
  }

  /**
   * Find and load the configuration ({@link locateKubeConfig}), check that the
   * Deno permissions allow connecting to its server, and prepare TLS and
   * authentication.
   *
   * @throws {KubeConfigError} when no configuration is found or it cannot be
   *   used; the message is one line that says what to fix.
   */
  static async connect(options: ClientOptions): Promise<KubeClient> {
    const source: KubeConfigSource = options.serviceAccount !== undefined
      ? { kind: "in-cluster" }
      : locateKubeConfig(options.kubeconfig);
    const what = describeKubeConfigSource(source);
    const prepared = source.kind === "in-cluster"
      ? prepareInCluster(
        loadInClusterConfig(options.serviceAccount),
        options.log ?? logger("kube"),
      )
      : await prepareKubeConfig(await loadKubeConfig(source), what);
    const client = new KubeClient(prepared, what, options);
    if (prepared.headers === undefined) {
      try {
        await client.#authHeaders();
      } catch (err) {
        client.close();
        // A token file the kubeconfig names, an exec plugin that fails.
        throw new KubeConfigError(`cannot use ${what}: ${firstLine(err)}${localHint(err)}`);
      }
    }
    return client;
  }

  /** Release the HTTP client. */
  close(): void {
    this.#http?.close();
  }

  #authHeaders(): Promise<Record<string, string>> | Record<string, string> {
    if (this.clock.monotonic() - this.#headersAt < authRefreshMs) return this.#headers;
    // One refresh for all the requests that find the headers due.
    this.#refreshing ??= this.#refresh().then((headers) => {
      this.#headers = headers;
      this.#headersAt = this.clock.monotonic();
      return headers;
    }).finally(() => this.#refreshing = undefined);
    return this.#refreshing;
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
      const text = await readText(response.body);
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
      ? this.clock.setTimeout(() => {
        timedOut = true;
        controller.abort(new Error("timeout"));
      }, timeoutMs)
      : undefined;
    const done = () => {
      this.clock.clearTimeout(timer);
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
      response = await this.#fetch(this.url(path, options.query), {
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

/** The hint for a file a kubeconfig names that the permissions hide. */
function localHint(err: unknown): string {
  return err instanceof Deno.errors.NotCapable ? `; ${localTaskHint}` : "";
}

/**
 * The in-cluster client: the CA for TLS, the token as a bearer token, and a
 * refresh that re-reads the token file and keeps the previous token when
 * that fails (the kubelet writes the new file before the old token expires).
 */
function prepareInCluster(config: InClusterConfig, log: Log): Prepared {
  const what = describeKubeConfigSource({ kind: "in-cluster" });
  checkNetPermission(new URL(config.server), `add --allow-net=`, what);
  let http: Deno.HttpClient;
  try {
    // Deno takes a CA without a certificate block silently and then fails every request.
    if (!/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(config.caPem)) {
      throw new Error("no PEM certificate in it");
    }
    http = Deno.createHttpClient({ caCerts: [config.caPem] });
  } catch (err) {
    throw new KubeConfigError(
      `cannot use ${what}: its CA certificate ${config.caPath} is not usable: ${firstLine(err)}`,
    );
  }
  let token = config.token;
  const bearer = () => ({ Authorization: `Bearer ${token}` });
  return {
    server: config.server,
    http,
    headers: bearer(),
    refresh: async () => {
      try {
        const text = (await Deno.readTextFile(config.tokenPath)).trim();
        if (text === "") throw new Error("the file is empty");
        if (text !== token) log.debug("service-account token re-read: a new token");
        token = text;
      } catch (err) {
        log.warn(
          `cannot re-read the service-account token ${config.tokenPath}, ` +
            `keeping the previous one: ${readReason(err)}`,
        );
      }
      return bearer();
    },
  };
}

/** A kubeconfig's client: client-node computes the TLS material and the auth headers. */
async function prepareKubeConfig(kc: KubeConfig, what: string): Promise<Prepared> {
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new KubeConfigError(`${what} has no current context with a cluster server address`);
  }
  const server = cluster.server.replace(/\/+$/, "");
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KubeConfigError(`${what} has an invalid server address "${cluster.server}"`);
  }
  checkNetPermission(url, `${localTaskHint}, or add --allow-net=`, what);
  if (url.protocol === "https:" && cluster.skipTLSVerify) {
    throw new KubeConfigError(
      `${what} sets insecure-skip-tls-verify, which is not supported for https servers: ` +
        "give the cluster CA instead",
    );
  }
  let http: Deno.HttpClient | undefined;
  try {
    const tls: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(tls);
    if (url.protocol === "https:") {
      const caCerts = tls.ca ? [pem(tls.ca)] : undefined;
      const cert = tls.cert ? pem(tls.cert) : undefined;
      const key = tls.key ? pem(tls.key) : undefined;
      http = cert && key
        ? Deno.createHttpClient({ caCerts, cert, key })
        : Deno.createHttpClient({ caCerts });
    }
  } catch (err) {
    // A CA or client certificate file the kubeconfig names, an exec plugin
    // that fails, a certificate Deno cannot use.
    throw new KubeConfigError(`cannot use ${what}: ${firstLine(err)}${localHint(err)}`);
  }
  return {
    server,
    http,
    refresh: async () => {
      const opts: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(opts.headers ?? {})) {
        if (typeof v === "string" || typeof v === "number") headers[k] = String(v);
      }
      if (opts.auth) headers.Authorization = `Basic ${btoa(opts.auth)}`;
      return headers;
    },
  };
}

/**
 * Asked before the first request: a denied fetch would only surface as
 * "fetch failed" on every retry (and may prompt on a terminal).
 */
function checkNetPermission(url: URL, fix: string, what: string): void {
  const hostPort = `${url.hostname}:${url.port || (url.protocol === "http:" ? "80" : "443")}`;
  if (Deno.permissions.querySync({ name: "net", host: hostPort }).state !== "granted") {
    throw new KubeConfigError(
      `the Deno permissions do not allow connecting to the API server ${hostPort} of ${what}; ` +
        `${fix}${hostPort}`,
    );
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
