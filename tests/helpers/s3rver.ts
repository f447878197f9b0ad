/**
 * A real S3-protocol server for tests: s3rver in-process on 127.0.0.1, a free port, a temp
 * directory and a fresh bucket.
 *
 * s3rver 3.7.1 lacks two operations Portal relies on, AbortMultipartUpload (it answers 405)
 * and ListMultipartUploads (501). `startS3rver` adds both on top of s3rver's own on-disk
 * layout (`<dir>/<bucket>/._S3rver_uploads/<uploadId>/`), so the adapters speak plain S3
 * and the tests can check that no multipart upload is left behind.
 */
import S3rver from "npm:s3rver@3.7.1";
import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";

/** A running s3rver and what a client needs to reach it. */
export interface TestS3 {
  endpointUrl: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** s3rver's data directory, to inspect what is really stored. */
  directory: string;
  /** Ids of the multipart uploads s3rver still holds for the bucket. */
  pendingUploads(): Promise<string[]>;
  stop(): Promise<void>;
}

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  status: number;
  type: string;
  body: unknown;
}

type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

interface S3rverServer {
  middleware: Middleware[];
  httpServer?: { closeAllConnections?: () => void };
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

type S3rverConstructor = new (options: Record<string, unknown>) => S3rverServer;

/** s3rver's hardcoded account. */
const CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

/**
 * A plain SDK client on `s3`, separate from the adapter under test: for looking at the bucket as
 * an operator would. `destroy()` it when done.
 */
export function operatorClient(s3: TestS3): S3Client {
  return new S3Client({
    region: "us-east-1",
    endpoint: s3.endpointUrl,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

/**
 * Starts s3rver with an empty bucket; `stop()` closes it and removes its directory. The same
 * server as `startRestartableS3rver`, for tests that never take it down.
 */
export async function startS3rver(): Promise<TestS3> {
  return await startRestartableS3rver();
}

function uploadsDir(directory: string, bucket: string): string {
  return join(directory, bucket, "._S3rver_uploads");
}

async function listUploads(directory: string, bucket: string): Promise<string[]> {
  const ids: string[] = [];
  try {
    for await (const entry of Deno.readDir(uploadsDir(directory, bucket))) {
      if (entry.isDirectory) ids.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return ids.sort();
}

function multipartExtensions(directory: string): Middleware {
  return async function multipartExtensions(ctx, next) {
    // Path-style only; the SDK sends bucket-level requests as "/<bucket>/?uploads".
    const match = /^\/([^/]+)(?:\/(.*))?$/.exec(ctx.path);
    const bucket = match?.[1];
    if (bucket === undefined || /[^A-Za-z0-9.-]/.test(bucket)) return await next();
    const uploadId = ctx.query.uploadId;
    if (ctx.method === "DELETE" && match?.[2] && typeof uploadId === "string") {
      // AbortMultipartUpload
      if (!/^[0-9a-f]+$/.test(uploadId)) return xmlError(ctx, 404, "NoSuchUpload");
      try {
        await Deno.remove(join(uploadsDir(directory, bucket), uploadId), { recursive: true });
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return xmlError(ctx, 404, "NoSuchUpload");
        throw error;
      }
      ctx.status = 204;
      ctx.body = "";
      return;
    }
    if (ctx.method === "GET" && !match?.[2] && "uploads" in ctx.query) {
      // ListMultipartUploads
      // As S3 answers it: filtered by `prefix`, each with its Initiated time (the upload
      // folder's creation, which s3rver makes at CreateMultipartUpload).
      const prefix = typeof ctx.query.prefix === "string" ? ctx.query.prefix : "";
      const uploads = [];
      for (const id of await listUploads(directory, bucket)) {
        const folder = join(uploadsDir(directory, bucket), id);
        const key = await Deno.readTextFile(join(folder, "key"));
        if (!key.startsWith(prefix)) continue;
        const stat = await Deno.stat(folder);
        const initiated = (stat.birthtime ?? stat.mtime ?? new Date()).toISOString();
        uploads.push(
          `<Upload><Key>${escapeXml(key)}</Key><UploadId>${id}</UploadId>` +
            `<Initiated>${initiated}</Initiated></Upload>`,
        );
      }
      ctx.status = 200;
      ctx.type = "application/xml";
      ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult>` +
        `<Bucket>${escapeXml(bucket)}</Bucket><IsTruncated>false</IsTruncated>` +
        `${uploads.join("")}</ListMultipartUploadsResult>`;
      return;
    }
    await next();
  };
}

function xmlError(ctx: KoaContext, status: number, code: string): void {
  ctx.status = status;
  ctx.type = "application/xml";
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
    `<Message>${code}</Message></Error>`;
}

function escapeXml(value: string): string {
  return value.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A request s3rver answered, as `RestartableS3.waitFor` reports it. */
export interface S3Request {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  status: number;
}

/** A `TestS3` whose endpoint can go down and come back mid-test. */
export interface RestartableS3 extends TestS3 {
  /** Stops listening and drops every open connection: requests fail until `resume()`. */
  halt(): Promise<void>;
  /** Listens again on the same port, over the same data directory and bucket. */
  resume(): Promise<void>;
  /** Resolves with the first request answered from now on that `match` accepts. */
  waitFor(match: (request: S3Request) => boolean): Promise<S3Request>;
  /**
   * Answers requests that `match` accepts with 503 ServiceUnavailable, leaving the store
   * untouched, while the rest are served; null serves everything again.
   */
  refuse(match: ((request: Omit<S3Request, "status">) => boolean) | null): void;
}

/**
 * Starts s3rver like `startS3rver`, with `halt()`/`resume()` to take the endpoint down while a
 * client is mid-transfer and bring it back on the same port with the same data, and `refuse()`
 * to make it answer chosen requests with 503 while it stays up.
 *
 * @example
 * const s3 = await startRestartableS3rver();
 * await s3.waitFor((r) => r.method === "PUT" && "partNumber" in r.query);
 * await s3.halt(); // ECONNREFUSED from here on
 * await s3.resume();
 */
export async function startRestartableS3rver(): Promise<RestartableS3> {
  const directory = await Deno.makeTempDir({ prefix: "portal-s3rver-" });
  const bucket = `portal-test-${crypto.randomUUID().slice(0, 8)}`;
  const waiters = new Set<{ match: (r: S3Request) => boolean; resolve: (r: S3Request) => void }>();
  let refusing: ((request: Omit<S3Request, "status">) => boolean) | null = null;
  const observe: Middleware = async function observe(ctx, next) {
    const incoming = { method: ctx.method, path: ctx.path, query: ctx.query };
    if (refusing?.(incoming)) xmlError(ctx, 503, "ServiceUnavailable");
    else await next();
    const request = { method: ctx.method, path: ctx.path, query: ctx.query, status: ctx.status };
    for (const waiter of [...waiters]) {
      if (!waiter.match(request)) continue;
      waiters.delete(waiter);
      waiter.resolve(request);
    }
  };
  const listen = async (port: number) => {
    const server = new (S3rver as unknown as S3rverConstructor)({
      address: "127.0.0.1",
      port,
      silent: true,
      directory,
      configureBuckets: [{ name: bucket }],
    });
    server.middleware.splice(server.middleware.length - 1, 0, observe);
    server.middleware.splice(server.middleware.length - 1, 0, multipartExtensions(directory));
    const address = await server.run();
    return { server, port: address.port };
  };
  const close = async (server: S3rverServer) => {
    const closed = server.close();
    server.httpServer?.closeAllConnections?.();
    await closed;
  };

  let running: S3rverServer | null;
  let port: number;
  try {
    ({ server: running, port } = await listen(0));
  } catch (error) {
    await Deno.remove(directory, { recursive: true });
    throw error;
  }
  return {
    endpointUrl: `http://127.0.0.1:${port}`,
    bucket,
    ...CREDENTIALS,
    directory,
    async pendingUploads() {
      return await listUploads(directory, bucket);
    },
    async halt() {
      if (running === null) return;
      const server = running;
      running = null;
      await close(server);
    },
    async resume() {
      if (running !== null) return;
      ({ server: running } = await listen(port));
    },
    waitFor(match) {
      return new Promise((resolve) => waiters.add({ match, resolve }));
    },
    refuse(match) {
      refusing = match;
    },
    async stop() {
      if (running !== null) await close(running);
      running = null;
      await Deno.remove(directory, { recursive: true });
    },
  };
}
