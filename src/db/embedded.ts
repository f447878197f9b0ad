/**
 * The embedded database: PGlite (real Postgres compiled to WASM) in `PORTAL_DATA_DIR/pg`,
 * served on a loopback socket by pglite-socket so the same postgres.js code runs on it.
 *
 * PGlite is one Postgres backend shared by every socket connection, so two things differ
 * from a server and are hidden here: advisory locks are taken in-process (all connections
 * share one session, where they would always succeed), and LISTEN is a short in-process poll
 * (PGlite does not route a NOTIFY from one socket connection to another).
 * The embedded mode is single-process; a pid file refuses a second process on the same folder.
 */
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import postgres from "postgres";
import { join } from "node:path";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Database, LOCK_BUSY } from "./db.ts";

/** How often embedded listeners are woken (there is no cross-connection NOTIFY in PGlite). */
const EMBEDDED_WAKE_MS = 200;

/** Options for `openEmbeddedDatabase`. */
export interface EmbeddedOptions {
  /** Pool size toward the socket (default 4). */
  max?: number;
}

/** Thrown when another live process already runs the embedded database in the same folder. */
export class EmbeddedBusyError extends Error {
  constructor(dir: string, pid: number) {
    super(
      `Cannot open the embedded database in "${dir}": process ${pid} is using it (the embedded database serves one process; set DATABASE_URL to run several)`,
    );
  }
}

/** Opens (creating on first use) the embedded database under `dataDir/pg`. */
export async function openEmbeddedDatabase(
  dataDir: string,
  options: EmbeddedOptions = {},
): Promise<Database> {
  const dir = join(dataDir, "pg");
  mkdirSync(dir, { recursive: true });
  const pidFile = join(dataDir, "embedded.pid");
  claimPidFile(pidFile, dataDir);

  let pg: PGlite | undefined;
  let server: PGLiteSocketServer | undefined;
  try {
    pg = await PGlite.create(dir);
    const max = options.max ?? 4;
    server = new PGLiteSocketServer({
      db: pg,
      port: 0,
      host: "127.0.0.1",
      maxConnections: max + 2,
    });
    await server.start();
    const [, portText] = server.getServerConn().split(":");
    const sql = postgres({
      host: "127.0.0.1",
      port: Number(portText),
      user: "postgres",
      database: "postgres",
      max,
      onnotice: () => {},
      // PGlite over the socket does not support cancel requests or SSL.
      ssl: false,
    });
    const locks = new Set<number>();
    const waiters = new Map<number, (() => void)[]>();
    const pgInstance = pg;
    const socketServer = server;

    const release = (key: number) => {
      const queue = waiters.get(key);
      const next = queue?.shift();
      if (next) next();
      else locks.delete(key);
    };

    const db: Database = {
      sql,
      embedded: true,
      description: `embedded PGlite in ${dir}`,
      listen(_channel, onNotify, onListen) {
        const timer = setInterval(() => onNotify(""), EMBEDDED_WAKE_MS);
        onListen?.();
        return Promise.resolve({
          unlisten() {
            clearInterval(timer);
            return Promise.resolve();
          },
        });
      },
      async tryWithLock(key, fn) {
        if (locks.has(key)) return LOCK_BUSY;
        locks.add(key);
        try {
          return await fn();
        } finally {
          release(key);
        }
      },
      async withLock(key, fn) {
        if (locks.has(key)) {
          await new Promise<void>((resolve) => {
            const queue = waiters.get(key) ?? [];
            queue.push(resolve);
            waiters.set(key, queue);
          });
        } else {
          locks.add(key);
        }
        try {
          return await fn();
        } finally {
          release(key);
        }
      },
      async close() {
        await sql.end({ timeout: 5 });
        await socketServer.stop();
        await pgInstance.close();
        releasePidFile(pidFile);
      },
    };
    return db;
  } catch (error) {
    await server?.stop().catch(() => {});
    await pg?.close().catch(() => {});
    releasePidFile(pidFile);
    throw error;
  }
}

function claimPidFile(pidFile: string, dataDir: string): void {
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== Deno.pid && processAlive(pid)) {
      throw new EmbeddedBusyError(dataDir, pid);
    }
  }
  writeFileSync(pidFile, `${Deno.pid}\n`);
}

function releasePidFile(pidFile: string): void {
  try {
    if (readFileSync(pidFile, "utf8").trim() === String(Deno.pid)) rmSync(pidFile);
  } catch {
    // already gone
  }
}

function processAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch (error) {
    // EPERM means it exists but belongs to someone else.
    return error instanceof Deno.errors.PermissionDenied;
  }
}
