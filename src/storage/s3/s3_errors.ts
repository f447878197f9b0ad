/**
 * Classifies what the AWS SDK throws (S3 error responses, socket errors, aborts) into the
 * StorageError kinds callers act on, with messages that name the endpoint and bucket.
 */
import { StorageError, type StorageErrorKind } from "../storage.ts";

/** Where a failed S3 call was going, for the message. */
export interface S3ErrorContext {
  /** What was attempted, completing "Cannot …": `store object "a/b"`. */
  action: string;
  /** The endpoint shown in messages. */
  endpoint: string;
  bucket: string;
}

/**
 * Maps an SDK or socket error to a StorageError (a StorageError passes through unchanged).
 *
 * @example
 * s3StorageError(error, { action: `read object "${key}"`, endpoint, bucket }).kind; // "denied"
 */
export function s3StorageError(error: unknown, context: S3ErrorContext): StorageError {
  if (error instanceof StorageError) return error;
  const { action, endpoint, bucket } = context;
  const { kind, detail } = describeS3Error(error);
  const message = kind === "unavailable"
    ? `Cannot reach S3 endpoint "${endpoint}": ${detail}`
    : kind === "bucket_missing"
    ? `Cannot ${action}: bucket "${bucket}" does not exist at "${endpoint}"`
    : kind === "denied"
    ? `Cannot ${action}: S3 endpoint "${endpoint}" refused access to bucket "${bucket}" (${detail})`
    : kind === "aborted"
    ? `Cannot ${action}: the request was aborted`
    : `Cannot ${action}: ${detail}`;
  return new StorageError(kind, message, { cause: error });
}

const BUCKET_MISSING = new Set(["NoSuchBucket"]);
const DENIED = new Set([
  "AccessDenied",
  "Forbidden",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "CredentialsProviderError",
]);
const NOT_FOUND = new Set(["NoSuchKey", "NotFound", "NoSuchUpload"]);
const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection reset",
  ECONNABORTED: "connection aborted",
  ETIMEDOUT: "timed out",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host not found (DNS lookup failed)",
  EAI_NONAME: "host not found",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
};

/** Classifies an SDK or socket error; `detail` is a short human reason. */
function describeS3Error(error: unknown): { kind: StorageErrorKind; detail: string } {
  const e = (typeof error === "object" && error !== null ? error : {}) as {
    name?: string;
    code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const name = e.name ?? "Error";
  const status = e.$metadata?.httpStatusCode;
  const message = e.message && e.message !== "UnknownError" ? e.message : name;
  if (name === "AbortError") return { kind: "aborted", detail: message };
  if (BUCKET_MISSING.has(name)) return { kind: "bucket_missing", detail: message };
  if (DENIED.has(name) || status === 401 || status === 403) {
    return { kind: "denied", detail: `${name}: ${message}` };
  }
  if (NOT_FOUND.has(name) || status === 404) return { kind: "not_found", detail: message };
  if (status === undefined) {
    const reason = NETWORK_REASONS[e.code ?? ""] ??
      (name === "TimeoutError" ? "timed out" : undefined);
    if (reason !== undefined) return { kind: "unavailable", detail: reason };
    if (e.code !== undefined) return { kind: "unavailable", detail: `${e.code}: ${message}` };
  }
  if (status !== undefined && status >= 500) {
    return { kind: "unavailable", detail: `the server answered ${status} (${name})` };
  }
  return { kind: "io", detail: status === undefined ? message : `${status} ${name}: ${message}` };
}
