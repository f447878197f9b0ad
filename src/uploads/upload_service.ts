/**
 * Storing one uploaded file: stream the body through validation into storage, then record the
 * `stored` row and its `file.stored` event in one transaction. Every refusal becomes a
 * `failed` row with a readable message, no event, and no bytes left in storage.
 */
import { isUuid, newId } from "../db/ids.ts";
import { emitEvent } from "../outbox/emit.ts";
import { StorageError } from "../storage/storage.ts";
import { findBatch } from "./batches_repo.ts";
import { eventLinkExpiry, fileDownloadUrl } from "./download_links.ts";
import { FALLBACK_NAME, originalFilename } from "./file_names.ts";
import { insertFile, type NewFile, type UploadFileRecord } from "./files_repo.ts";
import { fileStorageKey } from "./storage_keys.ts";
import { UploadError } from "./upload_errors.ts";
import { recordUpload, type UploadOutcome } from "./upload_metrics.ts";
import { type AppDeps, currentTime } from "../app_deps.ts";
import { type Uploader } from "./uploader.ts";
import { validateUpload, type ValidationState } from "./validation.ts";

/** Input of `uploadFile`. */
export interface UploadFileInput {
  /** The file's bytes; null counts as empty. */
  body: ReadableStream<Uint8Array> | null;
  /** The client's filename (untrusted; "" when none was sent). */
  filename: string;
  /** Recorded as `uploaded_by`; null for system uploads. */
  uploader: Uploader | null;
  /** Attach to this batch: it must be the uploader's and still open. */
  batchId?: string | null;
  /** The request's Content-Length when known: above the limit refuses before reading. */
  declaredSize?: number | null;
  /** Aborts the storage write (the client went away). */
  signal?: AbortSignal;
  /** The request's id: kept on a failed row and quoted where the message says to look it up. */
  requestId?: string;
}

/** A stored file and its download link. */
export interface StoredUpload {
  file: UploadFileRecord;
  /** Presigned (S3) or signed Portal link (local), valid AWS_QUERYSTRING_EXPIRE seconds. */
  url: string | null;
}

/**
 * Streams one file into storage and records it. Throws UploadError (its `file` is the
 * recorded failed row) for: too_large, type_not_allowed, empty, storage_unavailable, aborted,
 * batch_not_found, batch_not_open (the last two record nothing).
 *
 * @example
 * const { file, url } = await uploadFile(deps, {
 *   body: request.body, filename: "report.pdf", uploader: user,
 * });
 * file.status; // "stored"
 */
export async function uploadFile(deps: AppDeps, input: UploadFileInput): Promise<StoredUpload> {
  const original = originalFilename(input.filename);
  const shown = original === "" ? FALLBACK_NAME : original;
  const batchId = input.batchId ?? null;
  if (batchId !== null) await ensureOpenBatch(deps, batchId, input.uploader);

  const id = newId();
  const now = currentTime(deps);
  const base = {
    id,
    batchId,
    uploadedBy: input.uploader?.id ?? null,
    originalFilename: original,
    storageBackend: deps.storage.backend,
    expiresAt: new Date(now.getTime() + deps.config.uploadTtlHours * 3_600_000),
  };
  const fail = async (
    outcome: UploadOutcome,
    error: { code: UploadError["code"]; message: string },
    state: Partial<ValidationState>,
    cause?: unknown,
  ): Promise<never> => {
    recordUpload(deps.metrics, outcome, state.bytes ?? 0);
    const file = await insertFile(deps.db.sql, {
      ...base,
      contentType: state.contentType ?? "",
      sizeBytes: state.bytes ?? 0,
      sha256: "",
      storageKey: null,
      status: "failed",
      errorMessage: error.message,
      metadata: {
        error_code: error.code,
        ...(input.requestId ? { request_id: input.requestId } : {}),
      },
    });
    throw new UploadError(error.code, error.message, file, { cause });
  };

  const max = deps.config.uploadMaxSize;
  if (input.declaredSize != null && input.declaredSize > max) {
    const message = `File "${shown}" is too large: it exceeds FILE_UPLOAD_MAX_SIZE (${max} bytes)`;
    return await fail("too_large", { code: "too_large", message }, {});
  }
  if (input.body === null) {
    const message = "Cannot store upload: the file is empty";
    return await fail("empty", { code: "empty", message }, {});
  }

  const key = fileStorageKey(id, original, now);
  const { stream, state } = validateUpload(input.body, {
    maxSize: max,
    allowedTypes: deps.config.uploadAllowedTypes,
    filename: shown,
  });
  let stored: { size: number; sha256: string };
  try {
    stored = await deps.storage.putObject(key, stream, { signal: input.signal });
  } catch (error) {
    if (state.rejection !== null) {
      const { code, message } = state.rejection;
      return await fail(code, { code, message }, state);
    }
    if (isIdleTimeout(state.sourceError)) {
      const message =
        `Cannot store upload "${shown}": ${state.sourceError.message} (after ${state.bytes} bytes)`;
      deps.logger.warn("upload body idle: refused", { file_id: id, bytes: state.bytes });
      return await fail("timeout", { code: "timeout", message }, state, state.sourceError);
    }
    if (
      state.sourceError !== undefined || input.signal?.aborted ||
      (error instanceof StorageError && error.kind === "aborted")
    ) {
      const message =
        `Cannot store upload "${shown}": the transfer was interrupted after ${state.bytes} bytes`;
      return await fail("aborted", { code: "aborted", message }, state, state.sourceError ?? error);
    }
    if (error instanceof StorageError) {
      deps.logger.error("upload storage write failed", {
        file_id: id,
        storage_key: key,
        kind: error.kind,
        error,
      });
      const message = `Cannot store upload "${shown}": the storage is unavailable; try again later${
        input.requestId ? ` (request id ${input.requestId} in the server log)` : ""
      }`;
      return await fail("storage_unavailable", { code: "storage_unavailable", message }, state);
    }
    recordUpload(deps.metrics, "error", state.bytes);
    throw error;
  }

  const file = await commitStoredFile(deps, {
    ...base,
    contentType: state.contentType ?? "application/octet-stream",
    sizeBytes: stored.size,
    sha256: stored.sha256,
    storageKey: key,
    status: "stored",
    errorMessage: "",
  });
  recordUpload(deps.metrics, "stored", stored.size);
  return file;
}

/**
 * Records a file whose bytes are already at `file.storageKey`: inserts the `stored` row and
 * emits `file.stored` in one transaction. When the transaction fails the object is deleted,
 * so no orphan is left, and the error is rethrown. Also for the resumable (tus) path.
 *
 * @example
 * const { file, url } = await commitStoredFile(deps, { ...row, status: "stored" });
 */
export async function commitStoredFile(deps: AppDeps, file: NewFile): Promise<StoredUpload> {
  const pending = { ...file, status: "stored" as const, metadata: file.metadata ?? {} };
  let url: string | null = null;
  try {
    // Signing needs no network (S3 presigning is local), so it can precede the transaction.
    url = await fileDownloadUrl(deps, {
      ...pending,
      createdAt: currentTime(deps),
      updatedAt: currentTime(deps),
    });
    const record = await deps.db.sql.begin(async (tx) => {
      const row = await insertFile(tx, pending);
      await emitEvent(tx, {
        aggregateType: "UploadFile",
        aggregateId: row.id,
        eventType: "file.stored",
        idempotencyKey: `UploadFile:${row.id}`,
        payload: storedPayload(row),
      });
      return row;
    });
    return { file: record, url };
  } catch (error) {
    if (file.storageKey !== null) {
      await deps.storage.deleteObject(file.storageKey).catch((cleanupError) =>
        deps.logger.error("cannot delete the object of an uncommitted upload", {
          file_id: file.id,
          storage_key: file.storageKey,
          error: cleanupError,
        })
      );
    }
    throw error;
  }
}

/**
 * The `file.stored` payload as stored (SPEC §4); `file.expiring` adds `expires_at`. It holds no
 * link: `link_expires` becomes `url` when the event is sent (`payloadToSend`), so no bearer
 * credential sits in the outbox and every retry sends a link that lives as long as the file.
 */
export function storedPayload(file: UploadFileRecord): Record<string, unknown> {
  return {
    file_id: file.id,
    original_filename: file.originalFilename,
    content_type: file.contentType,
    size_bytes: file.sizeBytes,
    sha256: file.sha256,
    link_expires: eventLinkExpiry(file),
  };
}

async function ensureOpenBatch(
  deps: AppDeps,
  batchId: string,
  uploader: Uploader | null,
): Promise<void> {
  const batch = isUuid(batchId) ? await findBatch(deps.db.sql, batchId) : null;
  // Another user's batch is reported as unknown, like any resource that is not yours.
  if (batch === null || batch.userId !== (uploader?.id ?? null)) {
    throw new UploadError(
      "batch_not_found",
      `Cannot attach upload to batch "${batchId}": no such batch`,
    );
  }
  if (batch.status !== "open") {
    throw new UploadError(
      "batch_not_open",
      `Cannot attach upload to batch "${batchId}": it is already finalized (${batch.status})`,
    );
  }
}

/** True for the error a request body fails with once it has been silent too long. */
function isIdleTimeout(error: unknown): error is DOMException {
  return error instanceof DOMException && error.name === "TimeoutError";
}
