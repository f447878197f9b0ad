/** Opens the configured database: a Postgres server, or the embedded PostgreSQL server. */
import type { Config } from "../config/config.ts";
import { createServerDatabase, type Database } from "./db.ts";
import { type EmbeddedOptions, openEmbeddedDatabase } from "./embedded/embedded_database.ts";
import { embeddedUnavailable, NoEmbeddedPostgresError } from "./embedded/postgres_binaries.ts";

/**
 * Opens the database named by `config` (embedded when DATABASE_URL is unset). Throws
 * `NoEmbeddedPostgresError` before touching the data dir when this program cannot run the
 * embedded server (the compiled binary, an unsupported platform).
 */
export async function openDatabase(
  config: Readonly<Config>,
  options: EmbeddedOptions = {},
): Promise<Database> {
  if (config.databaseUrl !== null) {
    return createServerDatabase(config.databaseUrl, { max: config.dbPoolSize });
  }
  const unavailable = embeddedUnavailable();
  if (unavailable !== null) throw new NoEmbeddedPostgresError(unavailable);
  return await openEmbeddedDatabase(config.dataDir, { max: config.dbPoolSize, ...options });
}
