/**
 * A campaign worker: plays the seeds it is sent, one at a time, and answers
 * each with its {@linkcode SeedResult}.
 *
 * @module
 */

import { runSeed, type SeedResult } from "./main.ts";

/** The worker's global scope, as far as it is used here. */
const scope = self as unknown as {
  onmessage: (event: MessageEvent<number>) => void;
  postMessage: (result: SeedResult) => void;
};

scope.onmessage = async (event) => {
  scope.postMessage(await runSeed(event.data));
};
