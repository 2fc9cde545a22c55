/**
 * Discovery documents built from the served kinds: legacy `/api`, `/apis`,
 * `/api/v1`, `/apis/<group>/<version>`, and the aggregated
 * `APIGroupDiscoveryList` form that kubectl 1.32 asks for first.
 *
 * @module
 */

import type { ResourceDef } from "./resources.ts";
import { allVerbs, groupVersion } from "./resources.ts";

/** The `as=APIGroupDiscoveryList` content type of aggregated discovery. */
export const aggregatedContentType =
  "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/** Whether an Accept header asks for aggregated discovery (v2 or v2beta1). */
export function wantsAggregated(accept: string | null): "v2" | "v2beta1" | undefined {
  if (accept === null) return undefined;
  for (const part of accept.split(",")) {
    const params = part.split(";").map((s) => s.trim());
    if (params[0] !== "application/json") continue;
    const has = (p: string) => params.includes(p);
    if (!has("g=apidiscovery.k8s.io") || !has("as=APIGroupDiscoveryList")) continue;
    if (has("v=v2")) return "v2";
    if (has("v=v2beta1")) return "v2beta1";
  }
  return undefined;
}

/** Visible subresources of a kind, after the server's feature switches. */
export type SubresourceFilter = (def: ResourceDef, subresource: string) => boolean;

function groups(defs: readonly ResourceDef[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const d of defs) {
    if (d.group === "") continue;
    const versions = out.get(d.group) ?? [];
    if (!versions.includes(d.version)) versions.push(d.version);
    out.set(d.group, versions);
  }
  return out;
}

/** `GET /api` (legacy). */
export function apiVersions(serverAddress: string): Record<string, unknown> {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

/** `GET /apis` (legacy). */
export function apiGroupList(defs: readonly ResourceDef[]): Record<string, unknown> {
  return {
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: [...groups(defs)].map(([name, versions]) => apiGroup(name, versions)),
  };
}

function apiGroup(name: string, versions: string[]): Record<string, unknown> {
  const list = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: list, preferredVersion: list[0] };
}

/** `GET /apis/<group>` (legacy), or undefined when the group is not served. */
export function apiGroupDocument(
  defs: readonly ResourceDef[],
  group: string,
): Record<string, unknown> | undefined {
  const versions = groups(defs).get(group);
  if (versions === undefined) return undefined;
  return { kind: "APIGroup", apiVersion: "v1", ...apiGroup(group, versions) };
}

/** `GET /api/v1` or `GET /apis/<group>/<version>`, or undefined when not served. */
export function apiResourceList(
  defs: readonly ResourceDef[],
  gv: { group: string; version: string },
  visible: SubresourceFilter,
): Record<string, unknown> | undefined {
  const served = defs.filter((d) => d.group === gv.group && d.version === gv.version);
  if (served.length === 0) return undefined;
  const resources: Record<string, unknown>[] = [];
  for (const d of served) {
    const main: Record<string, unknown> = {
      name: d.resource,
      singularName: d.singular,
      namespaced: d.namespaced,
      kind: d.kind,
      verbs: d.verbs ?? allVerbs,
    };
    if (d.shortNames) main.shortNames = d.shortNames;
    if (d.categories) main.categories = d.categories;
    main.storageVersionHash = storageHash(d);
    // the main resource must come before its subresources (client-node resolves kinds by first match)
    resources.push(main);
    for (const s of d.subresources ?? []) {
      if (!visible(d, s.name)) continue;
      const entry: Record<string, unknown> = {
        name: `${d.resource}/${s.name}`,
        singularName: "",
        namespaced: d.namespaced,
        kind: s.kind,
        verbs: s.verbs,
      };
      if (s.group !== undefined) entry.group = s.group;
      if (s.version !== undefined) entry.version = s.version;
      resources.push(entry);
    }
  }
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion: groupVersion(gv), resources };
}

function storageHash(d: ResourceDef): string {
  // any stable opaque string will do; clients only compare it for changes
  let h = 0;
  for (const c of `${d.group}/${d.version}/${d.resource}`) h = (h * 31 + c.charCodeAt(0)) | 0;
  return btoa(String(h >>> 0)).slice(0, 11);
}

/** Aggregated discovery for `/api` (core) or `/apis` (named groups). */
export function aggregatedDiscovery(
  defs: readonly ResourceDef[],
  options: { core: boolean; version: "v2" | "v2beta1"; visible: SubresourceFilter },
): Record<string, unknown> {
  const items: Record<string, unknown>[] = [];
  const groupNames = options.core ? [""] : [...groups(defs).keys()];
  for (const group of groupNames) {
    const versions = [...new Set(defs.filter((d) => d.group === group).map((d) => d.version))];
    items.push({
      metadata: { name: group },
      versions: versions.map((version) => ({
        version,
        freshness: "Current",
        resources: defs.filter((d) => d.group === group && d.version === version).map((d) => {
          const r: Record<string, unknown> = {
            resource: d.resource,
            responseKind: { group: d.group, version: d.version, kind: d.kind },
            scope: d.namespaced ? "Namespaced" : "Cluster",
            singularResource: d.singular,
            verbs: d.verbs ?? allVerbs,
          };
          if (d.shortNames) r.shortNames = d.shortNames;
          if (d.categories) r.categories = d.categories;
          const subs = (d.subresources ?? []).filter((s) => options.visible(d, s.name));
          if (subs.length > 0) {
            r.subresources = subs.map((s) => ({
              subresource: s.name,
              responseKind: {
                group: s.group ?? d.group,
                version: s.version ?? d.version,
                kind: s.kind,
              },
              verbs: s.verbs,
            }));
          }
          return r;
        }),
      })),
    });
  }
  return {
    kind: "APIGroupDiscoveryList",
    apiVersion: `apidiscovery.k8s.io/${options.version}`,
    metadata: {},
    items,
  };
}
