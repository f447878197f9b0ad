/**
 * S3 failing in the middle of a multipart upload through the upload service (SPEC §5: an
 * interrupted upload leaves no stored row and no orphaned object; a failure is a `failed` row
 * with a readable message and no event). The endpoint is a real s3rver that, once it stored
 * the first 8 MiB part of a 20 MiB file, either goes down (and is brought back to look at what
 * is left) or stays up and refuses the remaining parts.
 */
import assert from "node:assert/strict";
import { ListMultipartUploadsCommand } from "@aws-sdk/client-s3";
import { UploadError } from "../src/uploads/upload_errors.ts";
import { deleteIncompleteUploads } from "../src/uploads/upload_jobs.ts";
import { uploadFile } from "../src/uploads/upload_service.ts";
import { operatorClient, type RestartableS3, startRestartableS3rver } from "./helpers/s3rver.ts";
import {
  bucketKeys,
  createUploadFixture,
  outboxEvents,
  pngBytes,
  s3Adapter,
  type UploadFixture,
} from "./helpers/uploads.ts";

const MIB = 1024 * 1024;
const SIZE = 20 * MIB;
/** Past the first 8 MiB part and before the second is full: mid-multipart. */
const HALT_AT = 12 * MIB;
const CHUNK = 256 * 1024;

/** The multipart uploads the server lists for the bucket (ListMultipartUploads over HTTP). */
async function listedUploads(s3: RestartableS3): Promise<string[]> {
  const client = operatorClient(s3);
  try {
    const output = await client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }));
    return (output.Uploads ?? []).map((upload) => `${upload.Key} ${upload.UploadId}`);
  } finally {
    client.destroy();
  }
}

/**
 * `bytes` as a stream that, on reaching `HALT_AT`, waits until `ready` resolves and then
 * runs `halt` before giving more: the client is mid-transfer when the endpoint goes away.
 */
function haltingStream(bytes: Uint8Array, ready: Promise<unknown>, halt: () => Promise<void>) {
  let offset = 0;
  let halted = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!halted && offset >= HALT_AT) {
        await ready;
        await halt();
        halted = true;
      }
      if (offset >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + CHUNK));
      offset += CHUNK;
    },
  }, { highWaterMark: 0 });
}

/**
 * Uploads 20 MiB as "big.png" through `uploadFile` on `s3`, running `interrupt` once the first
 * part is stored; returns what `uploadFile` threw and the multipart uploads s3rver held then.
 */
async function interruptedUpload(
  fx: UploadFixture,
  s3: RestartableS3,
  interrupt: () => Promise<void> | void,
): Promise<{ error: unknown; pendingAtInterrupt: string[] }> {
  const storage = s3Adapter(s3);
  try {
    const firstPart = s3.waitFor((request) =>
      request.method === "PUT" && request.query.partNumber === "1" && request.status === 200
    );
    let pendingAtInterrupt: string[] = [];
    const body = haltingStream(pngBytes(SIZE), firstPart, async () => {
      pendingAtInterrupt = await s3.pendingUploads();
      await interrupt();
    });
    const error = await uploadFile({ ...fx.deps, storage }, {
      body,
      filename: "big.png",
      uploader: null,
    }).then(() => null, (error: unknown) => error);
    return { error, pendingAtInterrupt };
  } finally {
    storage.close();
  }
}

/** The failed row, no event: what every interrupted upload must leave in the database. */
async function assertFailedWithoutEvent(fx: UploadFixture, error: unknown): Promise<void> {
  assert.ok(error instanceof UploadError, `expected an UploadError, got ${error}`);
  assert.equal(error.code, "storage_unavailable");
  const rows = await fx.db.sql<
    { status: string; errorMessage: string; storageKey: string | null; backend: string }[]
  >`
    SELECT status, error_message AS "errorMessage", storage_key AS "storageKey",
           storage_backend AS backend
    FROM upload_file`;
  assert.deepEqual([...rows], [{
    status: "failed",
    errorMessage: 'Cannot store upload "big.png": the storage is unavailable; try again later',
    storageKey: null,
    backend: "s3",
  }]);
  assert.deepEqual(await outboxEvents(fx.db), [], "no file.stored (nor any other) event");
}

Deno.test("uploadFile() records a failed file, no event and no object when S3 goes down mid-upload", async () => {
  const fx = await createUploadFixture("uploads_s3_down_midway");
  const s3 = await startRestartableS3rver();
  try {
    const { error, pendingAtInterrupt } = await interruptedUpload(fx, s3, () => s3.halt());
    assert.equal(pendingAtInterrupt.length, 1, "the server held a multipart upload when it died");
    await assertFailedWithoutEvent(fx, error);
    await s3.resume();
    assert.deepEqual(await bucketKeys(s3), [], "no object in the bucket");
  } finally {
    await s3.stop();
    await fx.close();
  }
});

Deno.test("deleteIncompleteUploads() aborts the multipart upload an outage left behind, once S3 is back", async () => {
  const fx = await createUploadFixture("uploads_s3_down_abort");
  const s3 = await startRestartableS3rver();
  const storage = s3Adapter(s3);
  try {
    const { error } = await interruptedUpload(fx, s3, () => s3.halt());
    await assertFailedWithoutEvent(fx, error);
    await s3.resume();
    // The adapter's abort went to the endpoint while it was down: the upload is still there.
    assert.equal((await listedUploads(s3)).length, 1, "the outage left a multipart upload");
    const deps = { ...fx.deps, storage };
    // A day later, the cleanup job finds and aborts it (a younger one is left alone).
    assert.deepEqual(await deleteIncompleteUploads(deps), { removed: 0, errors: 0 });
    const dayLater = new Date(Date.now() + 25 * 3_600_000);
    assert.deepEqual(await deleteIncompleteUploads({ ...deps, clock: { now: () => dayLater } }), {
      removed: 1,
      errors: 0,
    });
    assert.deepEqual(await listedUploads(s3), [], "ListMultipartUploads is empty");
    assert.deepEqual(await s3.pendingUploads(), [], "no multipart upload on s3rver's disk");
    assert.deepEqual(await bucketKeys(s3), [], "no object in the bucket");
  } finally {
    storage.close();
    await s3.stop();
    await fx.close();
  }
});

Deno.test("deleteIncompleteUploads() counts a storage outage as an error for the next run", async () => {
  const fx = await createUploadFixture("uploads_s3_incomplete_down");
  const s3 = await startRestartableS3rver();
  const storage = s3Adapter(s3);
  try {
    await s3.halt();
    assert.deepEqual(await deleteIncompleteUploads({ ...fx.deps, storage }), {
      removed: 0,
      errors: 1,
    });
  } finally {
    storage.close();
    await s3.stop();
    await fx.close();
  }
});

Deno.test("uploadFile() aborts the multipart upload when S3 refuses the parts after the first", async () => {
  const fx = await createUploadFixture("uploads_s3_refuses_parts");
  const s3 = await startRestartableS3rver();
  try {
    const { error, pendingAtInterrupt } = await interruptedUpload(fx, s3, () => {
      s3.refuse((request) => request.method === "PUT" && request.query.partNumber !== undefined);
    });
    assert.equal(pendingAtInterrupt.length, 1, "the server held a multipart upload");
    await assertFailedWithoutEvent(fx, error);
    s3.refuse(null);
    assert.deepEqual(await bucketKeys(s3), [], "no object in the bucket");
    assert.deepEqual(await listedUploads(s3), [], "ListMultipartUploads is empty");
    assert.deepEqual(await s3.pendingUploads(), [], "no multipart upload on s3rver's disk");
  } finally {
    await s3.stop();
    await fx.close();
  }
});
