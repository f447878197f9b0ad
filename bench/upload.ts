/**
 * Upload throughput and memory (SPEC §5 Uploads: streamed end to end, flat memory). Files of
 * 256 MiB and 1 GiB are streamed with `curl -X POST -T file` (a separate process) to:
 *   (a) a bare Deno.serve in this process that only reads and SHA-256s the body: the ceiling;
 *   (b) `portal serve` (a real subprocess on a fresh Postgres database) on local storage;
 *   (c) `portal serve` on S3, against s3rver (in this process).
 * Prints MiB/s, Portal's ratio to the ceiling and the serve process's peak RSS during each
 * upload. Targets: ratio >= 0.75 on local, peak RSS < 150 MB for 1 GiB, RSS flat in file size.
 *
 * `deno run -A bench/upload.ts` (or `deno task bench upload`). BENCH_DATABASE_URL names the
 * Postgres server (default postgres://postgres@127.0.0.1:5432/postgres); BENCH_SIZES_MIB
 * overrides the sizes (default "256,1024").
 */
import postgres from "postgres";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { startS3rver, type TestS3 } from "../tests/helpers/s3rver.ts";

const SERVER_URL = Deno.env.get("BENCH_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const SIZES_MIB = (Deno.env.get("BENCH_SIZES_MIB") ?? "256,1024").split(",").map(Number);
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MIB = 1024 * 1024;

interface Run {
  target: string;
  sizeMib: number;
  seconds: number;
  mibPerSecond: number;
  peakRssMb: number | null;
  status: string;
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

/** Sends the file with curl; returns the HTTP status and curl's own timing. */
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

async function readRssKb(pid: number, field = "VmRSS"): Promise<number | null> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
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
    args: ["run", "-A", MAIN, ...args],
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
    args: ["run", "-A", MAIN, "serve"],
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

async function benchPortal(
  label: string,
  portal: Portal,
  files: { sizeMib: number; path: string; sha256: string }[],
): Promise<Run[]> {
  const runs: Run[] = [];
  const idle = await readRssKb(portal.pid);
  console.log(
    `${label}: serve process idle RSS ${idle === null ? "?" : Math.round(idle / 1024)} MB`,
  );
  for (const file of files) {
    const sampler = sampleRss(portal.pid);
    const result = await curlUpload(
      `${portal.url}/api/v1/files?filename=bench-${file.sizeMib}.pdf`,
      file.path,
      { Authorization: `Bearer ${portal.token}` },
    );
    const peak = await sampler.stop();
    const answer = JSON.parse(result.body) as { sha256?: string; error?: { message: string } };
    if (result.status !== "201" || answer.sha256 !== file.sha256) {
      throw new Error(
        `${label} upload of ${file.sizeMib} MiB failed: ${result.status} ${result.body}`,
      );
    }
    runs.push({
      target: label,
      sizeMib: file.sizeMib,
      seconds: result.seconds,
      mibPerSecond: file.sizeMib / result.seconds,
      peakRssMb: peak,
      status: result.status,
    });
  }
  return runs;
}

async function main(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "portal-bench-upload-" });
  const dbName = `portal_bench_upload_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  let s3: TestS3 | null = null;
  const portals: Portal[] = [];
  try {
    const files = [];
    for (const sizeMib of SIZES_MIB) {
      const path = join(dir, `upload-${sizeMib}.bin`);
      await generateFile(path, sizeMib * MIB);
      const hash = createHash("sha256");
      for await (const chunk of (await Deno.open(path)).readable) hash.update(chunk);
      files.push({ sizeMib, path, sha256: hash.digest("hex") });
    }

    const runs: Run[] = [];
    const ceiling = startCeiling();
    for (const file of files) {
      const result = await curlUpload(ceiling.url, file.path);
      runs.push({
        target: "ceiling (read + SHA-256)",
        sizeMib: file.sizeMib,
        seconds: result.seconds,
        mibPerSecond: file.sizeMib / result.seconds,
        peakRssMb: null,
        status: result.status,
      });
    }
    await ceiling.close();

    await admin.unsafe(`CREATE DATABASE "${dbName}"`);
    const url = new URL(SERVER_URL);
    url.pathname = `/${dbName}`;
    const maxSize = String(Math.max(...SIZES_MIB) * MIB + MIB);
    const base = {
      DATABASE_URL: url.toString(),
      PORTAL_DATA_DIR: join(dir, "data"),
      PORTAL_JOBS: "off",
      PORTAL_LOG_LEVEL: "warn",
      PORTAL_SECRET_KEY: "bench-secret-key-0123456789abcdefghijklmnop",
      FILE_UPLOAD_MAX_SIZE: maxSize,
      NO_COLOR: "1",
    };

    const local = await startPortal({ ...base, STORAGE_BACKEND: "local" });
    portals.push(local);
    runs.push(...await benchPortal("portal, local storage", local, files));
    await local.stop();

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
    runs.push(...await benchPortal("portal, S3 (s3rver)", onS3, files));
    await onS3.stop();

    console.log("\ntarget                      size      time     MiB/s   ratio   peak RSS");
    for (const run of runs) {
      const ceilingRun = runs.find((r) =>
        r.target.startsWith("ceiling") && r.sizeMib === run.sizeMib
      );
      const ratio = run.target.startsWith("ceiling") || !ceilingRun
        ? "    -"
        : (run.mibPerSecond / ceilingRun.mibPerSecond).toFixed(2).padStart(5);
      console.log(
        `${run.target.padEnd(26)} ${`${run.sizeMib} MiB`.padStart(8)} ${
          `${run.seconds.toFixed(2)} s`.padStart(8)
        } ${run.mibPerSecond.toFixed(0).padStart(8)}   ${ratio}   ${
          run.peakRssMb === null ? "-" : `${run.peakRssMb} MB`
        }`,
      );
    }
    console.log(
      "\nTargets: local ratio >= 0.75; peak RSS < 150 MB for 1 GiB and not growing with size.",
    );
  } finally {
    for (const portal of portals) await portal.stop().catch(() => {});
    if (s3 !== null) await s3.stop().catch(() => {});
    await admin.unsafe(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => {});
    await admin.end();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
