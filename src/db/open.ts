/** Opens the configured database: a Postgres server, or the embedded PostgreSQL server. */
import type { Config } from "../config/config.ts";
import { createServerDatabase, type Database } from "./db.ts";
import { type EmbeddedOptions, openEmbeddedDatabase } from "./embedded/embedded_database.ts";

/** Opens the database named by `config` (embedded when DATABASE_URL is unset). */
export async function openDatabase(
  config: Readonly<Config>,
  options: EmbeddedOptions = {},
): Promise<Database> {
  if (config.databaseUrl !== null) {
    return createServerDatabase(config.databaseUrl, { max: config.dbPoolSize });
  }
  return await openEmbeddedDatabase(config.dataDir, { max: config.dbPoolSize, ...options });
}
