/**
 * `portal embedded upgrade`: carries a data dir of the PGlite-era Portal over to the embedded
 * PostgreSQL server. PGlite reads a copy of the old folder (so the original stays byte for
 * byte as it was), the original is renamed to `pg-pglite`, a new server is created in `pg`,
 * migrated, and every row of every table is copied in, in one transaction.
 *
 * PGlite is loaded only here, by a computed specifier, so it is never part of the start path.
 */
import { join } from "node:path";
import type { Queryable } from "../db.ts";
import { migrate } from "../migrate.ts";
import { openEmbeddedDatabase } from "./embedded_database.ts";
import { DataDirError, dataDirKind } from "./legacy_data_dir.ts";

/** What was copied. */
export interface UpgradeResult {
  /** Where the old folder now is. */
  keptAt: string;
  tables: { name: string; rows: number }[];
}

/** The part of PGlite's API used here. */
interface PgliteLike {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  close(): Promise<void>;
}

const BATCH_ROWS = 500;

/**
 * Upgrades `dataDir` in place; throws `DataDirError` when it holds no PGlite-era database.
 *
 * @example
 * const { tables } = await upgradePgliteDataDir("./data");
 */
export async function upgradePgliteDataDir(
  dataDir: string,
  options: { onTable?: (name: string, rows: number) => void } = {},
): Promise<UpgradeResult> {
  const kind = await dataDirKind(dataDir);
  if (kind !== "pglite") {
    throw new DataDirError(
      `Cannot upgrade "${join(dataDir, "pg")}": ${
        kind === "portal"
          ? "it already holds the embedded PostgreSQL server"
          : kind === "empty"
          ? "there is no database there"
          : "it holds a PostgreSQL data directory Portal did not create"
      }`,
    );
  }
  const pgDir = join(dataDir, "pg");
  await refuseWhileInUse(dataDir);
  const readCopy = await Deno.makeTempDir({ prefix: "portal-pglite-read-" });
  const tables: { name: string; columns: string[]; rows: string[] }[] = [];
  try {
    await copyDir(pgDir, readCopy);
    // A computed specifier keeps PGlite out of the module graph of every other command.
    const specifier = "npm:@electric-sql/pglite@0.5.14";
    const { PGlite } = await import(specifier) as {
      PGlite: { create(dir: string): Promise<PgliteLike> };
    };
    const old = await PGlite.create(readCopy);
    try {
      const names = await old.query<{ name: string }>(
        `SELECT table_name AS name FROM information_schema.tables
          WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'
          ORDER BY table_name`,
      );
      for (const { name } of names.rows) {
        const columns = await old.query<{ name: string }>(
          `SELECT column_name AS name FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
          [name],
        );
        const rows = await old.query<{ row: string }>(
          `SELECT row_to_json(t)::text AS row FROM public."${name.replaceAll('"', '""')}" t`,
        );
        tables.push({
          name,
          columns: columns.rows.map((c) => c.name),
          rows: rows.rows.map((r) => r.row),
        });
      }
    } finally {
      await old.close();
    }
  } finally {
    await Deno.remove(readCopy, { recursive: true }).catch(() => {});
  }

  const keptAt = await freeName(join(dataDir, "pg-pglite"));
  await Deno.rename(pgDir, keptAt);
  try {
    return await copyIntoNewServer(dataDir, keptAt, tables, options);
  } catch (error) {
    // Put things back as they were: the new server's folder aside, the PGlite one in place.
    await Deno.rename(pgDir, await freeName(join(dataDir, "pg-failed-upgrade"))).catch(() => {});
    await Deno.rename(keptAt, pgDir);
    throw error;
  }
}

async function copyIntoNewServer(
  dataDir: string,
  keptAt: string,
  tables: { name: string; columns: string[]; rows: string[] }[],
  options: { onTable?: (name: string, rows: number) => void },
): Promise<UpgradeResult> {
  const db = await openEmbeddedDatabase(dataDir, { max: 2 });
  try {
    await migrate(db);
    const result: UpgradeResult = { keptAt, tables: [] };
    await db.sql.begin(async (tx) => {
      // Foreign keys are not checked while rows arrive in table-name order.
      await tx`SET LOCAL session_replication_role = replica`;
      for (const table of tables) {
        const count = await copyTable(tx, table);
        result.tables.push({ name: table.name, rows: count });
      }
    });
    for (const table of result.tables) options.onTable?.(table.name, table.rows);
    return result;
  } finally {
    await db.close();
  }
}

/** Inserts the exported rows of one table into the same-named table, columns by name. */
async function copyTable(
  tx: Queryable,
  table: { name: string; columns: string[]; rows: string[] },
): Promise<number> {
  const present = await tx<{ name: string; identity: string }[]>`
    SELECT column_name AS name, is_identity AS identity FROM information_schema.columns
     WHERE table_schema = 'public' AND table_name = ${table.name}`;
  if (present.length === 0) return 0; // a table the current migrations no longer have
  const known = new Set(present.map((c) => c.name));
  const columns = table.columns.filter((c) => known.has(c));
  await tx`TRUNCATE ${tx(table.name)} CASCADE`;
  for (let i = 0; i < table.rows.length; i += BATCH_ROWS) {
    const batch = `[${table.rows.slice(i, i + BATCH_ROWS).join(",")}]`;
    await tx`
      INSERT INTO ${tx(table.name)} (${tx(columns)}) OVERRIDING SYSTEM VALUE
      SELECT ${tx(columns)} FROM json_populate_recordset(NULL::${
      tx(table.name)
    }, ${batch}::text::json)`;
  }
  for (const column of present.filter((c) => c.identity === "YES")) {
    await tx`
      SELECT setval(pg_get_serial_sequence(${table.name}, ${column.name}),
                    GREATEST(COALESCE((SELECT max(${tx(column.name)}) FROM ${
      tx(table.name)
    }), 0), 1))`;
  }
  return table.rows.length;
}

/** The PGlite-era Portal kept its pid in `embedded.pid` while it ran. */
async function refuseWhileInUse(dataDir: string): Promise<void> {
  let pid = 0;
  try {
    pid = Number((await Deno.readTextFile(join(dataDir, "embedded.pid"))).trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === Deno.pid) return;
  try {
    Deno.kill(pid, "SIGCONT");
  } catch (error) {
    if (!(error instanceof Deno.errors.PermissionDenied)) return; // gone: a stale pid file
  }
  throw new DataDirError(
    `Cannot upgrade "${
      join(dataDir, "pg")
    }": process ${pid} (an earlier Portal) is using it; stop it first`,
  );
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory) await copyDir(source, target);
    else if (entry.isFile) await Deno.copyFile(source, target);
  }
}

async function freeName(base: string): Promise<string> {
  for (let n = 0;; n++) {
    const candidate = n === 0 ? base : `${base}-${n}`;
    try {
      await Deno.stat(candidate);
    } catch {
      return candidate;
    }
  }
}
