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
