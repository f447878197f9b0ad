/**
 * Refuses request bodies in a coding Portal does not decode, before any route reads them.
 * Deno's server takes `Transfer-Encoding: gzip, chunked` and hands over the chunked framing
 * with the gzip left on, so a route would store compressed bytes as if they were the file;
 * Portal stores bytes exactly as sent, so a `Content-Encoding` on a body is refused too.
 */
import type { MiddlewareHandler } from "hono";
import { HttpError } from "./errors.ts";

/** Answers 501 for a transfer coding other than `chunked`, 415 for a body's content coding. */
export function requestCodings(): MiddlewareHandler {
  return async function requestCodings(c, next) {
    const transfer = c.req.header("transfer-encoding");
    if (transfer !== undefined && transfer.trim().toLowerCase() !== "chunked") {
      throw new HttpError(
        501,
        "transfer_coding_not_supported",
        `Transfer-Encoding "${
          printable(transfer)
        }" is not supported: send the body plain or chunked`,
        { Connection: "close" },
      );
    }
    const content = c.req.header("content-encoding");
    if (
      content !== undefined && content.trim().toLowerCase() !== "identity" && hasBody(c.req.raw)
    ) {
      throw new HttpError(
        415,
        "content_coding_not_supported",
        `Content-Encoding "${
          printable(content)
        }" is not supported: Portal stores bytes exactly as sent, so send them uncompressed`,
      );
    }
    await next();
  };
}

function hasBody(request: Request): boolean {
  return request.body !== null && request.headers.get("content-length") !== "0";
}

/** The header value as it may appear in a message: printable ASCII, at most 100 characters. */
function printable(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, "?").slice(0, 100);
}
