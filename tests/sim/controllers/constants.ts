/**
 * The timing constants of the simulated control plane, with Kubernetes 1.32
 * defaults. Every duration is in simulated milliseconds (the {@link SimClock}
 * scales them); names ending in `Seconds` are seconds, as in the API.
 *
 * The constants marked "simulator" are not Kubernetes flags: they are how
 * often a simulated component retries something the real one does on an
 * internal backoff, and only bound how late a retry can come.
 *
 * @module
 */

import type { SimClock } from "../clock.ts";

/** Timing of the simulated control plane and kubelets. */
export interface KubeConstants {
  /** kubelet: Lease renew interval (Lease duration 40 s × 0.25), 10 s. */
  nodeLeaseRenewInterval: number;
  /** kubelet: `spec.leaseDurationSeconds` of the node Lease, 40. */
  nodeLeaseDurationSeconds: number;
  /** kubelet `--node-status-report-frequency`: node status is re-posted unchanged this often, 5 min. */
  nodeStatusReportFrequency: number;
  /** kube-controller-manager `--node-monitor-period`, 5 s. */
  nodeMonitorPeriod: number;
  /** kube-controller-manager `--node-monitor-grace-period`, 50 s in 1.32. */
  nodeMonitorGracePeriod: number;
  /** kube-controller-manager `--node-startup-grace-period`, 60 s. */
  nodeStartupGracePeriod: number;
  /**
   * kube-apiserver `--default-not-ready-toleration-seconds` and
   * `--default-unreachable-toleration-seconds`, 300. Pods the simulated
   * StatefulSet controller creates get the two default tolerations with this
   * value (the simulated API server adds 300 to other pods).
   */
  defaultTolerationSeconds: number;
  /** Attach-detach controller reconciler loop period, 100 ms. */
  reconcilerLoopPeriod: number;
  /** Attach-detach `ReconcilerMaxWaitForUnmountDuration`: force detach after 6 min. */
  reconcilerMaxWaitForUnmountDuration: number;
  /**
   * kube-controller-manager `--attach-detach-reconcile-sync-period`, 1 min:
   * how often the attach-detach controller re-reads the VolumeAttachments to
   * learn that an attached volume went away behind its back.
   */
  reconcilerSyncDuration: number;
  /** kube-controller-manager `--disable-force-detach-on-timeout`, false. */
  disableForceDetachOnTimeout: boolean;
  /** kubelet: FailedMount "timed out waiting for the condition" after 2 min 3 s. */
  volumeMountTimeout: number;
  /** external-attacher `--retry-interval-start`: a failed attach or detach is retried after 1 s. */
  attacherRetryInterval: number;
  /** Simulator: how often a kubelet retries a hanging unmount or a failed mount, 1 s. */
  kubeletRetryPeriod: number;
  /** kube-scheduler `podInitialBackoffSeconds`: unschedulable pods are retried after 1 s. */
  schedulerRetryPeriod: number;
  /** Simulator: resync of the StatefulSet controller and the volume binder, 1 s. */
  controllerResyncPeriod: number;
  /** Pod garbage collector check period (`gcCheckPeriod`), 20 s. */
  podGcPeriod: number;
  /** Pod garbage collector: a pod's node must be gone this long before the pod is (`quarantineTime`), 40 s. */
  podGcQuarantine: number;
}

/** The Kubernetes 1.32 defaults, in simulated milliseconds. */
export const defaultKubeConstants: Readonly<KubeConstants> = Object.freeze({
  nodeLeaseRenewInterval: 10_000,
  nodeLeaseDurationSeconds: 40,
  nodeStatusReportFrequency: 300_000,
  nodeMonitorPeriod: 5_000,
  nodeMonitorGracePeriod: 50_000,
  nodeStartupGracePeriod: 60_000,
  defaultTolerationSeconds: 300,
  reconcilerLoopPeriod: 100,
  reconcilerMaxWaitForUnmountDuration: 360_000,
  reconcilerSyncDuration: 60_000,
  disableForceDetachOnTimeout: false,
  volumeMountTimeout: 123_000,
  attacherRetryInterval: 1_000,
  kubeletRetryPeriod: 1_000,
  schedulerRetryPeriod: 1_000,
  controllerResyncPeriod: 1_000,
  podGcPeriod: 20_000,
  podGcQuarantine: 40_000,
});

/** The defaults with `overrides` applied; rejects negative or non-numeric durations. */
export function kubeConstants(overrides: Partial<KubeConstants> = {}): KubeConstants {
  const merged: KubeConstants = { ...defaultKubeConstants, ...overrides };
  for (const [key, value] of Object.entries(merged)) {
    if (key === "disableForceDetachOnTimeout") {
      if (typeof value !== "boolean") {
        throw new TypeError(`Expected a boolean for ${key}, got ${JSON.stringify(value)}`);
      }
    } else if (typeof value !== "number" || !(value >= 0)) {
      throw new RangeError(
        `Expected a non-negative number for ${key}, got ${JSON.stringify(value)}`,
      );
    }
  }
  return merged;
}

/** Runs of a periodic timer are at least this many real milliseconds apart. */
const minRealPeriodMs = 5;

/**
 * A simulated period as the clock should run it: never more often than every
 * few real milliseconds, so a sped-up clock does not turn a 100 ms loop into
 * a busy one (the work is driven by changes anyway; the period only bounds
 * how late a time-based step can be).
 */
export function periodFor(clock: SimClock, simMs: number): number {
  if (clock.virtual) return simMs;
  return Math.max(simMs, clock.scale * minRealPeriodMs);
}
