/**
 * Events as the real components write them: kube-controller-manager's
 * controllers and the kubelet through the core/v1 recorder (`source`,
 * `firstTimestamp`, `count`), kube-scheduler through events.k8s.io/v1
 * (`eventTime`, `reportingController`, `action`).
 *
 * Each call writes one Event; the simulator does not aggregate repeats, so
 * callers emit once where the real recorder would only bump a count.
 *
 * @module
 */

import type { KubeObject } from "../apiserver/objects.ts";
import { microTime, rfc3339 } from "../apiserver/objects.ts";
import type { Cluster } from "./cluster.ts";

/** What an Event is about (`involvedObject` / `regarding`). */
export interface ObjectReference {
  /** Kind, e.g. `Pod`. */
  kind: string;
  /** Namespace, absent for cluster-scoped objects. */
  namespace?: string;
  /** Name. */
  name: string;
  /** UID. */
  uid?: string;
  /** apiVersion of the object. */
  apiVersion?: string;
  /** resourceVersion the event saw. */
  resourceVersion?: string;
  /** Part of the object, e.g. `spec.containers{app}`. */
  fieldPath?: string;
}

/** `Normal` or `Warning`. */
export type EventType = "Normal" | "Warning";

/** A reference to a stored object of `kind` (`apiVersion` defaults to v1). */
export function referenceTo(
  obj: KubeObject,
  kind: string,
  options: { apiVersion?: string; fieldPath?: string } = {},
): ObjectReference {
  const ref: ObjectReference = {
    kind,
    name: obj.metadata.name ?? "",
    uid: obj.metadata.uid,
    apiVersion: options.apiVersion ?? "v1",
    resourceVersion: obj.metadata.resourceVersion,
  };
  if (obj.metadata.namespace !== undefined) ref.namespace = obj.metadata.namespace;
  if (options.fieldPath !== undefined) ref.fieldPath = options.fieldPath;
  return ref;
}

let sequence = 0;

/** `<name>.<hex>` as client-go names Events (the hex is the time in ns, made unique). */
function eventName(cluster: Cluster, ref: ObjectReference): string {
  sequence = (sequence + 1) % 1_000_000;
  const nanos = BigInt(Math.floor(cluster.now())) * 1_000_000n + BigInt(sequence);
  return `${ref.name}.${nanos.toString(16)}`;
}

/** Writes core/v1 Events for one component (`source.component`, optional `source.host`). */
export class EventRecorder {
  #cluster: Cluster;
  #component: string;
  #host: string | undefined;

  /** A recorder for `component` (e.g. `node-controller`), on `host` for kubelets. */
  constructor(cluster: Cluster, source: { component: string; host?: string }) {
    this.#cluster = cluster;
    this.#component = source.component;
    this.#host = source.host;
  }

  /** Writes one Event; returns it, or undefined when the API refused. */
  event(
    ref: ObjectReference,
    event: { type: EventType; reason: string; message: string },
  ): KubeObject | undefined {
    const cluster = this.#cluster;
    const time = rfc3339(new Date(cluster.now()));
    const source: Record<string, string> = { component: this.#component };
    if (this.#host !== undefined) source.host = this.#host;
    const body: KubeObject = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: eventName(cluster, ref), namespace: ref.namespace ?? "default" },
      involvedObject: { ...ref },
      reason: event.reason,
      message: event.message,
      source,
      firstTimestamp: time,
      lastTimestamp: time,
      count: 1,
      type: event.type,
      reportingComponent: this.#component,
      reportingInstance: this.#host ?? "",
    };
    cluster.note(
      this.#component,
      `event ${event.reason} on ${ref.kind} ${ref.name}: ${event.message}`,
    );
    return cluster.create(this.#component, "events", body);
  }
}

/** Writes events.k8s.io/v1 Events, as kube-scheduler does. */
export class EventsV1Recorder {
  #cluster: Cluster;
  #controller: string;
  #instance: string;

  /** A recorder with `reportingController` and `reportingInstance`. */
  constructor(cluster: Cluster, reporting: { controller: string; instance: string }) {
    this.#cluster = cluster;
    this.#controller = reporting.controller;
    this.#instance = reporting.instance;
  }

  /** Writes one Event; returns it, or undefined when the API refused. */
  event(
    ref: ObjectReference,
    event: { type: EventType; reason: string; action: string; note: string },
  ): KubeObject | undefined {
    const cluster = this.#cluster;
    const body: KubeObject = {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name: eventName(cluster, ref), namespace: ref.namespace ?? "default" },
      eventTime: microTime(new Date(cluster.now())),
      reportingController: this.#controller,
      reportingInstance: this.#instance,
      action: event.action,
      reason: event.reason,
      regarding: { ...ref },
      note: event.note,
      type: event.type,
    };
    cluster.note(
      this.#controller,
      `event ${event.reason} on ${ref.kind} ${ref.name}: ${event.note}`,
    );
    return cluster.create(this.#controller, "events.events.k8s.io", body);
  }
}
