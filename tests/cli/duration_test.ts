import assert from "node:assert/strict";
import { DurationError, formatDuration, parseDuration } from "../../lib/duration.ts";

Deno.test("parseDuration reads Go-style durations into milliseconds", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["+0", 0],
    ["0s", 0],
    ["5s", 5_000],
    ["+5s", 5_000],
    ["1.5s", 1_500],
    [".5s", 500],
    ["5.s", 5_000],
    ["500ms", 500],
    ["1m0s", 60_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["1h2m3.5s", 3_723_500],
    ["1h1h", 7_200_000],
    ["1us", 0.001],
    ["1µs", 0.001],
    ["1μs", 0.001],
    ["1500us", 1.5],
    ["100ns", 0.0001],
    ["2562047h47m16.854775807s", 9_223_372_036_854.775],
  ];
  for (const [text, milliseconds] of cases) {
    assert.equal(parseDuration(text), milliseconds, text);
  }
});

Deno.test("parseDuration says what it expected for text that is not a duration", () => {
  const cases: [string, string][] = [
    ["", "a duration such as 5s or 1m0s"],
    ["5x", "a duration such as 5s or 1m0s"],
    ["s", "a duration such as 5s or 1m0s"],
    [".", "a duration such as 5s or 1m0s"],
    ["1.2.3s", "a duration such as 5s or 1m0s"],
    ["1e3s", "a duration such as 5s or 1m0s"],
    ["5 s", "a duration such as 5s or 1m0s"],
    ["five seconds", "a duration such as 5s or 1m0s"],
    ["5", "a duration with a unit (ns, us, ms, s, m or h), such as 5s or 1m0s"],
    ["0.0", "a duration with a unit (ns, us, ms, s, m or h), such as 5s or 1m0s"],
    ["1m30", "a duration with a unit (ns, us, ms, s, m or h), such as 5s or 1m0s"],
    ["-5s", "a duration that is not negative, such as 5s or 1m0s"],
    ["-0", "a duration that is not negative, such as 5s or 1m0s"],
    ["2562047h47m16.854775808s", "a duration of at most 2562047h47m16.854775807s"],
  ];
  for (const [text, expected] of cases) {
    assert.throws(() => parseDuration(text), (error: unknown) => {
      assert.ok(error instanceof DurationError, text);
      assert.equal(error.expected, expected, text);
      assert.equal(error.message, `Expected ${expected}, got "${text}"`);
      return true;
    });
  }
});

Deno.test("formatDuration writes durations the way Go does", () => {
  const cases: [number, string][] = [
    [0, "0s"],
    [0.0001, "100ns"],
    [0.25, "250µs"],
    [1.5, "1.5ms"],
    [500, "500ms"],
    [1_000, "1s"],
    [1_500, "1.5s"],
    [5_000, "5s"],
    [60_000, "1m0s"],
    [90_000, "1m30s"],
    [300_000, "5m0s"],
    [3_600_000, "1h0m0s"],
    [3_723_500, "1h2m3.5s"],
    [90_061_001, "25h1m1.001s"],
  ];
  for (const [milliseconds, text] of cases) {
    assert.equal(formatDuration(milliseconds), text, String(milliseconds));
  }
});

Deno.test("formatDuration rejects negative and infinite durations", () => {
  assert.throws(() => formatDuration(-1), {
    name: "RangeError",
    message: "Expected a finite duration of 0 or more milliseconds, got -1",
  });
  assert.throws(() => formatDuration(Infinity), {
    message: "Expected a finite duration of 0 or more milliseconds, got Infinity",
  });
});

Deno.test("formatted durations parse back to the same milliseconds", () => {
  const samples = [0, 0.001, 0.5, 1, 1.5, 999, 1_000, 5_000, 59_999, 60_000, 300_000, 3_723_500];
  for (const milliseconds of samples) {
    assert.equal(parseDuration(formatDuration(milliseconds)), milliseconds, String(milliseconds));
  }
  for (const text of ["5s", "1m0s", "5m0s", "1h2m3.5s", "500ms", "1.5s", "0s", "250µs"]) {
    assert.equal(formatDuration(parseDuration(text)), text, text);
  }
});
