/**
 * /api/v1/files and /api/v1/batches (mounted behind `requireToken`): upload, list, read and
 * delete files; create, read and finalize batches. Users see only their own files and batches
 * (another user's answers 404, like an unknown id); admins see all.
 */
import { type Context, Hono } from "hono";
import { isUuid } from "../../src/db/ids.ts";
import {
  createBatch,
  finalizeBatch,
  getBatch,
  MAX_IDEMPOTENCY_KEY,
} from "../../src/uploads/batch_service.ts";
import { fileDownloadUrl } from "../../src/uploads/download_links.ts";
import { batchJson, fileJson } from "../../src/uploads/file_json.ts";
import { filenameFromContentDisposition } from "../../src/http/content_disposition.ts";
import {
  deleteFile,
  FILE_STATUSES,
  getFile,
  listVisibleFiles,
} from "../../src/uploads/file_service.ts";
import type { FileStatus, UploadFileRecord } from "../../src/uploads/files_repo.ts";
import { BatchUploadError, type BatchUploadResult } from "../../src/uploads/batch_upload.ts";
import { multipartBoundary } from "../../src/http/multipart.ts";
import { uploadForm } from "../../src/http/upload_form.ts";
import { IllegalTransitionError, UploadError } from "../../src/uploads/upload_errors.ts";
import { uploadFile } from "../../src/uploads/upload_service.ts";
import type { AppDeps, AppEnv } from "../../src/http/app_env.ts";
import { uploadSlot } from "../../src/http/upload_slot.ts";
import { HttpError, UPLOAD_ERROR_STATUS } from "../../src/http/errors.ts";
import { readJsonObject } from "../../src/http/json_body.ts";
import { uploadAnswer, uploadRefusalAnswer } from "../../src/http/upload_answer.ts";

const DEFAULT_PAGE = 50;
const MAX_PAGE = 100;

/** Upload API routes. */
export function uploadApiRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/files", uploadSlot(deps), async (c) => {
    const contentType = c.req.header("content-type") ?? null;
    if (multipartBoundary(contentType) !== null) return await multipartUpload(deps, c);
    const filename = c.req.query("filename") ??
      filenameFromContentDisposition(c.req.header("content-disposition")) ?? "";
    const batchId = c.req.query("batch_id") ?? null;
    try {
      const { file, url } = await uploadFile(deps, {
        body: c.req.raw.body,
        filename,
        uploader: c.get("user")!,
        batchId,
        declaredSize: contentLength(c),
        requestId: c.get("requestId"),
      });
      c.header("Location", `/api/v1/files/${file.id}`);
      return c.json(fileJson(file, url), 201);
    } catch (error) {
      if (error instanceof UploadError) return uploadErrorResponse(c, error);
      throw error;
    }
  });

  app.get("/files", async (c) => {
    const status = c.req.query("status");
    if (status !== undefined && !FILE_STATUSES.includes(status as FileStatus)) {
      throw new HttpError(
        400,
        "invalid",
        `Cannot list files: "status" must be one of ${FILE_STATUSES.join(", ")}, got "${status}"`,
      );
    }
    const limitText = c.req.query("limit");
    const limit = limitText === undefined ? DEFAULT_PAGE : Number(limitText);
    if (
      limitText !== undefined &&
      (!/^\d{1,3}$/.test(limitText) || limit < 1 || limit > MAX_PAGE)
    ) {
      throw new HttpError(
        400,
        "invalid",
        `Cannot list files: "limit" must be a whole number from 1 to ${MAX_PAGE}, got "${limitText}"`,
      );
    }
    let page;
    try {
      page = await listVisibleFiles(deps, {
        viewer: c.get("user")!,
        status: status as FileStatus | undefined,
        limit,
        cursor: c.req.query("cursor"),
      });
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new HttpError(400, "invalid", error.message);
    }
    return c.json({ files: await filesJson(deps, page.files), next_cursor: page.nextCursor });
  });

  app.get("/files/:id", async (c) => {
    const file = await visibleFile(deps, c);
    return c.json(fileJson(file, await fileDownloadUrl(deps, file)));
  });

  app.delete("/files/:id", async (c) => {
    const file = await visibleFile(deps, c);
    try {
      const deleted = await deleteFile(deps, { fileId: file.id, reason: "deleted_by_user" });
      if (deleted === null) throw notFound("file", file.id);
      return c.json(fileJson(deleted, null));
    } catch (error) {
      if (error instanceof IllegalTransitionError) {
        throw new HttpError(
          409,
          "conflict",
          `Cannot delete file "${file.id}": it is ${error.from}`,
        );
      }
      if (error instanceof UploadError) {
        throw new HttpError(UPLOAD_ERROR_STATUS[error.code], error.code, error.message);
      }
      throw error;
    }
  });

  app.post("/batches", async (c) => {
    const body = await optionalJsonObject(c);
    const key = body.idempotency_key ?? null;
    if (
      key !== null &&
      (typeof key !== "string" || key.length < 1 || key.length > MAX_IDEMPOTENCY_KEY)
    ) {
      throw new HttpError(
        400,
        "invalid",
        `Cannot create batch: "idempotency_key" must be a string of 1 to ${MAX_IDEMPOTENCY_KEY} characters`,
      );
    }
    const { batch, created } = await createBatch(deps, {
      uploader: c.get("user")!,
      idempotencyKey: key,
    });
    c.header("Location", `/api/v1/batches/${batch.id}`);
    return c.json(batchJson(batch), created ? 201 : 200);
  });

  app.get("/batches/:id", async (c) => {
    const id = c.req.param("id");
    const found = await getBatch(deps, { batchId: id, viewer: c.get("user")! });
    if (found === null) throw notFound("batch", id);
    return c.json(batchJson(found.batch, await filesJson(deps, found.files)));
  });

  app.post("/batches/:id/finalize", async (c) => {
    const id = c.req.param("id");
    try {
      const found = await finalizeBatch(deps, { batchId: id, viewer: c.get("user")! });
      if (found === null) throw notFound("batch", id);
      return c.json(batchJson(found.batch, await filesJson(deps, found.files)));
    } catch (error) {
      if (error instanceof UploadError) {
        throw new HttpError(UPLOAD_ERROR_STATUS[error.code], error.code, error.message);
      }
      throw error;
    }
  });

  return app;
}

async function multipartUpload(deps: AppDeps, c: Context<AppEnv>): Promise<Response> {
  let result: BatchUploadResult;
  try {
    result = await uploadForm(deps, {
      body: c.req.raw.body,
      contentType: c.req.header("content-type") ?? null,
      contentLength: contentLength(c),
      uploader: c.get("user")!,
      maxFiles: deps.config.maxFilesPerRequest,
      idempotencyKey: c.req.header("x-idempotency-key") ?? null,
      requestId: c.get("requestId"),
    });
  } catch (error) {
    if (!(error instanceof BatchUploadError)) throw error;
    return uploadRefusalAnswer(c, error);
  }
  return uploadAnswer(c, result);
}

/**
 * The answer to a refused upload: the error, plus the recorded failed file. `Connection:
 * close` because the body may be unread: the client should stop sending. Portal does not read
 * the rest either: the server drops the connection once this is sent (request_body_guard.ts).
 */
function uploadErrorResponse(c: Context<AppEnv>, error: UploadError): Response {
  c.header("Connection", "close");
  return c.json(
    {
      error: { code: error.code, message: error.message, request_id: c.get("requestId") },
      ...(error.file === null ? {} : { file: fileJson(error.file, null) }),
    },
    UPLOAD_ERROR_STATUS[error.code],
  );
}

async function visibleFile(deps: AppDeps, c: Context<AppEnv>): Promise<UploadFileRecord> {
  const id = c.req.param("id") ?? "";
  const file = await getFile(deps, { fileId: id, viewer: c.get("user") });
  if (file === null) throw notFound("file", id);
  return file;
}

async function filesJson(
  deps: AppDeps,
  files: UploadFileRecord[],
): Promise<Record<string, unknown>[]> {
  return await Promise.all(files.map(async (f) => fileJson(f, await fileDownloadUrl(deps, f))));
}

function notFound(kind: "file" | "batch", id: string): HttpError {
  const shown = isUuid(id) ? id : id.slice(0, 100);
  return new HttpError(404, "not_found", `Cannot find ${kind} "${shown}"`);
}

function contentLength(c: Context<AppEnv>): number | null {
  const value = c.req.header("content-length");
  return value !== undefined && /^\d{1,16}$/.test(value) ? Number(value) : null;
}

/**
 * A JSON object body, or `{}` when the request carries no body (`curl -X POST`, `-d ''`). A
 * non-empty body still needs a JSON content type (415 otherwise, from readJsonObject).
 */
async function optionalJsonObject(c: Context<AppEnv>): Promise<Record<string, unknown>> {
  const json = /^application\/(.+\+)?json\b/i.test(c.req.header("content-type") ?? "");
  if (c.req.raw.body === null) return {};
  if (!json) {
    // Peek: an empty body means "no options"; anything else is the wrong media type.
    const reader = c.req.raw.body.getReader();
    const { done, value } = await reader.read();
    await reader.cancel().catch(() => {});
    if (done || value.byteLength === 0) return {};
  }
  return await readJsonObject(c);
}
