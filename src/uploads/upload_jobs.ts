/**
 * The upload jobs the scheduler runs (SPEC §5 Jobs): expiry notices, expired-file cleanup and
 * the removal of what interrupted uploads left in storage.
 * Plain functions, safe to run from two processes at once: rows are claimed with
 * FOR UPDATE SKIP LOCKED in short transactions, no lock is held during storage calls, and every
 * state change is conditional on the row's current status, so an overlap deletes an object
 * twice (idempotent) but never marks a row or emits an event twice.
 */
import { emitEvent } from "../outbox/emit.ts";
import {
  type ClaimedFile,
  claimExpiredFiles,
  claimFailedLeftovers,
  clearFailedStorageKey,
  findExpiringFiles,
} from "./files_repo.ts";
import { deleteStoredObject, markDeleted } from "./file_service.ts";
import { UploadError } from "./upload_errors.ts";
import { type AppDeps, currentTime } from "../app_deps.ts";
import { FILE_KEY_PREFIX } from "./storage_keys.ts";
import { storedPayload } from "./upload_service.ts";

/** Counts of one `notifyExpiringFiles` run. */
export interface ExpiryNoticeResult {
  /** `file.expiring` events written. */
  notified: number;
  /** Files another run notified first (emitEvent reported a duplicate). */
  skipped: number;
}

/** Counts of one `deleteExpiredFiles` run. */
export interface CleanupResult {
  /** Expired files whose object was deleted and row marked deleted. */
  deleted: number;
  /** Files left for the next run because their cleanup threw (storage or anything else). */
  errors: number;
  /** Failed files whose leftover object was removed. */
  leftoversRemoved: number;
}

const NOTICE_PAGE = 500;
const DELETE_CONCURRENCY = 8;

/**
 * Emits `file.expiring` (the `file.stored` fields plus `expires_at`; idempotency key
 * `UploadFile:<id>`) once per stored or processed file whose `expires_at` falls within the next
 * FILE_UPLOAD_EXPIRY_NOTIFY_HOURS and has not passed.
 *
 * @example
 * const { notified } = await notifyExpiringFiles(deps);
 */
export async function notifyExpiringFiles(
  deps: AppDeps,
): Promise<ExpiryNoticeResult> {
  const now = currentTime(deps);
  const until = new Date(now.getTime() + deps.config.uploadExpiryNotifyHours * 3_600_000);
  const result: ExpiryNoticeResult = { notified: 0, skipped: 0 };
  let afterId: string | undefined;
  while (true) {
    const files = await findExpiringFiles(deps.db.sql, { now, until, limit: NOTICE_PAGE, afterId });
    if (files.length === 0) break;
    const payloads = files.map((file) => ({
      file,
      payload: { ...storedPayload(file), expires_at: file.expiresAt?.toISOString() ?? null },
    }));
    await deps.db.sql.begin(async (tx) => {
      for (const { file, payload } of payloads) {
        const emitted = await emitEvent(tx, {
          aggregateType: "UploadFile",
          aggregateId: file.id,
          eventType: "file.expiring",
          idempotencyKey: `UploadFile:${file.id}`,
          payload,
        });
        if (emitted.status === "created") result.notified++;
        else result.skipped++;
      }
    });
    afterId = files.at(-1)!.id;
    if (files.length < NOTICE_PAGE) break;
  }
  return result;
}

/**
 * Deletes expired stored and processed files in batches of `batchSize`: object deleted, row
 * marked deleted and `file.deleted` {file_id, reason: "expired"} emitted in one transaction. Any
 * error on one file (storage, an adapter's own exception, the database) is logged, counted in
 * `errors` and leaves that row for the next run; the others go on. Then removes the leftover
 * objects of failed files the same way.
 *
 * @example
 * const { deleted, errors } = await deleteExpiredFiles(deps, { batchSize: 1000 });
 */
export async function deleteExpiredFiles(
  deps: AppDeps,
  options: { batchSize?: number } = {},
): Promise<CleanupResult> {
  const now = currentTime(deps);
  const batchSize = options.batchSize ?? 1000;
  const result: CleanupResult = { deleted: 0, errors: 0, leftoversRemoved: 0 };
  const logger = deps.logger.child({ job: "delete_expired_files" });

  const skipped: string[] = [];
  while (true) {
    const claimed = await deps.db.sql.begin((tx) =>
      claimExpiredFiles(tx, { now, limit: batchSize, excludeIds: skipped })
    );
    if (claimed.length === 0) break;
    await forEachLimited(claimed, DELETE_CONCURRENCY, async (file) => {
      const ok = await perFile(file, logger, async () => {
        await deleteStoredObject(deps, file);
        const marked = await markDeleted(deps, { fileId: file.id, reason: "expired" });
        if (marked !== null) result.deleted++;
      });
      if (!ok) {
        skipped.push(file.id);
        result.errors++;
      }
    });
    if (claimed.length < batchSize) break;
  }

  const failedSkipped: string[] = [];
  while (true) {
    const claimed = await deps.db.sql.begin((tx) =>
      claimFailedLeftovers(tx, { now, limit: batchSize, excludeIds: failedSkipped })
    );
    if (claimed.length === 0) break;
    await forEachLimited(claimed, DELETE_CONCURRENCY, async (file) => {
      const ok = await perFile(file, logger, async () => {
        await deleteStoredObject(deps, file);
        if (await clearFailedStorageKey(deps.db.sql, file.id)) result.leftoversRemoved++;
      });
      if (!ok) {
        failedSkipped.push(file.id);
        result.errors++;
      }
    });
    if (claimed.length < batchSize) break;
  }
  if (result.deleted + result.errors + result.leftoversRemoved > 0) {
    logger.info("expired files cleaned up", { ...result });
  }
  return result;
}

/** How old an unfinished storage write must be before cleanup removes it. */
export const INCOMPLETE_UPLOAD_MAX_AGE_HOURS = 24;

/**
 * Removes what interrupted uploads left in storage: local temp files of a process killed
 * mid-write, S3 multipart uploads whose abort was lost because the endpoint was down. Only
 * writes started more than INCOMPLETE_UPLOAD_MAX_AGE_HOURS ago (no upload takes that long) are
 * touched. A storage error is logged and counted, and the next run tries again.
 *
 * @example
 * const { removed } = await deleteIncompleteUploads(deps);
 */
export async function deleteIncompleteUploads(
  deps: AppDeps,
  options: { maxAgeHours?: number } = {},
): Promise<{ removed: number; errors: number }> {
  const now = currentTime(deps);
  const maxAgeHours = options.maxAgeHours ?? INCOMPLETE_UPLOAD_MAX_AGE_HOURS;
  const olderThan = new Date(now.getTime() - maxAgeHours * 3_600_000);
  const logger = deps.logger.child({ job: "delete_incomplete_uploads" });
  try {
    const removed = await deps.storage.deleteIncomplete({ olderThan, prefix: FILE_KEY_PREFIX });
    if (removed > 0) logger.info("removed unfinished uploads from storage", { removed });
    return { removed, errors: 0 };
  } catch (error) {
    logger.warn("cannot remove unfinished uploads from storage; will retry next run", { error });
    return { removed: 0, errors: 1 };
  }
}

/**
 * Runs the cleanup of one claimed file; false (logged) when anything in it threw. Every error
 * is caught, not only storage errors: an adapter or database failure on one file must leave that
 * row for the next run without stopping the rest of the batch. The logger keeps only an error's
 * name and message, never a query, its parameters or credentials.
 */
async function perFile(
  file: ClaimedFile,
  logger: AppDeps["logger"],
  fn: () => Promise<void>,
): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (error) {
    const fields = { file_id: file.id, storage_key: file.storageKey, error };
    if (error instanceof UploadError) {
      logger.warn("cannot delete an expired file's object; will retry next run", fields);
    } else {
      logger.error(
        "cannot clean up an expired file: unexpected error; will retry next run",
        fields,
      );
    }
    return false;
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
