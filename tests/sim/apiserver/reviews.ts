/**
 * The review kinds a client creates to ask the server about itself:
 * `SelfSubjectAccessReview` (`kubectl auth can-i`), `SelfSubjectRulesReview`
 * (`kubectl auth can-i --list`), `SubjectAccessReview` (can some other user?)
 * and `SelfSubjectReview` (`kubectl auth whoami`). Nothing is stored; the
 * answer is the request with a filled-in `status`.
 *
 * @module
 */

import type { UserInfo } from "./auth.ts";
import type { KubeObject } from "./objects.ts";
import { isRecord } from "./objects.ts";
import type { Authorizer, PolicyRule, RequestAttributes } from "./rbac.ts";
import type { ResourceDef } from "./resources.ts";
import type { FieldError } from "./status.ts";
import { badRequest, invalid, invalidValue } from "./status.ts";

/** Whether a kind is one of the review kinds this module answers. */
export function isReviewKind(def: ResourceDef): boolean {
  return (def.group === "authorization.k8s.io" &&
    ["selfsubjectaccessreviews", "selfsubjectrulesreviews", "subjectaccessreviews"].includes(
      def.resource,
    )) ||
    (def.group === "authentication.k8s.io" && def.resource === "selfsubjectreviews");
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function accessAttributes(
  def: ResourceDef,
  spec: Record<string, unknown>,
  user: UserInfo,
): RequestAttributes {
  const resource = spec.resourceAttributes;
  const nonResource = spec.nonResourceAttributes;
  const errors: FieldError[] = [];
  if (isRecord(resource) && isRecord(nonResource)) {
    errors.push(
      invalidValue(
        "spec.nonResourceAttributes",
        nonResource,
        "cannot be specified in combination with resourceAttributes",
      ),
    );
  } else if (!isRecord(resource) && !isRecord(nonResource)) {
    errors.push({
      reason: "FieldValueInvalid",
      field: "spec.resourceAttributes",
      message: `spec.resourceAttributes: Invalid value: "null": ` +
        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
    });
  }
  if (errors.length > 0) throw invalid({ kind: def.kind, group: def.group, name: "" }, errors);
  const base = {
    user,
    group: "",
    version: "",
    resource: "",
    subresource: "",
    namespace: "",
    name: "",
  };
  if (isRecord(nonResource)) {
    return {
      ...base,
      verb: text(nonResource.verb),
      resourceRequest: false,
      path: text(nonResource.path),
    };
  }
  const r = resource as Record<string, unknown>;
  return {
    ...base,
    verb: text(r.verb),
    resourceRequest: true,
    path: "",
    group: text(r.group),
    version: text(r.version),
    resource: text(r.resource),
    subresource: text(r.subresource),
    namespace: text(r.namespace),
    name: text(r.name),
  };
}

function resourceRule(rule: PolicyRule): Record<string, unknown> {
  const out: Record<string, unknown> = { verbs: rule.verbs };
  if ((rule.apiGroups ?? []).length > 0) out.apiGroups = rule.apiGroups;
  if ((rule.resources ?? []).length > 0) out.resources = rule.resources;
  if ((rule.resourceNames ?? []).length > 0) out.resourceNames = rule.resourceNames;
  return out;
}

/**
 * Answers the create of a review kind for `user`: the request body with
 * `kind`, `apiVersion` and the `status` the authorizer decides.
 */
export function answerReview(
  def: ResourceDef,
  request: { body: unknown; user: UserInfo; authorizer: Authorizer },
): KubeObject {
  const { body, user, authorizer } = request;
  if (!isRecord(body)) throw badRequest(`the body of a ${def.kind} must be a JSON object`);
  const spec = isRecord(body.spec) ? body.spec : {};
  const metadata = isRecord(body.metadata) ? body.metadata : {};
  const out: KubeObject = {
    kind: def.kind,
    apiVersion: `${def.group}/${def.version}`,
    metadata: structuredClone(metadata),
  };
  switch (def.resource) {
    case "selfsubjectreviews":
      out.status = { userInfo: { username: user.username, groups: user.groups } };
      return out;
    case "selfsubjectrulesreviews": {
      const rules = authorizer.rulesFor(user, text(spec.namespace));
      const status: Record<string, unknown> = {
        resourceRules: rules.resourceRules.map(resourceRule),
        nonResourceRules: rules.nonResourceRules.map((r) => ({
          verbs: r.verbs,
          nonResourceURLs: r.nonResourceURLs,
        })),
        incomplete: rules.errors.length > 0,
      };
      if (rules.errors.length > 0) status.evaluationError = rules.errors.join(", ");
      out.spec = spec;
      out.status = status;
      return out;
    }
    case "subjectaccessreviews": {
      const username = text(spec.user);
      const groups = Array.isArray(spec.groups) ? spec.groups.map(String) : [];
      if (username === "" && groups.length === 0) {
        throw invalid({ kind: def.kind, group: def.group, name: "" }, [
          invalidValue("spec.user", "", "at least one of user or group must be specified"),
        ]);
      }
      const decision = authorizer.authorize(
        accessAttributes(def, spec, { username, groups }),
      );
      out.spec = spec;
      out.status = decision.reason === ""
        ? { allowed: decision.allowed }
        : { allowed: decision.allowed, reason: decision.reason };
      return out;
    }
    default: {
      const decision = authorizer.authorize(accessAttributes(def, spec, user));
      out.spec = spec;
      out.status = decision.reason === ""
        ? { allowed: decision.allowed }
        : { allowed: decision.allowed, reason: decision.reason };
      return out;
    }
  }
}
