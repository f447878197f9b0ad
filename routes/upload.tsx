/**
 * GET /upload: the upload page (the UploadZone island, which is a working form without
 * JavaScript). POST /upload: that form's multipart post, answered with a results page, or JSON
 * for `Accept: application/json`.
 */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "../src/http/app_env.ts";
import { uploadSlot } from "../src/http/upload_slot.ts";
import { HttpError, UPLOAD_ERROR_STATUS, wantsJson } from "../src/http/errors.ts";
import { Island } from "../components/Island.tsx";
import { requireUser } from "../src/http/middleware.ts";
import { renderPage } from "../components/render.tsx";
import { uploadAnswer, uploadRefusalAnswer } from "../src/http/upload_answer.ts";
import { uploadForm } from "../src/http/upload_form.ts";
import { BatchUploadError, type BatchUploadResult } from "../src/uploads/batch_upload.ts";
import { formatBytes } from "../islands/format.ts";

/** Props of `UploadResults`. */
export interface UploadResultsProps {
  result: BatchUploadResult;
  /** Why the request was cut short (e.g. too many files), when it was. */
  refusal?: string;
}

/** The no-JavaScript results page: one row per file, stored with its digest or why not. */
export function UploadResults({ result, refusal }: UploadResultsProps) {
  const { batch, files } = result;
  const stored = files.filter((outcome) => outcome.error === null).length;
  const failed = files.length - stored;
  return (
    <section class="card">
      <h1>Upload {batch.status}</h1>
      {refusal && <p class="error" role="alert">{refusal}</p>}
      <p class={failed === 0 ? "ok" : stored === 0 ? "error" : "muted"} role="status">
        {stored} of {files.length} file{files.length === 1 ? "" : "s"} stored
        {failed > 0 ? `, ${failed} not stored` : ""}
      </p>
      <ul class="files">
        {files.map(({ file, url, error }) => (
          <li
            class={`file ${error === null ? "stored" : "failed"}`}
            data-state={error === null ? "stored" : "failed"}
            data-name={file.originalFilename}
          >
            <div class="file-head">
              <span class="file-name">{file.originalFilename}</span>
              <span class="muted">{formatBytes(file.sizeBytes)}</span>
              {url && <a href={url} download={file.originalFilename}>Download</a>}
            </div>
            {error === null
              ? (
                <p class="result ok">
                  Stored as {file.contentType}. SHA-256 <code class="sha256">{file.sha256}</code>
                </p>
              )
              : <p class="result error">Not stored: {error.message}</p>}
          </li>
        ))}
      </ul>
      <p>
        <a class="button" href="/upload">Upload more files</a>
      </p>
    </section>
  );
}

/** Routes of the upload page. */
export function uploadRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const { config } = deps;

  app.get("/upload", requireUser(), (c) => {
    return renderPage(
      c,
      <section class="card">
        <h1>Upload files</h1>
        <Island
          name="UploadZone"
          props={{
            csrfToken: c.get("session")?.csrfToken ?? "",
            maxFiles: config.maxFilesPerRequest,
            maxSize: config.uploadMaxSize,
            allowedTypes: config.uploadAllowedTypes,
          }}
        />
      </section>,
      { title: "Upload", islands: true },
    );
  });

  app.post("/upload", requireUser(), uploadSlot(deps), async (c) => {
    const json = wantsJson(c);
    let result: BatchUploadResult;
    try {
      result = await uploadForm(deps, {
        body: c.req.raw.body,
        contentType: c.req.header("content-type") ?? null,
        contentLength: contentLength(c.req.header("content-length")),
        uploader: c.get("user")!,
        maxFiles: config.maxFilesPerRequest,
        requestId: c.get("requestId"),
        // The form's first field, checked before any file part: a forged post stores nothing.
        csrf: { expected: c.get("session")?.csrfToken, header: c.req.header("x-csrf-token") },
      });
    } catch (error) {
      if (error instanceof HttpError || error instanceof BatchUploadError) {
        // The browser may still be sending file bytes Portal will not read.
        c.header("Connection", "close");
      }
      if (!(error instanceof BatchUploadError)) throw error;
      const status = UPLOAD_ERROR_STATUS[error.code];
      if (error.partial === null) throw new HttpError(status, error.code, error.message);
      // Cut short after some files were stored: show them, with why the rest was refused.
      if (json) return uploadRefusalAnswer(c, error);
      return renderPage(c, <UploadResults result={error.partial} refusal={error.message} />, {
        status,
        title: "Upload results",
      });
    }
    if (json) return uploadAnswer(c, result);
    // Nothing stored: the status of the first refusal, as the API answers a single file.
    const firstError = result.files.find((outcome) => outcome.error !== null)?.error ?? null;
    const anyStored = result.files.some((outcome) => outcome.error === null);
    const status = anyStored || firstError === null ? 200 : UPLOAD_ERROR_STATUS[firstError.code];
    return renderPage(c, <UploadResults result={result} />, { status, title: "Upload results" });
  });

  return app;
}

function contentLength(value: string | undefined): number | null {
  return value !== undefined && /^\d{1,16}$/.test(value) ? Number(value) : null;
}
