/**
 * The version of ha-controller, in one place (it matches package.json).
 *
 * @module
 */

/** The version printed by `ha-controller --version` and exposed as build info. */
export const version = "0.1.0";
