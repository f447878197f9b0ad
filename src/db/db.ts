/**
 * The database handle every other folder receives: a postgres.js pool with LISTEN and
 * session advisory locks. The embedded default is a real PostgreSQL server too
 * (embedded/embedded_database.ts), so the same code and the same guarantees hold on both.
 */
import postgres from "postgres";

/** A query function that works both on the pool and inside `sql.begin` (postgres.js ISql). */
// deno-lint-ignore ban-types -- postgres.js's own default type parameter is `{}`
export type Queryable = postgres.ISql<{}>;

/** The pool type. */
export type Sql = postgres.Sql;

/** Outcome of `tryWithLock` when another holder has the lock. */
export const LOCK_BUSY: unique symbol = Symbol("lock busy");

/** What a LISTEN subscription returns. */
export interface Subscription {
  unlisten(): Promise<void>;
}

/** The database as the rest of Portal sees it. */
export interface Database {
  sql: Sql;
  /** True for the embedded server in PORTAL_DATA_DIR (first start creates the admin). */
  embedded: boolean;
  /** Describes the target without secrets, for logs. */
  description: string;
  /**
   * Subscribes to `channel` (senders call `pg_notify` inside their transaction, so Postgres
   * delivers only on commit); `onListen` runs after each (re)connect so callers can rescan.
   * A wake-up is only a hint, the table is the truth.
   */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    onListen?: () => void,
  ): Promise<Subscription>;
  /**
   * Runs `fn` while holding the session advisory lock `key`, or returns LOCK_BUSY at once when
   * another session holds it. The lock is released in `finally`, and by Postgres if the
   * process dies.
   */
  tryWithLock<T>(key: number, fn: () => Promise<T>): Promise<T | typeof LOCK_BUSY>;
  /** Runs `fn` while holding advisory lock `key`, waiting for it. */
  withLock<T>(key: number, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Options for `createServerDatabase`. */
export interface ServerDatabaseOptions {
  /** Pool size (default 10). */
  max?: number;
  /** Extra connection parameters, e.g. `{ search_path: "..." }`. */
  connection?: Record<string, string>;
  /** Describes the target in logs (default: host/database from the URL). */
  description?: string;
}

/** Opens a pool on a Postgres server at `url`. */
export function createServerDatabase(url: string, options: ServerDatabaseOptions = {}): Database {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    connection: { application_name: "portal", ...options.connection },
    // Keep connections healthy across long idle periods behind NATs and poolers.
    idle_timeout: 300,
    connect_timeout: 10,
  });
  const parsed = new URL(url);
  return {
    sql,
    embedded: false,
    description: options.description ?? `postgres://${parsed.host}${parsed.pathname}`,
    async listen(channel, onNotify, onListen) {
      const { unlisten } = await sql.listen(channel, onNotify, onListen);
      return { unlisten };
    },
    tryWithLock: (key, fn) => serverLock(sql, key, fn, true),
    withLock: async (key, fn) =>
      (await serverLock(sql, key, fn, false)) as Awaited<ReturnType<typeof fn>>,
    close: () => sql.end({ timeout: 5 }),
  };
}

async function serverLock<T>(
  sql: Sql,
  key: number,
  fn: () => Promise<T>,
  tryOnly: boolean,
): Promise<T | typeof LOCK_BUSY> {
  const conn = await sql.reserve();
  try {
    if (tryOnly) {
      const [row] = await conn<
        { locked: boolean }[]
      >`SELECT pg_try_advisory_lock(${key}) AS locked`;
      if (!row?.locked) return LOCK_BUSY;
    } else {
      await conn`SELECT pg_advisory_lock(${key})`;
    }
    try {
      return await fn();
    } finally {
      await conn`SELECT pg_advisory_unlock(${key})`.catch(() => {});
    }
  } finally {
    conn.release();
  }
}

/** Stable 31-bit advisory lock key for a name (FNV-1a), so every process agrees on it. */
export function lockKey(name: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(name)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash & 0x7fffffff;
}
