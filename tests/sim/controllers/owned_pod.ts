/**
 * What the workload controllers share when they make a pod: the template's
 * annotations, the create call and the SuccessfulCreate Event on the owner.
 *
 * @module
 */

import type { KubeObject } from "../apiserver/objects.ts";
import { pathRecord } from "../apiserver/objects.ts";
import type { Cluster } from "./cluster.ts";
import { type EventRecorder, referenceTo } from "./events.ts";

/**
 * Creates `pod` (its template's annotations added) for `owner` of `kind`
 * and records SuccessfulCreate with `message(created)`; undefined when the
 * API refused.
 */
export function createOwnedPod(
  cluster: Cluster,
  recorder: EventRecorder,
  parts: {
    component: string;
    owner: KubeObject;
    kind: string;
    template: Record<string, unknown>;
    pod: KubeObject;
    message: (created: KubeObject) => string;
  },
): KubeObject | undefined {
  const { pod, template } = parts;
  const annotations = pathRecord(template, "metadata.annotations");
  if (Object.keys(annotations).length > 0) {
    pod.metadata.annotations = structuredClone(annotations) as Record<string, string>;
  }
  const created = cluster.create(parts.component, "pods", pod);
  if (created !== undefined) {
    recorder.event(referenceTo(parts.owner, parts.kind, { apiVersion: "apps/v1" }), {
      type: "Normal",
      reason: "SuccessfulCreate",
      message: parts.message(created),
    });
  }
  return created;
}
