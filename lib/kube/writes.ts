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

interface RawNode {
  metadata?: { resourceVersion?: string };
  spec?: { taints?: Taint[] };
}

/** Writes to the Kubernetes API. */
export class KubeWriter {
  readonly #client: KubeClient;
  readonly #reportingInstance: string;

  /** `reportingInstance` of Events is derived from the node name. */
  constructor(client: KubeClient, nodeName: string) {
    this.#client = client;
    this.#reportingInstance = `ha-controller-${nodeName}`.slice(0, 128);
  }

  /** Add `taint` to the node unless a taint with its key and effect exists. */
  addTaint(node: string, taint: Taint): Promise<WriteOutcome> {
    return this.#updateTaints(node, (taints) => {
      if (taints.some((t) => sameTaint(t, taint))) return undefined;
      return [...taints, { ...taint, timeAdded: undefined }];
    });
  }

  /** Remove the taint with `taint`'s key and effect, keeping all others. */
  removeTaint(node: string, taint: Taint): Promise<WriteOutcome> {
    return this.#updateTaints(node, (taints) => {
      const kept = taints.filter((t) => !sameTaint(t, taint));
      return kept.length === taints.length ? undefined : kept;
    });
  }

  async #updateTaints(
    node: string,
    change: (taints: Taint[]) => Taint[] | undefined,
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
   */
  async recordEvent(event: EventSpec, now: number): Promise<void> {
    const namespace = event.regarding.namespace ?? "default";
    await this.#client.request(
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
  }
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
