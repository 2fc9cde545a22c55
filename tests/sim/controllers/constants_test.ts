import assert from "node:assert/strict";
import { SimClock } from "../clock.ts";
import { defaultKubeConstants, kubeConstants, periodFor } from "./constants.ts";

Deno.test("constants default to Kubernetes 1.32 and can be overridden one by one", () => {
  assert.equal(defaultKubeConstants.nodeMonitorGracePeriod, 50_000);
  assert.equal(defaultKubeConstants.nodeMonitorPeriod, 5_000);
  assert.equal(defaultKubeConstants.defaultTolerationSeconds, 300);
  assert.equal(defaultKubeConstants.reconcilerMaxWaitForUnmountDuration, 360_000);
  const c = kubeConstants({ nodeMonitorGracePeriod: 40_000, disableForceDetachOnTimeout: true });
  assert.equal(c.nodeMonitorGracePeriod, 40_000);
  assert.equal(c.disableForceDetachOnTimeout, true);
  assert.equal(c.nodeLeaseRenewInterval, 10_000);
  assert.throws(
    () => kubeConstants({ nodeMonitorPeriod: -1 }),
    /Expected a non-negative number for nodeMonitorPeriod, got -1/,
  );
});

Deno.test("periods never run more often than every few real milliseconds", () => {
  const clock = new SimClock({ scale: 1000 });
  assert.equal(periodFor(clock, 100), 5_000);
  assert.equal(periodFor(new SimClock({ scale: 1 }), 100), 100);
});
