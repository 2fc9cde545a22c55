/**
 * Silence Node-compat deprecation warnings before any dependency loads.
 * @kubernetes/client-node 1.4 pulls in `punycode` (through node-fetch), and
 * Deno's Node layer prints DEP0040 for it on every start: noise for
 * operators, nothing they can act on.
 *
 * @module
 */

import process from "node:process";

process.noDeprecation = true;
