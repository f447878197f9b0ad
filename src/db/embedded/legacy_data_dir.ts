/**
 * Refuses a data dir whose `pg/` Portal's server did not create: above all one written by the
 * PGlite version of Portal (Postgres compiled to WASM, a 32-bit build whose files a native
 * server must never open). Nothing there is touched; the message says how to carry it over.
 */
import { join } from "node:path";
import { clusterPaths } from "./cluster.ts";

/** Thrown for a data dir Portal will not open; `portal` exits 2 with its message. */
export class DataDirError extends Error {}

/** What is in `dataDir/pg`. */
export type DataDirKind = "empty" | "portal" | "pglite" | "foreign";

/** Tells what `dataDir/pg` holds, reading only. */
export async function dataDirKind(dataDir: string): Promise<DataDirKind> {
  const paths = clusterPaths(dataDir);
  if (await exists(paths.marker)) return "portal";
  if (!(await exists(join(paths.pgDir, "PG_VERSION")))) return "empty";
  // A native server writes postmaster.opts at its first start; PGlite never does.
  return (await exists(join(paths.pgDir, "postmaster.opts"))) ? "foreign" : "pglite";
}

/** Throws `DataDirError` unless the data dir is empty or holds Portal's own cluster. */
export async function checkDataDir(dataDir: string): Promise<void> {
  const kind = await dataDirKind(dataDir);
  const pgDir = join(dataDir, "pg");
  if (kind === "pglite") {
    throw new DataDirError(
      `Cannot open the embedded database: "${pgDir}" was written by an earlier Portal (PGlite); it is left untouched.\n` +
        `To carry its data over to the embedded PostgreSQL server, stop every Portal process on it and run:\n` +
        `  portal embedded upgrade\n` +
        `(it copies every table into a new server, then keeps the old folder as "${pgDir}-pglite"). See docs/embedded.md.`,
    );
  }
  if (kind === "foreign") {
    throw new DataDirError(
      `Cannot open the embedded database: "${pgDir}" holds a PostgreSQL data directory Portal did not create; it is left untouched. Move it away, point PORTAL_DATA_DIR elsewhere, or set DATABASE_URL to its server`,
    );
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
