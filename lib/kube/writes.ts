/**
 * Every write ha-controller makes to the Kubernetes API, in one place.
 *
 * All writes are idempotent so a cycle can be repeated after any crash:
 * "not found" counts as done, deletes carry a UID precondition (so a
 * replacement object with the same name is never touched), and taint updates
 * use the Node's resourceVersion and keep every taint they did not add.
 *
 * @module
 */

import { ApiError, isNotFound, type KubeClient } from "./client.ts";
import type { Taint } from "./objects.ts";
import type { EventSpec, PodRef } from "../decide/types.ts";
import { reportingController } from "../names.ts";

/** What a write achieved. */
export type WriteOutcome =
  /** The change was made. */
  | "done"
  /** Nothing to do: already in the wanted state, or the object is gone or was replaced. */
  | "already";

const conflictRetries = 5;

/**
 * Thrown by a write whose re-check, asked between its read and its write,
 * withdrew it: the read may have taken long (a slow API server), and what
 * the write was for may have ended meanwhile.
 */
export class WriteWithdrawn extends Error {
  /** Why it was withdrawn. */
  readonly why: string;
  /** Builds the error from the re-check's reason. */
  constructor(why: string) {
    super(`withdrawn: ${why}`);
    this.name = "WriteWithdrawn";
    this.why = why;
  }
}

interface RawNode {
  metadata?: { resourceVersion?: string };
  spec?: { taints?: Taint[] };
}

/**
 * How long an Event stays open for repeats: client-go's events library
 * (k8s.io/client-go/tools/events, event_broadcaster.go `finishTime`) ends a
 * series that saw no repeat for 6 minutes; a later repeat starts a new Event.
 */
export const eventSeriesWindowMs = 6 * 60_000;

/** An Event this agent created, open for repeats. */
interface RecordedEvent {
  namespace: string;
  name: string;
  /** Occurrences so far (1 until the first repeat). */
  count: number;
  /** When it was last seen, ms. */
  lastAt: number;
}

/** Writes to the Kubernetes API. */
export class KubeWriter {
  readonly #client: KubeClient;
  readonly #reportingInstance: string;
  /** Open Events by {@linkcode eventKey}. */
  readonly #events = new Map<string, RecordedEvent>();

  /** `reportingInstance` of Events is derived from the node name. */
  constructor(client: KubeClient, nodeName: string) {
    this.#client = client;
    this.#reportingInstance = `ha-controller-${nodeName}`.slice(0, 128);
  }

  /**
   * Add `taint` to the node unless a taint with its key and effect exists.
   * `recheck` is asked right before the update is sent (after the Node was
   * read): a returned reason throws {@linkcode WriteWithdrawn} instead.
   */
  addTaint(
    node: string,
    taint: Taint,
    recheck?: () => string | undefined,
  ): Promise<WriteOutcome> {
    return this.#updateTaints(node, (taints) => {
      if (taints.some((t) => sameTaint(t, taint))) return undefined;
      return [...taints, { ...taint, timeAdded: undefined }];
    }, recheck);
  }

  /**
   * Remove the taint with `taint`'s key and effect (and value, when `taint`
   * has one: another party's taint with the same key stays), keeping all
   * others.
   */
  removeTaint(node: string, taint: Taint): Promise<WriteOutcome> {
    return this.#updateTaints(node, (taints) => {
      const kept = taints.filter((t) =>
        !sameTaint(t, taint) || (taint.value !== undefined && t.value !== taint.value)
      );
      return kept.length === taints.length ? undefined : kept;
    });
  }

  async #updateTaints(
    node: string,
    change: (taints: Taint[]) => Taint[] | undefined,
    recheck?: () => string | undefined,
  ): Promise<WriteOutcome> {
    const path = `/api/v1/nodes/${encodeURIComponent(node)}`;
    for (let attempt = 0;; attempt++) {
      let current: RawNode;
      try {
        current = await this.#client.request<RawNode>("get", "GET", path);
      } catch (err) {
        if (isNotFound(err)) return "already";
        throw err;
      }
      const next = change(current.spec?.taints ?? []);
      if (next === undefined) return "already";
      const updated = {
        ...current,
        spec: { ...current.spec, taints: next.map(withoutUndefined) },
      };
      const why = recheck?.();
      if (why !== undefined) throw new WriteWithdrawn(why);
      try {
        // PUT with the resourceVersion we read: a concurrent change of the
        // taint list (kubelet, node controller, operator) makes this a 409,
        // and we start over from the new list instead of dropping its taint.
        await this.#client.request("update", "PUT", path, { body: updated });
        return "done";
      } catch (err) {
        if (isNotFound(err)) return "already";
        if (err instanceof ApiError && err.status === 409 && attempt < conflictRetries) continue;
        throw err;
      }
    }
  }

  /**
   * Evict a pod via policy/v1 `pods/eviction` with a UID precondition.
   * Falls back to a plain graceful delete when the server has no eviction
   * subresource. A 429 (PodDisruptionBudget) is thrown for the caller to
   * retry later.
   */
  async evictPod(pod: PodRef, gracePeriodSeconds: number): Promise<WriteOutcome> {
    const path = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${
      encodeURIComponent(pod.name)
    }`;
    const deleteOptions = { gracePeriodSeconds, preconditions: { uid: pod.uid } };
    try {
      await this.#client.request("evict", "POST", `${path}/eviction`, {
        body: {
          apiVersion: "policy/v1",
          kind: "Eviction",
          metadata: { name: pod.name, namespace: pod.namespace },
          deleteOptions,
        },
      });
      return "done";
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) return "already";
      if (!isNotFound(err)) throw err;
      // Either the pod is gone, or the server has no eviction subresource.
      // A Status about the pod itself names it in details.
      if (err instanceof ApiError && err.details?.name === pod.name) return "already";
    }
    return await this.#delete(path, deleteOptions);
  }

  /** Delete a pod immediately (grace period 0) if it still has `pod.uid`. */
  forceDeletePod(pod: PodRef): Promise<WriteOutcome> {
    const path = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${
      encodeURIComponent(pod.name)
    }`;
    return this.#delete(path, { gracePeriodSeconds: 0, preconditions: { uid: pod.uid } });
  }

  /** Delete a VolumeAttachment if it still has `uid` (force detach). */
  deleteVolumeAttachment(
    name: string,
    uid: string,
    gracePeriodSeconds: number | undefined,
  ): Promise<WriteOutcome> {
    return this.#delete(`/apis/storage.k8s.io/v1/volumeattachments/${encodeURIComponent(name)}`, {
      gracePeriodSeconds,
      preconditions: { uid },
    });
  }

  async #delete(
    path: string,
    options: { gracePeriodSeconds: number | undefined; preconditions: { uid: string } },
  ): Promise<WriteOutcome> {
    try {
      await this.#client.request("delete", "DELETE", path, {
        body: { apiVersion: "v1", kind: "DeleteOptions", ...withoutUndefined(options) },
      });
      return "done";
    } catch (err) {
      // 404: already gone. 409 on a UID precondition: the name now belongs to
      // a replacement, which must not be touched.
      if (isNotFound(err) || (err instanceof ApiError && err.status === 409)) return "already";
      throw err;
    }
  }

  /**
   * Record an events.k8s.io/v1 Event. The server picks the name (from
   * `<regarding>.` plus a random suffix), so two Events about one object in
   * the same millisecond do not collide.
   *
   * A repeat of an Event (same type, reason, action, regarding and related;
   * the note may differ) within {@linkcode eventSeriesWindowMs} of its last
   * occurrence is not a new Event: the existing one gets an EventSeries
   * (`series.count`, `series.lastObservedTime`), as client-go's recorder
   * does. If that Event is gone (expired, deleted), a new one is created.
   */
  async recordEvent(event: EventSpec, now: number): Promise<void> {
    for (const [key, open] of this.#events) {
      if (now - open.lastAt >= eventSeriesWindowMs) this.#events.delete(key);
    }
    const key = eventKey(event);
    const open = this.#events.get(key);
    if (open !== undefined && await this.#repeat(open, now)) return;
    const namespace = event.regarding.namespace ?? "default";
    const created = await this.#client.request<{ metadata?: { name?: string } }>(
      "create",
      "POST",
      `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/events`,
      {
        body: {
          apiVersion: "events.k8s.io/v1",
          kind: "Event",
          metadata: { generateName: `${event.regarding.name}.`, namespace },
          eventTime: microTime(now),
          reportingController,
          reportingInstance: this.#reportingInstance,
          action: event.action,
          reason: event.reason,
          type: event.type,
          note: event.note.slice(0, 1024),
          regarding: withoutUndefined({ ...event.regarding }),
          related: event.related && withoutUndefined({ ...event.related }),
        },
      },
    );
    const name = created?.metadata?.name;
    if (typeof name === "string") this.#events.set(key, { namespace, name, count: 1, lastAt: now });
  }

  /** Count a repeat on the open Event; false when it is gone (create a new one). */
  async #repeat(open: RecordedEvent, now: number): Promise<boolean> {
    const count = open.count + 1;
    try {
      await this.#client.request(
        "patch",
        "PATCH",
        `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(open.namespace)}/events/${
          encodeURIComponent(open.name)
        }`,
        {
          contentType: "application/merge-patch+json",
          body: { series: { count, lastObservedTime: microTime(now) } },
        },
      );
    } catch (err) {
      // Gone (404), or the patch refused: record a new Event instead.
      if (isNotFound(err) || err instanceof ApiError) return false;
      throw err;
    }
    open.count = count;
    open.lastAt = now;
    return true;
  }
}

/** What makes two Events the same occurrence (client-go's `getKey`, plus the type). */
function eventKey(event: EventSpec): string {
  const target = (t: EventSpec["regarding"] | undefined) =>
    t === undefined ? null : [t.kind, t.apiVersion, t.namespace ?? "", t.name, t.uid ?? ""];
  return JSON.stringify([
    event.type,
    event.reason,
    event.action,
    target(event.regarding),
    target(event.related),
    event.seriesKey ?? "",
  ]);
}

/** An RFC 3339 time with exactly six fractional digits, as MicroTime requires. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

function sameTaint(a: Taint, b: Taint): boolean {
  return a.key === b.key && a.effect === b.effect;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
