import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { configFrom, loadConfig } from "../src/config/config.ts";
import { DEFAULT_ALLOWED_TYPES, SETTINGS } from "../src/config/settings.ts";
import { runCli } from "./helpers/cli.ts";
import { freePort } from "./helpers/app.ts";

Deno.test("loadConfig() applies the defaults to an empty environment", () => {
  const result = loadConfig({});
  assert.ok(result.ok);
  const config = result.config;
  assert.deepEqual(config, {
    databaseUrl: null,
    dataDir: "./data",
    mediaDir: join("./data", "media"),
    host: "127.0.0.1",
    port: 8000,
    publicUrl: "http://127.0.0.1:8000",
    secretKey: null,
    secretKeyPrevious: null,
    jobs: true,
    workerPort: 8001,
    metricsToken: null,
    metricsPort: null,
    metricsHost: "127.0.0.1",
    adminEmail: "admin@localhost",
    trustProxy: [],
    webhookAllowPrivate: false,
    logLevel: "info",
    sessionTtlHours: 336,
    dbPoolSize: 10,
    shutdownTimeoutSeconds: 10,
    storageBackend: "local",
    uploadMaxSize: 52428800,
    uploadAllowedTypes: DEFAULT_ALLOWED_TYPES.split(","),
    uploadTtlHours: 24,
    uploadExpiryNotifyHours: 1,
    maxFilesPerRequest: 10,
    bodyIdleTimeoutSeconds: 60,
    maxConcurrentUploadsPerUser: 8,
    cleanupIntervalHours: 6,
    outboxSweepIntervalMinutes: 5,
    outboxRetentionHours: 168,
    webhookMaxAttempts: 5,
    webhookBackoffBaseSeconds: 60,
    webhookBackoffMaxSeconds: 3600,
    webhookConnectTimeoutSeconds: 10,
    webhookTimeoutSeconds: 30,
    s3: {
      bucket: "",
      endpointUrl: null,
      region: "us-east-1",
      accessKeyId: "",
      secretAccessKey: "",
      querystringAuth: true,
      querystringExpireSeconds: 3600,
      fileOverwrite: false,
    },
  });
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.s3));
});

Deno.test("loadConfig() never allows executables or scripts by default", () => {
  const config = configFrom({});
  for (const type of config.uploadAllowedTypes) {
    assert.doesNotMatch(type, /executable|x-msdownload|x-sh|javascript|html|svg|x-elf/);
  }
});

Deno.test("loadConfig() accepts and normalizes valid values", () => {
  const config = configFrom({
    DATABASE_URL: " postgresql://portal:pw@db.internal:5432/portal ",
    PORTAL_HOST: "::1",
    PORTAL_PORT: "0",
    PORTAL_JOBS: "off",
    PORTAL_WEBHOOK_ALLOW_PRIVATE: "YES",
    PORTAL_LOG_LEVEL: "DEBUG",
    PORTAL_ADMIN_EMAIL: "Root@Example.org",
    PORTAL_TRUST_PROXY: " 10.0.0.0/8 , 192.0.2.7,fd00::/8 ",
    STORAGE_BACKEND: "S3",
    AWS_STORAGE_BUCKET_NAME: "files",
    AWS_ACCESS_KEY_ID: "AKIA",
    AWS_SECRET_ACCESS_KEY: "shh",
    AWS_S3_ENDPOINT_URL: "http://127.0.0.1:9000",
    FILE_UPLOAD_ALLOWED_TYPES: "Image/PNG, video/* ,",
    FILE_UPLOAD_TTL_HOURS: "2",
    FILE_UPLOAD_EXPIRY_NOTIFY_HOURS: "1",
  });
  assert.equal(config.databaseUrl, "postgresql://portal:pw@db.internal:5432/portal");
  assert.equal(config.port, 0);
  assert.equal(config.publicUrl, "http://[::1]:0");
  assert.equal(config.jobs, false);
  assert.equal(config.webhookAllowPrivate, true);
  assert.equal(config.logLevel, "debug");
  assert.equal(config.adminEmail, "root@example.org");
  assert.deepEqual(config.trustProxy, ["10.0.0.0/8", "192.0.2.7", "fd00::/8"]);
  assert.equal(config.storageBackend, "s3");
  assert.equal(config.s3.bucket, "files");
  assert.equal(config.s3.endpointUrl, "http://127.0.0.1:9000");
  assert.deepEqual(config.uploadAllowedTypes, ["image/png", "video/*"]);

  assert.equal(
    configFrom({ PORTAL_PUBLIC_URL: "https://files.example.org/" }).publicUrl,
    "https://files.example.org",
  );
  assert.equal(configFrom({ PORTAL_HOST: "0.0.0.0" }).publicUrl, "http://127.0.0.1:8000");
  assert.equal(configFrom({ PORTAL_HOST: "::" }).publicUrl, "http://[::1]:8000");
  // An empty variable counts as unset.
  assert.equal(configFrom({ PORTAL_PORT: " " }).port, 8000);
});

/** One invalid value per case, and the exact line an operator reads. */
const INVALID: { env: Record<string, string>; error: string }[] = [
  {
    env: { DATABASE_URL: "mysql://portal@db/portal" },
    error: 'DATABASE_URL: expected a postgres or postgresql URL, got "mysql://portal@db/portal"',
  },
  {
    env: { DATABASE_URL: "db.internal" },
    error: 'DATABASE_URL: expected a URL, got "db.internal"',
  },
  { env: { PORTAL_DATA_DIR: "" }, error: "" },
  {
    env: { PORTAL_HOST: "portal host" },
    error:
      'PORTAL_HOST: expected an IPv4 or IPv6 address (no brackets) or a host name, got "portal host"',
  },
  {
    env: { PORTAL_PORT: "http" },
    error: 'PORTAL_PORT: expected a whole number 0..65535, got "http"',
  },
  {
    env: { PORTAL_PUBLIC_URL: "files.example.org" },
    error: 'PORTAL_PUBLIC_URL: expected a URL, got "files.example.org"',
  },
  {
    env: { PORTAL_SECRET_KEY: "too-short" },
    error: "PORTAL_SECRET_KEY: expected at least 32 characters, got 9",
  },
  {
    env: { PORTAL_SECRET_KEY_PREVIOUS: "an-old-key-that-is-long-enough-to-use-0123" },
    error:
      "PORTAL_SECRET_KEY_PREVIOUS: set only together with PORTAL_SECRET_KEY (the key that signs now)",
  },
  {
    env: { PORTAL_SECRET_KEY: "k".repeat(32), PORTAL_SECRET_KEY_PREVIOUS: "old" },
    error: "PORTAL_SECRET_KEY_PREVIOUS: expected at least 32 characters, got 3",
  },
  {
    env: { PORTAL_METRICS_TOKEN: "short" },
    error: "PORTAL_METRICS_TOKEN: expected at least 16 characters without spaces, got 5",
  },
  {
    env: { PORTAL_METRICS_PORT: "99999" },
    error: 'PORTAL_METRICS_PORT: expected a whole number 0..65535, got "99999"',
  },
  {
    env: { PORTAL_METRICS_HOST: "not a host" },
    error:
      'PORTAL_METRICS_HOST: expected an IPv4 or IPv6 address (no brackets) or a host name, got "not a host"',
  },
  {
    env: { PORTAL_BODY_IDLE_TIMEOUT_SECONDS: "0" },
    error: 'PORTAL_BODY_IDLE_TIMEOUT_SECONDS: expected a whole number 1..3600, got "0"',
  },
  {
    env: { PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER: "many" },
    error: 'PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER: expected a whole number 1..1000, got "many"',
  },
  {
    env: { PORTAL_JOBS: "sometimes" },
    error: 'PORTAL_JOBS: expected true or false, got "sometimes"',
  },
  {
    env: { PORTAL_WORKER_PORT: "65536" },
    error: 'PORTAL_WORKER_PORT: expected a whole number 0..65535, got "65536"',
  },
  {
    env: { PORTAL_ADMIN_EMAIL: "admin" },
    error: 'PORTAL_ADMIN_EMAIL: expected an email address, got "admin"',
  },
  {
    env: { PORTAL_TRUST_PROXY: "10.0.0.1,proxy.internal" },
    error: 'PORTAL_TRUST_PROXY: expected IP addresses or CIDRs, got "proxy.internal"',
  },
  {
    env: { PORTAL_WEBHOOK_ALLOW_PRIVATE: "y" },
    error: 'PORTAL_WEBHOOK_ALLOW_PRIVATE: expected true or false, got "y"',
  },
  {
    env: { PORTAL_LOG_LEVEL: "verbose" },
    error: 'PORTAL_LOG_LEVEL: expected one of debug, info, warn, error, got "verbose"',
  },
  {
    env: { PORTAL_SESSION_TTL_HOURS: "0" },
    error: 'PORTAL_SESSION_TTL_HOURS: expected a whole number >= 1, got "0"',
  },
  {
    env: { PORTAL_DB_POOL_SIZE: "1" },
    error: 'PORTAL_DB_POOL_SIZE: expected a whole number 2..1000, got "1"',
  },
  {
    env: { PORTAL_SHUTDOWN_TIMEOUT_SECONDS: "-1" },
    error: 'PORTAL_SHUTDOWN_TIMEOUT_SECONDS: expected a whole number 0..3600, got "-1"',
  },
  {
    env: { STORAGE_BACKEND: "gcs" },
    error: 'STORAGE_BACKEND: expected one of local, s3, got "gcs"',
  },
  {
    env: { FILE_UPLOAD_MAX_SIZE: "50MB" },
    error: 'FILE_UPLOAD_MAX_SIZE: expected a whole number >= 1, got "50MB"',
  },
  {
    env: { FILE_UPLOAD_ALLOWED_TYPES: "image/png,exe" },
    error: 'FILE_UPLOAD_ALLOWED_TYPES: "exe" is not a MIME type like "image/png"',
  },
  {
    env: { FILE_UPLOAD_TTL_HOURS: "1.5" },
    error: 'FILE_UPLOAD_TTL_HOURS: expected a whole number >= 1, got "1.5"',
  },
  {
    env: { FILE_UPLOAD_EXPIRY_NOTIFY_HOURS: "24" },
    error: "FILE_UPLOAD_EXPIRY_NOTIFY_HOURS: expected less than FILE_UPLOAD_TTL_HOURS (24), got 24",
  },
  {
    env: { MAX_FILES_PER_REQUEST: "0" },
    error: 'MAX_FILES_PER_REQUEST: expected a whole number 1..1000, got "0"',
  },
  {
    env: { CLEANUP_UPLOADS_INTERVAL_HOURS: "25" },
    error: 'CLEANUP_UPLOADS_INTERVAL_HOURS: expected a whole number 1..24, got "25"',
  },
  {
    env: { OUTBOX_SWEEP_INTERVAL_MINUTES: "60" },
    error: 'OUTBOX_SWEEP_INTERVAL_MINUTES: expected a whole number 1..59, got "60"',
  },
  {
    env: { OUTBOX_RETENTION_HOURS: "forever" },
    error: 'OUTBOX_RETENTION_HOURS: expected a whole number >= 1, got "forever"',
  },
  {
    env: { WEBHOOK_MAX_ATTEMPTS: "101" },
    error: 'WEBHOOK_MAX_ATTEMPTS: expected a whole number 1..100, got "101"',
  },
  {
    env: { WEBHOOK_BACKOFF_BASE_SECONDS: "0" },
    error: 'WEBHOOK_BACKOFF_BASE_SECONDS: expected a whole number >= 1, got "0"',
  },
  {
    env: { WEBHOOK_BACKOFF_MAX_SECONDS: "1e3" },
    error: 'WEBHOOK_BACKOFF_MAX_SECONDS: expected a whole number >= 1, got "1e3"',
  },
  {
    env: { WEBHOOK_CONNECT_TIMEOUT_SECONDS: "601" },
    error: 'WEBHOOK_CONNECT_TIMEOUT_SECONDS: expected a whole number 1..600, got "601"',
  },
  {
    env: { WEBHOOK_TIMEOUT_SECONDS: "0" },
    error: 'WEBHOOK_TIMEOUT_SECONDS: expected a whole number 1..600, got "0"',
  },
  {
    env: { STORAGE_BACKEND: "s3", AWS_STORAGE_BUCKET_NAME: "" },
    error: "AWS_STORAGE_BUCKET_NAME: required when STORAGE_BACKEND=s3",
  },
  {
    env: { AWS_S3_ENDPOINT_URL: "minio:9000" },
    error: 'AWS_S3_ENDPOINT_URL: expected a http or https URL, got "minio:9000"',
  },
  { env: { AWS_S3_REGION_NAME: "" }, error: "" },
  {
    env: { STORAGE_BACKEND: "s3", AWS_STORAGE_BUCKET_NAME: "b", AWS_ACCESS_KEY_ID: "AKIA" },
    error:
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both or neither (neither uses the default AWS credential chain)",
  },
  {
    env: { STORAGE_BACKEND: "s3", AWS_STORAGE_BUCKET_NAME: "b", AWS_SECRET_ACCESS_KEY: "shh" },
    error:
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both or neither (neither uses the default AWS credential chain)",
  },
  {
    env: { AWS_QUERYSTRING_AUTH: "maybe" },
    error: 'AWS_QUERYSTRING_AUTH: expected true or false, got "maybe"',
  },
  {
    env: { AWS_QUERYSTRING_EXPIRE: "604801" },
    error: 'AWS_QUERYSTRING_EXPIRE: expected a whole number 1..604800, got "604801"',
  },
  {
    env: { AWS_S3_FILE_OVERWRITE: "2" },
    error: 'AWS_S3_FILE_OVERWRITE: expected true or false, got "2"',
  },
];

Deno.test("loadConfig() rejects every invalid value with one clear line", async (t) => {
  for (const { env, error } of INVALID) {
    if (error === "") continue; // free text (a folder, a region): any value is accepted
    await t.step(`${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ")}`, () => {
      const result = loadConfig(env);
      assert.equal(result.ok, false);
      assert.deepEqual(!result.ok && result.errors, [error]);
    });
  }
});

Deno.test("loadConfig() has an invalid-value case for every documented setting", () => {
  const covered = new Set(INVALID.flatMap(({ env }) => Object.keys(env)));
  const missing = SETTINGS.map((s) => s.name).filter((name) => !covered.has(name));
  assert.deepEqual(missing, [], "add a case to INVALID for each new setting");
});

Deno.test("loadConfig() takes PORTAL_HOST as an IP literal or a host name, nothing else", () => {
  for (const host of ["0.0.0.0", "192.0.2.7", "::", "::1", "fe80::1", "::ffff:192.0.2.1"]) {
    assert.equal(configFrom({ PORTAL_HOST: host }).host, host);
  }
  for (const host of ["localhost", "portal.internal", "web-1", "files.example.org."]) {
    assert.equal(configFrom({ PORTAL_HOST: host }).host, host);
  }
  for (
    const host of [
      "[::1]",
      "999.1.1.1",
      "10.0.0",
      "127.0.0.1:8000",
      "http://localhost",
      "-web",
      "web_1",
      "::1%eth0",
      "1:2:3:4:5:6:7:8:9",
      "a".repeat(64),
    ]
  ) {
    const result = loadConfig({ PORTAL_HOST: host });
    assert.equal(result.ok, false, host);
    assert.deepEqual(!result.ok && result.errors, [
      `PORTAL_HOST: expected an IPv4 or IPv6 address (no brackets) or a host name, got "${host}"`,
    ]);
  }
});

Deno.test("loadConfig() never echoes a password from a rejected URL", () => {
  for (const url of ["mysql://portal:hunter22@db/portal", "mysql://portal:p@ss/w0rd@db/portal"]) {
    const result = loadConfig({ DATABASE_URL: url });
    assert.equal(result.ok, false);
    const text = !result.ok ? result.errors.join("\n") : "";
    assert.match(text, /^DATABASE_URL: /);
    assert.doesNotMatch(text, /hunter22|ss\/w0rd|w0rd/);
    assert.match(text, /portal:\*\*\*@/);
  }
  const key = loadConfig({ PORTAL_SECRET_KEY: "short-but-secret" });
  assert.doesNotMatch(!key.ok ? key.errors.join("\n") : "", /short-but-secret/);
});

Deno.test("loadConfig() reports several problems at once, in order", () => {
  const result = loadConfig({
    PORTAL_PORT: "eighty",
    PORTAL_SECRET_KEY: "x",
    STORAGE_BACKEND: "s3",
    WEBHOOK_MAX_ATTEMPTS: "0",
  });
  assert.equal(result.ok, false);
  assert.deepEqual(!result.ok && result.errors, [
    'PORTAL_PORT: expected a whole number 0..65535, got "eighty"',
    "PORTAL_SECRET_KEY: expected at least 32 characters, got 1",
    "AWS_STORAGE_BUCKET_NAME: required when STORAGE_BACKEND=s3",
    'WEBHOOK_MAX_ATTEMPTS: expected a whole number 1..100, got "0"',
  ]);
});

Deno.test("loadConfig() refuses STORAGE_BACKEND=s3 without a bucket", () => {
  const result = loadConfig({ STORAGE_BACKEND: "s3" });
  assert.equal(result.ok, false);
  assert.deepEqual(!result.ok && result.errors, [
    "AWS_STORAGE_BUCKET_NAME: required when STORAGE_BACKEND=s3",
  ]);
  assert.ok(loadConfig({ STORAGE_BACKEND: "s3", AWS_STORAGE_BUCKET_NAME: "files" }).ok);
  assert.throws(() => configFrom({ STORAGE_BACKEND: "s3" }), /AWS_STORAGE_BUCKET_NAME/);
});

Deno.test("portal serve exits 2 before listening, one line per configuration problem", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "portal-config-" });
  try {
    const port = freePort();
    const result = await runCli(["serve"], {
      env: {
        PORTAL_DATA_DIR: dataDir,
        PORTAL_HOST: "not a host",
        PORTAL_PORT: String(port),
        PORTAL_SECRET_KEY: "short",
        STORAGE_BACKEND: "s3",
        FILE_UPLOAD_MAX_SIZE: "big",
      },
    });
    assert.equal(result.code, 2, result.stderr);
    assert.deepEqual(result.stderr.trimEnd().split("\n"), [
      "Cannot start: invalid configuration:",
      '  PORTAL_HOST: expected an IPv4 or IPv6 address (no brackets) or a host name, got "not a host"',
      "  PORTAL_SECRET_KEY: expected at least 32 characters, got 5",
      "  AWS_STORAGE_BUCKET_NAME: required when STORAGE_BACKEND=s3",
      '  FILE_UPLOAD_MAX_SIZE: expected a whole number >= 1, got "big"',
    ]);
    assert.equal(result.stdout, "");
    // Nothing was opened: no embedded database, no start lock.
    assert.equal(existsSync(join(dataDir, "pg")), false);
    assert.equal(existsSync(join(dataDir, "embedded.lock")), false);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
