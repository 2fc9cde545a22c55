/**
 * On-demand reads about a peer node that DRBD lost: its Node and the pods
 * bound to it. These are not cached, so memory and watch traffic do not grow
 * with pods elsewhere in the cluster; they are read only while a fail-over
 * is being considered. The kubelet's Lease tells whether it still answers.
 *
 * @module
 */

import { isNotFound, type KubeClient } from "./client.ts";
import { errorMessage } from "../errors.ts";
import { type PodInfo, slimNode, slimPod } from "./objects.ts";
import type { KubeletLease, PeerView } from "../decide/types.ts";
import type { V1Lease, V1Node, V1Pod } from "@kubernetes/client-node";

/** Fetch the Node, its pods and its kubelet's Lease, concurrently; never throws. */
export async function fetchPeer(client: KubeClient, nodeName: string): Promise<PeerView> {
  const name = encodeURIComponent(nodeName);
  try {
    const [rawNode, list, rawLease] = await Promise.all([
      orNull(client.request<V1Node>("get", "GET", `/api/v1/nodes/${name}`)),
      client.request<{ items?: V1Pod[] }>("list", "GET", "/api/v1/pods", {
        query: { fieldSelector: `spec.nodeName=${nodeName}` },
      }),
      // The Lease only refines "Ready": when it cannot be read (missing,
      // forbidden, failing) the rules fall back to the Node's Ready condition.
      client.requestWithDate<V1Lease>(
        "get",
        "GET",
        `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`,
      ).catch(() => null),
    ]);
    const node = rawNode === null ? null : slimNode(rawNode) ?? null;
    if (rawNode !== null && node === null) {
      return { ok: false, error: `Node ${nodeName} is malformed (no name or uid)` };
    }
    if (!Array.isArray(list.items)) {
      return { ok: false, error: `pod list for node ${nodeName} has no items` };
    }
    const pods: PodInfo[] = [];
    for (const raw of list.items) {
      const pod = slimPod(raw);
      if (pod) pods.push(pod);
    }
    return {
      ok: true,
      node,
      pods,
      kubeletLease: rawLease === null
        ? null
        : slimLease(rawLease.body, { serverDate: rawLease.serverDate, readAt: client.clock.now() }),
    };
  } catch (err) {
    return { ok: false, error: `cannot read node ${nodeName} and its pods: ${errorMessage(err)}` };
  }
}

/** The answer, or null when the object does not exist. */
async function orNull<T>(request: Promise<T>): Promise<T | null> {
  try {
    return await request;
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** A kubelet Lease's heartbeat as read at `readAt` (this node's clock); null when it carries none. */
function slimLease(
  lease: V1Lease,
  { serverDate, readAt }: { serverDate: number | undefined; readAt: number },
): KubeletLease | null {
  const renew = lease.spec?.renewTime;
  const renewTime = renew === undefined ? NaN : Date.parse(String(renew));
  if (!Number.isFinite(renewTime)) return null;
  const duration = lease.spec?.leaseDurationSeconds;
  return {
    renewTime,
    durationSeconds: typeof duration === "number" && duration > 0 ? duration : 40,
    ageAtRead: (serverDate ?? readAt) - renewTime,
    readAt,
  };
}
