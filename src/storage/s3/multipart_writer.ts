/**
 * Streams one object into S3: read the body into part-sized buffers; below one part a single
 * PutObject, otherwise a multipart upload with at most `partsInFlight` parts sending while the
 * next one fills. Any failure aborts the multipart upload. Computes size and SHA-256 on the way.
 */
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import { type PutObjectOptions, StorageError, type StoredObject } from "../storage.ts";
import { abortedError, readChunks } from "../streams.ts";
import type { PartBuffers } from "./part_buffers.ts";

/** S3's limit on the parts of one multipart upload. */
const MAX_PARTS = 10_000;

/** One write: where, what, and the adapter's client and limits. */
export interface ObjectWrite {
  client: S3Client;
  bucket: string;
  key: string;
  body: ReadableStream<Uint8Array>;
  /** For messages: "store object ..." */
  action: string;
  options: PutObjectOptions;
  /** Bytes per part (S3 needs >= 5 MiB except for the last). */
  partSize: number;
  partsInFlight: number;
  buffers: PartBuffers;
  /** Runs one SDK call, turning its failure into a StorageError. */
  attempt<T>(action: string, run: () => Promise<T>): Promise<T>;
}

/**
 * Writes `w.body` to `w.key`.
 *
 * @example
 * const { size, sha256 } = await writeObject({ client, bucket, key, body, action, options, ... });
 */
/**
 * Reads `body` into part-sized buffers: below one part a single PutObject, otherwise a
 * multipart upload with at most `partsInFlight` parts sending while the next one fills.
 */
export async function writeObject(w: ObjectWrite): Promise<StoredObject> {
  const { key, body, action, options } = w;
  const { signal } = options;
  const partSize = w.partSize;
  const hash = createHash("sha256");
  let size = 0;
  // The buffer being filled; null once handed to a part, which gives it back when sent.
  let buffer: Uint8Array<ArrayBuffer> | null = w.buffers.take();
  let filled = 0;
  let uploadId: string | undefined;
  let partCount = 0;
  const parts: CompletedPart[] = [];
  const inFlight = new Set<Promise<void>>();
  // Held in an object so TypeScript sees the writes made by the part callbacks.
  const state: { failure: { error: unknown } | null } = { failure: null };
  const send = { abortSignal: signal };

  const startPart = async (whole: Uint8Array<ArrayBuffer>, length: number) => {
    while (inFlight.size >= w.partsInFlight) await Promise.race(inFlight);
    if (state.failure) throw state.failure.error;
    const partNumber = ++partCount;
    if (partNumber > MAX_PARTS) {
      throw new StorageError(
        "io",
        `Cannot ${action}: it is larger than ${MAX_PARTS} parts of ${partSize} bytes`,
      );
    }
    const id = uploadId!;
    // The SDK sends a view of the buffer as is (no copy); the buffer is reused only after
    // the request has completed.
    const task: Promise<void> = w.attempt(action, () =>
      w.client.send(
        new UploadPartCommand({
          Bucket: w.bucket,
          Key: key,
          UploadId: id,
          PartNumber: partNumber,
          Body: whole.subarray(0, length),
        }),
        send,
      ))
      .then(
        (output) => void parts.push({ PartNumber: partNumber, ETag: output.ETag }),
        (error) => void (state.failure ??= { error }),
      )
      .finally(() => {
        inFlight.delete(task);
        w.buffers.giveBack(whole);
      });
    inFlight.add(task);
  };

  try {
    for await (
      const chunk of readChunks(body, {
        signal,
        onAbort: () => abortedError(action, signal!),
      })
    ) {
      hash.update(chunk);
      size += chunk.byteLength;
      let offset = 0;
      while (offset < chunk.byteLength) {
        buffer ??= w.buffers.take();
        const n = Math.min(chunk.byteLength - offset, partSize - filled);
        buffer.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (filled < partSize) continue;
        uploadId ??= await createMultipart(w);
        const full = buffer;
        buffer = null;
        filled = 0;
        await startPart(full, partSize);
      }
      if (state.failure) throw state.failure.error;
    }
    if (uploadId === undefined) {
      const data = (buffer ?? new Uint8Array(0)).subarray(0, filled);
      await w.attempt(action, () =>
        w.client.send(
          new PutObjectCommand({
            Bucket: w.bucket,
            Key: key,
            Body: data,
            ContentType: options.contentType,
            ContentDisposition: options.contentDisposition,
          }),
          send,
        ));
    } else {
      if (buffer !== null && filled > 0) {
        const last = buffer;
        buffer = null;
        await startPart(last, filled);
      }
      await Promise.all(inFlight);
      if (state.failure) throw state.failure.error;
      parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
      const id = uploadId;
      await w.attempt(action, () =>
        w.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: w.bucket,
            Key: key,
            UploadId: id,
            MultipartUpload: { Parts: parts },
          }),
          send,
        ));
    }
  } catch (error) {
    // Parts still sending would land after the abort and linger on some servers.
    await Promise.all(inFlight);
    if (uploadId !== undefined) await abortMultipart(w, uploadId);
    throw error;
  } finally {
    if (buffer !== null) w.buffers.giveBack(buffer);
  }
  return { size, sha256: hash.digest("hex") };
}

async function createMultipart(w: ObjectWrite): Promise<string> {
  const { key, action, options } = w;
  const output = await w.attempt(action, () =>
    w.client.send(
      new CreateMultipartUploadCommand({
        Bucket: w.bucket,
        Key: key,
        ContentType: options.contentType,
        ContentDisposition: options.contentDisposition,
      }),
      { abortSignal: options.signal },
    ));
  if (!output.UploadId) {
    throw new StorageError("io", `Cannot ${action}: the server returned no multipart upload id`);
  }
  return output.UploadId;
}

async function abortMultipart(w: ObjectWrite, uploadId: string): Promise<void> {
  const { key } = w;
  try {
    await w.client.send(
      new AbortMultipartUploadCommand({ Bucket: w.bucket, Key: key, UploadId: uploadId }),
    );
  } catch {
    // The original failure is what the caller needs; a bucket lifecycle rule
    // (AbortIncompleteMultipartUpload) is the backstop for uploads that cannot be aborted.
  }
}
