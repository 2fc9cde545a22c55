import assert from "node:assert/strict";
import { errorMessage } from "../lib/errors.ts";

Deno.test("errorMessage: Errors, objects a stream failed with, and plain values read as text", () => {
  assert.equal(errorMessage(new TypeError("connection reset")), "connection reset");
  assert.equal(errorMessage({ message: "cut" }), "cut");
  assert.equal(errorMessage({ code: 7 }), "{ code: 7 }");
  const custom = { [Symbol.for("Deno.customInspect")]: () => "stream cut by the server" };
  assert.equal(errorMessage(custom), "stream cut by the server");
  assert.equal(errorMessage("plain"), "plain");
  assert.equal(errorMessage(undefined), "undefined");
});
