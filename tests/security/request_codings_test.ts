/**
 * Finding 7 of the security review: `Transfer-Encoding: gzip, chunked` was accepted and the
 * gzip ignored, so the compressed bytes were stored as the file. Over real loopback sockets:
 * a transfer coding other than chunked is a 501, a Content-Encoding on a body a 415 that says
 * Portal stores bytes as sent; neither stores anything, and plain chunked uploads still work.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { startTestServer } from "../helpers/app.ts";
import { createTestUser, createUploadFixture, walkFiles } from "../helpers/uploads.ts";

/** Sends `head` then `body` on a fresh connection; returns the status and the answer's text. */
async function raw(
  port: number,
  head: string,
  body: Uint8Array,
): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(head));
    await conn.write(body);
    let text = "";
    const buffer = new Uint8Array(16 * 1024);
    const decoder = new TextDecoder();
    while (!/\r\n\r\n[\s\S]*\}\s*$/.test(text)) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text };
  } finally {
    conn.close();
  }
}

/** `bytes` framed as one chunk and the last chunk. */
function chunked(bytes: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`${bytes.byteLength.toString(16)}\r\n`);
  const tail = new TextEncoder().encode("\r\n0\r\n\r\n");
  const out = new Uint8Array(head.byteLength + bytes.byteLength + tail.byteLength);
  out.set(head);
  out.set(bytes, head.byteLength);
  out.set(tail, head.byteLength + bytes.byteLength);
  return out;
}

Deno.test("transfer codings other than chunked get 501 and a Content-Encoding on a body 415; nothing is stored", async () => {
  const fx = await createUploadFixture("sec_codings");
  const server = await startTestServer(fx.deps);
  try {
    const ada = await createTestUser(fx.db, "ada@example.test");
    const text = new TextEncoder().encode("the quick brown fox\n".repeat(100));
    const gz = gzipSync(text);
    const auth = `Authorization: ${ada.auth.authorization}\r\n`;
    const upload = (headers: string) =>
      `POST /api/v1/files?filename=fox.txt HTTP/1.1\r\nHost: portal.test\r\n${auth}${headers}\r\n`;

    for (const coding of ["gzip, chunked", "deflate, chunked", "x-custom, chunked"]) {
      const answer = await raw(
        server.port,
        upload(`Transfer-Encoding: ${coding}\r\n`),
        chunked(gz),
      );
      assert.equal(answer.status, 501, `${coding}: ${answer.text}`);
      assert.match(answer.text, /"code":"transfer_coding_not_supported"/);
      assert.match(answer.text, /plain or chunked/);
    }

    const encoded = await raw(
      server.port,
      upload(`Content-Encoding: gzip\r\nContent-Length: ${gz.byteLength}\r\n`),
      gz,
    );
    assert.equal(encoded.status, 415, encoded.text);
    assert.match(encoded.text, /"code":"content_coding_not_supported"/);
    assert.match(encoded.text, /stores bytes exactly as sent/);

    const json = await raw(
      server.port,
      `POST /api/v1/tokens HTTP/1.1\r\nHost: portal.test\r\n${auth}Content-Type: application/json\r\n` +
        `Content-Encoding: br\r\nContent-Length: 2\r\n\r\n`,
      new TextEncoder().encode("{}"),
    );
    assert.equal(json.status, 415, json.text);

    const [none] = await fx.db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM upload_file`;
    assert.equal(none?.n, 0, "no file row");
    assert.deepEqual(await walkFiles(fx.root).catch(() => []), [], "no stored bytes");

    const plain = await raw(server.port, upload("Transfer-Encoding: chunked\r\n"), chunked(text));
    assert.equal(plain.status, 201, plain.text);
    const identity = await raw(
      server.port,
      upload(`Content-Encoding: identity\r\nContent-Length: ${text.byteLength}\r\n`),
      text,
    );
    assert.equal(identity.status, 201, identity.text);
    const [stored] = await fx.db.sql<{ size: number }[]>`
      SELECT max(size_bytes)::int AS size FROM upload_file`;
    assert.equal(stored?.size, text.byteLength, "stored as sent");
  } finally {
    await server.stop();
    await fx.close();
  }
});
