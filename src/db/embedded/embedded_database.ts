/**
 * The embedded default: a real PostgreSQL server in `PORTAL_DATA_DIR/pg`, shared by every
 * Portal process on that data dir (`serve`, `worker`, a second `serve`, CLI commands).
 *
 * Owner and joiners, with no owner at all:
 * - Opening takes the data dir's start lock (`embedded.lock`, an OS file lock that dies with
 *   its process). Under it, a process joins the server `postmaster.pid` says is ready, or else
 *   creates and starts one (detached: it outlives the process that started it).
 * - Every process holds a shared advisory lock (the presence lock) on one connection while
 *   it is open. It is Postgres's own bookkeeping, so a SIGKILLed process leaves it at once.
 * - Closing takes the start lock again, drops its presence, and stops the server only when
 *   nobody else holds the presence lock: the last process out turns the lights off. A joiner
 *   never sees its server stopped under it, because joining and stopping both happen under
 *   the start lock and a joiner holds its presence before releasing it.
 * - A crash of any Portal process leaves the server running for the others (and the next
 *   start joins it); a crash of the server itself leaves a stale `postmaster.pid`, and the
 *   next start lets Postgres recover from its write-ahead log.
 */
import postgres from "postgres";
import { join } from "node:path";
import { createServerDatabase, type Database, lockKey } from "../db.ts";
import { materializeBinaries, type PostgresBinaries } from "./postgres_binaries.ts";
import {
  clusterExists,
  clusterPaths,
  folderClosedTo,
  initCluster,
  readPassword,
  type RunningServer,
  runningServer,
  serverAccount,
  startCluster,
  stopCluster,
} from "./cluster.ts";
import { checkDataDir, DataDirError } from "./legacy_data_dir.ts";

/** Options for `openEmbeddedDatabase`. */
export interface EmbeddedOptions {
  /** Pool size (default 10). */
  max?: number;
  /** `max_connections` when this process starts the server (default 100). */
  maxConnections?: number;
  /** Called with a line a person should see (server created, started, stopped). */
  onEvent?: (message: string, fields: Record<string, unknown>) => void;
}

/** The embedded database, with where it listens (for the harness and `portal embedded`). */
export interface EmbeddedDatabase extends Database {
  /** Connection URL with the password (never log it). */
  url: string;
  /** True when this process started the server. */
  started: boolean;
}

const PRESENCE_KEY = lockKey("portal:embedded:presence");

/**
 * Opens the embedded database in `dataDir`, starting the server when none runs.
 *
 * @example
 * const db = await openEmbeddedDatabase("./data");
 * await db.sql`SELECT 1`;
 * await db.close(); // stops the server if no other process uses it
 */
export async function openEmbeddedDatabase(
  dataDir: string,
  options: EmbeddedOptions = {},
): Promise<EmbeddedDatabase> {
  await Deno.mkdir(dataDir, { recursive: true });
  await checkDataDir(dataDir);
  const paths = clusterPaths(dataDir);
  const onEvent = options.onEvent ?? (() => {});
  const account = await serverAccount();
  const shut = account ? await folderClosedTo(dataDir, account) : null;
  if (account && shut !== null) {
    throw new DataDirError(
      `Cannot start the embedded database: Portal runs as root, so its PostgreSQL server runs as the "${account.name}" account, which cannot enter "${shut}". ` +
        `Run Portal as a normal user, or set PORTAL_DATA_DIR to a folder that account can reach (e.g. /var/lib/portal), or allow it through (chmod o+x "${shut}"), or set DATABASE_URL`,
    );
  }
  let binaries: PostgresBinaries | null = null;
  const ensureBinaries = async () => binaries ??= await materializeBinaries(dataDir);

  /** The running server, started (and created) when there is none; under the start lock. */
  async function ensureRunning(): Promise<{ server: RunningServer; started: boolean }> {
    const running = await runningServer(paths);
    if (running) return { server: running, started: false };
    const bins = await ensureBinaries();
    if (!(await clusterExists(paths))) {
      const began = performance.now();
      await initCluster(paths, bins, account);
      onEvent("embedded database created", {
        dir: paths.pgDir,
        postgres: bins.version,
        duration_ms: Math.round(performance.now() - began),
      });
    }
    const began = performance.now();
    const server = await startCluster(paths, bins, account, {
      maxConnections: options.maxConnections,
    });
    onEvent("embedded database started", {
      dir: paths.pgDir,
      port: server.port,
      duration_ms: Math.round(performance.now() - began),
    });
    return { server, started: true };
  }

  let closed = false;
  let reviving: Promise<void> | null = null;
  // The presence connection: a pool of one that never idles out or recycles, holding the
  // shared lock for as long as this process has the database open. When it drops (the
  // server crashed or was stopped from outside), `revive` brings the server back.
  const presenceOptions = (port: number) => ({
    host: "127.0.0.1",
    port,
    user: "postgres",
    database: "portal",
    max: 1,
    idle_timeout: 0, // 0 and null: no timer (postgres.js connection.js `timer`)
    max_lifetime: null,
    fetch_types: false,
    onnotice: () => {},
    onclose: () => {
      if (!closed) reviving ??= revive().finally(() => reviving = null);
    },
  });

  const { server, started, presence, password } = await withStartLock(dataDir, async () => {
    const { server, started } = await ensureRunning();
    const password = await readPassword(paths);
    await ensurePortalDatabase(server.port, password);
    // Still under the start lock: once this process holds its presence, nobody stops it.
    const presence = postgres({ ...presenceOptions(server.port), password });
    try {
      await presence`SELECT pg_advisory_lock_shared(${PRESENCE_KEY})`;
    } catch (error) {
      await presence.end({ timeout: 1 }).catch(() => {});
      throw error;
    }
    return { server, started, presence, password };
  });

  async function revive(): Promise<void> {
    for (let attempt = 0; !closed; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(200 * 2 ** attempt, 5_000)));
      if (closed) return;
      try {
        await withStartLock(dataDir, async () => {
          const { server: now, started } = await ensureRunning();
          if (started) onEvent("embedded database restarted after it stopped", { port: now.port });
          if (now.port !== server.port) {
            // The pool's URL names the old port: this process cannot follow. Say so loudly.
            onEvent("embedded database moved to another port; restart this process", {
              old_port: server.port,
              port: now.port,
            });
          }
          await presence`SELECT pg_advisory_lock_shared(${PRESENCE_KEY})`;
        });
        return;
      } catch (error) {
        if (attempt % 10 === 0) {
          onEvent("embedded database unreachable; retrying", { error: (error as Error).message });
        }
      }
    }
  }

  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${server.port}/portal`;
  const db = createServerDatabase(url, {
    max: options.max ?? 10,
    description: `embedded PostgreSQL in ${paths.pgDir} (127.0.0.1:${server.port})`,
  });
  return {
    ...db,
    embedded: true,
    url,
    started,
    async close() {
      if (closed) return;
      closed = true;
      await db.close();
      await reviving?.catch(() => {});
      await withStartLock(dataDir, async () => {
        await presence`SELECT pg_advisory_unlock_shared(${PRESENCE_KEY})`.catch(() => {});
        // The exclusive lock is free only when no other process holds its shared one.
        const [row] = await presence<{ last: boolean }[]>`
          SELECT pg_try_advisory_lock(${PRESENCE_KEY}) AS last`.catch(() => [{ last: false }]);
        await presence.end({ timeout: 1 }).catch(() => {});
        if (row?.last) {
          await stopCluster(paths, await ensureBinaries(), account);
          onEvent("embedded database stopped", { dir: paths.pgDir });
        }
      });
    },
  };
}

/** Creates the `portal` database on first start (the harness and tools use `postgres`). */
async function ensurePortalDatabase(port: number, password: string): Promise<void> {
  const sql = postgres({
    host: "127.0.0.1",
    port,
    user: "postgres",
    password,
    database: "postgres",
    max: 1,
    onnotice: () => {},
  });
  try {
    const [row] = await sql<{ found: boolean }[]>`
      SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'portal') AS found`;
    if (!row?.found) {
      await sql`CREATE DATABASE portal`.catch((error: { code?: string }) => {
        if (error.code !== "42P04") throw error; // created by a concurrent first start
      });
    }
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Runs `fn` holding the data dir's start lock (an OS lock: a killed holder releases it). */
async function withStartLock<T>(dataDir: string, fn: () => Promise<T>): Promise<T> {
  const file = await Deno.open(join(dataDir, "embedded.lock"), {
    read: true,
    write: true,
    create: true,
  });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close(); // closing releases the lock
  }
}
