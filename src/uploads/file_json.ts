/** The JSON shapes of files and batches in API answers (snake_case, like the database). */
import type { UploadBatchRecord } from "./batches_repo.ts";
import type { UploadFileRecord } from "./files_repo.ts";

/** A file as the API shows it; `url` is its download link while it has bytes. */
export function fileJson(file: UploadFileRecord, url: string | null): Record<string, unknown> {
  return {
    id: file.id,
    status: file.status,
    original_filename: file.originalFilename,
    content_type: file.contentType,
    size_bytes: file.sizeBytes,
    sha256: file.sha256,
    batch_id: file.batchId,
    uploaded_by: file.uploadedBy,
    storage_backend: file.storageBackend,
    error_message: file.errorMessage,
    expires_at: file.expiresAt?.toISOString() ?? null,
    created_at: file.createdAt.toISOString(),
    updated_at: file.updatedAt.toISOString(),
    url,
  };
}

/** A batch as the API shows it, with its files when given. */
export function batchJson(
  batch: UploadBatchRecord,
  files?: Record<string, unknown>[],
): Record<string, unknown> {
  return {
    id: batch.id,
    status: batch.status,
    idempotency_key: batch.idempotencyKey,
    user_id: batch.userId,
    created_at: batch.createdAt.toISOString(),
    updated_at: batch.updatedAt.toISOString(),
    ...(files === undefined ? {} : { files }),
  };
}
