/**
 * End to end, every part real: an API client uploads a file over loopback HTTP, the delivery
 * loop the jobs run (woken by the upload's NOTIFY) sends `file.stored` to a receiver on loopback,
 * the receiver verifies it with the Standard Webhooks reference library, and fetches the
 * payload's `url` with no credentials at all: the same bytes come back, on local storage
 * (streamed) and on S3 (a redirect to a fresh presigned URL on s3rver). The link is Portal's,
 * signed until the file expires: fetched after the presign lifetime (AWS_QUERYSTRING_EXPIRE=1)
 * it still works, and the outbox never holds a signature.
 */
import assert from "node:assert/strict";
import { PRIVATE_TARGETS_ALLOWED } from "./helpers/webhooks.ts";
import { Webhook } from "npm:standardwebhooks@1.1.1";
import { createApp } from "../app.ts";
import { startServer } from "../src/http/server.ts";
import { startDeliveryLoop } from "../src/webhooks/delivery_loop.ts";
import { addEndpoint } from "../src/webhooks/endpoint_service.ts";
import { freePort } from "./helpers/app.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { deliveriesOf, eventState } from "./helpers/webhooks.ts";
import {
  createTestUser,
  createUploadFixture,
  outboxEvents,
  pdfBytes,
  sha256Hex,
  streamOf,
} from "./helpers/uploads.ts";

/** The `data` of a `file.stored` webhook (SPEC §4). */
interface FileStoredData {
  file_id: string;
  original_filename: string;
  content_type: string;
  size_bytes: number;
  sha256: string;
  url: string;
}

async function sha256Of(response: Response): Promise<string> {
  return sha256Hex(new Uint8Array(await response.arrayBuffer()));
}

async function uploadToWebhookToDownload(t: Deno.TestContext, backend: "local" | "s3") {
  // The public URL goes into the signed links, so the port is chosen before the config is built.
  const port = freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const fx = await createUploadFixture(`end_to_end_${backend}`, {
    backend,
    env: {
      PORTAL_PUBLIC_URL: publicUrl,
      PORTAL_WEBHOOK_ALLOW_PRIVATE: "true",
      AWS_QUERYSTRING_EXPIRE: "1",
    },
  });
  const receiver = startReceiver();
  const server = await startServer(createApp(fx.deps).fetch, { hostname: "127.0.0.1", port });
  const loop = startDeliveryLoop(fx.deps);
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const endpoint = await addEndpoint({ db: fx.db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: receiver.url,
      eventTypes: ["file.stored"],
    });
    await loop.drained();
    const bytes = pdfBytes(300_000, 11);
    const uploadedSha256 = sha256Hex(bytes);

    let fileId = "";
    await t.step("an API client streams a file to POST /api/v1/files", async () => {
      const response = await fetch(`${publicUrl}/api/v1/files?filename=quarterly%20report.pdf`, {
        method: "POST",
        headers: { ...ada.auth, "content-type": "application/octet-stream" },
        body: streamOf(bytes, 16 * 1024),
      });
      assert.equal(response.status, 201);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      const file = await response.json() as { id: string; status: string; sha256: string };
      assert.equal(file.status, "stored");
      assert.equal(file.sha256, uploadedSha256);
      fileId = file.id;
    });

    let data: FileStoredData | null = null;
    await t.step("the receiver gets file.stored, signed per Standard Webhooks", async () => {
      await receiver.waitFor(1, 10_000);
      const request = receiver.requests[0]!;
      assert.equal(request.headers.get("x-webhook-event"), "file.stored");
      const verified = new Webhook(endpoint.secret).verify(
        request.body,
        Object.fromEntries(request.headers.entries()),
      ) as { type: string; data: FileStoredData };
      assert.equal(verified.type, "file.stored");
      data = verified.data;
      assert.equal(data.file_id, fileId);
      assert.equal(data.original_filename, "quarterly report.pdf");
      assert.equal(data.content_type, "application/pdf");
      assert.equal(data.size_bytes, bytes.byteLength);
      assert.equal(data.sha256, uploadedSha256);
      // A tampered body no longer verifies: the check above is not vacuous.
      assert.throws(() =>
        new Webhook(endpoint.secret).verify(
          request.body.replace(uploadedSha256, "0".repeat(64)),
          Object.fromEntries(request.headers.entries()),
        )
      );

      await loop.drained();
      const [event] = await outboxEvents(fx.db, "file.stored");
      assert.equal(event?.aggregateId, fileId);
      assert.equal((await eventState(fx.db, event.id)).status, "delivered");
      const [delivery] = await deliveriesOf(fx.db, event.id);
      assert.equal(delivery?.status, "delivered");
      assert.equal(request.headers.get("webhook-id"), `msg_${delivery.id}`);
      assert.equal(receiver.requests.length, 1);
    });

    await t.step("the outbox holds the event without any link or signature", async () => {
      const [row] = await fx.db.sql<{ payload: string }[]>`
        SELECT payload::text AS payload FROM outbox_event WHERE aggregate_id = ${fileId}`;
      assert.ok(row);
      assert.doesNotMatch(row.payload, /X-Amz-Signature|sig=|"url"/);
      const [attempts] = await fx.db.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM webhook_attempt
         WHERE response_body LIKE '%X-Amz-Signature%' OR response_body LIKE '%sig=%'`;
      assert.equal(attempts?.n, 0);
    });

    await t.step(
      "the payload's url, past the presign lifetime, downloads the same bytes with no credentials",
      async () => {
        assert.ok(data !== null);
        const { url, sha256 } = data as FileStoredData;
        assert.ok(url.startsWith(`${publicUrl}/files/${fileId}/download?`), url);
        // Signed until the file expires, not for AWS_QUERYSTRING_EXPIRE seconds.
        const [file] = await fx.db.sql<{ expiresAt: Date }[]>`
          SELECT expires_at AS "expiresAt" FROM upload_file WHERE id = ${fileId}`;
        assert.equal(
          new URL(url).searchParams.get("expires"),
          String(Math.floor(file!.expiresAt.getTime() / 1000)),
        );
        await new Promise((resolve) => setTimeout(resolve, 2_100)); // past the 1 s presign life

        // No cookie, no bearer token: plain fetch, as a consumer's script would.
        let response = await fetch(url, { redirect: "manual" });
        if (backend === "s3") {
          assert.equal(response.status, 302);
          const location = response.headers.get("location") ?? "";
          assert.ok(location.startsWith(`${fx.s3!.endpointUrl}/${fx.s3!.bucket}/`), location);
          assert.ok(new URL(location).searchParams.has("X-Amz-Signature"), "freshly presigned");
          response = await fetch(location);
        }
        assert.equal(response.status, 200);
        assert.equal(await sha256Of(response), uploadedSha256);
        assert.equal(sha256, uploadedSha256);

        // Portal's signature is what grants access: tampered, the same link is refused.
        const tampered = new URL(url);
        tampered.searchParams.set("sig", "0".repeat(64));
        const refused = await fetch(tampered, { redirect: "manual" });
        await refused.body?.cancel();
        assert.equal(refused.status, 403);
      },
    );
  } finally {
    await loop.stop(1000);
    await server.shutdown(5000);
    await server.finished;
    await receiver.close();
    await fx.close();
  }
}

Deno.test("upload → file.stored webhook → download by its url, on local storage", async (t) => {
  await uploadToWebhookToDownload(t, "local");
});

Deno.test("upload → file.stored webhook → download by its url, on S3 (s3rver)", async (t) => {
  await uploadToWebhookToDownload(t, "s3");
});
