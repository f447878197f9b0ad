/**
 * Uploads over real sockets, as far as the connection goes: a refused upload is answered
 * while the client is still sending and the connection is then dropped, not read to the end
 * (SPEC §5 Uploads; src/http/request_body_guard.ts); an upload read to its end keeps it.
 * The 413s of POST /api/v1/files are in uploads_api_test.ts.
 */
import assert from "node:assert/strict";
import { login, startTestServer } from "./helpers/app.ts";
import {
  requestsOverOneConnection,
  type SocketUpload,
  uploadOverSocket,
} from "./helpers/socket_upload.ts";
import {
  createTestUser,
  createUploadFixture,
  multipartBody,
  pngBytes,
  utf8,
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
  } finally {
    await server.stop();
    await fx.close();
  }
});
