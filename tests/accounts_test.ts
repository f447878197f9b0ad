import assert from "node:assert/strict";
import {
  AccountError,
  authenticate,
  createUser,
  LOGIN_LIMITS,
  loginDelayMs,
  resolveSession,
  startSession,
} from "../src/auth/account_service.ts";
import { createApiToken, revokeApiToken } from "../src/auth/token_service.ts";
import type { Database } from "../src/db/db.ts";
import { createApp } from "../app.ts";
import { Browser, formField, login, testDeps } from "./helpers/app.ts";
import { createMigratedDatabase } from "./helpers/db.ts";

const PASSWORD = "correct horse battery";

/** A migrated database, the app on it, and one user; dropped afterwards. */
async function withApp(
  label: string,
  fn: (ctx: { db: Database; app: ReturnType<typeof createApp> }) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const { testDb, db } = await createMigratedDatabase(label);
  try {
    await createUser({ db }, { email: "ada@example.org", password: PASSWORD });
    const app = createApp(testDeps(db, { env }));
    await fn({ db, app });
  } finally {
    await testDb.drop();
  }
}

/** The login page body with the per-request parts (token, echoed email) blanked. */
function normalizedLoginPage(html: string): string {
  return html.replace(/name="csrf_token" value="[^"]*"/, 'name="csrf_token" value=""')
    .replace(/name="email" value="[^"]*"/, 'name="email" value=""');
}

Deno.test("POST /login signs in through the form and GET / shows the user", async () => {
  await withApp("accounts_login", async ({ app }) => {
    const browser = new Browser(app);
    const page = await browser.get("/login");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    const html = await page.text();
    assert.match(html, /<form method="post" action="\/login">/);
    const csrfToken = formField(html, "csrf_token");
    const loginCookie = page.headers.getSetCookie().find((c) => c.startsWith("portal_login_csrf="));
    assert.ok(loginCookie, "GET /login sets the form's CSRF cookie");
    assert.match(loginCookie, /HttpOnly/i);

    const response = await browser.postForm("/login", {
      email: "  ADA@example.org ",
      password: PASSWORD,
      csrf_token: csrfToken,
      next: "/upload?x=1",
    });
    assert.equal(response.status, 303);
    assert.equal(response.headers.get("location"), "/upload?x=1");
    const session = response.headers.getSetCookie().find((c) => c.startsWith("portal_session="));
    assert.ok(session, "signing in sets the session cookie");
    assert.match(session, /HttpOnly/i);
    assert.match(session, /SameSite=Lax/i);
    assert.match(session, /Path=\//);
    assert.doesNotMatch(session, /Secure/i, "plain http: no Secure flag");

    const home = await browser.get("/");
    assert.equal(home.status, 200);
    assert.match(home.headers.get("content-type") ?? "", /^text\/html/);
    const homeHtml = await home.text();
    assert.match(homeHtml, /ada@example\.org/);
    assert.equal(home.headers.get("cache-control"), "no-store");

    // Signed in, /login goes home instead of showing the form again.
    const again = await browser.get("/login");
    assert.equal(again.status, 303);
  });
});

Deno.test("POST /login follows only same-site paths and sets Secure cookies behind https", async () => {
  await withApp("accounts_secure", async ({ app }) => {
    for (const next of ["//evil.example/x", "https://evil.example/", "/\\evil.example"]) {
      const browser = new Browser(app);
      const token = await browser.loginFormToken();
      const response = await browser.postForm("/login", {
        email: "ada@example.org",
        password: PASSWORD,
        csrf_token: token,
        next,
      });
      assert.equal(response.status, 303);
      assert.equal(response.headers.get("location"), "/", `next=${next} is not followed`);
      const session = response.headers.getSetCookie().find((c) => c.startsWith("portal_session="));
      assert.match(session ?? "", /;\s*Secure/i);
    }
  }, { PORTAL_PUBLIC_URL: "https://files.example.org" });
});

Deno.test("GET / without a session redirects to the login form", async () => {
  await withApp("accounts_anonymous", async ({ app }) => {
    const response = await app.request("/");
    assert.equal(response.status, 303);
    assert.equal(response.headers.get("location"), "/login?next=%2F");
    const forged = await app.request("/", {
      headers: { cookie: "portal_session=" + "x".repeat(43) },
    });
    assert.equal(forged.status, 303);
  });
});

Deno.test("POST /login answers a wrong password and an unknown email with the same 401 page", async () => {
  await withApp("accounts_wrong", async ({ app }) => {
    const attempt = async (email: string, password: string) => {
      const browser = new Browser(app);
      const response = await browser.submitLogin(email, password);
      const body = await response.text();
      assert.equal(response.status, 401);
      assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
      assert.equal(browser.cookies.has("portal_session"), false);
      return body;
    };
    const wrongPassword = await attempt("ada@example.org", "not the password");
    const unknownEmail = await attempt("nobody@example.org", "not the password");
    for (const body of [wrongPassword, unknownEmail]) {
      assert.match(body, /Sign-in failed: wrong email or password/);
      assert.doesNotMatch(
        body,
        /not found|unknown|no (such )?user|does not exist|incorrect password/i,
      );
      assert.doesNotMatch(body, /not the password/, "the password is never echoed");
    }
    assert.equal(normalizedLoginPage(wrongPassword), normalizedLoginPage(unknownEmail));
  });
});

Deno.test("authenticate() refuses an address after 5 failures on one account, and only that address", async (t) => {
  await withApp("accounts_lock", async ({ db, app }) => {
    await createUser({ db }, { email: "bob@example.org", password: PASSWORD });
    const from = (address: string) => new Browser(app, { address });

    await t.step("5 failures are answered 401", async () => {
      for (let i = 0; i < LOGIN_LIMITS.perAccountAndAddress; i++) {
        const response = await from("198.51.100.1").submitLogin("ada@example.org", `wrong-${i}`);
        await response.body?.cancel();
        assert.equal(response.status, 401, `attempt ${i + 1}`);
      }
    });

    await t.step(
      "the next attempt from that address is 429 even with the right password",
      async () => {
        const response = await from("198.51.100.1").submitLogin("ada@example.org", PASSWORD);
        const body = await response.text();
        assert.equal(response.status, 429);
        assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
        assert.equal(response.headers.get("retry-after"), String(LOGIN_LIMITS.windowMinutes * 60));
        assert.match(body, /Too many failed sign-in attempts from your address/);
        assert.equal(
          response.headers.getSetCookie().some((c) => c.startsWith("portal_session=")),
          false,
        );
      },
    );

    await t.step("the account still signs in from another address", async () => {
      await login(app, "ada@example.org", PASSWORD, { address: "203.0.113.77" });
    });

    await t.step("another account from the same address still signs in", async () => {
      await login(app, "bob@example.org", PASSWORD, { address: "198.51.100.1" });
    });

    await t.step("failures older than the window no longer count", async () => {
      await db.sql`
        UPDATE login_attempt SET created_at = now() - make_interval(mins => ${
        LOGIN_LIMITS.windowMinutes + 1
      })
        WHERE email = 'ada@example.org'`;
      await login(app, "ada@example.org", PASSWORD, { address: "198.51.100.1" });
    });
  });
});

Deno.test("authenticate() counts parallel guesses from one address against its limit", async () => {
  const { testDb, db } = await createMigratedDatabase("accounts_parallel");
  try {
    await createUser({ db }, { email: "ada@example.org", password: PASSWORD });
    // Fired at once: each guess must see the ones made before it.
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        authenticate({ db, sleep: () => Promise.resolve() }, {
          email: "ada@example.org",
          password: `guess ${i}`,
          address: "198.51.100.1",
        })),
    );
    const reasons = results.map((r) => (r.ok ? "ok" : r.reason)).sort();
    assert.deepEqual(reasons, [
      ...new Array(LOGIN_LIMITS.perAccountAndAddress).fill("invalid"),
      ...new Array(12 - LOGIN_LIMITS.perAccountAndAddress).fill("rate_limited"),
    ]);
    // Refused guesses are not stored, so they do not extend the lockout.
    const [row] = await db.sql<{ count: number }[]>`
      SELECT count(*)::int AS count FROM login_attempt WHERE email = 'ada@example.org'`;
    assert.equal(row?.count, LOGIN_LIMITS.perAccountAndAddress);
  } finally {
    await testDb.drop();
  }
});

Deno.test("authenticate() slows an account guessed from many addresses, never the right password from a clean one", async () => {
  const { testDb, db } = await createMigratedDatabase("accounts_slow");
  try {
    await createUser({ db }, { email: "ada@example.org", password: PASSWORD });
    const delays: number[] = [];
    const deps = { db, sleep: (ms: number) => (delays.push(ms), Promise.resolve()) };
    const attempt = (password: string, address: string) =>
      authenticate(deps, { email: "ada@example.org", password, address });

    for (let i = 0; i < 9; i++) {
      const result = await attempt(`guess ${i}`, `198.51.100.${i + 1}`);
      assert.equal(
        result.ok ? "ok" : result.reason,
        "invalid",
        `guess ${i + 1} is refused, not locked`,
      );
    }
    // Free for the first five failures, then doubling with each one.
    assert.deepEqual(delays, [100, 200, 400, 800]);

    delays.length = 0;
    const clean = await attempt(PASSWORD, "192.0.2.10");
    assert.equal(clean.ok, true, "the right password from a clean address");
    assert.deepEqual(delays, [], "is answered at once");
    const failedBefore = await attempt(PASSWORD, "198.51.100.3");
    assert.equal(failedBefore.ok, true, "the right password from an address that failed once");
    assert.equal(delays.length, 1, "waits first");
    assert.equal(
      loginDelayMs({ byEmail: 100, byEmailAndAddress: 1 }, false),
      LOGIN_LIMITS.maxDelayMs,
    );
  } finally {
    await testDb.drop();
  }
});

Deno.test("authenticate() limits one address to 20 failures across emails", async (t) => {
  await withApp("accounts_address", async ({ app }) => {
    const attacker = "203.0.113.9";
    await t.step("20 failures with different emails are answered 401", async () => {
      // In parallel, as a credential-stuffing client would; each one still counts.
      const statuses = await Promise.all(
        Array.from({ length: LOGIN_LIMITS.perAddress }, async (_, i) => {
          const browser = new Browser(app, { address: attacker });
          const response = await browser.submitLogin(`guess-${i}@example.org`, "wrong password");
          await response.body?.cancel();
          return response.status;
        }),
      );
      assert.deepEqual(statuses, new Array(LOGIN_LIMITS.perAddress).fill(401));
    });
    await t.step("then that address is refused, even with valid credentials", async () => {
      const browser = new Browser(app, { address: attacker });
      const response = await browser.submitLogin("ada@example.org", PASSWORD);
      await response.body?.cancel();
      assert.equal(response.status, 429);
    });
    await t.step("another address signs in", async () => {
      await login(app, "ada@example.org", PASSWORD, { address: "192.0.2.10" });
    });
  });
});

Deno.test("POST /logout ends the session on the server", async () => {
  await withApp("accounts_logout", async ({ db, app }) => {
    const browser = await login(app, "ada@example.org", PASSWORD);
    const oldCookie = browser.cookies.get("portal_session")!;
    const csrfToken = await browser.sessionCsrfToken();

    const response = await browser.postForm("/logout", { csrf_token: csrfToken });
    assert.equal(response.status, 303);
    assert.equal(response.headers.get("location"), "/login");
    assert.equal(browser.cookies.has("portal_session"), false, "the cookie is cleared");
    assert.equal(await resolveSession({ db }, oldCookie), null);

    // Replaying the old cookie (a copy kept by an attacker) no longer works.
    const replay = await app.request("/", { headers: { cookie: `portal_session=${oldCookie}` } });
    assert.equal(replay.status, 303);
    assert.match(replay.headers.get("location") ?? "", /^\/login/);
    const api = await app.request("/api/v1/me", {
      headers: { cookie: `portal_session=${oldCookie}` },
    });
    assert.equal(api.status, 401);
  });
});

Deno.test("state-changing requests without a CSRF token are refused", async (t) => {
  await withApp("accounts_csrf", async ({ app }) => {
    await t.step("POST /login without the form cookie and field: 403", async () => {
      const response = await app.request("/login", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ email: "ada@example.org", password: PASSWORD }).toString(),
      });
      assert.equal(response.status, 403);
      assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(await response.text(), /sign-in form expired/);
      assert.equal(
        response.headers.getSetCookie().some((c) => c.startsWith("portal_session=")),
        false,
      );
    });

    await t.step("POST /login with the cookie but a forged field: 403", async () => {
      const browser = new Browser(app);
      await browser.loginFormToken();
      const response = await browser.postForm("/login", {
        email: "ada@example.org",
        password: PASSWORD,
        csrf_token: "forged",
      });
      await response.body?.cancel();
      assert.equal(response.status, 403);
    });

    await t.step("POST /login with a field from another browser's cookie: 403", async () => {
      const token = await new Browser(app).loginFormToken();
      const browser = new Browser(app);
      await browser.loginFormToken();
      const response = await browser.postForm("/login", {
        email: "ada@example.org",
        password: PASSWORD,
        csrf_token: token,
      });
      await response.body?.cancel();
      assert.equal(response.status, 403);
    });

    const browser = await login(app, "ada@example.org", PASSWORD);

    await t.step(
      "POST /logout with a session but no token: 403, and the session lives on",
      async () => {
        const response = await browser.postForm("/logout", {});
        assert.equal(response.status, 403);
        assert.match(await response.text(), /security token is missing or stale/);
        const home = await browser.get("/");
        await home.body?.cancel();
        assert.equal(home.status, 200);
      },
    );

    await t.step("POST /api/v1/tokens with a session cookie but no X-CSRF-Token: 401", async () => {
      const response = await browser.request("/api/v1/tokens", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "from a forged form" }),
      });
      assert.equal(response.status, 401);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      assert.equal((await response.json()).error.code, "unauthorized");
    });

    await t.step("the same request with the session's X-CSRF-Token: 201", async () => {
      const csrfToken = await browser.sessionCsrfToken();
      const response = await browser.request("/api/v1/tokens", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": csrfToken },
        body: JSON.stringify({ name: "laptop" }),
      });
      assert.equal(response.status, 201);
      const body = await response.json();
      assert.equal(body.name, "laptop");
      assert.match(body.token, /^ptk_/);
    });
  });
});

Deno.test("requireToken() authenticates /api/v1/me with a bearer token", async (t) => {
  await withApp("accounts_token", async ({ db, app }) => {
    const created = await createApiToken({ db }, { email: "ada@example.org", name: "ci" });
    const me = (authorization?: string) =>
      app.request("/api/v1/me", { headers: authorization ? { authorization } : {} });
    const assertUnauthorized = async (response: Response, code: string) => {
      assert.equal(response.status, 401);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer realm="portal"/);
      const body = await response.json();
      assert.deepEqual(Object.keys(body), ["error"]);
      assert.equal(body.error.code, code);
      assert.equal(typeof body.error.message, "string");
      assert.ok(body.error.message.length > 0);
    };

    await t.step("a valid token: 200 with the user", async () => {
      const response = await me(`Bearer ${created.token}`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      assert.deepEqual(await response.json(), {
        id: created.user.id,
        email: "ada@example.org",
        is_admin: false,
      });
      const [row] = await db.sql<{ used: boolean }[]>`
        SELECT last_used_at IS NOT NULL AS used FROM api_tokens WHERE id = ${created.id}`;
      assert.equal(row?.used, true);
    });

    await t.step("no token: 401", async () => {
      await assertUnauthorized(await me(), "unauthorized");
    });

    await t.step("not a bearer header: 401", async () => {
      await assertUnauthorized(await me("Basic YWRhOnB3"), "unauthorized");
    });

    await t.step("a wrong token: 401", async () => {
      await assertUnauthorized(await me(`Bearer ${created.token.slice(0, -2)}xx`), "invalid_token");
      await assertUnauthorized(await me("Bearer not-even-a-portal-token"), "invalid_token");
    });

    await t.step("a revoked token: 401", async () => {
      assert.equal(await revokeApiToken({ db }, created.id), true);
      assert.equal(await revokeApiToken({ db }, created.id), false, "revoking twice is a no-op");
      await assertUnauthorized(await me(`Bearer ${created.token}`), "invalid_token");
    });

    await t.step("a token of a deactivated user: 401", async () => {
      const other = await createApiToken({ db }, { email: "ada@example.org" });
      await db.sql`UPDATE users SET is_active = false WHERE email = 'ada@example.org'`;
      await assertUnauthorized(await me(`Bearer ${other.token}`), "invalid_token");
    });
  });
});

Deno.test("createUser() validates input and resolveSession() ignores expired sessions", async (t) => {
  await withApp("accounts_service", async ({ db }) => {
    await t.step("a taken email (any case) is refused", async () => {
      await assert.rejects(
        () => createUser({ db }, { email: "ADA@example.org", password: "another password" }),
        (error: unknown) => error instanceof AccountError && error.code === "email_taken",
      );
    });
    await t.step("a short password is refused", async () => {
      await assert.rejects(
        () => createUser({ db }, { email: "eve@example.org", password: "short" }),
        (error: unknown) => error instanceof AccountError && error.code === "weak_password",
      );
    });
    await t.step("an invalid email is refused", async () => {
      await assert.rejects(
        () => createUser({ db }, { email: "eve at example.org", password: "long enough" }),
        (error: unknown) => error instanceof AccountError && error.code === "invalid_email",
      );
    });
    await t.step("the hash, never the password, is stored", async () => {
      const [row] = await db.sql<{ hash: string }[]>`
        SELECT password_hash AS hash FROM users WHERE email = 'ada@example.org'`;
      assert.match(row?.hash ?? "", /^scrypt\$/);
      assert.equal(row?.hash.includes(PASSWORD), false);
    });
    await t.step("an expired session resolves to nothing", async () => {
      const [user] = await db.sql<{ id: string }[]>`SELECT id FROM users LIMIT 1`;
      const live = await startSession({ db }, { userId: user!.id, ttlHours: 1 });
      assert.equal((await resolveSession({ db }, live.cookieValue))?.user.email, "ada@example.org");
      const twoHoursAgo = { now: () => new Date(Date.now() - 2 * 3_600_000) };
      const old = await startSession({ db, clock: twoHoursAgo }, { userId: user!.id, ttlHours: 1 });
      assert.equal(await resolveSession({ db }, old.cookieValue), null);
    });
  });
});
