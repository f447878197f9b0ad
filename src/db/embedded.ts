/**
 * The embedded database: PGlite (real Postgres compiled to WASM) in `PORTAL_DATA_DIR/pg`,
 * served on a loopback socket by pglite-socket so the same postgres.js code runs on it.
 *
 * PGlite is one Postgres backend shared by every socket connection, so two things differ
 * from a server and are hidden here: advisory locks are taken in-process (all connections
 * share one session, where they would always succeed), and LISTEN is an in-process signal.
 * The shared backend LISTENs on the channel once; Postgres then writes each committed NOTIFY
 * (never a rolled-back one) into the reply of the COMMIT, on the socket connection that ran it,
 * and pglite-socket passes that reply on as it is (it does not route the notification to another
 * connection, nor to `PGlite.listen`). postgres.js hands it to the pool's `onnotify`, which
 * wakes the listeners in this process: no polling, and no delay past the commit.
 * The embedded mode is single-process; a pid file refuses a second process on the same folder.
 */
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import postgres from "postgres";
import { join } from "node:path";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Database, LOCK_BUSY, type Subscription } from "./db.ts";

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
    const channels = new Map<string, Set<(payload: string) => void>>();
    const poolOptions = {
      host: "127.0.0.1",
      port: Number(portText),
      user: "postgres",
      database: "postgres",
      max,
      onnotice: () => {},
      // Every pool connection passes the notifications in its replies here. postgres.js takes
      // `onnotify` for every connection (its own `listen` uses it; not in its types, hence not
      // a literal); tests/embedded_notify_test.ts fails if an upgrade drops it.
      onnotify(channel: string, payload: string) {
        // Not inside postgres.js's reply parsing: a listener runs once the reply is read.
        for (const listener of [...(channels.get(channel) ?? [])]) {
          queueMicrotask(() => listener(payload));
        }
      },
      // PGlite over the socket does not support cancel requests or SSL.
      ssl: false,
    };
    const sql = postgres(poolOptions);
    // LISTEN and UNLISTEN one at a time, so a channel's state follows the calls' order.
    let subscriptions: Promise<unknown> = Promise.resolve();
    const serially = <T>(fn: () => Promise<T>): Promise<T> => {
      const next = subscriptions.then(fn);
      subscriptions = next.catch(() => {});
      return next;
    };
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
      async listen(channel, onNotify, onListen): Promise<Subscription> {
        const listener = (payload: string) => onNotify(payload);
        await serially(async () => {
          if (!channels.has(channel)) {
            await sql`LISTEN ${sql(channel)}`;
            channels.set(channel, new Set());
          }
          channels.get(channel)!.add(listener);
        });
        // In process there is no reconnect: the one rescan is now.
        onListen?.();
        return {
          unlisten: () =>
            serially(async () => {
              const listeners = channels.get(channel);
              if (!listeners?.delete(listener) || listeners.size > 0) return;
              channels.delete(channel);
              await sql`UNLISTEN ${sql(channel)}`;
            }),
        };
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
