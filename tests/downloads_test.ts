import assert from "node:assert/strict";
import { createApp } from "../app.ts";
import type { AppDeps } from "../src/http/app_env.ts";
import { createStorage } from "../src/storage/storage_factory.ts";
import { signDownload } from "../src/uploads/download_links.ts";
import {
  createTestUser,
  createUploadFixture,
  outboxEvents,
  pdfBytes,
  pngBytes,
  randomBytes,
  sha256Hex,
  UPLOAD_TEST_SECRET,
  utf8,
} from "./helpers/uploads.ts";

type Json = Record<string, unknown>;

const HTML_TYPES = "text/html,image/svg+xml,image/png,application/pdf,text/plain";

/** AWS_QUERYSTRING_EXPIRE for these tests: every download link lives this many seconds. */
const LINK_SECONDS = 120;

async function bytesOf(response: Response): Promise<Uint8Array> {
  return new Uint8Array(await response.arrayBuffer());
}

/** A SigV4 query-signed URL, signed just now, valid `seconds` from then. */
function assertPresignedFor(url: URL, seconds: number): void {
  assert.equal(url.searchParams.get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
  assert.equal(url.searchParams.get("X-Amz-Expires"), String(seconds));
  assert.match(url.searchParams.get("X-Amz-Signature") ?? "", /^[0-9a-f]{64}$/);
  const signedAt = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/
    .exec(url.searchParams.get("X-Amz-Date") ?? "");
  assert.ok(signedAt, `X-Amz-Date in ${url.href}`);
  const [, y, mo, d, h, mi, sec] = signedAt.map(Number);
  const signed = Date.UTC(y!, mo! - 1, d!, h!, mi!, sec!);
  assert.ok(Math.abs(Date.now() - signed) < 60_000, "signed at the time of the request");
}

function assertSafetyHeaders(response: Response): void {
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  assert.equal(response.headers.get("content-security-policy"), "sandbox");
}

Deno.test("GET /files/:id/download streams local files with Range, ETag and safe headers", async (t) => {
  const fx = await createUploadFixture("downloads_local", {
    env: { FILE_UPLOAD_ALLOWED_TYPES: HTML_TYPES, AWS_QUERYSTRING_EXPIRE: String(LINK_SECONDS) },
  });
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const bob = await createTestUser(fx.db, "bob@example.org");
    const root = await createTestUser(fx.db, "root@example.org", { admin: true });
    const app = createApp(fx.deps);
    const upload = async (bytes: Uint8Array<ArrayBuffer>, name: string) => {
      const response = await app.request(`/api/v1/files?filename=${encodeURIComponent(name)}`, {
        method: "POST",
        headers: ada.auth,
        body: bytes,
      });
      assert.equal(response.status, 201, name);
      return await response.json() as Json;
    };
    const png = pngBytes(1_000_000);
    const file = await upload(png, "photo.png");
    const path = `/files/${file.id}/download`;
    const get = (headers: Record<string, string> = {}, target = path, method = "GET") =>
      app.request(target, { method, headers: { ...ada.auth, ...headers } });

    await t.step("full: 200, bytes, length, strong sha256 ETag, inline for a PNG", async () => {
      const response = await get();
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), "image/png");
      assert.equal(response.headers.get("content-length"), "1000000");
      assert.equal(response.headers.get("etag"), `"${sha256Hex(png)}"`);
      assert.equal(response.headers.get("accept-ranges"), "bytes");
      assert.equal(
        response.headers.get("content-disposition"),
        `inline; filename="photo.png"; filename*=UTF-8''photo.png`,
      );
      assertSafetyHeaders(response);
      assert.deepEqual(await bytesOf(response), png);
    });
    await t.step("ranged: 206 with Content-Range and exactly those bytes", async () => {
      const response = await get({ range: "bytes=1000-1999" });
      assert.equal(response.status, 206);
      assert.equal(response.headers.get("content-range"), "bytes 1000-1999/1000000");
      assert.equal(response.headers.get("content-length"), "1000");
      assertSafetyHeaders(response);
      assert.deepEqual(await bytesOf(response), png.subarray(1000, 2000));
      const suffix = await get({ range: "bytes=-10" });
      assert.equal(suffix.status, 206);
      assert.deepEqual(await bytesOf(suffix), png.subarray(999_990));
      const open = await get({ range: "bytes=999999-" });
      assert.equal(open.headers.get("content-range"), "bytes 999999-999999/1000000");
      assert.deepEqual(await bytesOf(open), png.subarray(999_999));
    });
    await t.step(
      "unsatisfiable: 416 with bytes */size; several ranges: the whole file",
      async () => {
        const response = await get({ range: "bytes=1000000-" });
        assert.equal(response.status, 416);
        assert.equal(response.headers.get("content-range"), "bytes */1000000");
        await response.body?.cancel();
        const many = await get({ range: "bytes=0-1,5-6" });
        assert.equal(many.status, 200);
        assert.equal((await bytesOf(many)).byteLength, 1_000_000);
      },
    );
    await t.step("If-None-Match → 304; a stale If-Range gets the whole file", async () => {
      const etag = `"${sha256Hex(png)}"`;
      const response = await get({ "if-none-match": etag });
      assert.equal(response.status, 304);
      assert.equal(response.headers.get("etag"), etag);
      assert.equal(await response.text(), "");
      const stale = await get({ range: "bytes=0-9", "if-range": '"other"' });
      assert.equal(stale.status, 200);
      await stale.body?.cancel();
      const fresh = await get({ range: "bytes=0-9", "if-range": etag });
      assert.equal(fresh.status, 206);
      await fresh.body?.cancel();
    });
    await t.step("HEAD: headers without a body", async () => {
      const response = await get({}, path, "HEAD");
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-length"), "1000000");
      assert.equal(await response.text(), "");
    });
    await t.step("who may download: owner and admin; others 404; nobody 401 or login", async () => {
      const other = await app.request(path, {
        headers: { ...bob.auth, accept: "application/json" },
      });
      assert.equal(other.status, 404);
      assert.deepEqual(await other.json(), {
        error: {
          code: "not_found",
          message: `Cannot find file "${file.id}"`,
          request_id: other.headers.get("x-request-id"),
        },
      });
      const admin = await app.request(path, { headers: root.auth });
      assert.equal(admin.status, 200);
      await admin.body?.cancel();
      const anonymousApi = await app.request(path, { headers: { accept: "application/json" } });
      assert.equal(anonymousApi.status, 401);
      await anonymousApi.body?.cancel();
      const anonymousBrowser = await app.request(path, { headers: { accept: "text/html" } });
      assert.equal(anonymousBrowser.status, 303);
      assert.equal(
        anonymousBrowser.headers.get("location"),
        `/login?next=${encodeURIComponent(path)}`,
      );
      const badToken = await app.request(path, { headers: { authorization: "Bearer ptk_nope" } });
      assert.equal(badToken.status, 401);
      await badToken.body?.cancel();
      for (const id of ["0193a3c4-7f1e-7000-8000-000000000001", "nope"]) {
        const response = await app.request(`/files/${id}/download`, { headers: ada.auth });
        assert.equal(response.status, 404);
        await response.body?.cancel();
      }
    });
    await t.step("a signed link works without a login; tampered or expired → 403", async () => {
      const url = new URL(String(file.url));
      const signed = await app.request(url.pathname + url.search);
      assert.equal(signed.status, 200);
      assert.deepEqual(await bytesOf(signed), png);
      const sig = url.searchParams.get("sig")!;
      const tampered = `${url.pathname}?expires=${url.searchParams.get("expires")}&sig=${
        sig.replace(/^./, (c) => c === "0" ? "1" : "0")
      }`;
      const refused = await app.request(tampered, { headers: { accept: "application/json" } });
      assert.equal(refused.status, 403);
      assert.deepEqual(await refused.json(), {
        error: {
          code: "link_invalid",
          message: "Cannot download: the link's signature is invalid",
          request_id: refused.headers.get("x-request-id"),
        },
      });
      const longer = `${url.pathname}?expires=${
        Number(url.searchParams.get("expires")) + 3600
      }&sig=${sig}`;
      assert.equal(
        (await app.request(longer, { headers: { accept: "application/json" } })).status,
        403,
      );
      const past = Math.floor(Date.now() / 1000) - 60;
      const expired = await app.request(
        `${url.pathname}?expires=${past}&sig=${
          signDownload(UPLOAD_TEST_SECRET, String(file.id), past)
        }`,
        { headers: { accept: "text/html" } },
      );
      assert.equal(expired.status, 403);
      assert.match(expired.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(await expired.text(), /the link expired at/);
      const otherFile = await upload(pdfBytes(100), "other.pdf");
      const crossed = await app.request(`/files/${otherFile.id}/download${url.search}`);
      assert.equal(crossed.status, 403, "a link signs one file only");
      await crossed.body?.cancel();
    });
    await t.step(
      `a signed link lives AWS_QUERYSTRING_EXPIRE (${LINK_SECONDS}) seconds from issue`,
      async () => {
        // The services' injected clock (AppDeps.now), carried by the deps the app is built
        // from; issued on a whole second so "120 s after issue" is exact.
        const issuedAt = Math.floor(Date.now() / 1000) * 1000;
        let now = issuedAt;
        const timed: AppDeps = { ...fx.deps, clock: { now: () => new Date(now) } };
        const timedApp = createApp(timed);
        const created = await timedApp.request("/api/v1/files?filename=clock.pdf", {
          method: "POST",
          headers: ada.auth,
          body: pdfBytes(5_000, 9),
        });
        assert.equal(created.status, 201);
        const stored = await created.json() as Json;
        const link = new URL(String(stored.url));
        assert.equal(Number(link.searchParams.get("expires")), issuedAt / 1000 + LINK_SECONDS);
        const target = link.pathname + link.search;

        now = issuedAt + LINK_SECONDS * 1000;
        const last = await timedApp.request(target);
        assert.equal(last.status, 200, "still valid at its last second");
        assert.equal((await bytesOf(last)).byteLength, 5_000);

        now = issuedAt + (LINK_SECONDS + 1) * 1000;
        const late = await timedApp.request(target, { headers: { accept: "application/json" } });
        assert.equal(late.status, 403);
        assert.match(late.headers.get("content-type") ?? "", /^application\/json/);
        assert.deepEqual(await late.json(), {
          error: {
            code: "link_expired",
            message: `Cannot download: the link expired at ${
              new Date(issuedAt + LINK_SECONDS * 1000).toISOString()
            }; ask for a new one`,
            request_id: late.headers.get("x-request-id"),
          },
        });
      },
    );
    await t.step("an HTML page and an SVG with a script download as attachments", async () => {
      const cases: [string, Uint8Array<ArrayBuffer>, string][] = [
        ["page.html", utf8("<!doctype html><script>document.title='pwned'</script>"), "text/html"],
        [
          "logo.svg",
          utf8('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
          "image/svg+xml",
        ],
        ["notes.txt", utf8("hello\n"), "text/plain"],
      ];
      for (const [name, bytes, type] of cases) {
        const stored = await upload(bytes, name);
        assert.equal(stored.content_type, type);
        const response = await get({}, `/files/${stored.id}/download`);
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("content-type"), type);
        assert.match(response.headers.get("content-disposition") ?? "", /^attachment; /);
        assertSafetyHeaders(response);
        assert.deepEqual(await bytesOf(response), bytes);
      }
      const pdf = await upload(pdfBytes(5000), "doc.pdf");
      const response = await get({}, `/files/${pdf.id}/download`);
      assert.match(response.headers.get("content-disposition") ?? "", /^inline; /);
      await response.body?.cancel();
    });
    await t.step("deleted → 410, failed → 404", async () => {
      const gone = await upload(randomBytes(10).fill(0x41), "gone.txt");
      await app.request(`/api/v1/files/${gone.id}`, { method: "DELETE", headers: ada.auth });
      const deleted = await get({ accept: "application/json" }, `/files/${gone.id}/download`);
      assert.equal(deleted.status, 410);
      assert.deepEqual(await deleted.json(), {
        error: {
          code: "gone",
          message: 'Cannot download "gone.txt": the file was deleted',
          request_id: deleted.headers.get("x-request-id"),
        },
      });
      const refused = await app.request("/api/v1/files?filename=x.bin", {
        method: "POST",
        headers: ada.auth,
        body: randomBytes(100),
      });
      const failed = (await refused.json() as { file: Json }).file;
      const answer = await get({}, `/files/${failed.id}/download`);
      assert.equal(answer.status, 404);
      await answer.body?.cancel();
    });
  } finally {
    await fx.close();
  }
});

Deno.test("GET /files/:id/download redirects to a presigned S3 URL with the same disposition", async () => {
  const fx = await createUploadFixture("downloads_s3", {
    backend: "s3",
    env: { FILE_UPLOAD_ALLOWED_TYPES: HTML_TYPES, AWS_QUERYSTRING_EXPIRE: String(LINK_SECONDS) },
  });
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const app = createApp(fx.deps);
    const bytes = pngBytes(12 * 1024 * 1024); // above one 8 MiB part: a multipart upload
    const created = await app.request("/api/v1/files?filename=big%20photo.png", {
      method: "POST",
      headers: ada.auth,
      body: bytes,
    });
    assert.equal(created.status, 201);
    const file = await created.json() as Json;
    assert.equal(file.sha256, sha256Hex(bytes));
    assert.match(String(file.url), new RegExp(`^${fx.s3!.endpointUrl}/`));

    const response = await app.request(`/files/${file.id}/download`, { headers: ada.auth });
    assert.equal(response.status, 302);
    assert.equal(response.headers.get("cache-control"), "no-store");
    const location = response.headers.get("location")!;
    const presigned = new URL(location);
    assert.equal(
      presigned.searchParams.get("response-content-disposition"),
      `inline; filename="big photo.png"; filename*=UTF-8''big%20photo.png`,
    );
    assertPresignedFor(presigned, LINK_SECONDS);
    assertPresignedFor(new URL(String(file.url)), LINK_SECONDS);
    const fetched = await fetch(location);
    assert.equal(fetched.status, 200);
    assert.equal(sha256Hex(await bytesOf(fetched)), sha256Hex(bytes));
    const fromEvent = await fetch(String(file.url));
    assert.equal(sha256Hex(await bytesOf(fromEvent)), sha256Hex(bytes));

    const html = await app.request("/api/v1/files?filename=page.html", {
      method: "POST",
      headers: ada.auth,
      body: utf8("<html><script>alert(1)</script></html>"),
    });
    const page = await html.json() as Json;
    const redirect = await app.request(`/files/${page.id}/download`, { headers: ada.auth });
    const target = new URL(redirect.headers.get("location")!);
    assert.match(target.searchParams.get("response-content-disposition") ?? "", /^attachment; /);
    assert.equal(target.searchParams.get("response-content-type"), "text/html");
  } finally {
    await fx.close();
  }
});

Deno.test("GET /files/:id/download with AWS_QUERYSTRING_AUTH=false redirects to the unsigned object URL", async () => {
  const fx = await createUploadFixture("downloads_s3_public", {
    backend: "s3",
    env: { AWS_QUERYSTRING_AUTH: "false", AWS_QUERYSTRING_EXPIRE: String(LINK_SECONDS) },
  });
  // The adapter as main.ts builds it, from the config the setting went into.
  const storage = createStorage(fx.deps.config);
  try {
    const ada = await createTestUser(fx.db, "ada@example.org");
    const app = createApp({ ...fx.deps, storage });
    const bytes = pdfBytes(50_000);
    const created = await app.request("/api/v1/files?filename=public%20report.pdf", {
      method: "POST",
      headers: ada.auth,
      body: bytes,
    });
    assert.equal(created.status, 201);
    const file = await created.json() as Json;
    const [row] = await fx.db.sql<{ storageKey: string }[]>`
      SELECT storage_key AS "storageKey" FROM upload_file WHERE id = ${String(file.id)}`;
    assert.ok(row);
    const objectUrl = `${fx.s3!.endpointUrl}/${fx.s3!.bucket}/${
      row.storageKey.split("/").map(encodeURIComponent).join("/")
    }`;
    assert.equal(file.url, objectUrl, "the API answers the plain object URL");
    const [event] = await outboxEvents(fx.db, "file.stored");
    assert.equal(event?.payload.url, undefined, "the stored event holds no link");
    assert.equal(typeof event?.payload.link_expires, "number", "only when it ends");

    const response = await app.request(`/files/${file.id}/download`, { headers: ada.auth });
    assert.equal(response.status, 302);
    const location = response.headers.get("location")!;
    assert.equal(location, objectUrl);
    assert.equal(new URL(location).search, "", "no signature, expiry or response overrides");
    // s3rver serves anonymous reads, as a public bucket would.
    const fetched = await fetch(location);
    assert.equal(fetched.status, 200);
    assert.equal(sha256Hex(await bytesOf(fetched)), sha256Hex(bytes));
  } finally {
    storage.close?.();
    await fx.close();
  }
});
