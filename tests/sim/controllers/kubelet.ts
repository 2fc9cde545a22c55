/**
 * A simulated kubelet for one node.
 *
 * While alive it renews the node Lease every 10 s, posts the node status
 * (Ready, and `volumesInUse`) when it changes or every 5 min, and runs the
 * pods bound to its node: a pod starts once every CSI volume of the pod is
 * attached to this node (its VolumeAttachment has `status.attached: true`);
 * LINSTOR volumes are then opened on the DRBD side, and the pod becomes
 * Running and Ready. A pod marked for deletion is stopped: its DRBD devices
 * are closed (unmount) and only when every close succeeded does the kubelet
 * confirm the deletion (`DELETE` with grace 0 and the pod's UID as
 * precondition). With I/O frozen, a close hangs and the pod stays
 * Terminating; the kubelet retries.
 *
 * `crash()` stops everything the kubelet does, as a dead node: no
 * heartbeats, no status, no confirmations. What it had open stays open (the
 * DRBD side decides what a crash means for the devices); `restore()` resumes.
 *
 * @module
 */

import type { KubeObject } from "../apiserver/objects.ts";
import { isRecord, microTime, pathList, pathString, rfc3339 } from "../apiserver/objects.ts";
import type { DrbdHooks } from "../drbd_hooks.ts";
import type { Cluster } from "./cluster.ts";
import type { KubeConstants } from "./constants.ts";
import { periodFor } from "./constants.ts";
import { EventRecorder, referenceTo } from "./events.ts";
import type { Condition } from "./kube_util.ts";
import {
  attachmentName,
  conditionOf,
  conditionsOf,
  csiSource,
  drbdResourceOf,
  isFinished,
  isTerminating,
  podClaims,
  uniqueVolumeName,
} from "./kube_util.ts";
import { Runner } from "./runner.ts";

/** A pod this kubelet started (or is starting). */
interface PodRun {
  namespace: string;
  name: string;
  /** DRBD resources opened for it, not yet closed. */
  opened: string[];
  /** CSI unique volume names it uses (for `volumesInUse`). */
  volumes: string[];
  /** Whether all volumes were opened and the containers started. */
  started: boolean;
}

/** What a pod needs before it can start on this node. */
interface PodVolumes {
  /** Volume names not yet attached here (or whose claim is not bound). */
  unattached: string[];
  /** LINSTOR resources to open. */
  resources: string[];
  /** CSI unique volume names. */
  volumes: string[];
}

const nodeLeaseNamespace = "kube-node-lease";

const pressureConditions: { type: string; reason: string; message: string }[] = [
  {
    type: "MemoryPressure",
    reason: "KubeletHasSufficientMemory",
    message: "kubelet has sufficient memory available",
  },
  {
    type: "DiskPressure",
    reason: "KubeletHasNoDiskPressure",
    message: "kubelet has no disk pressure",
  },
  {
    type: "PIDPressure",
    reason: "KubeletHasSufficientPID",
    message: "kubelet has sufficient PID available",
  },
];

/** Options of {@link Kubelet}. */
export interface KubeletOptions {
  /** The node this kubelet runs on. */
  node: string;
  /** Position of the node (0, 1, ...), used for its addresses. */
  index: number;
  /** Labels the kubelet registers its Node with (besides hostname and os). */
  labels?: Record<string, string>;
  /** The DRBD side. */
  drbd: DrbdHooks;
  /** Timing. */
  constants: KubeConstants;
}

/** One node's kubelet. */
export class Kubelet {
  /** The node name. */
  readonly node: string;
  /** Its pod loop (kicked on changes, retried on `kubeletRetryPeriod`). */
  readonly runner: Runner;
  #cluster: Cluster;
  #drbd: DrbdHooks;
  #constants: KubeConstants;
  #index: number;
  #labels: Record<string, string>;
  #recorder: EventRecorder;
  #alive = true;
  #started = false;
  #runs = new Map<string, PodRun>();
  #waitingSince = new Map<string, number>();
  #mountErrors = new Map<string, string>();
  #killing = new Set<string>();
  #hanging = new Set<string>();
  #lastStatusPost = -Infinity;
  #postStatusNow = true;
  #ipCounter = 0;
  #stopLease: (() => void) | undefined;

  /** A stopped kubelet; {@link Kubelet.start} registers the node and starts it. */
  constructor(cluster: Cluster, options: KubeletOptions) {
    this.#cluster = cluster;
    this.node = options.node;
    this.#index = options.index;
    this.#labels = options.labels ?? {};
    this.#drbd = options.drbd;
    this.#constants = options.constants;
    this.#recorder = new EventRecorder(cluster, { component: "kubelet", host: options.node });
    this.runner = new Runner(cluster, {
      name: this.#component,
      periodMs: options.constants.kubeletRetryPeriod,
      run: () => this.#sync(),
    });
  }

  get #component(): string {
    return `kubelet/${this.node}`;
  }

  /** Whether the kubelet is running (not crashed). */
  get alive(): boolean {
    return this.#alive;
  }

  /** DRBD resources this kubelet holds open, for all its pods (sorted, with repeats). */
  get openResources(): string[] {
    return [...this.#runs.values()].flatMap((r) => r.opened).sort();
  }

  /** Registers the Node (when missing), creates the Lease and starts the loops. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    if (this.#cluster.get("nodes", { name: this.node }) === undefined) this.#register();
    const clock = this.#cluster.clock;
    this.#stopLease = clock.every(
      periodFor(clock, this.#constants.nodeLeaseRenewInterval),
      () => this.#renewLease(),
    );
    this.#renewLease();
    this.runner.start();
  }

  /** Stops the loops (the node simply stays as it is). */
  stop(): void {
    this.#started = false;
    this.#stopLease?.();
    this.#stopLease = undefined;
    this.runner.stop();
  }

  /** The node dies for Kubernetes: no heartbeats, no status, no pod handling. */
  crash(): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#cluster.note(this.#component, "crashed");
  }

  /**
   * The node comes back: heartbeat and status at once, then the usual loops.
   * `rebooted`: the containers died with the node, so the kubelet forgets
   * what it had started and open (the DRBD side resets its own state) and
   * starts the pods still bound to it afresh.
   */
  restore(options: { rebooted?: boolean } = {}): void {
    if (this.#alive) return;
    this.#alive = true;
    if (options.rebooted) {
      this.#runs.clear();
      this.#killing.clear();
      this.#hanging.clear();
    }
    this.#postStatusNow = true;
    this.#cluster.note(this.#component, "restored");
    this.#renewLease();
    this.runner.kick();
  }

  // ------------------------------------------------------------- node

  #register(): void {
    const now = new Date(this.#cluster.now());
    const node: KubeObject = {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name: this.node,
        labels: {
          "kubernetes.io/hostname": this.node,
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64",
          ...this.#labels,
        },
        annotations: { "volumes.kubernetes.io/controller-managed-attach-detach": "true" },
      },
      spec: { podCIDR: `10.244.${this.#index}.0/24`, podCIDRs: [`10.244.${this.#index}.0/24`] },
      status: {
        addresses: [
          { type: "InternalIP", address: this.#hostIp },
          { type: "Hostname", address: this.node },
        ],
        capacity: { cpu: "4", memory: "8Gi", pods: "110" },
        allocatable: { cpu: "4", memory: "8Gi", pods: "110" },
        conditions: this.#wantedConditions([], rfc3339(now)),
        nodeInfo: {
          kubeletVersion: "v1.32.0",
          kubeProxyVersion: "v1.32.0",
          containerRuntimeVersion: "containerd://1.7.24",
          operatingSystem: "linux",
          architecture: "amd64",
          osImage: "Simulated Linux",
          kernelVersion: "6.1.0",
        },
      },
    };
    this.#cluster.create(this.#component, "nodes", node);
  }

  get #hostIp(): string {
    return `192.168.0.${10 + this.#index}`;
  }

  #renewLease(): void {
    if (!this.#alive || !this.#started) return;
    const renewTime = microTime(new Date(this.#cluster.now()));
    const ref = { namespace: nodeLeaseNamespace, name: this.node };
    const lease = this.#cluster.get("leases", ref);
    if (lease === undefined) {
      const node = this.#cluster.get("nodes", { name: this.node });
      const ownerReferences = node === undefined ? [] : [{
        apiVersion: "v1",
        kind: "Node",
        name: this.node,
        uid: node.metadata.uid,
      }];
      this.#cluster.create(this.#component, "leases", {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { ...ref, ownerReferences },
        spec: {
          holderIdentity: this.node,
          leaseDurationSeconds: this.#constants.nodeLeaseDurationSeconds,
          renewTime,
        },
      });
      return;
    }
    const next = structuredClone(lease);
    next.spec = { ...(next.spec as Record<string, unknown> ?? {}), renewTime };
    this.#cluster.update(this.#component, "leases", next);
  }

  /** The conditions the kubelet posts, keeping transition times that did not change. */
  #wantedConditions(current: Condition[], now: string): Condition[] {
    const keep = (type: string, status: string) => {
      const c = current.find((x) => x.type === type);
      return c !== undefined && c.status === status && c.lastTransitionTime !== undefined
        ? c.lastTransitionTime
        : now;
    };
    const out: Condition[] = pressureConditions.map((p) => ({
      type: p.type,
      status: "False",
      reason: p.reason,
      message: p.message,
      lastHeartbeatTime: now,
      lastTransitionTime: keep(p.type, "False"),
    }));
    out.push({
      type: "Ready",
      status: "True",
      reason: "KubeletReady",
      message: "kubelet is posting ready status",
      lastHeartbeatTime: now,
      lastTransitionTime: keep("Ready", "True"),
    });
    return out;
  }

  #postNodeStatus(volumesInUse: string[]): void {
    const node = this.#cluster.get("nodes", { name: this.node });
    if (node === undefined) return;
    const now = this.#cluster.now();
    const current = conditionsOf(node);
    const conditionsOk = conditionOf(node, "Ready")?.status === "True" &&
      pressureConditions.every((p) => conditionOf(node, p.type)?.status === "False");
    const inUse = pathList(node, "status.volumesInUse").map(String).sort();
    const inUseOk = JSON.stringify(inUse) === JSON.stringify(volumesInUse);
    const due = now - this.#lastStatusPost >= this.#constants.nodeStatusReportFrequency;
    if (conditionsOk && inUseOk && !due && !this.#postStatusNow) return;
    const wasReady = conditionOf(node, "Ready")?.status === "True";
    const next = structuredClone(node);
    const status = (next.status ?? {}) as Record<string, unknown>;
    const others = current.filter((c) =>
      c.type !== "Ready" && !pressureConditions.some((p) => p.type === c.type)
    );
    status.conditions = [...others, ...this.#wantedConditions(current, rfc3339(new Date(now)))];
    if (volumesInUse.length > 0) status.volumesInUse = volumesInUse;
    else delete status.volumesInUse;
    next.status = status;
    if (this.#cluster.update(this.#component, "nodes", next, { subresource: "status" })) {
      this.#lastStatusPost = now;
      this.#postStatusNow = false;
      if (!wasReady) {
        this.#recorder.event(referenceTo(node, "Node"), {
          type: "Normal",
          reason: "NodeReady",
          message: `Node ${this.node} status is now: NodeReady`,
        });
      }
    }
  }

  // ------------------------------------------------------------- pods

  #sync(): void {
    if (!this.#alive) return;
    const now = this.#cluster.now();
    const pods = this.#cluster.list("pods").filter((p) =>
      pathString(p, "spec.nodeName") === this.node
    );
    const byUid = new Map(pods.map((p) => [p.metadata.uid!, p]));
    // pods removed from the API while running here (force deleted): stop them
    for (const [uid, run] of [...this.#runs]) {
      if (byUid.has(uid)) continue;
      if (this.#stopPod(uid, run)) this.#runs.delete(uid);
    }
    const inUse = new Set<string>();
    let nextWake = Infinity;
    for (const pod of pods) {
      const uid = pod.metadata.uid!;
      if (isTerminating(pod)) {
        this.#terminate(pod);
        continue;
      }
      if (isFinished(pod)) continue;
      const needs = this.#volumesOf(pod);
      for (const v of needs.volumes) inUse.add(v);
      const run = this.#runs.get(uid);
      if (run?.started) {
        this.#keepRunningStatus(pod);
        continue;
      }
      const wake = this.#start(pod, needs, now);
      nextWake = Math.min(nextWake, wake);
    }
    for (const uid of [...this.#waitingSince.keys()]) {
      if (!byUid.has(uid)) this.#waitingSince.delete(uid);
    }
    for (const uid of [...this.#mountErrors.keys()]) {
      if (!byUid.has(uid)) this.#mountErrors.delete(uid);
    }
    for (const run of this.#runs.values()) {
      if (run.opened.length > 0) { for (const v of run.volumes) inUse.add(v); }
    }
    this.#postNodeStatus([...inUse].sort());
    if (nextWake !== Infinity) this.runner.wakeAt(nextWake);
  }

  #volumesOf(pod: KubeObject): PodVolumes {
    const out: PodVolumes = { unattached: [], resources: [], volumes: [] };
    const namespace = pod.metadata.namespace;
    const node = this.#cluster.get("nodes", { name: this.node });
    const attached = node === undefined ? [] : pathList(node, "status.volumesAttached")
      .filter(isRecord)
      .map((v) => String(v.name ?? ""));
    for (const { volume, claim } of podClaims(pod)) {
      const pvc = this.#cluster.get("persistentvolumeclaims", { namespace, name: claim });
      const pvName = pvc === undefined ? "" : pathString(pvc, "spec.volumeName");
      if (pvc === undefined || pvName === "" || pathString(pvc, "status.phase") !== "Bound") {
        out.unattached.push(volume);
        continue;
      }
      const pv = this.#cluster.get("persistentvolumes", { name: pvName });
      if (pv === undefined) {
        out.unattached.push(volume);
        continue;
      }
      const csi = csiSource(pv);
      if (csi === undefined) continue;
      const unique = uniqueVolumeName(csi);
      out.volumes.push(unique);
      // as with controller-managed attach: reported in node status by the
      // attach-detach controller, and the VolumeAttachment says attached
      const va = this.#cluster.get("volumeattachments", { name: attachmentName(csi, this.node) });
      if (
        !attached.includes(unique) || va === undefined ||
        pathString(va, "status.attached") !== "true"
      ) {
        out.unattached.push(volume);
        continue;
      }
      const resource = drbdResourceOf(pv);
      if (resource !== undefined) out.resources.push(resource);
    }
    return out;
  }

  /** Tries to start a pod; returns when to look again for the mount timeout (or Infinity). */
  #start(pod: KubeObject, needs: PodVolumes, now: number): number {
    const uid = pod.metadata.uid!;
    if (needs.unattached.length > 0) {
      this.#showCreating(pod);
      let since = this.#waitingSince.get(uid);
      if (since === undefined) {
        since = now;
        this.#waitingSince.set(uid, since);
      }
      const timeout = this.#constants.volumeMountTimeout;
      if (now - since >= timeout) {
        const list = needs.unattached.join(" ");
        this.#recorder.event(referenceTo(pod, "Pod"), {
          type: "Warning",
          reason: "FailedMount",
          message: `Unable to attach or mount volumes: unmounted volumes=[${list}], ` +
            `unattached volumes=[${list}], failed to process volumes=[]: ` +
            "timed out waiting for the condition",
        });
        since = now;
        this.#waitingSince.set(uid, since);
      }
      return since + timeout;
    }
    this.#waitingSince.delete(uid);
    let run = this.#runs.get(uid);
    if (run === undefined) {
      run = {
        namespace: pod.metadata.namespace!,
        name: pod.metadata.name!,
        opened: [],
        volumes: needs.volumes,
        started: false,
      };
      this.#runs.set(uid, run);
    }
    const toOpen = [...needs.resources];
    for (const r of run.opened) {
      const i = toOpen.indexOf(r);
      if (i >= 0) toOpen.splice(i, 1);
    }
    for (const resource of toOpen) {
      const result = this.#drbd.open(this.node, resource);
      if (!result.ok) {
        this.#showCreating(pod);
        const message = `MountVolume.SetUp failed for volume "${resource}" : ${result.error}`;
        if (this.#mountErrors.get(uid) !== message) {
          this.#mountErrors.set(uid, message);
          this.#recorder.event(referenceTo(pod, "Pod"), {
            type: "Warning",
            reason: "FailedMount",
            message,
          });
        }
        return Infinity;
      }
      run.opened.push(resource);
    }
    this.#mountErrors.delete(uid);
    run.started = true;
    const stored = this.#writeStatus(pod, true);
    const ref = stored ?? pod;
    for (const c of containerNames(pod)) {
      const fieldPath = `spec.containers{${c.name}}`;
      const target = referenceTo(ref, "Pod", { fieldPath });
      this.#recorder.event(target, {
        type: "Normal",
        reason: "Pulled",
        message: `Container image "${c.image}" already present on machine`,
      });
      this.#recorder.event(target, {
        type: "Normal",
        reason: "Created",
        message: `Created container: ${c.name}`,
      });
      this.#recorder.event(target, {
        type: "Normal",
        reason: "Started",
        message: `Started container ${c.name}`,
      });
    }
    this.#cluster.note(this.#component, `started pod ${run.namespace}/${run.name}`);
    return Infinity;
  }

  /** Writes the pod status: Running and Ready, or Pending with containers being created. */
  #writeStatus(pod: KubeObject, running: boolean): KubeObject | undefined {
    const nowText = rfc3339(new Date(this.#cluster.now()));
    const existing = conditionsOf(pod);
    const names = containerNames(pod);
    const condition = (type: string, status: boolean, extra: Partial<Condition> = {}) => {
      const wanted = status ? "True" : "False";
      const c = existing.find((x) => x.type === type);
      const lastTransitionTime = c?.status === wanted && c.lastTransitionTime !== undefined
        ? c.lastTransitionTime
        : nowText;
      return { type, status: wanted, lastProbeTime: null, lastTransitionTime, ...extra };
    };
    const notReady = {
      reason: "ContainersNotReady",
      message: `containers with unready status: [${names.map((c) => c.name).join(" ")}]`,
    };
    const conditions = [
      condition("PodReadyToStartContainers", running),
      condition("Initialized", true),
      condition("Ready", running, running ? {} : notReady),
      condition("ContainersReady", running, running ? {} : notReady),
      condition("PodScheduled", true),
    ];
    const others = existing.filter((c) => !conditions.some((x) => x.type === c.type));
    const previous = isRecord(pod.status) ? pod.status : {};
    const startTime = typeof previous.startTime === "string" ? previous.startTime : nowText;
    const startedAt = (name: string) => {
      const before = pathList(pod, "status.containerStatuses").filter(isRecord)
        .find((c) => c.name === name);
      return before === undefined ? "" : pathString(before, "state.running.startedAt");
    };
    const containerStatuses = names.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: running ? `${c.image}@sha256:${"0".repeat(64)}` : "",
      ...(running ? { containerID: `containerd://${pod.metadata.uid!.replaceAll("-", "")}` } : {}),
      ready: running,
      started: running,
      restartCount: 0,
      state: running
        ? { running: { startedAt: startedAt(c.name) || nowText } }
        : { waiting: { reason: "ContainerCreating" } },
    }));
    const next = structuredClone(pod);
    const status: Record<string, unknown> = {
      ...previous,
      phase: running ? "Running" : "Pending",
      conditions: [...others, ...conditions],
      hostIP: this.#hostIp,
      hostIPs: [{ ip: this.#hostIp }],
      startTime,
      containerStatuses,
      qosClass: previous.qosClass ?? "BestEffort",
    };
    if (running) {
      const podIp = typeof previous.podIP === "string" && previous.podIP !== ""
        ? previous.podIP
        : this.#nextPodIp();
      status.podIP = podIp;
      status.podIPs = [{ ip: podIp }];
    }
    next.status = status;
    return this.#cluster.update(this.#component, "pods", next, { subresource: "status" });
  }

  /** Shows a pod that waits for its volumes as ContainerCreating (once). */
  #showCreating(pod: KubeObject): void {
    const statuses = pathList(pod, "status.containerStatuses").filter(isRecord);
    const creating = statuses.length > 0 &&
      statuses.every((c) => pathString(c, "state.waiting.reason") === "ContainerCreating");
    if (!creating) this.#writeStatus(pod, false);
  }

  #nextPodIp(): string {
    this.#ipCounter += 1;
    return `10.244.${this.#index}.${(this.#ipCounter % 250) + 2}`;
  }

  /** A running pod whose status says otherwise (the node controller marked it) gets it back. */
  #keepRunningStatus(pod: KubeObject): void {
    const ready = conditionOf(pod, "Ready")?.status === "True";
    if (ready && pathString(pod, "status.phase") === "Running") return;
    this.#writeStatus(pod, true);
  }

  /** Stops a pod marked for deletion and confirms the deletion once its devices are closed. */
  #terminate(pod: KubeObject): void {
    const uid = pod.metadata.uid!;
    const run = this.#runs.get(uid);
    if (run !== undefined && !this.#killing.has(uid)) {
      this.#killing.add(uid);
      for (const c of containerNames(pod)) {
        this.#recorder.event(
          referenceTo(pod, "Pod", { fieldPath: `spec.containers{${c.name}}` }),
          { type: "Normal", reason: "Killing", message: `Stopping container ${c.name}` },
        );
      }
    }
    if (run !== undefined) {
      if (!this.#stopPod(uid, run)) return;
      this.#runs.delete(uid);
    }
    this.#killing.delete(uid);
    const ref = { namespace: pod.metadata.namespace, name: pod.metadata.name! };
    const result = this.#cluster.delete(this.#component, "pods", ref, {
      gracePeriodSeconds: 0,
      preconditions: { uid },
    });
    if (result !== undefined) {
      this.#cluster.note(this.#component, `confirmed deletion of pod ${ref.namespace}/${ref.name}`);
    }
  }

  /** Closes a pod's devices; false while some close hangs (I/O frozen). */
  #stopPod(uid: string, run: PodRun): boolean {
    const stillOpen: string[] = [];
    for (const resource of run.opened) {
      if (!this.#drbd.close(this.node, resource)) stillOpen.push(resource);
    }
    run.opened = stillOpen;
    run.started = false;
    if (stillOpen.length > 0) {
      if (!this.#hanging.has(uid)) {
        this.#hanging.add(uid);
        this.#cluster.note(
          this.#component,
          `unmount of ${
            stillOpen.join(", ")
          } for pod ${run.namespace}/${run.name} hangs: I/O frozen`,
        );
      }
      return false;
    }
    this.#hanging.delete(uid);
    return true;
  }
}

function containerNames(pod: KubeObject): { name: string; image: string }[] {
  return pathList(pod, "spec.containers").filter(isRecord).map((c) => ({
    name: String(c.name ?? ""),
    image: String(c.image ?? ""),
  }));
}
