/**
 * The edge of a multipart upload (`POST /upload`, `POST /api/v1/files` as
 * `multipart/form-data`): parse the body with the streaming reader, keep the text fields,
 * check the form's CSRF token before the first file reaches the upload service, and hand each
 * file part to it (`BatchUpload`) as a name and a byte stream, one at a time.
 */
import { multipartBoundary, MultipartError, readMultipart } from "./multipart.ts";
import { verifyCsrf } from "./middleware.ts";
import {
  BatchUpload,
  BatchUploadError,
  type BatchUploadResult,
  maxRequestBytes,
  requestTooLarge,
} from "../uploads/batch_upload.ts";
import { UploadError } from "../uploads/upload_errors.ts";
import type { AppDeps } from "../app_deps.ts";
import type { Uploader } from "../uploads/uploader.ts";

/** Input of `uploadForm`. */
export interface UploadFormInput {
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
  /**
   * A browser form post: the session's token, and the `X-CSRF-Token` header if sent. The
   * header, else the form's `csrf_token` field (which must precede the files), must match
   * before anything is stored or created (403 otherwise). Absent: no check (bearer-token API).
   */
  csrf?: { expected: string | undefined; header?: string | undefined };
  signal?: AbortSignal;
  /** The request's id, kept on failed rows. */
  requestId?: string;
}

const MAX_FIELD_BYTES = 64 * 1024;
const MAX_FIELDS = 100;

/**
 * Stores the files of a `multipart/form-data` body. Throws BatchUploadError for a request
 * that cannot be served: malformed (400), too_many_files (400), no_files (400), too_large
 * (the whole request exceeds maxFiles × FILE_UPLOAD_MAX_SIZE: 413), aborted; and HttpError
 * 403 for a failed CSRF check.
 *
 * @example
 * const result = await uploadForm(deps, {
 *   body: c.req.raw.body, contentType: c.req.header("content-type") ?? null, uploader: user,
 *   maxFiles: config.maxFilesPerRequest, csrf: { expected: session.csrfToken },
 * });
 * result.batch.status; // "complete" | "partial" | "failed"
 */
export async function uploadForm(
  deps: AppDeps,
  input: UploadFormInput,
): Promise<BatchUploadResult> {
  const boundary = multipartBoundary(input.contentType);
  if (boundary === null || input.body === null) {
    throw new BatchUploadError(
      "malformed",
      'Cannot read the form: expected "Content-Type: multipart/form-data" with a boundary and a body',
      null,
    );
  }
  const maxTotalBytes = maxRequestBytes(deps, input.maxFiles);
  if (input.contentLength != null && input.contentLength > maxTotalBytes) {
    throw requestTooLarge(maxTotalBytes);
  }

  const upload = new BatchUpload(deps, {
    uploader: input.uploader,
    maxFiles: input.maxFiles,
    signal: input.signal,
    requestId: input.requestId,
  });
  const fields: Record<string, string> = {};
  let fieldCount = 0;
  let checked = false;
  const checkOnce = () => {
    if (!checked && input.csrf) {
      verifyCsrf(input.csrf.expected, input.csrf.header ?? fields.csrf_token);
    }
    checked = true;
  };

  try {
    for await (const part of readMultipart(input.body, { boundary, maxTotalBytes })) {
      if (part.filename === null) {
        if (++fieldCount > MAX_FIELDS) {
          throw await upload.refuse(
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
      try {
        checkOnce();
      } catch (error) {
        await part.body.cancel();
        throw error;
      }
      const idempotencyKey = input.idempotencyKey ?? fields.idempotency_key ?? null;
      const added = await upload.add({ filename: part.filename, body: part.body }, {
        idempotencyKey,
      });
      if (added === "replayed") return await upload.replayed();
    }
  } catch (error) {
    if (error instanceof BatchUploadError) throw error;
    if (error instanceof MultipartError) {
      throw await upload.refuse(error.code, `Cannot read the form: ${error.message}`, error);
    }
    if (error instanceof UploadError && error.code === "timeout") {
      throw await upload.refuse("timeout", error.message, error);
    }
    if (error instanceof UploadError && error.code === "aborted") {
      // The body broke off inside a file: a broken request, not just a refused file.
      const cause = error.cause;
      if (cause instanceof MultipartError) {
        throw await upload.refuse(cause.code, `Cannot read the form: ${cause.message}`, cause);
      }
      throw await upload.refuse("aborted", error.message, error);
    }
    throw error;
  }
  checkOnce();
  return await upload.finish();
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
