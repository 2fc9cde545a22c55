/**
 * The `status` command's output: what the agent sees and would do, as a
 * table or as JSON.
 *
 * @module
 */

import { type Action, type Decision, describeAction, type Snapshot } from "./decide/types.ts";
import { formatElapsed } from "./decide/context.ts";

/** Where a report comes from. */
export interface StatusSource {
  /**
   * `running-agent`: the agent running on this node answered with its last
   * decision and its own timers; `one-shot`: this command read DRBD and the
   * cluster itself and decided once, with no timer running yet.
   */
  kind: "running-agent" | "one-shot";
  /** Details: the agent's address, or why no running agent answered. */
  detail: string;
  /** When the decision was made (ms since the epoch). */
  decidedAt: number;
}

/** A timer of the agent's memory that is running. */
export interface StatusTimer {
  /** `fail-over`, `quorum-lost` or `suspended`. */
  timer: string;
  /** What it times: `resource/peer-node` or `resource`. */
  key: string;
  /** When it started (ms since the epoch). */
  since: number;
  /** How long it has run when decided, e.g. `3.2s`. */
  runningFor: string;
}

/** One row of the status report. */
export interface StatusRow {
  /** DRBD resource. */
  resource: string;
  /** Local role. */
  role: string;
  /** All local volumes have quorum. */
  quorum: boolean;
  /** drbdsetup's may_promote (null when unknown). */
  mayPromote: boolean | null;
  /** Suspend reasons, comma-joined, or "no". */
  suspended: string;
  /** Each peer connection as `name=State(role)`. */
  peers: string[];
  /** Backing PV. */
  persistentVolume: string | null;
  /** Claim `namespace/name`. */
  claim: string | null;
  /** Consumer pods `namespace/name`. */
  consumers: string[];
  /** What the agent does or waits for, and why. */
  decision: string;
}

/** The whole status report. */
export interface StatusReport {
  /** Node name. */
  node: string;
  /** DRBD availability and message. */
  drbd: { availability: string; message: string | null };
  /** Whether the cluster view is complete. */
  cluster: { synced: boolean; problems: string[] };
  /** Why the agent holds back all actions, if it does. */
  heldBack: string | null;
  /** One row per DRBD resource. */
  resources: StatusRow[];
  /** Actions the agent would take now. */
  plan: { action: string; reason: string }[];
  /** Where this report comes from. */
  source: StatusSource;
  /** The running timers (after the decision). */
  timers: StatusTimer[];
  /** Fail-overs counted per resource for the backoff. */
  backoff: { resource: string; failOvers: number; lastAt: number }[];
}

/** Build the report from one snapshot and its decision. */
export function buildStatus(
  snapshot: Snapshot,
  decision: Decision,
  clusterProblems: string[],
  source: StatusSource,
): StatusReport {
  const timers: StatusTimer[] = [];
  const names = [
    ["fail-over", decision.memory.failOverSince],
    ["quorum-lost", decision.memory.quorumLostSince],
    ["suspended", decision.memory.suspendedSince],
  ] as const;
  for (const [timer, map] of names) {
    for (const [key, since] of [...map].sort(([a], [b]) => a.localeCompare(b))) {
      timers.push({
        timer,
        key,
        since,
        runningFor: formatElapsed(Math.max(0, source.decidedAt - since)),
      });
    }
  }
  const verdicts = new Map(decision.verdicts.map((v) => [v.resource, v]));
  const resources = snapshot.drbd.resources.map((r): StatusRow => {
    const v = verdicts.get(r.name);
    const s = r.suspended;
    const suspended =
      [s.user && "user", s.noData && "no-data", s.fencing && "fencing", s.quorum && "quorum"]
        .filter(Boolean).join(",") || "no";
    return {
      resource: r.name,
      role: r.role,
      quorum: r.devices.every((d) => d.quorum),
      mayPromote: r.mayPromote ?? null,
      suspended,
      peers: r.connections.map((c) => `${c.name}=${c.connectionState}(${c.peerRole})`),
      persistentVolume: v?.persistentVolume ?? null,
      claim: v?.claim ?? null,
      consumers: v?.consumers ?? [],
      decision: v?.decision ?? "",
    };
  });
  return {
    node: snapshot.nodeName,
    drbd: { availability: snapshot.drbd.availability, message: snapshot.drbd.message ?? null },
    cluster: { synced: snapshot.cachesSynced, problems: clusterProblems },
    heldBack: decision.heldBack ?? null,
    resources,
    plan: decision.plan.map((a: Action) => ({ action: describeAction(a), reason: a.reason })),
    source,
    timers,
    backoff: [...decision.memory.failOvers].sort(([a], [b]) => a.localeCompare(b))
      .map(([resource, r]) => ({ resource, failOvers: r.count, lastAt: r.lastAt })),
  };
}

/** Render the report as an aligned text table with a short header and the plan. */
export function renderStatusTable(report: StatusReport): string {
  const lines: string[] = [];
  lines.push(`NODE ${report.node}`);
  const source = report.source;
  lines.push(
    `SOURCE ${source.kind === "running-agent" ? "running agent" : "one-shot"} ` +
      `(${source.detail}; decided ${new Date(source.decidedAt).toISOString()})`,
  );
  lines.push(
    `DRBD ${report.drbd.availability}${report.drbd.message ? `: ${report.drbd.message}` : ""}`,
  );
  lines.push(
    `CLUSTER ${report.cluster.synced ? "synced" : "NOT synced"}${
      report.cluster.problems.length ? `: ${report.cluster.problems.join("; ")}` : ""
    }`,
  );
  if (report.heldBack) lines.push(`HELD BACK ${report.heldBack}`);
  lines.push("");
  const header = [
    "RESOURCE",
    "ROLE",
    "QUORUM",
    "MAY-PROMOTE",
    "SUSPENDED",
    "PEERS",
    "PV",
    "PVC",
    "CONSUMERS",
    "DECISION",
  ];
  const rows = report.resources.map((r) => [
    r.resource,
    r.role,
    r.quorum ? "yes" : "no",
    r.mayPromote === null ? "?" : r.mayPromote ? "yes" : "no",
    r.suspended,
    r.peers.join(",") || "-",
    r.persistentVolume ?? "-",
    r.claim ?? "-",
    r.consumers.join(",") || "-",
    r.decision,
  ]);
  if (rows.length === 0) {
    lines.push("No DRBD resources on this node.");
  } else {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
    for (const row of [header, ...rows]) {
      lines.push(
        row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i])).join("  "),
      );
    }
  }
  lines.push("");
  if (report.timers.length > 0) {
    lines.push("TIMERS");
    for (const t of report.timers) lines.push(`  ${t.timer} ${t.key}: running for ${t.runningFor}`);
  }
  if (report.backoff.length > 0) {
    lines.push("BACKOFF");
    for (const b of report.backoff) {
      lines.push(
        `  ${b.resource}: ${b.failOvers} fail-over${b.failOvers === 1 ? "" : "s"}, last ` +
          new Date(b.lastAt).toISOString(),
      );
    }
  }
  if (report.plan.length === 0) {
    lines.push("PLAN nothing to do");
  } else {
    lines.push("PLAN");
    for (const p of report.plan) lines.push(`  ${p.action}: ${p.reason}`);
  }
  return lines.join("\n") + "\n";
}
