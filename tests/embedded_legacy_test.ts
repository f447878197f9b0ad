/**
 * A data dir written by the PGlite-era Portal: refused with exit code 2 and a message, its
 * files untouched; `portal embedded upgrade` carries every row over to the embedded server and
 * keeps the old folder, byte for byte, beside it.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join, relative } from "node:path";
import { PGlite } from "npm:@electric-sql/pglite@0.5.14";
import { MIGRATIONS } from "../src/db/migrations.ts";
import { checksum } from "../src/db/migrate.ts";
import { hashPassword } from "../src/auth/passwords.ts";
import { folderClosedTo } from "../src/db/embedded/cluster.ts";
import { runCli } from "./helpers/cli.ts";
import { login } from "./helpers/app.ts";
import {
  embeddedDataDir,
  postmasterPid,
  serveEmbedded,
  stopEmbeddedServer,
  waitForServerStopped,
} from "./helpers/embedded.ts";

/** Writes what the PGlite-era `portal serve` left: migrated tables and a few rows. */
async function writePgliteDataDir(dataDir: string): Promise<void> {
  const pg = await PGlite.create(join(dataDir, "pg"));
  try {
    await pg.exec(`CREATE TABLE schema_migrations (
      version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const migration of MIGRATIONS) {
      await pg.exec(migration.sql);
      await pg.query(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        [migration.version, migration.name, checksum(migration.sql)],
      );
    }
    const hash = await hashPassword("old-password-1234");
    await pg.query(
      `INSERT INTO users (id, email, password_hash, is_admin) VALUES
        ('01900000-0000-7000-8000-000000000001', 'admin@localhost', $1, true),
        ('01900000-0000-7000-8000-000000000002', 'member@example.com', $1, false)`,
      [hash],
    );
    await pg.query(
      `INSERT INTO login_attempt (email, address, succeeded) VALUES
        ('admin@localhost', '127.0.0.1', true), ('admin@localhost', '127.0.0.1', false)`,
    );
  } finally {
    await pg.close();
  }
}

/** Path, size and SHA-256 of every file under `root`. */
async function treeDigest(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else {
        const bytes = await Deno.readFile(path);
        out.push(
          `${relative(root, path)} ${bytes.length} ${
            createHash("sha256").update(bytes).digest("hex")
          }`,
        );
      }
    }
  }
  await walk(root);
  return out.sort();
}

Deno.test("a PGlite-era data dir is refused untouched, and portal embedded upgrade carries it over", async (t) => {
  const dataDir = await embeddedDataDir("embedded-legacy");
  const env = { PORTAL_DATA_DIR: dataDir };
  try {
    await writePgliteDataDir(dataDir);
    const before = await treeDigest(join(dataDir, "pg"));

    await t.step("serve and CLI commands exit 2 with the way out, touching nothing", async () => {
      for (const args of [["serve"], ["user", "list"], ["migrate"]]) {
        const result = await runCli(args, { env: { ...env, PORTAL_PORT: "0" } });
        assert.equal(result.code, 2, `portal ${args.join(" ")}: ${result.stdout}${result.stderr}`);
        assert.match(
          result.stderr,
          /was written by an earlier Portal \(PGlite\); it is left untouched/,
        );
        assert.match(result.stderr, /portal embedded upgrade/);
        assert.doesNotMatch(result.stdout, /Portal is running|password/);
      }
      assert.deepEqual(await treeDigest(join(dataDir, "pg")), before, "not one byte changed");
      assert.equal(await postmasterPid(dataDir), null);
    });

    await t.step(
      "portal embedded upgrade copies every row and keeps the old folder as it was",
      async () => {
        const result = await runCli(["embedded", "upgrade"], { env, timeoutMs: 60_000 });
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /users: 2 row\(s\)/);
        assert.match(result.stdout, /login_attempt: 2 row\(s\)/);
        assert.match(result.stdout, /the PGlite folder is kept, untouched, at .*pg-pglite/);
        assert.deepEqual(await treeDigest(join(dataDir, "pg-pglite")), before);
        assert.equal(await postmasterPid(dataDir), null, "the command stops the server it started");
      },
    );

    await t.step(
      "the data now lives in the embedded server: accounts, and identity sequences go on",
      async () => {
        const list = await runCli(["user", "list"], { env });
        assert.equal(list.code, 0, list.stderr);
        assert.match(
          list.stdout,
          /01900000-0000-7000-8000-000000000001\tadmin@localhost\tyes\tyes/,
        );
        assert.match(list.stdout, /member@example\.com\tno\tyes/);
        // The old password hash signs in, and the new login attempt takes the next identity
        // value (a duplicate key would answer 500).
        const serve = await serveEmbedded(dataDir);
        try {
          await login(serve.base, "member@example.com", "old-password-1234");
        } finally {
          assert.equal((await serve.portal.stop("SIGTERM")).code, 0);
        }
        await waitForServerStopped(dataDir);
      },
    );

    await t.step("a second upgrade says there is nothing to do", async () => {
      const again = await runCli(["embedded", "upgrade"], { env });
      assert.equal(again.code, 2);
      assert.match(again.stderr, /already holds the embedded PostgreSQL server/);
    });
  } finally {
    await stopEmbeddedServer(dataDir);
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("as root, a data dir the postgres account cannot reach is refused with exit 2 naming the folder", async () => {
  const closed = await Deno.makeTempDir({ prefix: "portal-closed-" }); // mode 0700
  try {
    const dataDir = join(closed, "inner", "data");
    const stranger = { name: "stranger", uid: 54321, gid: 54321 };
    assert.equal(await folderClosedTo(dataDir, stranger), closed);
    await Deno.chmod(closed, 0o701);
    assert.equal(await folderClosedTo(dataDir, stranger), null);
    await Deno.chmod(closed, 0o700);

    if (Deno.uid() !== 0) {
      console.log("  (CLI part runs only as root: the server account is postgres only then)");
      return;
    }
    const { code, stderr } = await runCli(["migrate"], { env: { PORTAL_DATA_DIR: dataDir } });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /runs as the "postgres" account, which cannot enter "[^"]+portal-closed-/);
    assert.match(stderr, /set PORTAL_DATA_DIR|DATABASE_URL/);
    // Refused before anything was made in the data dir.
    const made: string[] = [];
    for await (const entry of Deno.readDir(dataDir)) made.push(entry.name);
    assert.deepEqual(made, []);
  } finally {
    await Deno.remove(closed, { recursive: true });
  }
});
