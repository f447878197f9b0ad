/**
 * Transaction isolation on the embedded default. PGlite, the default this replaced, was one
 * single-user backend: concurrent transactions shared it, so one rolling back could take the
 * other's rows with it (or commit its own). On the embedded PostgreSQL server each transaction
 * has its own connection and backend: a rollback beside a commit removes exactly its own rows
 * and events, in-process with the real repository and outbox functions, and over HTTP where a
 * refused upload races stored ones in the same batch.
 */
import assert from "node:assert/strict";
import { migrate } from "../src/db/migrate.ts";
import { newId } from "../src/db/ids.ts";
import { openEmbeddedDatabase } from "../src/db/embedded/embedded_database.ts";
import type { Database, Queryable } from "../src/db/db.ts";
import { emitEvent, OUTBOX_CHANNEL } from "../src/outbox/emit.ts";
import { findFile, insertFile, type NewFile } from "../src/uploads/files_repo.ts";
import { login } from "./helpers/app.ts";
import { runCli } from "./helpers/cli.ts";
import {
  adminPassword,
  connectEmbedded,
  embeddedDataDir,
  type EmbeddedPortal,
  serveEmbedded,
} from "./helpers/embedded.ts";
import { Barrier, serverProblems, stopLeftoverServer, waitUntil } from "./helpers/embedded_load.ts";
import { exeBytes, multipartBody, pdfBytes, sha256Hex } from "./helpers/uploads.ts";

/** Pairs of transactions run at once in one wave (each pair: one commits, one rolls back). */
const PAIRS = 20;
const WAVES = 3;

/** Thrown inside a transaction to roll it back. */
class Rollback extends Error {
  override name = "Rollback";
}

/** A promise and its resolver. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

/** Fails instead of hanging when a transaction waits on a barrier that never opens. */
async function withTimeout<T>(what: string, promise: Promise<T>, ms = 20_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no end after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A stored-file row as the upload path writes it. */
function storedFile(label: string): NewFile {
  const bytes = new TextEncoder().encode(`isolation ${label}`);
  return {
    id: newId(),
    batchId: null,
    uploadedBy: null,
    originalFilename: `${label}.txt`,
    contentType: "text/plain",
    sizeBytes: bytes.byteLength,
    sha256: sha256Hex(bytes),
    storageBackend: "local",
    storageKey: `uploads/test/${label}.txt`,
    status: "stored",
    errorMessage: "",
    expiresAt: new Date(Date.now() + 3_600_000),
  };
}

/** Writes `file` and its `file.stored` event in `tx`, as commitStoredFile does. */
async function writeStored(tx: Queryable, file: NewFile): Promise<string> {
  const row = await insertFile(tx, file);
  const emitted = await emitEvent(tx, {
    aggregateType: "UploadFile",
    aggregateId: row.id,
    eventType: "file.stored",
    idempotencyKey: `UploadFile:${row.id}`,
    payload: { file_id: row.id, sha256: row.sha256 },
  });
  assert.equal(emitted.status, "created");
  return emitted.id;
}

/** What one pair did: the committed file and event, and the rolled-back ones. */
interface PairOutcome {
  committed: { fileId: string; eventId: string };
  rolledBack: { fileId: string; eventId: string };
}

/**
 * One pair: A begins and writes its file and event; B begins once A has written, checks it
 * cannot see A's row, writes its own; A checks it cannot see B's; both wait at `written`, then
 * at `end` (every transaction of the wave and the observer), then the loser throws (rollback)
 * while the other commits.
 * `aCommits` picks which of the two commits.
 */
async function runPair(
  db: Database,
  label: string,
  aCommits: boolean,
  end: Barrier,
  written: Barrier,
): Promise<PairOutcome> {
  const aWrote = signal();
  const bWrote = signal();
  const files = { a: storedFile(`${label}-a`), b: storedFile(`${label}-b`) };
  const events: { a?: string; b?: string } = {};

  const a = db.sql.begin(async (tx) => {
    events.a = await writeStored(tx, files.a);
    assert.ok(await findFile(tx, files.a.id), "A sees its own row");
    aWrote.resolve();
    await bWrote.promise;
    assert.equal(await findFile(tx, files.b.id), null, "A does not see B's uncommitted row");
    await written.wait();
    await end.wait();
    if (!aCommits) throw new Rollback(`${label}: A rolls back`);
  });
  const b = db.sql.begin(async (tx) => {
    await aWrote.promise;
    assert.equal(await findFile(tx, files.a.id), null, "B does not see A's uncommitted row");
    events.b = await writeStored(tx, files.b);
    bWrote.resolve();
    await written.wait();
    await end.wait();
    if (aCommits) throw new Rollback(`${label}: B rolls back`);
  });
  const [aResult, bResult] = await withTimeout(label, Promise.allSettled([a, b]));
  const loser = aCommits ? bResult : aResult;
  const winner = aCommits ? aResult : bResult;
  assert.equal(
    winner.status,
    "fulfilled",
    `${label}: ${String((winner as { reason?: unknown }).reason)}`,
  );
  assert.equal(loser.status, "rejected");
  assert.ok(
    (loser as PromiseRejectedResult).reason instanceof Rollback,
    String((loser as PromiseRejectedResult).reason),
  );
  const [won, lost] = aCommits ? ["a", "b"] as const : ["b", "a"] as const;
  return {
    committed: { fileId: files[won].id, eventId: events[won]! },
    rolledBack: { fileId: files[lost].id, eventId: events[lost]! },
  };
}

Deno.test("openEmbeddedDatabase(): a transaction rolling back beside one committing keeps only the committed rows and events", async (t) => {
  const dataDir = await embeddedDataDir("isolation");
  // Every transaction of a wave holds its connection until the wave's barrier opens: the pool
  // must hold them all, plus the observer's queries.
  const db = await openEmbeddedDatabase(dataDir, { max: PAIRS * 2 + 4 });
  try {
    await migrate(db);
    const notified: string[] = [];
    const subscription = await db.listen(OUTBOX_CHANNEL, (payload) => notified.push(payload));
    const committed: PairOutcome["committed"][] = [];
    const rolledBack: PairOutcome["rolledBack"][] = [];

    let allPassed = true;
    for (let wave = 0; wave < WAVES && allPassed; wave++) {
      // A failed wave leaves transactions waiting on its barriers: the next would only time out.
      allPassed = await t.step(
        `wave ${wave + 1}: ${PAIRS} pairs at once, one of each rolls back`,
        async () => {
          // Both barriers count the observer too, so it looks between the writes and the ends.
          const written = new Barrier(PAIRS * 2 + 1);
          const end = new Barrier(PAIRS * 2 + 1);
          const began = performance.now();
          const pairs = Promise.all(Array.from(
            { length: PAIRS },
            (_, i) => runPair(db, `w${wave}-p${i}`, i % 2 === 0, end, written),
          ));
          pairs.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
          // Every transaction has written and none has ended: nothing is visible outside them.
          await withTimeout(
            `the ${PAIRS * 2} transactions writing side by side`,
            written.wait(),
            15_000,
          );
          let outside: { files: number; events: number } | undefined;
          try {
            [outside] = await db.sql<{ files: number; events: number }[]>`
            SELECT (SELECT count(*)::int FROM upload_file) AS files,
                   (SELECT count(*)::int FROM outbox_event) AS events`;
          } finally {
            // Now every rollback and every commit of the wave happen at the same instant.
            await end.wait();
          }
          const outcomes = await pairs;
          assert.deepEqual(
            outside,
            { files: committed.length, events: committed.length },
            "while the wave's transactions are open, only earlier waves' rows are visible",
          );
          console.log(
            `wave ${wave + 1}: ${
              PAIRS * 2
            } transactions (${PAIRS} commits, ${PAIRS} rollbacks) in ${
              Math.round(performance.now() - began)
            } ms`,
          );
          committed.push(...outcomes.map((o) => o.committed));
          rolledBack.push(...outcomes.map((o) => o.rolledBack));

          const files = await db.sql<{ id: string }[]>`SELECT id FROM upload_file`;
          const events = await db.sql<{ id: string; aggregateId: string }[]>`
          SELECT id, aggregate_id AS "aggregateId" FROM outbox_event`;
          assert.deepEqual(
            new Set(files.map((f) => f.id)),
            new Set(committed.map((c) => c.fileId)),
            "exactly the committed files exist",
          );
          assert.deepEqual(
            new Set(events.map((e) => e.id)),
            new Set(committed.map((c) => c.eventId)),
            "the outbox holds exactly the committed events",
          );
          assert.equal(events.length, committed.length);
          for (const event of events) {
            const mine = committed.find((c) => c.eventId === event.id);
            assert.equal(event.aggregateId, mine?.fileId, "each event next to its own file");
          }
          for (const lost of rolledBack) {
            assert.equal(await findFile(db.sql, lost.fileId), null);
          }
        },
      );
    }

    await t.step({
      name: "NOTIFY reached the listener for each commit, never for a rollback",
      ignore: !allPassed,
      fn: async () => {
        await waitUntil(
          `${committed.length} notifications arrived (got ${notified.length})`,
          () => Promise.resolve(notified.length >= committed.length),
          10_000,
        );
        // Room for a late, wrong one to show up.
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(notified.length, committed.length);
        assert.deepEqual(new Set(notified), new Set(committed.map((c) => c.eventId)));
      },
    });
    await subscription.unlisten();
  } finally {
    await db.close();
    await stopLeftoverServer(dataDir);
    await Deno.remove(dataDir, { recursive: true });
  }
});

/** How many batches race at once, and the stored uploads each gets beside its refused one. */
const HTTP_BATCHES = 6;
const GOOD_PER_BATCH = 4;
const PAGE_POSTS = 4;

Deno.test("portal serve on the embedded default: a refused upload racing stored ones in one batch leaves a failed row and no event", async (t) => {
  const dataDir = await embeddedDataDir("isolation-http");
  let served: EmbeddedPortal | null = null;
  try {
    // One user's uploads all at once: the per-user cap is tests/security/upload_slots_test.ts's.
    served = await serveEmbedded(dataDir, {
      PORTAL_JOBS: "off",
      PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER: "100",
    });
    const base = served.base;
    const browser = await login(base, "admin@localhost", await adminPassword(served.portal));
    const csrf = await browser.sessionCsrfToken();
    const token = await runCli(["token", "create", "--email", "admin@localhost"], {
      env: { PORTAL_DATA_DIR: dataDir },
    });
    assert.equal(token.code, 0, token.stderr);
    const auth = { authorization: `Bearer ${token.stdout.trim()}` };

    const batchIds: string[] = [];
    /** sha256 of each stored upload, by file id. */
    const stored = new Map<string, string>();
    const refusedIds: string[] = [];

    await t.step(
      `${HTTP_BATCHES} batches each get ${GOOD_PER_BATCH} files and an .exe at once, beside ${PAGE_POSTS} form posts`,
      async () => {
        for (let i = 0; i < HTTP_BATCHES; i++) {
          const response = await fetch(`${base}/api/v1/batches`, { method: "POST", headers: auth });
          assert.equal(response.status, 201);
          batchIds.push((await response.json() as { id: string }).id);
        }
        const api = batchIds.flatMap((batchId, i) =>
          Array.from({ length: GOOD_PER_BATCH + 1 }, (_, k) => {
            const refused = k === 2; // in the middle of the burst, not first or last
            const bytes = refused ? exeBytes() : pdfBytes(8_192 + k * 1_000, i * 10 + k);
            const name = refused ? `tool-${i}.exe` : `report-${i}-${k}.pdf`;
            return async () => {
              const response = await fetch(
                `${base}/api/v1/files?filename=${name}&batch_id=${batchId}`,
                { method: "POST", headers: auth, body: bytes },
              );
              const body = await response.json() as {
                id?: string;
                sha256?: string;
                file?: { id: string; status: string };
                error?: { code: string };
              };
              if (refused) {
                assert.equal(response.status, 415, JSON.stringify(body));
                assert.equal(body.error?.code, "type_not_allowed");
                assert.equal(body.file?.status, "failed");
                refusedIds.push(body.file!.id);
              } else {
                assert.equal(response.status, 201, JSON.stringify(body));
                assert.equal(body.sha256, sha256Hex(bytes));
                stored.set(body.id!, body.sha256!);
              }
            };
          })
        );
        const page = Array.from({ length: PAGE_POSTS }, (_, i) => async () => {
          const files = [
            { name: `form-${i}-a.pdf`, data: pdfBytes(6_000, 100 + i) },
            { name: `form-${i}.exe`, data: exeBytes() },
            { name: `form-${i}-b.pdf`, data: pdfBytes(7_000, 200 + i) },
          ];
          const { body, contentType } = multipartBody([
            { name: "csrf_token", data: csrf },
            ...files.map((f) => ({ name: "files", filename: f.name, data: f.data })),
          ]);
          const response = await browser.request("/upload", {
            method: "POST",
            headers: { "content-type": contentType, accept: "application/json" },
            body,
          });
          const answer = await response.json() as {
            batch: { id: string; status: string };
            files: { id: string; status: string; sha256: string }[];
          };
          assert.equal(response.status, 201, JSON.stringify(answer));
          assert.equal(answer.batch.status, "partial");
          assert.deepEqual(answer.files.map((f) => f.status), ["stored", "failed", "stored"]);
          batchIds.push(answer.batch.id);
          for (const [k, file] of answer.files.entries()) {
            if (file.status === "failed") refusedIds.push(file.id);
            else {
              assert.equal(file.sha256, sha256Hex(files[k]!.data));
              stored.set(file.id, file.sha256);
            }
          }
        });
        await Promise.all([...api, ...page].map((run) => run()));

        const finalized = await Promise.all(
          batchIds.slice(0, HTTP_BATCHES).map(async (id) => {
            const response = await fetch(`${base}/api/v1/batches/${id}/finalize`, {
              method: "POST",
              headers: auth,
            });
            assert.equal(response.status, 200);
            return (await response.json() as { status: string }).status;
          }),
        );
        assert.deepEqual(finalized, Array(HTTP_BATCHES).fill("partial"));
      },
    );

    await t.step(
      "the outbox holds one file.stored per stored file and none for a refused one",
      async () => {
        const sql = await connectEmbedded(dataDir);
        try {
          const files = await sql<
            {
              id: string;
              status: string;
              sha256: string;
              batchId: string;
              error: string;
              code: string | null;
            }[]
          >`SELECT id, status, sha256, batch_id AS "batchId", error_message AS error,
                 metadata->>'error_code' AS code
          FROM upload_file`;
          const expectedStored = HTTP_BATCHES * GOOD_PER_BATCH + PAGE_POSTS * 2;
          const expectedRefused = HTTP_BATCHES + PAGE_POSTS;
          assert.equal(stored.size, expectedStored);
          assert.equal(refusedIds.length, expectedRefused);
          assert.equal(files.length, expectedStored + expectedRefused, "one row per upload");
          for (const file of files) {
            if (stored.has(file.id)) {
              assert.equal(file.status, "stored");
              assert.equal(file.sha256, stored.get(file.id));
            } else {
              assert.ok(refusedIds.includes(file.id), `row ${file.id} is one of the uploads`);
              assert.equal(file.status, "failed");
              assert.equal(file.code, "type_not_allowed");
              assert.match(file.error, /is not allowed/);
            }
          }
          for (const batchId of batchIds) {
            const mine = files.filter((f) => f.batchId === batchId);
            assert.equal(mine.filter((f) => f.status === "failed").length, 1, `batch ${batchId}`);
          }

          const events = await sql<
            { aggregateId: string; eventType: string; fileId: string; sha256: string }[]
          >`SELECT aggregate_id AS "aggregateId", event_type AS "eventType",
                 payload->>'file_id' AS "fileId", payload->>'sha256' AS sha256
          FROM outbox_event`;
          assert.equal(events.length, stored.size, "one event per stored file, nothing else");
          assert.deepEqual(new Set(events.map((e) => e.aggregateId)), new Set(stored.keys()));
          for (const event of events) {
            assert.equal(event.eventType, "file.stored");
            assert.equal(event.fileId, event.aggregateId);
            assert.equal(event.sha256, stored.get(event.aggregateId));
          }
          const batches = await sql<{ id: string; status: string }[]>`
          SELECT id, status FROM upload_batch`;
          assert.deepEqual(
            new Map(batches.map((b) => [b.id, b.status])),
            new Map(batchIds.map((id) => [id, "partial"])),
          );
          console.log(
            `http: ${stored.size} stored and ${refusedIds.length} refused uploads at once in ${batchIds.length} batches; ${events.length} file.stored events`,
          );
        } finally {
          await sql.end();
        }
        assert.deepEqual(serverProblems(served!.portal), [], "the server logged no error");
      },
    );

    const status = await served.portal.stop("SIGTERM");
    assert.equal(status.code, 0, served.portal.stderrLines.join("\n"));
    served = null;
  } finally {
    const running = served as EmbeddedPortal | null;
    if (running !== null) await running.portal.stop("SIGKILL");
    await stopLeftoverServer(dataDir);
    await Deno.remove(dataDir, { recursive: true });
  }
});
