/**
 * The signing key: PORTAL_SECRET_KEY when set, else generated once into `portal_setting` so
 * every replica (every pool on the database) signs and verifies with the same key.
 */
import assert from "node:assert/strict";
import { loadSecretKey } from "../src/auth/secret_key.ts";
import type { Database } from "../src/db/db.ts";
import { migrate } from "../src/db/migrate.ts";
import { freePort } from "./helpers/app.ts";
import { startPortal, waitForStatus } from "./helpers/cli.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/db.ts";

const CONFIGURED = "configured-secret-key-0123456789abcdefghij";

/** A migrated database and two separate pools on it, like two replicas; dropped afterwards. */
async function withTwoReplicas(
  label: string,
  fn: (ctx: { testDb: TestDatabase; first: Database; second: Database }) => Promise<void>,
): Promise<void> {
  const testDb = await createTestDatabase(label);
  try {
    const first = testDb.open({ max: 4 });
    const second = testDb.open({ max: 4 });
    await migrate(first);
    await fn({ testDb, first, second });
  } finally {
    await testDb.drop();
  }
}

async function storedKeys(db: Database): Promise<string[]> {
  const rows = await db.sql<{ value: string }[]>`
    SELECT value FROM portal_setting WHERE key = 'secret_key'`;
  return rows.map((row) => row.value);
}

Deno.test("loadSecretKey() generates one key that two database handles share", async () => {
  await withTwoReplicas("secret_key_shared", async ({ first, second }) => {
    assert.deepEqual(await storedKeys(first), [], "a fresh database has no key");
    const key = await loadSecretKey(first, null);
    // 32 random bytes, base64url: long enough for PORTAL_SECRET_KEY's own minimum of 32.
    assert.match(key, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(await loadSecretKey(second, null), key, "the other replica reads the same key");
    assert.equal(await loadSecretKey(first, null), key, "a second call returns it again");
    assert.deepEqual(await storedKeys(second), [key]);
  });
});

Deno.test("loadSecretKey() called concurrently on two handles stores and returns one key", async () => {
  await withTwoReplicas("secret_key_concurrent", async ({ first, second }) => {
    const keys = await Promise.all(
      Array.from({ length: 8 }, (_, i) => loadSecretKey(i % 2 === 0 ? first : second, null)),
    );
    assert.equal(new Set(keys).size, 1, "every caller got the same key");
    assert.deepEqual(await storedKeys(first), [keys[0]], "exactly one row was stored");
  });
});

Deno.test("loadSecretKey() returns a configured key without storing it", async () => {
  await withTwoReplicas("secret_key_configured", async ({ first, second }) => {
    assert.equal(await loadSecretKey(first, CONFIGURED), CONFIGURED);
    assert.deepEqual(await storedKeys(first), [], "the configured key is not written down");

    // Configured on one replica, generated on another: the configured one still wins there,
    // and the generated one is left as it was.
    const generated = await loadSecretKey(second, null);
    assert.notEqual(generated, CONFIGURED);
    assert.equal(await loadSecretKey(first, CONFIGURED), CONFIGURED);
    assert.deepEqual(await storedKeys(first), [generated]);
  });
});

Deno.test("portal serve never logs the generated or the configured key, and warns when none is configured", async (t) => {
  const testDb = await createTestDatabase("secret_key_logs");
  const dataDir = await Deno.makeTempDir({ prefix: "portal-secret-key-" });
  try {
    const run = async (env: Record<string, string>) => {
      const port = freePort();
      const portal = startPortal(["serve"], {
        env: {
          DATABASE_URL: testDb.url,
          PORTAL_DATA_DIR: dataDir,
          PORTAL_PORT: String(port),
          PORTAL_JOBS: "off",
          PORTAL_LOG_LEVEL: "debug",
          ...env,
        },
      });
      try {
        await waitForStatus(`http://127.0.0.1:${port}/readyz`);
        // A page that uses the key (the login form's CSRF token is signed with it).
        const page = await fetch(`http://127.0.0.1:${port}/login`);
        assert.equal(page.status, 200);
        await page.body?.cancel();
      } finally {
        const status = await portal.stop();
        assert.equal(status.code, 0, portal.stderrLines.join("\n"));
      }
      return [...portal.stdoutLines, ...portal.stderrLines].join("\n");
    };

    await t.step("generated: stored in the database, absent from the output", async () => {
      const output = await run({});
      const db = testDb.open({ max: 1 });
      const [key] = await storedKeys(db);
      assert.ok(key, "serve generated and stored a key");
      assert.ok(output.includes('"msg":"listening"'), "the debug log was captured");
      assert.equal(output.includes(key), false, "the generated key is not in the output");
      assert.match(
        output,
        /"warn".*PORTAL_SECRET_KEY is unset|PORTAL_SECRET_KEY is unset.*"warn"/,
        "serve warns",
      );
    });

    await t.step("configured: absent from the output", async () => {
      const output = await run({ PORTAL_SECRET_KEY: CONFIGURED });
      assert.ok(output.includes('"msg":"listening"'));
      assert.equal(output.includes(CONFIGURED), false, "the configured key is not in the output");
      assert.doesNotMatch(output, /PORTAL_SECRET_KEY is unset/, "no warning with a key");
    });
  } finally {
    await testDb.drop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
