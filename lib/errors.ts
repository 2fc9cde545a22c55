/**
 * Small helpers for thrown values, shared by every part of the agent.
 *
 * @module
 */

/** The message of an unknown thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
