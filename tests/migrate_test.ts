import assert from "node:assert/strict";
import { checksum, migrate, MigrationChecksumError, migrationsApplied } from "../src/db/migrate.ts";
import { MIGRATIONS } from "../src/db/migrations.ts";
import { createTestDatabase } from "./helpers/db.ts";
import { runCli } from "./helpers/cli.ts";

interface AppliedRow {
  version: string;
  name: string;
  checksum: string;
}

Deno.test("MIGRATIONS lists exactly the files in migrations/, in order", async () => {
  const files: string[] = [];
  for await (const entry of Deno.readDir(new URL("../migrations/", import.meta.url))) {
    if (entry.isFile && entry.name.endsWith(".sql")) files.push(entry.name);
  }
  files.sort();
  assert.deepEqual(
    MIGRATIONS.map((m) => m.name),
    files,
    "add the new file to src/db/migrations.ts",
  );
  for (const migration of MIGRATIONS) {
    assert.match(migration.name, /^\d{4}_[a-z0-9_]+\.sql$/);
    assert.equal(migration.version, migration.name.slice(0, 4));
    const text = await Deno.readTextFile(
      new URL(`../migrations/${migration.name}`, import.meta.url),
    );
    assert.equal(migration.sql, text, `${migration.name} is embedded as written`);
  }
  assert.equal(new Set(MIGRATIONS.map((m) => m.version)).size, MIGRATIONS.length);
});

Deno.test("migrate() applies a fresh database once, records checksums, and re-runs as a no-op", async (t) => {
  const testDb = await createTestDatabase("migrate_fresh");
  const db = testDb.open();
  try {
    await t.step("a fresh database is not ready", async () => {
      assert.equal(await migrationsApplied(db), false);
    });

    await t.step("the first run applies every migration", async () => {
      const result = await migrate(db);
      assert.deepEqual(result, { applied: MIGRATIONS.map((m) => m.name), alreadyApplied: 0 });
      const rows = await db.sql<AppliedRow[]>`
        SELECT version, name, checksum FROM schema_migrations ORDER BY version`;
      assert.deepEqual(
        rows.map((r) => ({ ...r })),
        MIGRATIONS.map((m) => ({ version: m.version, name: m.name, checksum: checksum(m.sql) })),
      );
      assert.equal(await migrationsApplied(db), true);
      // The schema is really there: the contract's tables exist.
      const tables = await db.sql<{ name: string }[]>`
        SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = 'public' ORDER BY table_name`;
      const names = tables.map((r) => r.name);
      for (
        const table of [
          "users",
          "sessions",
          "api_tokens",
          "upload_batch",
          "upload_file",
          "upload_session",
          "upload_part",
          "outbox_event",
          "webhook_endpoint",
          "webhook_delivery",
          "webhook_attempt",
        ]
      ) {
        assert.ok(names.includes(table), `table ${table} exists`);
      }
    });

    await t.step("a second run applies nothing and changes nothing", async () => {
      const before = await db.sql<{ version: string; applied_at: Date }[]>`
        SELECT version, applied_at FROM schema_migrations ORDER BY version`;
      const result = await migrate(db);
      assert.deepEqual(result, { applied: [], alreadyApplied: MIGRATIONS.length });
      const after = await db.sql<{ version: string; applied_at: Date }[]>`
        SELECT version, applied_at FROM schema_migrations ORDER BY version`;
      assert.deepEqual(after.map((r) => ({ ...r })), before.map((r) => ({ ...r })));
    });

    await t.step("a new migration is applied on top, alone", async () => {
      const extra = {
        version: "9001",
        name: "9001_probe.sql",
        sql: "CREATE TABLE migrate_probe (id int PRIMARY KEY);",
      };
      const result = await migrate(db, [...MIGRATIONS, extra]);
      assert.deepEqual(result, { applied: ["9001_probe.sql"], alreadyApplied: MIGRATIONS.length });
      assert.equal(await migrationsApplied(db), true);
      assert.equal(
        await migrationsApplied(db, [...MIGRATIONS, { ...extra, version: "9002" }]),
        false,
      );
    });

    await t.step("a failing migration rolls back entirely and is not recorded", async () => {
      const broken = {
        version: "9003",
        name: "9003_broken.sql",
        sql: "CREATE TABLE half_done (id int); SELECT no_such_function();",
      };
      await assert.rejects(() => migrate(db, [...MIGRATIONS, broken]), /no_such_function/);
      const [row] = await db.sql<{ recorded: number; table: string | null }[]>`
        SELECT (SELECT count(*)::int FROM schema_migrations WHERE version = '9003') AS recorded,
               to_regclass('half_done')::text AS table`;
      assert.deepEqual({ ...row }, { recorded: 0, table: null });
    });

    await t.step(
      "an applied migration whose text changed is refused with a clear message",
      async () => {
        const first = MIGRATIONS[0]!;
        const edited = [
          { ...first, sql: `${first.sql}\n-- an innocent-looking edit\n` },
          ...MIGRATIONS.slice(1),
        ];
        const error = await migrate(db, edited).then(
          () => assert.fail("migrate() accepted an edited migration"),
          (e: unknown) => e,
        );
        assert.ok(error instanceof MigrationChecksumError, String(error));
        assert.match(
          error.message,
          new RegExp(`migration "${first.name}" was edited after it was applied`),
        );
        assert.match(error.message, /add a new migration instead of editing an applied one/);
        assert.ok(error.message.includes(checksum(first.sql).slice(0, 12)));
        assert.ok(error.message.includes(checksum(edited[0]!.sql).slice(0, 12)));
        // Nothing was touched: the recorded checksum is still the original one.
        const [row] = await db.sql<{ checksum: string }[]>`
        SELECT checksum FROM schema_migrations WHERE version = ${first.version}`;
        assert.equal(row?.checksum, checksum(first.sql));
      },
    );
  } finally {
    await testDb.drop();
  }
});

Deno.test("portal migrate run by two processes at once applies each migration once", async () => {
  const testDb = await createTestDatabase("migrate_concurrent");
  try {
    const env = { DATABASE_URL: testDb.url };
    const results = await Promise.all([
      runCli(["migrate"], { env }),
      runCli(["migrate"], { env }),
    ]);
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    const outputs = results.map((r) => r.stdout.trim()).sort();
    assert.deepEqual(outputs, [
      `Applied ${MIGRATIONS.length} migration(s): ${MIGRATIONS.map((m) => m.name).join(", ")}`,
      `Nothing to apply: ${MIGRATIONS.length} migration(s) already applied`,
    ]);
    const db = testDb.open({ max: 1 });
    const rows = await db.sql<{ version: string; count: number }[]>`
      SELECT version, count(*)::int AS count FROM schema_migrations GROUP BY version ORDER BY version`;
    assert.deepEqual(
      rows.map((r) => ({ ...r })),
      MIGRATIONS.map((m) => ({ version: m.version, count: 1 })),
    );
    assert.equal(await migrationsApplied(db), true);
  } finally {
    await testDb.drop();
  }
});
