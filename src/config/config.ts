/**
 * Parses the environment into one typed, frozen `Config`. Every problem is collected and
 * reported together, one line each, so an operator fixes them in one go.
 *
 * Past 300 lines on purpose: one reader walks every setting in one place, so a start reports
 * all its problems at once and the settings table (settings.ts) has one parser to match.
 */
import { join } from "node:path";
import { DEFAULT_ALLOWED_TYPES } from "./settings.ts";

/** S3 settings, named after the seeds' `AWS_*` variables. */
export interface S3Config {
  bucket: string;
  endpointUrl: string | null;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  querystringAuth: boolean;
  querystringExpireSeconds: number;
  fileOverwrite: boolean;
}

/** Everything Portal reads from its environment, parsed and validated. */
export interface Config {
  databaseUrl: string | null;
  dataDir: string;
  mediaDir: string;
  host: string;
  port: number;
  publicUrl: string;
  /** Null means: use (or generate) the key stored in the database. */
  secretKey: string | null;
  /** A retired PORTAL_SECRET_KEY that still verifies links and tokens, never signs. */
  secretKeyPrevious: string | null;
  jobs: boolean;
  workerPort: number;
  /** Bearer token /metrics asks for on every listener; null: none. */
  metricsToken: string | null;
  /** A listener of its own for /metrics (no token needed there unless one is set); null: none. */
  metricsPort: number | null;
  metricsHost: string;
  adminEmail: string;
  trustProxy: string[];
  webhookAllowPrivate: boolean;
  logLevel: "debug" | "info" | "warn" | "error";
  sessionTtlHours: number;
  dbPoolSize: number;
  shutdownTimeoutSeconds: number;
  storageBackend: "local" | "s3";
  uploadMaxSize: number;
  uploadAllowedTypes: string[];
  uploadTtlHours: number;
  uploadExpiryNotifyHours: number;
  maxFilesPerRequest: number;
  /** Seconds a request body may send nothing before its upload is refused (408). */
  bodyIdleTimeoutSeconds: number;
  /** Uploads one user may have in flight across every replica (429 beyond). */
  maxConcurrentUploadsPerUser: number;
  cleanupIntervalHours: number;
  outboxSweepIntervalMinutes: number;
  outboxRetentionHours: number;
  webhookMaxAttempts: number;
  webhookBackoffBaseSeconds: number;
  webhookBackoffMaxSeconds: number;
  webhookConnectTimeoutSeconds: number;
  webhookTimeoutSeconds: number;
  s3: S3Config;
}

/** Result of parsing: a config, or the list of problems found. */
export type ConfigResult =
  | { ok: true; config: Readonly<Config> }
  | { ok: false; errors: string[] };

type Env = Record<string, string | undefined>;

class Reader {
  errors: string[] = [];
  constructor(private env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  int(name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}..${max}`;
      this.errors.push(`${name}: expected a whole number ${range}, got "${value}"`);
      return fallback;
    }
    return Number(value);
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const lower = value.toLowerCase();
    if (["true", "1", "yes", "on"].includes(lower)) return true;
    if (["false", "0", "no", "off"].includes(lower)) return false;
    this.errors.push(`${name}: expected true or false, got "${value}"`);
    return fallback;
  }

  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if ((choices as readonly string[]).includes(value.toLowerCase())) {
      return value.toLowerCase() as T;
    }
    this.errors.push(`${name}: expected one of ${choices.join(", ")}, got "${value}"`);
    return fallback;
  }

  url(name: string, { protocols }: { protocols: string[] }): string | null {
    const value = this.raw(name);
    if (value === undefined) return null;
    try {
      const url = new URL(value);
      if (!protocols.includes(url.protocol)) {
        this.errors.push(
          `${name}: expected a ${protocols.map((p) => p.replace(":", "")).join(" or ")} URL, got "${
            redactUrl(value)
          }"`,
        );
        return null;
      }
      return value;
    } catch {
      this.errors.push(`${name}: expected a URL, got "${redactUrl(value)}"`);
      return null;
    }
  }
}

/**
 * Hides a password inside a URL so it can be shown in an error message. Greedy up to the last
 * "@": an unencoded "@" or "/" in the password must not leave a piece of it visible.
 */
function redactUrl(value: string): string {
  return value.replace(/\/\/([^:/@]+):.*@/, "//$1:***@");
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
// RFC 1123 §2.1: labels of letters, digits and inner hyphens, at most 63 characters each.
const HOST_NAME =
  /^(?=.{1,253}\.?$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** True for what `Deno.serve({ hostname })` can bind: an IPv4 or IPv6 literal, or a host name. */
function isHost(value: string): boolean {
  if (IPV4.test(value)) return true;
  if (value.includes(":")) {
    if (!/^[0-9a-f:.]+$/i.test(value)) return false;
    try {
      // The WHATWG URL parser implements the full IPv6 grammar (RFC 4291 §2.2).
      new URL(`http://[${value}]/`);
      return true;
    } catch {
      return false;
    }
  }
  // All digits and dots is meant as IPv4 ("999.1.1.1", "10.0.0"), not as a host name.
  return !/^[\d.]+$/.test(value) && HOST_NAME.test(value);
}

const MIME_PATTERN = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$/;
const IPV4_CIDR = /^(\d{1,3}\.){3}\d{1,3}(\/\d{1,2})?$/;
const IPV6_CIDR = /^[0-9a-f:.]+(\/\d{1,3})?$/i;

/**
 * Reads the settings from `env`.
 *
 * @example
 * const result = loadConfig(Deno.env.toObject());
 * if (!result.ok) console.error(result.errors.join("\n"));
 */
export function loadConfig(env: Env): ConfigResult {
  const r = new Reader(env);
  const dataDir = r.string("PORTAL_DATA_DIR", "./data");
  const host = r.string("PORTAL_HOST", "127.0.0.1");
  if (!isHost(host)) {
    r.errors.push(
      `PORTAL_HOST: expected an IPv4 or IPv6 address (no brackets) or a host name, got "${host}"`,
    );
  }
  const port = r.int("PORTAL_PORT", 8000, { min: 0, max: 65535 });
  const databaseUrl = r.url("DATABASE_URL", { protocols: ["postgres:", "postgresql:"] });

  const publicUrlRaw = r.url("PORTAL_PUBLIC_URL", { protocols: ["http:", "https:"] });
  // An unspecified listen address (all interfaces) is no address to link to: default to loopback.
  const linkHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  const urlHost = linkHost.includes(":") ? `[${linkHost}]` : linkHost;
  const publicUrl = (publicUrlRaw ?? `http://${urlHost}:${port}`).replace(/\/+$/, "");

  const secretKey = r.raw("PORTAL_SECRET_KEY") ?? null;
  if (secretKey !== null && secretKey.length < 32) {
    r.errors.push(
      `PORTAL_SECRET_KEY: expected at least 32 characters, got ${secretKey.length}`,
    );
  }
  const secretKeyPrevious = r.raw("PORTAL_SECRET_KEY_PREVIOUS") ?? null;
  if (secretKeyPrevious !== null && secretKey === null) {
    r.errors.push(
      "PORTAL_SECRET_KEY_PREVIOUS: set only together with PORTAL_SECRET_KEY (the key that signs now)",
    );
  } else if (secretKeyPrevious !== null && secretKeyPrevious.length < 32) {
    r.errors.push(
      `PORTAL_SECRET_KEY_PREVIOUS: expected at least 32 characters, got ${secretKeyPrevious.length}`,
    );
  }

  const metricsToken = r.raw("PORTAL_METRICS_TOKEN") ?? null;
  if (metricsToken !== null && (metricsToken.length < 16 || /\s/.test(metricsToken))) {
    r.errors.push(
      `PORTAL_METRICS_TOKEN: expected at least 16 characters without spaces, got ${metricsToken.length}`,
    );
  }
  const metricsPort = r.raw("PORTAL_METRICS_PORT") === undefined
    ? null
    : r.int("PORTAL_METRICS_PORT", 0, { min: 0, max: 65535 });
  const metricsHost = r.string("PORTAL_METRICS_HOST", "127.0.0.1");
  if (!isHost(metricsHost)) {
    r.errors.push(
      `PORTAL_METRICS_HOST: expected an IPv4 or IPv6 address (no brackets) or a host name, got "${metricsHost}"`,
    );
  }

  const adminEmail = r.string("PORTAL_ADMIN_EMAIL", "admin@localhost").toLowerCase();
  if (!/^[^\s@]+@[^\s@]+$/.test(adminEmail)) {
    r.errors.push(`PORTAL_ADMIN_EMAIL: expected an email address, got "${adminEmail}"`);
  }

  const trustProxy = (r.raw("PORTAL_TRUST_PROXY") ?? "").split(",").map((s) => s.trim())
    .filter((s) => s !== "");
  for (const entry of trustProxy) {
    if (!IPV4_CIDR.test(entry) && !(entry.includes(":") && IPV6_CIDR.test(entry))) {
      r.errors.push(`PORTAL_TRUST_PROXY: expected IP addresses or CIDRs, got "${entry}"`);
    }
  }

  const allowedTypes = (r.raw("FILE_UPLOAD_ALLOWED_TYPES") ?? DEFAULT_ALLOWED_TYPES).split(",")
    .map((s) => s.trim().toLowerCase()).filter((s) => s !== "");
  for (const type of allowedTypes) {
    if (!MIME_PATTERN.test(type)) {
      r.errors.push(`FILE_UPLOAD_ALLOWED_TYPES: "${type}" is not a MIME type like "image/png"`);
    }
  }
  if (allowedTypes.length === 0) {
    r.errors.push("FILE_UPLOAD_ALLOWED_TYPES: expected at least one MIME type");
  }

  const uploadTtlHours = r.int("FILE_UPLOAD_TTL_HOURS", 24, { min: 1 });
  const uploadExpiryNotifyHours = r.int("FILE_UPLOAD_EXPIRY_NOTIFY_HOURS", 1, { min: 0 });
  if (uploadExpiryNotifyHours >= uploadTtlHours) {
    r.errors.push(
      `FILE_UPLOAD_EXPIRY_NOTIFY_HOURS: expected less than FILE_UPLOAD_TTL_HOURS (${uploadTtlHours}), got ${uploadExpiryNotifyHours}`,
    );
  }

  const storageBackend = r.oneOf("STORAGE_BACKEND", ["local", "s3"] as const, "local");
  const s3: S3Config = {
    bucket: r.string("AWS_STORAGE_BUCKET_NAME", ""),
    endpointUrl: r.url("AWS_S3_ENDPOINT_URL", { protocols: ["http:", "https:"] }),
    region: r.string("AWS_S3_REGION_NAME", "us-east-1"),
    accessKeyId: r.string("AWS_ACCESS_KEY_ID", ""),
    secretAccessKey: r.string("AWS_SECRET_ACCESS_KEY", ""),
    querystringAuth: r.bool("AWS_QUERYSTRING_AUTH", true),
    querystringExpireSeconds: r.int("AWS_QUERYSTRING_EXPIRE", 3600, { min: 1, max: 604800 }),
    fileOverwrite: r.bool("AWS_S3_FILE_OVERWRITE", false),
  };
  if (storageBackend === "s3" && s3.bucket === "") {
    r.errors.push("AWS_STORAGE_BUCKET_NAME: required when STORAGE_BACKEND=s3");
  }
  if (storageBackend === "s3" && (s3.accessKeyId === "") !== (s3.secretAccessKey === "")) {
    r.errors.push(
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both or neither (neither uses the default AWS credential chain)",
    );
  }

  const webhookBackoffBaseSeconds = r.int("WEBHOOK_BACKOFF_BASE_SECONDS", 60, { min: 1 });
  const webhookBackoffMaxSeconds = r.int("WEBHOOK_BACKOFF_MAX_SECONDS", 3600, { min: 1 });
  const webhookConnectTimeoutSeconds = r.int("WEBHOOK_CONNECT_TIMEOUT_SECONDS", 10, {
    min: 1,
    max: 600,
  });
  const webhookTimeoutSeconds = r.int("WEBHOOK_TIMEOUT_SECONDS", 30, { min: 1, max: 600 });

  const config: Config = {
    databaseUrl,
    dataDir,
    mediaDir: join(dataDir, "media"),
    host,
    port,
    publicUrl,
    secretKey,
    secretKeyPrevious,
    jobs: r.bool("PORTAL_JOBS", true),
    workerPort: r.int("PORTAL_WORKER_PORT", 8001, { min: 0, max: 65535 }),
    metricsToken,
    metricsPort,
    metricsHost,
    adminEmail,
    trustProxy,
    webhookAllowPrivate: r.bool("PORTAL_WEBHOOK_ALLOW_PRIVATE", false),
    logLevel: r.oneOf("PORTAL_LOG_LEVEL", ["debug", "info", "warn", "error"] as const, "info"),
    sessionTtlHours: r.int("PORTAL_SESSION_TTL_HOURS", 336, { min: 1 }),
    dbPoolSize: r.int("PORTAL_DB_POOL_SIZE", 10, { min: 2, max: 1000 }),
    shutdownTimeoutSeconds: r.int("PORTAL_SHUTDOWN_TIMEOUT_SECONDS", 10, { min: 0, max: 3600 }),
    storageBackend,
    uploadMaxSize: r.int("FILE_UPLOAD_MAX_SIZE", 52428800, { min: 1 }),
    uploadAllowedTypes: allowedTypes,
    uploadTtlHours,
    uploadExpiryNotifyHours,
    maxFilesPerRequest: r.int("MAX_FILES_PER_REQUEST", 10, { min: 1, max: 1000 }),
    bodyIdleTimeoutSeconds: r.int("PORTAL_BODY_IDLE_TIMEOUT_SECONDS", 60, { min: 1, max: 3600 }),
    maxConcurrentUploadsPerUser: r.int("PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER", 8, {
      min: 1,
      max: 1000,
    }),
    cleanupIntervalHours: r.int("CLEANUP_UPLOADS_INTERVAL_HOURS", 6, { min: 1, max: 24 }),
    outboxSweepIntervalMinutes: r.int("OUTBOX_SWEEP_INTERVAL_MINUTES", 5, { min: 1, max: 59 }),
    outboxRetentionHours: r.int("OUTBOX_RETENTION_HOURS", 168, { min: 1 }),
    webhookMaxAttempts: r.int("WEBHOOK_MAX_ATTEMPTS", 5, { min: 1, max: 100 }),
    webhookBackoffBaseSeconds,
    webhookBackoffMaxSeconds,
    webhookConnectTimeoutSeconds,
    webhookTimeoutSeconds,
    s3,
  };

  if (r.errors.length > 0) return { ok: false, errors: r.errors };
  return { ok: true, config: Object.freeze({ ...config, s3: Object.freeze(s3) }) };
}

/** Builds a config for tests and tools from explicit overrides (throws on invalid input). */
export function configFrom(env: Env): Readonly<Config> {
  const result = loadConfig(env);
  if (!result.ok) throw new Error(`Invalid configuration: ${result.errors.join("; ")}`);
  return result.config;
}
