/**
 * Shared test helpers: the one place where test deadlines are scaled for a
 * loaded machine, and polling with such a deadline.
 *
 * Every deadline a test waits on is the time an idle machine needs, times
 * {@linkcode deadlineScale}. A deadline only matters when a condition is
 * late: a test that passes is no slower with a larger scale.
 *
 * @module
 */

/** The environment variable that sets {@linkcode deadlineScale}. */
export const deadlineScaleVariable = "HA_TEST_DEADLINE_SCALE";

/**
 * Default factor: the full parallel suite on a busy 2-core machine runs
 * several agent processes, controllers and API servers per core; their
 * conditions take up to about three times as long as on an idle machine.
 */
const defaultDeadlineScale = 3;

function readDeadlineScale(): number {
  let text: string | undefined;
  try {
    text = Deno.env.get(deadlineScaleVariable);
  } catch {
    // No --allow-env: the default applies.
    return defaultDeadlineScale;
  }
  if (text === undefined || text.trim() === "") return defaultDeadlineScale;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `Expected ${deadlineScaleVariable} to be a positive number, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/**
 * Factor applied to every test deadline: `HA_TEST_DEADLINE_SCALE` if set
 * (a positive number, e.g. `1` on a fast idle machine, `10` under a
 * debugger), else 3.
 */
export const deadlineScale: number = readDeadlineScale();

/** A deadline of `ms` on an idle machine, scaled for this one (whole milliseconds). */
export function deadline(ms: number): number {
  return Math.ceil(ms * deadlineScale);
}

/**
 * Poll `condition` every 20 ms until it holds; throw with `what` once
 * `timeoutMs` (an idle machine's deadline, scaled by {@linkcode deadline})
 * has passed. `what` may be a function, to describe the state at the time
 * of the timeout (e.g. an agent's stderr so far).
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string | (() => string),
): Promise<void> {
  const effectiveMs = deadline(timeoutMs);
  const end = performance.now() + effectiveMs;
  while (true) {
    if (await condition()) return;
    if (performance.now() > end) {
      const described = typeof what === "string" ? what : what();
      throw new Error(`timed out after ${effectiveMs}ms waiting for: ${described}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
