/**
 * Small helpers for thrown values, shared by every part of the agent.
 *
 * @module
 */

/**
 * The message of an unknown thrown value. A stream may fail with any value
 * (a fetch body errors with whatever its source gave), so an object that is
 * not an Error is shown by its `message`, or as Deno prints it, never as
 * "[object Object]".
 */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === "object" && err !== null) {
    const message = (err as { message?: unknown }).message;
    if (typeof message === "string") return message;
    return Deno.inspect(err, { depth: 2, compact: true, breakLength: Infinity });
  }
  return String(err);
}
