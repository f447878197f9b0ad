/**
 * Fixtures for the upload tests: a migrated database, deps on a real local directory or a real
 * s3rver bucket, users with API tokens, byte generators and ways to look at what is really
 * stored (the local root walked, the bucket listed, the outbox read).
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { createUser, type User } from "../../src/auth/account_service.ts";
import { createApiToken } from "../../src/auth/token_service.ts";
import { configFrom } from "../../src/config/config.ts";
import type { Database } from "../../src/db/db.ts";
import type { AppDeps } from "../../src/http/app_env.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { LocalStorageAdapter } from "../../src/storage/local/local_storage.ts";
import { S3StorageAdapter } from "../../src/storage/s3/s3_storage.ts";
import type { StorageAdapter } from "../../src/storage/storage.ts";
import { createMigratedDatabase, type TestDatabase } from "./db.ts";
import { operatorClient, startS3rver, type TestS3 } from "./s3rver.ts";

/** The signing key of the test deps. */
export const UPLOAD_TEST_SECRET = "upload-test-secret-0123456789abcdefghijkl";

/** A database, deps and storage for one test file; `close()` releases all of it. */
export interface UploadFixture {
  testDb: TestDatabase;
  db: Database;
  deps: AppDeps;
  /** The local storage root (local backend). */
  root: string;
  /** The s3rver (s3 backend). */
  s3: TestS3 | null;
  close(): Promise<void>;
}

/** Options of `createUploadFixture`. */
export interface UploadFixtureOptions {
  backend?: "local" | "s3";
  /** Extra settings, as environment variables. */
  env?: Record<string, string>;
}

/**
 * A fresh migrated database plus deps on a temp local directory (default) or an s3rver bucket.
 *
 * @example
 * const fx = await createUploadFixture("uploads_service", { env: { FILE_UPLOAD_MAX_SIZE: "1024" } });
 * try { ... } finally { await fx.close(); }
 */
export async function createUploadFixture(
  label: string,
  options: UploadFixtureOptions = {},
): Promise<UploadFixture> {
  const { testDb, db } = await createMigratedDatabase(label);
  const dataDir = await Deno.makeTempDir({ prefix: `portal-${label}-` });
  const s3 = options.backend === "s3" ? await startS3rver() : null;
  const config = configFrom({
    PORTAL_SECRET_KEY: UPLOAD_TEST_SECRET,
    PORTAL_DATA_DIR: dataDir,
    PORTAL_PUBLIC_URL: "http://portal.test",
    STORAGE_BACKEND: options.backend ?? "local",
    ...(s3 === null ? {} : {
      AWS_STORAGE_BUCKET_NAME: s3.bucket,
      AWS_S3_ENDPOINT_URL: s3.endpointUrl,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    }),
    ...options.env,
  });
  const storage: StorageAdapter = s3 === null
    ? new LocalStorageAdapter({ root: config.mediaDir })
    : s3Adapter(s3);
  const deps: AppDeps = {
    config,
    db,
    logger: silentLogger,
    secretKey: UPLOAD_TEST_SECRET,
    metrics: new Metrics(),
    storage,
  };
  return {
    testDb,
    db,
    deps,
    root: config.mediaDir,
    s3,
    async close() {
      storage.close?.();
      await testDb.drop();
      if (s3 !== null) await s3.stop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

/** An adapter on the test s3rver bucket. */
export function s3Adapter(
  s3: Pick<TestS3, "bucket" | "endpointUrl" | "accessKeyId" | "secretAccessKey">,
  options: { connectTimeoutMs?: number } = {},
): S3StorageAdapter {
  return new S3StorageAdapter({
    bucket: s3.bucket,
    endpointUrl: s3.endpointUrl,
    region: "us-east-1",
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    querystringAuth: true,
    connectTimeoutMs: options.connectTimeoutMs ?? 1000,
    maxAttempts: 1,
  });
}

/** A user and an API token for it. */
export interface TestUser {
  user: User;
  token: string;
  /** `{ authorization: "Bearer …" }`. */
  auth: Record<string, string>;
}

/** Creates a user (optionally admin) with an API token. */
export async function createTestUser(
  db: Database,
  email: string,
  options: { admin?: boolean } = {},
): Promise<TestUser> {
  const user = await createUser({ db }, {
    email,
    password: "correct horse battery",
    isAdmin: options.admin ?? false,
  });
  const { token } = await createApiToken({ db }, { email });
  return { user, token, auth: { authorization: `Bearer ${token}` } };
}

/** Every regular file under `root` (relative paths, sorted); [] when root does not exist. */
export async function walkFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, prefix: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const entry of entries) {
      const path = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory) await walk(join(dir, entry.name), path);
      else found.push(path);
    }
  };
  await walk(root, "");
  return found.sort();
}

/** Every key in the fixture's bucket. */
export async function bucketKeys(s3: TestS3): Promise<string[]> {
  const client = operatorClient(s3);
  try {
    const output = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
    return (output.Contents ?? []).map((o) => o.Key!).sort();
  } finally {
    client.destroy();
  }
}

/** An outbox row as the tests read it. */
export interface OutboxRow {
  id: string;
  aggregateId: string;
  eventType: string;
  payload: Record<string, unknown>;
  idempotencyKey: string;
}

/** Outbox events, optionally of one type, oldest first. */
export async function outboxEvents(db: Database, eventType?: string): Promise<OutboxRow[]> {
  // Spread: postgres.js results are a subclass of Array, which deepEqual tells apart.
  return [
    ...await db.sql<OutboxRow[]>`
    SELECT id, aggregate_id AS "aggregateId", event_type AS "eventType", payload,
           idempotency_key AS "idempotencyKey"
    FROM outbox_event
    ${eventType === undefined ? db.sql`` : db.sql`WHERE event_type = ${eventType}`}
    ORDER BY created_at, id`,
  ];
}

/** A stream of `bytes` in chunks of `chunkSize`. */
export function streamOf(bytes: Uint8Array, chunkSize = 64 * 1024): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunkSize));
      offset += chunkSize;
    },
  });
}

/** Lowercase hex SHA-256. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const PNG_IHDR = [0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0];

/** `size` bytes that sniff as image/png (a PNG header, then pseudo-random bytes). */
export function pngBytes(size: number, seed = 1): Uint8Array<ArrayBuffer> {
  const bytes = randomBytes(size, seed);
  bytes.set([...PNG_SIGNATURE, ...PNG_IHDR].slice(0, size));
  return bytes;
}

/** `size` bytes that sniff as application/pdf. */
export function pdfBytes(size: number, seed = 2): Uint8Array<ArrayBuffer> {
  const bytes = randomBytes(size, seed);
  bytes.set(new TextEncoder().encode("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n").slice(0, size));
  return bytes;
}

/** A Windows executable header: sniffs as application/x-msdownload. */
export function exeBytes(size = 4096): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  bytes.set([0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0xff, 0xff]);
  return bytes;
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function randomBytes(size: number, seed = 7): Uint8Array<ArrayBuffer> {
  const words = new Uint32Array(Math.ceil(size / 4));
  let state = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    words[i] = state >>> 0;
  }
  return new Uint8Array(words.buffer, 0, size);
}

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text);
}

/** A `multipart/form-data` body built by hand (so tests control every byte), and its type. */
export function multipartBody(
  parts: { name: string; filename?: string; contentType?: string; data: Uint8Array | string }[],
  boundary = `----portal${crypto.randomUUID().replaceAll("-", "")}`,
): { body: Uint8Array<ArrayBuffer>; contentType: string } {
  const chunks: Uint8Array[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`;
    if (part.filename !== undefined) head += `; filename="${part.filename}"`;
    head += "\r\n";
    if (part.contentType !== undefined) head += `Content-Type: ${part.contentType}\r\n`;
    head += "\r\n";
    chunks.push(
      utf8(head),
      typeof part.data === "string" ? utf8(part.data) : part.data,
      utf8("\r\n"),
    );
  }
  chunks.push(utf8(`--${boundary}--\r\n`));
  const total = chunks.reduce((n, c) => n + c.byteLength, 0);
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}
