/**
 * Test databases: one fresh database per test file on a real Postgres, dropped afterwards.
 * `TEST_DATABASE_URL` names the server (default postgres://postgres@127.0.0.1:5432/postgres).
 * `tests/run.ts` makes sure a server answers before any test starts (starting Debian's cluster
 * when needed); `ensurePostgres` repeats that check so a single file also runs alone.
 */
import postgres from "postgres";
import { createServerDatabase, type Database } from "../../src/db/db.ts";
import { migrate } from "../../src/db/migrate.ts";

/** The server tests use. */
export const TEST_DATABASE_URL = Deno.env.get("TEST_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

/** Returns null when a server answers, else the reason it does not. */
async function probe(url: string): Promise<string | null> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`SELECT 1`;
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/**
 * Makes sure a Postgres server answers at TEST_DATABASE_URL: starts Debian's cluster with
 * `pg_ctlcluster` when none does, else throws a message naming what to install.
 */
export async function ensurePostgres(url = TEST_DATABASE_URL): Promise<void> {
  const first = await probe(url);
  if (first === null) return;
  const versions = await listClusters();
  if (versions === null) {
    throw new Error(
      `Cannot reach Postgres at ${redact(url)} (${first}) and pg_ctlcluster is not installed: ` +
        `install PostgreSQL (Debian: apt-get install postgresql) or set TEST_DATABASE_URL`,
    );
  }
  for (const version of versions) {
    const start = new Deno.Command("pg_ctlcluster", {
      args: ["--skip-systemctl-redirect", version, "main", "start"],
      stdout: "inherit",
      stderr: "inherit",
    });
    await start.output();
  }
  for (let i = 0; i < 30; i++) {
    if (await probe(url) === null) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(
    `Cannot reach Postgres at ${redact(url)} even after starting the Debian cluster ` +
      `(${first}): check "pg_lsclusters" and the server log`,
  );
}

async function listClusters(): Promise<string[] | null> {
  try {
    const versions = [...Deno.readDirSync("/etc/postgresql")].map((entry) => entry.name).sort();
    await new Deno.Command("pg_ctlcluster", { args: ["--help"], stdout: "null", stderr: "null" })
      .output();
    return versions;
  } catch {
    return null;
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@/]*@/, "//$1:***@");
}

/** A fresh database for one test file. */
export interface TestDatabase {
  /** Connection URL of the fresh database. */
  url: string;
  name: string;
  /** Opens a pool on it (close it, or let `drop` close the ones it opened). */
  open(options?: { max?: number }): Database;
  /** Closes the pools opened through `open` and drops the database. */
  drop(): Promise<void>;
}

/**
 * Creates an empty database named after the test file, unique per run.
 *
 * @example
 * const testDb = await createTestDatabase("accounts");
 * const db = testDb.open();
 * await migrate(db);
 */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  await ensurePostgres();
  const name = `portal_test_${label.replace(/[^a-z0-9]+/gi, "_").toLowerCase()}_${
    crypto.randomUUID().slice(0, 8)
  }`;
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  const opened: Database[] = [];
  return {
    url: url.toString(),
    name,
    open(options = {}) {
      const db = createServerDatabase(url.toString(), { max: options.max ?? 5 });
      opened.push(db);
      return db;
    },
    async drop() {
      for (const db of opened) await db.close().catch(() => {});
      const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** A fresh, migrated database with one open pool: the common case. */
export async function createMigratedDatabase(
  label: string,
): Promise<{ testDb: TestDatabase; db: Database }> {
  const testDb = await createTestDatabase(label);
  const db = testDb.open();
  await migrate(db);
  return { testDb, db };
}
