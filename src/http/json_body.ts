/** Reads a small JSON request body with clear 4xx errors. */
import type { Context } from "hono";
import { HttpError } from "./errors.ts";

/** Parses the body as a JSON object of at most `maxBytes` (default 64 KiB). */
export async function readJsonObject(
  c: Context,
  maxBytes = 64 * 1024,
): Promise<Record<string, unknown>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/(.+\+)?json\b/i.test(type)) {
    throw new HttpError(
      415,
      "unsupported_media_type",
      `Cannot read the body: expected "Content-Type: application/json", got "${type}"`,
    );
  }
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > maxBytes) {
    throw new HttpError(413, "too_large", `Cannot read the body: larger than ${maxBytes} bytes`);
  }
  const reader = c.req.raw.body?.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (reader) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new HttpError(413, "too_large", `Cannot read the body: larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const text = new TextDecoder().decode(await new Blob(chunks as BlobPart[]).arrayBuffer());
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new HttpError(
      400,
      "malformed_json",
      `Cannot read the body: malformed JSON: ${(error as Error).message}`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, "malformed_json", "Cannot read the body: expected a JSON object");
  }
  return value as Record<string, unknown>;
}
