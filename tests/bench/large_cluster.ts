// Cluster contents for the scale benchmark (tests/bench/scale.ts): a small
// cluster (10 nodes, 100 pods) and a large one (5,000 nodes, 150,000 pods,
// 10,000 LINSTOR PersistentVolumes and VolumeAttachments), both around the
// agent tests' story (tests/agent/harness.ts seedCluster: node-a, node-b,
// node-c, PV pvc-1 used by the StatefulSet pod web-0 on node-b).
//
// The agent runs on node-a; ~30 pods are bound there, one of them a LINSTOR
// satellite. Objects are seeded with `server.createMany` (no admission, one
// resourceVersion and history entry each), so the large cluster takes
// seconds, not minutes.
//
// Run alone to time the seeding and a few requests:
//   node_modules/.bin/deno run -A tests/bench/large_cluster.ts

import { ApiServer, type KubeObject } from "../sim/apiserver/mod.ts";
import { seedCluster } from "../agent/harness.ts";

/** Size of a cluster to build. */
export interface ClusterSize {
  /** Nodes in total (node-a, node-b, node-c included). */
  nodes: number;
  /** Pods in total (web-0 and the satellites included). */
  pods: number;
  /** Pods bound to node-a. */
  podsOnNodeA: number;
  /** LINSTOR PersistentVolumes in total (pvc-1 included), each with one VolumeAttachment. */
  volumes: number;
  /** Nodes that run a LINSTOR satellite pod (node-a, node-b and node-c first). */
  satellites: number;
  /** Namespaces the workload pods are spread over. */
  namespaces: number;
}

/** 10 nodes, 100 pods. */
export const smallCluster: ClusterSize = {
  nodes: 10,
  pods: 100,
  podsOnNodeA: 10,
  volumes: 10,
  satellites: 10,
  namespaces: 3,
};

/** 5,000 nodes, 150,000 pods, 10,000 PVs and VolumeAttachments, 30 pods on node-a. */
export const largeCluster: ClusterSize = {
  nodes: 5_000,
  pods: 150_000,
  podsOnNodeA: 30,
  volumes: 10_000,
  satellites: 500,
  namespaces: 100,
};

/** The label the agent selects satellite pods by (its default `--satellite-pod-label`). */
export const satelliteLabel = { key: "app.kubernetes.io/component", value: "linstor-satellite" };
/** Namespace of the satellite pods. */
export const satelliteNamespace = "piraeus-datastore";

const created = "2026-01-01T00:00:00Z";

/** Name of node `i` (0: node-a, 1: node-b, 2: node-c, then node-00003...). */
export function nodeName(i: number): string {
  if (i < 3) return `node-${"abc"[i]}`;
  return `node-${String(i).padStart(5, "0")}`;
}

function node(i: number): KubeObject {
  const name = nodeName(i);
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": `zone-${i % 3}`,
      },
      annotations: { "node.alpha.kubernetes.io/ttl": "0" },
      creationTimestamp: created,
    },
    spec: { podCIDR: `10.${(i >> 8) & 255}.${i & 255}.0/24` },
    status: {
      capacity: { cpu: "16", memory: "65842856Ki", pods: "110" },
      allocatable: { cpu: "16", memory: "65740456Ki", pods: "110" },
      conditions: [
        { type: "MemoryPressure", status: "False", reason: "KubeletHasSufficientMemory" },
        { type: "DiskPressure", status: "False", reason: "KubeletHasNoDiskPressure" },
        { type: "PIDPressure", status: "False", reason: "KubeletHasSufficientPID" },
        {
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "kubelet is posting ready status",
          lastHeartbeatTime: created,
          lastTransitionTime: created,
        },
      ],
      addresses: [
        { type: "InternalIP", address: `192.168.${(i >> 8) & 255}.${i & 255}` },
        { type: "Hostname", address: name },
      ],
      nodeInfo: {
        kubeletVersion: "v1.32.4",
        containerRuntimeVersion: "containerd://1.7.24",
        kernelVersion: "6.1.0-28-amd64",
        osImage: "Debian GNU/Linux 12 (bookworm)",
        operatingSystem: "linux",
        architecture: "amd64",
      },
    },
  };
}

function podStatus(i: number): Record<string, unknown> {
  return {
    phase: "Running",
    conditions: [
      { type: "Initialized", status: "True", lastTransitionTime: created },
      { type: "Ready", status: "True", lastTransitionTime: created },
      { type: "ContainersReady", status: "True", lastTransitionTime: created },
      { type: "PodScheduled", status: "True", lastTransitionTime: created },
    ],
    hostIP: "192.168.0.1",
    podIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    podIPs: [{ ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }],
    startTime: created,
    qosClass: "Burstable",
    containerStatuses: [{
      name: "app",
      ready: true,
      started: true,
      restartCount: 0,
      image: "registry.example.com/app:1.0",
      imageID: "registry.example.com/app@sha256:0123456789abcdef",
      containerID: `containerd://${String(i).padStart(64, "0")}`,
      state: { running: { startedAt: created } },
    }],
  };
}

/** A Deployment-style workload pod, optionally using claim `claim`. */
function workloadPod(i: number, namespace: string, onNode: string, claim?: string): KubeObject {
  const app = `app-${i % 1000}`;
  const volumes: Record<string, unknown>[] = [{
    name: "kube-api-access",
    projected: {
      sources: [
        { serviceAccountToken: { expirationSeconds: 3607, path: "token" } },
        { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
      ],
    },
  }];
  if (claim !== undefined) {
    volumes.push({ name: "data", persistentVolumeClaim: { claimName: claim } });
  }
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${app}-${String(i).padStart(6, "0")}`,
      namespace,
      labels: { app, "pod-template-hash": "5d8f7c9b4" },
      ownerReferences: [{
        apiVersion: "apps/v1",
        kind: "ReplicaSet",
        name: `${app}-5d8f7c9b4`,
        uid: `00000000-0000-4000-8000-${String(i % 1000).padStart(12, "0")}`,
        controller: true,
        blockOwnerDeletion: true,
      }],
      creationTimestamp: created,
    },
    spec: {
      nodeName: onNode,
      schedulerName: "default-scheduler",
      serviceAccountName: "default",
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      containers: [{
        name: "app",
        image: "registry.example.com/app:1.0",
        ports: [{ containerPort: 8080, protocol: "TCP" }],
        resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "256Mi" } },
        volumeMounts: [{
          name: "kube-api-access",
          mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
          readOnly: true,
        }],
      }],
      volumes,
      tolerations: [
        {
          key: "node.kubernetes.io/not-ready",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
        {
          key: "node.kubernetes.io/unreachable",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
      ],
    },
    status: podStatus(i),
  };
}

function satellitePod(i: number, onNode: string): KubeObject {
  const pod = workloadPod(i, satelliteNamespace, onNode);
  pod.metadata.name = `linstor-satellite-${onNode}`;
  pod.metadata.labels = {
    [satelliteLabel.key]: satelliteLabel.value,
    "app.kubernetes.io/name": "piraeus-datastore",
  };
  pod.metadata.ownerReferences = [{
    apiVersion: "piraeus.io/v1",
    kind: "LinstorSatellite",
    name: onNode,
    uid: `00000000-0000-4000-9000-${String(i).padStart(12, "0")}`,
    controller: true,
  }];
  return pod;
}

function persistentVolume(i: number): KubeObject {
  const name = `pvc-${String(i).padStart(8, "0")}-0000-4000-8000-000000000000`;
  return {
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: {
      name,
      annotations: { "pv.kubernetes.io/provisioned-by": "linstor.csi.linbit.com" },
      finalizers: [
        "external-provisioner.volume.kubernetes.io/finalizer",
        "kubernetes.io/pv-protection",
      ],
      creationTimestamp: created,
    },
    spec: {
      accessModes: ["ReadWriteOnce"],
      capacity: { storage: "10Gi" },
      csi: {
        driver: "linstor.csi.linbit.com",
        volumeHandle: name,
        fsType: "ext4",
        volumeAttributes: { "linstor.csi.linbit.com/mount-options": "" },
      },
      claimRef: {
        kind: "PersistentVolumeClaim",
        apiVersion: "v1",
        namespace: `ns-${String(i % 100).padStart(3, "0")}`,
        name: `data-${i}`,
        uid: `00000000-0000-4000-a000-${String(i).padStart(12, "0")}`,
      },
      persistentVolumeReclaimPolicy: "Delete",
      storageClassName: "linstor-replicated",
      volumeMode: "Filesystem",
      nodeAffinity: {
        required: {
          nodeSelectorTerms: [{
            matchExpressions: [{
              key: "kubernetes.io/hostname",
              operator: "In",
              values: [nodeName(3 + (i % 4997)), nodeName(3 + ((i + 1) % 4997))],
            }],
          }],
        },
      },
    },
    status: { phase: "Bound" },
  };
}

function volumeAttachment(pv: KubeObject, onNode: string): KubeObject {
  const pvName = pv.metadata.name!;
  return {
    apiVersion: "storage.k8s.io/v1",
    kind: "VolumeAttachment",
    metadata: {
      name: `csi-${pvName}-${onNode}`,
      annotations: { "csi.alpha.kubernetes.io/node-id": onNode },
      finalizers: ["external-attacher/linstor-csi-linbit-com"],
      creationTimestamp: created,
    },
    spec: {
      attacher: "linstor.csi.linbit.com",
      nodeName: onNode,
      source: { persistentVolumeName: pvName },
    },
    status: { attached: true },
  };
}

/** What {@linkcode buildCluster} made. */
export interface BuiltCluster {
  /** Objects stored (seedCluster's included). */
  objects: number;
  /** Time it took, ms. */
  seedMs: number;
  /** Names (`namespace/name`) of the pods bound to node-a. */
  podsOnNodeA: string[];
}

/**
 * Seeds `server` (fresh, from `ApiServer.start`) with a cluster of `size`:
 * seedCluster's story, then the rest in bulk. Pods on node-a use PVs bound
 * there; every PV has one VolumeAttachment (a few on node-a).
 */
export function buildCluster(server: ApiServer, size: ClusterSize): BuiltCluster {
  const started = performance.now();
  seedCluster(server); // node-a..c, pvc-1 (PVC, PV, VA on node-b), web-0 on node-b
  const objects: KubeObject[] = [];
  for (let i = 3; i < size.nodes; i++) objects.push(node(i));
  const pvs: KubeObject[] = [];
  for (let i = 1; i < size.volumes; i++) pvs.push(persistentVolume(i));
  objects.push(...pvs);
  pvs.forEach((pv, i) => {
    // A few attached to node-a, the rest spread over the other nodes.
    const onNode = i < 5 ? "node-a" : nodeName(1 + (i % (size.nodes - 1)));
    objects.push(volumeAttachment(pv, onNode));
  });
  const podsOnNodeA: string[] = [];
  let pods = 1; // web-0
  for (let s = 0; s < size.satellites && s < size.nodes; s++, pods++) {
    const pod = satellitePod(s, nodeName(s));
    if (s === 0) podsOnNodeA.push(`${satelliteNamespace}/${pod.metadata.name}`);
    objects.push(pod);
  }
  const namespaces = Array.from(
    { length: size.namespaces },
    (_, i) => `ns-${String(i).padStart(3, "0")}`,
  );
  // Workload pods: the first ones on node-a (those after the first five
  // also use a claim), the rest round-robin over the other nodes.
  const onA = size.podsOnNodeA - 1; // the satellite is one of them
  for (let i = 0; pods < size.pods; i++, pods++) {
    const namespace = namespaces[i % namespaces.length];
    const onNode = i < onA ? "node-a" : nodeName(1 + (i % (size.nodes - 1)));
    const pod = workloadPod(i, namespace, onNode, i < onA && i >= 5 ? `data-${i}` : undefined);
    if (onNode === "node-a") podsOnNodeA.push(`${namespace}/${pod.metadata.name}`);
    objects.push(pod);
  }
  const count = objects.length;
  server.createMany(objects);
  return {
    objects: count + 6,
    seedMs: performance.now() - started,
    podsOnNodeA,
  };
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

if (import.meta.main) {
  const server = await ApiServer.start({ tls: true });
  if (Deno.args.includes("--serve")) {
    // Keep the large cluster up for experiments (a client of its own, kubectl).
    const built = buildCluster(server, largeCluster);
    console.log(`seeded ${built.objects} objects; KUBECONFIG=${server.kubeconfigPath}`);
    await new Promise(() => {});
  }
  try {
    const before = Deno.memoryUsage();
    const built = buildCluster(server, largeCluster);
    const after = Deno.memoryUsage();
    console.log(
      `seeded ${built.objects} objects in ${built.seedMs.toFixed(0)} ms; ` +
        `test process RSS ${mib(before.rss)} -> ${mib(after.rss)}, heap used ${
          mib(after.heapUsed)
        }`,
    );
    const client = Deno.createHttpClient({ caCerts: [server.caPem!] });
    const get = async (path: string) => {
      const t = performance.now();
      const response = await fetch(`${server.url}${path}`, {
        client,
        headers: { authorization: `Bearer ${server.token}` },
      });
      const text = await response.text();
      return { ms: performance.now() - t, bytes: text.length, body: JSON.parse(text) };
    };
    for (
      const path of [
        "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=500",
        "/api/v1/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dlinstor-satellite&limit=500",
        "/api/v1/nodes?fieldSelector=metadata.name%3Dnode-a&limit=500",
        "/api/v1/persistentvolumes?limit=500",
        "/api/v1/pods?limit=500",
      ]
    ) {
      const r = await get(path);
      console.log(
        `GET ${path}: ${r.body.items.length} items, ${r.bytes} bytes, ${r.ms.toFixed(0)} ms` +
          (r.body.metadata.continue ? " (more pages)" : ""),
      );
    }
    client.close();
  } finally {
    await server.close();
  }
}
