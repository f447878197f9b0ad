/** What the upload services need, built in `main.ts` (or a test) and passed down. */
import type { Config } from "../config/config.ts";
import type { Database } from "../db/db.ts";
import type { Logger } from "../log/logger.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { StorageAdapter } from "../storage/storage.ts";

/** Dependencies of the upload services; `AppDeps` satisfies it. */
export interface UploadDeps {
  config: Readonly<Config>;
  db: Database;
  storage: StorageAdapter;
  logger: Logger;
  /** Signs the local download links (see download_links.ts). */
  secretKey: string;
  metrics: Metrics;
  /** The clock; default `() => new Date()` (tests pass a fixed one). */
  now?: () => Date;
}

/** Who is acting: the signed-in user or token owner. */
export interface Uploader {
  id: string;
  isAdmin: boolean;
}

/** The current time from `deps.now`, or the system clock. */
export function currentTime(deps: Pick<UploadDeps, "now">): Date {
  return deps.now?.() ?? new Date();
}
