/**
 * What the simulated Kubernetes side (kubelets, attacher) asks of the
 * simulated DRBD side. The DRBD cluster simulation implements it; the
 * controllers only use it, so either side can be tested alone.
 *
 * @module
 */

/** Result of a DRBD operation asked by a controller. */
export type DrbdOpResult = { ok: true } | { ok: false; error: string };

/** How I/O on one node's replica of a resource behaves right now. */
export type IoState =
  /** Reads and writes complete. */
  | "ok"
  /** I/O is suspended (no quorum with suspend-io, no data, fencing, user): requests hang. */
  | "frozen"
  /** I/O errors out (force-io-failures, or no quorum with io-error). */
  | "failing"
  /** The node has no replica of the resource, or the node is down. */
  | "absent";

/** The DRBD side as the Kubernetes controllers see it. */
export interface DrbdHooks {
  /** Promote `resource` on `node` (LINSTOR attacher: attached → Primary). */
  promote(node: string, resource: string): DrbdOpResult;
  /** Demote `resource` on `node` (attacher: detached → Secondary); fails while open for writing. */
  demote(node: string, resource: string): DrbdOpResult;
  /** The kubelet opens the device for a pod (mount). */
  open(node: string, resource: string): DrbdOpResult;
  /**
   * The kubelet closes the device (unmount). Returns false while I/O is
   * frozen: the unmount hangs, as a real one would, until I/O resumes or
   * fails.
   */
  close(node: string, resource: string): boolean;
  /** Current I/O behaviour of `node`'s replica. */
  ioState(node: string, resource: string): IoState;
  /** Be told after any DRBD state change; returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
}
