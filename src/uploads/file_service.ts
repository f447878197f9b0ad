/**
 * Reading files and moving them through their lifecycle (SPEC §4):
 * uploading → stored | failed, stored → processed | deleted | failed, processed → deleted.
 * Every other change is refused with IllegalTransitionError.
 */
import { isUuid } from "../db/ids.ts";
import { emitEvent } from "../outbox/emit.ts";
import { StorageError } from "../storage/storage.ts";
import {
  type FileStatus,
  findFile,
  listFiles,
  updateFileStatus,
  type UploadFileRecord,
} from "./files_repo.ts";
import { IllegalTransitionError, UploadError } from "./upload_errors.ts";
import { type AppDeps, currentTime } from "../app_deps.ts";
import { isExpired } from "./download_links.ts";
import type { Uploader } from "./uploader.ts";

/** Every file status, for validating input. */
export const FILE_STATUSES: readonly FileStatus[] = [
  "uploading",
  "stored",
  "processed",
  "deleted",
  "failed",
];

const TRANSITIONS: Readonly<Record<FileStatus, readonly FileStatus[]>> = {
  uploading: ["stored", "failed"],
  stored: ["processed", "deleted", "failed"],
  processed: ["deleted"],
  deleted: [],
  failed: [],
};

/** True when the lifecycle allows `from` → `to`. */
export function canTransition(from: FileStatus, to: FileStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * The file, when `viewer` may see it (its uploader, or an admin) and it has not expired; null
 * otherwise, and for malformed ids, so callers answer 404 without telling whose file it is.
 *
 * @example
 * const file = await getFile(deps, { fileId: c.req.param("id"), viewer: user });
 */
export async function getFile(
  deps: Pick<AppDeps, "db" | "clock">,
  input: { fileId: string; viewer: Uploader | null },
): Promise<UploadFileRecord | null> {
  if (!isUuid(input.fileId)) return null;
  const file = await findFile(deps.db.sql, input.fileId);
  if (file === null) return null;
  if (input.viewer === null) return null;
  if (!input.viewer.isAdmin && file.uploadedBy !== input.viewer.id) return null;
  if (isExpired(file, currentTime(deps))) return null;
  return file;
}

/** A page of files and the cursor of the next page (null on the last). */
export interface FilePage {
  files: UploadFileRecord[];
  nextCursor: string | null;
}

/**
 * Lists the files `viewer` may see (admins: everyone's), newest first, `limit` per page;
 * files past their expiry are left out unless `includeExpired` (the console shows them).
 * `cursor` is the opaque `nextCursor` of the previous page; a malformed one throws RangeError.
 *
 * @example
 * const page = await listVisibleFiles(deps, { viewer: user, limit: 50 });
 * const next = await listVisibleFiles(deps, { viewer: user, limit: 50, cursor: page.nextCursor! });
 */
export async function listVisibleFiles(
  deps: Pick<AppDeps, "db" | "clock">,
  input: {
    viewer: Uploader;
    status?: FileStatus;
    limit: number;
    cursor?: string;
    includeExpired?: boolean;
  },
): Promise<FilePage> {
  const beforeId = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
  if (beforeId === null) throw new RangeError("Cannot list files: the cursor is malformed");
  // One extra row says whether another page exists without a count query.
  const rows = await listFiles(deps.db.sql, {
    uploadedBy: input.viewer.isAdmin ? null : input.viewer.id,
    status: input.status,
    limit: input.limit + 1,
    beforeId,
    unexpiredAt: input.includeExpired ? undefined : currentTime(deps),
  });
  const files = rows.slice(0, input.limit);
  const last = files.at(-1);
  return {
    files,
    nextCursor: rows.length > input.limit && last ? encodeCursor(last.id) : null,
  };
}

/** The opaque cursor for "files older than `id`". */
export function encodeCursor(id: string): string {
  return btoa(`f:${id}`).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

/** The id inside a cursor, or null when it is not one of ours. */
export function decodeCursor(cursor: string): string | null {
  try {
    const text = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    const id = text.startsWith("f:") ? text.slice(2) : "";
    return isUuid(id) ? id : null;
  } catch {
    return null;
  }
}

/**
 * stored → processed. Null when the file does not exist; IllegalTransitionError otherwise
 * when it is not stored.
 *
 * @example
 * await markFileProcessed(deps, { fileId });
 */
export async function markFileProcessed(
  deps: Pick<AppDeps, "db">,
  input: { fileId: string },
): Promise<UploadFileRecord | null> {
  return await changeStatus(deps, { fileId: input.fileId, to: "processed" });
}

/**
 * stored (or uploading) → failed with `errorMessage`. The object stays until the cleanup job
 * removes failed files' leftovers.
 *
 * @example
 * await markFileFailed(deps, { fileId, errorMessage: "Cannot process \"a.pdf\": it is encrypted" });
 */
export async function markFileFailed(
  deps: Pick<AppDeps, "db">,
  input: { fileId: string; errorMessage: string },
): Promise<UploadFileRecord | null> {
  return await changeStatus(deps, {
    fileId: input.fileId,
    to: "failed",
    errorMessage: input.errorMessage,
  });
}

/**
 * Deletes a stored or processed file: the object first, then in one transaction the status
 * change to `deleted` and the `file.deleted` event {file_id, reason}. A storage failure throws
 * UploadError "storage_unavailable" and leaves the row as it was. Null when the file does not
 * exist; IllegalTransitionError when it is not stored or processed.
 *
 * @example
 * await deleteFile(deps, { fileId, reason: "deleted_by_user" });
 */
export async function deleteFile(
  deps: AppDeps,
  input: { fileId: string; reason: string },
): Promise<UploadFileRecord | null> {
  if (!isUuid(input.fileId)) return null;
  const file = await findFile(deps.db.sql, input.fileId);
  if (file === null) return null;
  if (!canTransition(file.status, "deleted")) {
    throw new IllegalTransitionError(file.id, file.status, "deleted");
  }
  await deleteStoredObject(deps, file);
  const deleted = await markDeleted(deps, { fileId: file.id, reason: input.reason });
  if (deleted !== null) return deleted;
  // Someone else changed the row between our read and our update (a concurrent delete).
  const current = await findFile(deps.db.sql, file.id);
  if (current?.status === "deleted") return current;
  throw new IllegalTransitionError(file.id, current?.status ?? file.status, "deleted");
}

/**
 * Marks a stored or processed file deleted and emits `file.deleted` in the same transaction;
 * null when the row was no longer stored or processed (nothing emitted then).
 */
export async function markDeleted(
  deps: Pick<AppDeps, "db">,
  input: { fileId: string; reason: string },
): Promise<UploadFileRecord | null> {
  return await deps.db.sql.begin(async (tx) => {
    const row = await updateFileStatus(tx, {
      id: input.fileId,
      from: ["stored", "processed"],
      to: "deleted",
    });
    if (row === null) return null;
    await emitEvent(tx, {
      aggregateType: "UploadFile",
      aggregateId: row.id,
      eventType: "file.deleted",
      idempotencyKey: `UploadFile:${row.id}`,
      payload: { file_id: row.id, reason: input.reason },
    });
    return row;
  });
}

/**
 * Deletes the file's object with the configured adapter; throws UploadError
 * "storage_unavailable" when that fails or when the file lives on another backend.
 */
export async function deleteStoredObject(
  deps: AppDeps,
  file: Pick<UploadFileRecord, "id" | "storageKey" | "storageBackend">,
): Promise<void> {
  if (file.storageKey === null) return;
  if (file.storageBackend !== deps.storage.backend) {
    throw new UploadError(
      "storage_unavailable",
      `Cannot delete file "${file.id}": it is stored on "${file.storageBackend}" but STORAGE_BACKEND is "${deps.storage.backend}"`,
    );
  }
  try {
    await deps.storage.deleteObject(file.storageKey);
  } catch (error) {
    if (!(error instanceof StorageError)) throw error;
    deps.logger.error("cannot delete a file's object", {
      file_id: file.id,
      storage_key: file.storageKey,
      kind: error.kind,
      error,
    });
    throw new UploadError(
      "storage_unavailable",
      `Cannot delete file "${file.id}": the storage is unavailable; try again later`,
      null,
      { cause: error },
    );
  }
}

async function changeStatus(
  deps: Pick<AppDeps, "db">,
  input: { fileId: string; to: FileStatus; errorMessage?: string },
): Promise<UploadFileRecord | null> {
  if (!isUuid(input.fileId)) return null;
  // Two tries: a concurrent change between the read and the conditional update is re-checked.
  for (let attempt = 0; attempt < 2; attempt++) {
    const file = await findFile(deps.db.sql, input.fileId);
    if (file === null) return null;
    if (!canTransition(file.status, input.to)) {
      throw new IllegalTransitionError(file.id, file.status, input.to);
    }
    const updated = await updateFileStatus(deps.db.sql, {
      id: file.id,
      from: [file.status],
      to: input.to,
      errorMessage: input.errorMessage,
    });
    if (updated !== null) return updated;
  }
  const file = await findFile(deps.db.sql, input.fileId);
  throw new IllegalTransitionError(input.fileId, file?.status ?? "deleted", input.to);
}
