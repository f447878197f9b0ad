import assert from "node:assert/strict";
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
      addEndpoint({ db }, { url: "https://example.com/hook", description: "bad\u0000name" }),
      (error) => error instanceof WebhookEndpointError && /control characters/.test(error.message),
    );
    await assert.rejects(
      addEndpoint({ db }, { url: "https://example.com/hook", description: "x".repeat(501) }),
      WebhookEndpointError,
    );
    const ok = await addEndpoint({ db }, {
      url: "https://example.com/hook",
      description: "  CRM  ",
    });
    assert.equal(ok.description, "CRM");
  } finally {
    await testDb.drop();
  }
});
