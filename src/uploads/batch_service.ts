/**
 * Batches group the files of one upload action (SPEC §4): created open, files attached, then
 * finalized to complete (every file stored), partial (some) or failed (none).
 */
import { isUuid, newId } from "../db/ids.ts";
import {
  type BatchStatus,
  countBatchFiles,
  findBatch,
  findBatchByKey,
  insertBatch,
  lockBatch,
  updateBatchStatus,
  type UploadBatchRecord,
} from "./batches_repo.ts";
import { listBatchFiles, type UploadFileRecord } from "./files_repo.ts";
import { UploadError } from "./upload_errors.ts";
import type { AppDeps } from "../app_deps.ts";
import type { Uploader } from "./uploader.ts";

/** The longest idempotency key a batch takes (a longer one could exceed the index row limit). */
export const MAX_IDEMPOTENCY_KEY = 200;

/**
 * Creates an open batch for `uploader`. With an `idempotencyKey` the user already used, returns
 * that batch instead (`created: false`), so a retried request does not make a second one.
 *
 * @example
 * const { batch, created } = await createBatch(deps, { uploader: user, idempotencyKey: "k1" });
 */
export async function createBatch(
  deps: Pick<AppDeps, "db">,
  input: { uploader: Uploader | null; idempotencyKey?: string | null },
): Promise<{ batch: UploadBatchRecord; created: boolean }> {
  const userId = input.uploader?.id ?? null;
  const idempotencyKey = input.idempotencyKey ?? null;
  const inserted = await insertBatch(deps.db.sql, { id: newId(), userId, idempotencyKey });
  if (inserted !== null) return { batch: inserted, created: true };
  const existing = await findBatchByKey(deps.db.sql, { userId, idempotencyKey: idempotencyKey! });
  if (existing === null) {
    // Only reachable if the conflicting batch was deleted in between: try once more.
    const retried = await insertBatch(deps.db.sql, { id: newId(), userId, idempotencyKey });
    if (retried !== null) return { batch: retried, created: true };
    throw new Error(`Cannot create batch: idempotency key "${idempotencyKey}" is in flux`);
  }
  return { batch: existing, created: false };
}

/** A batch with its files. */
export interface BatchWithFiles {
  batch: UploadBatchRecord;
  files: UploadFileRecord[];
}

/**
 * The batch and its files when `viewer` may see it (its owner, or an admin); else null.
 *
 * @example
 * const found = await getBatch(deps, { batchId, viewer: user });
 */
export async function getBatch(
  deps: Pick<AppDeps, "db">,
  input: { batchId: string; viewer: Uploader },
): Promise<BatchWithFiles | null> {
  const batch = await visibleBatch(deps, input);
  if (batch === null) return null;
  return { batch, files: await listBatchFiles(deps.db.sql, batch.id) };
}

/**
 * Sets an open batch's status from its files' outcomes: complete when all succeeded, partial
 * when some did, failed when none did (or it has none). A finalized batch is returned as it
 * is. Throws UploadError "batch_uploading" while a file is still uploading; null when the
 * viewer may not see the batch.
 *
 * @example
 * const result = await finalizeBatch(deps, { batchId, viewer: user });
 * result?.batch.status; // "partial"
 */
export async function finalizeBatch(
  deps: Pick<AppDeps, "db">,
  input: { batchId: string; viewer: Uploader },
): Promise<BatchWithFiles | null> {
  const visible = await visibleBatch(deps, input);
  if (visible === null) return null;
  const batch = await deps.db.sql.begin(async (tx) => {
    const locked = await lockBatch(tx, visible.id);
    if (locked === null || locked.status !== "open") return locked;
    const counts = await countBatchFiles(tx, locked.id);
    if (counts.uploading > 0) {
      throw new UploadError(
        "batch_uploading",
        `Cannot finalize batch "${locked.id}": ${counts.uploading} file(s) are still uploading`,
      );
    }
    const status: BatchStatus = counts.succeeded === 0
      ? "failed"
      : counts.failed === 0
      ? "complete"
      : "partial";
    return await updateBatchStatus(tx, { id: locked.id, status });
  });
  if (batch === null) return null;
  return { batch, files: await listBatchFiles(deps.db.sql, batch.id) };
}

async function visibleBatch(
  deps: Pick<AppDeps, "db">,
  input: { batchId: string; viewer: Uploader },
): Promise<UploadBatchRecord | null> {
  if (!isUuid(input.batchId)) return null;
  const batch = await findBatch(deps.db.sql, input.batchId);
  if (batch === null) return null;
  if (!input.viewer.isAdmin && batch.userId !== input.viewer.id) return null;
  return batch;
}
