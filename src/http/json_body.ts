/** Reads a small JSON request body with clear 4xx errors. */
import type { Context } from "hono";
import { shownName, textProblem } from "./client_text.ts";
import { HttpError } from "./errors.ts";

/**
 * Parses the body as a JSON object of at most `maxBytes` (default 64 KiB). Every string in it,
 * keys included, must be text Postgres can store (see `textProblem`): 400 `invalid_text`
 * otherwise, naming the field.
 */
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
  const problem = findTextProblem(value);
  if (problem !== null) {
    throw new HttpError(400, "invalid_text", `Cannot read the body: ${problem}`);
  }
  return value as Record<string, unknown>;
}

/**
 * The first string (or key) under `root` that is not storable text, described; else null.
 * Walks with an explicit stack: 64 KiB of `[[[[…` nests deeper than the call stack allows.
 */
function findTextProblem(root: unknown): string | null {
  const pending: { value: unknown; path: string }[] = [{ value: root, path: "" }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, path } = next;
    if (typeof value === "string") {
      const problem = textProblem(value);
      if (problem !== null) return `${shownName(path)} ${problem}`;
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) {
        pending.push({ value: value[i], path: `${path}[${i}]` });
      }
    } else if (typeof value === "object" && value !== null) {
      const entries = Object.entries(value);
      for (const [key] of entries) {
        const problem = textProblem(key);
        if (problem !== null) return `a field name ${problem}`;
      }
      for (const [key, item] of entries.reverse()) {
        pending.push({ value: item, path: path === "" ? key : `${path}.${key}` });
      }
    }
  }
  return null;
}
