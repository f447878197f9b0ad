/**
 * The README's webhook verification snippet works as written: it is extracted, written to a
 * module, and run against a real delivery from Portal's delivery engine.
 */
import assert from "node:assert/strict";
import { createMigratedDatabase } from "./helpers/db.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { deliveryDeps, emit } from "./helpers/webhooks.ts";
import { addEndpoint } from "../src/webhooks/endpoint_service.ts";
import { deliverDueOnce } from "../src/webhooks/delivery_worker.ts";

const README = new URL("../README.md", import.meta.url);

/** The first ```ts block after `<!-- snippet:NAME -->`. */
async function snippet(name: string): Promise<string> {
  const text = await Deno.readTextFile(README);
  const marker = text.indexOf(`<!-- snippet:${name} -->`);
  assert.ok(marker >= 0, `README.md has no <!-- snippet:${name} --> marker`);
  const match = /```ts\n([\s\S]*?)```/.exec(text.slice(marker));
  assert.ok(match, `README.md has no ts block after the ${name} marker`);
  return match[1]!;
}

Deno.test("README's verifyPortalWebhook snippet verifies a real Portal delivery", async () => {
  const dir = await Deno.makeTempDir({ prefix: "portal-readme-" });
  const { testDb, db } = await createMigratedDatabase("readme");
  const receiver = startReceiver();
  try {
    await Deno.writeTextFile(`${dir}/verify.ts`, await snippet("verify-webhook"));
    const { verifyPortalWebhook } = await import(`file://${dir}/verify.ts`);
    const endpoint = await addEndpoint({ db }, { url: receiver.url });
    await emit(db, "file.stored", { file_id: "f1", size_bytes: 3 });
    await deliverDueOnce(deliveryDeps(db));
    await receiver.waitFor(1);
    const request = receiver.requests[0]!;

    const event = verifyPortalWebhook(endpoint.secret, request.headers, request.body);
    assert.equal(event.type, "file.stored");
    assert.deepEqual(event.data, { file_id: "f1", size_bytes: 3 });
    assert.throws(
      () => verifyPortalWebhook(endpoint.secret, request.headers, request.body + " "),
      /invalid signature/,
    );
    assert.throws(
      () =>
        verifyPortalWebhook(
          "whsec_" + btoa("another secret entirely"),
          request.headers,
          request.body,
        ),
      /invalid signature/,
    );
  } finally {
    await receiver.close();
    await testDb.drop();
    await Deno.remove(dir, { recursive: true });
  }
});
