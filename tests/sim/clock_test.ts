import assert from "node:assert/strict";
import { SimClock } from "./clock.ts";
import { waitFor } from "../helpers.ts";

/** Keeps the event loop busy for `ms` real milliseconds, as a loaded machine does. */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* busy */ }
}

Deno.test("overdue timers run in the order of their simulated due time, one per macrotask", async () => {
  const clock = new SimClock({ scale: 10 });
  try {
    const ran: string[] = [];
    // Made in the opposite order of their due times, then all overdue at once.
    // The due times are fixed from one reading of the clock: with `after`, a
    // stall of 5 real ms between two calls (a loaded CI machine) made "b"
    // due after "c".
    const t0 = clock.now();
    clock.at(t0 + 150, () => ran.push("c"));
    clock.at(t0 + 100, () => {
      ran.push("b");
      // A promise continuation runs before the next timer.
      Promise.resolve().then(() => ran.push("b's continuation"));
    });
    clock.at(t0 + 50, () => ran.push("a"));
    clock.at(t0 + 100, () => ran.push("b2"));
    stall(50);
    await waitFor(() => ran.length === 5, 2_000, () => `five timers, ran ${ran}`);
    assert.deepEqual(ran, ["a", "b", "b's continuation", "b2", "c"]);
  } finally {
    clock.stop();
  }
});

Deno.test("a timer made by a timer runs after those already due before it", async () => {
  const clock = new SimClock({ scale: 10 });
  try {
    const ran: string[] = [];
    clock.after(50, () => {
      ran.push("first");
      clock.after(50, () => ran.push("chained"));
    });
    clock.after(100, () => ran.push("later"));
    stall(50);
    await waitFor(() => ran.length === 3, 2_000, () => `three timers, ran ${ran}`);
    assert.deepEqual(ran, ["first", "later", "chained"]);
  } finally {
    clock.stop();
  }
});

Deno.test("cancelled and stopped timers do not run; every repeats until cancelled", async () => {
  const clock = new SimClock({ scale: 100 });
  try {
    let ticks = 0;
    const cancelTicks = clock.every(500, () => ticks++);
    const ran: string[] = [];
    const cancel = clock.after(200, () => ran.push("cancelled"));
    clock.after(300, () => ran.push("kept"));
    cancel();
    await waitFor(() => ticks >= 3, 2_000, () => `three ticks, got ${ticks}`);
    cancelTicks();
    const at = ticks;
    assert.deepEqual(ran, ["kept"]);
    clock.after(100, () => ran.push("stopped"));
    clock.stop();
    // A later timer of a fresh clock: by then the cancelled ones would have run.
    const other = new SimClock({ scale: 100 });
    let later = false;
    other.after(2_000, () => later = true);
    await waitFor(() => later, 2_000, "a timer of another clock");
    assert.deepEqual(ran, ["kept"]);
    assert.equal(ticks, at);
  } finally {
    clock.stop();
  }
});

Deno.test("a bad scale is refused", () => {
  assert.throws(() => new SimClock({ scale: 0 }), /Expected a positive time scale, got 0/);
});

Deno.test("timers made by a timer keep their order on a busy event loop", async () => {
  // Native setTimeout does not promise this: with the same schedule, plain
  // timers 1 and 2 ms apart ran the later one first in about one round in ten.
  let seed = 8;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const misordered: string[] = [];
  for (let round = 0; round < 150; round++) {
    const clock = new SimClock({ scale: 1 });
    const ran: number[] = [];
    const start = random() * 2;
    clock.after(start, () => {
      clock.after(1, () => ran.push(1));
      clock.after(2, () => ran.push(2));
    });
    const lateBy = random();
    const stallMs = random() * 5;
    setTimeout(() => stall(stallMs), start + lateBy);
    const busy = setInterval(() => stall(random() * 3), 1);
    try {
      await waitFor(() => ran.length === 2, 2_000, () => `round ${round}: two timers, ran ${ran}`);
    } finally {
      clearInterval(busy);
      clock.stop();
    }
    if (ran.join() !== "1,2") misordered.push(`round ${round}: ${ran}`);
  }
  assert.deepEqual(misordered, []);
});
