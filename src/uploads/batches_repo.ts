/** SQL for the `upload_batch` table. */
import type { Queryable } from "../db/db.ts";

/** Lifecycle of a batch: open → complete | partial | failed (set by finalizing). */
export type BatchStatus = "open" | "complete" | "partial" | "failed";

/** An `upload_batch` row. */
export interface UploadBatchRecord {
  id: string;
  userId: string | null;
  idempotencyKey: string | null;
  status: BatchStatus;
  createdAt: Date;
  updatedAt: Date;
}

/** How many files of a batch are in each outcome. */
export interface BatchCounts {
  succeeded: number;
  failed: number;
  uploading: number;
}

function columns(sql: Queryable) {
  return sql`id, user_id AS "userId", idempotency_key AS "idempotencyKey", status,
    created_at AS "createdAt", updated_at AS "updatedAt"`;
}

/**
 * Inserts a batch; with an idempotency key already used by this user, inserts nothing and
 * returns null (the caller then reads the existing one).
 */
export async function insertBatch(
  sql: Queryable,
  input: { id: string; userId: string | null; idempotencyKey: string | null },
): Promise<UploadBatchRecord | null> {
  const rows = await sql<UploadBatchRecord[]>`
    INSERT INTO upload_batch (id, user_id, idempotency_key)
    VALUES (${input.id}, ${input.userId}, ${input.idempotencyKey})
    ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING ${columns(sql)}`;
  return rows[0] ?? null;
}

/** The batch with `id`, or null. */
export async function findBatch(sql: Queryable, id: string): Promise<UploadBatchRecord | null> {
  const rows = await sql<UploadBatchRecord[]>`
    SELECT ${columns(sql)} FROM upload_batch WHERE id = ${id}`;
  return rows[0] ?? null;
}

/** The user's batch with this idempotency key, or null. */
export async function findBatchByKey(
  sql: Queryable,
  input: { userId: string | null; idempotencyKey: string },
): Promise<UploadBatchRecord | null> {
  const rows = await sql<UploadBatchRecord[]>`
    SELECT ${columns(sql)} FROM upload_batch
    WHERE user_id IS NOT DISTINCT FROM ${input.userId}
      AND idempotency_key = ${input.idempotencyKey}`;
  return rows[0] ?? null;
}

/** Locks the batch row for the rest of the transaction and returns it. */
export async function lockBatch(sql: Queryable, id: string): Promise<UploadBatchRecord | null> {
  const rows = await sql<UploadBatchRecord[]>`
    SELECT ${columns(sql)} FROM upload_batch WHERE id = ${id} FOR UPDATE`;
  return rows[0] ?? null;
}

/** Counts a batch's files by outcome (stored, processed and deleted count as succeeded). */
export async function countBatchFiles(sql: Queryable, batchId: string): Promise<BatchCounts> {
  const rows = await sql<BatchCounts[]>`
    SELECT count(*) FILTER (WHERE status IN ('stored', 'processed', 'deleted'))::int AS succeeded,
           count(*) FILTER (WHERE status = 'failed')::int AS failed,
           count(*) FILTER (WHERE status = 'uploading')::int AS uploading
    FROM upload_file WHERE batch_id = ${batchId}`;
  return rows[0] ?? { succeeded: 0, failed: 0, uploading: 0 };
}

/** Sets the batch's status; returns the updated row. */
export async function updateBatchStatus(
  sql: Queryable,
  input: { id: string; status: BatchStatus },
): Promise<UploadBatchRecord | null> {
  const rows = await sql<UploadBatchRecord[]>`
    UPDATE upload_batch SET status = ${input.status}, updated_at = now()
    WHERE id = ${input.id}
    RETURNING ${columns(sql)}`;
  return rows[0] ?? null;
}
