/**
 * A file event's download link lives as long as the file: the outbox keeps only when it ends
 * (`link_expires`), the link is signed when the event is sent, it answers 410 once the file is
 * deleted or expired, and events written before (with a stored `url`, perhaps a presigned S3
 * one) are carried over by migration 0002. The end-to-end test fetches such a link after the
 * presign lifetime on both storages.
 */
import assert from "node:assert/strict";
import type { Database } from "../src/db/db.ts";
import { migrate } from "../src/db/migrate.ts";
import { MIGRATIONS } from "../src/db/migrations.ts";
import { newId } from "../src/db/ids.ts";
import { createApp } from "../app.ts";
import { payloadToSend, signDownload } from "../src/uploads/download_links.ts";
import { deleteFile } from "../src/uploads/file_service.ts";
import { uploadFile } from "../src/uploads/upload_service.ts";
import { createTestDatabase } from "./helpers/db.ts";
import { createUploadFixture, pdfBytes, sha256Hex, streamOf } from "./helpers/uploads.ts";

async function storedEvent(fx: { db: Database }, id: string) {
  const [row] = await fx.db.sql<{ payload: Record<string, unknown> }[]>`
    SELECT payload FROM outbox_event WHERE aggregate_id = ${id} AND event_type = 'file.stored'`;
  assert.ok(row);
  return row.payload;
}

Deno.test("a file.stored link works until the file expires, then answers 410; deleted, 410", async () => {
  const fx = await createUploadFixture("event_links_410");
  try {
    const app = createApp(fx.deps);
    const bytes = pdfBytes(20_000, 3);
    const { file } = await uploadFile(fx.deps, {
      body: streamOf(bytes),
      filename: "kept.pdf",
      uploader: null,
    });
    const payload = await storedEvent(fx, file.id);
    assert.equal(payload.url, undefined);
    const { url } = payloadToSend(fx.deps, payload) as { url: string };
    const path = url.slice(fx.deps.config.publicUrl.length);

    const ok = await app.request(path);
    assert.equal(ok.status, 200);
    assert.equal(sha256Hex(new Uint8Array(await ok.arrayBuffer())), sha256Hex(bytes));

    // The file's expiry passes (the cleanup job has not run yet): gone, not "link expired".
    await fx.db.sql`UPDATE upload_file SET expires_at = now() - interval '1 second'
                     WHERE id = ${file.id}`;
    const expires = Math.floor((Date.now() - 1000) / 1000);
    const sig = signDownload(fx.deps.secretKey, file.id, expires);
    const expired = await app.request(`/files/${file.id}/download?expires=${expires}&sig=${sig}`, {
      headers: { accept: "application/json" },
    });
    assert.equal(expired.status, 410);
    const body = await expired.json() as { error: { code: string; message: string } };
    assert.equal(body.error.code, "gone");
    assert.match(body.error.message, /has expired/);

    // A link of a deleted file: 410 too, before and after its end.
    const { file: other } = await uploadFile(fx.deps, {
      body: streamOf(pdfBytes(5_000, 4)),
      filename: "deleted.pdf",
      uploader: null,
    });
    const otherUrl = (payloadToSend(fx.deps, await storedEvent(fx, other.id)) as { url: string })
      .url;
    await deleteFile(fx.deps, { fileId: other.id, reason: "test" });
    const deleted = await app.request(otherUrl.slice(fx.deps.config.publicUrl.length));
    await deleted.body?.cancel();
    assert.equal(deleted.status, 410);
  } finally {
    await fx.close();
  }
});

Deno.test("migration 0002 replaces the url stored in earlier file events by link_expires", async () => {
  const testDb = await createTestDatabase("event_links_migration");
  const db = testDb.open();
  try {
    await migrate(db, MIGRATIONS.slice(0, 1));
    const fileId = newId();
    const expiresAt = new Date("2027-01-02T03:04:05.678Z");
    await db.sql`
      INSERT INTO upload_file (id, original_filename, storage_backend, storage_key, status, expires_at)
      VALUES (${fileId}, 'old.pdf', 's3', ${`uploads/2026/12/${fileId}/old.pdf`}, 'stored', ${expiresAt})`;
    const presigned =
      `http://s3.test/bucket/uploads/old.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc`;
    const insertEvent = async (eventType: string, payload: Record<string, unknown>) => {
      const id = newId();
      await db.sql`
        INSERT INTO outbox_event (id, aggregate_type, aggregate_id, event_type, payload, idempotency_key)
        VALUES (${id}, 'UploadFile', ${fileId}, ${eventType}, ${db.sql.json(payload as never)},
                ${`${eventType}:${id}`})`;
      return id;
    };
    const stored = await insertEvent("file.stored", { file_id: fileId, url: presigned });
    const expiring = await insertEvent("file.expiring", {
      file_id: fileId,
      url: presigned,
      expires_at: expiresAt.toISOString(),
    });
    const test = await insertEvent("portal.test", { url: "kept as it is" });

    await migrate(db);
    const rows = await db.sql<{ id: string; payload: Record<string, unknown> }[]>`
      SELECT id, payload FROM outbox_event`;
    const byId = new Map(rows.map((row) => [row.id, row.payload]));
    const end = Math.floor(expiresAt.getTime() / 1000);
    assert.deepEqual(byId.get(stored), { file_id: fileId, link_expires: end });
    assert.deepEqual(byId.get(expiring), {
      file_id: fileId,
      link_expires: end,
      expires_at: expiresAt.toISOString(),
    });
    assert.deepEqual(byId.get(test), { url: "kept as it is" });
    const [left] = await db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM outbox_event WHERE payload::text LIKE '%X-Amz-Signature%'`;
    assert.equal(left?.n, 0);
  } finally {
    await testDb.drop();
  }
});
