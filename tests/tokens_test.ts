/**
 * API tokens over their whole life: created (with or without an expiry), listed without their
 * secrets, used, revoked from the command line and through the API, refused once revoked or
 * expired; `last_used_at` written at most once a minute.
 */
import assert from "node:assert/strict";
import { createUser, sha256Hex } from "../src/auth/account_service.ts";
import { createApiToken, revokeApiToken } from "../src/auth/token_service.ts";
import type { Database } from "../src/db/db.ts";
import { migrate } from "../src/db/migrate.ts";
import { MIGRATIONS } from "../src/db/migrations.ts";
import { createApp } from "../app.ts";
import { startTestServer, testDeps } from "./helpers/app.ts";
import { runCli } from "./helpers/cli.ts";
import { createMigratedDatabase, createTestDatabase } from "./helpers/db.ts";

const PASSWORD = "correct horse battery";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Json = Record<string, unknown>;

/** A migrated database with the users ada and bob; dropped afterwards. */
async function withUsers(
  label: string,
  fn: (db: Database, url: string) => Promise<void>,
): Promise<void> {
  const { testDb, db } = await createMigratedDatabase(label);
  try {
    await createUser({ db }, { email: "ada@example.org", password: PASSWORD });
    await createUser({ db }, { email: "bob@example.org", password: PASSWORD });
    await fn(db, testDb.url);
  } finally {
    await testDb.drop();
  }
}

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** Asserts a JSON error answer and returns its error object (without the request id). */
async function assertError(response: Response, status: number, code: string): Promise<Json> {
  assert.equal(response.status, status);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = await response.json();
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, "string");
  const { request_id: _id, ...error } = body.error;
  return error;
}

/** The rows of `portal token list`, split on the column gaps (the header first). */
function tableRows(stdout: string): string[][] {
  return stdout.trimEnd().split("\n").map((line) => line.split(/ {2,}/));
}

async function lastUsedAt(db: Database, id: string): Promise<Date | null> {
  const [row] = await db.sql<{ lastUsedAt: Date | null }[]>`
    SELECT last_used_at AS "lastUsedAt" FROM api_tokens WHERE id = ${id}`;
  return row?.lastUsedAt ?? null;
}

Deno.test("portal token create, list and revoke: a revoked token is refused over HTTP", async (t) => {
  await withUsers("tokens_cli", async (db, url) => {
    const server = await startTestServer(testDeps(db));
    const env = { DATABASE_URL: url };
    const me = (token: string) => fetch(`${server.url}/api/v1/me`, { headers: bearer(token) });
    try {
      let token = "";
      let id = "";

      await t.step(
        "token create --expires-in-days prints the token and says when it ends",
        async () => {
          const result = await runCli(
            [
              "token",
              "create",
              "--email",
              "ada@example.org",
              "--name",
              "ci",
              "--expires-in-days",
              "30",
            ],
            { env },
          );
          assert.equal(result.code, 0, result.stderr);
          assert.match(result.stdout, /^ptk_[A-Za-z0-9_-]{40,}\n$/);
          token = result.stdout.trim();
          const match =
            /^Created token (\S+) for ada@example\.org \(it expires (.+?)\); it is shown once/
              .exec(result.stderr);
          assert.ok(match, result.stderr);
          id = match[1]!;
          assert.match(id, UUID);
          const expires = Date.parse(match[2]!.replace(" ", "T"));
          assert.ok(Math.abs(expires - (Date.now() + 30 * 86_400_000)) < 60_000, match[2]);
        },
      );

      await t.step("token list shows it, unused, without the secret", async () => {
        const result = await runCli(["token", "list", "--email", "ADA@example.org"], { env });
        assert.equal(result.code, 0, result.stderr);
        const rows = tableRows(result.stdout);
        assert.deepEqual(rows[0], [
          "ID",
          "NAME",
          "PREFIX",
          "CREATED",
          "LAST USED",
          "EXPIRES",
          "REVOKED",
          "STATUS",
        ]);
        assert.equal(rows.length, 2);
        const row = rows[1]!;
        assert.deepEqual([row[0], row[1], row[2], row[4], row[6], row[7]], [
          id,
          "ci",
          `${token.slice(0, 10)}…`,
          "never",
          "-",
          "active",
        ]);
        assert.match(row[3]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
        assert.match(row[5]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
        assert.ok(!result.stdout.includes(token), "the token is not printed");
        assert.ok(!result.stdout.includes(sha256Hex(token)), "nor its hash");
      });

      await t.step("the token works, and the list shows it used", async () => {
        const response = await me(token);
        assert.equal(response.status, 200);
        assert.equal((await response.json()).email, "ada@example.org");
        const result = await runCli(["token", "list", "--email", "ada@example.org"], { env });
        assert.equal(result.code, 0, result.stderr);
        assert.match(tableRows(result.stdout)[1]![4]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
      });

      await t.step("token revoke ID revokes it; the next request is refused", async () => {
        const result = await runCli(["token", "revoke", id], { env });
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, `Revoked token ${id}: it is refused from now on\n`);
        await assertError(await me(token), 401, "invalid_token");
        const list = await runCli(["token", "list", "--email", "ada@example.org"], { env });
        const row = tableRows(list.stdout)[1]!;
        assert.match(row[6]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
        assert.equal(row[7], "revoked");
      });

      await t.step(
        "mistakes: a clear message, exit 1 for what is not there, 2 for bad input",
        async () => {
          const unknown = crypto.randomUUID();
          const [again, missing, malformed, noId, noUser, noEmail, noTokens] = await Promise.all([
            runCli(["token", "revoke", id], { env }),
            runCli(["token", "revoke", unknown], { env }),
            runCli(["token", "revoke", "not-a-uuid"], { env }),
            runCli(["token", "revoke"], { env }),
            runCli(["token", "list", "--email", "nobody@example.org"], { env }),
            runCli(["token", "list"], { env }),
            runCli(["token", "list", "--email", "bob@example.org"], { env }),
          ]);
          assert.equal(again.code, 1);
          assert.match(
            again.stderr,
            new RegExp(`^Cannot revoke token "${id}": it was revoked already, at \\d{4}-`),
          );
          assert.equal(missing.code, 1);
          assert.equal(
            missing.stderr,
            `Cannot revoke token "${unknown}": there is no such token (run "portal token list ` +
              `--email E" for the IDs)\n`,
          );
          assert.equal(malformed.code, 2);
          assert.match(
            malformed.stderr,
            /^portal: Cannot revoke token "not-a-uuid": not a token ID/,
          );
          assert.match(malformed.stderr, /Usage: portal token revoke ID/);
          assert.equal(noId.code, 2);
          assert.match(noId.stderr, /^portal: the token ID is required/);
          assert.equal(noUser.code, 1);
          assert.equal(noUser.stderr, 'Cannot list tokens: no user "nobody@example.org"\n');
          assert.equal(noEmail.code, 2);
          assert.match(noEmail.stderr, /^portal: --email is required/);
          assert.equal(noTokens.code, 0, noTokens.stderr);
          assert.match(noTokens.stdout, /^No tokens for bob@example\.org/);
          for (const result of [again, missing, malformed, noId, noUser, noEmail]) {
            assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
          }
        },
      );

      await t.step(
        "token create refuses a bad --expires-in-days with exit 2, creating nothing",
        async () => {
          const before = await countTokens(db);
          const results = await Promise.all(
            ["0", "-1", "1.5", "abc", "3651", ""].map((days) =>
              runCli(
                ["token", "create", "--email", "ada@example.org", `--expires-in-days=${days}`],
                {
                  env,
                },
              )
            ),
          );
          for (const result of results) {
            assert.equal(result.code, 2, result.stderr);
            assert.equal(result.stdout, "");
            assert.match(
              result.stderr,
              /^portal: --expires-in-days: expected a whole number of days from 1 to 3650, got /,
            );
          }
          assert.equal(await countTokens(db), before);
        },
      );

      await t.step("a name sent through the API cannot break the table", async () => {
        const other = await createApiToken({ db }, { email: "ada@example.org" });
        const created = await fetch(`${server.url}/api/v1/tokens`, {
          method: "POST",
          headers: { ...bearer(other.token), "content-type": "application/json" },
          body: JSON.stringify({ name: "two\nlines\there" }),
        });
        assert.equal(created.status, 201);
        await created.body?.cancel();
        const result = await runCli(["token", "list", "--email", "ada@example.org"], { env });
        assert.equal(result.code, 0, result.stderr);
        const rows = tableRows(result.stdout);
        assert.equal(rows.length, 4, result.stdout);
        assert.equal(rows[3]![1], "two\uFFFDlines\uFFFDhere");
      });
    } finally {
      await server.stop();
    }
  });
});

Deno.test("GET/DELETE /api/v1/tokens: own tokens only, 404 for another user's and unknown ids", async (t) => {
  await withUsers("tokens_api", async (db) => {
    const app = createApp(testDeps(db));
    const first = await createApiToken({ db }, { email: "ada@example.org", name: "laptop" });
    const second = await createApiToken({ db }, { email: "ada@example.org", name: "ci" });
    const bobs = await createApiToken({ db }, { email: "bob@example.org", name: "bob" });
    const list = (token: string) => app.request("/api/v1/tokens", { headers: bearer(token) });
    const revoke = (token: string, id: string) =>
      app.request(`/api/v1/tokens/${id}`, { method: "DELETE", headers: bearer(token) });

    await t.step("GET lists the caller's tokens, never a secret or a hash", async () => {
      const response = await list(first.token);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      const text = await response.text();
      for (const created of [first, second]) {
        assert.ok(!text.includes(created.token), "no token in the answer");
        assert.ok(!text.includes(sha256Hex(created.token)), "no hash in the answer");
      }
      const tokens = JSON.parse(text).tokens as Json[];
      assert.deepEqual(tokens.map((token) => token.id), [first.id, second.id]);
      assert.deepEqual(Object.keys(tokens[1]!).sort(), [
        "created_at",
        "expires_at",
        "id",
        "last_used_at",
        "name",
        "prefix",
        "revoked_at",
        "status",
      ]);
      assert.deepEqual(
        { ...tokens[1], created_at: typeof tokens[1]!.created_at },
        {
          id: second.id,
          name: "ci",
          prefix: second.token.slice(0, 10),
          status: "active",
          created_at: "string",
          last_used_at: null,
          expires_at: null,
          revoked_at: null,
        },
      );
      assert.notEqual(tokens[0]!.last_used_at, null, "the token that asked was just used");
    });

    await t.step("another user sees only their own", async () => {
      const body = await (await list(bobs.token)).json();
      assert.deepEqual(body.tokens.map((token: Json) => token.id), [bobs.id]);
    });

    await t.step("another user's token: 404, and it still works", async () => {
      const error = await assertError(await revoke(bobs.token, second.id), 404, "not_found");
      assert.deepEqual(error, { code: "not_found", message: `Cannot find token "${second.id}"` });
      assert.equal((await list(second.token)).status, 200);
    });

    await t.step("unknown and malformed ids: 404", async () => {
      for (const id of [crypto.randomUUID(), "not-a-uuid", "1", "x".repeat(300), "%00"]) {
        await assertError(await revoke(first.token, id), 404, "not_found");
      }
    });

    await t.step("the owner revokes: 204 with no body; the token is refused after", async () => {
      const response = await revoke(first.token, second.id);
      assert.equal(response.status, 204);
      assert.equal(await response.text(), "");
      await assertError(await list(second.token), 401, "invalid_token");
      const tokens = (await (await list(first.token)).json()).tokens as Json[];
      const revoked = tokens.find((token) => token.id === second.id)!;
      assert.equal(revoked.status, "revoked");
      assert.ok(Math.abs(Date.parse(String(revoked.revoked_at)) - Date.now()) < 60_000);
    });

    await t.step("revoking it again: 409", async () => {
      const error = await assertError(await revoke(first.token, second.id), 409, "conflict");
      assert.equal(error.message, `Cannot revoke token "${second.id}": it is revoked already`);
    });

    await t.step("a token can revoke itself", async () => {
      assert.equal((await revoke(first.token, first.id)).status, 204);
      await assertError(await list(first.token), 401, "invalid_token");
    });

    await t.step("revokeApiToken() with an owner leaves others' tokens alone", async () => {
      const ada = await createApiToken({ db }, { email: "ada@example.org" });
      assert.equal(await revokeApiToken({ db }, bobs.id, { ownerId: ada.user.id }), false);
      assert.equal(await revokeApiToken({ db }, "not-a-uuid"), false);
      assert.equal(await revokeApiToken({ db }, bobs.id, { ownerId: bobs.user.id }), true);
    });
  });
});

Deno.test("an expired token is refused exactly like a revoked one", async (t) => {
  await withUsers("tokens_expiry", async (db) => {
    let offsetMs = 0;
    const deps = { ...testDeps(db), clock: { now: () => new Date(Date.now() + offsetMs) } };
    const app = createApp(deps);
    const admin = await createApiToken({ db }, { email: "ada@example.org" });
    const create = (body: unknown) =>
      app.request("/api/v1/tokens", {
        method: "POST",
        headers: { ...bearer(admin.token), "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const me = (token: string) => app.request("/api/v1/me", { headers: bearer(token) });

    await t.step("POST with expires_in_days answers its expires_at", async () => {
      const response = await create({ name: "short", expires_in_days: 1 });
      assert.equal(response.status, 201);
      const body = await response.json();
      assert.match(body.token, /^ptk_/);
      assert.ok(Math.abs(Date.parse(body.expires_at) - (Date.now() + 86_400_000)) < 60_000);
      assert.equal((await me(body.token)).status, 200);

      const revoked = await createApiToken({ db }, { email: "ada@example.org" });
      await revokeApiToken({ db }, revoked.id);
      const refusedRevoked = await me(revoked.token);

      await db.sql`
        UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = ${body.id}`;
      const refusedExpired = await me(body.token);
      assert.equal(
        refusedExpired.headers.get("www-authenticate"),
        refusedRevoked.headers.get("www-authenticate"),
      );
      assert.deepEqual(
        await assertError(refusedExpired, 401, "invalid_token"),
        await assertError(refusedRevoked, 401, "invalid_token"),
      );

      const tokens = (await (await app.request("/api/v1/tokens", { headers: bearer(admin.token) }))
        .json()).tokens as Json[];
      assert.equal(tokens.find((token) => token.id === body.id)?.status, "expired");
    });

    await t.step("without expires_in_days (or with null) the token does not expire", async () => {
      for (const body of [{}, { expires_in_days: null }]) {
        const response = await create(body);
        assert.equal(response.status, 201);
        assert.equal((await response.json()).expires_at, null);
      }
    });

    await t.step(
      "the clock decides: a token is refused once the clock passes its expiry",
      async () => {
        const created = await createApiToken({ db }, {
          email: "ada@example.org",
          expiresInDays: 2,
        });
        offsetMs = 2 * 86_400_000 - 60_000;
        assert.equal((await me(created.token)).status, 200);
        offsetMs = 2 * 86_400_000 + 60_000;
        await assertError(await me(created.token), 401, "invalid_token");
        offsetMs = 0;
      },
    );

    await t.step("a bad expires_in_days is a 400 and creates nothing", async () => {
      const before = await countTokens(db);
      for (const days of [0, -1, 1.5, 3651, 1e308, "30", true, [], {}]) {
        const error = await assertError(await create({ expires_in_days: days }), 400, "invalid");
        assert.match(
          String(error.message),
          /^Cannot create token: "expires_in_days" expected a whole number of days from 1 to 3650, got /,
        );
      }
      assert.equal(await countTokens(db), before);
      await assert.rejects(
        () => createApiToken({ db }, { email: "ada@example.org", expiresInDays: 0 }),
        RangeError,
      );
    });
  });
});

Deno.test("resolveApiToken() writes last_used_at at most once a minute", async (t) => {
  await withUsers("tokens_last_used", async (db) => {
    let offsetMs = 0;
    const deps = { ...testDeps(db), clock: { now: () => new Date(Date.now() + offsetMs) } };
    const app = createApp(deps);
    const created = await createApiToken({ db }, { email: "ada@example.org" });
    const use = async () => {
      const response = await app.request("/api/v1/me", { headers: bearer(created.token) });
      assert.equal(response.status, 200);
      await response.body?.cancel();
    };

    let first: Date | null = null;
    await t.step("the first use records the time", async () => {
      assert.equal(await lastUsedAt(db, created.id), null);
      await use();
      first = await lastUsedAt(db, created.id);
      assert.ok(first !== null && Math.abs(first.getTime() - Date.now()) < 60_000);
    });

    await t.step("uses within the minute leave it alone", async () => {
      await use();
      await use();
      assert.deepEqual(await lastUsedAt(db, created.id), first);
      offsetMs = 50_000;
      await use();
      assert.deepEqual(await lastUsedAt(db, created.id), first);
    });

    await t.step("a use more than a minute later writes it again", async () => {
      offsetMs = 0;
      await db.sql`
        UPDATE api_tokens SET last_used_at = last_used_at - interval '2 minutes'
        WHERE id = ${created.id}`;
      const setBack = await lastUsedAt(db, created.id);
      await use();
      const now = await lastUsedAt(db, created.id);
      assert.ok(now !== null && setBack !== null && now.getTime() > setBack.getTime());
      assert.ok(Math.abs(now.getTime() - Date.now()) < 60_000);
    });

    await t.step("as the clock moves past the minute", async () => {
      const before = (await lastUsedAt(db, created.id))!;
      offsetMs = 61_000;
      await use();
      const after = (await lastUsedAt(db, created.id))!;
      assert.ok(after.getTime() - before.getTime() >= 60_000, `${before} → ${after}`);
    });
  });
});

Deno.test("migration 0003 applies to a database that already has 0004", async () => {
  const testDb = await createTestDatabase("tokens_migration");
  try {
    // Two connections: migrate() holds its advisory lock on one and runs the migrations on another.
    const db = testDb.open({ max: 2 });
    await migrate(db, MIGRATIONS.filter((m) => m.version !== "0003"));
    const result = await migrate(db);
    assert.deepEqual(result, {
      applied: ["0003_token_expiry.sql"],
      alreadyApplied: MIGRATIONS.length - 1,
    });
    const [column] = await db.sql<{ type: string }[]>`
      SELECT data_type AS type FROM information_schema.columns
      WHERE table_name = 'api_tokens' AND column_name = 'expires_at'`;
    assert.equal(column?.type, "timestamp with time zone");
  } finally {
    await testDb.drop();
  }
});

async function countTokens(db: Database): Promise<number> {
  const [row] = await db.sql<{ count: number }[]>`SELECT count(*)::int AS count FROM api_tokens`;
  return row?.count ?? 0;
}

Deno.test("a token made with an expiring token ends no later than it: a leaked token cannot mint a lasting one", async () => {
  await withUsers("tokens_not_after", async (db) => {
    const app = createApp(testDeps(db));
    const parent = await createApiToken({ db }, { email: "ada@example.org", expiresInDays: 2 });
    const mint = async (body: Record<string, unknown>) => {
      const response = await app.request("/api/v1/tokens", {
        method: "POST",
        headers: { ...bearer(parent.token), "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(response.status, 201);
      return (await response.json() as { expires_at: string | null }).expires_at;
    };
    const parentEnds = parent.expiresAt!.toISOString();
    assert.equal(await mint({ name: "no expiry asked" }), parentEnds, "capped at the parent's end");
    assert.equal(await mint({ expires_in_days: 30 }), parentEnds, "a longer one is cut");
    const shorter = await mint({ expires_in_days: 1 });
    assert.ok(shorter !== null && new Date(shorter) < parent.expiresAt!, "a shorter one is kept");

    const lasting = await createApiToken({ db }, { email: "ada@example.org" });
    const response = await app.request("/api/v1/tokens", {
      method: "POST",
      headers: { ...bearer(lasting.token), "content-type": "application/json" },
      body: "{}",
    });
    assert.equal((await response.json() as { expires_at: unknown }).expires_at, null);
  });
});
