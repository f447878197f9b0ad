import assert from "node:assert/strict";
import { uploadFile } from "../src/uploads/upload_service.ts";
import { markFileFailed, markFileProcessed } from "../src/uploads/file_service.ts";
import { findFile } from "../src/uploads/files_repo.ts";
import { deleteExpiredFiles, notifyExpiringFiles } from "../src/uploads/upload_jobs.ts";
import { newId } from "../src/db/ids.ts";
import type { StorageAdapter } from "../src/storage/storage.ts";
import { payloadToSend } from "../src/uploads/download_links.ts";
import { captureLogger } from "./helpers/app.ts";
import {
  createUploadFixture,
  outboxEvents,
  pdfBytes,
  streamOf,
  type UploadFixture,
  walkFiles,
} from "./helpers/uploads.ts";

const MINUTE = 60_000;

/**
 * `storage`, except that deleting `key` throws a plain Error (not a StorageError): an adapter
 * failing in a way nobody planned for.
 */
function throwingOnDelete(storage: StorageAdapter, key: string): StorageAdapter {
  return new Proxy(storage, {
    get(target, property) {
      if (property === "deleteObject") {
        return async (k: string) => {
          if (k === key) throw new Error(`adapter exploded on "${k}"`);
          await target.deleteObject(k);
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

async function storeExpiring(fx: UploadFixture, name: string, expiresInMs: number) {
  const { file } = await uploadFile(fx.deps, {
    body: streamOf(pdfBytes(500)),
    filename: name,
    uploader: null,
  });
  const expiresAt = new Date(Date.now() + expiresInMs);
  await fx.db.sql`UPDATE upload_file SET expires_at = ${expiresAt} WHERE id = ${file.id}`;
  return { ...file, expiresAt };
}

Deno.test("notifyExpiringFiles() emits file.expiring once per file inside the window", async (t) => {
  const fx = await createUploadFixture("uploads_jobs_notify", {
    env: { FILE_UPLOAD_EXPIRY_NOTIFY_HOURS: "1" },
  });
  try {
    const soon = await storeExpiring(fx, "soon.pdf", 30 * MINUTE);
    const later = await storeExpiring(fx, "later.pdf", 120 * MINUTE);
    const past = await storeExpiring(fx, "past.pdf", -10 * MINUTE);
    const processed = await storeExpiring(fx, "processed.pdf", 45 * MINUTE);
    await markFileProcessed(fx.deps, { fileId: processed.id });
    const failed = await storeExpiring(fx, "failed.pdf", 20 * MINUTE);
    await markFileFailed(fx.deps, { fileId: failed.id, errorMessage: "Cannot process: test" });

    await t.step(
      "the first run notifies stored and processed files expiring within the hour",
      async () => {
        assert.deepEqual(await notifyExpiringFiles(fx.deps), { notified: 2, skipped: 0 });
        const events = await outboxEvents(fx.db, "file.expiring");
        assert.deepEqual(events.map((e) => e.aggregateId).sort(), [soon.id, processed.id].sort());
        const event = events.find((e) => e.aggregateId === soon.id)!;
        assert.equal(event.idempotencyKey, `UploadFile:${soon.id}`);
        // No link stored: only when it ends (the file's expiry); it is signed when sent.
        assert.deepEqual(event.payload, {
          file_id: soon.id,
          original_filename: "soon.pdf",
          content_type: "application/pdf",
          size_bytes: 500,
          sha256: soon.sha256,
          link_expires: Math.floor(soon.expiresAt.getTime() / 1000),
          expires_at: soon.expiresAt.toISOString(),
        });
        const sent = payloadToSend(fx.deps, event.payload) as { url: string };
        assert.match(
          sent.url,
          new RegExp(
            `^http://portal\\.test/files/${soon.id}/download\\?expires=${
              Math.floor(soon.expiresAt.getTime() / 1000)
            }&sig=[0-9a-f]{64}$`,
          ),
        );
        assert.ok(!events.some((e) => [later.id, past.id, failed.id].includes(e.aggregateId)));
      },
    );
    await t.step("a second run notifies nobody again", async () => {
      assert.deepEqual(await notifyExpiringFiles(fx.deps), { notified: 0, skipped: 0 });
      assert.equal((await outboxEvents(fx.db, "file.expiring")).length, 2);
    });
    await t.step(
      "two runs at once: each file once, the loser's emits reported as skipped",
      async () => {
        const a = await storeExpiring(fx, "a.pdf", 10 * MINUTE);
        const b = await storeExpiring(fx, "b.pdf", 15 * MINUTE);
        const results = await Promise.all([
          notifyExpiringFiles(fx.deps),
          notifyExpiringFiles(fx.deps),
        ]);
        assert.equal(results[0].notified + results[1].notified, 2);
        const events = (await outboxEvents(fx.db, "file.expiring")).map((e) => e.aggregateId);
        assert.equal(events.filter((id) => id === a.id).length, 1);
        assert.equal(events.filter((id) => id === b.id).length, 1);
      },
    );
    await t.step("later, the two-hour file enters the window", async () => {
      const later = new Date(Date.now() + 90 * MINUTE);
      const result = await notifyExpiringFiles({ ...fx.deps, clock: { now: () => later } });
      assert.equal(result.notified, 1);
    });
  } finally {
    await fx.close();
  }
});

Deno.test("deleteExpiredFiles() deletes expired files and survives a storage error on one", async (t) => {
  const fx = await createUploadFixture("uploads_jobs_cleanup");
  try {
    const expired: Awaited<ReturnType<typeof storeExpiring>>[] = [];
    for (let i = 0; i < 3; i++) {
      expired.push(await storeExpiring(fx, `old${i}.pdf`, -MINUTE * (i + 1)));
    }
    const processed = await storeExpiring(fx, "processed.pdf", -5 * MINUTE);
    await markFileProcessed(fx.deps, { fileId: processed.id });
    expired.push(processed);
    const fresh = await storeExpiring(fx, "fresh.pdf", 60 * MINUTE);
    const leftover = await storeExpiring(fx, "leftover.pdf", -MINUTE);
    await markFileFailed(fx.deps, { fileId: leftover.id, errorMessage: "Cannot process: test" });
    // A row whose key the adapter refuses to touch: deleting it fails with a storage error.
    const brokenId = newId();
    await fx.db.sql`
      INSERT INTO upload_file (id, original_filename, storage_backend, storage_key, status,
                               expires_at, sha256, size_bytes, content_type)
      VALUES (${brokenId}, 'broken.pdf', 'local', 'uploads/../../escape', 'stored',
              ${new Date(Date.now() - 30 * MINUTE)}, '', 1, 'application/pdf')`;
    // A real file whose deletion makes the adapter throw something that is no StorageError.
    const exploding = await storeExpiring(fx, "exploding.pdf", -2 * MINUTE);
    const { logger, lines } = captureLogger();
    const deps = {
      ...fx.deps,
      logger,
      storage: throwingOnDelete(fx.deps.storage, exploding.storageKey!),
    };

    await t.step("the first run: every deletable file gone, the two broken ones left", async () => {
      const result = await deleteExpiredFiles(deps, { batchSize: 2 });
      assert.deepEqual(result, { deleted: 4, errors: 2, leftoversRemoved: 1 });
      for (const file of expired) {
        assert.equal(
          (await findFile(fx.db.sql, file.id))?.status,
          "deleted",
          file.originalFilename,
        );
      }
      assert.equal((await findFile(fx.db.sql, brokenId))?.status, "stored");
      assert.equal((await findFile(fx.db.sql, exploding.id))?.status, "stored");
      assert.equal((await findFile(fx.db.sql, fresh.id))?.status, "stored");
      const failedRow = await findFile(fx.db.sql, leftover.id);
      assert.equal(failedRow?.status, "failed");
      assert.equal(failedRow?.storageKey, null);
      assert.deepEqual(
        await walkFiles(fx.root),
        [`objects/${exploding.storageKey}`, `objects/${fresh.storageKey}`].sort(),
      );
      const events = await outboxEvents(fx.db, "file.deleted");
      assert.deepEqual(
        events.map((e) => e.payload).sort((a, b) =>
          String(a.file_id).localeCompare(String(b.file_id))
        ),
        expired.map((f) => ({ file_id: f.id, reason: "expired" }))
          .sort((a, b) => a.file_id.localeCompare(b.file_id)),
      );
      // The unexpected error is logged with the file it concerns, as name and message only.
      const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => line.file_id === exploding.id);
      assert.equal(logged.length, 1);
      assert.equal(logged[0]!.level, "error");
      assert.equal(logged[0]!.error, `Error: adapter exploded on "${exploding.storageKey}"`);
      assert.ok(!lines.some((line) => line.includes(fx.deps.secretKey)), "no secret is logged");
    });
    await t.step("the next run only retries the two broken rows", async () => {
      assert.deepEqual(await deleteExpiredFiles(deps), {
        deleted: 0,
        errors: 2,
        leftoversRemoved: 0,
      });
      assert.equal((await outboxEvents(fx.db, "file.deleted")).length, 4);
    });
    await t.step("once the adapter behaves, the file it threw on is deleted", async () => {
      assert.deepEqual(await deleteExpiredFiles(fx.deps), {
        deleted: 1,
        errors: 1,
        leftoversRemoved: 0,
      });
      assert.equal((await findFile(fx.db.sql, exploding.id))?.status, "deleted");
      assert.equal((await outboxEvents(fx.db, "file.deleted")).length, 5);
      assert.deepEqual(await walkFiles(fx.root), [`objects/${fresh.storageKey}`]);
    });
    await t.step("two runs at once delete and announce each file exactly once", async () => {
      await fx.db.sql`DELETE FROM upload_file WHERE id = ${brokenId}`;
      const batch = [];
      for (let i = 0; i < 30; i++) batch.push(await storeExpiring(fx, `c${i}.pdf`, -MINUTE));
      const [a, b] = await Promise.all([
        deleteExpiredFiles(fx.deps, { batchSize: 7 }),
        deleteExpiredFiles(fx.deps, { batchSize: 7 }),
      ]);
      assert.equal(a.deleted + b.deleted, 30);
      assert.equal(a.errors + b.errors, 0);
      const ids = new Set(batch.map((f) => f.id));
      const events = (await outboxEvents(fx.db, "file.deleted")).filter((e) =>
        ids.has(e.aggregateId)
      );
      assert.equal(events.length, 30);
      assert.deepEqual(await walkFiles(fx.root), [`objects/${fresh.storageKey}`]);
    });
  } finally {
    await fx.close();
  }
});
