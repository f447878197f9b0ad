/**
 * What every part of Portal is built from: one `AppDeps`, made once by `portal serve` or
 * `portal worker` (src/cli/server_commands.ts) or by a test, and passed down. Services and jobs
 * declare the part they need with `Pick<AppDeps, ...>`. Time comes from one `Clock`, so tests
 * move it instead of sleeping.
 */
import type { Config } from "./config/config.ts";
import type { Database } from "./db/db.ts";
import type { Logger } from "./log/logger.ts";
import type { Metrics } from "./metrics/metrics.ts";
import type { StorageAdapter } from "./storage/storage.ts";

/** A source of the current time. */
export interface Clock {
  now(): Date;
}

/** The real clock. */
export const systemClock: Clock = { now: () => new Date() };

/** Everything the app, the services and the jobs need. */
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
  /** The clock; default the system's (tests pass one they move). */
  clock?: Clock;
}

/** The current time of `deps.clock`, or of the system. */
export function currentTime(deps: { clock?: Clock }): Date {
  return (deps.clock ?? systemClock).now();
}
