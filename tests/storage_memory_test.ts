/**
 * Memory stays flat whatever the file size: 512 MiB through each adapter, in and back out,
 * measured in a child process (tests/fixtures/storage_memory.ts) that samples its own RSS.
 * The bytes come as an upload's do (a byte stream read through validateUpload). Growth counts
 * from the child's RSS after start-up and one small write (imports done, adapter built, no large
 * stream moved), for the write and for the read that follows it.
 */
import assert from "node:assert/strict";
import { startS3rver } from "./helpers/s3rver.ts";

const MIB = 1024 * 1024;
const SIZE = 512 * MIB;
const MAX_GROWTH = 100 * 1000 * 1000;
const FIXTURE = new URL("./fixtures/storage_memory.ts", import.meta.url).pathname;

/** One direction's RSS: at its start, its peak, and the peak's growth over start-up. */
interface Growth {
  before: number;
  peak: number;
  growth: number;
}

async function measure(args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "-A",
      `--lock=${new URL("./deno.lock", import.meta.url).pathname}`,
      FIXTURE,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(output.success, `storage_memory.ts failed: ${stderr}`);
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!) as {
    /** RSS after imports and adapter construction, before any large stream. */
    startup: number;
    write: Growth;
    read: Growth;
    writeSeconds: number;
    readSeconds: number;
  };
}

function report(label: string, f: Awaited<ReturnType<typeof measure>>): void {
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  console.log(
    `${label}: RSS at start-up ${mb(f.startup)}; 512 MiB written in ` +
      `${f.writeSeconds.toFixed(1)} s (peak ${mb(f.write.peak)}, +${mb(f.write.growth)} over ` +
      `start-up), read back in ${f.readSeconds.toFixed(1)} s (from ${mb(f.read.before)}, peak ` +
      `${mb(f.read.peak)}, +${mb(f.read.growth)} over start-up)`,
  );
}

Deno.test("LocalStorageAdapter.putObject() stores 512 MiB with flat memory", async () => {
  const root = await Deno.makeTempDir({ prefix: "portal-memory-" });
  try {
    const figures = await measure(["local", root]);
    report("local", figures);
    assert.ok(
      figures.write.growth < MAX_GROWTH,
      `RSS grew by ${figures.write.growth} bytes over start-up while writing`,
    );
    // Each 128 KiB read chunk is garbage once hashed, and V8 collects it late: the read peaks
    // at +82 to +104 MB over start-up (measured, varying with GC timing under load), bounded,
    // not proportional. Half the object still catches a getObject that buffers it; the write,
    // which the bound above is about, reuses its buffers.
    assert.ok(
      figures.read.growth < SIZE / 2,
      `RSS grew by ${figures.read.growth} bytes over start-up while reading`,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("S3StorageAdapter.putObject() stores 512 MiB with flat memory", async () => {
  // s3rver runs here, in the test process; the adapter runs alone in the child.
  const s3 = await startS3rver();
  try {
    const figures = await measure([
      "s3",
      s3.endpointUrl,
      s3.bucket,
      s3.accessKeyId,
      s3.secretAccessKey,
    ]);
    report("s3", figures);
    assert.ok(
      figures.write.growth < MAX_GROWTH,
      `RSS grew by ${figures.write.growth} bytes over start-up while writing`,
    );
    // Reading through node:http in Deno leaves response chunks for V8 to collect late: the read
    // peaks at 166-176 MB over start-up (after the write), and growth over the read's own
    // start was found the same for 1 or 4 consecutive 512 MiB reads, so bounded rather than
    // proportional. Half the object still catches a getObject that buffers it.
    assert.ok(
      figures.read.growth < SIZE / 2,
      `RSS grew by ${figures.read.growth} bytes over start-up while reading`,
    );
    assert.deepEqual(await s3.pendingUploads(), []);
  } finally {
    await s3.stop();
  }
});
