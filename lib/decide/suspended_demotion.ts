/**
 * Suspended demotion: a local Primary whose I/O is frozen (quorum, no data
 * or fencing) cannot be demoted normally, so processes using it hang, and
 * with them the termination of their pods. Once the suspension has lasted
 * `failOverTimeout` (most end sooner: a fence-peer handler finishes, a
 * rebooting peer returns) and no local pod using the volume runs, the
 * resource is demoted with `drbdsetup secondary --force`, which fails the
 * frozen I/O and lets the pods finish.
 *
 * "No local pod runs" includes no local pod at all: a pod force-deleted from
 * the API while its containers still hang on the device leaves no pod object
 * behind. A pod runs when it is not being deleted and is `Running`, reports a
 * running container (a `Pending` pod runs its init containers), or its phase
 * is unknown; a `Pending` pod also counts unless the kubelet reports its
 * sandbox not ready (`PodReadyToStartContainers` False: its volumes are not
 * mounted yet, the mount hangs on the frozen device and fails over to an
 * error the kubelet retries). A `Pending` pod whose volumes may be mounted
 * (pulling images, say) blocks, as demoting would break its filesystem. Only resources that back a PersistentVolume are
 * demoted: others are not Kubernetes' to judge. A suspension by the user
 * alone (`drbdsetup suspend-io`) is left alone.
 *
 * @module
 */

import { formatDuration } from "../duration.ts";
import { suspendedForQuorumDataOrFencing } from "../drbd/model.ts";
import { eventAction, eventReason } from "../names.ts";
import { formatElapsed, nothing, type RuleContext, type RuleOutcome, runTimer } from "./context.ts";
import {
  claimTarget,
  persistentVolumeTarget,
  volumeAttachmentTarget,
  warningEvent,
} from "./events.ts";
import type { PodInfo } from "../kube/objects.ts";
import type { EventSpec } from "./types.ts";
import {
  attachmentsByVolume,
  claimsOf,
  podIsTerminal,
  podKey,
  podUsesAnyClaim,
  type ResourceView,
} from "./volumes.ts";

/** Judge one resource: force-demote it, or say what it waits for. */
export function suspendedDemotion(view: ResourceView, ctx: RuleContext): RuleOutcome {
  const resource = view.resource;
  if (resource.role !== "Primary" || !suspendedForQuorumDataOrFencing(resource)) return nothing();
  const since = runTimer(ctx, { name: "suspendedSince", key: resource.name });
  const s = resource.suspended;
  const why = [s.quorum ? "quorum" : "", s.noData ? "no-data" : "", s.fencing ? "fencing" : ""]
    .filter((w) => w !== "").join(", ");
  if (view.bindings.length === 0) {
    return {
      actions: [],
      notes: [`Primary suspended (${why}), backs no PersistentVolume: left alone`],
    };
  }
  const claims = claimsOf(view);
  const consumers = ctx.snapshot.localPods.filter((p) => podUsesAnyClaim(p, claims));
  const running = consumers.filter(podRuns);
  if (running.length > 0) {
    return {
      actions: [],
      notes: [
        `Primary suspended (${why}), still used by running pod ${running.map(podKey).join(", ")}`,
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
  const byVolume = attachmentsByVolume(ctx.snapshot.volumeAttachments);
  const what = {
    reason: eventReason.volumeWithoutQuorum,
    action: eventAction.forcedVolumeDemotion,
    note: `Forced demotion of DRBD resource ${resource.name} on node ${ctx.snapshot.nodeName}: ` +
      `I/O was suspended (${why}) and no pod using it runs here.`,
  };
  for (const binding of view.bindings) {
    const pv = binding.persistentVolume;
    const local = (byVolume.get(pv.name) ?? []).find((va) => va.nodeName === ctx.snapshot.nodeName);
    const about = { ...what, related: local && volumeAttachmentTarget(local) };
    events.push(warningEvent(persistentVolumeTarget(pv), about));
    if (binding.claim) events.push(warningEvent(claimTarget(binding.claim), about));
  }
  return {
    actions: [{
      kind: "force-demote",
      resource: resource.name,
      reason: `DRBD resource ${resource.name} (volume ${volumes}) is Primary with I/O ` +
        `suspended (${why}) for ${formatElapsed(elapsed)} and ${
          consumers.length === 0
            ? "no local pod uses it"
            : `its local pods ${consumers.map(podKey).join(", ")} are not running`
        }, so it is demoted by force to fail the frozen I/O.`,
      events,
    }],
    notes: [`Primary suspended (${why}) with no running pod: force-demoting`],
  };
}

/** The pod may still use the device: see the module documentation. */
function podRuns(pod: PodInfo): boolean {
  if (pod.deletionTimestamp !== undefined || podIsTerminal(pod)) return false;
  if (pod.phase === "Running" || pod.containerRunning || !knownPhases.has(pod.phase)) return true;
  // Pending: its volumes may be mounted already (the kubelet mounts them
  // before it creates the sandbox and pulls images). Only a pod whose
  // sandbox is reported not ready yet is surely still waiting to mount.
  return pod.sandboxReady !== false;
}

/** Phases in which a pod without a running container does not run. */
const knownPhases = new Set(["Pending", "Running", "Succeeded", "Failed"]);
