/**
 * Webhook delivery figures (SPEC §5 Delivery; targets: commit-to-arrival p50 < 50 ms and
 * p99 < 250 ms, at least 1,000 deliveries/s with 2 workers), on a fresh Postgres database with
 * a receiver process and worker processes on loopback:
 *   (a) latency: 500 real uploads one by one through the upload service (a small PDF stored on
 *       local storage, its row and `file.stored` event committed in one transaction), from the
 *       moment the service returns (just after COMMIT) to the webhook's arrival, one worker
 *       process;
 *   (b) throughput: 20,000 pending events to 2 endpoints (40,000 deliveries) drained by 1 and by
 *       2 worker processes, with each worker's RSS at the start and the end of draining.
 *
 * `deno run -A bench/delivery.ts` (or `deno task bench`). BENCH_DATABASE_URL names the server
 * (default postgres://postgres@127.0.0.1:5432/postgres); BENCH_EVENTS and BENCH_LATENCY_EVENTS
 * change the sizes.
 */
import postgres from "postgres";
import { createServerDatabase, type Database } from "../src/db/db.ts";
import { migrate } from "../src/db/migrate.ts";
import { emitEvent } from "../src/outbox/emit.ts";
import { configFrom } from "../src/config/config.ts";
import { silentLogger } from "../src/log/logger.ts";
import { Metrics } from "../src/metrics/metrics.ts";
import { LocalStorageAdapter } from "../src/storage/local/local_storage.ts";
import type { AppDeps } from "../src/app_deps.ts";
import { uploadFile } from "../src/uploads/upload_service.ts";
import { join } from "node:path";
import { newId } from "../src/db/ids.ts";
import { addEndpoint } from "../src/webhooks/endpoint_service.ts";

const SERVER_URL = Deno.env.get("BENCH_DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const THROUGHPUT_EVENTS = Number(Deno.env.get("BENCH_EVENTS") ?? 20_000);
const LATENCY_EVENTS = Number(Deno.env.get("BENCH_LATENCY_EVENTS") ?? 500);
const WORKER = new URL("../tests/fixtures/delivery_loop.ts", import.meta.url).pathname;
const RECEIVER = new URL("./delivery_receiver.ts", import.meta.url).pathname;

interface ReceiverStats {
  count: number;
  unique: number;
  first: number;
  last: number;
  perPath: Record<string, number>;
  latency: { n: number; p50: number | null; p90: number | null; p99: number | null; max: number };
}

/** A process started by the bench, with its stdout lines as JSON objects. */
interface Proc {
  child: Deno.ChildProcess;
  lines: Record<string, unknown>[];
  next(predicate: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

function startProcess(script: string, env: Record<string, string>): Proc {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "-A",
      `--lock=${new URL("../tests/deno.lock", import.meta.url).pathname}`,
      script,
    ],
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines: Record<string, unknown>[] = [];
  const waiters: {
    predicate: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  (async () => {
    let buffer = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const text = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        try {
          const line = JSON.parse(text);
          lines.push(line);
          for (const waiter of waiters.filter((w) => w.predicate(line))) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        } catch {
          // not a JSON line
        }
      }
    }
  })();
  return {
    child,
    lines,
    next(predicate) {
      const found = lines.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ predicate, resolve }));
    },
  };
}

async function stopProcess(proc: Proc): Promise<Record<string, unknown>> {
  const stopped = proc.next((l) => "stopped" in l);
  proc.child.kill("SIGTERM");
  await proc.child.status;
  return await Promise.race([stopped, Promise.resolve({})]);
}

async function createBenchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `portal_bench_delivery_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const admin = postgres(SERVER_URL, { max: 1, onnotice: () => {} });
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end();
    },
  };
}

async function stats(base: string): Promise<ReceiverStats> {
  return await (await fetch(`${base}/stats`)).json();
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function workerEnv(url: string, id: string): Record<string, string> {
  return {
    DATABASE_URL: url,
    PORTAL_WEBHOOK_ALLOW_PRIVATE: "true",
    PORTAL_DB_POOL_SIZE: "6",
    WORKER_ID: id,
    REPORT_RSS_MS: "250",
  };
}

const mib = (bytes: unknown) => `${(Number(bytes) / 1048576).toFixed(0)} MiB`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A small body that sniffs as PDF (an allowed type), different each time. */
function pdfBody(n: number): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(`%PDF-1.4\n% bench upload ${n}\n${"x".repeat(1024)}\n`);
  return new Blob([bytes]).stream();
}

async function latencyRun(db: Database, url: string, receiverBase: string): Promise<string[]> {
  await fetch(`${receiverBase}/reset`, { method: "POST" });
  const dataDir = await Deno.makeTempDir({ prefix: "portal-bench-delivery-" });
  const secretKey = "bench-secret-key-0123456789abcdefghijklmnop";
  const config = configFrom({ PORTAL_SECRET_KEY: secretKey, PORTAL_DATA_DIR: dataDir });
  const deps: AppDeps = {
    config,
    db,
    storage: new LocalStorageAdapter({ root: join(dataDir, "media") }),
    logger: silentLogger,
    secretKey,
    metrics: new Metrics(),
  };
  const [user] = await db.sql<{ id: string }[]>`
    INSERT INTO users (id, email, password_hash, is_admin)
    VALUES (${newId()}, 'bench@localhost', 'x', false) RETURNING id`;
  const worker = startProcess(WORKER, workerEnv(url, "latency"));
  await worker.next((l) => l.ready === true);
  await new Promise((resolve) => setTimeout(resolve, 500)); // LISTEN established
  const committed = new Map<string, number>();
  try {
    for (let i = 0; i < LATENCY_EVENTS; i++) {
      const { file } = await uploadFile(deps, {
        body: pdfBody(i),
        filename: `bench-${i}.pdf`,
        uploader: { id: user!.id, isAdmin: false },
      });
      // The service returns right after COMMIT, so this stamp is the commit time to within the
      // commit's acknowledgement: the latency below is a slight underestimate, never an over-.
      committed.set(file.id, performance.timeOrigin + performance.now());
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await waitFor(
      "latency deliveries",
      async () => (await stats(receiverBase)).count >= LATENCY_EVENTS,
      60_000,
    );
  } finally {
    await stopProcess(worker);
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  const arrivals = await (await fetch(`${receiverBase}/arrivals`)).json() as Record<
    string,
    number
  >;
  const latencies = [...committed].map(([id, at]) => (arrivals[id] ?? NaN) - at);
  const missing = latencies.filter((l) => Number.isNaN(l)).length;
  if (missing > 0) throw new Error(`${missing} uploads' webhooks never arrived`);
  const sorted = latencies.sort((a, b) => a - b);
  return [
    `(a) commit-to-arrival latency, ${sorted.length} uploads one by one (upload service, local ` +
    `storage), 1 worker:`,
    `    p50 ${percentile(sorted, 50).toFixed(1)} ms (target < 50), p90 ${
      percentile(sorted, 90).toFixed(1)
    } ms, p99 ${percentile(sorted, 99).toFixed(1)} ms (target < 250), max ${
      sorted.at(-1)!.toFixed(1)
    } ms`,
  ];
}

async function throughputRun(
  db: Database,
  url: string,
  receiverBase: string,
  workers: number,
): Promise<string[]> {
  await db.sql`TRUNCATE outbox_event CASCADE`;
  await fetch(`${receiverBase}/reset`, { method: "POST" });
  for (let start = 0; start < THROUGHPUT_EVENTS; start += 1000) {
    await db.sql.begin(async (tx) => {
      for (let i = start; i < Math.min(THROUGHPUT_EVENTS, start + 1000); i++) {
        await emitEvent(tx, {
          aggregateType: "UploadFile",
          aggregateId: crypto.randomUUID(),
          eventType: "file.stored",
          payload: { n: i, original_filename: `file-${i}.pdf`, size_bytes: 1024 * i },
        });
      }
    });
  }
  const expected = THROUGHPUT_EVENTS * 2;
  const started = performance.now();
  const procs = Array.from(
    { length: workers },
    (_, i) => startProcess(WORKER, workerEnv(url, `throughput-${i}`)),
  );
  await waitFor(
    "every delivery",
    async () => {
      const [row] = await db.sql<{ count: number }[]>`
        SELECT count(*)::int AS count FROM outbox_event WHERE status <> 'delivered'`;
      return row?.count === 0;
    },
    600_000,
  );
  const drainedMs = performance.now() - started;
  const finals = await Promise.all(procs.map(stopProcess));
  const s = await stats(receiverBase);
  const arrivalSeconds = (s.last - s.first) / 1000;
  const lines = [
    `(b) throughput, ${THROUGHPUT_EVENTS} events × 2 endpoints, ${workers} worker process(es):`,
    `    ${s.count} requests, ${s.unique} distinct webhook-ids (expected ${expected})`,
    `    ${(s.count / arrivalSeconds).toFixed(0)} deliveries/s first-to-last arrival ` +
    `(${arrivalSeconds.toFixed(1)} s); ${(expected / (drainedMs / 1000)).toFixed(0)} /s ` +
    `including process start (${(drainedMs / 1000).toFixed(1)} s)`,
  ];
  procs.forEach((proc, i) => {
    const samples = proc.lines.filter((l) => "rss" in l && !("stopped" in l));
    const delivered = Number(finals[i]?.delivered ?? 0);
    // RSS when the worker had done 0%, 25%, 50%, 75% and 100% of its share: flat memory means
    // the later figures stop growing with the number of deliveries.
    const at = (share: number) =>
      samples.find((l) => Number(l.delivered) >= delivered * share) ?? samples.at(-1);
    lines.push(
      `    worker ${i}: ${delivered} delivered; RSS at 0/25/50/75/100% of its deliveries: ` +
        [0, 0.25, 0.5, 0.75, 1].map((share) => mib(at(share)?.rss)).join(" / "),
    );
  });
  return lines;
}

/** Runs the delivery benchmarks and returns the report lines. */
export async function runDeliveryBench(): Promise<string[]> {
  const bench = await createBenchDatabase();
  const db = createServerDatabase(bench.url, { max: 4 });
  const receiver = startProcess(RECEIVER, {});
  try {
    await migrate(db);
    const { port } = await receiver.next((l) => "port" in l) as { port: number };
    const base = `http://127.0.0.1:${port}`;
    await addEndpoint({ db, config: { webhookAllowPrivate: true } }, { url: `${base}/a` });
    await addEndpoint({ db, config: { webhookAllowPrivate: true } }, {
      url: `${base}/b`,
      eventTypes: ["file.stored", "file.deleted"],
    });
    const report = ["Webhook delivery (bench/delivery.ts)"];
    // One endpoint for the latency run, so each event is one request.
    await db.sql`UPDATE webhook_endpoint SET is_active = false WHERE url LIKE '%/b'`;
    report.push(...await latencyRun(db, bench.url, base));
    await db.sql`UPDATE webhook_endpoint SET is_active = true`;
    for (const workers of [1, 2]) report.push(...await throughputRun(db, bench.url, base, workers));
    return report;
  } finally {
    receiver.child.kill("SIGTERM");
    await receiver.child.status;
    await db.close();
    await bench.drop();
  }
}

if (import.meta.main) {
  for (const line of await runDeliveryBench()) console.log(line);
}
