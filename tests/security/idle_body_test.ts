/**
 * Finding 5 of the security review, the body half: an upload stalled after 9 bytes was still
 * open after 45 s. Over raw loopback sockets, with PORTAL_BODY_IDLE_TIMEOUT_SECONDS at 1 s: a
 * body that stops sending (small or large, raw, chunked or multipart, an upload or a JSON body)
 * is answered 408 and its upload cleaned up (no stored row, nothing left in storage, a log
 * line), while a slow body that keeps sending is stored whole.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import { startServer } from "../../src/http/server.ts";
import { captureLogger } from "../helpers/app.ts";
import {
  createTestUser,
  createUploadFixture,
  multipartBody,
  type TestUser,
  type UploadFixture,
  walkFiles,
} from "../helpers/uploads.ts";

const IDLE_MS = 1_000;

interface Answer {
  status: number;
  text: string;
  /** Milliseconds from the last byte sent to the answer. */
  afterStallMs: number;
}

/** Writes `head` and `parts` (pausing `gapMs` between parts), then stalls until answered. */
async function stallAfter(
  port: number,
  head: string,
  parts: Uint8Array[],
  gapMs = 0,
): Promise<Answer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(head));
    for (const part of parts) {
      await conn.write(part);
      if (gapMs > 0) await new Promise((done) => setTimeout(done, gapMs));
    }
    const stalled = performance.now();
    let text = "";
    const buffer = new Uint8Array(16 * 1024);
    const giveUp = setTimeout(() => conn.close(), 15_000);
    try {
      while (!/\r\n\r\n[\s\S]*\}\s*$/.test(text)) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += new TextDecoder().decode(buffer.subarray(0, n));
      }
    } finally {
      clearTimeout(giveUp);
    }
    return {
      status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0),
      text,
      afterStallMs: performance.now() - stalled,
    };
  } finally {
    try {
      conn.close();
    } catch { /* closed by the give-up timer */ }
  }
}

async function withServer(
  fn: (ctx: { port: number; fx: UploadFixture; ada: TestUser; lines: string[] }) => Promise<void>,
) {
  const fx = await createUploadFixture("sec_idle_body");
  const { logger, lines } = captureLogger();
  const app = createApp({ ...fx.deps, logger });
  const server = await startServer(app.fetch, {
    hostname: "127.0.0.1",
    port: 0,
    bodyIdleTimeoutMs: IDLE_MS,
  });
  try {
    const ada = await createTestUser(fx.db, "ada@example.test");
    await fn({ port: server.port, fx, ada, lines });
  } finally {
    await server.shutdown(2_000);
    await fx.close();
  }
}

async function storedRows(fx: UploadFixture): Promise<{ status: string; code: string | null }[]> {
  return await fx.db.sql<{ status: string; code: string | null }[]>`
    SELECT status, metadata->>'error_code' AS code FROM upload_file ORDER BY id`;
}

function bytes(size: number, fill = 97): Uint8Array {
  return new Uint8Array(size).fill(fill);
}

Deno.test("a stalled upload body gets 408 and leaves no stored row and nothing in storage", async (t) => {
  await withServer(async ({ port, fx, ada, lines }) => {
    const auth = `Authorization: ${ada.auth.authorization}\r\n`;
    const upload = (headers: string) =>
      `POST /api/v1/files?filename=stall.txt HTTP/1.1\r\nHost: portal.test\r\n${auth}${headers}\r\n`;

    await t.step("9 bytes of a declared 1000, then nothing", async () => {
      const answer = await stallAfter(port, upload("Content-Length: 1000\r\n"), [bytes(9)]);
      assert.equal(answer.status, 408, answer.text);
      assert.match(answer.text, /"code":"timeout"/);
      assert.match(answer.text, /sent nothing for 1 s/);
      assert.ok(
        answer.afterStallMs < 5_000,
        `answered ${Math.round(answer.afterStallMs)} ms after`,
      );
    });

    await t.step("2 MiB of a chunked body (the guarded path), then nothing", async () => {
      const chunk = bytes(2 * 1024 * 1024);
      const head = new TextEncoder().encode(`${chunk.byteLength.toString(16)}\r\n`);
      const answer = await stallAfter(port, upload("Transfer-Encoding: chunked\r\n"), [
        head,
        chunk,
        new TextEncoder().encode("\r\n"),
      ]);
      assert.equal(answer.status, 408, answer.text);
    });

    await t.step("a multipart form stalled inside its file", async () => {
      const { body, contentType } = multipartBody([
        { name: "files", filename: "form.txt", data: bytes(5000) },
      ]);
      const answer = await stallAfter(
        port,
        `POST /api/v1/files HTTP/1.1\r\nHost: portal.test\r\n${auth}Content-Type: ${contentType}\r\nContent-Length: ${body.byteLength}\r\n\r\n`,
        [body.subarray(0, 3000)],
      );
      assert.equal(answer.status, 408, answer.text);
      assert.match(answer.text, /"code":"timeout"/);
    });

    await t.step("nothing stored, no orphan, a log line for each", async () => {
      const rows = await storedRows(fx);
      assert.equal(rows.filter((r) => r.status === "stored").length, 0, "no stored row");
      assert.ok(
        rows.every((r) => r.status === "failed" && r.code === "timeout"),
        JSON.stringify(rows),
      );
      assert.deepEqual(await walkFiles(fx.root).catch(() => []), [], "nothing left in storage");
      const idle = lines.filter((line) => /body idle/.test(line));
      assert.ok(idle.length >= 3, `log lines: ${idle.length}`);
    });
  });
});

Deno.test("a stalled JSON body gets 408; a slow body that keeps sending is stored whole", async () => {
  await withServer(async ({ port, fx, ada }) => {
    const auth = `Authorization: ${ada.auth.authorization}\r\n`;
    const json = await stallAfter(
      port,
      `POST /api/v1/batches HTTP/1.1\r\nHost: portal.test\r\n${auth}Content-Type: application/json\r\nContent-Length: 50\r\n\r\n`,
      [new TextEncoder().encode("{")],
    );
    assert.equal(json.status, 408, json.text);

    // 12 pieces 400 ms apart: 4.8 s in all, never silent for the 1 s limit.
    const pieces = Array.from({ length: 12 }, (_, i) => bytes(100, 65 + i));
    const slow = await stallAfter(
      port,
      `POST /api/v1/files?filename=slow.txt HTTP/1.1\r\nHost: portal.test\r\n${auth}Content-Length: 1200\r\n\r\n`,
      pieces,
      400,
    );
    assert.equal(slow.status, 201, slow.text);
    const rows = await storedRows(fx);
    assert.deepEqual(rows.map((r) => r.status), ["stored"]);
  });
});
