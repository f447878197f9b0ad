/**
 * A round trip through the configured storage (write, read back, delete) that tells an
 * operator what is wrong in one line: bucket missing, credentials refused, endpoint down.
 */
import { createHash } from "node:crypto";
import type { StorageAdapter, StorageErrorKind } from "./storage.ts";
import { StorageError } from "./storage.ts";

/** Outcome of `checkStorage`: what was verified, or why it failed. */
export type StorageCheckResult =
  | { ok: true; details: string }
  | { ok: false; message: string };

const PROBE_SIZE = 4096;

/**
 * Writes a probe object `portal-probe/<uuid>`, reads it back, compares the bytes and deletes
 * it. Never throws.
 *
 * @example
 * const result = await checkStorage(createStorage(config));
 * if (!result.ok) console.error(result.message);
 */
export async function checkStorage(adapter: StorageAdapter): Promise<StorageCheckResult> {
  const key = `portal-probe/${crypto.randomUUID()}`;
  const probe = crypto.getRandomValues(new Uint8Array(PROBE_SIZE));
  const expectedSha = createHash("sha256").update(probe).digest("hex");
  const where = adapter.describe?.() ?? `${adapter.backend} storage`;
  const started = performance.now();
  let step = "write";
  let written = false;
  try {
    const stored = await adapter.putObject(key, streamOf(probe), {
      contentType: "application/octet-stream",
    });
    written = true;
    if (stored.size !== PROBE_SIZE || stored.sha256 !== expectedSha) {
      return failure(
        `Cannot verify ${where}: stored probe "${key}" as ${stored.size} bytes with SHA-256 "${stored.sha256}", expected ${PROBE_SIZE} bytes with "${expectedSha}"`,
      );
    }
    step = "read back";
    const object = await adapter.getObject(key);
    if (object === null) {
      return failure(`Cannot verify ${where}: probe "${key}" is missing right after writing it`);
    }
    const readBack = new Uint8Array(await new Response(object.body).arrayBuffer());
    if (!equalBytes(readBack, probe)) {
      return failure(
        `Cannot verify ${where}: probe "${key}" read back as ${readBack.byteLength} bytes that differ from the ${PROBE_SIZE} bytes written`,
      );
    }
    step = "delete";
    await adapter.deleteObject(key);
    written = false;
    if (await adapter.headObject(key) !== null) {
      return failure(`Cannot verify ${where}: probe "${key}" still exists after deleting it`);
    }
    const ms = Math.round(performance.now() - started);
    return {
      ok: true,
      details:
        `${where}: wrote, read back and deleted a ${PROBE_SIZE}-byte probe object in ${ms} ms`,
    };
  } catch (error) {
    if (error instanceof StorageError) {
      return failure(`${error.message}; ${hint(adapter.backend, error.kind)}`);
    }
    const message = error instanceof Error ? error.message : String(error);
    return failure(`Cannot ${step} probe object "${key}" in ${where}: ${message}`);
  } finally {
    if (written) await adapter.deleteObject(key).catch(() => {});
  }
}

function hint(backend: "local" | "s3", kind: StorageErrorKind): string {
  if (backend === "local") {
    return kind === "denied"
      ? "check that Portal may write to PORTAL_DATA_DIR"
      : "check PORTAL_DATA_DIR and the free space on its disk";
  }
  switch (kind) {
    case "bucket_missing":
      return "create the bucket or fix AWS_STORAGE_BUCKET_NAME";
    case "denied":
      return "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket policy";
    case "unavailable":
      return "check AWS_S3_ENDPOINT_URL and that the service is running";
    default:
      return "check the S3 settings (AWS_*)";
  }
}

function failure(message: string): StorageCheckResult {
  return { ok: false, message };
}

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes.slice());
      controller.close();
    },
  });
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
