/**
 * The table of every setting Portal reads from the environment: name, default, meaning.
 * `config.ts` parses them; the README table and `.env.example` are checked against this list
 * by `tests/config_docs_test.ts`, so the three cannot drift.
 */

/** One environment setting as documented. `default` is what applies when it is unset. */
export interface SettingDoc {
  name: string;
  default: string;
  description: string;
}

/** Types never allowed by default: executables and scripts. Families are matched with `type/*`. */
export const DEFAULT_ALLOWED_TYPES = [
  "application/pdf",
  "application/msword",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "application/vnd.ms-excel",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  "application/vnd.ms-powerpoint",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  "application/vnd.oasis.opendocument.text",
  "application/vnd.oasis.opendocument.spreadsheet",
  "application/vnd.oasis.opendocument.presentation",
  "application/rtf",
  "application/json",
  "application/zip",
  "application/gzip",
  "application/x-tar",
  "application/x-7z-compressed",
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "image/avif",
  "image/heic",
  "image/tiff",
  "image/bmp",
  "audio/*",
  "video/*",
  "text/plain",
  "text/csv",
  "text/markdown",
].join(",");

/** Every setting, in the order the README shows them. */
export const SETTINGS: readonly SettingDoc[] = [
  {
    name: "DATABASE_URL",
    default: "(unset: embedded database)",
    description:
      "Postgres connection URL. Unset runs the embedded PostgreSQL server in `PORTAL_DATA_DIR/pg`, shared by every Portal process on that data dir",
  },
  {
    name: "PORTAL_DATA_DIR",
    default: "./data",
    description: "Folder for the embedded database and, with local storage, the files",
  },
  { name: "PORTAL_HOST", default: "127.0.0.1", description: "Address `portal serve` listens on" },
  { name: "PORTAL_PORT", default: "8000", description: "Port `portal serve` listens on" },
  {
    name: "PORTAL_PUBLIC_URL",
    default: "http://<host>:<port>",
    description:
      "Base URL users and webhook consumers reach Portal at (https makes cookies Secure)",
  },
  {
    name: "PORTAL_SECRET_KEY",
    default: "(generated, kept in the database)",
    description:
      "Key for signed download links and CSRF tokens, at least 32 characters. Unset: generated once and shared by every replica through the database (fine for the embedded default; set it in production, where `portal serve` warns when it is unset)",
  },
  {
    name: "PORTAL_SECRET_KEY_PREVIOUS",
    default: "(none)",
    description:
      "The key PORTAL_SECRET_KEY replaced: links and forms signed with it still verify, nothing new is signed with it. Drop it once links signed with the old key need not work (an event's link lives as long as its file)",
  },
  {
    name: "PORTAL_JOBS",
    default: "on",
    description:
      "`off` keeps `portal serve` from running the background jobs (run `portal worker`)",
  },
  {
    name: "PORTAL_WORKER_PORT",
    default: "8001",
    description: "Port of the `/healthz` endpoint of `portal worker`",
  },
  {
    name: "PORTAL_METRICS_TOKEN",
    default: "(none)",
    description:
      "Bearer token `/metrics` asks for, at least 16 characters. Unset: `/metrics` is not served on the main or the worker port",
  },
  {
    name: "PORTAL_METRICS_PORT",
    default: "(none)",
    description:
      "Port of a listener serving only `/metrics`, for Prometheus (no token asked unless `PORTAL_METRICS_TOKEN` is set); one per process",
  },
  {
    name: "PORTAL_METRICS_HOST",
    default: "127.0.0.1",
    description:
      "Address the `PORTAL_METRICS_PORT` listener binds (loopback: only this machine scrapes)",
  },
  {
    name: "PORTAL_ADMIN_EMAIL",
    default: "admin@localhost",
    description: "Email of the admin account created on the first embedded start",
  },
  {
    name: "PORTAL_TRUST_PROXY",
    default: "(empty)",
    description:
      "Comma-separated proxy addresses (IPs or CIDRs) whose `X-Forwarded-For` is believed",
  },
  {
    name: "PORTAL_WEBHOOK_ALLOW_PRIVATE",
    default: "false",
    description: "Allow webhook URLs that resolve to loopback, private or link-local addresses",
  },
  {
    name: "PORTAL_LOG_LEVEL",
    default: "info",
    description: "`debug`, `info`, `warn` or `error`",
  },
  {
    name: "PORTAL_SESSION_TTL_HOURS",
    default: "336",
    description: "How long a browser login lasts",
  },
  {
    name: "PORTAL_DB_POOL_SIZE",
    default: "10",
    description: "Connections each process opens to Postgres",
  },
  {
    name: "PORTAL_SHUTDOWN_TIMEOUT_SECONDS",
    default: "10",
    description: "How long SIGTERM waits for in-flight requests and deliveries",
  },
  {
    name: "STORAGE_BACKEND",
    default: "local",
    description: "`local` (files under `PORTAL_DATA_DIR/media`) or `s3`",
  },
  {
    name: "FILE_UPLOAD_MAX_SIZE",
    default: "52428800",
    description: "Largest accepted file, in bytes (50 MiB)",
  },
  {
    name: "FILE_UPLOAD_ALLOWED_TYPES",
    default: "(documents, images, archives, audio, video, text)",
    description:
      "Comma-separated MIME types, checked against the sniffed type; `type/*` allows a family",
  },
  { name: "FILE_UPLOAD_TTL_HOURS", default: "24", description: "Hours a stored file is kept" },
  {
    name: "FILE_UPLOAD_EXPIRY_NOTIFY_HOURS",
    default: "1",
    description: "Hours before expiry that `file.expiring` is sent",
  },
  {
    name: "MAX_FILES_PER_REQUEST",
    default: "10",
    description: "Files one browser form post may carry",
  },
  {
    name: "PORTAL_BODY_IDLE_TIMEOUT_SECONDS",
    default: "60",
    description:
      "A request body that sends nothing this long is refused (408) and its upload cleaned up",
  },
  {
    name: "PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER",
    default: "8",
    description:
      "Upload requests one user may have in flight at once, across every replica (429 beyond)",
  },
  {
    name: "CLEANUP_UPLOADS_INTERVAL_HOURS",
    default: "6",
    description: "How often expired files are deleted",
  },
  {
    name: "OUTBOX_SWEEP_INTERVAL_MINUTES",
    default: "5",
    description: "How often the delivery sweep runs (the backstop to NOTIFY)",
  },
  {
    name: "OUTBOX_RETENTION_HOURS",
    default: "168",
    description: "Hours delivered and failed events are kept",
  },
  {
    name: "WEBHOOK_MAX_ATTEMPTS",
    default: "5",
    description: "Tries per delivery before it is marked failed",
  },
  {
    name: "WEBHOOK_BACKOFF_BASE_SECONDS",
    default: "60",
    description: "Retry n waits min(base * 2^(n-1), max) seconds plus up to 10% jitter",
  },
  {
    name: "WEBHOOK_BACKOFF_MAX_SECONDS",
    default: "3600",
    description: "Longest wait between two tries",
  },
  {
    name: "WEBHOOK_CONNECT_TIMEOUT_SECONDS",
    default: "10",
    description: "Connect timeout of a webhook request",
  },
  {
    name: "WEBHOOK_TIMEOUT_SECONDS",
    default: "30",
    description: "Whole-request timeout of a webhook request",
  },
  {
    name: "AWS_STORAGE_BUCKET_NAME",
    default: "(empty)",
    description: "Bucket for `STORAGE_BACKEND=s3` (required then)",
  },
  {
    name: "AWS_S3_ENDPOINT_URL",
    default: "(empty: AWS)",
    description: "Endpoint of an S3-compatible service (MinIO, R2, Ceph); enables path-style URLs",
  },
  { name: "AWS_S3_REGION_NAME", default: "us-east-1", description: "Region of the bucket" },
  { name: "AWS_ACCESS_KEY_ID", default: "(empty)", description: "S3 access key" },
  { name: "AWS_SECRET_ACCESS_KEY", default: "(empty)", description: "S3 secret key" },
  {
    name: "AWS_QUERYSTRING_AUTH",
    default: "true",
    description: "Presign S3 download URLs (false: plain object URLs for a public bucket)",
  },
  {
    name: "AWS_QUERYSTRING_EXPIRE",
    default: "3600",
    description: "Seconds a presigned (or local signed) download URL stays valid",
  },
  {
    name: "AWS_S3_FILE_OVERWRITE",
    default: "false",
    description:
      "Kept for compatibility; keys are unique by construction, so uploads never overwrite",
  },
];
