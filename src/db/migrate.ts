/**
 * Applies pending migrations in order, each in its own transaction, recorded in
 * `schema_migrations` with a SHA-256 checksum. An advisory lock serializes concurrent runners
 * (several replicas starting at once): the second waits, then finds nothing left to do.
 */
import { createHash } from "node:crypto";
import { type Database, lockKey } from "./db.ts";
import { type Migration, MIGRATIONS } from "./migrations.ts";

/** Raised when an applied migration's file changed since it was applied. */
export class MigrationChecksumError extends Error {}

/** What `migrate` did. */
export interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
}

/** SHA-256 hex of a migration's text. */
export function checksum(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Applies every pending migration.
 *
 * @example
 * const { applied } = await migrate(db);
 */
export async function migrate(
  db: Database,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrateResult> {
  return await db.withLock(lockKey("portal:migrations"), async () => {
    await db.sql`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version text PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`;
    const rows = await db.sql<{ version: string; name: string; checksum: string }[]>`
      SELECT version, name, checksum FROM schema_migrations ORDER BY version`;
    const known = new Map(rows.map((row) => [row.version, row]));
    const applied: string[] = [];
    for (const migration of migrations) {
      const sum = checksum(migration.sql);
      const row = known.get(migration.version);
      if (row) {
        if (row.checksum !== sum) {
          throw new MigrationChecksumError(
            `Cannot start: migration "${migration.name}" was edited after it was applied (checksum ${
              row.checksum.slice(0, 12)
            } in the database, ${
              sum.slice(0, 12)
            } in this build); add a new migration instead of editing an applied one`,
          );
        }
        continue;
      }
      await db.sql.begin(async (tx) => {
        await tx.unsafe(migration.sql);
        await tx`
          INSERT INTO schema_migrations (version, name, checksum)
          VALUES (${migration.version}, ${migration.name}, ${sum})`;
      });
      applied.push(migration.name);
    }
    return { applied, alreadyApplied: migrations.length - applied.length };
  });
}

/** True when every known migration is recorded (used by `/readyz`). */
export async function migrationsApplied(
  db: Database,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<boolean> {
  const [table] = await db.sql<{ exists: boolean }[]>`
    SELECT to_regclass('schema_migrations') IS NOT NULL AS exists`;
  if (!table?.exists) return false;
  const rows = await db.sql<{ version: string }[]>`SELECT version FROM schema_migrations`;
  const have = new Set(rows.map((row) => row.version));
  return migrations.every((migration) => have.has(migration.version));
}
