/**
 * The JSON answer to a multipart upload, the same for the API (`POST /api/v1/files`) and the
 * upload page (`POST /upload` asked for JSON): the batch and each file with its outcome.
 * Status: 201 when something was stored (or nothing was refused), 200 for a replayed
 * idempotent request, and when nothing was stored the first refusal's status with its error,
 * as a single-file upload answers.
 */
import type { Context } from "hono";
import { batchJson, fileJson } from "../uploads/file_json.ts";
import type { BatchUploadError, BatchUploadResult } from "../uploads/batch_upload.ts";
import type { AppEnv } from "./app_env.ts";
import { UPLOAD_ERROR_STATUS } from "./errors.ts";

/** `{batch, files}` of a multipart upload's result. */
export function uploadResultJson(result: BatchUploadResult): Record<string, unknown> {
  return {
    batch: batchJson(result.batch),
    files: result.files.map((outcome) => ({
      ...fileJson(outcome.file, outcome.url),
      error: outcome.error,
    })),
  };
}

/** The answer to a finished multipart upload. */
export function uploadAnswer(c: Context<AppEnv>, result: BatchUploadResult): Response {
  const body = uploadResultJson(result);
  if (result.replayed) return c.json(body, 200);
  const firstError = result.files.find((outcome) => outcome.error !== null)?.error ?? null;
  const anyStored = result.files.some((outcome) => outcome.error === null);
  if (anyStored || firstError === null) return c.json(body, 201);
  // The client may still be sending bytes Portal will not read.
  c.header("Connection", "close");
  return c.json(
    { error: { ...firstError, request_id: c.get("requestId") }, ...body },
    UPLOAD_ERROR_STATUS[firstError.code],
  );
}

/** The answer to a multipart upload cut short: the error, and what was stored before it. */
export function uploadRefusalAnswer(c: Context<AppEnv>, error: BatchUploadError): Response {
  c.header("Connection", "close");
  return c.json(
    {
      error: { code: error.code, message: error.message, request_id: c.get("requestId") },
      ...(error.partial === null ? {} : uploadResultJson(error.partial)),
    },
    UPLOAD_ERROR_STATUS[error.code],
  );
}
