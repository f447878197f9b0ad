/**
 * The storage contract shared by the local-disk and S3 adapters: temporary parts of resumable
 * uploads, final objects, and the errors callers must handle. Bytes always move as streams.
 */

/** What a completed write stored: its length and its SHA-256 (lowercase hex). */
export interface StoredObject {
  size: number;
  sha256: string;
}

/** Metadata of a stored object; `size` is always the whole object's size. */
export interface ObjectInfo {
  size: number;
  etag: string;
  lastModified: Date | null;
  contentType: string | null;
}

/** An inclusive byte range, as in an HTTP `Range: bytes=start-end` header. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Options of a streamed write. */
export interface WriteOptions {
  /** Stops the write; nothing is left behind and the promise rejects with kind "aborted". */
  signal?: AbortSignal;
}

/** Options of `putObject`. */
export interface PutObjectOptions extends WriteOptions {
  /** Stored with the object where the backend keeps metadata (S3); default none. */
  contentType?: string;
  /** Stored as the object's Content-Disposition where the backend keeps metadata (S3). */
  contentDisposition?: string;
}

/** Options of `presignedDownloadUrl`. */
export interface DownloadUrlOptions {
  filename: string;
  contentType: string;
  inline: boolean;
  expiresInSeconds: number;
}

/** A streamed object; `range` is the range actually served (end clamped to the last byte). */
export interface ObjectBody {
  body: ReadableStream<Uint8Array>;
  info: ObjectInfo;
  range?: ByteRange;
}

/** Where Portal keeps bytes: a local directory or an S3-compatible bucket. */
export interface StorageAdapter {
  readonly backend: "local" | "s3";
  /** Stores one part of a resumable upload (tus), replacing a part with the same number. */
  writePart(
    sessionId: string,
    partNumber: number,
    body: ReadableStream<Uint8Array>,
    options?: WriteOptions,
  ): Promise<StoredObject & { key: string }>;
  /** Streams a stored part; throws StorageError kind "not_found" when it is missing. */
  readPart(sessionId: string, partNumber: number): Promise<ReadableStream<Uint8Array>>;
  /** Deletes one part; deleting a missing part is not an error. */
  deletePart(sessionId: string, partNumber: number): Promise<void>;
  /** Deletes every part of a session; idempotent. */
  deleteSessionParts(sessionId: string): Promise<void>;
  /** Streams `body` to `key`; the object appears whole or not at all. */
  putObject(
    key: string,
    body: ReadableStream<Uint8Array>,
    options?: PutObjectOptions,
  ): Promise<StoredObject>;
  /**
   * Streams an object, or one range of it; null when it does not exist. Throws RangeError
   * when the range starts past the last byte.
   */
  getObject(key: string, options?: { range?: ByteRange }): Promise<ObjectBody | null>;
  /** Reads an object's metadata; null when it does not exist. */
  headObject(key: string): Promise<ObjectInfo | null>;
  /** Deletes an object; deleting a missing object is not an error. */
  deleteObject(key: string): Promise<void>;
  /** S3: presigned GET URL (or the plain object URL when querystringAuth is false); local: null (Portal serves and signs its own links). */
  presignedDownloadUrl(key: string, options: DownloadUrlOptions): Promise<string | null>;
  /**
   * Removes what interrupted writes left behind before `olderThan`: local temp files of a
   * process killed mid-write, S3 multipart uploads whose abort could not be sent (the endpoint
   * was down) under `prefix`. Returns how many it removed. Run by the cleanup job; never
   * touches a finished object. The prefix should be Portal's own: in a bucket shared with other
   * applications, their unfinished uploads under it would be aborted after the same age.
   */
  deleteIncomplete(options: { olderThan: Date; prefix: string }): Promise<number>;
  /** Names the place bytes go, for logs and `portal storage check` (no secrets). */
  describe?(): string;
  /** Releases sockets and other handles; the adapter must not be used afterwards. */
  close?(): void;
}

/** Why a storage operation failed, so callers can answer without parsing messages. */
export type StorageErrorKind =
  | "unavailable"
  | "not_found"
  | "denied"
  | "bucket_missing"
  | "invalid_key"
  | "aborted"
  | "io";

/** A storage failure callers may handle by kind; the message is meant for operators. */
export class StorageError extends Error {
  override name = "StorageError";
  kind: StorageErrorKind;

  constructor(kind: StorageErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }
}

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

/** The error a write rejects with when its signal fires. */
export function abortedError(action: string, signal: AbortSignal): StorageError {
  return new StorageError("aborted", `Cannot ${action}: the write was aborted`, {
    cause: signal.reason,
  });
}

/**
 * Reads `body` chunk by chunk. When `signal` fires, a pending read is abandoned and the
 * generator throws `onAbort()`; when the consumer stops early, the source is cancelled so its
 * producer stops too. Errors of the source stream pass through unchanged.
 */
export async function* readChunks(
  body: ReadableStream<Uint8Array>,
  options: { signal?: AbortSignal; onAbort: () => Error },
): AsyncGenerator<Uint8Array, void, undefined> {
  const { signal, onAbort } = options;
  const reader = body.getReader();
  let removeListener = () => {};
  const aborted = signal === undefined ? null : new Promise<never>((_, reject) => {
    const listener = () => reject(onAbort());
    signal.addEventListener("abort", listener, { once: true });
    removeListener = () => signal.removeEventListener("abort", listener);
  });
  aborted?.catch(() => {});
  let finished = false;
  try {
    while (true) {
      if (signal?.aborted) throw onAbort();
      const result = aborted === null
        ? await reader.read()
        : await Promise.race([reader.read(), aborted]);
      if (result.done) {
        finished = true;
        return;
      }
      yield result.value;
    }
  } finally {
    removeListener();
    // Not awaited: a source stuck in pull() must not hold up the caller's cleanup, and
    // cancelling an errored stream rejects while the original error is already on its way up.
    if (!finished) reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * Skips `skip` bytes of `source`, then passes `length` bytes and cancels the rest, pulling
 * only as fast as the consumer reads.
 */
export function sliceStream(
  source: ReadableStream<Uint8Array>,
  skip: number,
  length: number,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let toSkip = skip;
  let remaining = length;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (true) {
        if (remaining <= 0) {
          controller.close();
          await reader.cancel().catch(() => {});
          return;
        }
        const { done, value } = await reader.read();
        if (done) {
          controller.error(
            new StorageError("io", `Cannot read stream: it ended ${remaining} bytes early`),
          );
          return;
        }
        let chunk = value;
        if (toSkip > 0) {
          const dropped = Math.min(toSkip, chunk.byteLength);
          toSkip -= dropped;
          chunk = chunk.subarray(dropped);
        }
        if (chunk.byteLength === 0) continue;
        if (chunk.byteLength > remaining) chunk = chunk.subarray(0, remaining);
        remaining -= chunk.byteLength;
        controller.enqueue(chunk);
        return;
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
