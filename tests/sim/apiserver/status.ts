/**
 * `Status` objects and the error type the simulated API server throws.
 *
 * Every failure inside the simulator is an {@link ApiError}; the HTTP layer
 * turns it into a `Status` body with the same HTTP code, exactly the shape
 * kube-apiserver answers with (`kind: Status`, `reason`, `details`, `code`).
 *
 * @module
 */

/** One cause inside `Status.details.causes`. */
export interface StatusCause {
  /** Machine-readable cause, e.g. `FieldValueRequired` or `DisruptionBudget`. */
  reason?: string;
  /** Human-readable text. */
  message?: string;
  /** Field path the cause refers to. */
  field?: string;
}

/** `Status.details`. */
export interface StatusDetails {
  /** Name of the object concerned. */
  name?: string;
  /** API group of the object concerned (omitted for the core group). */
  group?: string;
  /** Resource plural (or Kind for Invalid and delete preconditions). */
  kind?: string;
  /** UID of the object concerned. */
  uid?: string;
  /** Seconds the client should wait before retrying; also sent as `Retry-After`. */
  retryAfterSeconds?: number;
  /** Individual causes. */
  causes?: StatusCause[];
}

/** A `meta/v1` `Status` object. */
export interface Status {
  /** Always `Status`. */
  kind: "Status";
  /** Always `v1`. */
  apiVersion: "v1";
  /** Always empty. */
  metadata: Record<string, never>;
  /** `Success` or `Failure`. */
  status: "Success" | "Failure";
  /** Human-readable text. */
  message?: string;
  /** Machine-readable reason such as `NotFound`. */
  reason?: string;
  /** Details about the object concerned. */
  details?: StatusDetails;
  /** HTTP status code. */
  code?: number;
}

/** An error answered to the client as a `Status` with HTTP code `status.code`. */
export class ApiError extends Error {
  /** The Status body sent to the client. */
  readonly status: Status;

  /** Wraps a failure Status. */
  constructor(status: Status) {
    super(status.message ?? status.reason ?? "API error");
    this.name = "ApiError";
    this.status = status;
  }

  /** HTTP status code. */
  get code(): number {
    return this.status.code ?? 500;
  }
}

/** The resource an error is about: its group and plural, for `<resource>[.<group>]`. */
export interface ResourceRef {
  /** API group, `""` for core. */
  group: string;
  /** Resource plural, e.g. `pods`. */
  resource: string;
}

/** `pods` or `volumeattachments.storage.k8s.io`, as kube-apiserver prints a group-resource. */
export function qualifiedResource(ref: ResourceRef): string {
  return ref.group === "" ? ref.resource : `${ref.resource}.${ref.group}`;
}

/** Builds a failure Status; empty fields are left out like the real server's omitempty. */
export function failure(
  code: number,
  reason: string,
  options: { message: string; details?: StatusDetails },
): ApiError {
  const status: Status = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: options.message,
    reason,
  };
  if (options.details !== undefined) {
    const details = pruneDetails(options.details);
    if (Object.keys(details).length > 0) status.details = details;
  }
  status.code = code;
  return new ApiError(status);
}

function pruneDetails(details: StatusDetails): StatusDetails {
  const out: StatusDetails = {};
  if (details.name) out.name = details.name;
  if (details.group) out.group = details.group;
  if (details.kind) out.kind = details.kind;
  if (details.uid) out.uid = details.uid;
  if (details.retryAfterSeconds) out.retryAfterSeconds = details.retryAfterSeconds;
  if (details.causes && details.causes.length > 0) out.causes = details.causes;
  return out;
}

function refDetails(ref: ResourceRef, name: string): StatusDetails {
  return { name, group: ref.group, kind: ref.resource };
}

/** 404 `pods "x" not found`. */
export function notFound(ref: ResourceRef, name: string): ApiError {
  return failure(404, "NotFound", {
    message: `${qualifiedResource(ref)} "${name}" not found`,
    details: refDetails(ref, name),
  });
}

/** 404 for a path the server does not serve. */
export function pathNotFound(): ApiError {
  return failure(404, "NotFound", {
    message: "the server could not find the requested resource",
    details: {},
  });
}

/** 409 `pods "x" already exists`. */
export function alreadyExists(ref: ResourceRef, name: string): ApiError {
  return failure(409, "AlreadyExists", {
    message: `${qualifiedResource(ref)} "${name}" already exists`,
    details: refDetails(ref, name),
  });
}

/** Text of the optimistic-lock conflict. */
export const optimisticLockMessage =
  "the object has been modified; please apply your changes to the latest version and try again";

/** 409 `Operation cannot be fulfilled on pods "x": <why>`. */
export function conflict(ref: ResourceRef, options: { name: string; why: string }): ApiError {
  const { name, why } = options;
  return failure(409, "Conflict", {
    message: `Operation cannot be fulfilled on ${qualifiedResource(ref)} "${name}": ${why}`,
    details: refDetails(ref, name),
  });
}

/** One field error of a 422 Invalid. */
export interface FieldError {
  /** `FieldValueRequired`, `FieldValueInvalid`, `FieldValueForbidden`, ... */
  reason: string;
  /** Field path such as `eventTime`. */
  field: string;
  /** Full text such as `eventTime: Required value`. */
  message: string;
}

/** A `Required value` field error. */
export function required(field: string): FieldError {
  return { reason: "FieldValueRequired", field, message: `${field}: Required value` };
}

/** An `Invalid value` field error. */
export function invalidValue(field: string, value: unknown, detail: string): FieldError {
  return {
    reason: "FieldValueInvalid",
    field,
    message: `${field}: Invalid value: ${JSON.stringify(value)}: ${detail}`,
  };
}

/** A `Forbidden` field error. */
export function forbiddenField(field: string, detail: string): FieldError {
  return { reason: "FieldValueForbidden", field, message: `${field}: Forbidden: ${detail}` };
}

/** 422 `Pod "x" is invalid: <errors>`; `kind` is the Kind, not the plural. */
export function invalid(
  target: { kind: string; group: string; name: string },
  errors: FieldError[],
): ApiError {
  const qualified = target.group === "" ? target.kind : `${target.kind}.${target.group}`;
  const text = errors.length === 1
    ? errors[0].message
    : `[${errors.map((e) => e.message).join(", ")}]`;
  return failure(422, "Invalid", {
    message: `${qualified} "${target.name}" is invalid: ${text}`,
    details: {
      name: target.name,
      group: target.group,
      kind: target.kind,
      causes: errors.map((e) => ({ reason: e.reason, message: e.message, field: e.field })),
    },
  });
}

/** 400 with free text. */
export function badRequest(message: string): ApiError {
  return failure(400, "BadRequest", { message });
}

/** 401 for a missing or wrong bearer token. */
export function unauthorized(): ApiError {
  return failure(401, "Unauthorized", { message: "Unauthorized" });
}

/** 403 `<gr> "<name>" is forbidden: <why>`. */
export function forbidden(ref: ResourceRef, options: { name: string; why: string }): ApiError {
  const { name, why } = options;
  const subject = name === ""
    ? `${qualifiedResource(ref)} is forbidden`
    : `${qualifiedResource(ref)} "${name}" is forbidden`;
  return failure(403, "Forbidden", {
    message: `${subject}: ${why}`,
    details: refDetails(ref, name),
  });
}

/** 405 `<verb> is not supported on resources of kind "<gr>"`. */
export function methodNotAllowed(ref: ResourceRef, verb: string): ApiError {
  return failure(405, "MethodNotAllowed", {
    message: `${verb} is not supported on resources of kind "${qualifiedResource(ref)}"`,
    details: { group: ref.group, kind: ref.resource },
  });
}

/** 410 Expired, as sent in a watch ERROR event or for an expired continue token. */
export function expired(message: string): ApiError {
  return failure(410, "Expired", { message });
}

/** 415 listing the accepted patch types. */
export function unsupportedMediaType(contentType: string, accepted: string[]): ApiError {
  return failure(415, "UnsupportedMediaType", {
    message: `the body of the request was in an unknown format - accepted media types include: ${
      accepted.join(", ")
    }`,
    details: { causes: [{ reason: "UnexpectedServerResponse", message: contentType }] },
  });
}

/** 429 TooManyRequests, with `Retry-After` when `retryAfterSeconds` > 0. */
export function tooManyRequests(
  message: string,
  options: { retryAfterSeconds?: number; causes?: StatusCause[] } = {},
): ApiError {
  return failure(429, "TooManyRequests", {
    message,
    details: { retryAfterSeconds: options.retryAfterSeconds, causes: options.causes },
  });
}

/** 500 `Internal error occurred: <err>`. */
export function internalError(message: string): ApiError {
  return failure(500, "InternalError", {
    message: `Internal error occurred: ${message}`,
    details: { causes: [{ message }] },
  });
}

const reasonsByCode: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  410: "Expired",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** A Status for an arbitrary code, used by injected faults. */
export function forCode(
  code: number,
  options: { message?: string; retryAfterSeconds?: number } = {},
): ApiError {
  const reason = reasonsByCode[code] ?? (code >= 500 ? "InternalError" : "BadRequest");
  return failure(code, reason, {
    message: options.message ?? `injected fault: ${reason} (${code})`,
    details: { retryAfterSeconds: options.retryAfterSeconds },
  });
}

/** The `Success` Status a delete of a non-pod object answers with. */
export function success(details: StatusDetails, code?: number): Status {
  const status: Status = { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success" };
  if (Object.keys(details).length > 0) status.details = pruneDetails(details);
  if (code !== undefined) status.code = code;
  return status;
}
