/**
 * Label and field selectors as kube-apiserver parses and applies them.
 *
 * Label selectors: comma means AND; terms `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
 * `k notin (a,b)`, `k`, `!k`, `k>n`, `k<n`. Field selectors: comma means AND;
 * only `=`, `==` and `!=`, with `\,` `\=` `\\` escapes in values. Which field
 * labels a kind supports is decided by the resource definition, not here.
 *
 * @module
 */

import { badRequest } from "./status.ts";

/** One parsed label requirement. */
export interface LabelRequirement {
  /** Label key. */
  key: string;
  /** Operator. */
  op: "=" | "!=" | "in" | "notin" | "exists" | "!" | ">" | "<";
  /** Values (one for `=`, `!=`, `>`, `<`; none for `exists` and `!`). */
  values: string[];
}

/** A parsed label selector; an empty list matches everything. */
export type LabelSelector = LabelRequirement[];

interface Token {
  kind: "id" | "op" | "(" | ")" | ",";
  text: string;
}

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i];
    if (c === " " || c === "\t" || c === "\n") {
      i++;
    } else if (c === "(" || c === ")" || c === ",") {
      tokens.push({ kind: c, text: c });
      i++;
    } else if (c === "=" || c === "!" || c === "<" || c === ">") {
      const two = input.slice(i, i + 2);
      if (two === "==" || two === "!=") {
        tokens.push({ kind: "op", text: two });
        i += 2;
      } else {
        tokens.push({ kind: "op", text: c });
        i++;
      }
    } else {
      let j = i;
      while (j < input.length && !" \t\n(),=!<>".includes(input[j])) j++;
      tokens.push({ kind: "id", text: input.slice(i, j) });
      i = j;
    }
  }
  return tokens;
}

const labelPart = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function checkKey(selector: string, key: string): void {
  const slash = key.lastIndexOf("/");
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (name === "" || name.length > 63 || !labelPart.test(name)) {
    throw badRequest(
      `unable to parse requirement: invalid label key "${key}" in selector '${selector}'`,
    );
  }
}

function checkValue(selector: string, value: string): void {
  if (value.length > 63 || !labelPart.test(value)) {
    throw badRequest(
      `unable to parse requirement: invalid label value: "${value}" in selector '${selector}'`,
    );
  }
}

/** Parses a `labelSelector` query value; throws a 400 ApiError when it cannot. */
export function parseLabelSelector(input: string | null | undefined): LabelSelector {
  if (input === null || input === undefined || input.trim() === "") return [];
  const tokens = tokenize(input);
  const out: LabelRequirement[] = [];
  let pos = 0;
  const fail = (why: string): never => {
    throw badRequest(`unable to parse requirement: ${why} in selector '${input}'`);
  };
  const peek = (): Token | undefined => tokens[pos];
  const next = (): Token | undefined => tokens[pos++];
  while (pos < tokens.length) {
    let t = next();
    if (t === undefined) break;
    if (t.kind === "op" && t.text === "!") {
      const key = next();
      if (key === undefined || key.kind !== "id") fail("found '!' without a key");
      checkKey(input, key!.text);
      out.push({ key: key!.text, op: "!", values: [] });
    } else if (t.kind === "id") {
      const key = t.text;
      checkKey(input, key);
      const op = peek();
      if (op === undefined || op.kind === ",") {
        out.push({ key, op: "exists", values: [] });
      } else if (op.kind === "id" && (op.text === "in" || op.text === "notin")) {
        pos++;
        if (next()?.kind !== "(") fail(`expected '(' after '${op.text}'`);
        const values: string[] = [];
        for (;;) {
          t = next();
          if (t === undefined) fail("missing ')'");
          if (t!.kind === ")") break;
          if (t!.kind === ",") continue;
          if (t!.kind !== "id") fail(`unexpected '${t!.text}'`);
          checkValue(input, t!.text);
          values.push(t!.text);
        }
        if (values.length === 0) {
          fail(`for '${op.text}', 'notin' operators, values set can't be empty`);
        }
        out.push({ key, op: op.text as "in" | "notin", values });
      } else if (op.kind === "op" && op.text !== "!") {
        pos++;
        const v = peek();
        let value = "";
        if (v !== undefined && v.kind === "id") {
          value = v.text;
          pos++;
        }
        checkValue(input, value);
        const sym = op.text === "==" ? "=" : op.text as "=" | "!=" | ">" | "<";
        if ((sym === ">" || sym === "<") && !/^-?\d+$/.test(value)) {
          fail(`for 'Gt', 'Lt' operators, the value must be an integer`);
        }
        out.push({ key, op: sym, values: [value] });
      } else {
        fail(`unexpected '${op.text}' after key '${key}'`);
      }
    } else {
      fail(`unexpected '${t.text}'`);
    }
    const sep = next();
    if (sep !== undefined && sep.kind !== ",") fail(`expected ',' but found '${sep.text}'`);
  }
  return out;
}

/** Whether `labels` satisfy every requirement. */
export function matchesLabels(
  selector: LabelSelector,
  labels: Record<string, string> | undefined,
): boolean {
  const have = labels ?? {};
  for (const r of selector) {
    const present = Object.hasOwn(have, r.key);
    const value = present ? have[r.key] : undefined;
    switch (r.op) {
      case "=":
        if (value !== r.values[0]) return false;
        break;
      case "!=":
        if (value === r.values[0]) return false;
        break;
      case "in":
        if (value === undefined || !r.values.includes(value)) return false;
        break;
      case "notin":
        if (value !== undefined && r.values.includes(value)) return false;
        break;
      case "exists":
        if (!present) return false;
        break;
      case "!":
        if (present) return false;
        break;
      case ">":
      case "<": {
        if (value === undefined || !/^-?\d+$/.test(value)) return false;
        const n = Number(value);
        const limit = Number(r.values[0]);
        if (r.op === ">" ? !(n > limit) : !(n < limit)) return false;
        break;
      }
    }
  }
  return true;
}

/** Matches a `metav1.LabelSelector` object (PDB, StatefulSet selectors). */
export function matchesLabelSelectorObject(
  selector: {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: string; values?: string[] }[];
  } | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (selector === undefined || selector === null) return false;
  const reqs: LabelRequirement[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    reqs.push({ key, op: "=", values: [value] });
  }
  for (const e of selector.matchExpressions ?? []) {
    const op = e.operator === "In"
      ? "in"
      : e.operator === "NotIn"
      ? "notin"
      : e.operator === "Exists"
      ? "exists"
      : "!";
    reqs.push({ key: e.key, op, values: e.values ?? [] });
  }
  return matchesLabels(reqs, labels);
}

/** One parsed field requirement. */
export interface FieldRequirement {
  /** Field label, e.g. `spec.nodeName`. */
  field: string;
  /** `=` (also for `==`) or `!=`. */
  op: "=" | "!=";
  /** Value after unescaping. */
  value: string;
}

/** A parsed field selector; an empty list matches everything. */
export type FieldSelector = FieldRequirement[];

function splitUnescaped(input: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c === "\\" && i + 1 < input.length) {
      cur += c + input[i + 1];
      i++;
    } else if (c === sep) {
      parts.push(cur);
      cur = "";
    } else {
      cur += c;
    }
  }
  parts.push(cur);
  return parts;
}

function unescapeValue(selector: string, raw: string): string {
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c === "\\") {
      const n = raw[i + 1];
      if (n === "\\" || n === "," || n === "=") {
        out += n;
        i++;
        continue;
      }
      throw badRequest(`invalid selector: '${selector}'; invalid escape sequence in '${raw}'`);
    }
    if (c === "," || c === "=") {
      throw badRequest(`invalid selector: '${selector}'; unescaped '${c}' in '${raw}'`);
    }
    out += c;
  }
  return out;
}

/** Parses a `fieldSelector` query value; throws a 400 ApiError when it cannot. */
export function parseFieldSelector(input: string | null | undefined): FieldSelector {
  if (input === null || input === undefined || input === "") return [];
  const out: FieldRequirement[] = [];
  for (const part of splitUnescaped(input, ",")) {
    if (part === "") continue;
    let found = false;
    for (const op of ["!=", "==", "="] as const) {
      const at = indexOfUnescaped(part, op);
      if (at < 0) continue;
      const field = part.slice(0, at);
      const value = unescapeValue(input, part.slice(at + op.length));
      out.push({ field, op: op === "!=" ? "!=" : "=", value });
      found = true;
      break;
    }
    if (!found) throw badRequest(`invalid selector: '${input}'; can't understand '${part}'`);
  }
  return out;
}

function indexOfUnescaped(text: string, needle: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\") {
      i++;
      continue;
    }
    if (text.startsWith(needle, i)) return i;
  }
  return -1;
}

/** Whether the computed field values satisfy every requirement. */
export function matchesFields(selector: FieldSelector, fields: Record<string, string>): boolean {
  for (const r of selector) {
    const value = fields[r.field] ?? "";
    if (r.op === "=" ? value !== r.value : value === r.value) return false;
  }
  return true;
}
