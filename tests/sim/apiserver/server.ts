/**
 * The simulated Kubernetes API server: one `Deno.serve` listener on
 * 127.0.0.1 (HTTP or HTTPS with a throw-away CA), bearer-token auth, the
 * discovery documents, every REST verb of the served kinds, watches, and the
 * hooks tests use to seed state, inject faults and break watches.
 *
 * ```ts
 * const server = await ApiServer.start({ tls: true });
 * // KUBECONFIG=server.kubeconfigPath kubectl get pods
 * await server.close();
 * ```
 *
 * @module
 */

import type { UserInfo } from "./auth.ts";
import {
  adminUser,
  anonymousUser,
  authenticatedGroup,
  serviceAccountOf,
  serviceAccountUser,
  TokenBook,
} from "./auth.ts";
import type { Json } from "./patch.ts";
import type { KubeObject } from "./objects.ts";
import { isRecord } from "./objects.ts";
import type { DeleteOptions, DeleteResult, ListPageOptions } from "./registry.ts";
import { Registry } from "./registry.ts";
import type { ResourceDef } from "./resources.ts";
import { groupVersion, storageOf } from "./resources.ts";
import type { Status } from "./status.ts";
import {
  ApiError,
  badRequest,
  forCode,
  internalError,
  methodNotAllowed,
  pathNotFound,
  unauthorized,
} from "./status.ts";
import { decodeProtobufBody, isProtobuf } from "./protobuf.ts";
import { Authorizer, forbiddenError, requestAttributes } from "./rbac.ts";
import { answerReview, isReviewKind } from "./reviews.ts";
import { Store } from "./store.ts";
import type { IncludeObject } from "./tables.ts";
import { tableVersionAccepted, toTable } from "./tables.ts";
import {
  aggregatedContentType,
  aggregatedDiscovery,
  apiGroupDocument,
  apiGroupList,
  apiResourceList,
  apiVersions,
  wantsAggregated,
} from "./discovery.ts";
import type { FaultEffect, FaultTarget } from "./faults.ts";
import { Faults } from "./faults.ts";
import { kubeconfigYaml, makeCertificates } from "./tls.ts";
import { realTimers, WatchHub, type WatchTimers } from "./watch.ts";

/** Options of {@link ApiServer.start}. */
export interface ApiServerOptions {
  /** Serve HTTPS with a generated CA (default false: plain HTTP). */
  tls?: boolean;
  /** Port on 127.0.0.1 (default 0: a free one). */
  port?: number;
  /** Bearer token (default: random). */
  token?: string;
  /** Require the bearer token (default: true with TLS, false without). */
  auth?: boolean;
  /** Serve `pods/eviction` (default true); false answers 404 like a server without it. */
  eviction?: boolean;
  /** Answer aggregated discovery when asked (default true); false serves legacy documents only. */
  aggregatedDiscovery?: boolean;
  /** BOOKMARK interval of watches that allow them (default 60 000 ms). */
  bookmarkIntervalMs?: number;
  /** Server-side timeout of watches without `timeoutSeconds` (default 30–60 min). */
  watchTimeoutMs?: number;
  /** Changes retained for watches (default 10 000). */
  historyLimit?: number;
  /** Seed of the fault `rate` draws (default 1). */
  faultSeed?: number;
  /** Clock of the simulated cluster (default: real time). */
  now?: () => Date;
  /** Namespaces made at start (default: default, kube-system, kube-public, kube-node-lease). */
  namespaces?: string[];
  /** Directory for the kubeconfig and certificates (default: a new temp dir, removed on close). */
  dir?: string;
  /**
   * Enforce RBAC from the start (default false); `setRbac` switches it later.
   * The admin token is never restricted; ServiceAccount tokens are.
   */
  rbac?: boolean;
  /**
   * Timers of watches and injected latencies (default real ones). The
   * deterministic simulation passes its virtual SimClock.
   */
  timers?: WatchTimers;
  /**
   * Random numbers in [0, 1) for UIDs, generated names, the default token and
   * watch timeouts (default `crypto` and `Math.random`): a seeded source makes
   * a run reproducible.
   */
  random?: () => number;
}

/** Options of {@linkcode ApiServer.inProcess}: no listener, no TLS. */
export type InProcessOptions = Omit<ApiServerOptions, "tls" | "port">;

/** The address in-process servers use; it is never looked up or connected to. */
export const inProcessUrl = "http://apiserver.sim:6443";

/** What an in-process request's handler is told about its connection. */
const inProcessInfo = {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 0 },
  completed: Promise.resolve(),
} as unknown as Deno.ServeHandlerInfo<Deno.NetAddr>;

/** One logged HTTP request. */
export interface RequestRecord {
  /** HTTP method. */
  method: string;
  /** URL path. */
  path: string;
  /** Query parameters. */
  query: Record<string, string>;
  /** `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, `evict`, `discovery`. */
  verb: string;
  /** Resource plural, for resource paths. */
  resource?: string;
  /** Subresource such as `status` or `eviction`. */
  subresource?: string;
  /** API group of the resource. */
  group?: string;
  /** Namespace in the path. */
  namespace?: string;
  /** Name in the path. */
  name?: string;
  /** HTTP status answered (0 while still pending). */
  status: number;
  /** Parsed JSON request body, if any. */
  body?: unknown;
  /** Request Content-Type. */
  contentType?: string;
  /** Request Accept header. */
  accept?: string;
  /** Whether an injected fault decided the answer. */
  faulted?: boolean;
  /** User name the request authenticated as (absent when it did not authenticate). */
  user?: string;
  /** The Forbidden message when RBAC denied the request. */
  denied?: string;
  /** When the request arrived. */
  time: Date;
  /** Request User-Agent header. */
  userAgent?: string;
  /**
   * Response body bytes sent: the whole body of a plain answer; for a watch
   * the events written to the stream so far (growing while it is open).
   */
  bytes: number;
  /** Watch events written to this watch's stream so far (watches only; bookmarks and errors count). */
  watchEvents?: number;
  /** The same by event type (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`). */
  watchEventTypes?: Record<string, number>;
}

/** What {@linkcode ApiServer.traffic} sums up. */
export interface Traffic {
  /** Requests counted. */
  requests: number;
  /** Response body bytes sent (see {@linkcode RequestRecord.bytes}). */
  bytes: number;
  /** Watch events sent, bookmarks included. */
  watchEvents: number;
  /** Watch events sent, by type. */
  watchEventTypes: Record<string, number>;
  /** Requests by verb. */
  verbs: Record<string, number>;
}

/** A parsed request path. */
interface Route {
  kind: "resource" | "nonresource";
  group: string;
  version: string;
  def?: ResourceDef;
  resource?: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  watchPrefix: boolean;
}

const jsonHeaders = { "content-type": "application/json" };
const defaultNamespaces = ["default", "kube-system", "kube-public", "kube-node-lease"];

const encoder = new TextEncoder();

/** Body sizes of the answers made here, for the request log's accounting. */
const bodySizes = new WeakMap<Response, number>();

/** A response with a text body whose size the request log records. */
function sized(text: string, init: ResponseInit): Response {
  const bytes = encoder.encode(text);
  const response = new Response(bytes, init);
  bodySizes.set(response, bytes.byteLength);
  return response;
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return sized(JSON.stringify(body), { status, headers: { ...jsonHeaders, ...headers } });
}

function errorResponse(err: ApiError): Response {
  const headers: Record<string, string> = {};
  const retry = err.status.details?.retryAfterSeconds;
  if (retry !== undefined && retry > 0) headers["retry-after"] = String(retry);
  return json(err.status, err.code, headers);
}

/** `limit`, `continue` and `resourceVersion` of a list request; 400 for a bad limit. */
function listPaging(params: URLSearchParams): ListPageOptions {
  const options: ListPageOptions = {};
  const limit = params.get("limit");
  if (limit !== null && limit !== "") {
    if (!/^-?\d+$/.test(limit)) {
      throw badRequest(`invalid limit: strconv.ParseInt: parsing "${limit}": invalid syntax`);
    }
    options.limit = Math.max(0, Number(limit));
  }
  const token = params.get("continue");
  if (token !== null && token !== "") options.continue = token;
  const rv = params.get("resourceVersion");
  if (rv !== null) options.resourceVersion = rv;
  return options;
}

/** The simulated API server. */
export class ApiServer {
  /** Base URL, e.g. `https://127.0.0.1:40123`. */
  readonly url: string;
  /** Path of a kubeconfig for kubectl and client-node. */
  readonly kubeconfigPath: string;
  /** Bearer token the kubeconfig carries. */
  readonly token: string;
  /** CA certificate (PEM) with TLS, else undefined. */
  readonly caPem: string | undefined;
  /** The object store. */
  readonly store: Store;
  /** The REST semantics of every kind; in-process actors call it directly. */
  readonly api: Registry;
  /** Injected faults. */
  readonly faults: Faults;
  /** Every HTTP request, oldest first. */
  readonly requests: RequestRecord[] = [];
  /** Whether `pods/eviction` is served; may be switched at any time. */
  evictionSupported: boolean;

  #http: Deno.HttpServer<Deno.NetAddr> | undefined;
  #timers: WatchTimers;
  #hub: WatchHub;
  #tokens: TokenBook;
  #authorizer: Authorizer;
  #auth: boolean;
  #aggregated: boolean;
  #dir: string;
  #ownDir: boolean;
  #closing = new AbortController();
  #closed = false;

  private constructor(parts: {
    url: string;
    kubeconfigPath: string;
    token: string;
    caPem?: string;
    store: Store;
    api: Registry;
    faults: Faults;
    hub: WatchHub;
    http: Deno.HttpServer<Deno.NetAddr> | undefined;
    timers: WatchTimers;
    auth: boolean;
    aggregated: boolean;
    eviction: boolean;
    dir: string;
    ownDir: boolean;
    rbac: boolean;
  }) {
    this.url = parts.url;
    this.kubeconfigPath = parts.kubeconfigPath;
    this.token = parts.token;
    this.caPem = parts.caPem;
    this.store = parts.store;
    this.api = parts.api;
    this.faults = parts.faults;
    this.#hub = parts.hub;
    this.#http = parts.http;
    this.#timers = parts.timers;
    this.#auth = parts.auth;
    this.#aggregated = parts.aggregated;
    this.evictionSupported = parts.eviction;
    this.#dir = parts.dir;
    this.#ownDir = parts.ownDir;
    this.#tokens = new TokenBook(parts.token);
    this.#authorizer = new Authorizer(parts.store, { enabled: parts.rbac });
  }

  /** Starts a server on 127.0.0.1 and writes its kubeconfig. */
  static async start(options: ApiServerOptions = {}): Promise<ApiServer> {
    const tls = options.tls ?? false;
    const ownDir = options.dir === undefined;
    const dir = options.dir ?? await Deno.makeTempDir({ prefix: "apiserver-sim-" });
    const certs = tls ? await makeCertificates(dir) : undefined;
    const parts = ApiServer.#parts(options);
    // the handler exists before the server object it forwards to
    const ready: { server?: ApiServer } = {};
    const handler = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
      if (ready.server === undefined) {
        return json(internalError("server is starting").status, 500);
      }
      return ready.server.#handle(req, info);
    };
    const listen = { hostname: "127.0.0.1", port: options.port ?? 0, onListen: () => {} };
    const http = certs !== undefined
      ? Deno.serve({ ...listen, cert: certs.certPem, key: certs.keyPem }, handler)
      : Deno.serve(listen, handler);
    const url = `${tls ? "https" : "http"}://127.0.0.1:${http.addr.port}`;
    const kubeconfigPath = `${dir}/kubeconfig`;
    await Deno.writeTextFile(
      kubeconfigPath,
      kubeconfigYaml({ server: url, caPem: certs?.caPem, token: parts.token }),
    );
    const server = new ApiServer({
      ...parts,
      url,
      kubeconfigPath,
      caPem: certs?.caPem,
      http,
      auth: options.auth ?? tls,
      dir,
      ownDir,
    });
    ready.server = server;
    return server;
  }

  /**
   * A server without a listener, answered through {@linkcode ApiServer.fetch}
   * (the deterministic simulation). Its kubeconfig names
   * {@linkcode inProcessUrl}; `dir` (default a new temp dir) holds it.
   */
  static async inProcess(options: InProcessOptions = {}): Promise<ApiServer> {
    const ownDir = options.dir === undefined;
    const dir = options.dir ?? await Deno.makeTempDir({ prefix: "apiserver-sim-" });
    const parts = ApiServer.#parts(options);
    const kubeconfigPath = `${dir}/kubeconfig`;
    await Deno.writeTextFile(
      kubeconfigPath,
      kubeconfigYaml({ server: inProcessUrl, token: parts.token }),
    );
    return new ApiServer({
      ...parts,
      url: inProcessUrl,
      kubeconfigPath,
      http: undefined,
      auth: options.auth ?? false,
      dir,
      ownDir,
    });
  }

  static #parts(options: ApiServerOptions) {
    const store = new Store({ historyLimit: options.historyLimit });
    const api = new Registry(store, { now: options.now, random: options.random });
    for (const ns of options.namespaces ?? defaultNamespaces) {
      api.create({ def: api.resolve("namespaces") }, { metadata: { name: ns } }, {
        privileged: true,
      });
    }
    const hub = new WatchHub({
      bookmarkIntervalMs: options.bookmarkIntervalMs,
      defaultTimeoutMs: options.watchTimeoutMs !== undefined
        ? () => options.watchTimeoutMs!
        : undefined,
      timers: options.timers,
      random: options.random,
    });
    const token = options.token ??
      (options.random === undefined
        ? crypto.randomUUID().replaceAll("-", "")
        : Array.from({ length: 32 }, () => Math.floor(options.random!() * 16).toString(16))
          .join(""));
    return {
      store,
      api,
      hub,
      token,
      faults: new Faults(options.faultSeed ?? 1),
      timers: options.timers ?? realTimers,
      aggregated: options.aggregatedDiscovery ?? true,
      eviction: options.eviction ?? true,
      rbac: options.rbac ?? false,
    };
  }

  /**
   * Answers a request as the listener would, in process: what a client's
   * `fetch` does, including a response body that ends with an error when
   * the request's signal aborts (and tells the server the client left).
   */
  readonly fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const signal = request.signal;
    if (signal.aborted) throw signal.reason;
    // A client that gives up does not wait for the handler (a hung request).
    let onAbortWhileWaiting = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbortWhileWaiting = () => reject(signal.reason);
      signal.addEventListener("abort", onAbortWhileWaiting, { once: true });
    });
    const handled = this.#handle(request, inProcessInfo);
    let response: Response;
    try {
      response = await Promise.race([handled, aborted]);
    } catch (err) {
      handled.then((late) => late.body?.cancel().catch(() => {}), () => {});
      throw err;
    } finally {
      signal.removeEventListener("abort", onAbortWhileWaiting);
    }
    if (response.body === null) return response;
    const source = response.body.getReader();
    let onAbort = () => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        onAbort = () => {
          source.cancel(signal.reason).catch(() => {});
          try {
            controller.error(signal.reason);
          } catch {
            // Already closed.
          }
        };
        signal.addEventListener("abort", onAbort, { once: true });
      },
      async pull(controller) {
        try {
          const { value, done } = await source.read();
          if (done) {
            signal.removeEventListener("abort", onAbort);
            controller.close();
          } else controller.enqueue(value);
        } catch (err) {
          signal.removeEventListener("abort", onAbort);
          controller.error(err);
        }
      },
      cancel(reason) {
        signal.removeEventListener("abort", onAbort);
        return source.cancel(reason);
      },
    });
    const headers = new Headers(response.headers);
    // What Deno.serve adds to every answer: the server's (simulated) time.
    if (!headers.has("date")) headers.set("date", this.api.now().toUTCString());
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers,
    });
  };

  // ------------------------------------------------------------- test hooks

  #defOf(obj: KubeObject): ResourceDef {
    const apiVersion = typeof obj.apiVersion === "string" ? obj.apiVersion : "";
    const kind = typeof obj.kind === "string" ? obj.kind : "";
    const def = this.api.definitions.find((d) =>
      d.kind === kind && (apiVersion === "" || groupVersion(d) === apiVersion)
    );
    if (def === undefined) {
      throw new Error(
        `Expected an object of a served kind, got kind "${kind}" apiVersion "${apiVersion}"`,
      );
    }
    return def;
  }

  /** Stores a new object directly (no HTTP, no validation; status kept; namespace made if missing). */
  create(obj: KubeObject): KubeObject {
    const def = this.#defOf(obj);
    return this.api.create({ def, namespace: obj.metadata?.namespace }, obj, { privileged: true });
  }

  /**
   * Stores many objects at once, for seeding large clusters (benchmarks):
   * like {@linkcode create} but without admission, defaults or validation
   * (pass complete objects; status is kept), and fast (no copies: the
   * objects are handed over and must not be used afterwards). Namespaces
   * are made if missing. Each object still gets its own resourceVersion and
   * watch event. Returns the last resourceVersion.
   */
  createMany(objects: KubeObject[]): number {
    const groups = new Map<ResourceDef, KubeObject[]>();
    for (const obj of objects) {
      const def = this.#defOf(obj);
      let group = groups.get(def);
      if (group === undefined) groups.set(def, group = []);
      group.push(obj);
      const ns = obj.metadata?.namespace;
      if (
        def.namespaced && ns !== undefined &&
        this.store.peek("namespaces", { name: ns }) === undefined
      ) {
        this.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
      }
    }
    let rv = this.store.resourceVersion;
    for (const [def, group] of groups) rv = this.api.createMany(def, group);
    return rv;
  }

  /** One object as served, or undefined. `resource` is a plural such as `pods`. */
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const def = this.api.resolve(resource);
    const ns = def.namespaced ? namespace : undefined;
    const stored = this.store.get(storageOf(def), { namespace: ns, name });
    return stored === undefined ? undefined : this.api.present(def, stored, { owned: true });
  }

  /**
   * The stored object itself (see `Store.peek`): no copy, no served view;
   * for read-only checks on every simulated step. Do not change it.
   */
  peek(
    resource: string,
    namespace: string | undefined,
    name: string,
  ): Readonly<KubeObject> | undefined {
    const def = this.api.resolve(resource);
    return this.store.peek(storageOf(def), {
      namespace: def.namespaced ? namespace : undefined,
      name,
    });
  }

  /** The stored objects of a resource (see {@linkcode peek}), sorted as {@linkcode list}. */
  peekAll(resource: string, namespace?: string): Readonly<KubeObject>[] {
    const def = this.api.resolve(resource);
    return this.store.peekAll(storageOf(def), def.namespaced ? namespace : undefined);
  }

  /** All objects of a resource as served (in one namespace when given). */
  list(resource: string, namespace?: string): KubeObject[] {
    const def = this.api.resolve(resource);
    return this.store.list(storageOf(def), def.namespaced ? namespace : undefined)
      .map((o) => this.api.present(def, o, { owned: true }));
  }

  /** Replaces an object directly: spec, status and metadata as given; no resourceVersion check. */
  update(obj: KubeObject): KubeObject {
    const def = this.#defOf(obj);
    const { resourceVersion: _rv, ...metadata } = obj.metadata;
    const target = { def, namespace: metadata.namespace, name: metadata.name ?? "" };
    return this.api.update(target, { ...obj, metadata }, { privileged: true });
  }

  /** Removes an object at once (DELETED event); returns its last state, or undefined. */
  remove(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const def = this.api.resolve(resource);
    const ns = def.namespaced ? namespace : undefined;
    const last = this.store.remove(storageOf(def), { namespace: ns, name });
    return last === undefined ? undefined : this.api.present(def, last);
  }

  /**
   * Deletes with the API's rules (grace periods, finalizers, preconditions),
   * as a client would, but without HTTP; `remove` deletes unconditionally.
   */
  delete(
    resource: string,
    namespace: string | undefined,
    name: string,
    options: DeleteOptions = {},
  ): DeleteResult {
    return this.api.delete({ def: this.api.resolve(resource), namespace, name }, options);
  }

  // ------------------------------------------------------------- identities and RBAC

  /** Whether RBAC is enforced for requests of users outside `system:masters`. */
  get rbacEnabled(): boolean {
    return this.#authorizer.enabled;
  }

  /** Switches RBAC enforcement on or off; it applies to the next request (open watches stay). */
  setRbac(on: boolean): void {
    this.#authorizer.enabled = on;
  }

  /**
   * Issues a bearer token of the ServiceAccount `namespace/name`, creating the
   * ServiceAccount if it does not exist. The token authenticates as
   * `system:serviceaccount:<namespace>:<name>` (groups `system:serviceaccounts`,
   * `system:serviceaccounts:<namespace>`, `system:authenticated`) for as long as
   * a ServiceAccount of that name exists.
   */
  serviceAccountToken(namespace: string, name: string): string {
    if (this.store.get("serviceaccounts", { namespace, name }) === undefined) {
      this.create({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace } });
    }
    return this.#tokens.issue(serviceAccountUser({ namespace, name }));
  }

  /**
   * Issues a bearer token for any user name and groups (for User and Group
   * subjects); `system:authenticated` is added as every authenticator does.
   */
  userToken(user: UserInfo): string {
    const groups = user.groups.includes(authenticatedGroup)
      ? user.groups
      : [...user.groups, authenticatedGroup];
    return this.#tokens.issue({ username: user.username, groups });
  }

  /**
   * Writes a kubeconfig (same server and CA as `kubeconfigPath`) whose user is a
   * fresh token of the ServiceAccount `namespace/name`, with `namespace` as the
   * context's namespace; returns its path.
   */
  async kubeconfigFor(namespace: string, name: string): Promise<string> {
    const token = this.serviceAccountToken(namespace, name);
    const path = `${this.#dir}/kubeconfig-${namespace}-${name}`;
    await Deno.writeTextFile(
      path,
      kubeconfigYaml({ server: this.url, caPem: this.caPem, token, namespace }),
    );
    return path;
  }

  /** The requests RBAC denied (403 Forbidden), oldest first. */
  forbidden(): RequestRecord[] {
    return this.requests.filter((r) => r.denied !== undefined);
  }

  /** The non-GET requests (writes), oldest first. */
  writes(): RequestRecord[] {
    return this.requests.filter((r) => r.method !== "GET");
  }

  /**
   * Sums the request log (the requests `filter` selects, default all): how
   * many requests, response bytes and watch events went out. For "what did
   * the agent get", filter by {@linkcode RequestRecord.user} (give the agent a
   * kubeconfig of its own, `kubeconfigFor`) or `userAgent`. Open watches
   * count what they sent so far.
   */
  traffic(filter: (r: RequestRecord) => boolean = () => true): Traffic {
    const out: Traffic = { requests: 0, bytes: 0, watchEvents: 0, watchEventTypes: {}, verbs: {} };
    for (const r of this.requests) {
      if (!filter(r)) continue;
      out.requests++;
      out.bytes += r.bytes;
      out.watchEvents += r.watchEvents ?? 0;
      for (const [t, n] of Object.entries(r.watchEventTypes ?? {})) {
        out.watchEventTypes[t] = (out.watchEventTypes[t] ?? 0) + n;
      }
      out.verbs[r.verb] = (out.verbs[r.verb] ?? 0) + 1;
    }
    return out;
  }

  /** Empties the request log. */
  clearRequests(): void {
    this.requests.length = 0;
  }

  /** Ends every open watch abruptly (the client sees a broken stream). */
  dropWatches(): void {
    this.#hub.dropAll();
  }

  /** Ends every open watch normally, like a server-side watch timeout. */
  endWatches(): void {
    this.#hub.closeAll();
  }

  /** While true, open and new watches send nothing (events queue up until false). */
  stallWatches(on: boolean): void {
    this.#hub.stall(on);
  }

  /** Sends a BOOKMARK now on every watch that allows them. */
  sendBookmarks(): void {
    this.#hub.bookmarkAll(this.store.resourceVersion);
  }

  /** Forgets the watch history: a watch from an older resourceVersion gets 410 Expired. */
  compact(): void {
    this.store.compact();
  }

  /** Number of open watch streams. */
  openWatchCount(): number {
    return this.#hub.openCount;
  }

  /** Closes watches, pending requests and the listener; removes the temp dir. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
    this.#hub.closeAll();
    await this.#http?.shutdown();
    this.#hub.closeAll();
    if (this.#ownDir) await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  // ------------------------------------------------------------- HTTP

  async #handle(req: Request, _info: Deno.ServeHandlerInfo<Deno.NetAddr>): Promise<Response> {
    const url = new URL(req.url);
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = v;
    const record: RequestRecord = {
      method: req.method,
      path: url.pathname,
      query,
      verb: "discovery",
      status: 0,
      bytes: 0,
      time: this.api.now(),
    };
    const userAgent = req.headers.get("user-agent");
    if (userAgent !== null) record.userAgent = userAgent;
    const contentType = req.headers.get("content-type");
    if (contentType !== null) record.contentType = contentType;
    const accept = req.headers.get("accept");
    if (accept !== null) record.accept = accept;
    this.requests.push(record);
    if (this.#closed) {
      // a client reconnecting during close() must not open a new watch
      const refused = errorResponse(forCode(503, { message: "the simulator is shutting down" }));
      record.status = refused.status;
      return refused;
    }
    let response: Response;
    try {
      const protobuf = isProtobuf(contentType) && req.method !== "GET" && req.method !== "HEAD";
      const text = req.method === "GET" || req.method === "HEAD" || protobuf
        ? ""
        : await req.text();
      const protobufBytes = protobuf ? new Uint8Array(await req.arrayBuffer()) : undefined;
      let body: unknown = undefined;
      if (text.trim() !== "") {
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
        record.body = body;
      }
      let route: Route | undefined;
      let routeError: unknown;
      try {
        route = this.#route(url.pathname);
      } catch (e) {
        routeError = e;
      }
      const verb = route === undefined ? "" : this.#verb(req.method, route, url.searchParams);
      if (route !== undefined) record.verb = verb;
      if (route?.kind === "resource") {
        record.resource = route.resource;
        record.group = route.group;
        if (route.subresource !== undefined) record.subresource = route.subresource;
        if (route.namespace !== undefined) record.namespace = route.namespace;
        if (route.name !== undefined) record.name = route.name;
      }
      // authentication and authorization come before routing errors, as in kube-apiserver
      const user = this.#authenticate(req, url.pathname);
      record.user = user.username;
      const attributes = requestAttributes(user, { method: req.method, url });
      const decision = this.#authorizer.authorize(attributes);
      if (!decision.allowed) {
        const denial = forbiddenError(attributes, decision.reason);
        record.denied = denial.message;
        throw denial;
      }
      if (route === undefined) throw routeError;
      if (protobufBytes !== undefined) {
        body = decodeProtobufBody(protobufBytes);
        record.body = body;
      }
      const fault = this.faults.take(
        {
          verb,
          resource: route.resource,
          subresource: route.subresource,
          namespace: route.namespace,
          name: route.name,
        } satisfies FaultTarget,
      );
      if (fault !== undefined) {
        const answer = await this.#applyFault(fault);
        if (answer !== undefined) {
          record.faulted = true;
          record.status = answer.status;
          record.bytes += bodySizes.get(answer) ?? 0;
          return answer;
        }
      }
      response = this.#dispatch(req, { url, route, verb, body, user, record });
    } catch (e) {
      response = this.#errorToResponse(e);
    }
    record.status = response.status;
    record.bytes += bodySizes.get(response) ?? 0;
    return response;
  }

  #errorToResponse(e: unknown): Response {
    if (e instanceof ApiError) return errorResponse(e);
    const message = e instanceof Error ? e.message : String(e);
    return errorResponse(internalError(message));
  }

  /**
   * Waits out latency, holds and hangs. A hold ends when its promises
   * settle or the server closes; a hang only when the server closes:
   * Deno's `request.signal` also fires on normal completion, so a client that
   * gives up is not noticed and its handler waits for close().
   */
  async #applyFault(fault: FaultEffect): Promise<Response | undefined> {
    const closing = this.#closing.signal;
    const wait = (ms: number | undefined) =>
      new Promise<void>((resolve) => {
        let cancel: (() => void) | undefined;
        const done = () => {
          cancel?.();
          closing.removeEventListener("abort", done);
          resolve();
        };
        if (closing.aborted) return resolve();
        closing.addEventListener("abort", done, { once: true });
        if (ms !== undefined) cancel = this.#timers.after(ms, done);
      });
    if (fault.latencyMs > 0) await wait(fault.latencyMs);
    if (fault.until.length > 0) {
      await Promise.race([Promise.allSettled(fault.until), wait(undefined)]);
    }
    if (fault.hang) {
      await wait(undefined);
      return errorResponse(forCode(503, { message: "the simulator is shutting down" }));
    }
    if (closing.aborted) {
      return errorResponse(forCode(503, { message: "the simulator is shutting down" }));
    }
    if (fault.status !== undefined) {
      return errorResponse(forCode(fault.status, {
        message: fault.message,
        retryAfterSeconds: fault.retryAfterSeconds ?? (fault.status === 429 ? 1 : undefined),
      }));
    }
    return undefined;
  }

  /**
   * Who the request is: the admin, an issued token's user (a ServiceAccount
   * only while it exists), anonymous on the public paths, or 401. Without
   * required auth, requests with no or an unknown token act as the admin.
   */
  #authenticate(req: Request, path: string): UserInfo {
    const header = req.headers.get("authorization") ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const user = m === null ? undefined : this.#tokens.lookup(m[1]);
    if (user !== undefined) {
      const account = serviceAccountOf(user.username);
      const gone = account !== undefined &&
        this.store.get("serviceaccounts", account) === undefined;
      if (gone) throw unauthorized();
      return user;
    }
    if (!this.#auth) return adminUser;
    if (this.#public(path)) return anonymousUser;
    throw unauthorized();
  }

  #public(path: string): boolean {
    return path === "/version" || path === "/healthz" || path === "/livez" || path === "/readyz";
  }

  #route(path: string): Route {
    const segs = path.split("/").filter((s) => s !== "");
    const nonResource: Route = { kind: "nonresource", group: "", version: "", watchPrefix: false };
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === "api" && segs.length >= 2) {
      group = "";
      version = segs[1];
      rest = segs.slice(2);
    } else if (segs[0] === "apis" && segs.length >= 3) {
      group = segs[1];
      version = segs[2];
      rest = segs.slice(3);
    } else {
      return nonResource;
    }
    if (rest.length === 0) return { ...nonResource, group, version };
    let watchPrefix = false;
    if (rest[0] === "watch") {
      watchPrefix = true;
      rest = rest.slice(1);
    }
    const route: Route = { kind: "resource", group, version, watchPrefix };
    if (rest[0] === "namespaces" && rest.length >= 3) {
      const def = this.api.lookup(group, version, rest[2]);
      if (def !== undefined && def.namespaced) {
        return {
          ...route,
          def,
          resource: rest[2],
          namespace: rest[1],
          name: rest[3],
          subresource: rest[4],
        };
      }
    }
    const def = this.api.lookup(group, version, rest[0]);
    if (rest.length > 3) throw pathNotFound();
    return { ...route, def, resource: rest[0], name: rest[1], subresource: rest[2] };
  }

  #verb(method: string, route: Route, params: URLSearchParams): string {
    if (route.kind !== "resource") return "discovery";
    const watch = route.watchPrefix || params.get("watch") === "true" ||
      params.get("watch") === "1";
    switch (method) {
      case "GET":
        if (watch) return "watch";
        return route.name === undefined ? "list" : "get";
      case "POST":
        return route.subresource === "eviction" ? "evict" : "create";
      case "PUT":
        return "update";
      case "PATCH":
        return "patch";
      case "DELETE":
        return route.name === undefined ? "deletecollection" : "delete";
      default:
        return method.toLowerCase();
    }
  }

  #dispatch(
    req: Request,
    request: {
      url: URL;
      route: Route;
      verb: string;
      body: unknown;
      user: UserInfo;
      record: RequestRecord;
    },
  ): Response {
    const { url, route, verb, body, user, record } = request;
    if (route.kind === "nonresource") return this.#discovery(req, url, route);
    const def = route.def;
    if (def === undefined) throw pathNotFound();
    if (route.namespace === undefined && def.namespaced && route.name !== undefined) {
      throw pathNotFound();
    }
    const sub = route.subresource;
    if (sub !== undefined) {
      const known = (def.subresources ?? []).some((s) => s.name === sub);
      if (!known || (sub === "eviction" && !this.evictionSupported)) throw pathNotFound();
      if (sub === "eviction" && verb !== "evict") throw methodNotAllowed(def, verb);
      if (sub !== "status" && sub !== "eviction") throw pathNotFound();
      if (sub === "status" && !["get", "update", "patch"].includes(verb)) {
        throw methodNotAllowed(def, verb);
      }
    }
    if (verb === "create" && route.name !== undefined && sub === undefined) {
      throw methodNotAllowed(def, verb);
    }
    if (sub === undefined) this.api.requireVerb(def, verb);
    if (isReviewKind(def)) {
      return json(answerReview(def, { body, user, authorizer: this.#authorizer }), 201);
    }
    const params = url.searchParams;
    const ns = def.namespaced ? route.namespace : undefined;
    const target = { def, namespace: ns, name: route.name ?? "" };
    const dryRun = params.getAll("dryRun").length > 0 ||
      (isRecord(body) && Array.isArray(body.dryRun) && body.dryRun.length > 0);
    switch (verb) {
      case "get":
        return this.#respondObject(req, def, this.api.get(target));
      case "list": {
        const selection = this.api.selection(def, {
          namespace: ns,
          labelSelector: params.get("labelSelector"),
          fieldSelector: params.get("fieldSelector"),
        });
        const paging = listPaging(params);
        const table = this.#tableRequest(req, params);
        if (table !== undefined) {
          const page = this.api.listPage(selection, paging);
          const answer = toTable(page.items.map((o) => this.api.present(def, o, { owned: true })), {
            group: def.group,
            resource: def.resource,
            apiVersion: table.apiVersion,
            includeObject: table.includeObject,
            resourceVersion: String(page.rv),
            now: this.api.now(),
          });
          if (page.continue !== undefined) {
            (answer.metadata as Record<string, string>).continue = page.continue;
          }
          return json(answer);
        }
        return json(this.api.list(selection, paging));
      }
      case "watch":
        return this.#watch(req, def, route, ns, record);
      case "create": {
        const created = this.api.create(target, body, { dryRun });
        return this.#respondObject(req, def, created, 201);
      }
      case "update":
        return this.#respondObject(
          req,
          def,
          this.api.update(target, body, { subresource: sub, dryRun }),
        );
      case "patch": {
        const patched = this.api.patch(target, {
          contentType: req.headers.get("content-type") ?? "",
          patch: body as Json,
        }, { subresource: sub, dryRun });
        return this.#respondObject(req, def, patched);
      }
      case "delete": {
        const result = this.api.delete(target, this.#deleteOptions(params, body));
        if ((result.body as Status).kind === "Status") return json(result.body, result.code);
        return this.#respondObject(req, def, result.body as KubeObject, result.code);
      }
      case "deletecollection": {
        const selection = this.api.selection(def, {
          namespace: ns,
          labelSelector: params.get("labelSelector"),
          fieldSelector: params.get("fieldSelector"),
        });
        return json(this.api.deleteCollection(selection, this.#deleteOptions(params, body)));
      }
      case "evict": {
        const pod = { namespace: route.namespace ?? "", name: route.name! };
        return json(this.api.evict(pod, body ?? {}), 201);
      }
      default:
        throw methodNotAllowed(def, verb);
    }
  }

  #deleteOptions(params: URLSearchParams, body: unknown): DeleteOptions {
    const options: DeleteOptions = {};
    const grace = params.get("gracePeriodSeconds");
    if (grace !== null) {
      if (!/^-?\d+$/.test(grace)) throw badRequest(`invalid gracePeriodSeconds: ${grace}`);
      options.gracePeriodSeconds = Number(grace);
    }
    const propagation = params.get("propagationPolicy");
    if (propagation !== null) options.propagationPolicy = propagation;
    const orphan = params.get("orphanDependents");
    if (orphan !== null) options.orphanDependents = orphan === "true";
    const dryRun = params.getAll("dryRun");
    if (dryRun.length > 0) options.dryRun = dryRun;
    if (isRecord(body)) {
      if (typeof body.gracePeriodSeconds === "number") {
        options.gracePeriodSeconds = body.gracePeriodSeconds;
      }
      if (isRecord(body.preconditions)) {
        options.preconditions = body.preconditions as DeleteOptions["preconditions"];
      }
      if (typeof body.propagationPolicy === "string") {
        options.propagationPolicy = body.propagationPolicy;
      }
      if (typeof body.orphanDependents === "boolean") {
        options.orphanDependents = body.orphanDependents;
      }
      if (Array.isArray(body.dryRun)) options.dryRun = body.dryRun.map(String);
    } else if (body !== undefined) {
      throw badRequest("the body of a DELETE must be DeleteOptions");
    }
    return options;
  }

  #tableRequest(
    req: Request,
    params: URLSearchParams,
  ): { apiVersion: string; includeObject: IncludeObject } | undefined {
    const apiVersion = tableVersionAccepted(req.headers.get("accept"));
    if (apiVersion === undefined) return undefined;
    const include = params.get("includeObject");
    const includeObject: IncludeObject = include === "Object" || include === "None"
      ? include
      : "Metadata";
    return { apiVersion, includeObject };
  }

  #respondObject(req: Request, def: ResourceDef, obj: KubeObject, code = 200): Response {
    const table = req.method === "GET"
      ? this.#tableRequest(req, new URL(req.url).searchParams)
      : undefined;
    if (table === undefined) return json(obj, code);
    return json(
      toTable([obj], {
        group: def.group,
        resource: def.resource,
        apiVersion: table.apiVersion,
        includeObject: table.includeObject,
        resourceVersion: obj.metadata.resourceVersion ?? "",
        now: this.api.now(),
      }),
      code,
    );
  }

  #watch(
    req: Request,
    def: ResourceDef,
    route: Route,
    ns: string | undefined,
    record: RequestRecord,
  ): Response {
    const params = new URL(req.url).searchParams;
    const selection = this.api.selection(def, {
      namespace: ns,
      labelSelector: params.get("labelSelector"),
      fieldSelector: params.get("fieldSelector"),
      name: route.name,
    });
    const rv = params.get("resourceVersion") ?? undefined;
    if (rv !== undefined && rv !== "" && !/^\d+$/.test(rv)) {
      throw badRequest(`invalid resource version: ${rv}`);
    }
    const timeout = params.get("timeoutSeconds");
    if (timeout !== null && !/^\d+$/.test(timeout)) {
      throw badRequest(`invalid timeoutSeconds: ${timeout}`);
    }
    const body = this.#hub.open(this.api, {
      def,
      selection,
      resourceVersion: rv,
      allowBookmarks: params.get("allowWatchBookmarks") === "true",
      sendInitialEvents: params.get("sendInitialEvents") === "true",
      timeoutSeconds: timeout === null ? undefined : Number(timeout),
      table: this.#tableRequest(req, params),
      onSend: (type, bytes) => {
        record.bytes += bytes;
        record.watchEvents = (record.watchEvents ?? 0) + 1;
        const types = record.watchEventTypes ??= {};
        types[type] = (types[type] ?? 0) + 1;
      },
    });
    return new Response(body, { status: 200, headers: jsonHeaders });
  }

  #discovery(req: Request, url: URL, route: Route): Response {
    const path = url.pathname.replace(/\/+$/, "");
    const accept = req.headers.get("accept");
    const visible = (def: ResourceDef, sub: string) =>
      !(def.resource === "pods" && def.group === "" && sub === "eviction" &&
        !this.evictionSupported);
    const defs = this.api.definitions;
    if (path === "/version") {
      return json({
        major: "1",
        minor: "32",
        gitVersion: "v1.32.4-sim",
        gitCommit: "0000000000000000000000000000000000000000",
        gitTreeState: "clean",
        buildDate: "2026-01-01T00:00:00Z",
        goVersion: "go1.23.0",
        compiler: "gc",
        platform: "linux/amd64",
      });
    }
    if (path === "/healthz" || path === "/livez" || path === "/readyz") {
      return sized("ok", { headers: { "content-type": "text/plain" } });
    }
    if (path === "/api" || path === "/apis") {
      const aggregated = this.#aggregated ? wantsAggregated(accept) : undefined;
      if (aggregated !== undefined) {
        const doc = aggregatedDiscovery(defs, {
          core: path === "/api",
          version: aggregated,
          visible,
        });
        return sized(JSON.stringify(doc), {
          headers: {
            "content-type": aggregatedContentType.replace("v=v2", `v=${aggregated}`),
          },
        });
      }
      if (path === "/api") return json(apiVersions(url.host));
      return json(apiGroupList(defs));
    }
    if (route.version !== "") {
      const doc = apiResourceList(defs, route, visible);
      if (doc !== undefined) return json(doc);
    } else if (path.startsWith("/apis/")) {
      const doc = apiGroupDocument(defs, path.slice("/apis/".length));
      if (doc !== undefined) return json(doc);
    }
    throw pathNotFound();
  }
}
