/**
 * Hostile input: a NUL (which Postgres refuses in text), other control characters and
 * over-long strings sent through every route that reads a body, a query or a path id. Each
 * must answer a 4xx with a message that names the problem, never a 500, and Portal must keep
 * serving afterwards.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { AccountError, authenticate, normalizeEmail } from "../src/auth/account_service.ts";
import { createApp } from "../app.ts";
import type { AppDeps, AppEnv } from "../src/http/app_env.ts";
import { errorHandlers } from "../src/http/errors.ts";
import { renderErrorPage } from "../components/render.tsx";
import { Browser, captureLogger, formField, login, startTestServer } from "./helpers/app.ts";
import {
  createTestUser,
  createUploadFixture,
  pdfBytes,
  type TestUser,
  type UploadFixture,
} from "./helpers/uploads.ts";

const JSON_TYPE = /^application\/json/;
const HTML_TYPE = /^text\/html/;
const PASSWORD = "correct horse battery";

type ErrorBody = { error: { code: string; message: string; request_id?: string } };

/** The fixture, deps and app with a capturing logger, and one user with a token. */
interface Hostile {
  fx: UploadFixture;
  deps: AppDeps;
  app: Hono<AppEnv>;
  ada: TestUser;
}

async function withHostileApp(label: string, fn: (ctx: Hostile) => Promise<void>): Promise<void> {
  const fx = await createUploadFixture(label);
  try {
    const { logger, lines } = captureLogger();
    const deps = { ...fx.deps, logger };
    const ada = await createTestUser(fx.db, "ada@example.org");
    await fn({ fx, deps, app: createApp(deps), ada });
    assert.deepEqual(
      lines.filter((line) => JSON.parse(line).level === "error"),
      [],
      "no request failed with an internal error",
    );
  } finally {
    await fx.close();
  }
}

/** Asserts a 4xx JSON error with `code` and a message matching `message`. */
async function assertJsonError(
  response: Response,
  status: number,
  code: string,
  message: RegExp,
): Promise<void> {
  assert.equal(response.status, status);
  assert.match(response.headers.get("content-type") ?? "", JSON_TYPE);
  const body = await response.json() as ErrorBody;
  assert.equal(body.error.code, code);
  assert.match(body.error.message, message);
}

function postJson(app: Hono<AppEnv>, path: string, auth: Record<string, string>, body: unknown) {
  return app.request(path, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Random letters: unlike a repeated character, they do not compress below Postgres' limits. */
function randomText(length: number): string {
  const letters = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => letters[b % letters.length]).join("");
}

Deno.test("POST /login answers a NUL in the email with the form, a 400 and the reason", async () => {
  await withHostileApp("hostile_login", async ({ fx, app }) => {
    const browser = new Browser(app);
    const csrfToken = await browser.loginFormToken();
    for (const email of ["ada\u0000@example.org", "ada@example.org\u0001", "\u001b[31mada"]) {
      const response = await browser.postForm("/login", {
        email,
        password: PASSWORD,
        csrf_token: csrfToken,
      });
      assert.equal(response.status, 400, JSON.stringify(email));
      assert.match(response.headers.get("content-type") ?? "", HTML_TYPE);
      const html = await response.text();
      assert.match(html, /<form method="post" action="\/login">/, "the form is shown again");
      assert.match(html, /field &quot;email&quot; contains the control character U\+00(00|01|1B)/);
      assert.equal(
        response.headers.getSetCookie().some((c) => c.startsWith("portal_session=")),
        false,
      );
      // The page carries a fresh form token, so the user can correct the email and go on.
      formField(html, "csrf_token");
    }
    const tooLong = await browser.postForm("/login", {
      email: `${randomText(5000)}@example.org`,
      password: PASSWORD,
      csrf_token: csrfToken,
    });
    assert.equal(tooLong.status, 401);
    assert.match(await tooLong.text(), /Sign-in failed: wrong email or password/);

    // Still works for the real address afterwards.
    await login(app, "ada@example.org", PASSWORD);
    const [{ count } = { count: -1 }] = await fx.db.sql<{ count: number }[]>`
      SELECT count(*)::int AS count FROM login_attempt`;
    assert.equal(count, 2, "refused by the form reader: no attempt; the long one and the sign-in");
  });
});

Deno.test("authenticate() and normalizeEmail() take a control character without a SQL error", async () => {
  await withHostileApp("hostile_authenticate", async ({ fx }) => {
    const result = await authenticate({ db: fx.db }, {
      email: "ada\u0000@example.org",
      password: PASSWORD,
      address: "203.0.113.9",
    });
    assert.deepEqual(result, { ok: false, reason: "invalid" });
    const rows = await fx.db.sql<{ email: string }[]>`SELECT email FROM login_attempt`;
    assert.deepEqual(rows.map((r) => r.email), ["ada\ufffd@example.org"], "counted, NUL replaced");
    assert.throws(
      () => normalizeEmail("ada\u0000@example.org"),
      (error) =>
        error instanceof AccountError && error.code === "invalid_email" &&
        error.message ===
          'Cannot use email "ada\ufffd@example.org": it contains a control character',
    );
    assert.throws(() => normalizeEmail("ada\t@example.org"), /it contains a control character/);
    assert.equal(normalizeEmail(" Ada@Example.org "), "ada@example.org");
  });
});

Deno.test("POST /login never redirects to a next path holding control characters", async () => {
  await withHostileApp("hostile_login_next", async ({ app }) => {
    // The form reader refuses a NUL outright; CR, LF and DEL pass it (a textarea sends CR LF)
    // but are never followed into a Location header.
    const cases: [string, number][] = [
      ["/a\u0000b", 400],
      ["/upload\r\nSet-Cookie: evil=1", 303],
      ["/x\u007f", 303],
    ];
    for (const [next, status] of cases) {
      const browser = new Browser(app);
      const csrfToken = await browser.loginFormToken();
      const response = await browser.postForm("/login", {
        email: "ada@example.org",
        password: PASSWORD,
        csrf_token: csrfToken,
        next,
      });
      assert.equal(response.status, status, JSON.stringify(next));
      if (status === 400) {
        assert.match(await response.text(), /field &quot;next&quot; contains the control/);
        continue;
      }
      assert.equal(response.headers.get("location"), "/");
      assert.ok(response.headers.getSetCookie().every((c) => !c.includes("evil")));
    }
    const browser = await login(app, "ada@example.org", PASSWORD);
    for (const next of ["/a%00b", "/a%0d%0aSet-Cookie:%20evil=1", "/%7F"]) {
      const response = await browser.get(`/login?next=${next}`);
      assert.equal(response.status, 303, next);
      assert.equal(response.headers.get("location"), "/");
    }
  });
});

Deno.test("POST /api/v1/tokens refuses a NUL or a control character with 400 invalid_text", async () => {
  await withHostileApp("hostile_tokens", async ({ fx, app, ada }) => {
    const post = (body: unknown) => postJson(app, "/api/v1/tokens", ada.auth, body);
    await assertJsonError(
      await post({ name: "a\u0000b" }),
      400,
      "invalid_text",
      /^Cannot read the body: "name" contains the control character U\+0000$/,
    );
    await assertJsonError(
      await post({ name: "ok", extra: { deep: ["fine", "bell\u0007"] } }),
      400,
      "invalid_text",
      /^Cannot read the body: "extra\.deep\[1\]" contains the control character U\+0007$/,
    );
    await assertJsonError(
      await post({ "na\u0000me": "x" }),
      400,
      "invalid_text",
      /^Cannot read the body: a field name contains the control character U\+0000$/,
    );
    await assertJsonError(
      await post({ name: "\ud800" }),
      400,
      "invalid_text",
      /"name" is not valid Unicode/,
    );
    await assertJsonError(
      await post({ name: randomText(201) }),
      400,
      "invalid",
      /"name" must be a string of at most 200 characters/,
    );
    // 64 KiB of nesting is walked without exhausting the stack.
    const deep = `{"name":"x","n":${"[".repeat(30_000)}${"]".repeat(30_000)}}`;
    const nested = await app.request("/api/v1/tokens", {
      method: "POST",
      headers: { ...ada.auth, "content-type": "application/json" },
      body: deep,
    });
    assert.equal(nested.status, 201);
    await nested.body?.cancel();
    // Tab and newline are text; the token is created.
    const fine = await post({ name: "line one\n\tline two" });
    assert.equal(fine.status, 201);
    assert.match(fine.headers.get("content-type") ?? "", JSON_TYPE);
    assert.equal((await fine.json()).name, "line one\n\tline two");
    const names = await fx.db.sql<{ name: string }[]>`SELECT name FROM api_tokens ORDER BY name`;
    assert.equal(names.some((r) => r.name.includes("\u0000")), false);
  });
});

Deno.test("POST /api/v1/batches and multipart uploads refuse a NUL or over-long idempotency key", async () => {
  await withHostileApp("hostile_batches", async ({ fx, app, ada }) => {
    await assertJsonError(
      await postJson(app, "/api/v1/batches", ada.auth, { idempotency_key: "a\u0000b" }),
      400,
      "invalid_text",
      /^Cannot read the body: "idempotency_key" contains the control character U\+0000$/,
    );
    await assertJsonError(
      await postJson(app, "/api/v1/batches", ada.auth, { idempotency_key: randomText(5000) }),
      400,
      "invalid",
      /"idempotency_key" must be a string of 1 to 200 characters/,
    );

    const form = (key: string) => {
      const body = new FormData();
      body.append("idempotency_key", key);
      body.append("file", new File([pdfBytes(1000)], "report.pdf"));
      return body;
    };
    for (const key of ["a\u0000b", randomText(5000)]) {
      await assertJsonError(
        await app.request("/api/v1/files", { method: "POST", headers: ada.auth, body: form(key) }),
        400,
        "malformed",
        /^Cannot upload: the idempotency key must be at most 200 characters without control characters$/,
      );
    }
    const body = new FormData();
    body.append("file", new File([pdfBytes(1000)], "report.pdf"));
    await assertJsonError(
      await app.request("/api/v1/files", {
        method: "POST",
        headers: { ...ada.auth, "x-idempotency-key": randomText(5000) },
        body,
      }),
      400,
      "malformed",
      /idempotency key must be at most 200 characters/,
    );
    // The upload page's form post goes through the same reader.
    const browser = await login(app, "ada@example.org", PASSWORD);
    const page = new FormData();
    page.append("csrf_token", await browser.sessionCsrfToken());
    page.append("idempotency_key", "a\u0000b");
    page.append("file", new File([pdfBytes(1000)], "report.pdf"));
    const refused = await browser.request("/upload", { method: "POST", body: page });
    assert.equal(refused.status, 400);
    assert.match(refused.headers.get("content-type") ?? "", HTML_TYPE);
    assert.match(await refused.text(), /the idempotency key must be at most 200 characters/);

    const [{ count } = { count: -1 }] = await fx.db.sql<{ count: number }[]>`
      SELECT count(*)::int AS count FROM upload_batch`;
    assert.equal(count, 0, "no batch was created");
  });
});

Deno.test("POST /api/v1/files keeps control characters out of the recorded filename", async () => {
  await withHostileApp("hostile_filenames", async ({ app, ada }) => {
    const upload = async (path: string, headers: Record<string, string> = {}) => {
      const response = await app.request(path, {
        method: "POST",
        headers: { ...ada.auth, ...headers },
        body: pdfBytes(1000),
      });
      assert.equal(response.status, 201, path);
      assert.match(response.headers.get("content-type") ?? "", JSON_TYPE);
      return await response.json() as { original_filename: string };
    };
    // Filenames are sanitized rather than refused (src/uploads/file_names.ts): what a browser
    // sends for a real file must upload; the NUL never reaches the database.
    assert.equal(
      (await upload("/api/v1/files?filename=re%00port.pdf")).original_filename,
      "report.pdf",
    );
    const disposed = await upload("/api/v1/files", {
      "content-disposition": "attachment; filename*=UTF-8''re%00po%01rt.pdf",
    });
    assert.equal(disposed.original_filename, "report.pdf");
    const long = await upload(`/api/v1/files?filename=${randomText(5000)}.pdf`);
    assert.equal(long.original_filename.length, 1000);

    const form = new FormData();
    form.append("file", new File([pdfBytes(1000)], "re\u0000port.pdf"));
    const multipart = await app.request("/api/v1/files", {
      method: "POST",
      headers: ada.auth,
      body: form,
    });
    assert.equal(multipart.status, 201);
    const result = await multipart.json() as { files: { original_filename: string }[] };
    assert.equal(result.files[0]?.original_filename, "report.pdf");

    const unknownBatch = await app.request("/api/v1/files?filename=a.pdf&batch_id=a%00b", {
      method: "POST",
      headers: ada.auth,
      body: pdfBytes(1000),
    });
    assert.equal(unknownBatch.status, 404);
    assert.match(unknownBatch.headers.get("content-type") ?? "", JSON_TYPE);
    assert.deepEqual((await unknownBatch.json() as ErrorBody).error, {
      code: "batch_not_found",
      message: 'Cannot attach upload to batch "a\u0000b": no such batch',
      request_id: unknownBatch.headers.get("x-request-id"),
    });
  });
});

Deno.test("GET /api/v1/files refuses a NUL or over-long cursor, status or limit with 400", async () => {
  await withHostileApp("hostile_list", async ({ app, ada }) => {
    const list = (query: string) => app.request(`/api/v1/files?${query}`, { headers: ada.auth });
    for (const cursor of ["%00", "ZjoAAAA", randomText(10_000), "%F0%9F%98%80"]) {
      await assertJsonError(
        await list(`cursor=${cursor}`),
        400,
        "invalid",
        /^Cannot list files: the cursor is malformed$/,
      );
    }
    await assertJsonError(await list("status=%00"), 400, "invalid", /"status" must be one of/);
    await assertJsonError(
      await list(`status=${randomText(5000)}`),
      400,
      "invalid",
      /"status" must be one of/,
    );
    await assertJsonError(await list("limit=%00"), 400, "invalid", /"limit" must be a whole/);
    await assertJsonError(
      await list("limit=99999999999999999999"),
      400,
      "invalid",
      /"limit" must be a whole/,
    );
  });
});

Deno.test("file, batch and download routes answer 404 for a NUL or over-long id", async () => {
  await withHostileApp("hostile_ids", async ({ app, ada }) => {
    const long = randomText(5000);
    for (const id of ["a%00b", long]) {
      await assertJsonError(
        await app.request(`/api/v1/files/${id}`, { headers: ada.auth }),
        404,
        "not_found",
        /^Cannot find file "/,
      );
      await assertJsonError(
        await app.request(`/api/v1/files/${id}`, { method: "DELETE", headers: ada.auth }),
        404,
        "not_found",
        /^Cannot find file "/,
      );
      await assertJsonError(
        await app.request(`/api/v1/batches/${id}`, { headers: ada.auth }),
        404,
        "not_found",
        /^Cannot find batch "/,
      );
      await assertJsonError(
        await app.request(`/api/v1/batches/${id}/finalize`, { method: "POST", headers: ada.auth }),
        404,
        "not_found",
        /^Cannot find batch "/,
      );
      await assertJsonError(
        await app.request(`/files/${id}/download`, {
          headers: { ...ada.auth, accept: "application/json" },
        }),
        404,
        "not_found",
        /^Cannot find file "/,
      );
    }

    const stored = await app.request("/api/v1/files?filename=a.pdf", {
      method: "POST",
      headers: ada.auth,
      body: pdfBytes(1000),
    });
    const { id } = await stored.json() as { id: string };
    await assertJsonError(
      await app.request(`/files/${id}/download?expires=%00&sig=%00`, {
        headers: { accept: "application/json" },
      }),
      403,
      "link_invalid",
      /signature is invalid/,
    );
    await assertJsonError(
      await app.request(`/files/${id}/download?expires=99999999999999999999999&sig=${long}`, {
        headers: { accept: "application/json" },
      }),
      403,
      "link_invalid",
      /signature is invalid/,
    );
  });
});

Deno.test("the onError handler answers a value Postgres refuses with 400 and logs only the SQLSTATE", async () => {
  await withHostileApp("hostile_backstop", async ({ fx }) => {
    const { logger, lines } = captureLogger();
    const app = new Hono<AppEnv>();
    app.onError(errorHandlers(renderErrorPage).onError);
    app.use("*", async (c, next) => {
      const requestId = c.req.header("x-request-id") ?? crypto.randomUUID();
      c.set("requestId", requestId);
      c.set("logger", logger.child({ request_id: requestId }));
      await next();
    });
    const secretish = "do-not-log-me";
    app.get("/nul", async (c) => c.json(await fx.db.sql`SELECT ${`${secretish}\u0000`}::text`));
    app.get("/uuid", async (c) => c.json(await fx.db.sql`SELECT ${secretish}::uuid`));
    app.get("/int", async (c) => c.json(await fx.db.sql`SELECT ${"99999999999"}::int`));
    app.get("/varchar", async (c) => {
      // No Portal column is varchar(n); a temporary one shows the mapping of 22001.
      await fx.db.sql.begin(async (tx) => {
        await tx`CREATE TEMPORARY TABLE short_text (v varchar(2)) ON COMMIT DROP`;
        await tx`INSERT INTO short_text (v) VALUES (${secretish})`;
      });
      return c.json({});
    });
    app.get("/other", async (c) => c.json(await fx.db.sql`SELECT * FROM no_such_table`));

    const cases: [string, string][] = [
      ["/nul", "22021"],
      ["/uuid", "22P02"],
      ["/int", "22003"],
      ["/varchar", "22001"],
    ];
    for (const [path, state] of cases) {
      await assertJsonError(
        await app.request(path, { headers: { accept: "application/json" } }),
        400,
        "malformed_value",
        /^Cannot process the request: a value is malformed$/,
      );
      const line = JSON.parse(lines.at(-1)!);
      assert.equal(line.level, "warn");
      assert.equal(line.sqlstate, state, path);
      assert.equal(line.path, path);
    }
    const html = await app.request("/nul", { headers: { accept: "text/html" } });
    assert.equal(html.status, 400);
    assert.match(html.headers.get("content-type") ?? "", HTML_TYPE);
    assert.match(await html.text(), /Cannot process the request: a value is malformed/);
    // Other database errors are Portal's fault: still a 500 without details.
    // The answer names the request id to look up in the log, in JSON and on the page.
    await assertJsonError(
      await app.request("/other", {
        headers: { accept: "application/json", "x-request-id": "boom-7" },
      }),
      500,
      "internal",
      /^Internal error: look up request id boom-7 in the server log$/,
    );
    assert.equal(JSON.parse(lines.at(-1)!).request_id, "boom-7", "the log line to look up");
    const page = await app.request("/other", {
      headers: { accept: "text/html", "x-request-id": "boom-8" },
    });
    assert.equal(page.status, 500);
    assert.match(await page.text(), /Request id: <code>boom-8<\/code>/);
    assert.doesNotMatch(lines.join("\n"), new RegExp(secretish), "no value reaches the log");
    assert.doesNotMatch(lines.join("\n"), /SELECT/, "no query reaches the log");
  });
});

Deno.test("Portal keeps serving after hostile requests over loopback", async () => {
  await withHostileApp("hostile_loopback", async ({ deps, ada }) => {
    const server = await startTestServer(deps);
    try {
      const hostile = [
        postJsonOver(server.url, "/api/v1/tokens", ada.auth, { name: "a\u0000b" }),
        postJsonOver(server.url, "/api/v1/batches", ada.auth, { idempotency_key: "\u0000" }),
        fetch(`${server.url}/api/v1/files?cursor=%00`, { headers: ada.auth }),
        fetch(`${server.url}/files/%00/download`, {
          headers: { ...ada.auth, accept: "application/json" },
        }),
      ];
      for (const response of await Promise.all(hostile)) {
        assert.ok(response.status >= 400 && response.status < 500, `status ${response.status}`);
        await response.body?.cancel();
      }
      // A NUL in a raw header line never reaches the app: the HTTP layer refuses the request.
      const raw = await rawRequest(
        server.port,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Test: a\u0000b\r\nConnection: close\r\n\r\n",
      );
      assert.match(raw, /^HTTP\/1\.1 4\d\d /);

      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { status: "ready" });
      const me = await fetch(`${server.url}/api/v1/me`, { headers: ada.auth });
      assert.equal(me.status, 200);
      assert.equal((await me.json()).email, "ada@example.org");
    } finally {
      await server.stop();
    }
  });
});

Deno.test("TRACE and TRACK with a body get a 4xx over loopback, not a 500", async () => {
  await withHostileApp("hostile_trace", async ({ deps, ada }) => {
    const server = await startTestServer(deps);
    try {
      // Methods the Fetch Request constructor refuses (Fetch §4.5 forbidden methods), with a
      // body too large to be left to Deno: the server must still hand them to the app.
      const body = "a".repeat(100_000);
      for (const method of ["TRACE", "TRACK"]) {
        for (const auth of ["", `Authorization: ${ada.auth.authorization}\r\n`]) {
          const raw = await rawRequest(
            server.port,
            `${method} /api/v1/me HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: ${body.length}\r\n` +
              `Connection: close\r\n\r\n${body}`,
          );
          assert.match(raw, /^HTTP\/1\.1 4\d\d /, `${method}${auth ? " signed in" : ""}`);
        }
      }
      const me = await fetch(`${server.url}/api/v1/me`, { headers: ada.auth });
      assert.equal(me.status, 200);
      await me.body?.cancel();
    } finally {
      await server.stop();
    }
  });
});

function postJsonOver(base: string, path: string, auth: Record<string, string>, body: unknown) {
  return fetch(`${base}${path}`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Sends `text` as-is over TCP and returns what the server answers until it closes. */
async function rawRequest(port: number, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(text));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
    return new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer());
  } finally {
    conn.close();
  }
}
