/**
 * Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for when it
 * prints human-readable output (`kubectl get pods -o wide`). Column sets
 * follow kube-apiserver's printers for the kinds this project looks at;
 * other kinds get the generic `Name` / `Created At` table.
 *
 * @module
 */

import type { KubeObject } from "./objects.ts";
import { isRecord, pathList, pathRecord, pathString, pathValue } from "./objects.ts";

/** One column of a Table. */
export interface ColumnDefinition {
  /** Column title (kubectl upper-cases it). */
  name: string;
  /** `string`, `integer`, `date`, ... */
  type: string;
  /** `name` for the name column, `date` for timestamps, else `""`. */
  format: string;
  /** Description. */
  description: string;
  /** 0 = always shown, 1 = only with `-o wide`. */
  priority: number;
}

/** What `row.object` holds: `Metadata` (default), `Object` or `None`. */
export type IncludeObject = "Metadata" | "Object" | "None";

interface TablePrinter {
  columns: ColumnDefinition[];
  cells: (obj: KubeObject, now: Date) => unknown[];
}

function col(name: string, priority = 0, type = "string", format = ""): ColumnDefinition {
  return { name, type, format, description: `${name} column`, priority };
}

/** Kubernetes' short "age" notation: `45s`, `5m3s`, `3h`, `2d4h`, `3y`. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${days}d` : `${days}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) {
    const d = days % 365;
    return d === 0 ? `${years}y` : `${years}y${d}d`;
  }
  return `${years}y`;
}

function since(timestamp: unknown, now: Date): string {
  if (typeof timestamp !== "string" || timestamp === "") return "<unknown>";
  const t = Date.parse(timestamp);
  if (Number.isNaN(t)) return "<unknown>";
  return humanDuration(now.getTime() - t);
}

function podStatusText(pod: KubeObject): string {
  let reason = pathString(pod, "status.phase");
  if (pathString(pod, "status.reason") !== "") reason = pathString(pod, "status.reason");
  for (const cs of pathList(pod, "status.containerStatuses")) {
    if (!isRecord(cs)) continue;
    const waiting = pathString(cs, "state.waiting.reason");
    const terminated = pathString(cs, "state.terminated.reason");
    if (waiting !== "") reason = waiting;
    else if (terminated !== "") reason = terminated;
  }
  if (pod.metadata.deletionTimestamp !== undefined) {
    reason = pathString(pod, "status.reason") === "NodeLost" ? "Unknown" : "Terminating";
  }
  return reason;
}

function podPrinter(): TablePrinter {
  return {
    columns: [
      col("Name", 0, "string", "name"),
      col("Ready"),
      col("Status"),
      col("Restarts", 0, "string"),
      col("Age"),
      col("IP", 1),
      col("Node", 1),
      col("Nominated Node", 1),
      col("Readiness Gates", 1),
    ],
    cells: (pod, now) => {
      const containers = pathList(pod, "spec.containers").length;
      const statuses = pathList(pod, "status.containerStatuses").filter(isRecord);
      const ready = statuses.filter((s) => s.ready === true).length;
      const restarts = statuses.reduce((n, s) => n + Number(s.restartCount ?? 0), 0);
      const ips = pathList(pod, "status.podIPs");
      const ip = ips.length > 0 && isRecord(ips[0])
        ? String(ips[0].ip)
        : pathString(pod, "status.podIP");
      const gates = pathList(pod, "spec.readinessGates");
      return [
        pod.metadata.name,
        `${ready}/${containers}`,
        podStatusText(pod),
        String(restarts),
        since(pod.metadata.creationTimestamp, now),
        ip === "" ? "<none>" : ip,
        pathString(pod, "spec.nodeName") || "<none>",
        pathString(pod, "status.nominatedNodeName") || "<none>",
        gates.length === 0 ? "<none>" : `0/${gates.length}`,
      ];
    },
  };
}

function nodePrinter(): TablePrinter {
  return {
    columns: [
      col("Name", 0, "string", "name"),
      col("Status"),
      col("Roles"),
      col("Age"),
      col("Version"),
      col("Internal-IP", 1),
      col("External-IP", 1),
      col("OS-Image", 1),
      col("Kernel-Version", 1),
      col("Container-Runtime", 1),
    ],
    cells: (node, now) => {
      const ready = pathList(node, "status.conditions").find((c) =>
        isRecord(c) && c.type === "Ready"
      );
      const conditions: string[] = [];
      if (!isRecord(ready)) conditions.push("Unknown");
      else if (ready.status === "True") conditions.push("Ready");
      else if (ready.status === "False") conditions.push("NotReady");
      else conditions.push("Unknown");
      if (pathValue(node, "spec.unschedulable") === true) conditions.push("SchedulingDisabled");
      const roles = Object.keys(node.metadata.labels ?? {})
        .filter((k) => k.startsWith("node-role.kubernetes.io/"))
        .map((k) => k.slice("node-role.kubernetes.io/".length))
        .filter((r) => r !== "")
        .sort();
      const address = (type: string): string => {
        const a = pathList(node, "status.addresses").find((x) => isRecord(x) && x.type === type);
        return isRecord(a) ? String(a.address) : "<none>";
      };
      const info = pathRecord(node, "status.nodeInfo");
      return [
        node.metadata.name,
        conditions.join(","),
        roles.length === 0 ? "<none>" : roles.join(","),
        since(node.metadata.creationTimestamp, now),
        String(info.kubeletVersion ?? ""),
        address("InternalIP"),
        address("ExternalIP"),
        String(info.osImage ?? "<unknown>"),
        String(info.kernelVersion ?? "<unknown>"),
        String(info.containerRuntimeVersion ?? "<unknown>"),
      ];
    },
  };
}

function eventPrinter(): TablePrinter {
  return {
    columns: [
      col("Last Seen"),
      col("Type"),
      col("Reason"),
      col("Object"),
      col("Subobject", 1),
      col("Source", 1),
      col("Message"),
      col("First Seen", 1),
      col("Count", 1, "integer"),
      col("Name", 1, "string", "name"),
    ],
    cells: (ev, now) => {
      const io = pathRecord(ev, "involvedObject");
      const regarding = Object.keys(io).length > 0 ? io : pathRecord(ev, "regarding");
      const last = pathString(ev, "series.lastObservedTime") ||
        pathString(ev, "lastTimestamp") || pathString(ev, "deprecatedLastTimestamp") ||
        pathString(ev, "eventTime");
      const first = pathString(ev, "firstTimestamp") ||
        pathString(ev, "deprecatedFirstTimestamp") || pathString(ev, "eventTime");
      const component = pathString(ev, "source.component") ||
        pathString(ev, "reportingComponent") || pathString(ev, "reportingController");
      const host = pathString(ev, "source.host");
      const count = Number(pathValue(ev, "series.count") ?? pathValue(ev, "count") ?? 1);
      return [
        since(last, now),
        pathString(ev, "type"),
        pathString(ev, "reason"),
        `${String(regarding.kind ?? "").toLowerCase()}/${String(regarding.name ?? "")}`,
        String(regarding.fieldPath ?? ""),
        host === "" ? component : `${component}, ${host}`,
        pathString(ev, "message") || pathString(ev, "note"),
        since(first, now),
        count,
        ev.metadata.name,
      ];
    },
  };
}

function volumeAttachmentPrinter(): TablePrinter {
  return {
    columns: [
      col("Name", 0, "string", "name"),
      col("Attacher"),
      col("PV"),
      col("Node"),
      col("Attached", 0, "boolean"),
      col("Age"),
    ],
    cells: (va, now) => [
      va.metadata.name,
      pathString(va, "spec.attacher"),
      pathString(va, "spec.source.persistentVolumeName"),
      pathString(va, "spec.nodeName"),
      pathValue(va, "status.attached") === true,
      since(va.metadata.creationTimestamp, now),
    ],
  };
}

function namespacePrinter(): TablePrinter {
  return {
    columns: [col("Name", 0, "string", "name"), col("Status"), col("Age")],
    cells: (ns, now) => [
      ns.metadata.name,
      pathString(ns, "status.phase"),
      since(ns.metadata.creationTimestamp, now),
    ],
  };
}

function leasePrinter(): TablePrinter {
  return {
    columns: [col("Name", 0, "string", "name"), col("Holder"), col("Age")],
    cells: (lease, now) => [
      lease.metadata.name,
      pathString(lease, "spec.holderIdentity"),
      since(lease.metadata.creationTimestamp, now),
    ],
  };
}

function defaultPrinter(): TablePrinter {
  return {
    columns: [col("Name", 0, "string", "name"), col("Created At", 0, "date")],
    cells: (obj) => [obj.metadata.name, obj.metadata.creationTimestamp ?? ""],
  };
}

const printers: Record<string, () => TablePrinter> = {
  "pods": podPrinter,
  "nodes": nodePrinter,
  "events": eventPrinter,
  "events.events.k8s.io": eventPrinter,
  "volumeattachments.storage.k8s.io": volumeAttachmentPrinter,
  "namespaces": namespacePrinter,
  "leases.coordination.k8s.io": leasePrinter,
};

function printerFor(group: string, resource: string): TablePrinter {
  const key = group === "" ? resource : `${resource}.${group}`;
  return (printers[key] ?? defaultPrinter)();
}

/** Options of {@link toTable}. */
export interface TableOptions {
  /** Group of the served kind. */
  group: string;
  /** Resource plural of the served kind. */
  resource: string;
  /** `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`. */
  apiVersion: string;
  /** What each row embeds. */
  includeObject: IncludeObject;
  /** resourceVersion for the Table's metadata. */
  resourceVersion: string;
  /** Leave out the column definitions (watch events after the first). */
  noHeaders?: boolean;
  /** Time the ages are computed against. */
  now: Date;
}

/** Renders served objects (with kind/apiVersion) as a Table. */
export function toTable(objects: KubeObject[], options: TableOptions): KubeObject {
  const printer = printerFor(options.group, options.resource);
  const rows = objects.map((obj) => {
    const row: Record<string, unknown> = { cells: printer.cells(obj, options.now) };
    if (options.includeObject === "Object") row.object = obj;
    else if (options.includeObject === "Metadata") {
      row.object = {
        kind: "PartialObjectMetadata",
        apiVersion: "meta.k8s.io/v1",
        metadata: obj.metadata,
      };
    }
    return row;
  });
  return {
    kind: "Table",
    apiVersion: options.apiVersion,
    metadata: { resourceVersion: options.resourceVersion },
    columnDefinitions: options.noHeaders ? [] : printer.columns,
    rows,
  };
}

/**
 * The Table version asked for in an Accept header
 * (`application/json;as=Table;v=v1;g=meta.k8s.io,...`), or undefined for plain JSON.
 */
export function tableVersionAccepted(accept: string | null): string | undefined {
  if (accept === null) return undefined;
  for (const part of accept.split(",")) {
    const params = new Map<string, string>();
    const [media, ...rest] = part.split(";").map((s) => s.trim());
    for (const p of rest) {
      const eq = p.indexOf("=");
      if (eq > 0) params.set(p.slice(0, eq).trim(), p.slice(eq + 1).trim());
    }
    if (media !== "application/json") continue;
    if (params.get("as") !== "Table" || params.get("g") !== "meta.k8s.io") continue;
    const v = params.get("v");
    if (v === "v1" || v === "v1beta1") return `meta.k8s.io/${v}`;
  }
  return undefined;
}
