import assert from "node:assert/strict";
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch } from "./patch.ts";
import type { Json, JsonObject } from "./patch.ts";
import {
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from "./selectors.ts";
import { ApiError } from "./status.ts";

const keys = {
  "metadata.finalizers": "",
  "spec.containers": "name",
  "spec.containers.env": "name",
  "status.conditions": "type",
};

Deno.test("strategic merge patch replaces unkeyed lists and merges keyed ones", () => {
  const target: JsonObject = {
    metadata: { finalizers: ["a"] },
    spec: {
      taints: [{ key: "x", effect: "NoSchedule" }],
      containers: [{ name: "c", image: "old", env: [{ name: "A", value: "1" }] }],
    },
    status: { conditions: [{ type: "Ready", status: "True" }, { type: "X", status: "True" }] },
  };
  const out = applyStrategicMergePatch(target, {
    metadata: { finalizers: ["b"] },
    spec: {
      taints: [{ key: "y", effect: "NoExecute" }],
      containers: [{ name: "c", image: "new", env: [{ name: "B", value: "2" }] }, {
        name: "d",
        image: "i",
      }],
    },
    status: { conditions: [{ type: "Ready", status: "False" }, { type: "X", $patch: "delete" }] },
  }, keys);
  assert.deepEqual(out, {
    metadata: { finalizers: ["a", "b"] },
    spec: {
      taints: [{ key: "y", effect: "NoExecute" }],
      containers: [
        { name: "c", image: "new", env: [{ name: "A", value: "1" }, { name: "B", value: "2" }] },
        { name: "d", image: "i" },
      ],
    },
    status: { conditions: [{ type: "Ready", status: "False" }] },
  });
  const removed = applyStrategicMergePatch(out, {
    metadata: { "$deleteFromPrimitiveList/finalizers": ["a"] },
    spec: { taints: null, containers: [{ $patch: "replace" }, { name: "z", image: "i" }] },
  }, keys);
  assert.deepEqual(removed.metadata, { finalizers: ["b"] });
  assert.deepEqual(removed.spec, { containers: [{ name: "z", image: "i" }] });
  assert.equal(
    target.spec && (target.spec as JsonObject).taints !== undefined,
    true,
    "input untouched",
  );
});

Deno.test("merge patch deletes with null and replaces lists", () => {
  assert.deepEqual(
    applyMergePatch({ a: { b: 1, c: 2 }, l: [1, 2] }, { a: { b: null, d: 3 }, l: [3] }),
    { a: { c: 2, d: 3 }, l: [3] },
  );
});

Deno.test("json patch applies the RFC 6902 operations and fails with 422", () => {
  const doc = { metadata: { name: "x", finalizers: ["a", "b"] } };
  assert.deepEqual(
    applyJsonPatch(doc, [
      { op: "test", path: "/metadata/name", value: "x" },
      { op: "remove", path: "/metadata/finalizers/0" },
      { op: "add", path: "/metadata/finalizers/-", value: "c" },
      { op: "add", path: "/metadata/annotations", value: { "a~b/c": "1" } },
      { op: "replace", path: "/metadata/annotations/a~0b~1c", value: "2" },
      { op: "copy", from: "/metadata/name", path: "/metadata/generateName" },
      { op: "move", from: "/metadata/generateName", path: "/metadata/alias" },
    ]),
    { metadata: { name: "x", finalizers: ["b", "c"], annotations: { "a~b/c": "2" }, alias: "x" } },
  );
  const failing: Json[] = [
    { op: "test", path: "/metadata/name", value: "y" },
    { op: "remove", path: "/nope" },
  ];
  for (const op of failing) {
    try {
      applyJsonPatch(doc, [op]);
      assert.fail("Expected the patch to fail");
    } catch (e) {
      assert.ok(e instanceof ApiError);
      assert.equal(e.code, 422);
    }
  }
});

Deno.test("label selectors support every operator", () => {
  const labels = { app: "web", tier: "front", n: "5" };
  const cases: [string, boolean][] = [
    ["", true],
    ["app=web", true],
    ["app==web,tier=front", true],
    ["app!=web", false],
    ["app in (web, api)", true],
    ["app notin (web)", false],
    ["missing notin (x)", true],
    ["tier", true],
    ["!tier", false],
    ["!missing", true],
    ["n>4,n<6", true],
    ["missing!=x", true],
  ];
  for (const [selector, expected] of cases) {
    assert.equal(matchesLabels(parseLabelSelector(selector), labels), expected, selector);
  }
  for (const bad of ["app in web", "app=(x", "=x", "n>x"]) {
    assert.throws(
      () => parseLabelSelector(bad),
      (e) => e instanceof ApiError && e.code === 400,
      bad,
    );
  }
});

Deno.test("field selectors support =, == and != with escapes", () => {
  const sel = parseFieldSelector("a=x\\,y,b==2,c!=3");
  assert.deepEqual(sel, [
    { field: "a", op: "=", value: "x,y" },
    { field: "b", op: "=", value: "2" },
    { field: "c", op: "!=", value: "3" },
  ]);
  assert.equal(matchesFields(sel, { a: "x,y", b: "2", c: "4" }), true);
  assert.equal(matchesFields(sel, { a: "x,y", b: "2", c: "3" }), false);
  assert.throws(() => parseFieldSelector("a~b"), (e) => e instanceof ApiError && e.code === 400);
});
