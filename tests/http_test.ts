import assert from "node:assert/strict";
import { createUser } from "../src/auth/account_service.ts";
import { createApiToken } from "../src/auth/token_service.ts";
import { migrate } from "../src/db/migrate.ts";
import { createApp } from "../app.ts";
import { clientAddress, matchesRule } from "../src/http/client_address.ts";
import { startServer } from "../src/http/server.ts";
import { Browser, captureLogger, freePort, startTestServer, testDeps } from "./helpers/app.ts";
import { startPortal, waitForStatus } from "./helpers/cli.ts";
import { createMigratedDatabase, createTestDatabase } from "./helpers/db.ts";

const JSON_TYPE = /^application\/json/;
const HTML_TYPE = /^text\/html/;

/**
 * Reads one HTTP/1.1 response from `conn`: the head, then `Content-Length` bytes of body (or
 * up to the peer closing when there is none). Fails after `timeoutMs`.
 */
async function readResponse(conn: Deno.Conn, timeoutMs = 10_000): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    const buffer = new Uint8Array(16 * 1024);
    while (true) {
      const headEnd = text.indexOf("\r\n\r\n");
      if (headEnd >= 0) {
        const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, headEnd));
        if (
          length && new TextEncoder().encode(text.slice(headEnd + 4)).length >= Number(length[1])
        ) {
          return text;
        }
      }
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return text;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  } finally {
    clearTimeout(timer);
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("the app answers unknown routes, bad bodies and oversized input with 4xx", async (t) => {
  const { testDb, db } = await createMigratedDatabase("http_errors");
  try {
    await createUser({ db }, { email: "ada@example.org", password: "correct horse" });
    const { token } = await createApiToken({ db }, { email: "ada@example.org" });
    const app = createApp(testDeps(db));
    const auth = { authorization: `Bearer ${token}` };
    const postTokens = (headers: Record<string, string>, body: string) =>
      app.request("/api/v1/tokens", { method: "POST", headers: { ...auth, ...headers }, body });

    await t.step("an unknown /api/ route: 404 JSON", async () => {
      for (const [path, headers] of [["/api/v2/files", {}], ["/api/v1/nope", auth]] as const) {
        const response = await app.request(path, { headers });
        assert.equal(response.status, 404, path);
        assert.match(response.headers.get("content-type") ?? "", JSON_TYPE);
        const body = await response.json();
        assert.equal(body.error.code, "not_found");
        assert.equal(body.error.message, `Not found: GET ${path}`);
      }
    });

    await t.step("an unknown page: 404 HTML", async () => {
      const response = await app.request("/no-such-page");
      assert.equal(response.status, 404);
      assert.match(response.headers.get("content-type") ?? "", HTML_TYPE);
      assert.match(await response.text(), /Not found: GET \/no-such-page/);
    });

    await t.step("malformed JSON: 400 malformed_json", async () => {
      const response = await postTokens({ "content-type": "application/json" }, '{"name": ');
      assert.equal(response.status, 400);
      assert.match(response.headers.get("content-type") ?? "", JSON_TYPE);
      const body = await response.json();
      assert.equal(body.error.code, "malformed_json");
      assert.match(body.error.message, /^Cannot read the body: malformed JSON/);
    });

    await t.step("JSON that is not an object: 400 malformed_json", async () => {
      const response = await postTokens({ "content-type": "application/json" }, "[1, 2]");
      assert.equal(response.status, 400);
      assert.equal((await response.json()).error.code, "malformed_json");
    });

    await t.step("a wrong content type: 415", async () => {
      const response = await postTokens({ "content-type": "text/plain" }, "{}");
      assert.equal(response.status, 415);
      assert.match(response.headers.get("content-type") ?? "", JSON_TYPE);
      const body = await response.json();
      assert.equal(body.error.code, "unsupported_media_type");
      assert.match(body.error.message, /expected "Content-Type: application\/json"/);
    });

    await t.step("a JSON body over the limit: 413", async () => {
      const body = JSON.stringify({ name: "x".repeat(70_000) });
      const response = await postTokens({ "content-type": "application/json" }, body);
      assert.equal(response.status, 413);
      assert.equal((await response.json()).error.code, "too_large");
    });

    await t.step("a field of the wrong type: 400", async () => {
      const response = await postTokens({ "content-type": "application/json" }, '{"name": 7}');
      assert.equal(response.status, 400);
      assert.equal((await response.json()).error.code, "invalid");
    });

    await t.step("a login form that is not form data: 400, not 500", async () => {
      for (const path of ["/login", "/logout"]) {
        const response = await app.request(path, {
          method: "POST",
          headers: { "content-type": "multipart/form-data; boundary=xyz" },
          body: "this is not multipart",
        });
        assert.equal(response.status, 400, path);
        assert.match(response.headers.get("content-type") ?? "", HTML_TYPE);
        assert.match(await response.text(), /Cannot read the form/);
      }
    });

    await t.step("a login form over 16 KiB: 413", async () => {
      const response = await app.request("/login", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `email=${"x".repeat(20_000)}`,
      });
      await response.body?.cancel();
      assert.equal(response.status, 413);
    });
  } finally {
    await testDb.drop();
  }
});

Deno.test("Deno.serve rejects oversized request headers and keeps serving", async () => {
  const { testDb, db } = await createMigratedDatabase("http_headers");
  const server = await startTestServer(testDeps(db));
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const request = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${
      "x".repeat(200 * 1024)
    }\r\n\r\n`;
    // The server may answer and close before it has read everything: a write error is fine.
    await conn.write(new TextEncoder().encode(request)).catch(() => 0);
    const answer = await readResponse(conn);
    conn.close();
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
    // Deno 2.9 answers 400 Bad Request (hyper's header limit), not 431.
    assert.ok(status >= 400 && status < 500, `expected a 4xx, got ${JSON.stringify(answer)}`);

    const after = await fetch(`${server.url}/healthz`);
    assert.equal(after.status, 200);
    assert.deepEqual(await after.json(), { status: "ok" });
  } finally {
    await server.stop();
    await testDb.drop();
  }
});

Deno.test("/healthz is 200 and /readyz is 503 until the migrations are applied", async () => {
  const testDb = await createTestDatabase("http_readyz");
  try {
    const db = testDb.open();
    const app = createApp(testDeps(db));

    const health = await app.request("/healthz");
    assert.equal(health.status, 200);
    assert.match(health.headers.get("content-type") ?? "", JSON_TYPE);
    assert.deepEqual(await health.json(), { status: "ok" });

    const before = await app.request("/readyz");
    assert.equal(before.status, 503);
    assert.match(before.headers.get("content-type") ?? "", JSON_TYPE);
    assert.deepEqual(await before.json(), {
      status: "unavailable",
      reason: "migrations not applied",
    });

    await migrate(db);
    const after = await app.request("/readyz");
    assert.equal(after.status, 200);
    assert.deepEqual(await after.json(), { status: "ready" });

    await db.close();
    const down = await app.request("/readyz");
    assert.equal(down.status, 503);
    assert.deepEqual(await down.json(), { status: "unavailable", reason: "database unreachable" });
  } finally {
    await testDb.drop();
  }
});

Deno.test("requestContext() echoes the request id and logs one JSON object per request", async (t) => {
  const { testDb, db } = await createMigratedDatabase("http_logs");
  try {
    const { logger, lines } = captureLogger();
    const app = createApp(testDeps(db, { logger }));

    await t.step("a well-formed X-Request-Id is echoed", async () => {
      const response = await app.request("/healthz", { headers: { "x-request-id": "trace-42.a" } });
      await response.body?.cancel();
      assert.equal(response.headers.get("x-request-id"), "trace-42.a");
    });

    await t.step("a missing or unsafe one is replaced by a fresh id", async () => {
      const variants: Record<string, string>[] = [
        {},
        { "x-request-id": "evil\u0001id" },
        { "x-request-id": "a b" },
      ];
      for (const headers of variants) {
        const response = await app.request("/no-such-page", { headers });
        await response.body?.cancel();
        assert.match(
          response.headers.get("x-request-id") ?? "",
          /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
        );
      }
    });

    await t.step("error answers carry the id too", async () => {
      const response = await app.request("/api/v1/me", { headers: { "x-request-id": "err-1" } });
      assert.equal(response.status, 401);
      assert.equal(response.headers.get("x-request-id"), "err-1");
      assert.equal((await response.json()).error.request_id, "err-1", "and so does the body");
    });

    await t.step("every log line is one JSON object; access lines name the request", () => {
      assert.ok(lines.length >= 5);
      const records = lines.map((line) => {
        assert.equal(line.includes("\n"), false, "one line per record");
        const record = JSON.parse(line);
        assert.equal(typeof record, "object");
        return record;
      });
      const access = records.filter((r) => r.msg === "request");
      assert.equal(access.length, 5);
      assert.deepEqual(
        { ...access[0], time: undefined, duration_ms: undefined },
        {
          time: undefined,
          level: "info",
          msg: "request",
          request_id: "trace-42.a",
          method: "GET",
          path: "/healthz",
          status: 200,
          duration_ms: undefined,
          client: "127.0.0.1",
          user_id: null,
        },
      );
      assert.equal(typeof access[0].duration_ms, "number");
      assert.ok(!Number.isNaN(Date.parse(access[0].time)));
      assert.deepEqual(access.map((r) => r.status), [200, 404, 404, 404, 401]);
      assert.equal(access[4].request_id, "err-1");
    });
  } finally {
    await testDb.drop();
  }
});

Deno.test("clientAddress() believes X-Forwarded-For only from trusted proxies", () => {
  // No trusted proxy: the header is ignored, whatever it says.
  assert.equal(clientAddress("203.0.113.5", "1.2.3.4", []), "203.0.113.5");
  // The peer is not one of the trusted proxies.
  assert.equal(clientAddress("203.0.113.5", "1.2.3.4", ["10.0.0.0/8"]), "203.0.113.5");
  assert.equal(clientAddress("192.0.2.70", "1.2.3.4", ["192.0.2.7"]), "192.0.2.70");
  // A trusted proxy: the right-most address it did not add itself.
  assert.equal(clientAddress("10.0.0.2", "1.2.3.4", ["10.0.0.0/8"]), "1.2.3.4");
  assert.equal(clientAddress("10.0.0.2", "6.6.6.6, 1.2.3.4", ["10.0.0.0/8"]), "1.2.3.4");
  assert.equal(clientAddress("10.0.0.2", "1.2.3.4, 10.0.0.9", ["10.0.0.0/8"]), "1.2.3.4");
  assert.equal(clientAddress("10.0.0.2", "10.0.0.8, 10.0.0.9", ["10.0.0.0/8"]), "10.0.0.8");
  assert.equal(clientAddress("10.0.0.2", undefined, ["10.0.0.0/8"]), "10.0.0.2");
  assert.equal(clientAddress("10.0.0.2", " , ", ["10.0.0.0/8"]), "10.0.0.2");
  // IPv4-mapped IPv6 peers (dual-stack sockets) are their IPv4 address.
  assert.equal(clientAddress("::ffff:10.0.0.2", "1.2.3.4", ["10.0.0.0/8"]), "1.2.3.4");
  assert.equal(clientAddress("::ffff:203.0.113.5", "1.2.3.4", []), "203.0.113.5");
  // IPv6 proxies, by address and by CIDR.
  assert.equal(clientAddress("::1", "2001:db8::7", ["::1"]), "2001:db8::7");
  assert.equal(clientAddress("fd12:3456::1", "2001:db8::7", ["fd00::/8"]), "2001:db8::7");
  assert.equal(clientAddress("fe80::1", "2001:db8::7", ["fd00::/8"]), "fe80::1");
  assert.equal(clientAddress("0:0:0:0:0:0:0:1", "1.2.3.4", ["::1"]), "1.2.3.4");

  assert.equal(matchesRule("10.1.2.3", "10.0.0.0/8"), true);
  assert.equal(matchesRule("11.1.2.3", "10.0.0.0/8"), false);
  assert.equal(matchesRule("172.16.0.1", "172.16.0.0/12"), true);
  assert.equal(matchesRule("172.32.0.1", "172.16.0.0/12"), false);
  assert.equal(matchesRule("8.8.8.8", "0.0.0.0/0"), true);
  assert.equal(matchesRule("192.0.2.1", "192.0.2.1/32"), true);
  assert.equal(matchesRule("2001:db8::1", "2001:db8::/32"), true);
  assert.equal(matchesRule("2001:db9::1", "2001:db8::/32"), false);
  assert.equal(matchesRule("10.0.0.1", "fd00::/8"), false);
  assert.equal(matchesRule("fe80::1%eth0", "fe80::/10"), true);
  assert.equal(matchesRule("2001:db8::1", "::/0"), true);
  assert.equal(matchesRule("1::2::3", "::/0"), false);
  assert.equal(matchesRule("not an ip", "10.0.0.0/8"), false);
});

Deno.test("the app takes the client address from X-Forwarded-For only behind PORTAL_TRUST_PROXY", async () => {
  const { testDb, db } = await createMigratedDatabase("http_proxy");
  try {
    const seen = async (env: Record<string, string>) => {
      const { logger, lines } = captureLogger();
      const app = createApp(testDeps(db, { logger, env }));
      const response = await app.request(
        "/healthz",
        { headers: { "x-forwarded-for": "198.51.100.23" } },
        { remoteAddr: { hostname: "10.0.0.2", port: 40000, transport: "tcp" } },
      );
      await response.body?.cancel();
      return JSON.parse(lines.find((l) => l.includes('"msg":"request"'))!).client;
    };
    assert.equal(await seen({}), "10.0.0.2");
    assert.equal(await seen({ PORTAL_TRUST_PROXY: "192.0.2.1" }), "10.0.0.2");
    assert.equal(await seen({ PORTAL_TRUST_PROXY: "10.0.0.0/8" }), "198.51.100.23");

    // The login rate limit is keyed by that address.
    const app = createApp(testDeps(db, { env: { PORTAL_TRUST_PROXY: "10.0.0.2" } }));
    const browser = new Browser(app, { address: "10.0.0.2" });
    const csrfToken = await browser.loginFormToken();
    const response = await browser.postForm(
      "/login",
      { email: "ghost@example.org", password: "wrong password", csrf_token: csrfToken },
      { "x-forwarded-for": "198.51.100.23" },
    );
    await response.body?.cancel();
    assert.equal(response.status, 401);
    const rows = await db.sql<{ address: string }[]>`SELECT address FROM login_attempt`;
    assert.deepEqual(rows.map((r) => r.address), ["198.51.100.23"]);
  } finally {
    await testDb.drop();
  }
});

Deno.test("portal serve drains an in-flight request on SIGTERM and exits 0", async (t) => {
  const testDb = await createTestDatabase("http_drain");
  const dataDir = await Deno.makeTempDir({ prefix: "portal-drain-" });
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const portal = startPortal(["serve"], {
    env: {
      DATABASE_URL: testDb.url,
      PORTAL_DATA_DIR: dataDir,
      PORTAL_PORT: String(port),
      PORTAL_JOBS: "off",
    },
  });
  try {
    await t.step("it starts on the server database", async () => {
      const ms = await waitForStatus(`${base}/readyz`);
      console.log(`server database: portal serve ready (/readyz 200) after ${Math.round(ms)} ms`);
    });

    const db = testDb.open({ max: 2 });
    await createUser({ db }, { email: "ada@example.org", password: "correct horse" });
    const browser = new Browser(base);
    const csrfToken = await browser.loginFormToken();
    const body = new TextEncoder().encode(
      new URLSearchParams({
        email: "ada@example.org",
        password: "correct horse",
        csrf_token: csrfToken,
      }).toString(),
    );
    const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });

    await t.step("a slow POST /login is in flight when SIGTERM arrives", async () => {
      await conn.write(
        new TextEncoder().encode(
          `POST /login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${cookie}\r\n` +
            `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n`,
        ),
      );
      await conn.write(body.subarray(0, 10));
      await delay(300);
      portal.child.kill("SIGTERM");
      await portal.waitForLine(/"msg":"shutting down"/, 5_000);
    });

    await t.step("a request arriving during the drain is turned away with 503", async () => {
      const response = await fetch(`${base}/healthz`);
      assert.equal(response.status, 503);
      assert.match(response.headers.get("content-type") ?? "", JSON_TYPE);
      assert.equal(response.headers.get("connection"), "close");
      assert.equal((await response.json()).error.code, "shutting_down");
    });

    await t.step("the in-flight request completes normally", async () => {
      const rest = body.subarray(10);
      const step = Math.ceil(rest.length / 4);
      for (let i = 0; i < rest.length; i += step) {
        await delay(400);
        await conn.write(rest.subarray(i, i + step));
      }
      const answer = await readResponse(conn);
      conn.close();
      assert.match(answer, /^HTTP\/1\.1 303 /);
      assert.match(answer, /\r\nlocation: \/\r\n/i);
      assert.match(answer, /\r\nset-cookie: portal_session=[^;\r\n]{20,}/i);
      const [row] = await db.sql<{ count: number }[]>`SELECT count(*)::int AS count FROM sessions`;
      assert.equal(row?.count, 1, "the session was stored before the process stopped");
    });

    await t.step("the process exits 0 after the request", async () => {
      const status = await portal.exited();
      assert.equal(status.code, 0, portal.stderrLines.join("\n"));
      assert.ok(portal.stdoutLines.some((l) => l.includes('"msg":"stopped"')));
      for (const line of portal.stdoutLines) {
        if (line.startsWith("Portal is running at ")) continue;
        assert.doesNotThrow(() => JSON.parse(line), `a log line is JSON: ${line}`);
      }
    });
  } finally {
    await portal.stop("SIGKILL");
    await testDb.drop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("startServer() drains in-flight requests, then refuses new connections", async () => {
  let started!: () => void;
  const handlerStarted = new Promise<void>((resolve) => (started = resolve));
  const server = await startServer(async (request) => {
    started();
    const text = await request.text();
    return new Response(`read ${text.length} bytes`);
  }, { hostname: "127.0.0.1", port: 0 });
  const port = server.port;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const encoder = new TextEncoder();
  await conn.write(
    encoder.encode(
      `POST /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20\r\n\r\n0123456789`,
    ),
  );
  await handlerStarted;

  const stopped = server.shutdown(5_000);
  await delay(100);
  // Still draining: the listener answers, but only to say it is going away.
  const late = await Deno.connect({ hostname: "127.0.0.1", port });
  await late.write(encoder.encode(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
  const lateAnswer = await readResponse(late);
  late.close();
  assert.match(lateAnswer, /^HTTP\/1\.1 503 /);
  assert.match(lateAnswer, /"code":"shutting_down"/);

  await conn.write(encoder.encode("abcdefghij"));
  const answer = await readResponse(conn);
  conn.close();
  assert.match(answer, /^HTTP\/1\.1 200 /);
  assert.match(answer, /read 20 bytes$/);

  await stopped;
  await server.finished;
  await assert.rejects(
    () => Deno.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
});
