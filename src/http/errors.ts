/**
 * The one place errors become HTTP answers. API clients (paths under /api/, or asking for
 * JSON) get `{"error": {"code", "message"}}`; browsers get a small HTML page. Anything that is
 * not an HttpError is logged and answered 500 without details.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "./context.ts";
import { renderPage } from "./render.tsx";
import { ErrorPage } from "../../routes/_error.tsx";

/** An error with an HTTP status, a stable code and a message safe to show. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
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

/** Builds the error response for `status`, `code`, `message`. */
export function errorResponse(
  c: Context<AppEnv>,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  for (const [name, value] of Object.entries(headers)) c.header(name, value);
  if (wantsJson(c)) {
    // deno-lint-ignore no-explicit-any -- Hono types status as a literal union
    return c.json({ error: { code, message } }, status as any);
  }
  return renderPage(c, ErrorPage({ status, message }), { status, title: "Error" });
}

/** `app.onError`: maps every error to an answer. */
export function handleError(error: Error, c: Context<AppEnv>): Response {
  if (error instanceof HttpError) {
    return errorResponse(c, error.status, error.code, error.message, error.headers);
  }
  if (error instanceof HTTPException) {
    const status = error.status;
    const message = status === 413 ? "Request body too large" : error.message || "Bad request";
    return errorResponse(c, status, status === 413 ? "too_large" : "bad_request", message);
  }
  if (isClientAbort(error)) {
    return errorResponse(c, 400, "aborted", "The request was interrupted");
  }
  const logger = c.get("logger");
  logger?.error("request failed", { error, path: c.req.path });
  return errorResponse(c, 500, "internal", "Internal error; see the server log for the request id");
}

/** `app.notFound`. */
export function handleNotFound(c: Context<AppEnv>): Response {
  return errorResponse(c, 404, "not_found", `Not found: ${c.req.method} ${c.req.path}`);
}

function isClientAbort(error: Error): boolean {
  return error.name === "AbortError" ||
    /connection (closed|reset)|body (stream|was) (closed|aborted)|request body.*(aborted|closed)/i
      .test(error.message);
}
