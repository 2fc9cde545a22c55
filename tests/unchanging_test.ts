import assert from "node:assert/strict";
import { derivedOf, markUnchanging } from "../lib/unchanging.ts";

Deno.test("derivedOf builds once per marked array and every call for any other", () => {
  let builds = 0;
  const sum = derivedOf((xs: readonly number[]) => {
    builds++;
    return xs.reduce((a, b) => a + b, 0);
  });
  const plain = [1, 2];
  assert.equal(sum(plain), 3);
  plain.push(3);
  assert.equal(sum(plain), 6, "an unmarked array may change: no stale answer");
  assert.equal(builds, 2);
  const marked = markUnchanging([4, 5]);
  assert.equal(sum(marked), 9);
  assert.equal(sum(marked), 9);
  assert.equal(builds, 3);
  assert.equal(sum(markUnchanging([4, 5])), 9, "another array, built again");
  assert.equal(builds, 4);
  assert.equal(Object.isFrozen(marked), false, "marked, not frozen (V8's fast paths)");
});
