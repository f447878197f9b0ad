import assert from "node:assert/strict";
import { bytesOf, seededStream, sha256 } from "./helpers/streams.ts";
import { join } from "node:path";
import { loadConfig } from "../src/config/config.ts";
import { contentDisposition, safeFilename } from "../src/http/content_disposition.ts";
import { LocalStorageAdapter } from "../src/storage/local/local_storage.ts";
import { S3StorageAdapter } from "../src/storage/s3/s3_storage.ts";
import { checkStorage } from "../src/storage/storage_check.ts";
import { StorageError } from "../src/storage/storage.ts";
import { createStorage } from "../src/storage/storage_factory.ts";

/** A stream that sends `bytes`, then fails with `error`. */
function failingStream(bytes: Uint8Array, error: Error): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    pull(controller) {
      if (sent) return controller.error(error);
      sent = true;
      controller.enqueue(bytes);
    },
  });
}

async function listFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) found.push(...await listFiles(path));
      else found.push(path);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return found;
}

async function withStorage(fn: (storage: LocalStorageAdapter, root: string) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "portal-local-storage-" });
  try {
    await fn(new LocalStorageAdapter({ root }), root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const KEY = "uploads/2026/11/0193a3c4-7f1e-7000-8000-000000000001/report.pdf";

Deno.test("LocalStorageAdapter.writePart() stores, reads back and deletes upload parts", async (t) => {
  await withStorage(async (storage, root) => {
    const session = "0193a3c4-7f1e-7000-8000-0000000000aa";
    const first = await bytesOf(seededStream(1, 300_000));
    const second = await bytesOf(seededStream(2, 1000));

    await t.step("write two parts", async () => {
      const stored = await storage.writePart(session, 1, seededStream(1, 300_000));
      assert.deepEqual(stored, {
        size: 300_000,
        sha256: sha256(first),
        key: `tmp/parts/${session}/1`,
      });
      await storage.writePart(session, 2, seededStream(2, 1000));
      const stat = await Deno.stat(join(root, "tmp", "parts", session, "1"));
      assert.equal(stat.size, 300_000);
    });

    await t.step("read them back", async () => {
      assert.deepEqual(await bytesOf(await storage.readPart(session, 1)), first);
      assert.deepEqual(await bytesOf(await storage.readPart(session, 2)), second);
    });

    await t.step("a rewritten part replaces the old one", async () => {
      await storage.writePart(session, 2, seededStream(3, 10));
      assert.equal((await bytesOf(await storage.readPart(session, 2))).byteLength, 10);
    });

    await t.step("deletePart() is idempotent", async () => {
      await storage.deletePart(session, 1);
      await storage.deletePart(session, 1);
      await assert.rejects(storage.readPart(session, 1), (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.equal(error.kind, "not_found");
        assert.equal(error.message, `Cannot read part 1 of upload "${session}": it does not exist`);
        return true;
      });
    });

    await t.step("deleteSessionParts() removes the rest, twice without error", async () => {
      await storage.deleteSessionParts(session);
      await storage.deleteSessionParts(session);
      await assert.rejects(storage.readPart(session, 2), {
        name: "StorageError",
        kind: "not_found",
      });
      assert.deepEqual(await listFiles(join(root, "tmp")), []);
    });
  });
});

Deno.test("LocalStorageAdapter.putObject() streams an object in and out with the same SHA-256", async () => {
  await withStorage(async (storage, root) => {
    const size = 3 * 1024 * 1024 + 17;
    const expected = sha256(await bytesOf(seededStream(7, size)));

    const stored = await storage.putObject(KEY, seededStream(7, size), {
      contentType: "application/pdf",
    });

    assert.deepEqual(stored, { size, sha256: expected });
    assert.equal((await Deno.stat(join(root, "objects", ...KEY.split("/")))).size, size);
    assert.deepEqual(await listFiles(join(root, "tmp", "incoming")), []);
    const object = await storage.getObject(KEY);
    assert.ok(object);
    assert.equal(object.info.size, size);
    assert.equal(sha256(await bytesOf(object.body)), expected);
  });
});

Deno.test("LocalStorageAdapter.putObject() stores an empty body", async () => {
  await withStorage(async (storage) => {
    const stored = await storage.putObject("empty.txt", seededStream(1, 0));
    assert.deepEqual(stored, { size: 0, sha256: sha256(new Uint8Array()) });
    const object = await storage.getObject("empty.txt");
    assert.ok(object);
    assert.equal((await bytesOf(object.body)).byteLength, 0);
  });
});

Deno.test("LocalStorageAdapter.getObject() serves byte ranges", async () => {
  await withStorage(async (storage) => {
    const size = 700_001;
    const data = await bytesOf(seededStream(9, size));
    await storage.putObject(KEY, seededStream(9, size));
    const cases = [
      { name: "first byte", start: 0, end: 0 },
      { name: "middle", start: 123_457, end: 456_789 },
      { name: "last byte", start: size - 1, end: size - 1 },
      { name: "whole", start: 0, end: size - 1 },
    ];
    for (const { name, start, end } of cases) {
      const object = await storage.getObject(KEY, { range: { start, end } });
      assert.ok(object, name);
      assert.deepEqual(object.range, { start, end }, name);
      assert.equal(object.info.size, size, name);
      assert.deepEqual(await bytesOf(object.body), data.subarray(start, end + 1), name);
    }

    const clamped = await storage.getObject(KEY, { range: { start: size - 10, end: size + 100 } });
    assert.ok(clamped);
    assert.deepEqual(clamped.range, { start: size - 10, end: size - 1 });
    assert.deepEqual(await bytesOf(clamped.body), data.subarray(size - 10));

    await assert.rejects(
      storage.getObject(KEY, { range: { start: size, end: size + 5 } }),
      RangeError,
    );
    await assert.rejects(storage.getObject(KEY, { range: { start: 5, end: 4 } }), RangeError);
    await storage.putObject("empty.bin", seededStream(1, 0));
    await assert.rejects(
      storage.getObject("empty.bin", { range: { start: 0, end: 0 } }),
      RangeError,
    );
    assert.equal(
      await storage.getObject("uploads/missing.pdf", { range: { start: 0, end: 0 } }),
      null,
    );
  });
});

Deno.test("LocalStorageAdapter.getObject() closes the file when the reader cancels", async () => {
  await withStorage(async (storage) => {
    await storage.putObject(KEY, seededStream(4, 1_000_000));
    const object = await storage.getObject(KEY);
    assert.ok(object);
    const reader = object.body.getReader();
    assert.equal((await reader.read()).value?.byteLength, 128 * 1024);
    await reader.cancel();
    // The leak sanitizer fails this test if the file is still open.
  });
});

Deno.test("LocalStorageAdapter.headObject() reports size, mtime and a strong etag", async () => {
  await withStorage(async (storage) => {
    assert.equal(await storage.headObject(KEY), null);
    await storage.putObject(KEY, seededStream(1, 5000));
    const info = await storage.headObject(KEY);
    assert.ok(info);
    assert.equal(info.size, 5000);
    assert.match(info.etag, /^"[0-9a-f-]+"$/);
    assert.ok(info.lastModified instanceof Date);
    assert.equal(info.contentType, null);

    await storage.putObject(KEY, seededStream(2, 5000));
    const rewritten = await storage.headObject(KEY);
    assert.notEqual(rewritten?.etag, info.etag);
    assert.equal(await storage.headObject("uploads"), null, "a directory is not an object");
  });
});

Deno.test("LocalStorageAdapter.deleteObject() is idempotent and prunes empty directories", async () => {
  await withStorage(async (storage, root) => {
    const sibling = "uploads/2026/11/other/notes.txt";
    await storage.putObject(KEY, seededStream(1, 10));
    await storage.putObject(sibling, seededStream(2, 10));

    await storage.deleteObject(KEY);
    await storage.deleteObject(KEY);
    await storage.deleteObject("uploads/2026/11");

    assert.equal(await storage.getObject(KEY), null);
    assert.deepEqual(await listFiles(join(root, "objects")), [join(root, "objects", sibling)]);
    await storage.deleteObject(sibling);
    assert.deepEqual([...Deno.readDirSync(join(root, "objects"))], []);
  });
});

Deno.test("LocalStorageAdapter refuses invalid keys, session ids and part numbers", async () => {
  await withStorage(async (storage, root) => {
    const badKeys = [
      "",
      "../escape.txt",
      "uploads/../../etc/passwd",
      "uploads/..",
      "/etc/passwd",
      "C:/Windows/win.ini",
      "uploads\\evil.txt",
      "uploads/a\u0000b",
      "uploads//double",
      "uploads/./dot",
      "uploads/trailing/",
      "tmp/parts/x/1",
      "x".repeat(1025),
    ];
    for (const key of badKeys) {
      const isInvalid = (error: unknown) =>
        error instanceof StorageError && error.kind === "invalid_key" &&
        error.message.startsWith("Cannot use storage key ");
      await assert.rejects(
        storage.putObject(key, seededStream(1, 10)),
        isInvalid,
        JSON.stringify(key),
      );
      await assert.rejects(storage.getObject(key), isInvalid, JSON.stringify(key));
      await assert.rejects(storage.headObject(key), isInvalid, JSON.stringify(key));
      await assert.rejects(storage.deleteObject(key), isInvalid, JSON.stringify(key));
    }
    for (
      const [session, part] of [["..", 1], ["a/b", 1], ["", 1], ["ok", -1], ["ok", 1.5]] as const
    ) {
      await assert.rejects(
        storage.writePart(session, part, seededStream(1, 10)),
        { name: "StorageError", kind: "invalid_key" },
        `${session}/${part}`,
      );
    }
    await assert.rejects(storage.deleteSessionParts("../objects"), { kind: "invalid_key" });
    assert.deepEqual(await listFiles(root), []);
    // ".." inside a name is not a path segment and stays allowed.
    await storage.putObject("uploads/report..final.pdf", seededStream(1, 10));
  });
});

Deno.test("LocalStorageAdapter.putObject() leaves nothing behind when the body stream errors", async () => {
  await withStorage(async (storage, root) => {
    const boom = new Error("client went away");
    await assert.rejects(
      storage.putObject(KEY, failingStream(new Uint8Array(1024 * 1024), boom)),
      (error) => error === boom,
    );
    await assert.rejects(
      storage.writePart("session-1", 1, failingStream(new Uint8Array(1000), boom)),
      (error) => error === boom,
    );
    assert.deepEqual(await listFiles(join(root, "objects")), []);
    assert.deepEqual(await listFiles(join(root, "tmp")), []);
  });
});

Deno.test("LocalStorageAdapter.putObject() leaves nothing behind when its signal aborts", async () => {
  await withStorage(async (storage, root) => {
    const controller = new AbortController();
    let sent = 0;
    const stalling = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 3) return new Promise(() => {}); // a client that stops sending
        sent++;
        c.enqueue(new Uint8Array(64 * 1024));
        if (sent === 3) setTimeout(() => controller.abort(new Error("shutdown")), 10);
      },
    });
    await assert.rejects(
      storage.putObject(KEY, stalling, { signal: controller.signal }),
      (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.equal(error.kind, "aborted");
        assert.equal(error.message, `Cannot store object "${KEY}": the write was aborted`);
        return true;
      },
    );
    const aborted = AbortSignal.abort();
    await assert.rejects(
      storage.writePart("s", 1, seededStream(1, 10), { signal: aborted }),
      { kind: "aborted" },
    );
    assert.deepEqual(await listFiles(root), []);
  });
});

Deno.test("LocalStorageAdapter.presignedDownloadUrl() returns null: Portal signs local links", async () => {
  await withStorage(async (storage) => {
    const url = await storage.presignedDownloadUrl(KEY, {
      filename: "report.pdf",
      contentType: "application/pdf",
      inline: false,
      expiresInSeconds: 60,
    });
    assert.equal(url, null);
  });
});

Deno.test("checkStorage() passes on a writable local directory", async () => {
  await withStorage(async (storage, root) => {
    const result = await checkStorage(storage);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.match(result.ok ? result.details : "", /^local directory ".+": wrote, read back/);
    assert.deepEqual(await listFiles(root), []);
  });
});

Deno.test("checkStorage() reports a local root that cannot hold files", async () => {
  await withStorage(async (_storage, root) => {
    const file = join(root, "not-a-directory");
    await Deno.writeTextFile(file, "");
    const result = await checkStorage(new LocalStorageAdapter({ root: file }));
    assert.equal(result.ok, false);
    assert.match(
      result.ok ? "" : result.message,
      /^Cannot store object "portal-probe\/[0-9a-f-]+": .+; check PORTAL_DATA_DIR/,
    );
  });
});

Deno.test("createStorage() builds the adapter the config names", () => {
  const local = loadConfig({ PORTAL_DATA_DIR: "/srv/portal" });
  assert.ok(local.ok);
  const localStorage = createStorage(local.config);
  assert.ok(localStorage instanceof LocalStorageAdapter);
  assert.equal(localStorage.root, "/srv/portal/media");

  const s3 = loadConfig({
    STORAGE_BACKEND: "s3",
    AWS_STORAGE_BUCKET_NAME: "files",
    AWS_S3_ENDPOINT_URL: "http://127.0.0.1:9000",
    AWS_ACCESS_KEY_ID: "key",
    AWS_SECRET_ACCESS_KEY: "secret",
  });
  assert.ok(s3.ok, JSON.stringify(s3));
  const s3Storage = createStorage(s3.config);
  assert.ok(s3Storage instanceof S3StorageAdapter);
  assert.equal(s3Storage.describe(), `S3 bucket "files" at "http://127.0.0.1:9000"`);
  s3Storage.close();
});

Deno.test("contentDisposition() builds a safe header for any filename", () => {
  assert.equal(
    contentDisposition("report.pdf", false),
    `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`,
  );
  assert.equal(
    contentDisposition("résumé.pdf", true),
    `inline; filename="resume.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`,
  );
  assert.equal(
    contentDisposition('evil"; filename="x.html\r\n', false),
    `attachment; filename="evil; filename=x.html"; filename*=UTF-8''evil%3B%20filename%3Dx.html`,
  );
  assert.equal(
    contentDisposition("../../etc/passwd", false),
    `attachment; filename=".._.._etc_passwd"; filename*=UTF-8''.._.._etc_passwd`,
  );
  assert.equal(
    contentDisposition("100% 日本語 (1)*.txt", false),
    `attachment; filename="100_ ___ (1)*.txt"; filename*=UTF-8''100%25%20%E6%97%A5%E6%9C%AC%E8%AA%9E%20%281%29%2A.txt`,
  );
  assert.equal(safeFilename("invoice\u202Efdp.exe"), "invoicefdp.exe");
  assert.equal(safeFilename(" .. "), "download");
  assert.equal(safeFilename("\ud800bad.txt"), "\ufffdbad.txt");
  const long = safeFilename("a".repeat(500) + ".pdf");
  assert.equal(long.length, 200);
  assert.ok(long.endsWith(".pdf"));
});

Deno.test("LocalStorageAdapter.deleteIncomplete() removes only abandoned temp files", async () => {
  await withStorage(async (storage, root) => {
    await storage.putObject(KEY, seededStream(3, 1000));
    const incoming = join(root, "tmp", "incoming");
    await Deno.mkdir(incoming, { recursive: true });
    const abandoned = join(incoming, `${crypto.randomUUID()}.tmp`);
    const inProgress = join(incoming, `${crypto.randomUUID()}.tmp`);
    await Deno.writeFile(abandoned, new Uint8Array(10));
    await Deno.writeFile(inProgress, new Uint8Array(10));
    const dayAgo = new Date(Date.now() - 25 * 3_600_000);
    await Deno.utime(abandoned, dayAgo, dayAgo);

    const olderThan = new Date(Date.now() - 24 * 3_600_000);
    assert.equal(await storage.deleteIncomplete({ olderThan, prefix: "uploads/" }), 1);
    const left = await listFiles(root);
    assert.ok(!left.includes(abandoned), "the abandoned temp file is gone");
    assert.ok(left.includes(inProgress), "a write in progress is left alone");
    assert.ok((await storage.headObject(KEY)) !== null, "finished objects are untouched");
    assert.equal(await storage.deleteIncomplete({ olderThan, prefix: "uploads/" }), 0);
  });
});

Deno.test("LocalStorageAdapter.deleteIncomplete() finds nothing on a fresh root", async () => {
  await withStorage(async (storage) => {
    assert.equal(await storage.deleteIncomplete({ olderThan: new Date(), prefix: "uploads/" }), 0);
  });
});
