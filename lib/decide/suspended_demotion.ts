/**
 * Suspended demotion: a local Primary whose I/O is frozen (quorum, no data
 * or fencing) cannot be demoted normally, so its pods hang in termination
 * forever. Once the suspension has lasted `failOverTimeout` (most end
 * sooner: a fence-peer handler finishes, a rebooting peer returns) and every
 * local pod using the volume is terminating or finished, the resource is
 * demoted with `drbdsetup secondary --force`, which fails the frozen I/O and
 * lets the pods finish. A pod that is neither terminating nor finished, in
 * any phase (a Pending replacement too), blocks the demotion.
 *
 * @module
 */

import { formatDuration } from "../duration.ts";
import { suspendedForQuorumDataOrFencing } from "../drbd/model.ts";
import { eventAction, eventReason } from "../names.ts";
import { formatElapsed, nothing, type RuleContext, type RuleOutcome, runTimer } from "./context.ts";
import { claimTarget, persistentVolumeTarget, warningEvent } from "./events.ts";
import type { EventSpec } from "./types.ts";
import { claimsOf, podIsTerminal, podKey, podUsesAnyClaim, type ResourceView } from "./volumes.ts";

/** Judge one resource: force-demote it, or say what it waits for. */
export function suspendedDemotion(view: ResourceView, ctx: RuleContext): RuleOutcome {
  const resource = view.resource;
  if (resource.role !== "Primary" || !suspendedForQuorumDataOrFencing(resource)) return nothing();
  const since = runTimer(ctx, { name: "suspendedSince", key: resource.name });
  const s = resource.suspended;
  const why = [s.quorum ? "quorum" : "", s.noData ? "no-data" : "", s.fencing ? "fencing" : ""]
    .filter((w) => w !== "").join(", ");
  const claims = claimsOf(view);
  const consumers = ctx.snapshot.localPods.filter((p) => podUsesAnyClaim(p, claims));
  if (consumers.length === 0) {
    return { actions: [], notes: [`Primary suspended (${why}), no local pod uses it`] };
  }
  const active = consumers.filter((p) => p.deletionTimestamp === undefined && !podIsTerminal(p));
  if (active.length > 0) {
    return {
      actions: [],
      notes: [
        `Primary suspended (${why}), still used by non-terminating pod ` +
        active.map(podKey).join(", "),
      ],
    };
  }
  if (since === undefined) {
    return {
      actions: [],
      notes: [`Primary suspended (${why}); timer not started while held back`],
    };
  }
  const elapsed = ctx.now - since;
  const timeout = ctx.options.failOverTimeout;
  if (elapsed < timeout) {
    return {
      actions: [],
      notes: [
        `Primary suspended (${why}) for ${formatElapsed(elapsed)} of ` +
        `${formatDuration(timeout)} before force-demoting`,
      ],
    };
  }
  const volumes = view.bindings.map((b) => b.persistentVolume.name).join(", ");
  const events: EventSpec[] = [];
  const what = {
    reason: eventReason.forcedVolumeDemotion,
    action: eventAction.forceDemoted,
    note: `Forced demotion of DRBD resource ${resource.name} on node ${ctx.snapshot.nodeName}: ` +
      `I/O was suspended (${why}) and every pod using it is terminating.`,
  };
  for (const binding of view.bindings) {
    events.push(warningEvent(persistentVolumeTarget(binding.persistentVolume), what));
    if (binding.claim) events.push(warningEvent(claimTarget(binding.claim), what));
  }
  return {
    actions: [{
      kind: "force-demote",
      resource: resource.name,
      reason: `DRBD resource ${resource.name} (volume ${volumes}) is Primary with I/O ` +
        `suspended (${why}) for ${formatElapsed(elapsed)} and its local pods ` +
        `${consumers.map(podKey).join(", ")} are terminating or stopped, so it is demoted ` +
        "by force to fail the frozen I/O.",
      events,
    }],
    notes: [`Primary suspended (${why}) with only terminating pods: force-demoting`],
  };
}
