/** `portal embedded upgrade`: the PGlite-era data dir carried over to the embedded server. */
import type { Config } from "../config/config.ts";
import { upgradePgliteDataDir } from "../db/embedded/pglite_upgrade.ts";
import { parseArgs } from "./args.ts";
import { type CommandIo, UsageError } from "./cli_types.ts";

/** `portal embedded upgrade`: copies every table; the old folder is kept as `pg-pglite`. */
export async function embeddedUpgrade(io: CommandIo, config: Readonly<Config>): Promise<number> {
  parseArgs(io.args, {});
  if (config.databaseUrl !== null) {
    throw new UsageError("DATABASE_URL is set: the embedded database is not in use");
  }
  const result = await upgradePgliteDataDir(config.dataDir, {
    onTable: (name, rows) => io.stdout(`  ${name}: ${rows} row(s)`),
  });
  const total = result.tables.reduce((sum, table) => sum + table.rows, 0);
  io.stdout(
    `Upgraded ${config.dataDir}: ${total} row(s) in ${result.tables.length} table(s) now live in the embedded PostgreSQL server; the PGlite folder is kept, untouched, at ${result.keptAt}`,
  );
  return 0;
}
