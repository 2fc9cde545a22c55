/**
 * The agent's options, as parsed from the command line by `lib/cli.ts`.
 * Durations are milliseconds.
 *
 * @module
 */

/** Log output format. */
export type LogFormat = "text" | "json";

/** Everything the agent can be told on its command line. */
export interface Options {
  /** Kubernetes node this agent runs on (default: env NODE_NAME). */
  nodeName: string;
  /** Path of a kubeconfig file (--kubeconfig); empty means the lookup of lib/kube/client.ts. */
  kubeconfig: string;
  /** Full DRBD resync period (fresh `events2 --now` and `show --json`). */
  drbdStatusInterval: number;
  /** How long a fail-over condition must last before the agent acts. */
  failOverTimeout: number;
  /** Grace period for evictions of pods on a Ready node. */
  gracePeriodSeconds: number;
  /** Bound on each action, and the window in which an action is not repeated. */
  operationsTimeout: number;
  /** Maximum time between two decision cycles. */
  reconcileInterval: number;
  /** Timeout of a single Kubernetes API request (watches excepted); 0 means `operationsTimeout`. */
  requestTimeout: number;
  /** Period of a full relist of every watched kind. */
  resyncInterval: number;
  /** Log verbosity: 0 info, 1 and more debug. */
  v: number;
  /** Never add or remove node taints. */
  disableNodeTaints: boolean;
  /** Also fail over pods with volumes that are not known to be safe (e.g. hostPath). */
  failOverUnsafePods: boolean;
  /**
   * Also taint a lost node whose kubelet is dead `node.kubernetes.io/out-of-service`
   * (value `ha-controller`), so the attach-detach controller detaches every
   * volume there at once instead of at its next sync; removed by the node's
   * own agent once its DRBD resources have quorum again.
   */
  outOfServiceTaint: boolean;
  /** Label selector of LINSTOR satellite pods, to map DRBD connection names to nodes. */
  satellitePodLabel: string;
  /** Address of the /healthz and /metrics server; empty disables it. */
  healthBindAddress: string;
  /** Read and decide, print intended actions, write nothing. */
  dryRun: boolean;
  /** Log format. */
  logFormat: LogFormat;
}

/** The defaults (the seed's, where the seed had the flag). */
export const defaultOptions: Options = {
  nodeName: "",
  kubeconfig: "",
  drbdStatusInterval: 5_000,
  failOverTimeout: 5_000,
  gracePeriodSeconds: 10,
  operationsTimeout: 60_000,
  reconcileInterval: 5_000,
  requestTimeout: 0,
  resyncInterval: 300_000,
  v: 0,
  disableNodeTaints: false,
  failOverUnsafePods: false,
  outOfServiceTaint: false,
  satellitePodLabel: "app.kubernetes.io/component=linstor-satellite",
  healthBindAddress: ":8000",
  dryRun: false,
  logFormat: "text",
};
