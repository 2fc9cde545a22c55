// The client's shared helpers: one errorMessage for the whole agent.

import assert from "node:assert/strict";
import { errorMessage } from "../../lib/errors.ts";
import * as client from "../../lib/kube/client.ts";
import * as kube from "../../lib/kube/mod.ts";

Deno.test("errorMessage lives in lib/errors.ts and the Kubernetes edge re-exports that one", () => {
  assert.equal(client.errorMessage, errorMessage);
  assert.equal(kube.errorMessage, errorMessage);
  assert.equal(errorMessage(new Error("connection refused")), "connection refused");
  assert.equal(errorMessage("plain text"), "plain text");
});
