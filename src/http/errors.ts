/**
 * The one place errors become HTTP answers. API clients (paths under /api/, or asking for
 * JSON) get `{"error": {"code", "message"}}`; browsers get the HTML error page, which the app
 * table hands in (`errorHandlers(renderErrorPage)`: src/ renders no pages). A value Postgres
 * refuses as malformed is the client's fault (400); anything else that is not an HttpError is
 * logged and answered 500 without details.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { UploadErrorCode } from "../uploads/upload_errors.ts";
import type { AppEnv } from "./app_env.ts";

/** A status an answer with a body may carry (Hono's type: 204 and 304 have none). */
export type Status = ContentfulStatusCode;

/** The HTTP status of each upload refusal: the one domain-error table. */
export const UPLOAD_ERROR_STATUS: Readonly<Record<UploadErrorCode, Status>> = {
  too_large: 413,
  type_not_allowed: 415,
  empty: 400,
  storage_unavailable: 503,
  aborted: 400,
  timeout: 408,
  malformed: 400,
  too_many_files: 400,
  no_files: 400,
  batch_not_found: 404,
  batch_not_open: 409,
  batch_uploading: 409,
};

/** An error with an HTTP status, a stable code and a message safe to show. */
export class HttpError extends Error {
  constructor(
    readonly status: Status,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** True when the client wants JSON (API paths, or Accept: application/json). */
export function wantsJson(c: Context): boolean {
  if (c.req.path.startsWith("/api/")) return true;
  const accept = c.req.header("accept") ?? "";
  return accept.includes("application/json") && !accept.includes("text/html");
}

/** What the HTML error page shows. */
export interface ErrorPageContent {
  status: Status;
  message: string;
  /** Shown so a person can quote it to whoever reads the server log. */
  requestId?: string;
}

/** Renders the HTML error page as a response with `page.status`. */
export type ErrorPageRenderer = (c: Context<AppEnv>, page: ErrorPageContent) => Response;

/** `app.onError` and `app.notFound`: every error mapped to an answer, pages by `errorPage`. */
export function errorHandlers(errorPage: ErrorPageRenderer): {
  onError(error: Error, c: Context<AppEnv>): Response;
  notFound(c: Context<AppEnv>): Response;
} {
  function errorResponse(
    c: Context<AppEnv>,
    status: Status,
    code: string,
    message: string,
    headers: Record<string, string> = {},
  ): Response {
    for (const [name, value] of Object.entries(headers)) c.header(name, value);
    const requestId = c.get("requestId");
    if (wantsJson(c)) {
      return c.json({ error: { code, message, request_id: requestId } }, status);
    }
    return errorPage(c, { status, message, requestId });
  }

  function onError(error: Error, c: Context<AppEnv>): Response {
    if (error instanceof HttpError) {
      return errorResponse(c, error.status, error.code, error.message, error.headers);
    }
    if (error instanceof HTTPException) {
      const status = error.status;
      const message = status === 413 ? "Request body too large" : error.message || "Bad request";
      return errorResponse(c, status, status === 413 ? "too_large" : "bad_request", message);
    }
    if (error instanceof DOMException && error.name === "TimeoutError") {
      c.get("logger")?.warn("request body idle: refused", { path: c.req.path });
      return errorResponse(c, 408, "timeout", `Request refused: ${error.message}`, {
        Connection: "close",
      });
    }
    if (isClientAbort(error)) {
      return errorResponse(c, 400, "aborted", "The request was interrupted");
    }
    const sqlState = malformedValueState(error);
    if (sqlState !== null) {
      // The backstop behind the body readers' checks. Only the SQLSTATE is logged: the error's
      // message can quote the value, and its query and parameters are never logged.
      c.get("logger")?.warn("request refused: Postgres rejected a value", {
        sqlstate: sqlState,
        path: c.req.path,
      });
      return errorResponse(
        c,
        400,
        "malformed_value",
        "Cannot process the request: a value is malformed",
      );
    }
    const logger = c.get("logger");
    logger?.error("request failed", { error, path: c.req.path });
    const id = c.get("requestId");
    return errorResponse(
      c,
      500,
      "internal",
      id ? `Internal error: look up request id ${id} in the server log` : "Internal error",
    );
  }

  function notFound(c: Context<AppEnv>): Response {
    return errorResponse(c, 404, "not_found", `Not found: ${c.req.method} ${c.req.path}`);
  }

  return { onError, notFound };
}

/**
 * SQLSTATEs (Postgres Appendix A, class 22 "data exception") that a value sent by a client
 * causes: a NUL or untranslatable character, a string too long for its column, text that is
 * not a valid uuid or number, a number out of range.
 */
const MALFORMED_VALUE_STATES: ReadonlySet<string> = new Set([
  "22021", // character_not_in_repertoire
  "22P05", // untranslatable_character
  "22001", // string_data_right_truncation
  "22P02", // invalid_text_representation
  "22003", // numeric_value_out_of_range
]);

/** The SQLSTATE when `error` (or an error it wraps) is a postgres.js one of those; else null. */
function malformedValueState(error: unknown): string | null {
  for (let depth = 0; depth < 5 && error instanceof Error; depth++) {
    const code = (error as { code?: unknown }).code;
    if (error.name === "PostgresError" && typeof code === "string") {
      return MALFORMED_VALUE_STATES.has(code) ? code : null;
    }
    error = error.cause;
  }
  return null;
}

function isClientAbort(error: Error): boolean {
  return error.name === "AbortError" ||
    /connection (closed|reset)|body (stream|was) (closed|aborted)|request body.*(aborted|closed)/i
      .test(error.message);
}
