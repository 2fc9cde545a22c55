/**
 * Force-I/O: a resource forcing I/O failures (after a forced demotion) stays
 * that way until every opener closed it. Local pods using its volume are
 * evicted so they restart elsewhere and release the device. (The node taint
 * for this state is set by the own-taints rule.)
 *
 * @module
 */

import { eventAction, eventReason } from "../names.ts";
import { nothing, type RuleContext, type RuleOutcome } from "./context.ts";
import { podTarget, warningEvent } from "./events.ts";
import type { Action, PodRef } from "./types.ts";
import { claimsOf, podIsTerminal, podKey, podUsesAnyClaim, type ResourceView } from "./volumes.ts";

/** Judge one resource: evict the local pods that keep it forcing I/O errors. */
export function forceIo(view: ResourceView, ctx: RuleContext): RuleOutcome {
  const resource = view.resource;
  if (!resource.forceIoFailures) return nothing();
  const claims = claimsOf(view);
  const volumes = view.bindings.map((b) => b.persistentVolume.name).join(", ");
  const actions: Action[] = [];
  const parts: string[] = [];
  for (const pod of ctx.snapshot.localPods) {
    if (!podUsesAnyClaim(pod, claims) || podIsTerminal(pod)) continue;
    if (pod.deletionTimestamp !== undefined) {
      parts.push(`pod ${podKey(pod)} already terminating`);
    } else if (pod.ignoreFailOver) {
      parts.push(`skip pod ${podKey(pod)}: has the ignore-fail-over annotation`);
    } else if (!pod.hasOwner) {
      parts.push(`skip pod ${podKey(pod)}: has no owner that would recreate it`);
    } else {
      const ref: PodRef = { namespace: pod.namespace, name: pod.name, uid: pod.uid };
      parts.push(`evict pod ${podKey(pod)}`);
      actions.push({
        kind: "evict-pod",
        pod: ref,
        gracePeriodSeconds: ctx.options.gracePeriodSeconds,
        resource: resource.name,
        reason: `Pod ${podKey(pod)} uses volume ${volumes}, whose DRBD resource ` +
          `${resource.name} forces I/O errors on node ${ctx.snapshot.nodeName}, ` +
          "so it is evicted to restart elsewhere and release the device.",
        events: [warningEvent(podTarget(ref), {
          reason: eventReason.volumeForcingIoErrors,
          action: eventAction.evictedPod,
          note: `Evicted: volume ${volumes} forces I/O errors on node ${ctx.snapshot.nodeName}.`,
        })],
      });
    }
  }
  const note = parts.length > 0 ? `forcing I/O errors: ${parts.join(", ")}` : "forcing I/O errors";
  return { actions, notes: [note] };
}
