/** The domain errors of the uploads folder: conditions callers must handle. */
import type { FileStatus, UploadFileRecord } from "./files_repo.ts";

/**
 * Why an upload (or an upload request) was refused:
 * - `too_large`: crossed FILE_UPLOAD_MAX_SIZE (or the request's total limit)
 * - `type_not_allowed`: the sniffed type is not in FILE_UPLOAD_ALLOWED_TYPES
 * - `empty`: zero bytes
 * - `storage_unavailable`: the storage backend failed (down, denied, bucket missing, disk)
 * - `aborted`: the client went away mid-upload
 * - `timeout`: the client stopped sending (PORTAL_BODY_IDLE_TIMEOUT_SECONDS)
 * - `malformed`: the request body cannot be parsed (multipart)
 * - `too_many_files`: more files than MAX_FILES_PER_REQUEST in one request
 * - `no_files`: a form without any file
 * - `batch_not_found`, `batch_not_open`: the batch to attach to is unknown or finalized
 * - `batch_uploading`: a batch cannot be finalized while files are still uploading
 */
export type UploadErrorCode =
  | "too_large"
  | "type_not_allowed"
  | "empty"
  | "storage_unavailable"
  | "aborted"
  | "timeout"
  | "malformed"
  | "too_many_files"
  | "no_files"
  | "batch_not_found"
  | "batch_not_open"
  | "batch_uploading";

/** An upload refused for a reason the client can act on; `file` is the recorded failed row. */
export class UploadError extends Error {
  override name = "UploadError";

  constructor(
    readonly code: UploadErrorCode,
    message: string,
    readonly file: UploadFileRecord | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A status change the lifecycle does not allow (e.g. deleted → processed). */
export class IllegalTransitionError extends Error {
  override name = "IllegalTransitionError";

  constructor(readonly fileId: string, readonly from: FileStatus, readonly to: FileStatus) {
    super(`Cannot mark file "${fileId}" as ${to}: it is ${from}`);
  }
}

const CODES: ReadonlySet<string> = new Set<UploadErrorCode>([
  "too_large",
  "type_not_allowed",
  "empty",
  "storage_unavailable",
  "aborted",
  "timeout",
]);

/** The code a failed file was refused with (kept in its metadata as `error_code`). */
export function failureCode(file: Pick<UploadFileRecord, "metadata">): UploadErrorCode {
  const code = file.metadata?.error_code;
  return typeof code === "string" && CODES.has(code)
    ? code as UploadErrorCode
    : "storage_unavailable";
}
