/**
 * Uploads over real sockets, as far as the connection goes: a refused upload is answered
 * while the client is still sending and the connection is then dropped, not read to the end
 * (SPEC §5 Uploads; src/http/request_body_guard.ts); an upload read to its end, or a small
 * unread body, keeps it.
 * The 413s of POST /api/v1/files are in uploads_api_test.ts.
 */
import assert from "node:assert/strict";
import { login, startTestServer } from "./helpers/app.ts";
import {
  chunkedBody,
  requestsOverOneConnection,
  sendThenDisconnect,
  type SocketUpload,
  uploadOverSocket,
} from "./helpers/socket_upload.ts";
import {
  createTestUser,
  createUploadFixture,
  multipartBody,
  pngBytes,
  utf8,
  walkFiles,
} from "./helpers/uploads.ts";

const MIB = 1024 * 1024;
// As in uploads_api_test.ts: what the kernel's socket buffers hold, not what Portal reads.
const SOCKET_SLACK = 16 * MIB;
const TOTAL = 256 * MIB;

function assertDropped(result: SocketUpload, status: number, limit: number): void {
  assert.match(result.response, new RegExp(`^HTTP/1\\.1 ${status} `));
  assert.ok(result.sentBeforeResponse >= 0, "the answer arrived");
  assert.ok(
    result.sent <= limit + SOCKET_SLACK,
    `the connection took ${result.sent} bytes of ${TOTAL} (limit ${limit})`,
  );
  assert.ok(result.closed, "the server closed the connection");
}

Deno.test("POST /upload answers 413 while the browser is still sending, then drops the connection", async (t) => {
  const fx = await createUploadFixture("upload_connection_form", {
    env: { FILE_UPLOAD_MAX_SIZE: String(MIB), MAX_FILES_PER_REQUEST: "2" },
  });
  const server = await startTestServer(fx.deps);
  try {
    await createTestUser(fx.db, "ada@example.org");
    const browser = await login(server.url, "ada@example.org", "correct horse battery");
    const csrf = await browser.sessionCsrfToken();
    const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    const boundary = "----portalform";
    const head = (framing: string) =>
      `POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${cookie}\r\n` +
      `X-CSRF-Token: ${csrf}\r\nAccept: application/json\r\n` +
      `Content-Type: multipart/form-data; boundary=${boundary}\r\n${framing}\r\n`;
    const first = new Uint8Array([
      ...utf8(
        `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n` +
          `Content-Type: image/png\r\n\r\n`,
      ),
      ...pngBytes(64 * 1024),
    ]);
    // 2 files × 1 MiB + 1 MiB for part headers and fields.
    const limit = 3 * MIB;

    await t.step("a Content-Length above the request limit: refused before the body", async () => {
      const result = await uploadOverSocket(server.port, head(`Content-Length: ${TOTAL}\r\n`), {
        total: TOTAL,
        first,
      });
      assertDropped(result, 413, limit);
      assert.match(result.response, /larger than/);
      assert.ok(result.sentBeforeResponse < SOCKET_SLACK, "answered before reading the body");
    });
    await t.step("chunked: refused when the form crosses the request limit", async () => {
      const result = await uploadOverSocket(server.port, head("Transfer-Encoding: chunked\r\n"), {
        total: TOTAL,
        first,
        chunked: true,
      });
      assertDropped(result, 413, limit);
      assert.match(result.response, /larger than/);
    });
  } finally {
    await server.stop();
    await fx.close();
  }
});

Deno.test("POST /api/v1/files without credentials: 401, and the body is not read", async () => {
  const fx = await createUploadFixture("upload_connection_401");
  const server = await startTestServer(fx.deps);
  try {
    const head = `POST /api/v1/files?filename=big.png HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
      `Content-Length: ${TOTAL}\r\n\r\n`;
    const result = await uploadOverSocket(server.port, head, { total: TOTAL });
    assertDropped(result, 401, 0);
  } finally {
    await server.stop();
    await fx.close();
  }
});

Deno.test("an upload read to its end keeps the connection alive", async (t) => {
  const fx = await createUploadFixture("upload_connection_keepalive", {
    env: { FILE_UPLOAD_MAX_SIZE: String(4 * MIB) },
  });
  const server = await startTestServer(fx.deps);
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const auth = `Authorization: Bearer ${ada.token}\r\n`;
    const list = utf8(`GET /api/v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}\r\n`);
    const post = (path: string, type: string, body: Uint8Array) =>
      new Uint8Array([
        ...utf8(
          `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}Content-Type: ${type}\r\n` +
            `Content-Length: ${body.byteLength}\r\n\r\n`,
        ),
        ...body,
      ]);

    await t.step("a raw upload, then a second request on the same connection", async () => {
      const upload = post(
        "/api/v1/files?filename=a.png",
        "application/octet-stream",
        pngBytes(2 * MIB),
      );
      const answers = await requestsOverOneConnection(server.port, [upload, list]);
      assert.deepEqual(answers.map((a) => a.status), [201, 200]);
      assert.notEqual(answers[0]!.headers.get("connection"), "close");
    });
    await t.step("a multipart upload, then a second request on the same connection", async () => {
      const form = multipartBody([{ name: "files", filename: "b.png", data: pngBytes(2 * MIB) }]);
      const answers = await requestsOverOneConnection(server.port, [
        post("/api/v1/files", form.contentType, form.body),
        list,
      ]);
      assert.deepEqual(answers.map((a) => a.status), [201, 200]);
      assert.notEqual(answers[0]!.headers.get("connection"), "close");
    });
    await t.step(
      "a chunked multipart upload, then a second request on the same connection",
      async () => {
        // The multipart reader stops at the closing boundary: the epilogue and the last chunk
        // are left for the server to read.
        const form = multipartBody([{ name: "files", filename: "c.png", data: pngBytes(2 * MIB) }]);
        const upload = new Uint8Array([
          ...utf8(
            `POST /api/v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}` +
              `Content-Type: ${form.contentType}\r\nTransfer-Encoding: chunked\r\n\r\n`,
          ),
          ...chunkedBody(new Uint8Array([...form.body, ...utf8("\r\nan epilogue\r\n")])),
        ]);
        const answers = await requestsOverOneConnection(server.port, [upload, list]);
        assert.deepEqual(answers.map((a) => a.status), [201, 200]);
        assert.notEqual(answers[0]!.headers.get("connection"), "close");
      },
    );
  } finally {
    await server.stop();
    await fx.close();
  }
});

Deno.test("a 401 on a 100 KiB POST keeps the connection alive", async (t) => {
  const fx = await createUploadFixture("upload_connection_401_small");
  const server = await startTestServer(fx.deps);
  try {
    const health = utf8("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const body = pngBytes(100 * 1024);
    const head = (framing: string) =>
      utf8(
        `POST /api/v1/files?filename=a.png HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `Content-Type: application/octet-stream\r\n${framing}\r\n`,
      );
    // The server reads the unread rest itself (at most DRAIN_BYTES, briefly), so the next
    // request is answered on the same connection: no reset, no new handshake.
    await t.step("with a Content-Length", async () => {
      const post = new Uint8Array([...head(`Content-Length: ${body.byteLength}\r\n`), ...body]);
      const answers = await requestsOverOneConnection(server.port, [post, health]);
      assert.deepEqual(answers.map((a) => a.status), [401, 200]);
      assert.match(answers[0]!.body, /unauthorized|token|sign in/i);
    });
    await t.step("chunked", async () => {
      const post = new Uint8Array([
        ...head("Transfer-Encoding: chunked\r\n"),
        ...chunkedBody(body, { chunkSize: 16 * 1024 }),
      ]);
      const answers = await requestsOverOneConnection(server.port, [post, health]);
      assert.deepEqual(answers.map((a) => a.status), [401, 200]);
    });
  } finally {
    await server.stop();
    await fx.close();
  }
});

Deno.test("a client that trickles its body after a 401 gets the answer, then loses the connection", async () => {
  const fx = await createUploadFixture("upload_connection_401_trickle");
  const server = await startTestServer(fx.deps);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    // 100 KiB of a chunked body, then 1 KiB every 50 ms: 20 KiB/s would take 50 s to send
    // DRAIN_BYTES, so the server stops reading at its drain deadline and drops the connection.
    await writeAll(
      conn,
      new Uint8Array([
        ...utf8(
          `POST /api/v1/files?filename=a.png HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
            `Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`,
        ),
        ...chunkedBody(pngBytes(100 * 1024), { end: false }),
      ]),
    );
    const started = Date.now();
    let trickling = true;
    const trickle = (async () => {
      const chunk = chunkedBody(new Uint8Array(1024), { end: false });
      while (trickling && Date.now() - started < 10_000) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        if (!trickling || !(await writeAll(conn, chunk).then(() => true, () => false))) break;
      }
    })();
    const seen = await readUntilClosed(conn, 10_000);
    trickling = false;
    await trickle;
    const elapsed = Date.now() - started;
    assert.match(seen.text, /^HTTP\/1\.1 401 /);
    assert.ok(seen.closed, "the server closed the connection");
    assert.ok(elapsed < 5_000, `closed after ${elapsed} ms`);
  } finally {
    conn.close();
    await server.stop();
    await fx.close();
  }
});

/** Reads `conn` until the server closes or resets it, or `timeoutMs` pass (`closed` false). */
async function readUntilClosed(
  conn: Deno.Conn,
  timeoutMs: number,
): Promise<{ text: string; closed: boolean }> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    while (true) {
      const n = await Promise.race([conn.read(buffer).catch(() => null), timedOut]);
      if (n === "timeout") return { text, closed: false };
      if (n === null) return { text, closed: true };
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `upload_file` holds `count` rows that are not `uploading`, and returns them. */
async function settledUploads(
  fx: Awaited<ReturnType<typeof createUploadFixture>>,
  count: number,
): Promise<{ status: string; error_message: string }[]> {
  const deadline = Date.now() + 5_000;
  while (true) {
    const rows = await fx.db.sql<{ status: string; error_message: string }[]>`
      SELECT status, error_message FROM upload_file WHERE status <> 'uploading' ORDER BY created_at
    `;
    if (rows.length >= count || Date.now() > deadline) return rows;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test("a client that disconnects mid-upload leaves a failed row and no stored bytes", async (t) => {
  const fx = await createUploadFixture("upload_connection_disconnect", {
    env: { FILE_UPLOAD_MAX_SIZE: String(8 * MIB) },
  });
  const server = await startTestServer(fx.deps);
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const head = (framing: string) =>
      utf8(
        `POST /api/v1/files?filename=cut.png HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `Authorization: Bearer ${ada.token}\r\nContent-Type: application/octet-stream\r\n` +
          `${framing}\r\n`,
      );
    const sent = pngBytes(MIB);

    await t.step("with a Content-Length of 4 MiB, gone after 1 MiB", async () => {
      await sendThenDisconnect(
        server.port,
        new Uint8Array([...head(`Content-Length: ${4 * MIB}\r\n`), ...sent]),
      );
      const rows = await settledUploads(fx, 1);
      assert.deepEqual(rows.map((r) => r.status), ["failed"]);
      assert.match(rows[0]!.error_message, /the transfer was interrupted/);
    });
    await t.step("chunked, gone after 1 MiB", async () => {
      await sendThenDisconnect(
        server.port,
        new Uint8Array([
          ...head("Transfer-Encoding: chunked\r\n"),
          ...chunkedBody(sent, { end: false }),
        ]),
      );
      const rows = await settledUploads(fx, 2);
      assert.deepEqual(rows.map((r) => r.status), ["failed", "failed"]);
      assert.match(rows[1]!.error_message, /the transfer was interrupted/);
    });
    assert.deepEqual(await walkFiles(fx.root), [], "nothing left in temp or final storage");
  } finally {
    await server.stop();
    await fx.close();
  }
});

Deno.test("a graceful shutdown during a 4 MiB upload still answers it with 201", async () => {
  const fx = await createUploadFixture("upload_connection_shutdown", {
    env: { FILE_UPLOAD_MAX_SIZE: String(8 * MIB) },
  });
  const server = await startTestServer(fx.deps);
  let stopping: Promise<void> | null = null;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const body = pngBytes(4 * MIB);
    const half = 2 * MIB;
    await writeAll(
      conn,
      new Uint8Array([
        ...utf8(
          `POST /api/v1/files?filename=late.png HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
            `Authorization: Bearer ${ada.token}\r\nContent-Type: application/octet-stream\r\n` +
            `Content-Length: ${body.byteLength}\r\n\r\n`,
        ),
        ...body.subarray(0, half),
      ]),
    );
    // The handler is writing the temp file: the upload is in flight.
    const deadline = Date.now() + 5_000;
    while ((await walkFiles(fx.root)).length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.notDeepEqual(await walkFiles(fx.root), [], "the upload reached the handler");

    stopping = server.stop(); // what SIGTERM does in main.ts
    const late = await fetch(`${server.url}/healthz`);
    assert.equal(late.status, 503, "a request arriving during the drain is turned away");
    await late.body?.cancel();

    await writeAll(conn, body.subarray(half));
    const answer = await readAnswer(conn);
    assert.match(answer, /^HTTP\/1\.1 201 /);
    assert.match(answer, /"status":"stored"/);
    await stopping;
    const rows = await fx.db.sql<{ status: string }[]>`SELECT status FROM upload_file`;
    assert.deepEqual(rows.map((r) => r.status), ["stored"]);
  } finally {
    conn.close();
    await (stopping ?? server.stop());
    await fx.close();
  }
});

/** Reads one answer off `conn`: its head, and as much body as its Content-Length says. */
async function readAnswer(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  while (true) {
    const headEnd = text.indexOf("\r\n\r\n");
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? "-1");
    if (headEnd >= 0 && length >= 0 && utf8(text).byteLength >= headEnd + 4 + length) return text;
    const n = await conn.read(buffer);
    if (n === null) return text;
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
}

/** `conn.write` may write part of the buffer: write it all. */
async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) offset += await conn.write(data.subarray(offset));
}
