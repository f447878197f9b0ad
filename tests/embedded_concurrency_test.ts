/**
 * The embedded default under concurrent load: one real `portal serve` on a fresh data dir (no
 * DATABASE_URL: the PostgreSQL server it starts in PORTAL_DATA_DIR/pg), jobs on, two webhook
 * endpoints on loopback (one answers 500 to a delivery's first try, so failed deliveries pile up
 * and the admin's retries have work to do). Five bursts of 50 mixed requests fired at once: page
 * uploads through the signed-in form, API uploads into batches, batch creation and finalizing,
 * downloads of earlier files, admin pages and retries, file listings. The PGlite default this
 * replaced answered 500 here (one backend: interleaved protocol messages, shared transactions).
 */
import assert from "node:assert/strict";
import { type Browser, login } from "./helpers/app.ts";
import { runCli } from "./helpers/cli.ts";
import {
  adminPassword,
  connectEmbedded,
  embeddedDataDir,
  type EmbeddedPortal,
  serveEmbedded,
} from "./helpers/embedded.ts";
import {
  percentile,
  serverProblems,
  stopLeftoverServer,
  type Timed,
  timed,
  waitUntil,
} from "./helpers/embedded_load.ts";
import { startReceiver } from "./helpers/receiver.ts";
import {
  exeBytes,
  multipartBody,
  pdfBytes,
  pngBytes,
  randomBytes,
  sha256Hex,
} from "./helpers/uploads.ts";

const ROUNDS = 5;
const REQUESTS_PER_ROUND = 50;
const ADMIN = "admin@localhost";
/** Form posts per burst (three files each; the first one also carries an executable). */
const PAGE_POSTS = 8;
/** API batches uploaded into per burst, and uploads into each (the first gets an executable). */
const API_BATCHES = 4;
const FILES_PER_API_BATCH = 4;

/** A file Portal answered as stored: what was sent, and where it went. */
interface SentFile {
  id: string;
  sha256: string;
  bytes: Uint8Array;
  batchId: string;
  /** The signed download link from the upload's answer. */
  url: string;
}

/** A batch the test created, and the status its files call for once finalized. */
interface SentBatch {
  id: string;
  key: string;
  expected: "open" | "complete" | "partial";
}

/** Everything the bursts sent that the database must account for. */
interface Ledger {
  stored: SentFile[];
  batches: Map<string, SentBatch>;
  /** Refused (415) uploads per batch id. */
  refused: Map<string, number>;
}

/** What every request of a burst needs. */
interface Load {
  base: string;
  dataDir: string;
  /** `{ authorization: "Bearer …" }` of the admin's API token. */
  auth: Record<string, string>;
  /** The admin's signed-in browser session, and its CSRF token. */
  browser: Browser;
  csrf: string;
  ledger: Ledger;
  /**
   * `batchesFor[r]`: the API batches burst r uploads into. Burst r - 1 creates them (the seed
   * step for r = 0) and burst r + 1 finalizes them, so no batch is finalized while a burst still
   * uploads into it and every batch's outcome is known in advance.
   */
  batchesFor: SentBatch[][];
}

Deno.test({
  name: "portal serve on the embedded default: 5 bursts of 50 mixed concurrent requests, " +
    "no 5xx, no error logged, every upload stored once with one file.stored event",
  async fn(t) {
    const dataDir = await embeddedDataDir("concurrency");
    // Answers 500 to the first try of each delivery (webhook-id), 200 to later ones: with one
    // attempt per delivery, every event is failed on this endpoint until an admin retries it.
    const seenIds = new Set<string>();
    const flakyAnswers: { id: string; status: number }[] = [];
    const flaky = startReceiver((request) => {
      const id = request.headers.get("webhook-id") ?? "";
      const status = seenIds.has(id) ? 200 : 500;
      seenIds.add(id);
      flakyAnswers.push({ id, status });
      return new Response(status === 200 ? "ok" : "busy", { status });
    });
    const steady = startReceiver();
    let served: EmbeddedPortal | null = null;
    const ledger: Ledger = { stored: [], batches: new Map(), refused: new Map() };
    try {
      let load!: Load;

      await t.step(
        "serve starts on a fresh data dir; the admin signs in; token, endpoints",
        async () => {
          served = await serveEmbedded(dataDir, {
            PORTAL_JOBS: "on",
            PORTAL_WEBHOOK_ALLOW_PRIVATE: "true",
            WEBHOOK_MAX_ATTEMPTS: "1",
            OUTBOX_SWEEP_INTERVAL_MINUTES: "1",
            // The load is one user's, 50 at once: what is measured is the embedded database,
            // not the per-user upload cap (tests/security/upload_slots_test.ts has that).
            PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER: "100",
          });
          console.log(`embedded first start: /readyz 200 after ${Math.round(served.readyMs)} ms`);
          const password = await adminPassword(served.portal);
          const browser = await login(served.base, ADMIN, password);
          const csrf = await browser.sessionCsrfToken();

          // CLI commands join the server `serve` runs.
          const env = { PORTAL_DATA_DIR: dataDir, PORTAL_WEBHOOK_ALLOW_PRIVATE: "true" };
          const [token, ...hooks] = await Promise.all([
            runCli(["token", "create", "--email", ADMIN, "--name", "load"], { env }),
            runCli(["webhook", "add", "--url", flaky.url, "--description", "flaky"], { env }),
            runCli(["webhook", "add", "--url", steady.url, "--description", "steady"], { env }),
          ]);
          assert.equal(token.code, 0, token.stderr);
          for (const hook of hooks) {
            assert.equal(hook.code, 0, hook.stderr);
            assert.match(hook.stdout, /^Created webhook endpoint /);
          }
          load = {
            base: served.base,
            dataDir,
            auth: { authorization: `Bearer ${token.stdout.trim()}` },
            browser,
            csrf,
            ledger,
            batchesFor: [],
          };
        },
      );

      await t.step("seed: the first burst's batches and two files to download", async () => {
        load.batchesFor[0] = [];
        for (let j = 0; j < API_BATCHES; j++) {
          const { id } = await createBatch(load, apiKey(0, j));
          const batch: SentBatch = { id, key: apiKey(0, j), expected: expectedStatus(0, j) };
          ledger.batches.set(id, batch);
          load.batchesFor[0].push(batch);
        }
        const { id: seedBatch } = await createBatch(load, "seed");
        ledger.batches.set(seedBatch, { id: seedBatch, key: "seed", expected: "open" });
        for (const [i, kind] of (["png", "pdf"] as const).entries()) {
          const bytes = fileBytes(kind, 900 + i);
          const response = await fetch(
            `${load.base}/api/v1/files?filename=seed-${i}.${kind}&batch_id=${seedBatch}`,
            { method: "POST", headers: load.auth, body: bytes },
          );
          assert.equal(response.status, 201);
          const file = await response.json() as { id: string; sha256: string; url: string };
          ledger.stored.push({ ...file, bytes, batchId: seedBatch });
        }
      });

      const all: Timed[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        await t.step(`burst ${round + 1}: ${REQUESTS_PER_ROUND} requests at once`, async () => {
          const problems: string[] = [];
          const requests = await burst(load, round, problems);
          assert.equal(requests.length, REQUESTS_PER_ROUND);
          const began = performance.now();
          const results = await Promise.all(requests.map((request) => request()));
          const wall = performance.now() - began;
          all.push(...results);
          const ms = results.map((r) => r.ms);
          console.log(
            `burst ${round + 1}: ${results.length} requests in ${Math.round(wall)} ms; ` +
              `p50 ${Math.round(percentile(ms, 50))} ms, p99 ${
                Math.round(percentile(ms, 99))
              } ms (${kinds(results)})`,
          );
          assert.deepEqual(
            { failed: results.filter((r) => r.status >= 500 || r.status === 0), problems },
            { failed: [], problems: [] },
            "every request answered below 500 with what it should",
          );
          assert.deepEqual(serverProblems(served!.portal), [], "the server logged no error");
        });
      }
      const allMs = all.map((r) => r.ms);
      console.log(
        `all bursts: ${all.length} requests; p50 ${Math.round(percentile(allMs, 50))} ms, ` +
          `p99 ${Math.round(percentile(allMs, 99))} ms, max ${Math.round(Math.max(...allMs))} ms`,
      );

      await t.step("the last burst's batches are finalized", async () => {
        const last = load.batchesFor[ROUNDS - 1]!;
        const statuses = await Promise.all(last.map((batch) => finalize(load, batch.id)));
        assert.deepEqual(statuses, last.map((batch) => batch.expected));
      });

      await t.step(
        "the database holds every upload once, each stored file one file.stored",
        async () => {
          const sql = await connectEmbedded(dataDir);
          try {
            const files = await sql<
              { id: string; status: string; sha256: string; batchId: string | null }[]
            >`SELECT id, status, sha256, batch_id AS "batchId" FROM upload_file`;
            const stored = files.filter((f) => f.status === "stored");
            const byId = new Map(stored.map((f) => [f.id, f]));
            assert.equal(new Set(ledger.stored.map((f) => f.id)).size, ledger.stored.length);
            assert.equal(stored.length, ledger.stored.length, "one stored row per stored upload");
            for (const sent of ledger.stored) {
              const row = byId.get(sent.id);
              assert.ok(row, `file ${sent.id} is stored`);
              assert.equal(row.sha256, sha256Hex(sent.bytes), "the digest of the bytes sent");
              assert.equal(row.sha256, sent.sha256);
              assert.equal(row.batchId, sent.batchId);
            }
            const failed = files.filter((f) => f.status === "failed");
            const refused = [...ledger.refused.values()].reduce((a, b) => a + b, 0);
            assert.equal(failed.length, refused, "one failed row per refused upload");
            for (const [batchId, count] of ledger.refused) {
              assert.equal(failed.filter((f) => f.batchId === batchId).length, count);
            }
            assert.equal(files.length, stored.length + failed.length, "no row in another state");

            const events = await sql<{ aggregateId: string; eventType: string; n: number }[]>`
            SELECT aggregate_id AS "aggregateId", event_type AS "eventType", count(*)::int AS n
            FROM outbox_event GROUP BY aggregate_id, event_type`;
            assert.deepEqual(
              events.filter((e) => e.eventType !== "file.stored" || e.n !== 1),
              [],
              "no event but file.stored, and none twice",
            );
            assert.deepEqual(
              new Set(events.map((e) => e.aggregateId)),
              new Set(ledger.stored.map((f) => f.id)),
              "exactly the stored files have a file.stored event (none for a refused one)",
            );

            const batches = await sql<{ id: string; status: string; key: string | null }[]>`
            SELECT id, status, idempotency_key AS key FROM upload_batch`;
            assert.equal(batches.length, ledger.batches.size, "one batch per key, none doubled");
            for (const batch of batches) {
              const sent = ledger.batches.get(batch.id);
              assert.ok(sent, `batch ${batch.id} (${batch.key}) was created by the test`);
              assert.equal(batch.key, sent.key);
              assert.equal(batch.status, sent.expected, `batch "${sent.key}"`);
            }
            console.log(
              `database: ${stored.length} stored files, ${failed.length} refused, ` +
                `${events.length} file.stored events, ${batches.length} batches`,
            );
          } finally {
            await sql.end();
          }
        },
      );

      await t.step("after a last retry, each endpoint got every event once", async () => {
        const sql = await connectEmbedded(dataDir);
        try {
          // "Retry all failed" until nothing is left failed or pending.
          await waitUntil("every event is delivered", async () => {
            const [row] = await sql<{ pending: number; failed: number }[]>`
              SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending,
                     count(*) FILTER (WHERE status = 'failed')::int AS failed
              FROM outbox_event`;
            if (row!.failed > 0) {
              const response = await load.browser.postForm("/admin/events/retry-failed", {
                csrf_token: load.csrf,
              });
              await response.body?.cancel();
              assert.equal(response.status, 303);
            }
            return row!.pending === 0 && row!.failed === 0;
          }, 20_000);
        } finally {
          await sql.end();
        }
        const events = ledger.stored.length;
        const steadyIds = steady.requests.map((r) => r.headers.get("webhook-id"));
        assert.equal(steadyIds.length, events, "the steady endpoint got one request per event");
        assert.equal(new Set(steadyIds).size, events, "never the same webhook-id twice");
        assert.deepEqual(
          new Set(steady.requests.map((r) => JSON.parse(r.body).data.file_id)),
          new Set(ledger.stored.map((f) => f.id)),
        );
        const okById = new Map<string, number>();
        for (const { id, status } of flakyAnswers) {
          if (status === 200) okById.set(id, (okById.get(id) ?? 0) + 1);
        }
        assert.equal(okById.size, events, "the flaky endpoint got every event once retried");
        assert.deepEqual([...okById].filter(([, n]) => n > 1), [], "none sent again after a 200");
        console.log(
          `deliveries: steady ${steady.requests.length} requests, flaky ${flaky.requests.length} ` +
            `(${flakyAnswers.filter((a) => a.status === 500).length} answered 500, then retried)`,
        );
        assert.deepEqual(serverProblems(served!.portal), [], "the server logged no error");
      });

      await t.step("serve stops cleanly", async () => {
        const status = await served!.portal.stop("SIGTERM");
        assert.equal(status.code, 0, served!.portal.stderrLines.join("\n"));
        served = null;
      });
    } finally {
      const running = served as EmbeddedPortal | null;
      if (running !== null) {
        await running.portal.stop("SIGKILL");
        const output = [...running.portal.stdoutLines, ...running.portal.stderrLines];
        console.log(`last lines of portal serve:\n${output.slice(-30).join("\n")}`);
      }
      await stopLeftoverServer(dataDir);
      await flaky.close();
      await steady.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

/** The idempotency key of API batch `j` uploaded into by burst `round`. */
function apiKey(round: number, j: number): string {
  return `api-${round}-${j}`;
}

/** What API batch `j` of burst `round` finalizes to (the last burst's new ones stay open). */
function expectedStatus(round: number, j: number): SentBatch["expected"] {
  if (round >= ROUNDS) return "open";
  return j === 0 ? "partial" : "complete";
}

/**
 * The 50 requests of burst `round`, each a thunk that times itself and checks its answer
 * (a failed check lands in `problems`).
 */
async function burst(
  load: Load,
  round: number,
  problems: string[],
): Promise<(() => Promise<Timed>)[]> {
  const list: (() => Promise<Timed>)[] = [];
  const add = (kind: string, fn: () => Promise<number>) => {
    list.push(() => timed(kind, fn, problems));
  };
  const seed = (i: number) => round * 1000 + i;
  const { ledger } = load;

  // Page uploads: several files per form post, the CSRF field first; the first post also
  // carries an executable, refused on its own (the answer 201, its batch partial).
  for (let i = 0; i < PAGE_POSTS; i++) {
    const key = `page-${round}-${i}`;
    const types = i === 0 ? ["png", "pdf", "txt", "exe"] as const : ["png", "pdf", "txt"] as const;
    const files = types.map((kind, k) => ({
      name: `page-${round}-${i}-${k}.${kind}`,
      kind,
      bytes: fileBytes(kind, seed(i * 10 + k)),
    }));
    add("page upload", async () => {
      const { body, contentType } = multipartBody([
        { name: "csrf_token", data: load.csrf },
        { name: "idempotency_key", data: key },
        ...files.map((f) => ({ name: "files", filename: f.name, data: f.bytes })),
      ]);
      const response = await load.browser.request("/upload", {
        method: "POST",
        headers: { "content-type": contentType, accept: "application/json" },
        body,
      });
      await requireStatus(response, [201], `POST /upload "${key}"`);
      const answer = await response.json() as {
        batch: { id: string; status: string };
        files: { id: string; status: string; sha256: string; url: string }[];
      };
      const expected = i === 0 ? "partial" : "complete";
      if (answer.batch.status !== expected) {
        throw new Error(`page batch "${key}" is ${answer.batch.status}, not ${expected}`);
      }
      ledger.batches.set(answer.batch.id, { id: answer.batch.id, key, expected });
      for (const [k, file] of answer.files.entries()) {
        const sent = files[k]!;
        if (sent.kind === "exe") {
          if (file.status !== "failed") throw new Error(`${sent.name} is ${file.status}`);
          refuse(ledger, answer.batch.id);
        } else if (file.status !== "stored" || file.sha256 !== sha256Hex(sent.bytes)) {
          throw new Error(`${sent.name} is ${file.status} with sha256 ${file.sha256}`);
        } else {
          ledger.stored.push({ ...file, bytes: sent.bytes, batchId: answer.batch.id });
        }
      }
      return response.status;
    });
  }

  // API uploads into this burst's batches; the first batch also gets an executable (415).
  for (const [j, batch] of load.batchesFor[round]!.entries()) {
    for (let k = 0; k < FILES_PER_API_BATCH; k++) {
      const kind = j === 0 && k === FILES_PER_API_BATCH - 1
        ? "exe"
        : (["png", "pdf", "txt"] as const)[k % 3]!;
      const bytes = fileBytes(kind, seed(500 + j * 10 + k));
      const name = `api-${round}-${j}-${k}.${kind}`;
      add("api upload", async () => {
        const response = await fetch(
          `${load.base}/api/v1/files?filename=${name}&batch_id=${batch.id}`,
          { method: "POST", headers: load.auth, body: bytes },
        );
        if (kind === "exe") {
          await requireStatus(response, [415], `POST /api/v1/files ${name}`);
          await response.body?.cancel();
          refuse(ledger, batch.id);
          return response.status;
        }
        await requireStatus(response, [201], `POST /api/v1/files ${name}`);
        const file = await response.json() as {
          id: string;
          status: string;
          sha256: string;
          url: string;
        };
        if (file.status !== "stored" || file.sha256 !== sha256Hex(bytes)) {
          throw new Error(`${name} is ${file.status} with sha256 ${file.sha256}`);
        }
        ledger.stored.push({ ...file, bytes, batchId: batch.id });
        return response.status;
      });
    }
  }

  // The next burst's batches; one key is sent twice at once, and both answers name one batch.
  const next: SentBatch[] = [];
  load.batchesFor[round + 1] = next;
  const seen = new Map<string, string>();
  for (let n = 0; n < API_BATCHES + 1; n++) {
    const j = n % API_BATCHES;
    const key = apiKey(round + 1, j);
    add("batch create", async () => {
      const { status, id } = await createBatch(load, key);
      const first = seen.get(key);
      if (first !== undefined && first !== id) {
        throw new Error(`key "${key}" made two batches: ${first} and ${id}`);
      }
      seen.set(key, id);
      if (!ledger.batches.has(id)) {
        const batch: SentBatch = { id, key, expected: expectedStatus(round + 1, j) };
        ledger.batches.set(id, batch);
        next[j] = batch;
      }
      return status;
    });
  }

  // Finalize the batches the previous burst uploaded into; the first one twice at once.
  const previous = round === 0 ? [] : load.batchesFor[round - 1]!;
  for (const batch of [...previous, ...previous.slice(0, 1)]) {
    add("finalize", async () => {
      const status = await finalize(load, batch.id);
      if (status !== batch.expected) {
        throw new Error(`batch "${batch.key}" finalized ${status}, not ${batch.expected}`);
      }
      return 200;
    });
  }

  // Admin retries of failed events (failed on the flaky endpoint): two by id, and all at once.
  const sql = await connectEmbedded(load.dataDir);
  let failedIds: string[];
  try {
    const rows = await sql<{ id: string }[]>`
      SELECT id FROM outbox_event WHERE status = 'failed' ORDER BY id LIMIT 2`;
    failedIds = rows.map((row) => row.id);
  } finally {
    await sql.end();
  }
  const retries = [
    ...failedIds.map((id) => ({ path: `/admin/events/${id}/retry`, back: "/admin/events" })),
    { path: "/admin/events/retry-failed", back: "/admin/events?status=failed" },
  ];
  for (const { path, back } of retries) {
    add("admin retry", async () => {
      const response = await load.browser.postForm(path, { csrf_token: load.csrf, back });
      await response.body?.cancel();
      await requireStatus(response, [303], `POST ${path}`);
      return response.status;
    });
  }

  for (
    const path of [
      "/admin/files",
      "/admin/events",
      "/admin/webhooks",
      "/admin/events?status=failed",
    ]
  ) {
    add("admin page", async () => {
      const response = await load.browser.get(path);
      await requireStatus(response, [200], `GET ${path}`);
      if (!/<\/html>\s*$/i.test(await response.text())) throw new Error(`GET ${path}: cut short`);
      return response.status;
    });
  }

  // Up to 50: downloads of files stored before this burst (bearer token, session cookie or the
  // signed link of the upload's answer), and listings.
  const earlier = [...ledger.stored];
  for (let i = 0; list.length < REQUESTS_PER_ROUND; i++) {
    if (i % 3 === 2) {
      const query = ["limit=100", "status=stored", "status=failed&limit=20"][(i % 9 - 2) / 3]!;
      add("listing", async () => {
        const response = await fetch(`${load.base}/api/v1/files?${query}`, { headers: load.auth });
        await requireStatus(response, [200], `GET /api/v1/files?${query}`);
        const body = await response.json() as { files: unknown };
        if (!Array.isArray(body.files)) throw new Error(`GET /api/v1/files?${query}: no files`);
        return response.status;
      });
      continue;
    }
    const file = earlier[(round * 17 + i * 7) % earlier.length]!;
    const how = i % 3 === 1 ? "link" : i % 2 === 0 ? "bearer" : "session";
    add("download", async () => {
      const response = how === "bearer"
        ? await fetch(`${load.base}/files/${file.id}/download`, { headers: load.auth })
        : how === "session"
        ? await load.browser.get(`/files/${file.id}/download`)
        : await fetch(file.url, { redirect: "manual" });
      await requireStatus(response, [200], `GET /files/${file.id}/download (${how})`);
      const got = sha256Hex(new Uint8Array(await response.arrayBuffer()));
      if (got !== file.sha256) throw new Error(`GET /files/${file.id}/download: other bytes`);
      return response.status;
    });
  }
  return list;
}

/** Records a refused upload of `batchId`. */
function refuse(ledger: Ledger, batchId: string): void {
  ledger.refused.set(batchId, (ledger.refused.get(batchId) ?? 0) + 1);
}

/** POST /api/v1/batches with `key`; the batch must be open. */
async function createBatch(load: Load, key: string): Promise<{ status: number; id: string }> {
  const response = await fetch(`${load.base}/api/v1/batches`, {
    method: "POST",
    headers: { ...load.auth, "content-type": "application/json" },
    body: JSON.stringify({ idempotency_key: key }),
  });
  await requireStatus(response, [200, 201], `POST /api/v1/batches "${key}"`);
  const body = await response.json() as { id: string; status: string };
  if (body.status !== "open") throw new Error(`batch "${key}" is ${body.status}`);
  return { status: response.status, id: body.id };
}

/** POST /api/v1/batches/:id/finalize; returns the status it answers. */
async function finalize(load: Load, batchId: string): Promise<string> {
  const response = await fetch(`${load.base}/api/v1/batches/${batchId}/finalize`, {
    method: "POST",
    headers: load.auth,
  });
  await requireStatus(response, [200], `POST /api/v1/batches/${batchId}/finalize`);
  return (await response.json() as { status: string }).status;
}

/** Throws unless `response` has one of `expected` (quoting the body of an unexpected one). */
async function requireStatus(response: Response, expected: number[], what: string): Promise<void> {
  if (expected.includes(response.status)) return;
  const body = (await response.text().catch(() => "")).slice(0, 300);
  throw new Error(`${what}: expected ${expected.join(" or ")}, got ${response.status} ${body}`);
}

/** A file to send: bytes that sniff as an allowed type, or an executable, which is refused. */
function fileBytes(kind: "png" | "pdf" | "txt" | "exe", seed: number): Uint8Array<ArrayBuffer> {
  const size = 4_096 + (seed * 7_919) % 28_000;
  switch (kind) {
    case "png": {
      // pngBytes leaves random bytes after IHDR, which the sniffer may read as a broken chunk
      // length: an IDAT chunk header right after IHDR's CRC makes every seed a PNG.
      const bytes = pngBytes(size, seed);
      new DataView(bytes.buffer).setUint32(33, size - 33 - 12);
      bytes.set(new TextEncoder().encode("IDAT"), 37);
      return bytes;
    }
    case "pdf":
      return pdfBytes(size, seed);
    case "txt": {
      const line = `line ${seed}: ${sha256Hex(randomBytes(32, seed))}\n`;
      return new TextEncoder().encode(line.repeat(Math.ceil(size / line.length)));
    }
    case "exe":
      return exeBytes(4_096);
  }
}

/** "page upload 8, api upload 16, …": how many requests of each kind a burst held. */
function kinds(results: Timed[]): string {
  const counts = new Map<string, number>();
  for (const r of results) counts.set(r.kind, (counts.get(r.kind) ?? 0) + 1);
  return [...counts].map(([kind, n]) => `${kind} ${n}`).join(", ");
}
