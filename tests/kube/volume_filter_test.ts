// The volume caches hold what this node's DRBD resources need (lib/kube/mod.ts
// KubeCaches): the PVs of local resources in full, other Bound PVs
// claim-only, LINSTOR VolumeAttachments of local PVs only; a resource named
// for the first time makes both list again, unsynced until they did.

import assert from "node:assert/strict";
import { ApiServer, type KubeObject } from "../sim/apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { KubeCaches } from "../../lib/kube/mod.ts";
import { deadline, waitFor } from "../helpers.ts";

const linstor = "linstor.csi.linbit.com";

function pv(
  name: string,
  opts: { handle?: string; driver?: string; phase?: string; claim?: string } = {},
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name },
    spec: {
      accessModes: ["ReadWriteOnce"],
      capacity: { storage: "1Gi" },
      csi: { driver: opts.driver ?? linstor, volumeHandle: opts.handle ?? name },
      ...(opts.phase === "Available" ? {} : {
        claimRef: {
          kind: "PersistentVolumeClaim",
          apiVersion: "v1",
          namespace: "default",
          name: opts.claim ?? `data-${name}`,
          uid: `uid-of-data-${name}`,
        },
      }),
    },
    status: { phase: opts.phase ?? "Bound" },
  };
}

function va(volume: string, node: string, attacher = linstor): KubeObject {
  return {
    apiVersion: "storage.k8s.io/v1",
    kind: "VolumeAttachment",
    metadata: { name: `csi-${volume}-${node}${attacher === linstor ? "" : "-other"}` },
    spec: { attacher, nodeName: node, source: { persistentVolumeName: volume } },
    status: { attached: true },
  };
}

async function setup() {
  const server = await ApiServer.start({ tls: true });
  server.create({ apiVersion: "v1", kind: "Node", metadata: { name: "node-a" } });
  const client = await KubeClient.connect({
    kubeconfig: server.kubeconfigPath,
    requestTimeoutMs: 5_000,
  });
  let changes = 0;
  const caches = new KubeCaches(client, {
    nodeName: "node-a",
    satellitePodLabel: "app.kubernetes.io/component=linstor-satellite",
    resyncIntervalMs: 0,
    onChange: () => changes++,
    log: { info() {}, warn() {}, debug() {} },
    backoffInitialMs: 50,
  });
  const lists = (resource: string) =>
    server.requests.filter((r) => r.verb === "list" && r.resource === resource).length;
  return {
    server,
    caches,
    changes: () => changes,
    lists,
    pvs: () =>
      Object.fromEntries(
        caches.persistentVolumes.items().map((p) => [p.name, p.claimOnly ? "claim-only" : p.uid]),
      ),
    vas: () => caches.volumeAttachments.items().map((a) => a.name).sort(),
    async close() {
      await caches.stop();
      client.close();
      await server.close();
    },
  };
}

Deno.test("volume caches: local PVs in full, other Bound PVs claim-only, only local LINSTOR attachments", async () => {
  const t = await setup();
  try {
    const local = t.server.create(pv("pvc-1"));
    t.server.create(pv("pvc-2"));
    t.server.create(pv("pvc-nfs", { driver: "nfs.csi.k8s.io" }));
    t.server.create(pv("pvc-free", { phase: "Available" }));
    t.server.create(va("pvc-1", "node-b"));
    t.server.create(va("pvc-1", "node-b", "other.csi.example.com"));
    t.server.create(va("pvc-2", "node-c"));
    t.caches.want(["pvc-1"]);
    t.caches.start();
    assert.equal(await t.caches.waitSynced(deadline(5_000)), true);

    assert.deepEqual(t.pvs(), {
      "pvc-1": local.metadata.uid,
      "pvc-2": "claim-only",
      "pvc-nfs": "claim-only",
    });
    const stub = t.caches.persistentVolumes.get("pvc-nfs")!;
    assert.deepEqual(stub, {
      name: "pvc-nfs",
      csiDriver: "nfs.csi.k8s.io",
      claim: "default\u0000data-pvc-nfs",
      claimOnly: true,
    });
    assert.deepEqual(t.vas(), ["csi-pvc-1-node-b"]);

    // Changes of objects the caches do not hold wake nobody.
    const changes = t.changes();
    t.server.create(va("pvc-2", "node-d"));
    t.server.create(pv("pvc-free-2", { phase: "Available" }));
    t.server.create(va("pvc-1", "node-c"));
    await waitFor(() => t.vas().includes("csi-pvc-1-node-c"), deadline(5_000), "the new VA");
    assert.equal(t.changes(), changes + 1, "only the held VolumeAttachment woke the loop");
    assert.deepEqual(t.vas(), ["csi-pvc-1-node-b", "csi-pvc-1-node-c"]);
  } finally {
    await t.close();
  }
});

Deno.test("volume caches: a resource named for the first time makes both list again, unsynced until done", async () => {
  const t = await setup();
  try {
    t.server.create(pv("pvc-1"));
    const second = t.server.create(pv("pvc-2"));
    t.server.create(va("pvc-2", "node-c"));
    t.caches.want(["pvc-1"]);
    t.caches.start();
    assert.equal(await t.caches.waitSynced(deadline(5_000)), true);
    assert.equal(t.pvs()["pvc-2"], "claim-only");
    assert.deepEqual(t.vas(), []);
    const before = { pv: t.lists("persistentvolumes"), va: t.lists("volumeattachments") };

    t.caches.want(["pvc-1"]);
    assert.equal(t.caches.synced, true, "a known resource changes nothing");

    t.caches.want(["pvc-1", "pvc-2"]);
    assert.equal(t.caches.synced, false, "unsynced until the volumes are listed again");
    assert.match(t.caches.problems().join("\n"), /listing again/);
    assert.equal(await t.caches.waitSynced(deadline(5_000)), true);
    assert.equal(t.pvs()["pvc-2"], second.metadata.uid);
    assert.deepEqual(t.vas(), ["csi-pvc-2-node-c"]);
    assert.deepEqual(
      { pv: t.lists("persistentvolumes"), va: t.lists("volumeattachments") },
      { pv: before.pv + 1, va: before.va + 1 },
      "one more list of each",
    );
    // The watches go on after the relist.
    t.server.create(va("pvc-2", "node-d"));
    await waitFor(() => t.vas().includes("csi-pvc-2-node-d"), deadline(5_000), "watched again");
  } finally {
    await t.close();
  }
});

Deno.test("volume caches: a PV not named after its resource gets its attachments held", async () => {
  const t = await setup();
  try {
    const statik = t.server.create(pv("static-pv", { handle: "res-s" }));
    t.server.create(va("static-pv", "node-b"));
    t.caches.want(["res-s"]);
    t.caches.start();
    assert.equal(await t.caches.waitSynced(deadline(5_000)), true);
    await waitFor(
      () => t.vas().length === 1 && t.caches.synced,
      deadline(5_000),
      () => `the static PV's attachment (have ${t.vas()})`,
    );
    assert.equal(t.pvs()["static-pv"], statik.metadata.uid);
    assert.deepEqual(t.vas(), ["csi-static-pv-node-b"]);
  } finally {
    await t.close();
  }
});
