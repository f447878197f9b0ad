/**
 * GET/HEAD /files/:id/download: for the owner or an admin (session cookie or bearer token), or
 * anyone holding a valid signed link (`?expires=&sig=`). Local files stream with Range, ETag
 * and If-None-Match; S3 files redirect to a presigned URL. Every answer carrying bytes has
 * `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox`, and only raster
 * images and PDF are inline (SPEC §5 Security), so uploaded HTML or SVG never runs here.
 */
import { type Context, Hono } from "hono";
import { bearerUser } from "../src/http/middleware.ts";
import { contentDisposition } from "../src/http/content_disposition.ts";
import { authorizeDownload, openDownload, presentation } from "../src/uploads/download_service.ts";
import type { UploadFileRecord } from "../src/uploads/files_repo.ts";
import { etagMatches, parseRange } from "../src/http/byte_range.ts";
import type { AppDeps, AppEnv } from "../src/http/app_env.ts";
import { HttpError, wantsJson } from "../src/http/errors.ts";

const SAFETY_HEADERS = {
  "X-Content-Type-Options": "nosniff",
  "Content-Security-Policy": "sandbox",
} as const;

/** Download routes (outside /api: cookie, bearer token or signed link). */
export function downloadRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  // Hono answers HEAD with the GET handler and drops the body; the handler skips opening it.
  app.get("/files/:id/download", async (c) => {
    const fileId = c.req.param("id");
    const expires = c.req.queries("expires");
    const sig = c.req.queries("sig");
    // A parameter given twice is no link: a proxy that reads the other value would disagree.
    const link = expires !== undefined || sig !== undefined
      ? {
        expires: expires?.length === 1 ? expires[0]! : "",
        sig: sig?.length === 1 ? sig[0]! : "",
      }
      : null;
    const viewer = link === null ? await requestUser(deps, c) : null;
    if (link === null && viewer === null) {
      if (!wantsJson(c)) {
        const next = encodeURIComponent(c.req.path);
        return c.redirect(`/login?next=${next}`, 303);
      }
      throw new HttpError(
        401,
        "unauthorized",
        'Cannot download: sign in or send "Authorization: Bearer <token>"',
        {
          "WWW-Authenticate": 'Bearer realm="portal"',
        },
      );
    }

    const access = await authorizeDownload(deps, { fileId, viewer, link });
    switch (access.kind) {
      case "link_invalid":
        throw new HttpError(
          403,
          "link_invalid",
          "Cannot download: the link's signature is invalid",
        );
      case "link_outlives_file":
        throw new HttpError(
          403,
          "link_invalid",
          "Cannot download: the link would outlive its file, so it was not made by Portal",
        );
      case "link_expired":
        throw new HttpError(
          403,
          "link_expired",
          `Cannot download: the link expired at ${access.expiredAt.toISOString()}; ask for a new one`,
        );
      case "not_found":
        throw new HttpError(404, "not_found", `Cannot find file "${fileId.slice(0, 100)}"`);
      case "gone":
        throw new HttpError(
          410,
          "gone",
          `Cannot download "${presentation(access.file).filename}": the file ${
            access.file.status === "deleted" ? "was deleted" : "has expired"
          }`,
        );
    }
    return await serveFile(deps, c, access.file);
  });
  return app;
}

async function serveFile(
  deps: AppDeps,
  c: Context<AppEnv>,
  file: UploadFileRecord,
): Promise<Response> {
  const shown = presentation(file);
  const etag = `"${file.sha256}"`;
  const headers: Record<string, string> = {
    ...SAFETY_HEADERS,
    "Content-Type": shown.contentType,
    "Content-Disposition": contentDisposition(shown.filename, shown.inline),
    "Cache-Control": "private, no-cache",
    "Accept-Ranges": "bytes",
    ETag: etag,
  };
  if (etagMatches(c.req.header("if-none-match"), etag)) {
    return new Response(null, { status: 304, headers });
  }
  // RFC 9110 §13.1.5: a Range with a stale If-Range validator gets the whole file.
  const ifRange = c.req.header("if-range");
  const rangeHeader = ifRange === undefined || ifRange.trim() === etag
    ? c.req.header("range")
    : undefined;
  const range = parseRange(rangeHeader, file.sizeBytes);
  if (range.kind === "unsatisfiable") {
    return new Response(null, {
      status: 416,
      headers: { ...headers, "Content-Range": `bytes */${file.sizeBytes}` },
    });
  }
  const source = await openDownload(deps, file, {
    range: range.kind === "range" ? { start: range.start, end: range.end } : undefined,
    head: c.req.method === "HEAD",
  });
  if (source.kind === "missing") {
    c.get("logger").warn("stored file has no object", { file_id: file.id });
    throw new HttpError(
      404,
      "not_found",
      `Cannot download "${shown.filename}": its bytes are missing from storage`,
    );
  }
  if (source.kind === "redirect") {
    return new Response(null, {
      status: 302,
      headers: { Location: source.url, "Cache-Control": "no-store", ...SAFETY_HEADERS },
    });
  }
  if (source.range === null) {
    headers["Content-Length"] = String(source.size);
    return new Response(source.body, { status: 200, headers });
  }
  const { start, end } = source.range;
  headers["Content-Range"] = `bytes ${start}-${end}/${source.size}`;
  headers["Content-Length"] = String(end - start + 1);
  return new Response(source.body, { status: 206, headers });
}

/** The owner of a valid bearer token, else the session user (401 for a bad token). */
async function requestUser(
  deps: AppDeps,
  c: Context<AppEnv>,
): Promise<{ id: string; isAdmin: boolean } | null> {
  return await bearerUser(deps, c) ?? c.get("user");
}
