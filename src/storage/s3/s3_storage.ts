/**
 * Storage in an S3-compatible bucket (AWS, MinIO, R2, Ceph): the adapter. Writes stream through
 * `multipart_writer.ts` with a bounded number of parts in memory (`part_buffers.ts`); any
 * failure aborts the upload so no object and no dangling multipart upload remain.
 *
 * Longer than most files here on purpose: it is one class, each method one short sequence of S3
 * calls implementing one operation of the `StorageAdapter` contract (parts, objects, presigned
 * links, clean-up of incomplete uploads); splitting it would scatter the contract.
 */
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { contentDisposition } from "../../http/content_disposition.ts";
import { writeObject } from "./multipart_writer.ts";
import { PartBuffers } from "./part_buffers.ts";
import { s3StorageError } from "./s3_errors.ts";
import {
  type ByteRange,
  type DownloadUrlOptions,
  type ObjectBody,
  type ObjectInfo,
  type PutObjectOptions,
  type StorageAdapter,
  StorageError,
  type StoredObject,
  type WriteOptions,
} from "../storage.ts";
import {
  assertValidKey,
  assertValidPart,
  assertValidRange,
  assertValidSession,
  partKey,
  PARTS_PREFIX,
} from "../keys.ts";
import { sliceStream } from "../streams.ts";

/** Options of `S3StorageAdapter`, named after the `AWS_*` settings. */
export interface S3StorageOptions {
  bucket: string;
  /** Null means AWS itself; any URL means an S3-compatible service (path-style by default). */
  endpointUrl: string | null;
  region: string;
  /** Empty means the SDK's default chain (environment, instance role). */
  accessKeyId: string;
  secretAccessKey: string;
  /** False: `presignedDownloadUrl` returns the plain object URL (for public buckets). */
  querystringAuth: boolean;
  /** Default: true when `endpointUrl` is set. */
  forcePathStyle?: boolean;
  /** Bytes per multipart part; default 8 MiB (S3 needs >= 5 MiB except for the last). */
  partSize?: number;
  /** Parts uploading at once; default 3. Memory is about (partsInFlight + 1) × partSize. */
  partsInFlight?: number;
  /** Milliseconds to establish a connection; default 5000. */
  connectTimeoutMs?: number;
  /** SDK attempts per request, first try included; default 2. */
  maxAttempts?: number;
}

const MIB = 1024 * 1024;
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600; // SigV4 limit
const DELETE_CONCURRENCY = 8;

/** A `StorageAdapter` on an S3-compatible bucket. */
export class S3StorageAdapter implements StorageAdapter {
  readonly backend = "s3" as const;
  /** The bucket every key lives in. */
  readonly bucket: string;
  /** The endpoint shown in messages: the configured URL, or the AWS regional endpoint. */
  readonly endpoint: string;
  #client: S3Client;
  #querystringAuth: boolean;
  #partSize: number;
  #partsInFlight: number;
  #buffers: PartBuffers;

  constructor(options: S3StorageOptions) {
    this.bucket = options.bucket;
    this.endpoint = options.endpointUrl ?? `https://s3.${options.region}.amazonaws.com`;
    this.#querystringAuth = options.querystringAuth;
    this.#partSize = options.partSize ?? 8 * MIB;
    this.#partsInFlight = Math.max(1, options.partsInFlight ?? 3);
    this.#buffers = new PartBuffers(this.#partSize, this.#partsInFlight);
    this.#client = new S3Client({
      region: options.region,
      endpoint: options.endpointUrl ?? undefined,
      forcePathStyle: options.forcePathStyle ?? options.endpointUrl !== null,
      credentials: options.accessKeyId === "" ? undefined : {
        accessKeyId: options.accessKeyId,
        secretAccessKey: options.secretAccessKey,
      },
      // "Endpoint down" must fail in seconds: few retries and a short connect timeout. No
      // request timeout: a large part on a slow link is legitimately slow.
      maxAttempts: options.maxAttempts ?? 2,
      requestHandler: { connectionTimeout: options.connectTimeoutMs ?? 5000 },
      // Default CRC32 checksums (SDK >= 3.729) are not understood by MinIO < 2025, Ceph or
      // s3rver; send and verify them only where the API requires them.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  }

  /** Names the bucket and endpoint, for logs and `portal storage check` (no secrets). */
  describe(): string {
    return `S3 bucket "${this.bucket}" at "${this.endpoint}"`;
  }

  /** Closes the SDK's keep-alive sockets. */
  close(): void {
    this.#client.destroy();
  }

  /** Creates the bucket unless it exists; used by tests and `portal storage check`. */
  async ensureBucket(): Promise<"exists" | "created"> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return "exists";
    } catch (error) {
      const mapped = this.#error(`check bucket "${this.bucket}"`, error);
      if (mapped.kind !== "not_found" && mapped.kind !== "bucket_missing") throw mapped;
    }
    try {
      await this.#client.send(new CreateBucketCommand({ Bucket: this.bucket }));
      return "created";
    } catch (error) {
      if (error instanceof Error && error.name === "BucketAlreadyOwnedByYou") return "exists";
      throw this.#error(`create bucket "${this.bucket}"`, error);
    }
  }

  /** Stores one part of a resumable upload as the object `tmp/parts/<sessionId>/<partNumber>`. */
  async writePart(
    sessionId: string,
    partNumber: number,
    body: ReadableStream<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<StoredObject & { key: string }> {
    assertValidPart(sessionId, partNumber);
    const key = partKey(sessionId, partNumber);
    const action = `store part ${partNumber} of upload "${sessionId}"`;
    const stored = await this.#upload(key, body, action, options);
    return { ...stored, key };
  }

  /** Streams a part; throws StorageError "not_found" when it is missing. */
  async readPart(sessionId: string, partNumber: number): Promise<ReadableStream<Uint8Array>> {
    assertValidPart(sessionId, partNumber);
    const action = `read part ${partNumber} of upload "${sessionId}"`;
    const output = await this.#get(partKey(sessionId, partNumber), action);
    if (output === null) throw new StorageError("not_found", `Cannot ${action}: it does not exist`);
    return bodyStream(output);
  }

  /** Deletes one part; a missing part is not an error. */
  async deletePart(sessionId: string, partNumber: number): Promise<void> {
    assertValidPart(sessionId, partNumber);
    await this.#delete(
      partKey(sessionId, partNumber),
      `delete part ${partNumber} of upload "${sessionId}"`,
    );
  }

  /**
   * Aborts multipart uploads under `prefix` initiated before `olderThan`: those whose abort
   * was lost when the endpoint failed mid-upload (a bucket lifecycle rule does the same, where
   * the operator has set one). Uploads still in progress are younger and left alone.
   */
  async deleteIncomplete(options: { olderThan: Date; prefix: string }): Promise<number> {
    const action = `list the unfinished multipart uploads under "${options.prefix}"`;
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.#attempt(action, () =>
        this.#client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: options.prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        ));
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        if (upload.Initiated === undefined || upload.Initiated >= options.olderThan) continue;
        const key = upload.Key;
        const uploadId = upload.UploadId;
        try {
          await this.#attempt(`abort the unfinished upload of "${key}"`, () =>
            this.#client.send(
              new AbortMultipartUploadCommand({
                Bucket: this.bucket,
                Key: key,
                UploadId: uploadId,
              }),
            ));
          removed++;
        } catch (error) {
          // Completed or aborted by someone else since the listing: nothing left to remove. Any
          // other failure (endpoint down, access refused) ends the pass; the next run retries.
          if (!(error instanceof StorageError && error.kind === "not_found")) throw error;
        }
      }
      const more = page.IsTruncated === true;
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
    return removed;
  }

  /** Deletes every object under the session's part prefix, a page of keys at a time. */
  async deleteSessionParts(sessionId: string): Promise<void> {
    assertValidSession(sessionId);
    const action = `delete the parts of upload "${sessionId}"`;
    let token: string | undefined;
    do {
      const page = await this.#attempt(action, () =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: `${PARTS_PREFIX}/${sessionId}/`,
            ContinuationToken: token,
          }),
        ));
      // One DeleteObject per key rather than DeleteObjects: the batch call needs Content-MD5
      // or a checksum that several S3 clones handle differently.
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [o.Key] : []));
      for (let i = 0; i < keys.length; i += DELETE_CONCURRENCY) {
        await Promise.all(
          keys.slice(i, i + DELETE_CONCURRENCY).map((key) => this.#delete(key, action)),
        );
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** Streams `body` to `key` (multipart above one part size), hashing as it goes. */
  async putObject(
    key: string,
    body: ReadableStream<Uint8Array>,
    options: PutObjectOptions = {},
  ): Promise<StoredObject> {
    assertValidKey(key);
    return await this.#upload(key, body, `store object "${key}"`, options);
  }

  /** Streams the object (or `range` of it); null when it does not exist. */
  async getObject(key: string, options: { range?: ByteRange } = {}): Promise<ObjectBody | null> {
    assertValidKey(key);
    const { range } = options;
    if (range !== undefined) assertValidRange(range);
    const output = await this.#get(key, `read object "${key}"`, range);
    if (output === null) return null;
    const info = infoFromOutput(output);
    if (range === undefined) return { body: bodyStream(output), info };
    if (range.start >= info.size) {
      // s3rver answers 206 even for an empty object; S3 itself answers 416 (InvalidRange).
      await bodyStream(output).cancel();
      throw new RangeError(
        `Cannot read byte range "${range.start}-${range.end}" of object "${key}": it has ${info.size} bytes`,
      );
    }
    // Some S3 clones (s3rver for "bytes=0-0") send more than asked; serve exactly the range.
    const served = parseContentRange(output.ContentRange) ?? { start: 0, end: info.size - 1 };
    const end = Math.min(range.end, info.size - 1);
    if (served.start > range.start || served.end < end) {
      await bodyStream(output).cancel();
      throw new StorageError(
        "io",
        `Cannot read byte range "${range.start}-${range.end}" of object "${key}": the server sent bytes ${served.start}-${served.end}`,
      );
    }
    const length = end - range.start + 1;
    const body = sliceStream(bodyStream(output), range.start - served.start, length);
    return { body, info, range: { start: range.start, end } };
  }

  /** Reads the object's metadata; null when it does not exist. */
  async headObject(key: string): Promise<ObjectInfo | null> {
    assertValidKey(key);
    try {
      const output = await this.#client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: key }),
      );
      return {
        size: output.ContentLength ?? 0,
        etag: output.ETag ?? "",
        lastModified: output.LastModified ?? null,
        contentType: output.ContentType ?? null,
      };
    } catch (error) {
      const mapped = this.#error(`read object "${key}"`, error);
      if (mapped.kind === "not_found") return null;
      throw mapped;
    }
  }

  /** Deletes the object; a missing object is not an error. */
  async deleteObject(key: string): Promise<void> {
    assertValidKey(key);
    await this.#delete(key, `delete object "${key}"`);
  }

  /**
   * Presigned GET URL that makes S3 answer with the given Content-Disposition and
   * Content-Type; with querystringAuth false, the plain object URL (S3 ignores response
   * overrides on anonymous requests, so filename and type come from the object itself).
   */
  async presignedDownloadUrl(key: string, options: DownloadUrlOptions): Promise<string | null> {
    assertValidKey(key);
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ResponseContentDisposition: contentDisposition(options.filename, options.inline),
      ResponseContentType: options.contentType,
    });
    const expiresIn = Math.min(
      Math.max(1, Math.floor(options.expiresInSeconds)),
      MAX_PRESIGN_SECONDS,
    );
    const url = await this.#attempt(
      `sign a download link for "${key}"`,
      () => getSignedUrl(this.#client, command, { expiresIn }),
    );
    if (this.#querystringAuth) return url;
    // The signer resolves endpoint, path style and key encoding; only its query is unwanted.
    const plain = new URL(url);
    plain.search = "";
    return plain.href;
  }

  async #get(key: string, action: string, range?: ByteRange) {
    try {
      return await this.#client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: range === undefined ? undefined : `bytes=${range.start}-${range.end}`,
        }),
      );
    } catch (error) {
      if (error instanceof Error && error.name === "InvalidRange") {
        throw new RangeError(
          `Cannot read byte range "${range?.start}-${range?.end}" of object "${key}": it starts past the end`,
        );
      }
      const mapped = this.#error(action, error);
      if (mapped.kind === "not_found") return null;
      throw mapped;
    }
  }

  async #delete(key: string, action: string): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      const mapped = this.#error(action, error);
      if (mapped.kind !== "not_found") throw mapped;
    }
  }

  /** Streams `body` to `key` (multipart_writer.ts). */
  async #upload(
    key: string,
    body: ReadableStream<Uint8Array>,
    action: string,
    options: PutObjectOptions,
  ): Promise<StoredObject> {
    return await writeObject({
      client: this.#client,
      bucket: this.bucket,
      key,
      body,
      action,
      options,
      partSize: this.#partSize,
      partsInFlight: this.#partsInFlight,
      buffers: this.#buffers,
      attempt: (what, run) => this.#attempt(what, run),
    });
  }

  async #attempt<T>(action: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.#error(action, error);
    }
  }

  #error(action: string, error: unknown): StorageError {
    return s3StorageError(error, { action, endpoint: this.endpoint, bucket: this.bucket });
  }
}

function bodyStream(output: GetObjectCommandOutput): ReadableStream<Uint8Array> {
  if (output.Body === undefined) return new ReadableStream({ start: (c) => c.close() });
  return output.Body.transformToWebStream() as ReadableStream<Uint8Array>;
}

function infoFromOutput(output: GetObjectCommandOutput): ObjectInfo {
  const total = /\/(\d+)$/.exec(output.ContentRange ?? "")?.[1];
  return {
    size: total !== undefined ? Number(total) : output.ContentLength ?? 0,
    etag: output.ETag ?? "",
    lastModified: output.LastModified ?? null,
    contentType: output.ContentType ?? null,
  };
}

function parseContentRange(header: string | undefined): ByteRange | null {
  const match = /^bytes (\d+)-(\d+)\//.exec(header ?? "");
  return match ? { start: Number(match[1]), end: Number(match[2]) } : null;
}
