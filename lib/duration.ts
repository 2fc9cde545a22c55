/**
 * Durations written the way Go writes them (`5s`, `1m0s`, `1h2m3.5s`, `500ms`),
 * so flags and Helm values keep the spelling operators know from the Go
 * version of this agent. Inside the program durations are milliseconds.
 *
 * @module
 */

const nanosecondsPerUnit: ReadonlyMap<string, bigint> = new Map([
  ["ns", 1n],
  ["us", 1_000n],
  ["\u00b5s", 1_000n], // MICRO SIGN
  ["\u03bcs", 1_000n], // GREEK SMALL LETTER MU
  ["ms", 1_000_000n],
  ["s", 1_000_000_000n],
  ["m", 60_000_000_000n],
  ["h", 3_600_000_000_000n],
]);

/** The largest duration Go can represent (2^63-1 ns); longer ones are rejected like Go does. */
const maxNanoseconds = 2n ** 63n - 1n;

const nanosecondsPerMillisecond = 1_000_000n;

/** One `<number><unit>` element, e.g. `1.5` and `h`. */
const elementPattern = /^(\d*)(?:\.(\d*))?([^\d.]+)/;

/** Why a text is not a duration; `expected` completes "expected ..." in a usage message. */
export class DurationError extends RangeError {
  /** What was expected, e.g. `a duration such as 5s or 1m0s` (lower case, no period). */
  readonly expected: string;
  /** The text that was not a duration. */
  readonly text: string;

  /** Builds the error for `text` from what was `expected` instead. */
  constructor(text: string, expected: string) {
    super(`Expected ${expected}, got "${text}"`);
    this.name = "DurationError";
    this.expected = expected;
    this.text = text;
  }
}

const example = "such as 5s or 1m0s";

/**
 * Parses a Go-style duration into milliseconds.
 *
 * Accepts a sequence of decimal numbers with an optional fraction, each with
 * a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), for example `5s`, `1m0s`,
 * `1h2m3.5s`, `500ms` or `1.5s`, and the bare `0`. A leading `+` is allowed,
 * as in Go. Durations below one millisecond give fractional milliseconds.
 *
 * @throws {DurationError} for a negative duration, a number without unit
 *   (other than `0`), an unknown unit, anything else that is not a duration,
 *   and a duration longer than Go's limit of about 292 years.
 */
export function parseDuration(text: string): number {
  let rest = text;
  if (rest.startsWith("-")) {
    throw new DurationError(text, `a duration that is not negative, ${example}`);
  }
  if (rest.startsWith("+")) rest = rest.slice(1);
  if (rest === "0") return 0;
  if (rest === "") throw new DurationError(text, `a duration ${example}`);

  let total = 0n;
  while (rest !== "") {
    const match = elementPattern.exec(rest);
    if (match === null) {
      if (/^(\d+(\.\d*)?|\.\d+)$/.test(rest)) {
        throw new DurationError(text, `a duration with a unit (ns, us, ms, s, m or h), ${example}`);
      }
      throw new DurationError(text, `a duration ${example}`);
    }
    const [element, whole, fraction = "", unitText] = match;
    if (whole === "" && fraction === "") throw new DurationError(text, `a duration ${example}`);
    const unit = nanosecondsPerUnit.get(unitText);
    if (unit === undefined) throw new DurationError(text, `a duration ${example}`);
    total += BigInt(whole === "" ? "0" : whole) * unit;
    if (fraction !== "") {
      // Go truncates the fraction to whole nanoseconds.
      total += BigInt(fraction) * unit / 10n ** BigInt(fraction.length);
    }
    if (total > maxNanoseconds) {
      throw new DurationError(text, "a duration of at most 2562047h47m16.854775807s");
    }
    rest = rest.slice(element.length);
  }
  return Number(total / nanosecondsPerMillisecond) +
    Number(total % nanosecondsPerMillisecond) / 1_000_000;
}

/**
 * Formats milliseconds the way Go's `time.Duration.String` does: `0s`, `500ms`,
 * `1.5s`, `5s`, `1m0s`, `5m0s`, `1h2m3.5s`. Fractions of a millisecond are
 * shown to the nanosecond (`1.5ms`, `250µs`, `100ns`).
 *
 * @throws {RangeError} when `milliseconds` is negative or not finite.
 */
export function formatDuration(milliseconds: number): string {
  if (!Number.isFinite(milliseconds) || milliseconds < 0) {
    throw new RangeError(
      `Expected a finite duration of 0 or more milliseconds, got ${milliseconds}`,
    );
  }
  const whole = Math.trunc(milliseconds);
  const nanoseconds = BigInt(whole) * nanosecondsPerMillisecond +
    BigInt(Math.round((milliseconds - whole) * 1_000_000));

  if (nanoseconds === 0n) return "0s";
  if (nanoseconds < 1_000n) return `${nanoseconds}ns`;
  if (nanoseconds < 1_000_000n) return `${decimal(nanoseconds, 3)}µs`;
  if (nanoseconds < 1_000_000_000n) return `${decimal(nanoseconds, 6)}ms`;

  const seconds = decimal(nanoseconds % 60_000_000_000n, 9);
  const totalMinutes = nanoseconds / 60_000_000_000n;
  if (totalMinutes === 0n) return `${seconds}s`;
  const hours = totalMinutes / 60n;
  const minutes = totalMinutes % 60n;
  if (hours === 0n) return `${minutes}m${seconds}s`;
  return `${hours}h${minutes}m${seconds}s`;
}

/** `value / 10^digits` as a decimal without trailing zeros in the fraction. */
function decimal(value: bigint, digits: number): string {
  const divisor = 10n ** BigInt(digits);
  const fraction = (value % divisor).toString().padStart(digits, "0").replace(/0+$/, "");
  const whole = (value / divisor).toString();
  return fraction === "" ? whole : `${whole}.${fraction}`;
}
