/**
 * Test equipment for the simulated controllers: a cluster (API server,
 * clock, stub DRBD, controllers) in one call, object builders for LINSTOR
 * volumes and StatefulSets, and waits in simulated time.
 *
 * @module
 */

import { SimClock } from "../clock.ts";
import { ApiServer } from "../apiserver/mod.ts";
import type { KubeObject } from "../apiserver/objects.ts";
import { pathString } from "../apiserver/objects.ts";
import { waitFor } from "../apiserver/testing.ts";
import type { KubeConstants } from "./constants.ts";
import { linstorDriver } from "./kube_util.ts";
import type { NodeDefinition } from "./mod.ts";
import { Controllers } from "./mod.ts";
import { StubDrbd } from "./stub_drbd.ts";
import type { Provisioner } from "./volume_binder.ts";

/** A running simulated cluster for a test. */
export interface TestCluster {
  /** The clock. */
  clock: SimClock;
  /** The API server. */
  server: ApiServer;
  /** The stub DRBD side. */
  drbd: StubDrbd;
  /** The controllers and kubelets. */
  controllers: Controllers;
  /** Stops everything; throws when a controller hit an unexpected exception. */
  close(): Promise<void>;
}

/** Starts an API server, a stub DRBD and the controllers on a fast clock (default scale 300). */
export async function startTestCluster(
  options: {
    nodes?: NodeDefinition[];
    scale?: number;
    constants?: Partial<KubeConstants>;
    provisioner?: Provisioner;
  } = {},
): Promise<TestCluster> {
  const clock = new SimClock({ scale: options.scale ?? 300 });
  const server = await ApiServer.start({ now: () => clock.date() });
  const drbd = new StubDrbd();
  const controllers = new Controllers({
    clock,
    server,
    drbd,
    nodes: options.nodes ?? ["node-a", "node-b", "node-c"],
    constants: options.constants,
    provisioner: options.provisioner,
  });
  controllers.start();
  return {
    clock,
    server,
    drbd,
    controllers,
    close: async () => {
      controllers.stop();
      clock.stop();
      await server.close();
      if (controllers.errors.length > 0) {
        throw new Error(`Expected no controller errors, got: ${String(controllers.errors[0])}`);
      }
    },
  };
}

/** Waits (real time, default 10 s) until `condition` holds. */
export function until(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  return waitFor(condition, { what, timeoutMs });
}

/** Lets `simMs` of simulated time pass. */
export function simulatedTime(clock: SimClock, simMs: number): Promise<void> {
  const target = clock.now() + simMs;
  return waitFor(() => clock.now() >= target, {
    what: `${simMs} ms of simulated time`,
    timeoutMs: clock.real(simMs) + 5_000,
  });
}

/** A LINSTOR CSI PV (RWO, handle = name), optionally pre-bound and limited to some nodes. */
export function linstorPv(
  name: string,
  options: { claim?: { namespace: string; name: string }; nodes?: string[] } = {},
): KubeObject {
  const spec: Record<string, unknown> = {
    capacity: { storage: "1Gi" },
    accessModes: ["ReadWriteOnce"],
    persistentVolumeReclaimPolicy: "Delete",
    storageClassName: "linstor",
    csi: { driver: linstorDriver, volumeHandle: name, fsType: "ext4" },
  };
  if (options.claim !== undefined) {
    spec.claimRef = { kind: "PersistentVolumeClaim", apiVersion: "v1", ...options.claim };
  }
  if (options.nodes !== undefined) {
    spec.nodeAffinity = {
      required: {
        nodeSelectorTerms: [{
          matchExpressions: [{
            key: "kubernetes.io/hostname",
            operator: "In",
            values: options.nodes,
          }],
        }],
      },
    };
  }
  return { apiVersion: "v1", kind: "PersistentVolume", metadata: { name }, spec };
}

/** A PVC of class `linstor` (RWO, 1Gi). */
export function claim(name: string, namespace = "default"): KubeObject {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name, namespace },
    spec: {
      accessModes: ["ReadWriteOnce"],
      storageClassName: "linstor",
      resources: { requests: { storage: "1Gi" } },
    },
  };
}

/** A pod with one container, optionally using a claim and bound to a node. */
export function pod(
  name: string,
  options: {
    namespace?: string;
    claim?: string;
    nodeName?: string;
    tolerations?: Record<string, unknown>[];
  } = {},
): KubeObject {
  const spec: Record<string, unknown> = {
    containers: [{ name: "app", image: "registry.example/app:1" }],
  };
  if (options.claim !== undefined) {
    spec.volumes = [{ name: "data", persistentVolumeClaim: { claimName: options.claim } }];
  }
  if (options.nodeName !== undefined) spec.nodeName = options.nodeName;
  if (options.tolerations !== undefined) spec.tolerations = options.tolerations;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: options.namespace ?? "default" },
    spec,
  };
}

/** A StatefulSet with one container and a `data` claim template of class `linstor`. */
export function statefulSet(
  name: string,
  options: { replicas?: number; annotations?: Record<string, string> } = {},
): KubeObject {
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name, namespace: "default" },
    spec: {
      replicas: options.replicas ?? 1,
      serviceName: name,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: options.annotations },
        spec: { containers: [{ name: "app", image: "registry.example/app:1" }] },
      },
      volumeClaimTemplates: [{
        metadata: { name: "data" },
        spec: {
          accessModes: ["ReadWriteOnce"],
          storageClassName: "linstor",
          resources: { requests: { storage: "1Gi" } },
        },
      }],
    },
  };
}

/** A Deployment with one container using the claim `claim` (made separately, see {@linkcode claim}). */
export function deployment(
  name: string,
  options: { claim: string; replicas?: number; annotations?: Record<string, string> },
): KubeObject {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: "default" },
    spec: {
      replicas: options.replicas ?? 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: options.annotations },
        spec: {
          containers: [{ name: "app", image: "registry.example/app:1" }],
          volumes: [{ name: "data", persistentVolumeClaim: { claimName: options.claim } }],
        },
      },
    },
  };
}

/** Core Events with `reason` about the object named `name` (any kind). */
export function eventsAbout(server: ApiServer, name: string, reason: string): KubeObject[] {
  return server.list("events").filter((e) =>
    pathString(e, "involvedObject.name") === name && pathString(e, "reason") === reason
  );
}

/** Whether the pod is Running with its Ready condition True. */
export function isRunningAndReady(pod: KubeObject | undefined): boolean {
  if (pod === undefined || pathString(pod, "status.phase") !== "Running") return false;
  const conditions = (pod.status as { conditions?: { type: string; status: string }[] })
    .conditions ?? [];
  return conditions.some((c) => c.type === "Ready" && c.status === "True");
}
