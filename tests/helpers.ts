// Shared test helpers.

/** Poll `condition` every 20 ms until it holds; throw with `what` after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    if (await condition()) return;
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for: ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
