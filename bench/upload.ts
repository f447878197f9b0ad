/**
 * Upload throughput and memory (SPEC §5 Uploads: streamed end to end, flat memory). Files of
 * 256 MiB and 1 GiB are streamed with `curl -X POST -T file` (a separate process, the same flags
 * for every target) to:
 *   (a) a bare Deno.serve in this process that only reads and SHA-256s the body: the ceiling;
 *   (b) `portal serve` (a real subprocess on a fresh Postgres database) on local storage;
 *   (c) `portal serve` on S3, against s3rver (in this process).
 * A second baseline, the disk ceiling, is a bare Deno.serve that reads, SHA-256s and writes the body
 * to a file on the same filesystem as Portal's data (one write in flight while hashing, fsync at
 * the end): the least any local store must do. Its ratio to the hash ceiling is what this
 * machine's disk allows; Portal's ratio to it is Portal's own overhead.
 * Every stored file is deleted (Portal's through `DELETE /api/v1/files/:id`) after its timed
 * upload, untimed: a long-running server's page cache recycles its pages, while a bench that keeps
 * gigabytes of fresh files would have the kernel touch never-used memory for each new page, which
 * on this VM costs several times the write itself (measured: 1 GiB at 700 MiB/s with files
 * removed, 250 MiB/s by the third kept GiB, sys time 0.7 s → 3.7 s).
 * The machine is shared and noisy, so every Portal upload is paired with a ceiling upload of the
 * same file just before it, its ratio is taken against that pair, and the rounds are repeated:
 * the table shows medians, the ratio's range and the peak RSS over all rounds. Targets: ratio
 * >= 0.75 on local, peak RSS < 150 MB for 1 GiB, RSS not growing with the file size. A missed
 * target is reported, not an error: the bench exits non-zero only when an upload fails.
 *
 * `deno run -A bench/upload.ts` (or `deno task bench upload`). BENCH_DATABASE_URL names the
 * Postgres server (default postgres://postgres@127.0.0.1:5432/postgres); BENCH_SIZES_MIB the
 * sizes (default "256,1024"); BENCH_TARGETS the Portal targets (default "local,s3");
 * BENCH_ROUNDS the rounds on local (default 3); BENCH_S3_ROUNDS those on S3 (default 1, as
 * s3rver itself is the bottleneck there).
 */
import postgres from "postgres";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { startS3rver, type TestS3 } from "../tests/helpers/s3rver.ts";

const SERVER_URL = Deno.env.get("BENCH_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const SIZES_MIB = (Deno.env.get("BENCH_SIZES_MIB") ?? "256,1024").split(",").map(Number);
const TARGETS = (Deno.env.get("BENCH_TARGETS") ?? "local,s3").split(",");
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 3);
const S3_ROUNDS = Number(Deno.env.get("BENCH_S3_ROUNDS") ?? 1);
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MIB = 1024 * 1024;
const TARGET_RATIO = 0.75;
const TARGET_RSS_MB = 150;
// Peak RSS of the largest file may exceed the smallest's by this much and still count as flat
// (sampling every 20 ms and GC timing move it by a few MB between identical runs).
const FLAT_RSS_MB = 10;
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds spent in user space and in the kernel. */
interface Cpu {
  user: number;
  system: number;
}

/** One upload to a Portal target, with the ceiling upload of the same file just before it. */
interface Sample {
  mibPerSecond: number;
  ceilingMibPerSecond: number;
  diskMibPerSecond: number;
  peakRssMb: number | null;
  cpu: Cpu | null;
  ceilingCpu: Cpu | null;
}

/** A bench file and its expected digest. */
interface BenchFile {
  sizeMib: number;
  path: string;
  sha256: string;
}

/** Writes `size` bytes that sniff as PDF, from a repeated random 1 MiB block. */
async function generateFile(path: string, size: number): Promise<void> {
  const block = new Uint8Array(MIB);
  for (let i = 0; i < MIB; i += 65536) crypto.getRandomValues(block.subarray(i, i + 65536));
  // A PDF header: file-type calls it application/pdf whatever follows (a PNG header followed
  // by random bytes is sometimes rejected, as file-type walks the PNG chunks).
  block.set(new TextEncoder().encode("%PDF-1.7\n%\u00e2\u00e3\n"));
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    for (let written = 0; written < size; written += MIB) {
      let offset = 0;
      const chunk = block.subarray(0, Math.min(MIB, size - written));
      while (offset < chunk.byteLength) offset += await file.write(chunk.subarray(offset));
    }
    // Flushed now so its write-back does not compete with the uploads being measured.
    await file.sync();
  } finally {
    file.close();
  }
}

/** Flushes every dirty page (the previous run's writes) so runs do not slow each other. */
async function flushDisks(): Promise<void> {
  await new Deno.Command("sync").output().catch(() => {});
}

/**
 * Sends the file with curl, the same way to every target (only the URL and the Authorization
 * header differ); returns the HTTP status, the answer and curl's own timing.
 */
async function curlUpload(
  url: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: string; seconds: number; body: string }> {
  await flushDisks();
  const args = [
    "-sS",
    "-o",
    "-",
    "-w",
    "\n%{http_code} %{time_total}",
    "-H",
    "Content-Type: application/octet-stream",
    "-H",
    "Expect:",
    // `--data-binary @file` loads the whole file into curl's memory first (and fails with
    // "out of memory" at 1 GiB); `-T` streams it from disk, with the same Content-Length.
    "-X",
    "POST",
    "-T",
    path,
  ];
  for (const [name, value] of Object.entries(headers)) args.push("-H", `${name}: ${value}`);
  args.push(url);
  const output = await new Deno.Command("curl", { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(output.stdout);
  const lastLine = text.slice(text.lastIndexOf("\n") + 1);
  const [status = "?", seconds = "0"] = lastLine.split(" ");
  if (!output.success) {
    throw new Error(`curl failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return { status, seconds: Number(seconds), body: text.slice(0, text.lastIndexOf("\n")) };
}

/** Samples a process's VmRSS every 20 ms until stopped; returns the peak in MB. */
function sampleRss(pid: number): { stop(): Promise<number | null> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const rss = await readRssKb(pid);
      if (rss !== null) peak = Math.max(peak, rss);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak === 0 ? null : Math.round(peak / 1024);
    },
  };
}

async function readRssKb(pid: number): Promise<number | null> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** User and system CPU seconds of a process (all its threads) so far. */
async function readCpuSeconds(pid: number | "self"): Promise<Cpu | null> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(fields[11]) / CLOCK_TICKS, system: Number(fields[12]) / CLOCK_TICKS };
  } catch {
    return null;
  }
}

function cpuSpent(before: Cpu | null, after: Cpu | null): Cpu | null {
  if (before === null || after === null) return null;
  return { user: after.user - before.user, system: after.system - before.system };
}

function formatCpu(cpu: Cpu | null): string {
  return cpu === null ? "?" : `${cpu.user.toFixed(2)}+${cpu.system.toFixed(2)}`;
}

/**
 * The disk ceiling: reads, SHA-256s and writes the body to a new file in `dir` (the write of a
 * chunk overlaps the hashing of the next), then fsyncs. Its files are removed by `DELETE /`
 * between uploads (untimed), so a deletion never competes with a timed upload.
 */
function startDiskCeiling(dir: string): { url: string; close(): Promise<void> } {
  let count = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (req.method === "DELETE") {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      return new Response(null, { status: 204 });
    }
    await Deno.mkdir(dir, { recursive: true });
    const file = await Deno.open(join(dir, `disk-${count++}.bin`), {
      write: true,
      createNew: true,
    });
    const hash = createHash("sha256");
    let size = 0;
    let writing = Promise.resolve();
    try {
      for await (const chunk of req.body!) {
        const previous = writing;
        writing = previous.then(async () => {
          let offset = 0;
          while (offset < chunk.byteLength) offset += await file.write(chunk.subarray(offset));
        });
        hash.update(chunk);
        size += chunk.byteLength;
        await previous;
      }
      await writing;
      await file.sync();
    } finally {
      file.close();
    }
    return Response.json({ size, sha256: hash.digest("hex") });
  });
  return { url: `http://127.0.0.1:${server.addr.port}/`, close: () => server.shutdown() };
}

/** The hashing ceiling: a bare server that reads and SHA-256s the body. */
function startCeiling(): { url: string; close(): Promise<void> } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of req.body!) {
      hash.update(chunk);
      size += chunk.byteLength;
    }
    return Response.json({ size, sha256: hash.digest("hex") });
  });
  return { url: `http://127.0.0.1:${server.addr.port}/`, close: () => server.shutdown() };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function portalCommand(env: Record<string, string>, args: string[]): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "-A",
      `--lock=${new URL("../tests/deno.lock", import.meta.url).pathname}`,
      MAIN,
      ...args,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`portal ${args.join(" ")} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return new TextDecoder().decode(output.stdout);
}

/** A running `portal serve` with an API token. */
interface Portal {
  url: string;
  token: string;
  pid: number;
  stop(): Promise<void>;
}

async function startPortal(env: Record<string, string>): Promise<Portal> {
  const port = freePort();
  const fullEnv = { ...env, PORTAL_PORT: String(port), PORTAL_HOST: "127.0.0.1" };
  await portalCommand(fullEnv, ["migrate"]);
  const email = `bench-${crypto.randomUUID().slice(0, 8)}@example.org`;
  await portalCommand(fullEnv, ["user", "create", "--email", email]);
  const token = (await portalCommand(fullEnv, ["token", "create", "--email", email]))
    .match(/ptk_[A-Za-z0-9_-]+/)?.[0];
  if (!token) throw new Error("Cannot read the token printed by `portal token create`");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "-A",
      `--lock=${new URL("../tests/deno.lock", import.meta.url).pathname}`,
      MAIN,
      "serve",
    ],
    env: fullEnv,
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      const response = await fetch(`${url}/healthz`);
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    token,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** The two baselines' URLs. */
interface Baselines {
  ceilingUrl: string;
  diskUrl: string;
}

/**
 * Uploads `file` to the hash ceiling, the disk ceiling, then Portal; fails when an answer is
 * wrong.
 */
async function pairedUpload(
  label: string,
  portal: Portal,
  baselines: Baselines,
  file: BenchFile,
): Promise<Sample> {
  const { ceilingUrl, diskUrl } = baselines;
  const ceilingCpu = await readCpuSeconds("self");
  const ceiling = await curlUpload(ceilingUrl, file.path);
  const ceilingCpuAfter = await readCpuSeconds("self");
  if (ceiling.status !== "200" || !ceiling.body.includes(file.sha256)) {
    throw new Error(`Ceiling upload of ${file.sizeMib} MiB failed: ${ceiling.status}`);
  }
  const disk = await curlUpload(diskUrl, file.path);
  if (disk.status !== "200" || !disk.body.includes(file.sha256)) {
    throw new Error(`Disk ceiling upload of ${file.sizeMib} MiB failed: ${disk.status}`);
  }
  const cpu = await readCpuSeconds(portal.pid);
  const sampler = sampleRss(portal.pid);
  const result = await curlUpload(
    `${portal.url}/api/v1/files?filename=bench-${file.sizeMib}.pdf`,
    file.path,
    { Authorization: `Bearer ${portal.token}` },
  );
  const peakRssMb = await sampler.stop();
  const cpuAfter = await readCpuSeconds(portal.pid);
  const answer = JSON.parse(result.body) as { id?: string; sha256?: string };
  if (result.status !== "201" || answer.sha256 !== file.sha256) {
    throw new Error(
      `${label} upload of ${file.sizeMib} MiB failed: ${result.status} ${result.body}`,
    );
  }
  await fetch(diskUrl, { method: "DELETE" }).then((r) => r.body?.cancel());
  const deleted = await fetch(`${portal.url}/api/v1/files/${answer.id}`, {
    method: "DELETE",
    headers: { Authorization: `Bearer ${portal.token}` },
  });
  await deleted.body?.cancel();
  if (!deleted.ok) throw new Error(`${label}: cannot delete the bench file: ${deleted.status}`);
  return {
    mibPerSecond: file.sizeMib / result.seconds,
    ceilingMibPerSecond: file.sizeMib / ceiling.seconds,
    diskMibPerSecond: file.sizeMib / disk.seconds,
    peakRssMb,
    cpu: cpuSpent(cpu, cpuAfter),
    ceilingCpu: cpuSpent(ceilingCpu, ceilingCpuAfter),
  };
}

/** Runs `rounds` rounds of every file against one Portal; samples keyed by size. */
async function benchPortal(
  label: string,
  portal: Portal,
  baselines: Baselines,
  options: { files: BenchFile[]; rounds: number },
): Promise<Map<number, Sample[]>> {
  const idle = await readRssKb(portal.pid);
  console.log(`${label}: idle RSS ${idle === null ? "?" : Math.round(idle / 1024)} MB`);
  const samples = new Map<number, Sample[]>(options.files.map((f) => [f.sizeMib, []]));
  for (let round = 1; round <= options.rounds; round++) {
    for (const file of options.files) {
      const sample = await pairedUpload(label, portal, baselines, file);
      samples.get(file.sizeMib)!.push(sample);
      console.log(
        `  round ${round}, ${file.sizeMib} MiB: ceiling ${
          sample.ceilingMibPerSecond.toFixed(0)
        } MiB/s, disk ceiling ${sample.diskMibPerSecond.toFixed(0)} MiB/s, Portal ${
          sample.mibPerSecond.toFixed(0)
        } MiB/s, ratio ${
          (sample.mibPerSecond / sample.ceilingMibPerSecond).toFixed(2)
        } (to disk ceiling ${
          (sample.mibPerSecond / sample.diskMibPerSecond).toFixed(2)
        }), peak RSS ${sample.peakRssMb ?? "?"} MB, CPU s (user+sys) ceiling ${
          formatCpu(sample.ceilingCpu)
        } Portal ${formatCpu(sample.cpu)}`,
      );
    }
  }
  return samples;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function medianCpu(values: (Cpu | null)[]): Cpu | null {
  const known = values.filter((v): v is Cpu => v !== null);
  if (known.length === 0) return null;
  return { user: median(known.map((c) => c.user)), system: median(known.map((c) => c.system)) };
}

/** Prints the table (medians over rounds, peak RSS over rounds) and one line per target. */
function report(results: Map<string, Map<number, Sample[]>>): void {
  const row = (cells: string[]) =>
    console.log(
      cells.map((c, i) => i === 0 ? c.padEnd(18) : c.padStart(i === 4 || i === 5 ? 17 : 10))
        .join(" "),
    );
  console.log(
    "\nMedians over the rounds; ratio = Portal (or disk ceiling) / hash ceiling of the same round;" +
      "\n/disk = Portal / disk ceiling of the same round; RSS = peak of all rounds",
  );
  row([
    "target",
    "size",
    "rounds",
    "MiB/s",
    "ratio [min-max]",
    "/disk [min-max]",
    "peak RSS",
    "CPU user+sys",
  ]);
  const range = (values: number[]) =>
    `${median(values).toFixed(2)} [${Math.min(...values).toFixed(2)}-${
      Math.max(...values).toFixed(2)
    }]`;
  const checks: [string, boolean, string][] = [];
  const peaks = new Map<string, Map<number, number | null>>();
  let ceilingRows = new Map<number, Sample[]>();
  for (const samples of results.values()) {
    for (const [size, list] of samples) {
      ceilingRows.set(size, [...(ceilingRows.get(size) ?? []), ...list]);
    }
  }
  ceilingRows = new Map([...ceilingRows].sort(([a], [b]) => a - b));
  for (const [size, list] of ceilingRows) {
    row([
      "ceiling",
      `${size} MiB`,
      String(list.length),
      median(list.map((s) => s.ceilingMibPerSecond)).toFixed(0),
      "-",
      "-",
      "-",
      formatCpu(medianCpu(list.map((s) => s.ceilingCpu))),
    ]);
  }
  for (const [size, list] of ceilingRows) {
    row([
      "disk ceiling",
      `${size} MiB`,
      String(list.length),
      median(list.map((s) => s.diskMibPerSecond)).toFixed(0),
      range(list.map((s) => s.diskMibPerSecond / s.ceilingMibPerSecond)),
      "-",
      "-",
      "-",
    ]);
  }
  for (const [label, samples] of results) {
    const peakBySize = new Map<number, number | null>();
    peaks.set(label, peakBySize);
    for (const [size, list] of samples) {
      const ratios = list.map((s) => s.mibPerSecond / s.ceilingMibPerSecond);
      const known = list.flatMap((s) => s.peakRssMb === null ? [] : [s.peakRssMb]);
      const peak = known.length === 0 ? null : Math.max(...known);
      peakBySize.set(size, peak);
      const ratio = median(ratios);
      row([
        label,
        `${size} MiB`,
        String(list.length),
        median(list.map((s) => s.mibPerSecond)).toFixed(0),
        range(ratios),
        range(list.map((s) => s.mibPerSecond / s.diskMibPerSecond)),
        peak === null ? "?" : `${peak} MB`,
        formatCpu(medianCpu(list.map((s) => s.cpu))),
      ]);
      if (label === "local") {
        checks.push([
          `local ratio >= ${TARGET_RATIO} at ${size} MiB`,
          ratio >= TARGET_RATIO,
          `median ${ratio.toFixed(2)}`,
        ]);
      }
      if (size >= 1024) {
        checks.push([
          `${label} peak RSS < ${TARGET_RSS_MB} MB at ${size} MiB`,
          peak !== null && peak < TARGET_RSS_MB,
          `${peak ?? "?"} MB`,
        ]);
      }
    }
    const sizes = [...peakBySize.keys()].sort((a, b) => a - b);
    const small = peakBySize.get(sizes[0]!);
    const large = peakBySize.get(sizes[sizes.length - 1]!);
    if (sizes.length > 1 && small != null && large != null) {
      checks.push([
        `${label} RSS flat from ${sizes[0]} to ${
          sizes[sizes.length - 1]
        } MiB (+<= ${FLAT_RSS_MB} MB)`,
        large - small <= FLAT_RSS_MB,
        `${large - small >= 0 ? "+" : ""}${large - small} MB`,
      ]);
    }
  }
  console.log("\nTargets");
  for (const [name, pass, detail] of checks) {
    console.log(`  ${pass ? "PASS" : "MISS"}  ${name.padEnd(44)} ${detail}`);
  }
}

async function main(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "portal-bench-upload-" });
  const dbName = `portal_bench_upload_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  const ceiling = startCeiling();
  const disk = startDiskCeiling(join(dir, "disk-ceiling"));
  const baselines = { ceilingUrl: ceiling.url, diskUrl: disk.url };
  let s3: TestS3 | null = null;
  const portals: Portal[] = [];
  try {
    const files: BenchFile[] = [];
    for (const sizeMib of SIZES_MIB) {
      const path = join(dir, `upload-${sizeMib}.bin`);
      await generateFile(path, sizeMib * MIB);
      const hash = createHash("sha256");
      for await (const chunk of (await Deno.open(path)).readable) hash.update(chunk);
      files.push({ sizeMib, path, sha256: hash.digest("hex") });
    }

    await admin.unsafe(`CREATE DATABASE "${dbName}"`);
    const url = new URL(SERVER_URL);
    url.pathname = `/${dbName}`;
    const base = {
      DATABASE_URL: url.toString(),
      PORTAL_DATA_DIR: join(dir, "data"),
      PORTAL_JOBS: "off",
      PORTAL_LOG_LEVEL: "warn",
      PORTAL_SECRET_KEY: "bench-secret-key-0123456789abcdefghijklmnop",
      FILE_UPLOAD_MAX_SIZE: String(Math.max(...SIZES_MIB) * MIB + MIB),
      NO_COLOR: "1",
    };
    const results = new Map<string, Map<number, Sample[]>>();

    if (TARGETS.includes("local")) {
      const local = await startPortal({ ...base, STORAGE_BACKEND: "local" });
      portals.push(local);
      results.set(
        "local",
        await benchPortal("local", local, baselines, { files, rounds: ROUNDS }),
      );
      await local.stop();
    }
    if (TARGETS.includes("s3")) {
      s3 = await startS3rver();
      const onS3 = await startPortal({
        ...base,
        STORAGE_BACKEND: "s3",
        AWS_STORAGE_BUCKET_NAME: s3.bucket,
        AWS_S3_ENDPOINT_URL: s3.endpointUrl,
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      });
      portals.push(onS3);
      results.set(
        "S3 (s3rver)",
        await benchPortal("S3 (s3rver)", onS3, baselines, { files, rounds: S3_ROUNDS }),
      );
      await onS3.stop();
    }
    report(results);
  } finally {
    await ceiling.close();
    await disk.close();
    for (const portal of portals) await portal.stop().catch(() => {});
    if (s3 !== null) await s3.stop().catch(() => {});
    await admin.unsafe(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => {});
    await admin.end();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
