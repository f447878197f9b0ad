import assert from "node:assert/strict";
import { createApp } from "../app.ts";
import { freePort, login, startTestServer } from "./helpers/app.ts";
import { type SocketUpload, uploadOverSocket } from "./helpers/socket_upload.ts";
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
  utf8,
  walkFiles,
} from "./helpers/uploads.ts";

const JSON_TYPE = /^application\/json/;
const MIB = 1024 * 1024;

type Json = Record<string, unknown> & { error?: { code: string; message: string } };

/**
 * The JSON body of `response`. An error answer must carry the request id of its X-Request-Id
 * header (what a person quotes to whoever reads the log); it is checked and left out here, so
 * the callers compare code and message.
 */
async function json(response: Response): Promise<Json> {
  assert.match(response.headers.get("content-type") ?? "", JSON_TYPE);
  const body = await response.json() as Json;
  if (body.error && typeof body.error === "object") {
    const { request_id, ...error } = body.error as Json;
    assert.equal(request_id, response.headers.get("x-request-id"), "the error names the request");
    body.error = error as { code: string; message: string };
  }
  return body;
}

Deno.test("POST /api/v1/files stores a raw body and answers 201 with the file", async () => {
  const fx = await createUploadFixture("uploads_api_store");
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const app = createApp(fx.deps);
    const bytes = pdfBytes(150_000);
    const response = await app.request("/api/v1/files?filename=report.pdf", {
      method: "POST",
      headers: { ...ada.auth, "content-type": "application/octet-stream" },
      body: bytes,
    });
    assert.equal(response.status, 201);
    const body = await json(response);
    assert.equal(response.headers.get("location"), `/api/v1/files/${body.id}`);
    assert.equal(body.status, "stored");
    assert.equal(body.original_filename, "report.pdf");
    assert.equal(body.content_type, "application/pdf");
    assert.equal(body.size_bytes, 150_000);
    assert.equal(body.sha256, sha256Hex(bytes));
    assert.equal(body.batch_id, null);
    assert.match(String(body.expires_at), /^\d{4}-\d\d-\d\dT/);
    assert.match(
      String(body.url),
      new RegExp(
        `^http://portal\\.test/files/${body.id}/download\\?expires=\\d+&sig=[0-9a-f]{64}$`,
      ),
    );

    const named = await app.request("/api/v1/files", {
      method: "POST",
      headers: {
        ...ada.auth,
        "content-disposition": `attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`,
      },
      body: pdfBytes(1000),
    });
    assert.equal(named.status, 201);
    assert.equal((await json(named)).original_filename, "résumé.pdf");
  } finally {
    await fx.close();
  }
});

Deno.test("POST /api/v1/files answers bad input with the right status and message", async (t) => {
  const fx = await createUploadFixture("uploads_api_errors", {
    env: { FILE_UPLOAD_MAX_SIZE: String(MIB), MAX_FILES_PER_REQUEST: "10" },
  });
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const app = createApp(fx.deps);
    const post = (
      body: BodyInit | null,
      headers: Record<string, string> = {},
      query = "?filename=a.bin",
    ) =>
      app.request(`/api/v1/files${query}`, {
        method: "POST",
        headers: { ...ada.auth, ...headers },
        body,
      });

    await t.step("no credentials: 401", async () => {
      const response = await app.request("/api/v1/files", { method: "POST", body: pdfBytes(10) });
      assert.equal(response.status, 401);
      assert.equal((await json(response)).error?.code, "unauthorized");
    });
    await t.step("a wrong token: 401", async () => {
      const response = await app.request("/api/v1/files", {
        method: "POST",
        headers: { authorization: "Bearer ptk_wrong" },
        body: pdfBytes(10),
      });
      assert.equal(response.status, 401);
      assert.deepEqual((await json(response)).error, {
        code: "invalid_token",
        message: "Cannot authenticate: the token is unknown or revoked",
      });
    });
    await t.step("an empty body: 400", async () => {
      const response = await post(new Uint8Array(0));
      assert.equal(response.status, 400);
      const body = await json(response);
      assert.deepEqual(body.error, {
        code: "empty",
        message: "Cannot store upload: the file is empty",
      });
      assert.equal((body.file as Json).status, "failed");
    });
    await t.step("a disallowed type: 415", async () => {
      const response = await post(exeBytes(), {}, "?filename=setup.exe");
      assert.equal(response.status, 415);
      assert.deepEqual((await json(response)).error, {
        code: "type_not_allowed",
        message:
          'File "setup.exe" is not allowed: type "application/x-msdownload" is not in FILE_UPLOAD_ALLOWED_TYPES',
      });
    });
    await t.step("HTML and SVG are refused even when named .txt", async () => {
      for (const text of ["<html><script>alert(1)</script>", "<svg onload=alert(1)>"]) {
        const response = await post(utf8(text), {}, "?filename=notes.txt");
        assert.equal(response.status, 415);
        await response.body?.cancel();
      }
    });
    await t.step("too large (streamed): 413 with Connection: close", async () => {
      const response = await post(pngBytes(2 * MIB), {}, "?filename=big.png");
      assert.equal(response.status, 413);
      assert.equal(response.headers.get("connection"), "close");
      assert.deepEqual((await json(response)).error, {
        code: "too_large",
        message: `File "big.png" is too large: it exceeds FILE_UPLOAD_MAX_SIZE (${MIB} bytes)`,
      });
    });
    await t.step("more than MAX_FILES_PER_REQUEST files: 400", async () => {
      const parts = Array.from(
        { length: 11 },
        (_, i) => ({ name: "files", filename: `${i}.pdf`, data: pdfBytes(200, i + 1) }),
      );
      const { body, contentType } = multipartBody(parts);
      const response = await post(body, { "content-type": contentType }, "");
      assert.equal(response.status, 400);
      const answer = await json(response);
      assert.equal(answer.error?.code, "too_many_files");
      assert.equal(
        answer.error?.message,
        'Cannot upload file 11 "10.pdf": at most 10 files per request (MAX_FILES_PER_REQUEST); the files before it were stored',
      );
      assert.equal((answer.files as unknown[]).length, 10);
    });
    await t.step("a malformed multipart body: 400", async () => {
      const response = await post(
        utf8(
          '--b\r\nContent-Disposition: form-data; name="f"; filename="a.pdf"\r\n\r\n%PDF-1.4 cut',
        ),
        {
          "content-type": "multipart/form-data; boundary=b",
        },
        "",
      );
      assert.equal(response.status, 400);
      const answer = await json(response);
      assert.equal(answer.error?.code, "malformed");
      assert.equal(answer.error?.message, "Cannot read the form: the body ended inside a part");
    });
    await t.step("a multipart body without a boundary or files: 400", async () => {
      const response = await post(utf8("x"), { "content-type": "multipart/form-data" }, "");
      // Without a boundary this is not a form: it is stored as a raw body named by the query.
      assert.equal(response.status, 201);
      await response.body?.cancel();
      const { body, contentType } = multipartBody([{ name: "note", data: "hi" }]);
      const noFiles = await post(body, { "content-type": contentType }, "");
      assert.equal(noFiles.status, 400);
      assert.equal((await json(noFiles)).error?.code, "no_files");
    });
    await t.step("a multipart upload: 201 with the batch and each file", async () => {
      const { body, contentType } = multipartBody([
        { name: "files", filename: "a.pdf", data: pdfBytes(500) },
        { name: "files", filename: "b.exe", data: exeBytes() },
      ]);
      const response = await post(body, { "content-type": contentType }, "");
      assert.equal(response.status, 201);
      const answer = await json(response);
      assert.equal((answer.batch as Json).status, "partial");
      const files = answer.files as Json[];
      assert.deepEqual(files.map((f) => [f.status, (f.error as Json | null)?.code ?? null]), [
        ["stored", null],
        ["failed", "type_not_allowed"],
      ]);
    });
    await t.step(
      "a multipart upload where every file fails: the first failure's status",
      async () => {
        const { body, contentType } = multipartBody([{
          name: "files",
          filename: "b.exe",
          data: exeBytes(),
        }]);
        const response = await post(body, { "content-type": contentType }, "");
        assert.equal(response.status, 415);
        assert.equal((await json(response)).error?.code, "type_not_allowed");
      },
    );
    assert.ok(
      (await outboxEvents(fx.db, "file.stored")).length >= 1,
      "only stored files have events",
    );
  } finally {
    await fx.close();
  }
});

// What a client may push past the limit before the server drops the connection: Portal reads
// a few hundred KiB past it, plus at most DRAIN_BYTES (1 MiB) for a chunked body, the rest
// sits in the kernel's socket buffers on both ends (measured on loopback: 3 to 10 MiB in all).
// Draining the body would take all of `total`.
const SOCKET_SLACK = 16 * MIB;

Deno.test("POST /api/v1/files answers 413 while the client is still sending, then drops the connection", async (t) => {
  const fx = await createUploadFixture("uploads_api_413", {
    env: { FILE_UPLOAD_MAX_SIZE: String(MIB), MAX_FILES_PER_REQUEST: "2" },
  });
  const server = await startTestServer(fx.deps);
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    // A client that keeps sending: the server must stop reading and close, not take it all.
    const total = 256 * MIB;
    const head = (path: string, framing: string, type = "application/octet-stream") =>
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ada.token}\r\n` +
      `Content-Type: ${type}\r\n${framing}\r\n`;
    const refused = (
      result: SocketUpload,
      options: { status: number; message: RegExp; limit: number },
    ) => {
      assert.match(result.response, new RegExp(`^HTTP/1\\.1 ${options.status} `));
      assert.match(result.response, /connection: close/i);
      assert.match(result.response, options.message);
      assert.ok(result.sentBeforeResponse >= 0, "the answer arrived");
      assert.ok(
        result.sent <= options.limit + SOCKET_SLACK,
        `the connection took ${result.sent} bytes of ${total} (limit ${options.limit})`,
      );
      assert.ok(result.closed, "the server closed the connection");
    };
    // 2 files × 1 MiB + 1 MiB of headroom for part headers and fields.
    const formLimit = 3 * MIB;
    const boundary = "----portal413";
    const formHead = utf8(
      `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n` +
        `Content-Type: image/png\r\n\r\n`,
    );
    const formType = `multipart/form-data; boundary=${boundary}`;
    const png = pngBytes(64 * 1024);
    const formFirst = new Uint8Array([...formHead, ...png]);

    await t.step("raw, a Content-Length above the limit: refused before the body", async () => {
      const result = await uploadOverSocket(
        server.port,
        head("/api/v1/files?filename=big.png", `Content-Length: ${total}\r\n`),
        { total, first: png },
      );
      refused(result, { status: 413, message: /too large/, limit: MIB });
      assert.ok(result.sentBeforeResponse < SOCKET_SLACK, "answered before reading the body");
    });
    await t.step("raw, chunked: refused at the byte that crosses the limit", async () => {
      const result = await uploadOverSocket(
        server.port,
        head("/api/v1/files?filename=big.png", "Transfer-Encoding: chunked\r\n"),
        { total, first: png, chunked: true },
      );
      refused(result, { status: 413, message: /too large/, limit: MIB });
    });
    await t.step("raw, chunked, a disallowed type: 415 after the first bytes", async () => {
      const result = await uploadOverSocket(
        server.port,
        head("/api/v1/files?filename=tool.exe", "Transfer-Encoding: chunked\r\n"),
        { total, first: exeBytes(64 * 1024), chunked: true },
      );
      refused(result, { status: 415, message: /not allowed/, limit: MIB });
    });
    await t.step("multipart, a Content-Length above the request limit", async () => {
      const result = await uploadOverSocket(
        server.port,
        head("/api/v1/files", `Content-Length: ${total}\r\n`, formType),
        { total, first: formFirst },
      );
      refused(result, { status: 413, message: /larger than/, limit: formLimit });
      assert.ok(result.sentBeforeResponse < SOCKET_SLACK, "answered before reading the body");
    });
    await t.step(
      "multipart, chunked: refused when the form crosses the request limit",
      async () => {
        const result = await uploadOverSocket(
          server.port,
          head("/api/v1/files", "Transfer-Encoding: chunked\r\n", formType),
          { total, first: formFirst, chunked: true },
        );
        refused(result, { status: 413, message: /larger than/, limit: formLimit });
      },
    );
    assert.deepEqual(await walkFiles(fx.root), [], "nothing left in temp or final storage");
    const rows = await fx.db.sql<{ status: string }[]>`SELECT status FROM upload_file`;
    assert.deepEqual(rows.map((r) => r.status), ["failed", "failed", "failed", "failed"]);
  } finally {
    await server.stop();
    await fx.close();
  }
});

Deno.test("filenames are stored safely and downloaded with a safe Content-Disposition", async () => {
  const fx = await createUploadFixture("uploads_api_names");
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const app = createApp(fx.deps);
    const cases: [string, RegExp][] = [
      ["../../etc/passwd.txt", /\/passwd\.txt$/],
      ["a\u0000b.txt", /\/ab\.txt$/],
      ["x".repeat(300) + ".txt", /\/x{251}\.txt$/],
      ["....", /\/file$/],
    ];
    for (const [name, keyPattern] of cases) {
      const response = await app.request(`/api/v1/files?filename=${encodeURIComponent(name)}`, {
        method: "POST",
        headers: ada.auth,
        body: utf8("plain text\n"),
      });
      assert.equal(response.status, 201, name);
      const body = await json(response);
      const [row] = await fx.db.sql<{ storageKey: string }[]>`
        SELECT storage_key AS "storageKey" FROM upload_file WHERE id = ${String(body.id)}`;
      assert.match(row!.storageKey, keyPattern, name);
      assert.match(row!.storageKey, new RegExp(`^uploads/\\d{4}/\\d\\d/${body.id}/[^/]+$`));
      const download = await app.request(`/files/${body.id}/download`, { headers: ada.auth });
      assert.equal(download.status, 200);
      const disposition = download.headers.get("content-disposition") ?? "";
      // Printable ASCII fallback without quotes or slashes, then the RFC 8187 form.
      assert.match(
        disposition,
        /^attachment; filename="[ !#-.0-\[\]-~]*"; filename\*=UTF-8''[A-Za-z0-9%._~!$&+^`|-]+$/,
        disposition,
      );
      assert.equal(await download.text(), "plain text\n");
    }
    const files = await walkFiles(fx.root);
    assert.ok(files.every((p) => p.startsWith("objects/uploads/")), files.join(", "));
  } finally {
    await fx.close();
  }
});

Deno.test("GET/DELETE /api/v1/files: own files only, 404 for others and unknown ids", async (t) => {
  const fx = await createUploadFixture("uploads_api_files");
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const bob = await createTestUser(fx.db, "bob@example.org");
    const root = await createTestUser(fx.db, "root@example.org", { admin: true });
    const app = createApp(fx.deps);
    const upload = async (auth: Record<string, string>, name: string) =>
      await json(
        await app.request(`/api/v1/files?filename=${name}`, {
          method: "POST",
          headers: auth,
          body: pdfBytes(300),
        }),
      );
    const adas: Json[] = [];
    for (let i = 0; i < 3; i++) adas.push(await upload(ada.auth, `${i}.pdf`));
    const bobs = await upload(bob.auth, "bob.pdf");

    await t.step("GET one: own 200, another user's 404, admin 200, unknown 404", async () => {
      const own = await app.request(`/api/v1/files/${adas[0]!.id}`, { headers: ada.auth });
      assert.equal(own.status, 200);
      assert.equal((await json(own)).id, adas[0]!.id);
      const other = await app.request(`/api/v1/files/${bobs.id}`, { headers: ada.auth });
      assert.equal(other.status, 404);
      assert.deepEqual((await json(other)).error, {
        code: "not_found",
        message: `Cannot find file "${bobs.id}"`,
      });
      assert.equal(
        (await app.request(`/api/v1/files/${bobs.id}`, { headers: root.auth })).status,
        200,
      );
      for (const id of ["0193a3c4-7f1e-7000-8000-000000000001", "not-a-uuid", "1"]) {
        const response = await app.request(`/api/v1/files/${id}`, { headers: ada.auth });
        assert.equal(response.status, 404, id);
        await response.body?.cancel();
      }
    });
    await t.step("GET list: keyset pages, admin sees all, bad values 400", async () => {
      const first = await json(await app.request("/api/v1/files?limit=2", { headers: ada.auth }));
      assert.deepEqual((first.files as Json[]).map((f) => f.id), [adas[2]!.id, adas[1]!.id]);
      const second = await json(
        await app.request(`/api/v1/files?limit=2&cursor=${first.next_cursor}`, {
          headers: ada.auth,
        }),
      );
      assert.deepEqual((second.files as Json[]).map((f) => f.id), [adas[0]!.id]);
      assert.equal(second.next_cursor, null);
      const all = await json(await app.request("/api/v1/files", { headers: root.auth }));
      assert.equal((all.files as Json[]).length, 4);
      const stored = await json(
        await app.request("/api/v1/files?status=failed", { headers: ada.auth }),
      );
      assert.deepEqual(stored.files, []);
      for (const query of ["limit=0", "limit=101", "limit=abc", "status=bogus", "cursor=zzz"]) {
        const response = await app.request(`/api/v1/files?${query}`, { headers: ada.auth });
        assert.equal(response.status, 400, query);
        assert.match((await json(response)).error?.message ?? "", /^Cannot list files: /);
      }
    });
    await t.step("DELETE: object gone, row deleted, file.deleted emitted; again 409", async () => {
      const id = String(adas[0]!.id);
      assert.equal(
        (await app.request(`/api/v1/files/${bobs.id}`, { method: "DELETE", headers: ada.auth }))
          .status,
        404,
      );
      const response = await app.request(`/api/v1/files/${id}`, {
        method: "DELETE",
        headers: ada.auth,
      });
      assert.equal(response.status, 200);
      assert.equal((await json(response)).status, "deleted");
      assert.ok(!(await walkFiles(fx.root)).some((p) => p.includes(id)));
      const events = (await outboxEvents(fx.db, "file.deleted")).map((e) => e.payload);
      assert.deepEqual(events, [{ file_id: id, reason: "deleted_by_user" }]);
      const again = await app.request(`/api/v1/files/${id}`, {
        method: "DELETE",
        headers: ada.auth,
      });
      assert.equal(again.status, 409);
      assert.deepEqual((await json(again)).error, {
        code: "conflict",
        message: `Cannot delete file "${id}": it is deleted`,
      });
      const download = await app.request(`/files/${id}/download`, { headers: ada.auth });
      assert.equal(download.status, 410);
      await download.body?.cancel();
    });
  } finally {
    await fx.close();
  }
});

Deno.test("/api/v1/batches: create, attach files, read, finalize", async () => {
  const fx = await createUploadFixture("uploads_api_batches");
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const bob = await createTestUser(fx.db, "bob@example.org");
    const app = createApp(fx.deps);
    const created = await app.request("/api/v1/batches", {
      method: "POST",
      headers: { ...ada.auth, "content-type": "application/json" },
      body: JSON.stringify({ idempotency_key: "page-1" }),
    });
    assert.equal(created.status, 201);
    const batch = await json(created);
    assert.equal(batch.status, "open");
    const replay = await app.request("/api/v1/batches", {
      method: "POST",
      headers: { ...ada.auth, "content-type": "application/json" },
      body: JSON.stringify({ idempotency_key: "page-1" }),
    });
    assert.equal(replay.status, 200);
    assert.equal((await json(replay)).id, batch.id);
    const bare = await app.request("/api/v1/batches", { method: "POST", headers: ada.auth });
    assert.equal(bare.status, 201);
    await bare.body?.cancel();
    // What `curl -X POST` and `curl -d ''` send: an empty body without a JSON content type.
    for (
      const headers of <Record<string, string>[]> [{ "content-length": "0" }, {
        "content-type": "application/x-www-form-urlencoded",
        "content-length": "0",
      }]
    ) {
      const empty = await app.request("/api/v1/batches", {
        method: "POST",
        headers: { ...ada.auth, ...headers },
        body: "",
      });
      assert.equal(empty.status, 201);
      await empty.body?.cancel();
    }
    const notJson = await app.request("/api/v1/batches", {
      method: "POST",
      headers: { ...ada.auth, "content-type": "text/plain" },
      body: "hello",
    });
    assert.equal(notJson.status, 415);
    await notJson.body?.cancel();
    const bad = await app.request("/api/v1/batches", {
      method: "POST",
      headers: { ...ada.auth, "content-type": "application/json" },
      body: JSON.stringify({ idempotency_key: 5 }),
    });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();

    const attach = (
      auth: Record<string, string>,
      bytes: Uint8Array<ArrayBuffer>,
      name: string,
      batchId = String(batch.id),
    ) =>
      app.request(`/api/v1/files?filename=${name}&batch_id=${batchId}`, {
        method: "POST",
        headers: auth,
        body: bytes,
      });
    assert.equal((await attach(ada.auth, pdfBytes(100), "a.pdf")).status, 201);
    assert.equal((await attach(ada.auth, exeBytes(), "b.exe")).status, 415);
    const foreign = await attach(bob.auth, pdfBytes(100), "c.pdf");
    assert.equal(foreign.status, 404);
    assert.equal((await json(foreign)).error?.code, "batch_not_found");
    assert.equal((await attach(ada.auth, pdfBytes(100), "d.pdf", "nope")).status, 404);

    const read = await json(
      await app.request(`/api/v1/batches/${batch.id}`, { headers: ada.auth }),
    );
    assert.deepEqual((read.files as Json[]).map((f) => f.status), ["stored", "failed"]);
    assert.equal(
      (await app.request(`/api/v1/batches/${batch.id}`, { headers: bob.auth })).status,
      404,
    );

    const finalized = await app.request(`/api/v1/batches/${batch.id}/finalize`, {
      method: "POST",
      headers: ada.auth,
    });
    assert.equal(finalized.status, 200);
    assert.equal((await json(finalized)).status, "partial");
    const late = await attach(ada.auth, pdfBytes(100), "late.pdf");
    assert.equal(late.status, 409);
    assert.equal((await json(late)).error?.code, "batch_not_open");
  } finally {
    await fx.close();
  }
});

Deno.test("the API takes a browser session for uploads only with X-CSRF-Token", async () => {
  const fx = await createUploadFixture("uploads_api_session");
  try {
    await createTestUser(fx.db, "ada@example.org");
    const app = createApp(fx.deps);
    const browser = await login(app, "ada@example.org", "correct horse battery");
    const csrf = await browser.sessionCsrfToken();
    const without = await browser.request("/api/v1/files?filename=a.pdf", {
      method: "POST",
      body: pdfBytes(100),
    });
    assert.equal(without.status, 401);
    await without.body?.cancel();
    const withToken = await browser.request("/api/v1/files?filename=a.pdf", {
      method: "POST",
      headers: { "x-csrf-token": csrf },
      body: pdfBytes(100),
    });
    assert.equal(withToken.status, 201);
    const file = await json(withToken);
    const download = await browser.get(`/files/${file.id}/download`);
    assert.equal(download.status, 200);
    assert.equal(download.headers.get("content-type"), "application/pdf");
    await download.body?.cancel();
  } finally {
    await fx.close();
  }
});

Deno.test("POST /api/v1/files answers 503 when the S3 endpoint is down, storing nothing", async () => {
  const fx = await createUploadFixture("uploads_api_s3down", { backend: "s3" });
  const down = s3Adapter({ ...fx.s3!, endpointUrl: `http://127.0.0.1:${freePort()}` });
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const app = createApp({ ...fx.deps, storage: down });
    const response = await app.request("/api/v1/files?filename=a.pdf", {
      method: "POST",
      headers: { ...ada.auth, "x-request-id": "s3down-1" },
      body: pdfBytes(20_000),
    });
    assert.equal(response.status, 503);
    const body = await json(response);
    assert.deepEqual(body.error, {
      code: "storage_unavailable",
      message: 'Cannot store upload "a.pdf": the storage is unavailable; try again later ' +
        "(request id s3down-1 in the server log)",
    });
    assert.equal((body.file as Json).status, "failed");
    const [row] = await fx.db.sql<{ metadata: Record<string, unknown> }[]>`
      SELECT metadata FROM upload_file`;
    assert.deepEqual(row?.metadata, { error_code: "storage_unavailable", request_id: "s3down-1" });
    assert.deepEqual(await bucketKeys(fx.s3!), []);
    assert.deepEqual(await fx.s3!.pendingUploads(), []);
    assert.deepEqual(await outboxEvents(fx.db), []);
    const uploads = fx.deps.metrics.counter("portal_uploads_total", "");
    assert.equal(uploads.get({ outcome: "storage_unavailable" }), 1);
  } finally {
    down.close();
    await fx.close();
  }
});
