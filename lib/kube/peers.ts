/**
 * On-demand reads about a peer node that DRBD lost: its Node and the pods
 * bound to it. These are not cached, so memory and watch traffic do not grow
 * with pods elsewhere in the cluster; they are read only while a fail-over
 * is being considered.
 *
 * @module
 */

import { isNotFound, type KubeClient } from "./client.ts";
import { errorMessage } from "../errors.ts";
import { type PodInfo, slimNode, slimPod } from "./objects.ts";
import type { PeerView } from "../decide/types.ts";
import type { V1Node, V1Pod } from "@kubernetes/client-node";

/** Fetch the Node and pods of `nodeName`; never throws. */
export async function fetchPeer(client: KubeClient, nodeName: string): Promise<PeerView> {
  try {
    let node = null;
    try {
      const raw = await client.request<V1Node>(
        "get",
        "GET",
        `/api/v1/nodes/${encodeURIComponent(nodeName)}`,
      );
      node = slimNode(raw) ?? null;
      if (node === null) {
        return { ok: false, error: `Node ${nodeName} is malformed (no name or uid)` };
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const list = await client.request<{ items?: V1Pod[] }>("list", "GET", "/api/v1/pods", {
      query: { fieldSelector: `spec.nodeName=${nodeName}` },
    });
    if (!Array.isArray(list.items)) {
      return { ok: false, error: `pod list for node ${nodeName} has no items` };
    }
    const pods: PodInfo[] = [];
    for (const raw of list.items) {
      const pod = slimPod(raw);
      if (pod) pods.push(pod);
    }
    return { ok: true, node, pods };
  } catch (err) {
    return { ok: false, error: `cannot read node ${nodeName} and its pods: ${errorMessage(err)}` };
  }
}
