/**
 * Test databases: one fresh database per test file on a real Postgres, dropped afterwards.
 * `TEST_DATABASE_URL` names the server (default postgres://postgres@127.0.0.1:5432/postgres).
 * When none answers there, `tests/run.ts` starts the embedded PostgreSQL server Portal's
 * default uses (`startHarnessServer`) and hands its URL to every test file in
 * TEST_DATABASE_URL, so a machine with only Node runs the suite.
 */
import postgres from "postgres";
import { createServerDatabase, type Database } from "../../src/db/db.ts";
import { migrate } from "../../src/db/migrate.ts";
import {
  type EmbeddedDatabase,
  openEmbeddedDatabase,
} from "../../src/db/embedded/embedded_database.ts";

/** The server tests use. */
export const TEST_DATABASE_URL = Deno.env.get("TEST_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";

/** Returns null when a server answers, else the reason it does not. */
export async function probe(url: string): Promise<string | null> {
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

/** Throws a message saying how to get a server when none answers at TEST_DATABASE_URL. */
export async function ensurePostgres(url = TEST_DATABASE_URL): Promise<void> {
  const problem = await probe(url);
  if (problem === null) return;
  throw new Error(
    `Cannot reach Postgres at ${redact(url)} (${problem}): run the tests with "deno task test", ` +
      `which starts an embedded server when none answers, or set TEST_DATABASE_URL`,
  );
}

/** The harness's own embedded server, for a run with no Postgres to use. */
export interface HarnessServer {
  /** Admin URL (database `postgres`) with the generated password. */
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts the embedded PostgreSQL server (the one Portal's default runs) in a temporary data
 * dir, for one test run.
 */
export async function startHarnessServer(): Promise<HarnessServer> {
  const dataDir = await Deno.makeTempDir({ prefix: "portal-test-pg-" });
  // Searchable by the "postgres" account the server runs as when the tests run as root.
  await Deno.chmod(dataDir, 0o755);
  let db: EmbeddedDatabase;
  try {
    // Test files create many pools at once: more than the default 100 connections.
    db = await openEmbeddedDatabase(dataDir, { max: 1, maxConnections: 400 });
  } catch (error) {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    throw error;
  }
  const url = new URL(db.url);
  url.pathname = "/postgres";
  return {
    url: url.toString(),
    async stop() {
      await db.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

export function redact(url: string): string {
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
