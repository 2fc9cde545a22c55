/**
 * Arrays that never change once handed out, such as a cache's `items()`
 * until its next change, and values derived from them once per array.
 *
 * Marked, not frozen: V8 runs `filter` and friends on a frozen array through
 * a slow path (about 6 times slower here), and the rules filter these arrays
 * thousands of times per decision cycle.
 *
 * @module
 */

const unchanging = new WeakSet<readonly unknown[]>();

/** Mark `array` as never changing again, and return it typed read-only. */
export function markUnchanging<T>(array: T[]): readonly T[] {
  unchanging.add(array);
  return array;
}

/**
 * `build` memoized per array: an array marked by `markUnchanging` is built
 * once for as long as it lives; any other array every call.
 */
export function derivedOf<T, V>(build: (array: readonly T[]) => V): (array: readonly T[]) => V {
  const memo = new WeakMap<readonly T[], V>();
  return (array) => {
    const known = memo.get(array);
    if (known !== undefined) return known;
    const value = build(array);
    if (unchanging.has(array)) memo.set(array, value);
    return value;
  };
}
