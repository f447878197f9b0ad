/**
 * Memory stays flat whatever the file size: 512 MiB through each adapter, in and back out,
 * with the process's RSS sampled while the bytes move.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { LocalStorageAdapter } from "../src/storage/local_storage.ts";
import { S3StorageAdapter } from "../src/storage/s3_storage.ts";
import type { StorageAdapter } from "../src/storage/storage.ts";
import { startS3rver } from "./helpers/s3rver.ts";

const MIB = 1024 * 1024;
const SIZE = 512 * MIB;
const MAX_GROWTH = 100 * 1000 * 1000;

/** Deterministic pseudo-random bytes (xorshift32), produced as the consumer pulls. */
function seededStream(
  seed: number,
  size: number,
  onChunk: () => void = () => {},
): ReadableStream<Uint8Array> {
  const chunkSize = 64 * 1024;
  let state = seed >>> 0 || 1;
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      onChunk();
      if (sent >= size) return controller.close();
      const n = Math.min(chunkSize, size - sent);
      const words = new Uint32Array(Math.ceil(n / 4));
      for (let i = 0; i < words.length; i++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        words[i] = state >>> 0;
      }
      controller.enqueue(new Uint8Array(words.buffer, 0, n));
      sent += n;
    },
  });
}

async function sha256Of(stream: ReadableStream<Uint8Array>, onChunk: () => void): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) {
    hash.update(chunk);
    onChunk();
  }
  return hash.digest("hex");
}

/** Tracks the highest RSS seen, from a timer and from the data path itself. */
function rssProbe() {
  const before = Deno.memoryUsage().rss;
  let peak = before;
  const sample = () => {
    peak = Math.max(peak, Deno.memoryUsage().rss);
  };
  const timer = setInterval(sample, 25);
  let calls = 0;
  return {
    // Sampling on every 32nd chunk covers stretches where the event loop is too busy for timers.
    onChunk: () => (++calls % 32 === 0 ? sample() : undefined),
    stop: () => {
      clearInterval(timer);
      sample();
      return { before, peak, growth: peak - before };
    },
  };
}

/**
 * Writes 512 MiB and reads it back. The write must stay under MAX_GROWTH; so must the read,
 * except where `maxReadGrowth` says otherwise.
 */
async function roundTrip(
  storage: StorageAdapter,
  label: string,
  { maxReadGrowth = MAX_GROWTH } = {},
): Promise<void> {
  const key = "uploads/2026/11/0193a3c4-7f1e-7000-8000-00000000big0/big.bin";
  // Also a warm-up: V8 frees ArrayBuffers lazily, so any 512 MiB stream of fresh chunks first
  // grows the heap to a steady size (~50 MB measured) whoever consumes it. After this pass,
  // the growth measured below is the adapter's own.
  const expected = await sha256Of(seededStream(42, SIZE), () => {});

  const started = performance.now();
  const writing = rssProbe();
  const stored = await storage.putObject(key, seededStream(42, SIZE, writing.onChunk));
  const write = writing.stop();
  const writeSeconds = (performance.now() - started) / 1000;
  assert.deepEqual(stored, { size: SIZE, sha256: expected });

  const reading = rssProbe();
  const object = await storage.getObject(key);
  assert.ok(object);
  assert.equal(await sha256Of(object.body, reading.onChunk), expected);
  const read = reading.stop();
  const totalSeconds = (performance.now() - started) / 1000;

  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  console.log(
    `${label}: 512 MiB written in ${writeSeconds.toFixed(1)} s (RSS ${mb(write.before)} -> ` +
      `peak ${mb(write.peak)}, +${mb(write.growth)}), read back in ` +
      `${(totalSeconds - writeSeconds).toFixed(1)} s (+${mb(read.growth)})`,
  );
  assert.ok(write.growth < MAX_GROWTH, `RSS grew by ${mb(write.growth)} while writing`);
  assert.ok(read.growth < maxReadGrowth, `RSS grew by ${mb(read.growth)} while reading`);
  await storage.deleteObject(key);
}

Deno.test("LocalStorageAdapter.putObject() stores 512 MiB with flat memory", async () => {
  const root = await Deno.makeTempDir({ prefix: "portal-memory-" });
  try {
    await roundTrip(new LocalStorageAdapter({ root }), "local");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("S3StorageAdapter.putObject() stores 512 MiB with flat memory", async () => {
  const s3 = await startS3rver();
  const storage = new S3StorageAdapter({
    bucket: s3.bucket,
    endpointUrl: s3.endpointUrl,
    region: "us-east-1",
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    querystringAuth: true,
  });
  try {
    // Reading through node:http in Deno leaves response chunks for V8 to collect late: growth
    // measured at 70-175 MB, the same for 1 or 4 consecutive 512 MiB reads, so bounded rather
    // than proportional. Half the object still catches a getObject that buffers it.
    await roundTrip(storage, "s3 (s3rver in-process)", { maxReadGrowth: SIZE / 2 });
    assert.deepEqual(await s3.pendingUploads(), []);
  } finally {
    storage.close();
    await s3.stop();
  }
});
