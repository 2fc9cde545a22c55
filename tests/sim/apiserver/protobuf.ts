/**
 * The little protobuf the simulator reads: kubectl's typed clients send some
 * request bodies as `application/vnd.kubernetes.protobuf` (for example
 * `kubectl auth can-i` posts its SelfSubjectAccessReview that way). Such a
 * body is the magic `k8s\0` followed by a `runtime.Unknown` envelope
 * (typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2) whose `raw` bytes hold
 * the object. Only the review kinds are decoded, into the same JSON shape a
 * JSON client would send; answers are always JSON, which every client accepts.
 *
 * @module
 */

import { badRequest, unsupportedMediaType } from "./status.ts";

/** The protobuf media type of Kubernetes. */
export const protobufContentType = "application/vnd.kubernetes.protobuf";

/** Whether a Content-Type header names Kubernetes protobuf. */
export function isProtobuf(contentType: string | null): boolean {
  return (contentType ?? "").split(";")[0].trim().toLowerCase() === protobufContentType;
}

/** A message layout: field number → name and type (a nested layout for messages). */
interface Layout {
  [field: number]: { name: string; type: "string" | "bytes" | Layout; repeated?: boolean };
}

const objectMeta: Layout = { 1: { name: "name", type: "string" } };
const resourceAttributes: Layout = {
  1: { name: "namespace", type: "string" },
  2: { name: "verb", type: "string" },
  3: { name: "group", type: "string" },
  4: { name: "version", type: "string" },
  5: { name: "resource", type: "string" },
  6: { name: "subresource", type: "string" },
  7: { name: "name", type: "string" },
};
const nonResourceAttributes: Layout = {
  1: { name: "path", type: "string" },
  2: { name: "verb", type: "string" },
};

/** Layouts of the kinds this module decodes, by `apiVersion/kind`. */
const layouts: Record<string, Layout> = {
  "authorization.k8s.io/v1/SelfSubjectAccessReview": {
    1: { name: "metadata", type: objectMeta },
    2: {
      name: "spec",
      type: {
        1: { name: "resourceAttributes", type: resourceAttributes },
        2: { name: "nonResourceAttributes", type: nonResourceAttributes },
      },
    },
  },
  "authorization.k8s.io/v1/SubjectAccessReview": {
    1: { name: "metadata", type: objectMeta },
    2: {
      name: "spec",
      type: {
        1: { name: "resourceAttributes", type: resourceAttributes },
        2: { name: "nonResourceAttributes", type: nonResourceAttributes },
        3: { name: "user", type: "string" },
        4: { name: "groups", type: "string", repeated: true },
        6: { name: "uid", type: "string" },
      },
    },
  },
  "authorization.k8s.io/v1/SelfSubjectRulesReview": {
    1: { name: "metadata", type: objectMeta },
    2: { name: "spec", type: { 1: { name: "namespace", type: "string" } } },
  },
  "authentication.k8s.io/v1/SelfSubjectReview": {
    1: { name: "metadata", type: objectMeta },
  },
};

const unknownEnvelope: Layout = {
  1: {
    name: "typeMeta",
    type: { 1: { name: "apiVersion", type: "string" }, 2: { name: "kind", type: "string" } },
  },
  2: { name: "raw", type: "bytes" },
};

class Reader {
  #bytes: Uint8Array;
  #at: number;
  #end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    this.#bytes = bytes;
    this.#at = start;
    this.#end = end;
  }

  get done(): boolean {
    return this.#at >= this.#end;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.#at >= this.#end) throw new Error("Expected more bytes in a varint, the body ended");
      const b = this.#bytes[this.#at++];
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
  }

  /** The bounds of a length-delimited field. */
  span(): { start: number; end: number } {
    const length = this.varint();
    const start = this.#at;
    if (start + length > this.#end) {
      throw new Error(`Expected ${length} bytes in a field, ${this.#end - start} were left`);
    }
    this.#at = start + length;
    return { start, end: start + length };
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.#at += 8;
    else if (wireType === 2) this.span();
    else if (wireType === 5) this.#at += 4;
    else throw new Error(`Expected a protobuf wire type 0, 1, 2 or 5, got ${wireType}`);
  }

  get bytes(): Uint8Array {
    return this.#bytes;
  }
}

function decodeMessage(reader: Reader, layout: Layout): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  while (!reader.done) {
    const key = reader.varint();
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    const entry = layout[field];
    if (entry === undefined) {
      reader.skip(wireType);
      continue;
    }
    if (wireType !== 2) throw new Error(`Expected field ${field} to be length-delimited`);
    const { start, end } = reader.span();
    let value: unknown;
    if (entry.type === "bytes") value = reader.bytes.subarray(start, end);
    else if (entry.type === "string") {
      value = new TextDecoder().decode(reader.bytes.subarray(start, end));
    } else value = decodeMessage(new Reader(reader.bytes, start, end), entry.type);
    if (entry.repeated) {
      const list = (out[entry.name] as unknown[] | undefined) ?? [];
      list.push(value);
      out[entry.name] = list;
    } else {
      out[entry.name] = value;
    }
  }
  return out;
}

/**
 * Decodes a protobuf request body of a review kind into its JSON form;
 * other kinds are answered with 415, naming the kinds the simulator reads.
 */
export function decodeProtobufBody(bytes: Uint8Array): Record<string, unknown> {
  const magic = [0x6b, 0x38, 0x73, 0x00];
  const accepted = ["application/json", "application/yaml"];
  if (bytes.length < 4 || magic.some((b, i) => bytes[i] !== b)) {
    throw unsupportedMediaType(protobufContentType, accepted);
  }
  let envelope: Record<string, unknown>;
  try {
    envelope = decodeMessage(new Reader(bytes, 4), unknownEnvelope);
  } catch (e) {
    throw badRequest(
      `the protobuf body could not be decoded: ${e instanceof Error ? e.message : e}`,
    );
  }
  const typeMeta = (envelope.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const apiVersion = typeMeta.apiVersion ?? "";
  const kind = typeMeta.kind ?? "";
  const layout = layouts[`${apiVersion}/${kind}`];
  const raw = envelope.raw instanceof Uint8Array ? envelope.raw : new Uint8Array();
  if (layout === undefined) {
    throw unsupportedMediaType(`${protobufContentType} (${apiVersion} ${kind})`, accepted);
  }
  try {
    return { apiVersion, kind, ...decodeMessage(new Reader(raw), layout) };
  } catch (e) {
    throw badRequest(
      `the protobuf body could not be decoded: ${e instanceof Error ? e.message : e}`,
    );
  }
}
