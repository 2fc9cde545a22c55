/**
 * Access to the DRBD reference samples in tests/drbd/testdata (copies; its
 * README.md says where they come from), and model builders for their
 * example cluster.
 *
 * @module
 */

import type {
  DrbdConnection,
  DrbdDevice,
  DrbdPeerDevice,
  DrbdResource,
} from "../../lib/drbd/model.ts";

const SAMPLES = new URL("./testdata/", import.meta.url);

/** The text of one sample file, e.g. `head_events2_now.txt`. */
export async function sample(name: string): Promise<string> {
  return await Deno.readTextFile(new URL(name, SAMPLES));
}

/** The lines of a sample, without the final empty one. */
export async function sampleLines(name: string): Promise<string[]> {
  const lines = (await sample(name)).split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** The 9.22 form of an events2 text: no `open:` field (drbd-utils before 9.29). */
export function without922Fields(text: string): string {
  return text.replace(/ open:(yes|no|unknown)/g, "");
}

/** A peer device of the example cluster. */
export function peerDevice(overrides: Partial<DrbdPeerDevice> = {}): DrbdPeerDevice {
  return {
    volume: 0,
    replicationState: "Established",
    peerDiskState: "UpToDate",
    peerClient: false,
    ...overrides,
  };
}

/** node-b: diskful peer, node id 1. */
export function nodeB(overrides: Partial<DrbdConnection> = {}): DrbdConnection {
  return {
    peerNodeId: 1,
    name: "node-b",
    connectionState: "Connected",
    peerRole: "Secondary",
    peerDevices: [peerDevice()],
    ...overrides,
  };
}

/** node-c: diskless tiebreaker, node id 2. */
export function nodeC(overrides: Partial<DrbdConnection> = {}): DrbdConnection {
  return {
    peerNodeId: 2,
    name: "node-c",
    connectionState: "Connected",
    peerRole: "Secondary",
    peerDevices: [peerDevice({ peerDiskState: "Diskless", peerClient: true })],
    ...overrides,
  };
}

/** The local volume 0 of r0, minor 1000. */
export function device(overrides: Partial<DrbdDevice> = {}): DrbdDevice {
  return {
    volume: 0,
    minor: 1000,
    diskState: "UpToDate",
    client: false,
    open: true,
    quorum: true,
    ...overrides,
  };
}

/** Resource r0 of the example cluster: this node Primary, both peers connected. */
export function r0(overrides: Partial<DrbdResource> = {}): DrbdResource {
  return {
    name: "r0",
    role: "Primary",
    suspended: { user: false, noData: false, fencing: false, quorum: false },
    forceIoFailures: false,
    mayPromote: false,
    promotionScore: 10102,
    devices: [device()],
    connections: [nodeB(), nodeC()],
    config: undefined,
    ...overrides,
  };
}
