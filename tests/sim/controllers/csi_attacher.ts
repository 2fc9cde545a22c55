/**
 * A LINSTOR-CSI-like attacher (external-attacher plus the driver's
 * ControllerPublish/Unpublish) for VolumeAttachments of
 * `linstor.csi.linbit.com`.
 *
 * A new VolumeAttachment gets the finalizer
 * `external-attacher/linstor-csi-linbit-com`, then the DRBD resource is
 * promoted on the attachment's node and `status.attached` becomes true; while
 * promotion fails, `status.attachError` says why and the attacher retries. A
 * VolumeAttachment being deleted is demoted on its node (best effort: a dead
 * node cannot answer) and its finalizer removed, which lets the API server
 * remove it.
 *
 * @module
 */

import type { KubeObject } from "../apiserver/objects.ts";
import { pathString, rfc3339 } from "../apiserver/objects.ts";
import type { DrbdHooks } from "../drbd_hooks.ts";
import type { Cluster } from "./cluster.ts";
import type { KubeConstants } from "./constants.ts";
import { attacherFinalizer, drbdResourceOf, linstorDriver } from "./kube_util.ts";
import { Runner } from "./runner.ts";

/** The simulated LINSTOR CSI attacher. */
export class CsiAttacher {
  /** Component name in the log. */
  static readonly component = "csi-attacher";
  /** Its loop (retries failed attaches every `attacherRetryInterval`). */
  readonly runner: Runner;
  /** The CSI driver it serves. */
  readonly driver: string;
  #cluster: Cluster;
  #drbd: DrbdHooks;
  #finalizer: string;

  /** A stopped attacher for `options.driver` (default LINSTOR); start its {@link runner}. */
  constructor(
    cluster: Cluster,
    constants: KubeConstants,
    options: { drbd: DrbdHooks; driver?: string },
  ) {
    this.#cluster = cluster;
    this.#drbd = options.drbd;
    this.driver = options.driver ?? linstorDriver;
    this.#finalizer = attacherFinalizer(this.driver);
    this.runner = new Runner(cluster, {
      name: CsiAttacher.component,
      periodMs: constants.attacherRetryInterval,
      run: () => this.#sync(),
    });
  }

  #sync(): void {
    for (const va of this.#cluster.list("volumeattachments")) {
      if (pathString(va, "spec.attacher") !== this.driver) continue;
      if (va.metadata.deletionTimestamp !== undefined) this.#detach(va);
      else this.#attach(va);
    }
  }

  #resourceOf(va: KubeObject): string | undefined {
    const pvName = pathString(va, "spec.source.persistentVolumeName");
    const pv = pvName === "" ? undefined : this.#cluster.get("persistentvolumes", { name: pvName });
    return pv === undefined ? undefined : drbdResourceOf(pv);
  }

  #attach(va: KubeObject): void {
    const component = CsiAttacher.component;
    const name = va.metadata.name!;
    const finalizers = va.metadata.finalizers ?? [];
    if (!finalizers.includes(this.#finalizer)) {
      const stored = this.#cluster.mergePatch(component, "volumeattachments", { name }, {
        metadata: {
          finalizers: [...finalizers, this.#finalizer],
          resourceVersion: va.metadata.resourceVersion,
        },
      });
      if (stored === undefined) return;
      va = stored;
    }
    if (pathString(va, "status.attached") === "true") return;
    const node = pathString(va, "spec.nodeName");
    const resource = this.#resourceOf(va);
    const result = resource === undefined
      ? {
        ok: false as const,
        error: `persistentvolume "${
          pathString(va, "spec.source.persistentVolumeName")
        }" is not a LINSTOR volume`,
      }
      : this.#drbd.promote(node, resource);
    const next = structuredClone(va);
    if (result.ok) {
      next.status = { attached: true };
      if (this.#cluster.update(component, "volumeattachments", next, { subresource: "status" })) {
        this.#cluster.note(component, `attached ${resource} on ${node} (Primary)`);
      }
      return;
    }
    if (pathString(va, "status.attachError.message") === result.error) return;
    next.status = {
      attached: false,
      attachError: { time: rfc3339(new Date(this.#cluster.now())), message: result.error },
    };
    this.#cluster.note(
      component,
      `attach of ${resource ?? "?"} on ${node} failed: ${result.error}`,
    );
    this.#cluster.update(component, "volumeattachments", next, { subresource: "status" });
  }

  #detach(va: KubeObject): void {
    const component = CsiAttacher.component;
    const finalizers = va.metadata.finalizers ?? [];
    if (!finalizers.includes(this.#finalizer)) return;
    const node = pathString(va, "spec.nodeName");
    const resource = this.#resourceOf(va);
    if (resource !== undefined) {
      const result = this.#drbd.demote(node, resource);
      this.#cluster.note(
        component,
        result.ok
          ? `detached ${resource} on ${node} (Secondary)`
          : `detach of ${resource} on ${node}: demotion failed (${result.error}), finalizer removed anyway`,
      );
    }
    this.#cluster.mergePatch(component, "volumeattachments", { name: va.metadata.name! }, {
      metadata: { finalizers: finalizers.filter((f) => f !== this.#finalizer) },
    });
  }
}
