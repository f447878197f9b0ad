/**
 * The rules of storage keys, the same on every backend: what a key may be, where the parts of
 * resumable uploads live, and what a byte range must look like.
 */
import { type ByteRange, StorageError } from "./storage.ts";

/** Prefix of the parts of resumable uploads, on every backend. */
export const PARTS_PREFIX = "tmp/parts";

const MAX_KEY_BYTES = 1024;
// Control characters make keys unprintable in logs and some S3 clones reject them.
// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Throws StorageError "invalid_key" unless `key` is a plain relative path: no "..", "." or
 * empty segments, no leading slash or drive letter, no backslash, NUL or control characters,
 * and not under the reserved "tmp/" prefix where parts live.
 */
export function assertValidKey(key: string): void {
  const reason = keyProblem(key);
  if (reason !== null) {
    throw new StorageError("invalid_key", `Cannot use storage key "${printable(key)}": ${reason}`);
  }
}

function keyProblem(key: string): string | null {
  if (typeof key !== "string" || key === "") return "it is empty";
  if (new TextEncoder().encode(key).byteLength > MAX_KEY_BYTES) {
    return `it is longer than ${MAX_KEY_BYTES} bytes`;
  }
  if (key.includes("\\")) return "backslashes are not allowed";
  if (CONTROL_CHARS.test(key)) return "control characters are not allowed";
  if (key.startsWith("/") || /^[A-Za-z]:/.test(key)) return "absolute paths are not allowed";
  const segments = key.split("/");
  if (segments.some((s) => s === "..")) return `".." segments are not allowed`;
  if (segments.some((s) => s === "." || s === "")) return `empty or "." segments are not allowed`;
  if (segments[0] === "tmp") return `the "tmp/" prefix is reserved for upload parts`;
  return null;
}

/** Throws StorageError "invalid_key" unless the session id and part number are safe names. */
export function assertValidPart(sessionId: string, partNumber: number): void {
  if (typeof sessionId !== "string" || !SESSION_ID.test(sessionId)) {
    throw new StorageError(
      "invalid_key",
      `Cannot use upload session id "${
        printable(String(sessionId))
      }": expected 1-128 letters, digits, ".", "_" or "-"`,
    );
  }
  if (!Number.isSafeInteger(partNumber) || partNumber < 0) {
    throw new StorageError(
      "invalid_key",
      `Cannot use part number "${partNumber}": expected a whole number >= 0`,
    );
  }
}

/** Throws StorageError "invalid_key" unless the session id is a safe name. */
export function assertValidSession(sessionId: string): void {
  assertValidPart(sessionId, 0);
}

/** The storage key of a part of a resumable upload, the same on every backend. */
export function partKey(sessionId: string, partNumber: number): string {
  return `${PARTS_PREFIX}/${sessionId}/${partNumber}`;
}

/** Throws RangeError unless `range` is a well-formed inclusive byte range. */
export function assertValidRange(range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`Cannot read byte range "${start}-${end}": expected 0 <= start <= end`);
  }
}

/** Escapes characters that would make a key unreadable in a message. */
function printable(value: string): string {
  return value.replace(
    new RegExp(CONTROL_CHARS.source, "g"),
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  ).slice(0, 200);
}
