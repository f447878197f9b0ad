/** Types shared by the HTTP layer: what handlers receive and what the app is built from. */
import type { Config } from "../config/config.ts";
import type { Database } from "../db/db.ts";
import type { Logger } from "../log/logger.ts";
import type { SessionWithUser, User } from "../auth/account_service.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { StorageAdapter } from "../storage/storage.ts";

/** Everything the HTTP app needs, built in `main.ts` (or a test) and passed down. */
export interface AppDeps {
  config: Readonly<Config>;
  db: Database;
  logger: Logger;
  /** Key for signed links and CSRF cookies (see src/auth/secret_key.ts). */
  secretKey: string;
  /** The process's metrics registry. */
  metrics: Metrics;
  /** Where uploaded bytes live (local directory or S3 bucket). */
  storage: StorageAdapter;
}

/** Per-request values set by middleware. */
export interface AppVariables {
  requestId: string;
  clientAddress: string;
  logger: Logger;
  /** The signed-in user (session or bearer token), or null. */
  user: User | null;
  /** The browser session, when the request came with one. */
  session: SessionWithUser | null;
}

/** Hono environment type for Portal's apps. */
export interface AppEnv {
  Variables: AppVariables;
}
