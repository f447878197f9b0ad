import assert from "node:assert/strict";
import { uploadFile } from "../src/uploads/upload_service.ts";
import { createBatch, finalizeBatch, getBatch } from "../src/uploads/batch_service.ts";
import {
  deleteFile,
  getFile,
  listVisibleFiles,
  markFileFailed,
  markFileProcessed,
} from "../src/uploads/file_service.ts";
import { findFile } from "../src/uploads/files_repo.ts";
import { IllegalTransitionError, UploadError } from "../src/uploads/upload_errors.ts";
import { BatchUploadError } from "../src/uploads/batch_upload.ts";
import { uploadForm } from "../src/http/upload_form.ts";
import { HttpError } from "../src/http/errors.ts";
import { verifyDownloadLink } from "../src/uploads/download_links.ts";
import { LocalStorageAdapter } from "../src/storage/local/local_storage.ts";
import {
  bucketKeys,
  createTestUser,
  createUploadFixture,
  exeBytes,
  multipartBody,
  outboxEvents,
  pdfBytes,
  pngBytes,
  s3Adapter,
  sha256Hex,
  streamOf,
  UPLOAD_TEST_SECRET,
  type UploadFixture,
  utf8,
  walkFiles,
} from "./helpers/uploads.ts";
import { freePort } from "./helpers/app.ts";

const MIB = 1024 * 1024;

/** A body of `total` bytes generated as it is read; `pulled()` says how much was read. */
function lazyBody(total: number, first: Uint8Array, chunkSize = 64 * 1024) {
  let sent = 0;
  const zeros = new Uint8Array(chunkSize);
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      const n = Math.min(chunkSize, total - sent);
      const chunk = sent === 0 ? first.slice(0, n) : zeros.subarray(0, n);
      sent += n;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  return { stream, pulled: () => sent };
}

async function failedRows(fx: UploadFixture) {
  return await fx.db.sql<{ status: string; errorMessage: string; storageKey: string | null }[]>`
    SELECT status, error_message AS "errorMessage", storage_key AS "storageKey"
    FROM upload_file WHERE status = 'failed' ORDER BY id`;
}

Deno.test("uploadFile() stores the bytes, a stored row and exactly one file.stored event", async () => {
  const fx = await createUploadFixture("uploads_service_store");
  try {
    const { user } = await createTestUser(fx.db, "ada@example.org");
    const bytes = pngBytes(300_000);
    const before = new Date();
    const { file, url } = await uploadFile(fx.deps, {
      body: streamOf(bytes),
      filename: "holiday photo.png",
      uploader: user,
    });
    assert.equal(file.status, "stored");
    assert.equal(file.originalFilename, "holiday photo.png");
    assert.equal(file.contentType, "image/png");
    assert.equal(file.sizeBytes, 300_000);
    assert.equal(file.sha256, sha256Hex(bytes));
    assert.equal(file.uploadedBy, user.id);
    assert.equal(file.storageBackend, "local");
    const month = `${before.getUTCFullYear()}/${String(before.getUTCMonth() + 1).padStart(2, "0")}`;
    assert.equal(file.storageKey, `uploads/${month}/${file.id}/holiday photo.png`);
    const ttl = file.expiresAt!.getTime() - before.getTime();
    assert.ok(Math.abs(ttl - 24 * 3_600_000) < 60_000, `expires in 24 h, got ${ttl} ms`);

    const stored = await Deno.readFile(`${fx.root}/objects/${file.storageKey}`);
    assert.deepEqual(stored, bytes);
    assert.deepEqual(await walkFiles(fx.root), [`objects/${file.storageKey}`]);

    const link = new URL(url!);
    assert.equal(link.origin + link.pathname, `http://portal.test/files/${file.id}/download`);
    assert.equal(
      verifyDownloadLink([UPLOAD_TEST_SECRET], {
        fileId: file.id,
        expires: link.searchParams.get("expires")!,
        sig: link.searchParams.get("sig")!,
        now: new Date(),
      }),
      "valid",
    );

    const events = await outboxEvents(fx.db);
    assert.equal(events.length, 1);
    const [event] = events;
    assert.equal(event!.eventType, "file.stored");
    assert.equal(event!.aggregateId, file.id);
    assert.equal(event!.idempotencyKey, `UploadFile:${file.id}`);
    assert.deepEqual(event!.payload, {
      file_id: file.id,
      original_filename: "holiday photo.png",
      content_type: "image/png",
      size_bytes: 300_000,
      sha256: sha256Hex(bytes),
      link_expires: Math.floor(file.expiresAt!.getTime() / 1000),
    });
    const uploads = fx.deps.metrics.counter("portal_uploads_total", "");
    assert.equal(uploads.get({ outcome: "stored" }), 1);
    const bytesCounter = fx.deps.metrics.counter("portal_upload_bytes_total", "");
    assert.equal(bytesCounter.get({ outcome: "stored" }), 300_000);
  } finally {
    await fx.close();
  }
});

Deno.test("uploadFile() gives two uploads of one name two objects", async () => {
  const fx = await createUploadFixture("uploads_service_unique");
  try {
    const a = await uploadFile(fx.deps, {
      body: streamOf(pdfBytes(1000, 1)),
      filename: "report.pdf",
      uploader: null,
    });
    const b = await uploadFile(fx.deps, {
      body: streamOf(pdfBytes(1000, 2)),
      filename: "report.pdf",
      uploader: null,
    });
    assert.notEqual(a.file.storageKey, b.file.storageKey);
    assert.equal((await walkFiles(fx.root)).length, 2);
  } finally {
    await fx.close();
  }
});

Deno.test("uploadFile() refuses a file over the size limit at the limit, leaving nothing", async (t) => {
  const fx = await createUploadFixture("uploads_service_large", {
    env: { FILE_UPLOAD_MAX_SIZE: String(MIB) },
  });
  try {
    await t.step("while streaming: stops reading right after the limit", async () => {
      const body = lazyBody(50 * MIB, pngBytes(4096));
      await assert.rejects(
        uploadFile(fx.deps, { body: body.stream, filename: "big.png", uploader: null }),
        (e: unknown) => e instanceof UploadError && e.code === "too_large",
      );
      assert.ok(body.pulled() <= MIB + 64 * 1024, `read ${body.pulled()} bytes of 50 MiB`);
    });
    await t.step("declared: refuses before reading a byte", async () => {
      const body = lazyBody(50 * MIB, pngBytes(4096));
      try {
        await uploadFile(fx.deps, {
          body: body.stream,
          filename: "declared.png",
          uploader: null,
          declaredSize: 50 * MIB,
        });
        assert.fail("expected a refusal");
      } catch (error) {
        assert.ok(error instanceof UploadError);
        assert.equal(error.code, "too_large");
        assert.equal(error.file?.status, "failed");
      }
      assert.equal(body.pulled(), 0);
    });
    const rows = await failedRows(fx);
    assert.deepEqual(rows.map((r) => r.errorMessage), [
      `File "big.png" is too large: it exceeds FILE_UPLOAD_MAX_SIZE (${MIB} bytes)`,
      `File "declared.png" is too large: it exceeds FILE_UPLOAD_MAX_SIZE (${MIB} bytes)`,
    ]);
    assert.ok(rows.every((r) => r.storageKey === null));
    assert.deepEqual(await outboxEvents(fx.db), []);
    assert.deepEqual(await walkFiles(fx.root), [], "no temp file, no object");
    const uploads = fx.deps.metrics.counter("portal_uploads_total", "");
    assert.equal(uploads.get({ outcome: "too_large" }), 2);
  } finally {
    await fx.close();
  }
});

Deno.test("uploadFile() refuses disallowed and empty files with readable messages", async () => {
  const fx = await createUploadFixture("uploads_service_types");
  try {
    const cases: [string, Uint8Array, string, string][] = [
      [
        "setup.exe",
        exeBytes(),
        "type_not_allowed",
        'File "setup.exe" is not allowed: type "application/x-msdownload" is not in FILE_UPLOAD_ALLOWED_TYPES',
      ],
      [
        "page.txt",
        utf8("<!doctype html><script>alert(1)</script>"),
        "type_not_allowed",
        'File "page.txt" is not allowed: type "text/html" is not in FILE_UPLOAD_ALLOWED_TYPES',
      ],
      [
        "logo.png",
        utf8('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        "type_not_allowed",
        'File "logo.png" is not allowed: type "image/svg+xml" is not in FILE_UPLOAD_ALLOWED_TYPES',
      ],
      ["empty.txt", new Uint8Array(0), "empty", "Cannot store upload: the file is empty"],
    ];
    for (const [filename, bytes, code, message] of cases) {
      try {
        await uploadFile(fx.deps, { body: streamOf(bytes), filename, uploader: null });
        assert.fail(`expected ${filename} to be refused`);
      } catch (error) {
        assert.ok(error instanceof UploadError, String(error));
        assert.equal(error.code, code);
        assert.equal(error.message, message);
        assert.equal(error.file?.status, "failed");
        assert.equal(error.file?.errorMessage, message);
      }
    }
    assert.deepEqual(await outboxEvents(fx.db), []);
    assert.deepEqual(await walkFiles(fx.root), []);
    const notes = await uploadFile(fx.deps, {
      body: streamOf(utf8("plain notes\n")),
      filename: "notes.txt",
      uploader: null,
    });
    assert.equal(notes.file.contentType, "text/plain");
  } finally {
    await fx.close();
  }
});

Deno.test("uploadFile() records a failed file and stores nothing when storage is down", async (t) => {
  await t.step("S3 endpoint down", async () => {
    const fx = await createUploadFixture("uploads_service_s3down");
    const down = s3Adapter({
      bucket: "portal-down",
      endpointUrl: `http://127.0.0.1:${freePort()}`,
      accessKeyId: "x",
      secretAccessKey: "y",
    });
    try {
      const deps = { ...fx.deps, storage: down };
      try {
        await uploadFile(deps, {
          body: streamOf(pdfBytes(10_000)),
          filename: "a.pdf",
          uploader: null,
        });
        assert.fail("expected a refusal");
      } catch (error) {
        assert.ok(error instanceof UploadError);
        assert.equal(error.code, "storage_unavailable");
        assert.equal(
          error.message,
          'Cannot store upload "a.pdf": the storage is unavailable; try again later',
        );
        assert.equal(error.file?.status, "failed");
        assert.equal(error.file?.storageBackend, "s3");
      }
      assert.deepEqual(await outboxEvents(fx.db), []);
    } finally {
      down.close();
      await fx.close();
    }
  });
  await t.step("local directory unusable", async () => {
    const fx = await createUploadFixture("uploads_service_diskdown");
    const blocker = await Deno.makeTempFile();
    try {
      // A regular file where the storage root should be: every write fails.
      const deps = { ...fx.deps, storage: new LocalStorageAdapter({ root: `${blocker}/media` }) };
      await assert.rejects(
        uploadFile(deps, { body: streamOf(pdfBytes(10_000)), filename: "a.pdf", uploader: null }),
        (error: unknown) => error instanceof UploadError && error.code === "storage_unavailable",
      );
      const [row] = await failedRows(fx);
      assert.equal(
        row?.errorMessage,
        'Cannot store upload "a.pdf": the storage is unavailable; try again later',
      );
      assert.deepEqual(await outboxEvents(fx.db), []);
    } finally {
      await Deno.remove(blocker);
      await fx.close();
    }
  });
});

Deno.test("uploadFile() commits nothing and removes the object when the outbox insert fails", async () => {
  const fx = await createUploadFixture("uploads_service_atomic");
  try {
    await fx.db.sql.unsafe(`
      CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'outbox refused by test'; END $$;
      CREATE TRIGGER refuse_event BEFORE INSERT ON outbox_event
        FOR EACH ROW EXECUTE FUNCTION refuse_event();`);
    await assert.rejects(
      uploadFile(fx.deps, { body: streamOf(pdfBytes(200_000)), filename: "a.pdf", uploader: null }),
      /outbox refused by test/,
    );
    const [{ count }] = await fx.db.sql<{ count: number }[]>`
      SELECT count(*)::int AS count FROM upload_file` as unknown as [{ count: number }];
    assert.equal(count, 0);
    assert.deepEqual(await walkFiles(fx.root), [], "the stored object was removed");
  } finally {
    await fx.close();
  }
});

Deno.test("file transitions: stored → processed | failed | deleted, nothing else", async (t) => {
  const fx = await createUploadFixture("uploads_service_transitions");
  const store = async (name: string) =>
    (await uploadFile(fx.deps, { body: streamOf(pdfBytes(1000)), filename: name, uploader: null }))
      .file;
  try {
    await t.step("stored → processed, then processed → processed is refused", async () => {
      const file = await store("a.pdf");
      const processed = await markFileProcessed(fx.deps, { fileId: file.id });
      assert.equal(processed?.status, "processed");
      await assert.rejects(markFileProcessed(fx.deps, { fileId: file.id }), IllegalTransitionError);
    });
    await t.step("stored → failed keeps the message; failed → processed is refused", async () => {
      const file = await store("b.pdf");
      const failed = await markFileFailed(fx.deps, {
        fileId: file.id,
        errorMessage: "Cannot process: broken",
      });
      assert.equal(failed?.status, "failed");
      assert.equal(failed?.errorMessage, "Cannot process: broken");
      await assert.rejects(
        markFileProcessed(fx.deps, { fileId: file.id }),
        (e: unknown) =>
          e instanceof IllegalTransitionError && e.from === "failed" && e.to === "processed" &&
          e.message === `Cannot mark file "${file.id}" as processed: it is failed`,
      );
      await assert.rejects(
        deleteFile(fx.deps, { fileId: file.id, reason: "x" }),
        IllegalTransitionError,
      );
    });
    await t.step(
      "deleteFile(): object gone, row deleted, file.deleted emitted; twice refused",
      async () => {
        const file = await store("c.pdf");
        const deleted = await deleteFile(fx.deps, { fileId: file.id, reason: "deleted_by_user" });
        assert.equal(deleted?.status, "deleted");
        assert.ok(!(await walkFiles(fx.root)).some((p) => p.includes(file.id)));
        const events = (await outboxEvents(fx.db, "file.deleted")).filter((e) =>
          e.aggregateId === file.id
        );
        assert.deepEqual(events.map((e) => e.payload), [{
          file_id: file.id,
          reason: "deleted_by_user",
        }]);
        await assert.rejects(
          deleteFile(fx.deps, { fileId: file.id, reason: "x" }),
          IllegalTransitionError,
        );
        await assert.rejects(
          markFileProcessed(fx.deps, { fileId: file.id }),
          IllegalTransitionError,
        );
      },
    );
    await t.step("unknown and malformed ids are null", async () => {
      assert.equal(
        await markFileProcessed(fx.deps, { fileId: "0193a3c4-7f1e-7000-8000-000000000001" }),
        null,
      );
      assert.equal(await deleteFile(fx.deps, { fileId: "nope", reason: "x" }), null);
    });
  } finally {
    await fx.close();
  }
});

Deno.test("deleteFile() leaves the row as it is when storage fails", async () => {
  const fx = await createUploadFixture("uploads_service_delete_s3", { backend: "s3" });
  try {
    const { file } = await uploadFile(fx.deps, {
      body: streamOf(pdfBytes(1000)),
      filename: "a.pdf",
      uploader: null,
    });
    assert.deepEqual(await bucketKeys(fx.s3!), [file.storageKey]);
    const down = s3Adapter({ ...fx.s3!, endpointUrl: `http://127.0.0.1:${freePort()}` });
    try {
      await assert.rejects(
        deleteFile({ ...fx.deps, storage: down }, { fileId: file.id, reason: "deleted_by_user" }),
        (e: unknown) => e instanceof UploadError && e.code === "storage_unavailable",
      );
    } finally {
      down.close();
    }
    assert.equal((await findFile(fx.db.sql, file.id))?.status, "stored");
    assert.deepEqual(await outboxEvents(fx.db, "file.deleted"), []);
    await deleteFile(fx.deps, { fileId: file.id, reason: "deleted_by_user" });
    assert.deepEqual(await bucketKeys(fx.s3!), []);
  } finally {
    await fx.close();
  }
});

Deno.test("batches: finalizing sets complete, partial or failed from the files", async (t) => {
  const fx = await createUploadFixture("uploads_service_batches");
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const bob = await createTestUser(fx.db, "bob@example.org");
    const upload = (batchId: string, bytes: Uint8Array, name: string) =>
      uploadFile(fx.deps, { body: streamOf(bytes), filename: name, uploader: ada.user, batchId })
        .catch((e) => {
          if (!(e instanceof UploadError)) throw e;
        });
    const finalize = async (batchId: string) =>
      (await finalizeBatch(fx.deps, { batchId, viewer: ada.user }))!.batch.status;

    await t.step("all stored → complete", async () => {
      const { batch } = await createBatch(fx.deps, { uploader: ada.user });
      await upload(batch.id, pdfBytes(100), "a.pdf");
      await upload(batch.id, pngBytes(100), "b.png");
      assert.equal(await finalize(batch.id), "complete");
      assert.equal(await finalize(batch.id), "complete", "finalizing twice changes nothing");
      await assert.rejects(
        uploadFile(fx.deps, {
          body: streamOf(pdfBytes(10)),
          filename: "late.pdf",
          uploader: ada.user,
          batchId: batch.id,
        }),
        (e: unknown) => e instanceof UploadError && e.code === "batch_not_open",
      );
    });
    await t.step("some stored → partial", async () => {
      const { batch } = await createBatch(fx.deps, { uploader: ada.user });
      await upload(batch.id, pdfBytes(100), "a.pdf");
      await upload(batch.id, exeBytes(), "b.exe");
      assert.equal(await finalize(batch.id), "partial");
      const found = await getBatch(fx.deps, { batchId: batch.id, viewer: ada.user });
      assert.deepEqual(found?.files.map((f) => f.status), ["stored", "failed"]);
    });
    await t.step("none stored (or no files) → failed", async () => {
      const { batch } = await createBatch(fx.deps, { uploader: ada.user });
      await upload(batch.id, new Uint8Array(0), "empty.txt");
      assert.equal(await finalize(batch.id), "failed");
      const { batch: empty } = await createBatch(fx.deps, { uploader: ada.user });
      assert.equal(await finalize(empty.id), "failed");
    });
    await t.step("idempotency keys are per user", async () => {
      const first = await createBatch(fx.deps, { uploader: ada.user, idempotencyKey: "k1" });
      const again = await createBatch(fx.deps, { uploader: ada.user, idempotencyKey: "k1" });
      const other = await createBatch(fx.deps, { uploader: bob.user, idempotencyKey: "k1" });
      assert.ok(first.created);
      assert.ok(!again.created);
      assert.equal(again.batch.id, first.batch.id);
      assert.ok(other.created);
      assert.notEqual(other.batch.id, first.batch.id);
    });
    await t.step("another user's batch is unknown", async () => {
      const { batch } = await createBatch(fx.deps, { uploader: ada.user });
      await assert.rejects(
        uploadFile(fx.deps, {
          body: streamOf(pdfBytes(10)),
          filename: "x.pdf",
          uploader: bob.user,
          batchId: batch.id,
        }),
        (e: unknown) => e instanceof UploadError && e.code === "batch_not_found",
      );
      assert.equal(await getBatch(fx.deps, { batchId: batch.id, viewer: bob.user }), null);
      assert.equal(await finalizeBatch(fx.deps, { batchId: batch.id, viewer: bob.user }), null);
    });
  } finally {
    await fx.close();
  }
});

Deno.test("getFile() and listVisibleFiles(): users see their own files, admins all", async () => {
  const fx = await createUploadFixture("uploads_service_visibility");
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const bob = await createTestUser(fx.db, "bob@example.org");
    const root = await createTestUser(fx.db, "root@example.org", { admin: true });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { file } = await uploadFile(fx.deps, {
        body: streamOf(pdfBytes(100, i + 1)),
        filename: `${i}.pdf`,
        uploader: ada.user,
      });
      ids.push(file.id);
    }
    const { file: bobs } = await uploadFile(fx.deps, {
      body: streamOf(pdfBytes(100)),
      filename: "b.pdf",
      uploader: bob.user,
    });
    assert.equal(await getFile(fx.deps, { fileId: bobs.id, viewer: ada.user }), null);
    assert.equal((await getFile(fx.deps, { fileId: bobs.id, viewer: root.user }))?.id, bobs.id);

    const first = await listVisibleFiles(fx.deps, { viewer: ada.user, limit: 2 });
    assert.deepEqual(first.files.map((f) => f.id), [ids[4], ids[3]]);
    const second = await listVisibleFiles(fx.deps, {
      viewer: ada.user,
      limit: 2,
      cursor: first.nextCursor!,
    });
    assert.deepEqual(second.files.map((f) => f.id), [ids[2], ids[1]]);
    const third = await listVisibleFiles(fx.deps, {
      viewer: ada.user,
      limit: 2,
      cursor: second.nextCursor!,
    });
    assert.deepEqual(third.files.map((f) => f.id), [ids[0]]);
    assert.equal(third.nextCursor, null);
    const all = await listVisibleFiles(fx.deps, { viewer: root.user, limit: 100 });
    assert.equal(all.files.length, 6);
    await assert.rejects(
      listVisibleFiles(fx.deps, { viewer: ada.user, limit: 2, cursor: "garbage" }),
      RangeError,
    );
  } finally {
    await fx.close();
  }
});

Deno.test("uploadForm() stores each file on its own and finalizes the batch", async (t) => {
  const fx = await createUploadFixture("uploads_service_multipart", {
    env: { FILE_UPLOAD_MAX_SIZE: String(100_000) },
  });
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    await t.step("one stored, one too large, one wrong type → partial", async () => {
      const ok = pngBytes(50_000);
      const { body, contentType } = multipartBody([
        { name: "csrf_token", data: "tok" },
        { name: "files", filename: "ok.png", contentType: "image/png", data: ok },
        { name: "files", filename: "big.pdf", data: pdfBytes(300_000) },
        { name: "files", filename: "x.exe", data: exeBytes() },
      ]);
      const result = await uploadForm(fx.deps, {
        body: streamOf(body, 16 * 1024),
        contentType,
        uploader: ada.user,
        maxFiles: 10,
        csrf: { expected: "tok" },
      });
      assert.equal(result.batch.status, "partial");
      assert.deepEqual(
        result.files.map((f) => [f.file.originalFilename, f.file.status, f.error?.code ?? null]),
        [
          ["ok.png", "stored", null],
          ["big.pdf", "failed", "too_large"],
          ["x.exe", "failed", "type_not_allowed"],
        ],
      );
      assert.equal(result.files[0]!.file.sha256, sha256Hex(ok));
      assert.ok(result.files[0]!.url?.startsWith("http://portal.test/files/"));
      assert.equal((await outboxEvents(fx.db, "file.stored")).length, 1);
    });
    await t.step("a refused CSRF check stores and creates nothing", async () => {
      const before = await walkFiles(fx.root);
      const { body, contentType } = multipartBody([
        { name: "csrf_token", data: "forged" },
        { name: "files", filename: "a.pdf", data: pdfBytes(1000) },
      ]);
      await assert.rejects(
        uploadForm(fx.deps, {
          body: streamOf(body),
          contentType,
          uploader: ada.user,
          maxFiles: 10,
          csrf: { expected: "tok" },
        }),
        (e: unknown) => e instanceof HttpError && e.status === 403 && e.code === "csrf",
      );
      assert.deepEqual(await walkFiles(fx.root), before);
      const [{ count }] = await fx.db
        .sql`SELECT count(*)::int AS count FROM upload_batch` as unknown as [{ count: number }];
      assert.equal(count, 1);
    });
    await t.step(
      "the X-CSRF-Token header wins, and a form without files is checked too",
      async () => {
        const withFile = multipartBody([
          { name: "csrf_token", data: "forged" },
          { name: "files", filename: "h.pdf", data: pdfBytes(800) },
        ]);
        const result = await uploadForm(fx.deps, {
          body: streamOf(withFile.body),
          contentType: withFile.contentType,
          uploader: ada.user,
          maxFiles: 10,
          csrf: { expected: "tok", header: "tok" },
        });
        assert.equal(result.batch.status, "complete");
        const empty = multipartBody([{ name: "csrf_token", data: "forged" }]);
        await assert.rejects(
          uploadForm(fx.deps, {
            body: streamOf(empty.body),
            contentType: empty.contentType,
            uploader: ada.user,
            maxFiles: 10,
            csrf: { expected: "tok" },
          }),
          (e: unknown) => e instanceof HttpError && e.code === "csrf",
        );
      },
    );
    await t.step(
      "more files than allowed: refused at the first extra file, earlier ones kept",
      async () => {
        const parts = Array.from(
          { length: 4 },
          (_, i) => ({ name: "f", filename: `${i}.pdf`, data: pdfBytes(500, i + 1) }),
        );
        const { body, contentType } = multipartBody(parts);
        try {
          await uploadForm(fx.deps, {
            body: streamOf(body),
            contentType,
            uploader: ada.user,
            maxFiles: 3,
          });
          assert.fail("expected a refusal");
        } catch (error) {
          assert.ok(error instanceof BatchUploadError);
          assert.equal(error.code, "too_many_files");
          assert.equal(
            error.message,
            'Cannot upload file 4 "3.pdf": at most 3 files per request (MAX_FILES_PER_REQUEST); the files before it were stored',
          );
          assert.equal(error.partial?.files.length, 3);
          assert.equal(error.partial?.batch.status, "complete");
        }
      },
    );
    await t.step("malformed bodies and forms without files are refused", async () => {
      await assert.rejects(
        uploadForm(fx.deps, {
          body: streamOf(utf8("garbage")),
          contentType: "multipart/form-data; boundary=x",
          uploader: ada.user,
          maxFiles: 10,
        }),
        (e: unknown) => e instanceof BatchUploadError && e.code === "malformed",
      );
      await assert.rejects(
        uploadForm(fx.deps, {
          body: streamOf(utf8("{}")),
          contentType: "application/json",
          uploader: ada.user,
          maxFiles: 10,
        }),
        (e: unknown) => e instanceof BatchUploadError && e.code === "malformed",
      );
      const { body, contentType } = multipartBody([
        { name: "csrf_token", data: "tok" },
        { name: "files", filename: "", data: "" },
      ]);
      await assert.rejects(
        uploadForm(fx.deps, {
          body: streamOf(body),
          contentType,
          uploader: ada.user,
          maxFiles: 10,
        }),
        (e: unknown) => e instanceof BatchUploadError && e.code === "no_files",
      );
    });
    await t.step(
      "an idempotency key naming a finalized batch replays it without storing",
      async () => {
        const { body, contentType } = multipartBody([{
          name: "f",
          filename: "a.pdf",
          data: pdfBytes(500),
        }]);
        const first = await uploadForm(fx.deps, {
          body: streamOf(body),
          contentType,
          uploader: ada.user,
          maxFiles: 10,
          idempotencyKey: "form-1",
        });
        const again = await uploadForm(fx.deps, {
          body: streamOf(body),
          contentType,
          uploader: ada.user,
          maxFiles: 10,
          idempotencyKey: "form-1",
        });
        assert.ok(!first.replayed);
        assert.ok(again.replayed);
        assert.equal(again.batch.id, first.batch.id);
        assert.deepEqual(again.files.map((f) => f.file.id), first.files.map((f) => f.file.id));
      },
    );
  } finally {
    await fx.close();
  }
});
