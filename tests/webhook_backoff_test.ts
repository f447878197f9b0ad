import assert from "node:assert/strict";
import { applyRetryAfter, nextAttemptDelaySeconds } from "../src/webhooks/backoff.ts";

// SPEC §5 Delivery: min(60 * 2^(attempt-1), 3600) seconds plus up to 10% jitter.
const PORTAL = { baseSeconds: 60, maxSeconds: 3600 };
const EXPECTED = [60, 120, 240, 480, 960, 1920, 3600, 3600];

Deno.test("nextAttemptDelaySeconds() doubles from 60 s up to the 3600 s cap without jitter", () => {
  const delays = EXPECTED.map((_, index) =>
    nextAttemptDelaySeconds(index + 1, { ...PORTAL, random: () => 0 })
  );
  assert.deepEqual(delays, EXPECTED);
});

Deno.test("nextAttemptDelaySeconds() adds at most 10% jitter", () => {
  EXPECTED.forEach((base, index) => {
    const delay = nextAttemptDelaySeconds(index + 1, { ...PORTAL, random: () => 0.999 });
    assert.ok(delay > base && delay < base * 1.1, `attempt ${index + 1}: ${delay}`);
    assert.equal(delay, base + base * 0.1 * 0.999);
  });
});

Deno.test("nextAttemptDelaySeconds() stays within bounds with the default random source", () => {
  for (let attempt = 1; attempt <= 8; attempt++) {
    const base = EXPECTED[attempt - 1] ?? 0;
    const delay = nextAttemptDelaySeconds(attempt, PORTAL);
    assert.ok(delay >= base && delay < base * 1.1, `attempt ${attempt}: ${delay}`);
  }
});

Deno.test("nextAttemptDelaySeconds() caps huge attempt numbers and treats attempt < 1 as 1", () => {
  assert.equal(nextAttemptDelaySeconds(5000, { ...PORTAL, random: () => 0 }), 3600);
  assert.equal(nextAttemptDelaySeconds(0, { ...PORTAL, random: () => 0 }), 60);
  assert.equal(nextAttemptDelaySeconds(3, { baseSeconds: 1, maxSeconds: 10, random: () => 0 }), 4);
});

Deno.test("applyRetryAfter() waits for the later of backoff and Retry-After", () => {
  assert.equal(applyRetryAfter(60, null), 60);
  assert.equal(applyRetryAfter(60, 30), 60);
  assert.equal(applyRetryAfter(60, 120), 120);
  assert.equal(applyRetryAfter(60, 0), 60);
});

Deno.test("applyRetryAfter() caps a receiver's Retry-After", () => {
  assert.equal(applyRetryAfter(60, 10_000_000), 86_400);
  assert.equal(applyRetryAfter(60, 7200, { maxSeconds: 3600 }), 3600);
  assert.equal(applyRetryAfter(5000, 7200, { maxSeconds: 3600 }), 5000);
});
