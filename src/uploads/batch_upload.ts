/**
 * The files of one request, stored one at a time into one batch: the browser form post and the
 * API's multipart post. The edge (src/http/upload_form.ts) reads the request and hands each
 * file here as a name and a byte stream; this module knows the limits (files per request, the
 * request's size, the idempotency key), each file succeeding or failing on its own, and the
 * batch that is created at the first file and finalized at the end.
 *
 * Too many files: files are counted as they arrive, so the request is refused (400) when the
 * first file past the limit begins, before any of its bytes are stored. The files already
 * stored by that request stay stored (bad input never loses data already stored: SPEC §5);
 * the refusal carries them in `partial` and the batch is finalized with them.
 */
import { createBatch, finalizeBatch, MAX_IDEMPOTENCY_KEY } from "./batch_service.ts";
import type { UploadBatchRecord } from "./batches_repo.ts";
import { listBatchFiles, type UploadFileRecord } from "./files_repo.ts";
import { fileDownloadUrl } from "./download_links.ts";
import { failureCode, UploadError, type UploadErrorCode } from "./upload_errors.ts";
import type { AppDeps } from "../app_deps.ts";
import type { Uploader } from "./uploader.ts";
import { uploadFile } from "./upload_service.ts";

/** One file of the request: the client's name for it and its bytes. */
export interface IncomingFile {
  /** The client's filename (untrusted). */
  filename: string;
  /** The bytes; read to the end here, or cancelled when the file is refused before. */
  body: ReadableStream<Uint8Array>;
}

/** One file of the request: the recorded row, its link when stored, why it failed if it did. */
export interface FileOutcome {
  file: UploadFileRecord;
  url: string | null;
  error: { code: UploadErrorCode; message: string } | null;
}

/** What a batch upload did. */
export interface BatchUploadResult {
  /** The batch, finalized (complete, partial or failed). */
  batch: UploadBatchRecord;
  /** The request's files in order (all of the batch's files when `replayed`). */
  files: FileOutcome[];
  /** True when the idempotency key named an already finalized batch: nothing was stored. */
  replayed: boolean;
}

/** A refused request; `partial` holds what it stored before the refusal, if anything. */
export class BatchUploadError extends UploadError {
  override name = "BatchUploadError";

  constructor(
    code: UploadErrorCode,
    message: string,
    readonly partial: BatchUploadResult | null,
    options?: { cause?: unknown },
  ) {
    super(code, message, null, options);
  }
}

/** Options of `BatchUpload`. */
export interface BatchUploadOptions {
  uploader: Uploader;
  /** MAX_FILES_PER_REQUEST. */
  maxFiles: number;
  /** Aborts the storage write in progress (the client went away). */
  signal?: AbortSignal;
  /** The request's id, kept on failed rows. */
  requestId?: string;
}

// Room for part headers and text fields on top of the files themselves.
const REQUEST_OVERHEAD_BYTES = 1024 * 1024;

/** The most bytes one request of `maxFiles` files may carry: maxFiles × FILE_UPLOAD_MAX_SIZE + 1 MiB. */
export function maxRequestBytes(deps: Pick<AppDeps, "config">, maxFiles: number): number {
  return maxFiles * deps.config.uploadMaxSize + REQUEST_OVERHEAD_BYTES;
}

/** The refusal of a request whose declared length is above `maxRequestBytes`. */
export function requestTooLarge(maxBytes: number): BatchUploadError {
  return new BatchUploadError(
    "too_large",
    `Cannot read the form: it is larger than ${maxBytes} bytes (MAX_FILES_PER_REQUEST × FILE_UPLOAD_MAX_SIZE)`,
    null,
  );
}

/**
 * One request's files, in order. Call `add` for each file, then `finish`; when the request
 * cannot go on (malformed, cut off), `refuse` finalizes what was stored and returns the error.
 *
 * @example
 * const upload = new BatchUpload(deps, { uploader: user, maxFiles: 10 });
 * for (const file of files) {
 *   if (await upload.add(file, { idempotencyKey }) === "replayed") return upload.replayed();
 * }
 * const result = await upload.finish(); // result.batch.status: "complete" | "partial" | "failed"
 */
export class BatchUpload {
  readonly #deps: AppDeps;
  readonly #options: BatchUploadOptions;
  readonly #outcomes: FileOutcome[] = [];
  #count = 0;
  #batch: UploadBatchRecord | null = null;
  #replay: UploadBatchRecord | null = null;

  constructor(deps: AppDeps, options: BatchUploadOptions) {
    this.#deps = deps;
    this.#options = options;
  }

  /**
   * Stores one file. The first call creates the batch, or finds the one `idempotencyKey` names:
   * when that one is already finalized, nothing is stored and the answer is "replayed" (call
   * `replayed()`). A refused file (too large, wrong type, empty) is recorded as failed and the
   * request goes on. Throws BatchUploadError for too_many_files and a malformed key, and
   * rethrows an `aborted` UploadError (the body broke off: the request cannot go on; call
   * `refuse`).
   */
  async add(
    file: IncomingFile,
    options: { idempotencyKey?: string | null } = {},
  ): Promise<"stored" | "refused" | "replayed"> {
    const { maxFiles } = this.#options;
    if (++this.#count > maxFiles) {
      await file.body.cancel();
      throw await this.refuse(
        "too_many_files",
        `Cannot upload file ${this.#count} "${file.filename}": at most ${maxFiles} files per request (MAX_FILES_PER_REQUEST); the files before it were stored`,
      );
    }
    const batch = this.#batch ?? await this.#open(file, options.idempotencyKey ?? null);
    if (batch === null) return "replayed";
    try {
      const { file: stored, url } = await uploadFile(this.#deps, {
        body: file.body,
        filename: file.filename,
        uploader: this.#options.uploader,
        batchId: batch.id,
        signal: this.#options.signal,
        requestId: this.#options.requestId,
      });
      this.#outcomes.push({ file: stored, url, error: null });
      return "stored";
    } catch (error) {
      if (!(error instanceof UploadError) || error.file === null) throw error;
      this.#outcomes.push({
        file: error.file,
        url: null,
        error: { code: error.code, message: error.message },
      });
      if (error.code === "aborted" || error.code === "timeout") throw error;
      return "refused";
    }
  }

  /** The batch the idempotency key named, with all its files, as first answered. */
  async replayed(): Promise<BatchUploadResult> {
    const batch = this.#replay;
    if (batch === null) throw new Error("BatchUpload.replayed() before add() answered replayed");
    const files = await listBatchFiles(this.#deps.db.sql, batch.id);
    const outcomes = await Promise.all(files.map(async (file) => ({
      file,
      url: await fileDownloadUrl(this.#deps, file),
      error: file.status === "failed"
        ? { code: failureCode(file), message: file.errorMessage }
        : null,
    })));
    return { batch, files: outcomes, replayed: true };
  }

  /** Finalizes the batch; a request without files is refused (no_files). */
  async finish(): Promise<BatchUploadResult> {
    if (this.#batch === null) {
      throw new BatchUploadError("no_files", "Cannot upload: the form has no files", null);
    }
    return await this.#finalize(this.#batch);
  }

  /** The error that ends the request, with what it stored so far (its batch finalized). */
  async refuse(code: UploadErrorCode, message: string, cause?: unknown): Promise<BatchUploadError> {
    const partial = this.#batch === null ? null : await this.#finalize(this.#batch);
    return new BatchUploadError(code, message, partial, { cause });
  }

  async #open(file: IncomingFile, key: string | null): Promise<UploadBatchRecord | null> {
    if (key !== null && !validIdempotencyKey(key)) {
      await file.body.cancel();
      throw await this.refuse(
        "malformed",
        `Cannot upload: the idempotency key must be at most ${MAX_IDEMPOTENCY_KEY} characters without control characters`,
      );
    }
    const { batch } = await createBatch(this.#deps, {
      uploader: this.#options.uploader,
      idempotencyKey: key === "" ? null : key,
    });
    if (batch.status !== "open") {
      await file.body.cancel();
      this.#replay = batch;
      return null;
    }
    this.#batch = batch;
    return batch;
  }

  async #finalize(batch: UploadBatchRecord): Promise<BatchUploadResult> {
    const finalized = await finalizeBatch(this.#deps, {
      batchId: batch.id,
      viewer: this.#options.uploader,
    });
    return { batch: finalized?.batch ?? batch, files: this.#outcomes, replayed: false };
  }
}

/** "" means no key; else at most 200 characters, none a control (Postgres refuses NUL). */
function validIdempotencyKey(key: string): boolean {
  // deno-lint-ignore no-control-regex -- refusing control characters is the point
  return key.length <= MAX_IDEMPOTENCY_KEY && !/[\u0000-\u001f\u007f]/.test(key) &&
    key.isWellFormed();
}
