import assert from "node:assert/strict";
import { PRIVATE_TARGETS_ALLOWED } from "./helpers/webhooks.ts";
import { createMigratedDatabase } from "./helpers/db.ts";
import { startReceiver } from "./helpers/receiver.ts";
import {
  deliveriesOf,
  deliveryDeps,
  emit,
  eventState,
  ManualClock,
  webhookTestConfig,
} from "./helpers/webhooks.ts";
import { deliverDueOnce } from "../src/webhooks/delivery_loop.ts";
import { applyDeliveryUpdates, claimDueDeliveries } from "../src/outbox/deliveries_repo.ts";
import { fanOutDueEvents } from "../src/webhooks/fanout.ts";
import {
  addEndpoint,
  deleteEndpoint,
  disableEndpoint,
  enableEndpoint,
  getEndpoint,
} from "../src/webhooks/endpoint_service.ts";
import { retryAllFailed, retryEvent } from "../src/webhooks/event_service.ts";

const SECOND = 1000;

Deno.test("deliverDueOnce() retries with min(60·2^(n-1), 3600) s plus up to 10% jitter, then fails with the last error", async (t) => {
  const { testDb, db } = await createMigratedDatabase("webhook_schedule");
  const receiver = startReceiver((_req, { index }) =>
    new Response(`boom ${index + 1}`, { status: 500 })
  );
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: receiver.url });
    const eventId = await emit(db, "file.stored");
    const clock = new ManualClock();
    const jitter = [0, 0.999, 0.5, 0.25, 0];
    let attempt = 0;
    const deps = deliveryDeps(db, { clock, random: () => jitter[attempt - 1] ?? 0 });

    for (const base of [60, 120, 240, 480]) {
      await t.step(`attempt ${attempt + 1} fails and waits ${base} s + jitter`, async () => {
        clock.set(new Date(Math.max(clock.now().getTime(), Date.now())));
        attempt++;
        const counts = await deliverDueOnce(deps);
        assert.equal(counts.retried, 1);
        const [delivery] = await deliveriesOf(db, eventId);
        assert.equal(delivery!.status, "pending");
        assert.equal(delivery!.attempts, attempt);
        const waited = (delivery!.nextAttemptAt.getTime() - clock.now().getTime()) / SECOND;
        const expected = base + base * 0.1 * jitter[attempt - 1]!;
        assert.ok(Math.abs(waited - expected) < 0.01, `waited ${waited} s, expected ${expected}`);
        assert.ok(waited >= base && waited <= base * 1.1);
        // Nothing is due before the scheduled time.
        clock.advance(waited * SECOND - 1000);
        assert.equal((await deliverDueOnce(deps)).retried, 0);
        clock.set(delivery!.nextAttemptAt);
        const event = await eventState(db, eventId);
        assert.equal(event.status, "pending");
        assert.equal(event.attempts, attempt);
        assert.equal(event.nextAttemptAt.getTime(), delivery!.nextAttemptAt.getTime());
      });
    }

    await t.step("attempt 5 fails the delivery and the event with the last error", async () => {
      attempt++;
      const counts = await deliverDueOnce(deps);
      assert.equal(counts.failed, 1);
      const [delivery] = await deliveriesOf(db, eventId);
      assert.equal(delivery!.status, "failed");
      assert.equal(delivery!.attempts, 5);
      assert.equal(delivery!.lastStatusCode, 500);
      assert.equal(delivery!.lastError, "HTTP 500");
      const event = await eventState(db, eventId);
      assert.equal(event.status, "failed");
      assert.equal(event.attempts, 5);
      assert.equal(event.errorMessage, `${receiver.url}: HTTP 500`);
      const attempts = await db.sql<{ n: number; body: string }[]>`
        SELECT attempt_number AS n, response_body AS body FROM webhook_attempt
        ORDER BY attempt_number`;
      assert.deepEqual(attempts.map((a) => [a.n, a.body]), [
        [1, "boom 1"],
        [2, "boom 2"],
        [3, "boom 3"],
        [4, "boom 4"],
        [5, "boom 5"],
      ]);
      clock.advance(86_400 * SECOND);
      assert.equal((await deliverDueOnce(deps)).failed, 0, "a failed delivery is not sent again");
    });

    await t.step("every attempt carried the same webhook-id", () => {
      assert.equal(receiver.requests.length, 5);
      const ids = new Set(receiver.requests.map((r) => r.headers.get("webhook-id")));
      assert.equal(ids.size, 1);
    });

    await t.step("retryEvent() starts it again from attempt 0 and it is delivered", async () => {
      const result = await retryEvent({ db, clock }, eventId);
      assert.deepEqual(result, { events: 1, deliveries: 1 });
      const [reset] = await deliveriesOf(db, eventId);
      assert.equal(reset!.status, "pending");
      assert.equal(reset!.attempts, 0);
      assert.equal(reset!.nextAttemptAt.getTime(), clock.now().getTime());
      const event = await eventState(db, eventId);
      assert.equal(event.status, "pending");
      assert.equal(event.attempts, 0);
      assert.equal(event.errorMessage, "");

      receiver.respond(() => new Response("ok"));
      assert.equal((await deliverDueOnce(deps)).delivered, 1);
      assert.equal((await eventState(db, eventId)).status, "delivered");
      assert.equal(receiver.requests.length, 6);
      assert.equal(
        receiver.requests[5]!.headers.get("webhook-id"),
        receiver.requests[0]!.headers.get("webhook-id"),
      );
      assert.deepEqual(await retryEvent({ db }, eventId), { events: 0, deliveries: 0 });
      assert.equal(await retryEvent({ db }, crypto.randomUUID()), null);
    });
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("deliverDueOnce() caps the backoff at 3600 s", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_cap");
  const receiver = startReceiver(() => new Response("", { status: 502 }));
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: receiver.url });
    const eventId = await emit(db, "file.stored");
    const clock = new ManualClock();
    const config = webhookTestConfig({ WEBHOOK_MAX_ATTEMPTS: "8" });
    const deps = deliveryDeps(db, { clock, config, random: () => 0.999999 });
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      clock.set(new Date(Math.max(clock.now().getTime(), Date.now())));
      await deliverDueOnce(deps);
      const [delivery] = await deliveriesOf(db, eventId);
      waits.push(Math.round((delivery!.nextAttemptAt.getTime() - clock.now().getTime()) / SECOND));
      clock.set(delivery!.nextAttemptAt);
    }
    // 60·2^(n-1) capped at 3600, each plus (almost) the full 10% jitter.
    assert.deepEqual(waits, [66, 132, 264, 528, 1056, 2112, 3960]);
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("deliverDueOnce() waits at least as long as Retry-After on 429 and 503", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_retry_after");
  const receiver = startReceiver((_req, { index }) =>
    index === 0
      ? new Response("slow down", { status: 429, headers: { "Retry-After": "7200" } })
      : new Response("busy", { status: 503, headers: { "Retry-After": "5" } })
  );
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: receiver.url });
    const eventId = await emit(db, "file.stored");
    const clock = new ManualClock();
    clock.set(new Date());
    const deps = deliveryDeps(db, { clock, random: () => 0 });
    await deliverDueOnce(deps);
    let [delivery] = await deliveriesOf(db, eventId);
    assert.equal(delivery!.lastStatusCode, 429);
    assert.equal(delivery!.nextAttemptAt.getTime() - clock.now().getTime(), 7200 * SECOND);
    clock.set(delivery!.nextAttemptAt);
    await deliverDueOnce(deps);
    [delivery] = await deliveriesOf(db, eventId);
    assert.equal(delivery!.lastStatusCode, 503);
    // Retry-After 5 is sooner than the backoff (120 s for attempt 2): the backoff wins.
    assert.equal(delivery!.nextAttemptAt.getTime() - clock.now().getTime(), 120 * SECOND);
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("deliverDueOnce() disables an endpoint that answers 410 Gone and fails that delivery", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_gone");
  const receiver = startReceiver(() => new Response("gone", { status: 410 }));
  try {
    const endpoint = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: receiver.url,
    });
    const eventId = await emit(db, "file.stored");
    const counts = await deliverDueOnce(deliveryDeps(db));
    assert.equal(counts.failed, 1);
    const [delivery] = await deliveriesOf(db, eventId);
    assert.equal(delivery!.status, "failed");
    assert.equal(delivery!.attempts, 1);
    assert.equal(delivery!.lastStatusCode, 410);
    const after = await getEndpoint({ db }, endpoint.id);
    assert.equal(after?.isActive, false);
    assert.match(after!.disabledReason, /410 Gone/);
    assert.equal((await eventState(db, eventId)).status, "failed");
    // Later events skip the disabled endpoint.
    const next = await emit(db, "file.stored");
    await deliverDueOnce(deliveryDeps(db));
    assert.equal((await eventState(db, next)).status, "delivered");
    assert.equal(receiver.requests.length, 1);
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("a failing endpoint never causes a second delivery to the endpoint that succeeded", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_partial");
  const receiver = startReceiver((req) =>
    new Response("", { status: req.path === "/bad" ? 500 : 200 })
  );
  const base = `http://127.0.0.1:${receiver.port}`;
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: `${base}/good` });
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: `${base}/bad` });
    const eventId = await emit(db, "file.stored");
    const clock = new ManualClock();
    const deps = deliveryDeps(db, { clock });
    for (let i = 0; i < 5; i++) {
      clock.set(new Date(Math.max(clock.now().getTime(), Date.now())));
      await deliverDueOnce(deps);
      clock.advance(2 * 3600 * SECOND);
    }
    assert.equal((await eventState(db, eventId)).status, "failed");
    const paths = () => receiver.requests.map((r) => r.path);
    assert.equal(paths().filter((p) => p === "/good").length, 1);
    assert.equal(paths().filter((p) => p === "/bad").length, 5);

    const retried = await retryAllFailed({ db, clock });
    assert.deepEqual(retried, { events: 1, deliveries: 1 });
    receiver.respond(() => new Response("ok"));
    await deliverDueOnce(deps);
    assert.equal((await eventState(db, eventId)).status, "delivered");
    assert.equal(paths().filter((p) => p === "/good").length, 1, "no second delivery to /good");
    assert.equal(paths().filter((p) => p === "/bad").length, 6);
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("applyDeliveryUpdates() drops a result whose lease was taken over by another worker", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_lease_guard");
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: "http://127.0.0.1:9/" });
    const eventId = await emit(db, "file.stored");
    const t0 = new Date(Date.now() + SECOND);
    await fanOutDueEvents({ db }, { now: t0, maxAttempts: 5 });
    const leaseA = new Date(t0.getTime() + 10 * SECOND);
    const [claimA] = await claimDueDeliveries(db.sql, {
      now: t0,
      leasedUntil: leaseA,
      owner: "worker-a",
      limit: 10,
    });
    assert.ok(claimA);
    // Still leased: another worker cannot claim it.
    const early = await claimDueDeliveries(db.sql, {
      now: new Date(t0.getTime() + 5 * SECOND),
      leasedUntil: new Date(t0.getTime() + 15 * SECOND),
      owner: "worker-b",
      limit: 10,
    });
    assert.equal(early.length, 0);
    // Worker A stalls past its lease; B claims and delivers.
    const t1 = new Date(t0.getTime() + 11 * SECOND);
    const [claimB] = await claimDueDeliveries(db.sql, {
      now: t1,
      leasedUntil: new Date(t1.getTime() + 10 * SECOND),
      owner: "worker-b",
      limit: 10,
    });
    assert.equal(claimB?.id, claimA.id);
    const update = {
      id: claimA.id,
      attempts: 1,
      lastError: "",
      deliveredAt: t1,
      nextAttemptAt: t1,
    };
    const appliedB = await applyDeliveryUpdates(db.sql, {
      owner: "worker-b",
      now: t1,
      updates: [{
        ...update,
        leasedUntil: claimB!.leasedUntil,
        status: "delivered",
        lastStatusCode: 200,
      }],
    });
    assert.equal(appliedB.length, 1);
    // A's late failure report must not overwrite B's success.
    const appliedA = await applyDeliveryUpdates(db.sql, {
      owner: "worker-a",
      now: t1,
      updates: [{
        ...update,
        leasedUntil: leaseA,
        status: "pending",
        lastStatusCode: 500,
        lastError: "HTTP 500",
        deliveredAt: null,
      }],
    });
    assert.equal(appliedA.length, 0);
    const [delivery] = await deliveriesOf(db, eventId);
    assert.equal(delivery!.status, "delivered");
    assert.equal(delivery!.lastStatusCode, 200);
  } finally {
    await testDb.drop();
  }
});

Deno.test("deleteEndpoint() settles the events that were waiting only on it", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_delete_settles");
  const receiver = startReceiver((req) =>
    new Response("", { status: req.path === "/bad" ? 500 : 200 })
  );
  const base = `http://127.0.0.1:${receiver.port}`;
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: `${base}/good` });
    const bad = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: `${base}/bad` });
    const eventId = await emit(db, "file.stored");
    await deliverDueOnce(deliveryDeps(db));
    assert.equal((await eventState(db, eventId)).status, "pending");
    assert.equal(await deleteEndpoint({ db }, bad.id), true);
    const event = await eventState(db, eventId);
    assert.equal(event.status, "delivered");
    assert.equal((await deliveriesOf(db, eventId)).length, 1);
    assert.equal(await deleteEndpoint({ db }, bad.id), false);
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("deliverDueOnce() fails pending deliveries of an endpoint disabled after fan-out, without a request", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_disabled_later");
  const receiver = startReceiver();
  try {
    const endpoint = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: receiver.url,
    });
    const eventId = await emit(db, "file.stored");
    const clock = new ManualClock();
    clock.set(new Date());
    // Fan out now, deliver later: the endpoint is disabled in between.
    await fanOutDueEvents({ db }, { now: clock.now(), maxAttempts: 5 });
    await disableEndpoint({ db }, endpoint.id, { reason: "receiver migration" });
    const counts = await deliverDueOnce(deliveryDeps(db, { clock }));
    assert.equal(counts.failed, 1);
    assert.equal(receiver.requests.length, 0);
    const [delivery] = await deliveriesOf(db, eventId);
    assert.equal(delivery!.status, "failed");
    assert.equal(delivery!.attempts, 0);
    assert.equal(
      delivery!.lastError,
      `Cannot deliver to endpoint "${endpoint.id}": it is disabled: receiver migration`,
    );
    // Enabled again, a retry delivers it.
    await enableEndpoint({ db }, endpoint.id);
    await retryEvent({ db, clock }, eventId);
    assert.equal((await deliverDueOnce(deliveryDeps(db, { clock }))).delivered, 1);
    assert.equal(receiver.requests.length, 1);
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});
