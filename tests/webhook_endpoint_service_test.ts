import assert from "node:assert/strict";
import { PRIVATE_TARGETS_ALLOWED } from "./helpers/webhooks.ts";
import { createMigratedDatabase } from "./helpers/db.ts";
import {
  addEndpoint,
  deleteEndpoint,
  disableEndpoint,
  enableEndpoint,
  getEndpoint,
  rotateSecret,
  WebhookEndpointError,
} from "../src/webhooks/endpoint_service.ts";
import { getEventDetail, retryEvent } from "../src/webhooks/event_service.ts";
import { fanOutDueEvents } from "../src/webhooks/fanout.ts";
import { emit } from "./helpers/webhooks.ts";

Deno.test("webhook services answer malformed ids with not-found and refuse bad descriptions", async () => {
  const { testDb, db } = await createMigratedDatabase("endpoint_service");
  try {
    for (const id of ["", "not-a-uuid", "1' OR '1'='1", "\u0000"]) {
      assert.equal(await getEndpoint({ db }, id), null);
      assert.equal(await enableEndpoint({ db }, id), null);
      assert.equal(await disableEndpoint({ db }, id, { reason: "x" }), null);
      assert.equal(await rotateSecret({ db }, id), null);
      assert.equal(await deleteEndpoint({ db }, id), false);
      assert.equal(await getEventDetail({ db }, id), null);
      assert.equal(await retryEvent({ db }, id), null);
    }
    await assert.rejects(
      addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
        url: "https://example.com/hook",
        description: "bad\u0000name",
      }),
      (error) => error instanceof WebhookEndpointError && /control characters/.test(error.message),
    );
    await assert.rejects(
      addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
        url: "https://example.com/hook",
        description: "x".repeat(501),
      }),
      WebhookEndpointError,
    );
    const ok = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: "https://example.com/hook",
      description: "  CRM  ",
    });
    assert.equal(ok.description, "CRM");
  } finally {
    await testDb.drop();
  }
});

Deno.test("fanOutDueEvents() gives the event the attempt limit of its deliveries", async () => {
  const { testDb, db } = await createMigratedDatabase("fanout_max_attempts");
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: "https://example.com/hook" });
    const eventId = await emit(db, "file.stored");
    const result = await fanOutDueEvents({ db }, { now: new Date(), maxAttempts: 3 });
    assert.equal(result.deliveries, 1);
    const [event] = await db.sql<{ maxAttempts: number }[]>`
      SELECT max_attempts AS "maxAttempts" FROM outbox_event WHERE id = ${eventId}`;
    const [delivery] = await db.sql<{ maxAttempts: number }[]>`
      SELECT max_attempts AS "maxAttempts" FROM webhook_delivery WHERE event_id = ${eventId}`;
    assert.equal(event?.maxAttempts, 3);
    assert.equal(delivery?.maxAttempts, 3);
  } finally {
    await testDb.drop();
  }
});

Deno.test("fanOutDueEvents() takes a fresh event even when the worker's clock is behind the database's", async () => {
  // A worker on another host whose clock runs 5 s behind Postgres: the event its commit's
  // NOTIFY wakes it for is stamped with the database's time, and must not wait for that clock.
  const { testDb, db } = await createMigratedDatabase("fanout_clock_skew");
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: "https://example.com/hook" });
    const eventId = await emit(db, "file.stored");
    const behind = new Date(Date.now() - 5_000);
    const result = await fanOutDueEvents({ db }, { now: behind, maxAttempts: 5 });
    assert.equal(result.deliveries, 1);
    const [delivery] = await db.sql<{ eventId: string }[]>`
      SELECT event_id AS "eventId" FROM webhook_delivery`;
    assert.equal(delivery?.eventId, eventId);
  } finally {
    await testDb.drop();
  }
});
