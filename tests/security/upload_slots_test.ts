/**
 * Finding 5 of the security review, the concurrency half: one user could hold any number of
 * uploads open. With PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER at 2 and two replicas (two servers
 * on one database): two uploads held open, one on each, make a third on either a 429 that says
 * why, while another user uploads freely; a finished upload frees its slot; a killed process's
 * slot stops counting once its lease has run out.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { startTestServer } from "../helpers/app.ts";
import { launchChromium, signInThroughForm, throttleUploads } from "../helpers/browser.ts";
import { createTestUser, createUploadFixture } from "../helpers/uploads.ts";

/**
 * An upload whose body is sent in two halves: it holds a slot between them. Its answer is read
 * as soon as it comes (a 429 comes before the rest of the body).
 */
async function openUpload(port: number, auth: string, name: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const body = new TextEncoder().encode(`${name}: `.padEnd(2000, "x"));
  await conn.write(new TextEncoder().encode(
    `POST /api/v1/files?filename=${name} HTTP/1.1\r\nHost: portal.test\r\nAuthorization: ${auth}\r\n` +
      `Content-Length: ${body.byteLength}\r\nConnection: close\r\n\r\n`,
  ));
  await conn.write(body.subarray(0, 1000));
  let status = 0;
  const answered = (async () => {
    let text = "";
    const buffer = new Uint8Array(8192);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += new TextDecoder().decode(buffer.subarray(0, n));
        status ||= Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      }
    } catch { /* reset after a refusal */ }
    return status;
  })();
  return {
    /** The status once the answer's first line has arrived; 0 before. */
    get status() {
      return status;
    },
    async finish(): Promise<number> {
      // Sent even after a 429, which Deno answers and then reads the small rest of.
      await conn.write(body.subarray(1000)).catch(() => {});
      const final = await answered;
      try {
        conn.close();
      } catch { /* closed */ }
      return final;
    },
  };
}

async function uploadNow(url: string, auth: Record<string, string>, name: string) {
  const response = await fetch(`${url}/api/v1/files?filename=${name}`, {
    method: "POST",
    headers: auth,
    body: `${name}\n`,
  });
  return {
    status: response.status,
    body: await response.text(),
    retry: response.headers.get("retry-after"),
  };
}

async function slotsHeld(
  db: { sql: import("../../src/db/db.ts").Database["sql"] },
): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM upload_slot WHERE lease_until > now()`;
  return row?.n ?? 0;
}

Deno.test("two replicas hold a user to PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER together; others upload freely", async () => {
  const fx = await createUploadFixture("sec_upload_slots", {
    env: { PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER: "2" },
  });
  const first = await startTestServer(fx.deps);
  const second = await startTestServer(fx.deps);
  try {
    const ada = await createTestUser(fx.db, "ada@example.test");
    const bob = await createTestUser(fx.db, "bob@example.test");
    const held = [
      await openUpload(first.port, ada.auth.authorization!, "one.txt"),
      await openUpload(second.port, ada.auth.authorization!, "two.txt"),
    ];
    // The slots are taken when the requests reach their handlers.
    for (let i = 0; i < 50 && await slotsHeld(fx.db) < 2; i++) {
      await new Promise((done) => setTimeout(done, 50));
    }
    assert.equal(await slotsHeld(fx.db), 2, "two slots held");

    for (const server of [first, second]) {
      const third = await uploadNow(server.url, ada.auth, "three.txt");
      assert.equal(third.status, 429, third.body);
      assert.match(third.body, /"code":"too_many_uploads"/);
      assert.match(third.body, /PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER/);
      assert.equal(third.retry, "2");
    }
    const other = await uploadNow(first.url, bob.auth, "bob.txt");
    assert.equal(other.status, 201, "another user is not held back");

    assert.deepEqual(await Promise.all(held.map((upload) => upload.finish())), [201, 201]);
    assert.equal(await slotsHeld(fx.db), 0, "finished uploads give their slots back");
    const after = await uploadNow(second.url, ada.auth, "four.txt");
    assert.equal(after.status, 201, "and the user uploads again");

    // A process killed mid-upload leaves its rows; once their leases end they stop counting.
    await fx.db.sql`
      INSERT INTO upload_slot (id, user_id, lease_until)
      VALUES (gen_random_uuid(), ${ada.user.id}, now() - interval '1 second'),
             (gen_random_uuid(), ${ada.user.id}, now() - interval '1 second')`;
    const afterKill = await uploadNow(first.url, ada.auth, "five.txt");
    assert.equal(afterKill.status, 201, afterKill.body);
    const [left] = await fx.db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM upload_slot`;
    assert.equal(left?.n, 0, "expired leases were swept on the way");
  } finally {
    await first.stop();
    await second.stop();
    await fx.close();
  }
});

Deno.test("parallel uploads past the limit: exactly the limit run, the rest get 429, none is lost", async () => {
  const fx = await createUploadFixture("sec_upload_slots_race", {
    env: { PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER: "3" },
  });
  const server = await startTestServer(fx.deps);
  try {
    const ada = await createTestUser(fx.db, "ada@example.test");
    const held = await Promise.all(
      Array.from(
        { length: 10 },
        (_, i) => openUpload(server.port, ada.auth.authorization!, `p${i}.txt`),
      ),
    );
    // Three take the slots; the other seven are refused before they have sent their bodies.
    for (let i = 0; i < 100 && held.filter((u) => u.status === 429).length < 7; i++) {
      await new Promise((done) => setTimeout(done, 50));
    }
    assert.equal(await slotsHeld(fx.db), 3);
    const statuses = await Promise.all(held.map((upload) => upload.finish()));
    assert.equal(statuses.filter((s) => s === 201).length, 3, statuses.join(","));
    assert.equal(statuses.filter((s) => s === 429).length, 7, statuses.join(","));
    const [stored] = await fx.db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM upload_file WHERE status = 'stored'`;
    assert.equal(stored?.n, 3, "every upload answered 201 is stored");
  } finally {
    await server.stop();
    await fx.close();
  }
});

Deno.test("in Chromium the upload page waits for a free slot instead of failing the files that found none", async () => {
  const fx = await createUploadFixture("sec_upload_slots_page", {
    env: { PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER: "1" },
  });
  const server = await startTestServer(fx.deps);
  const browser = await launchChromium();
  try {
    await createTestUser(fx.db, "ada@example.test");
    const page = await browser.newPage();
    await signInThroughForm(page, server.url, {
      email: "ada@example.test",
      password: "correct horse battery",
      next: "/upload",
    });
    await page.waitForSelector("label.button.secondary", { timeout: 5_000 });
    await page.setInputFiles(
      'input[name="files"]',
      ["a.txt", "b.txt", "c.txt"].map((name) => ({
        name,
        mimeType: "text/plain",
        buffer: Buffer.from(`${name} `.repeat(20_000)),
      })),
    );
    // Slow enough that the first file still holds the only slot when the others ask.
    const unthrottle = await throttleUploads(page, 100 * 1024);
    try {
      await page.click('form.upload button[type="submit"]');
      await page.waitForFunction(
        () => {
          const rows = [...document.querySelectorAll("li.file")];
          return rows.length === 3 &&
            rows.every((row) => row.getAttribute("data-state") === "stored");
        },
        undefined,
        { timeout: 30_000 },
      );
    } finally {
      await unthrottle();
    }
    const [stored] = await fx.db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM upload_file WHERE status = 'stored'`;
    assert.equal(stored?.n, 3, "all three stored, one at a time");
  } finally {
    await browser.close();
    await server.stop();
    await fx.close();
  }
});
