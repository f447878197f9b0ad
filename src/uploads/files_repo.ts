/** SQL for the `upload_file` table (column names are a contract: SPEC §4). */
import type { Queryable } from "../db/db.ts";
import { eventEmitted } from "../outbox/events_repo.ts";

/** Lifecycle of a file: uploading → stored → processed | deleted | failed. */
export type FileStatus = "uploading" | "stored" | "processed" | "deleted" | "failed";

/** An `upload_file` row. */
export interface UploadFileRecord {
  id: string;
  batchId: string | null;
  uploadedBy: string | null;
  originalFilename: string;
  /** The sniffed type ("" when the bytes never arrived). */
  contentType: string;
  sizeBytes: number;
  /** Lowercase hex; "" when nothing was stored. */
  sha256: string;
  storageBackend: "local" | "s3";
  /** Null until bytes are stored; failed files have none once their leftovers are removed. */
  storageKey: string | null;
  metadata: Record<string, unknown>;
  status: FileStatus;
  errorMessage: string;
  expiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What `insertFile` writes. */
export interface NewFile {
  id: string;
  batchId: string | null;
  uploadedBy: string | null;
  originalFilename: string;
  contentType: string;
  sizeBytes: number;
  sha256: string;
  storageBackend: "local" | "s3";
  storageKey: string | null;
  status: FileStatus;
  errorMessage: string;
  expiresAt: Date | null;
  metadata?: Record<string, unknown>;
}

// size_bytes is bigint; float8 keeps it a JS number (exact up to 2^53 bytes).
function columns(sql: Queryable) {
  return sql`id, batch_id AS "batchId", uploaded_by AS "uploadedBy",
    original_filename AS "originalFilename", content_type AS "contentType",
    size_bytes::float8 AS "sizeBytes", sha256, storage_backend AS "storageBackend",
    storage_key AS "storageKey", metadata, status, error_message AS "errorMessage",
    expires_at AS "expiresAt", created_at AS "createdAt", updated_at AS "updatedAt"`;
}

/** Inserts a file row and returns it. */
export async function insertFile(sql: Queryable, file: NewFile): Promise<UploadFileRecord> {
  const rows = await sql<UploadFileRecord[]>`
    INSERT INTO upload_file (id, batch_id, uploaded_by, original_filename, content_type,
                             size_bytes, sha256, storage_backend, storage_key, metadata, status,
                             error_message, expires_at)
    VALUES (${file.id}, ${file.batchId}, ${file.uploadedBy}, ${file.originalFilename},
            ${file.contentType}, ${file.sizeBytes}, ${file.sha256}, ${file.storageBackend},
            ${file.storageKey}, ${
    sql.json((file.metadata ?? {}) as Parameters<typeof sql.json>[0])
  },
            ${file.status}, ${file.errorMessage}, ${file.expiresAt})
    RETURNING ${columns(sql)}`;
  return rows[0]!;
}

/** The file with `id`, or null. */
export async function findFile(sql: Queryable, id: string): Promise<UploadFileRecord | null> {
  const rows = await sql<UploadFileRecord[]>`
    SELECT ${columns(sql)} FROM upload_file WHERE id = ${id}`;
  return rows[0] ?? null;
}

/** Options of `listFiles`. */
export interface ListFilesQuery {
  /** Only this uploader's files; null lists everyone's (admins). */
  uploadedBy: string | null;
  status?: FileStatus;
  limit: number;
  /** Keyset cursor: only ids below this one (ids are UUID v7, so newest first). */
  beforeId?: string;
  /** Only files not yet expired at this time. */
  unexpiredAt?: Date;
}

/** Files newest first (id desc), at most `limit`. */
export async function listFiles(
  sql: Queryable,
  query: ListFilesQuery,
): Promise<UploadFileRecord[]> {
  return await sql<UploadFileRecord[]>`
    SELECT ${columns(sql)} FROM upload_file
    WHERE true
      ${query.uploadedBy === null ? sql`` : sql`AND uploaded_by = ${query.uploadedBy}`}
      ${query.status === undefined ? sql`` : sql`AND status = ${query.status}`}
      ${query.beforeId === undefined ? sql`` : sql`AND id < ${query.beforeId}`}
      ${
    query.unexpiredAt === undefined
      ? sql``
      : sql`AND (expires_at IS NULL OR expires_at > ${query.unexpiredAt})`
  }
    ORDER BY id DESC
    LIMIT ${query.limit}`;
}

/** The files of a batch, oldest first. */
export async function listBatchFiles(
  sql: Queryable,
  batchId: string,
): Promise<UploadFileRecord[]> {
  return await sql<UploadFileRecord[]>`
    SELECT ${columns(sql)} FROM upload_file WHERE batch_id = ${batchId} ORDER BY id`;
}

/** Options of `updateFileStatus`. */
export interface StatusChange {
  id: string;
  /** The change applies only while the row is in one of these states. */
  from: readonly FileStatus[];
  to: FileStatus;
  errorMessage?: string;
  /** Forget the storage key (the object is gone). */
  clearStorageKey?: boolean;
}

/**
 * Changes the status when the row is still in one of `from`; returns the updated row, or null
 * when it was not (missing, or changed meanwhile by someone else).
 */
export async function updateFileStatus(
  sql: Queryable,
  change: StatusChange,
): Promise<UploadFileRecord | null> {
  const rows = await sql<UploadFileRecord[]>`
    UPDATE upload_file
    SET status = ${change.to},
        ${change.errorMessage === undefined ? sql`` : sql`error_message = ${change.errorMessage},`}
        ${change.clearStorageKey ? sql`storage_key = NULL,` : sql``}
        updated_at = now()
    WHERE id = ${change.id} AND status IN ${sql(change.from as FileStatus[])}
    RETURNING ${columns(sql)}`;
  return rows[0] ?? null;
}

/** Forgets a failed file's storage key once its leftover object is deleted. */
export async function clearFailedStorageKey(sql: Queryable, id: string): Promise<boolean> {
  const rows = await sql`
    UPDATE upload_file SET storage_key = NULL, updated_at = now()
    WHERE id = ${id} AND status = 'failed' AND storage_key IS NOT NULL
    RETURNING id`;
  return rows.length > 0;
}

/** A row claimed by a cleanup run. */
export interface ClaimedFile {
  id: string;
  storageKey: string | null;
  storageBackend: "local" | "s3";
  status: FileStatus;
}

/**
 * Stored or processed files whose `expires_at` has passed, oldest expiry first. Rows another
 * transaction holds are skipped (FOR UPDATE SKIP LOCKED), so two cleanup runs starting together
 * split the work instead of queueing; the caller's transaction should end right away.
 */
export async function claimExpiredFiles(
  sql: Queryable,
  input: { now: Date; limit: number; excludeIds?: string[] },
): Promise<ClaimedFile[]> {
  const exclude = input.excludeIds ?? [];
  return await sql<ClaimedFile[]>`
    SELECT id, storage_key AS "storageKey", storage_backend AS "storageBackend", status
    FROM upload_file
    WHERE status IN ('stored', 'processed') AND expires_at <= ${input.now}
      ${exclude.length === 0 ? sql`` : sql`AND id NOT IN ${sql(exclude)}`}
    ORDER BY expires_at, id
    LIMIT ${input.limit}
    FOR UPDATE SKIP LOCKED`;
}

/** Failed files that still name an object (e.g. stored → failed), expired or without expiry. */
export async function claimFailedLeftovers(
  sql: Queryable,
  input: { now: Date; limit: number; excludeIds?: string[] },
): Promise<ClaimedFile[]> {
  const exclude = input.excludeIds ?? [];
  return await sql<ClaimedFile[]>`
    SELECT id, storage_key AS "storageKey", storage_backend AS "storageBackend", status
    FROM upload_file
    WHERE status = 'failed' AND storage_key IS NOT NULL
      AND (expires_at IS NULL OR expires_at <= ${input.now})
      ${exclude.length === 0 ? sql`` : sql`AND id NOT IN ${sql(exclude)}`}
    ORDER BY id
    LIMIT ${input.limit}
    FOR UPDATE SKIP LOCKED`;
}

/**
 * Stored or processed files expiring in (now, until] that have no `file.expiring` event yet,
 * soonest first.
 */
export async function findExpiringFiles(
  sql: Queryable,
  input: { now: Date; until: Date; limit: number; afterId?: string },
): Promise<UploadFileRecord[]> {
  return await sql<UploadFileRecord[]>`
    SELECT ${columns(sql)} FROM upload_file f
    WHERE f.status IN ('stored', 'processed')
      AND f.expires_at > ${input.now} AND f.expires_at <= ${input.until}
      ${input.afterId === undefined ? sql`` : sql`AND f.id > ${input.afterId}`}
      AND NOT ${eventEmitted(sql, "file.expiring", sql`'UploadFile:' || f.id::text`)}
    ORDER BY f.id
    LIMIT ${input.limit}`;
}
