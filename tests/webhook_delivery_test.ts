import assert from "node:assert/strict";
import { PRIVATE_TARGETS_ALLOWED } from "./helpers/webhooks.ts";
import { createHmac } from "node:crypto";
import { Webhook } from "npm:standardwebhooks@1.1.1";
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
import { Metrics } from "../src/metrics/metrics.ts";
import { deliverDueOnce, startDeliveryLoop } from "../src/webhooks/delivery_loop.ts";
import { registerDeliveryMetrics } from "../src/webhooks/delivery_metrics.ts";
import {
  addEndpoint,
  disableEndpoint,
  rotateSecret,
  testEndpoint,
  WebhookEndpointError,
} from "../src/webhooks/endpoint_service.ts";
import { deleteOldEvents } from "../src/webhooks/event_service.ts";

function headerObject(headers: Headers): Record<string, string> {
  return Object.fromEntries(headers.entries());
}

Deno.test("deliverDueOnce() sends a signed request that standardwebhooks and an independent HMAC verify", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_signed");
  const receiver = startReceiver();
  try {
    const endpoint = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: receiver.url,
    });
    assert.match(endpoint.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    const payload = { file_id: "f1", original_filename: "report.pdf", size_bytes: 12 };
    const eventId = await emit(db, "file.stored", payload);

    const counts = await deliverDueOnce(deliveryDeps(db));
    assert.equal(counts.fannedOut, 1);
    assert.equal(counts.delivered, 1);
    assert.equal(receiver.requests.length, 1);

    const request = receiver.requests[0]!;
    const [delivery] = await deliveriesOf(db, eventId);
    assert.equal(request.method, "POST");
    assert.equal(request.headers.get("content-type"), "application/json");
    // Standard Webhooks, verified by the reference library a consumer would use.
    const verified = new Webhook(endpoint.secret).verify(
      request.body,
      headerObject(request.headers),
    ) as { type: string; data: unknown; timestamp: string };
    assert.equal(verified.type, "file.stored");
    assert.deepEqual(verified.data, payload);
    assert.equal(request.headers.get("webhook-id"), `msg_${delivery!.id}`);
    // The reference implementation's headers: hex HMAC-SHA256 of the body with the secret.
    const expected = createHmac("sha256", endpoint.secret).update(request.body).digest("hex");
    assert.equal(request.headers.get("x-webhook-signature"), expected);
    assert.equal(request.headers.get("x-webhook-event"), "file.stored");
    assert.equal(request.headers.get("x-webhook-delivery"), delivery!.id);

    assert.equal(delivery!.status, "delivered");
    assert.equal(delivery!.attempts, 1);
    assert.equal(delivery!.lastStatusCode, 200);
    assert.equal(delivery!.leaseOwner, null);
    const event = await eventState(db, eventId);
    assert.equal(event.status, "delivered");
    assert.equal(event.attempts, 1);
    assert.ok(event.deliveredAt instanceof Date);
    const attempts = await db.sql<{ statusCode: number; responseBody: string; error: string }[]>`
      SELECT status_code AS "statusCode", response_body AS "responseBody", error
      FROM webhook_attempt WHERE delivery_id = ${delivery!.id}`;
    assert.deepEqual(attempts.map((a) => ({ ...a })), [{
      statusCode: 200,
      responseBody: "ok",
      error: "",
    }]);
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("deliverDueOnce() matches event types: exact type, empty list = all, inactive skipped", async (t) => {
  const { testDb, db } = await createMigratedDatabase("webhook_matching");
  const receiver = startReceiver();
  const base = `http://127.0.0.1:${receiver.port}`;
  try {
    const stored = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: `${base}/stored`,
      eventTypes: ["file.stored"],
    });
    const all = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: `${base}/all` });
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: `${base}/deleted`,
      eventTypes: ["file.deleted"],
    });
    const inactive = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: `${base}/off`,
      eventTypes: ["file.stored"],
    });
    await disableEndpoint({ db }, inactive.id, { reason: "maintenance" });

    await t.step("file.stored reaches the exact match and the catch-all only", async () => {
      const eventId = await emit(db, "file.stored");
      await deliverDueOnce(deliveryDeps(db));
      const deliveries = await deliveriesOf(db, eventId);
      assert.deepEqual(
        deliveries.map((d) => d.endpointId).sort(),
        [stored.id, all.id].sort(),
      );
      assert.deepEqual(receiver.requests.map((r) => r.path).sort(), ["/all", "/stored"]);
      assert.equal((await eventState(db, eventId)).status, "delivered");
    });

    await t.step("a type only the catch-all wants reaches only it", async () => {
      receiver.requests.length = 0;
      const eventId = await emit(db, "file.expiring");
      await deliverDueOnce(deliveryDeps(db));
      assert.deepEqual((await deliveriesOf(db, eventId)).map((d) => d.endpointId), [all.id]);
      assert.deepEqual(receiver.requests.map((r) => r.path), ["/all"]);
    });

    await t.step("an event no endpoint wants is delivered with no request sent", async () => {
      await disableEndpoint({ db }, all.id);
      receiver.requests.length = 0;
      const eventId = await emit(db, "file.expiring");
      const counts = await deliverDueOnce(deliveryDeps(db));
      assert.equal(counts.fannedOut, 1);
      assert.equal(receiver.requests.length, 0);
      assert.equal((await deliveriesOf(db, eventId)).length, 0);
      const event = await eventState(db, eventId);
      assert.equal(event.status, "delivered");
      assert.ok(event.deliveredAt instanceof Date);
    });
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("rotateSecret() signs with both secrets for 24 hours, then with the new one only", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_rotation");
  const receiver = startReceiver();
  const clock = new ManualClock();
  try {
    const endpoint = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: receiver.url,
    });
    const rotated = await rotateSecret({ db, clock }, endpoint.id);
    assert.ok(rotated);
    assert.notEqual(rotated.secret, endpoint.secret);
    assert.equal(rotated.previousSecret, endpoint.secret);
    assert.equal(
      rotated.previousSecretExpiresAt?.getTime(),
      clock.now().getTime() + 24 * 3_600_000,
    );

    await emit(db, "file.stored", { n: 1 });
    clock.set(new Date()); // the event was stamped by the database clock just now
    await deliverDueOnce(deliveryDeps(db, { clock }));
    const during = receiver.requests[0]!;
    assert.equal(during.headers.get("webhook-signature")?.split(" ").length, 2);
    for (const secret of [rotated.secret, endpoint.secret]) {
      assert.doesNotThrow(() =>
        new Webhook(secret).verify(during.body, headerObject(during.headers))
      );
    }
    // The legacy header has room for one signature: the current secret.
    assert.equal(
      during.headers.get("x-webhook-signature"),
      createHmac("sha256", rotated.secret).update(during.body).digest("hex"),
    );

    // 25 hours later the previous secret has expired. standardwebhooks checks the timestamp
    // against the real clock, so the event is emitted and sent at the real time: only the
    // expiry is moved, by rewinding it.
    await db.sql`
      UPDATE webhook_endpoint SET previous_secret_expires_at = now() - interval '1 hour'
      WHERE id = ${endpoint.id}`;
    await emit(db, "file.stored", { n: 2 });
    await deliverDueOnce(deliveryDeps(db));
    const after = receiver.requests[1]!;
    assert.equal(after.headers.get("webhook-signature")?.split(" ").length, 1);
    assert.doesNotThrow(() =>
      new Webhook(rotated.secret).verify(after.body, headerObject(after.headers))
    );
    assert.throws(() =>
      new Webhook(endpoint.secret).verify(after.body, headerObject(after.headers))
    );
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("deliverDueOnce() fails an attempt when the receiver never answers within the timeout", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_timeout");
  const receiver = startReceiver((_req, { hang }) => hang());
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: receiver.url });
    const eventId = await emit(db, "file.stored");
    const config = webhookTestConfig({ WEBHOOK_TIMEOUT_SECONDS: "1" });
    const started = performance.now();
    const counts = await deliverDueOnce(deliveryDeps(db, { config }));
    const elapsed = performance.now() - started;
    assert.equal(counts.retried, 1);
    assert.ok(elapsed >= 1000 && elapsed < 5000, `took ${elapsed} ms`);
    const [delivery] = await deliveriesOf(db, eventId);
    assert.equal(delivery!.status, "pending");
    assert.equal(delivery!.attempts, 1);
    assert.equal(delivery!.lastStatusCode, null);
    assert.equal(delivery!.lastError, "timeout after 1000 ms");
    const event = await eventState(db, eventId);
    assert.equal(event.status, "pending");
    assert.equal(event.errorMessage, `${receiver.url}: timeout after 1000 ms`);
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("deliverDueOnce() refuses a loopback endpoint when private targets are not allowed", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_ssrf");
  const receiver = startReceiver();
  try {
    const url = `http://127.0.0.1:${receiver.port}/`;
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url });
    const eventId = await emit(db, "file.stored");
    const metrics = new Metrics();
    const config = webhookTestConfig({ PORTAL_WEBHOOK_ALLOW_PRIVATE: "false" });
    const counts = await deliverDueOnce(deliveryDeps(db, { config, metrics }));
    assert.equal(counts.refused, 1);
    assert.equal(receiver.requests.length, 0, "no request may reach the receiver");
    const [delivery] = await deliveriesOf(db, eventId);
    assert.equal(delivery!.status, "failed", "a refused URL is not retried");
    assert.equal(delivery!.attempts, 1);
    assert.equal(
      delivery!.lastError,
      `Refused webhook URL "${url}": address 127.0.0.1 is not allowed (loopback)`,
    );
    const event = await eventState(db, eventId);
    assert.equal(event.status, "failed");
    assert.match(event.errorMessage, /not allowed \(loopback\)/);
    assert.equal(
      metrics.counter("portal_webhook_deliveries_total", "").get({ outcome: "refused" }),
      1,
    );
    // Even with the clock far ahead, nothing is sent.
    const clock = new ManualClock(new Date(Date.now() + 86_400_000));
    assert.equal((await deliverDueOnce(deliveryDeps(db, { config, clock }))).refused, 0);
    assert.equal(receiver.requests.length, 0);
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("deliverDueOnce() retries a host that does not resolve, sending nothing, and says so", async (t) => {
  const { testDb, db } = await createMigratedDatabase("webhook_unresolved");
  const receiver = startReceiver();
  try {
    // RFC 6761 §6.4: a .invalid name never resolves. The lookup would send it to the receiver,
    // so a request reaching the receiver would mean the guard let the name through.
    const url = `http://hooks.portal-test.invalid:${receiver.port}/hook`;
    const lookup = () => Promise.resolve(["127.0.0.1"]);
    const reason =
      `Cannot resolve host "hooks.portal-test.invalid" of webhook URL "${url}": .invalid names never resolve`;
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url });
    const eventId = await emit(db, "file.stored");
    const clock = new ManualClock();
    const config = webhookTestConfig({ WEBHOOK_MAX_ATTEMPTS: "2" });

    await t.step("the first attempt is pending, to be retried, with nothing sent", async () => {
      const metrics = new Metrics();
      const counts = await deliverDueOnce(deliveryDeps(db, { config, clock, lookup, metrics }));
      assert.deepEqual(counts, { fannedOut: 1, delivered: 0, retried: 1, failed: 0, refused: 0 });
      assert.equal(receiver.requests.length, 0, "no request may be sent");
      const [delivery] = await deliveriesOf(db, eventId);
      assert.equal(delivery!.status, "pending");
      assert.equal(delivery!.attempts, 1);
      assert.equal(delivery!.lastStatusCode, null);
      assert.equal(delivery!.lastError, `${reason}; will retry`);
      assert.doesNotMatch(delivery!.lastError, /Refused/);
      assert.ok(delivery!.nextAttemptAt.getTime() > clock.now().getTime());
      const attempts = await db.sql<{ statusCode: number | null; error: string }[]>`
        SELECT status_code AS "statusCode", error FROM webhook_attempt
        WHERE delivery_id = ${delivery!.id}`;
      assert.deepEqual(attempts.map((a) => ({ ...a })), [{
        statusCode: null,
        error: `${reason}; will retry`,
      }]);
      assert.equal((await eventState(db, eventId)).status, "pending");
      assert.equal(
        metrics.counter("portal_webhook_deliveries_total", "").get({ outcome: "retry" }),
        1,
      );
    });

    await t.step("the last attempt fails the delivery without promising a retry", async () => {
      clock.advance(3_600_000);
      const counts = await deliverDueOnce(deliveryDeps(db, { config, clock, lookup }));
      assert.equal(counts.failed, 1);
      assert.equal(receiver.requests.length, 0);
      const [delivery] = await deliveriesOf(db, eventId);
      assert.equal(delivery!.status, "failed");
      assert.equal(delivery!.attempts, 2);
      assert.equal(delivery!.lastError, reason);
      assert.equal((await eventState(db, eventId)).status, "failed");
    });
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("deleteOldEvents() deletes old delivered and failed events with their deliveries, never pending ones", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_retention");
  const receiver = startReceiver((req) =>
    new Response("", { status: JSON.parse(req.body).data.fail ? 400 : 200 })
  );
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: receiver.url });
    const config = webhookTestConfig({ WEBHOOK_MAX_ATTEMPTS: "1" });
    const delivered = await emit(db, "file.stored", { fail: false });
    const failed = await emit(db, "file.stored", { fail: true });
    const recent = await emit(db, "file.deleted", { fail: false });
    await deliverDueOnce(deliveryDeps(db, { config }));
    assert.equal((await eventState(db, failed)).status, "failed");
    assert.equal((await eventState(db, recent)).status, "delivered");
    // A backlog event no worker has reached yet.
    const pending = await emit(db, "file.stored");
    const age = config.outboxRetentionHours + 1;
    await db.sql`
      UPDATE outbox_event SET updated_at = now() - make_interval(hours => ${age}),
                              created_at = now() - make_interval(hours => ${age})
      WHERE id IN (${delivered}, ${failed}, ${pending})`;

    const result = await deleteOldEvents({ db, config });
    assert.equal(result.deleted, 2);
    const left = await db.sql<{ id: string }[]>`SELECT id FROM outbox_event ORDER BY id`;
    assert.deepEqual(left.map((r) => r.id).sort(), [pending, recent].sort());
    const orphans = await db.sql`
      SELECT d.id FROM webhook_delivery d
      WHERE d.event_id NOT IN (SELECT id FROM outbox_event)`;
    assert.equal(orphans.length, 0);
    const attempts = await db.sql<{ count: number }[]>`
      SELECT count(*)::int AS count FROM webhook_attempt`;
    assert.equal(attempts[0]!.count, 1, "the attempts of the deleted events went with them");
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("testEndpoint() sends portal.test now and returns the answer", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_test_send");
  const receiver = startReceiver(() => new Response("pong", { status: 202 }));
  try {
    const endpoint = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: receiver.url,
    });
    const answer = await testEndpoint({ db, config: webhookTestConfig() }, endpoint.id);
    assert.equal(answer?.sent, true);
    assert.equal(answer?.statusCode, 202);
    assert.equal(answer?.error, "");
    assert.equal(answer?.responseStart, "pong");
    const request = receiver.requests[0]!;
    assert.equal(request.headers.get("x-webhook-event"), "portal.test");
    const body = new Webhook(endpoint.secret).verify(
      request.body,
      headerObject(request.headers),
    ) as { type: string; data: { endpoint_id: string } };
    assert.equal(body.type, "portal.test");
    assert.equal(body.data.endpoint_id, endpoint.id);
    assert.equal(
      await testEndpoint({ db, config: webhookTestConfig() }, crypto.randomUUID()),
      null,
    );
    const outbox = await db.sql`SELECT id FROM outbox_event`;
    assert.equal(outbox.length, 0, "a test event is not recorded");
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("addEndpoint() rejects a non-http URL, a malformed secret and a bad event type", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_validation");
  try {
    await assert.rejects(
      addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: "ftp://example.com/x" }),
      (e: Error) =>
        e instanceof WebhookEndpointError && /only http and https URLs are allowed/.test(e.message),
    );
    await assert.rejects(
      addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: "not a url" }),
      WebhookEndpointError,
    );
    await assert.rejects(
      addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
        url: "https://example.com/",
        secret: "hunter2",
      }),
      /expected "whsec_"/,
    );
    await assert.rejects(
      addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
        url: "https://example.com/",
        eventTypes: ["file stored"],
      }),
      /Cannot use event type "file stored"/,
    );
    const kept = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: "https://example.com/hooks",
      secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      eventTypes: ["file.stored", "file.stored", "file.deleted"],
      description: " ops ",
    });
    assert.equal(kept.secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert.deepEqual(kept.eventTypes, ["file.stored", "file.deleted"]);
    assert.equal(kept.description, "ops");
    assert.equal(kept.isActive, true);
  } finally {
    await testDb.drop();
  }
});

Deno.test("registerDeliveryMetrics() reports the outbox backlog and lag at scrape time", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_metrics");
  try {
    const metrics = new Metrics();
    registerDeliveryMetrics(metrics, db);
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: "http://127.0.0.1:9/never" });
    await emit(db, "file.stored");
    await db.sql`UPDATE outbox_event SET created_at = now() - interval '90 seconds'`;
    const text = await metrics.render();
    assert.match(text, /^portal_outbox_pending_events 1$/m);
    assert.match(text, /^portal_webhook_pending_deliveries 0$/m);
    const lag = Number(/^portal_outbox_oldest_pending_age_seconds (\S+)$/m.exec(text)?.[1]);
    assert.ok(lag >= 90 && lag < 120, `lag ${lag}`);
    assert.match(text, /^portal_webhook_deliveries_total\{outcome="delivered"\} 0$/m);
    assert.match(text, /# TYPE portal_webhook_attempt_duration_seconds histogram/);
  } finally {
    await testDb.drop();
  }
});

Deno.test("startDeliveryLoop() delivers an event when its transaction commits and stops cleanly", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_loop");
  const receiver = startReceiver();
  const loop = startDeliveryLoop(deliveryDeps(testDb.open()));
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: receiver.url });
    await loop.drained();
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await emit(db, "file.stored", { i });
      await receiver.waitFor(i + 1, 4000);
      // NOTIFY wakes the loop: far sooner than its 5 s fallback timer.
      const waited = performance.now() - started;
      assert.ok(waited < 1000, `waited ${waited} ms`);
    }
    await loop.drained();
    assert.equal(loop.counts().delivered, 3);
    const pending = await db.sql`SELECT id FROM outbox_event WHERE status <> 'delivered'`;
    assert.equal(pending.length, 0);
  } finally {
    await loop.stop(1000);
    await receiver.close();
    await testDb.drop();
  }
});
