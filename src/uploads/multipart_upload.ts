/**
 * The browser form post (`multipart/form-data`): up to MAX_FILES_PER_REQUEST files, each
 * streamed into storage as it arrives and succeeding or failing on its own, grouped in a batch
 * that is finalized at the end.
 *
 * Too many files: files are counted as they arrive, so the request is refused (400) when the
 * first file past the limit begins, before any of its bytes are stored. The files already
 * stored by that request stay stored (bad input never loses data already stored: SPEC §5);
 * the error carries them in `partial` and the batch is finalized with them.
 */
import { createBatch, finalizeBatch, MAX_IDEMPOTENCY_KEY } from "./batch_service.ts";
import type { UploadBatchRecord } from "./batches_repo.ts";
import { listBatchFiles, type UploadFileRecord } from "./files_repo.ts";
import { fileDownloadUrl } from "./download_links.ts";
import { multipartBoundary, MultipartError, readMultipart } from "./multipart_stream.ts";
import { failureCode, UploadError, type UploadErrorCode } from "./upload_errors.ts";
import { type AppDeps } from "../app_deps.ts";
import { type Uploader } from "./uploader.ts";
import { uploadFile } from "./upload_service.ts";

/** Input of `uploadMultipart`. */
export interface MultipartUploadInput {
  /** The request body. */
  body: ReadableStream<Uint8Array> | null;
  /** The request's Content-Type (carries the boundary). */
  contentType: string | null;
  /** The request's Content-Length, when sent: above the request limit refuses at once. */
  contentLength?: number | null;
  uploader: Uploader;
  /** MAX_FILES_PER_REQUEST. */
  maxFiles: number;
  /** Reuse (or create) the user's batch with this key; default: the form's `idempotency_key` field when it precedes the files. */
  idempotencyKey?: string | null;
  signal?: AbortSignal;
  /** The request's id, kept on failed rows. */
  requestId?: string;
  /**
   * Called once with the text fields read so far, right before the first file is stored, or
   * at the end when the form has no file. Throw (e.g. a failed CSRF check on the form's
   * `csrf_token` field) to refuse the request before anything is stored or created.
   */
  beforeFirstFile?: (fields: Readonly<Record<string, string>>) => void | Promise<void>;
}

/** One file of the form: the recorded row, its link when stored, and why it failed if it did. */
export interface MultipartFileOutcome {
  file: UploadFileRecord;
  url: string | null;
  error: { code: UploadErrorCode; message: string } | null;
}

/** What `uploadMultipart` did. */
export interface MultipartUploadResult {
  /** The batch, finalized (complete, partial or failed). */
  batch: UploadBatchRecord;
  /** The form's files in form order (all of the batch's files when `replayed`). */
  files: MultipartFileOutcome[];
  /** The form's text fields (first value of each name). */
  fields: Record<string, string>;
  /** True when the idempotency key named an already finalized batch: nothing was read or stored. */
  replayed: boolean;
}

/** A refused form; `partial` holds what the request stored before the refusal, if anything. */
export class MultipartUploadError extends UploadError {
  override name = "MultipartUploadError";

  constructor(
    code: UploadErrorCode,
    message: string,
    readonly partial: MultipartUploadResult | null,
    options?: { cause?: unknown },
  ) {
    super(code, message, null, options);
  }
}

const MAX_FIELD_BYTES = 64 * 1024;
const MAX_FIELDS = 100;
// Room for part headers and text fields on top of the files themselves.
const REQUEST_OVERHEAD_BYTES = 1024 * 1024;

/**
 * Stores the files of a `multipart/form-data` body. Throws MultipartUploadError for a request
 * that cannot be served: malformed (400), too_many_files (400), no_files (400), too_large
 * (the whole request exceeds maxFiles × FILE_UPLOAD_MAX_SIZE: 413), aborted; errors thrown by
 * `beforeFirstFile` pass through unchanged.
 *
 * @example
 * const result = await uploadMultipart(deps, {
 *   body: c.req.raw.body, contentType: c.req.header("content-type") ?? null, uploader: user,
 *   maxFiles: config.maxFilesPerRequest,
 *   beforeFirstFile: (fields) => checkCsrf(c, fields.csrf_token),
 * });
 * result.batch.status; // "complete" | "partial" | "failed"
 */
export async function uploadMultipart(
  deps: AppDeps,
  input: MultipartUploadInput,
): Promise<MultipartUploadResult> {
  const boundary = multipartBoundary(input.contentType);
  if (boundary === null || input.body === null) {
    throw new MultipartUploadError(
      "malformed",
      'Cannot read the form: expected "Content-Type: multipart/form-data" with a boundary and a body',
      null,
    );
  }
  const maxTotalBytes = input.maxFiles * deps.config.uploadMaxSize + REQUEST_OVERHEAD_BYTES;
  if (input.contentLength != null && input.contentLength > maxTotalBytes) {
    throw new MultipartUploadError(
      "too_large",
      `Cannot read the form: it is larger than ${maxTotalBytes} bytes (MAX_FILES_PER_REQUEST × FILE_UPLOAD_MAX_SIZE)`,
      null,
    );
  }

  const fields: Record<string, string> = {};
  const outcomes: MultipartFileOutcome[] = [];
  let fieldCount = 0;
  let fileCount = 0;
  let batch: UploadBatchRecord | null = null;
  let authorized = false;
  const authorize = async () => {
    if (authorized) return;
    await input.beforeFirstFile?.(fields);
    authorized = true;
  };
  const refuse = async (code: UploadErrorCode, message: string, cause?: unknown) => {
    const partial = batch === null
      ? null
      : await finish(deps, batch, input.uploader, outcomes, fields);
    return new MultipartUploadError(code, message, partial, { cause });
  };

  const parts = readMultipart(input.body, { boundary, maxTotalBytes });
  try {
    for await (const part of parts) {
      if (part.filename === null) {
        if (++fieldCount > MAX_FIELDS) {
          throw await refuse(
            "malformed",
            `Cannot read the form: it has more than ${MAX_FIELDS} fields`,
          );
        }
        const text = await readField(part.body, part.name);
        if (!(part.name in fields)) fields[part.name] = text;
        continue;
      }
      // A file input left empty is sent as a part with filename="" and no bytes.
      if (part.filename === "") {
        await part.body.cancel();
        continue;
      }
      if (++fileCount > input.maxFiles) {
        await part.body.cancel();
        throw await refuse(
          "too_many_files",
          `Cannot upload file ${fileCount} "${part.filename}": at most ${input.maxFiles} files per request (MAX_FILES_PER_REQUEST); the files before it were stored`,
        );
      }
      await authorize();
      if (batch === null) {
        const key = input.idempotencyKey ?? fields.idempotency_key ?? null;
        if (key !== null && !validIdempotencyKey(key)) {
          await part.body.cancel();
          throw await refuse(
            "malformed",
            `Cannot upload: the idempotency key must be at most ${MAX_IDEMPOTENCY_KEY} characters without control characters`,
          );
        }
        const { batch: found } = await createBatch(deps, {
          uploader: input.uploader,
          idempotencyKey: key === "" ? null : key,
        });
        if (found.status !== "open") {
          await part.body.cancel();
          return await replay(deps, found, fields);
        }
        batch = found;
      }
      const { outcome, fatal } = await storePart(deps, input, batch.id, part.filename, part.body);
      outcomes.push(outcome);
      if (fatal !== undefined) throw fatal;
    }
  } catch (error) {
    if (error instanceof MultipartUploadError) throw error;
    if (error instanceof MultipartError) {
      throw await refuse(error.code, `Cannot read the form: ${error.message}`, error);
    }
    if (error instanceof UploadError && error.code === "aborted") {
      throw await refuse("aborted", error.message, error);
    }
    throw error;
  }
  await authorize();
  if (batch === null) {
    throw new MultipartUploadError("no_files", "Cannot upload: the form has no files", null);
  }
  return await finish(deps, batch, input.uploader, outcomes, fields);
}

async function storePart(
  deps: AppDeps,
  input: MultipartUploadInput,
  batchId: string,
  filename: string,
  body: ReadableStream<Uint8Array>,
): Promise<{ outcome: MultipartFileOutcome; fatal?: unknown }> {
  try {
    const { file, url } = await uploadFile(deps, {
      body,
      filename,
      uploader: input.uploader,
      batchId,
      signal: input.signal,
      requestId: input.requestId,
    });
    return { outcome: { file, url, error: null } };
  } catch (error) {
    if (!(error instanceof UploadError) || error.file === null) throw error;
    const outcome = {
      file: error.file,
      url: null,
      error: { code: error.code, message: error.message },
    };
    // A body that broke off inside a part is a broken request, not just a refused file.
    if (error.code === "aborted") {
      return { outcome, fatal: error.cause instanceof MultipartError ? error.cause : error };
    }
    return { outcome };
  }
}

async function finish(
  deps: AppDeps,
  batch: UploadBatchRecord,
  uploader: Uploader,
  outcomes: MultipartFileOutcome[],
  fields: Record<string, string>,
): Promise<MultipartUploadResult> {
  const finalized = await finalizeBatch(deps, { batchId: batch.id, viewer: uploader });
  return { batch: finalized?.batch ?? batch, files: outcomes, fields, replayed: false };
}

async function replay(
  deps: AppDeps,
  batch: UploadBatchRecord,
  fields: Record<string, string>,
): Promise<MultipartUploadResult> {
  const files = await listBatchFiles(deps.db.sql, batch.id);
  const outcomes = await Promise.all(files.map(async (file) => ({
    file,
    url: await fileDownloadUrl(deps, file),
    error: file.status === "failed"
      ? { code: failureCode(file), message: file.errorMessage }
      : null,
  })));
  return { batch, files: outcomes, fields, replayed: true };
}

/** "" means no key; else at most 200 characters, none a control (Postgres refuses NUL). */
function validIdempotencyKey(key: string): boolean {
  // deno-lint-ignore no-control-regex -- refusing control characters is the point
  return key.length <= MAX_IDEMPOTENCY_KEY && !/[\u0000-\u001f\u007f]/.test(key) &&
    key.isWellFormed();
}

async function readField(body: ReadableStream<Uint8Array>, name: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > MAX_FIELD_BYTES) {
      // Leaving the loop cancels the part's body.
      throw new MultipartError(
        "malformed",
        `field "${name}" is longer than ${MAX_FIELD_BYTES} bytes`,
      );
    }
    chunks.push(chunk);
  }
  return new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer());
}
