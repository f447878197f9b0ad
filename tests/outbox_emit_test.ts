/**
 * `emitEvent()` against a real Postgres: a duplicate idempotency key is a typed result, not an
 * exception, and leaves the caller's transaction usable; the NOTIFY it sends reaches a listener on
 * another connection only when that transaction commits.
 */
import assert from "node:assert/strict";
import type { Database, Queryable } from "../src/db/db.ts";
import { newId } from "../src/db/ids.ts";
import { emitEvent, type EmitInput, OUTBOX_CHANNEL } from "../src/outbox/emit.ts";
import { createMigratedDatabase } from "./helpers/db.ts";

/** How long a notification that should not come is waited for. */
const QUIET_MS = 300;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The state change an event reports: a stored file row. */
async function insertStoredFile(tx: Queryable, id: string): Promise<void> {
  await tx`
    INSERT INTO upload_file (id, original_filename, storage_backend, storage_key, status,
                             expires_at, sha256, size_bytes, content_type)
    VALUES (${id}, 'report.pdf', 'local', ${`uploads/test/${id}/report.pdf`}, 'stored',
            ${new Date(Date.now() + 3_600_000)}, '', 1, 'application/pdf')`;
}

function storedEvent(fileId: string, payload: Record<string, unknown> = {}): EmitInput {
  return {
    aggregateType: "UploadFile",
    aggregateId: fileId,
    eventType: "file.stored",
    payload: { file_id: fileId, ...payload },
  };
}

/** Notifications on the outbox channel as a worker on another connection sees them. */
interface OutboxListener {
  payloads: string[];
  /** Resolves once `payload` has arrived; rejects after `timeoutMs`. */
  waitFor(payload: string, timeoutMs?: number): Promise<void>;
  unlisten(): Promise<void>;
}

async function listenOnOutbox(db: Database): Promise<OutboxListener> {
  const payloads: string[] = [];
  const waiters = new Set<() => void>();
  const subscription = await db.listen(OUTBOX_CHANNEL, (payload) => {
    payloads.push(payload);
    for (const check of [...waiters]) check();
  });
  return {
    payloads,
    waitFor(payload, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no NOTIFY "${payload}" within ${timeoutMs} ms, got ${payloads}`));
        }, timeoutMs);
        const check = () => {
          if (!payloads.includes(payload)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        waiters.add(check);
        check();
      });
    },
    unlisten: () => subscription.unlisten(),
  };
}

async function eventRows(db: Database, aggregateId: string) {
  return [
    ...await db.sql<
      { id: string; eventType: string; idempotencyKey: string; payload: unknown }[]
    >`
      SELECT id, event_type AS "eventType", idempotency_key AS "idempotencyKey", payload
      FROM outbox_event WHERE aggregate_id = ${aggregateId} ORDER BY event_type`,
  ].map((row) => ({ ...row }));
}

Deno.test("emitEvent() reports a duplicate key as a result and the transaction still commits", async (t) => {
  const { testDb, db } = await createMigratedDatabase("outbox_emit_duplicate");
  const listener = await listenOnOutbox(testDb.open({ max: 1 }));
  try {
    const fileId = newId();
    let storedId = "";

    await t.step("inside one transaction: created, duplicate, then more work", async () => {
      const { first, again, other } = await db.sql.begin(async (tx) => {
        await insertStoredFile(tx, fileId);
        const first = await emitEvent(tx, storedEvent(fileId));
        const again = await emitEvent(tx, storedEvent(fileId, { second: true }));
        // Had the duplicate raised a unique violation, Postgres would now refuse every
        // statement of this transaction ("current transaction is aborted").
        const other = await emitEvent(tx, { ...storedEvent(fileId), eventType: "file.expiring" });
        await tx`UPDATE upload_file SET status = 'processed' WHERE id = ${fileId}`;
        return { first, again, other };
      });
      assert.equal(first.status, "created");
      assert.deepEqual(again, { status: "duplicate", id: first.id });
      assert.equal(other.status, "created");
      storedId = first.id!;

      // Everything committed: the file change and both events, the first payload kept.
      const [file] = await db.sql<{ status: string }[]>`
        SELECT status FROM upload_file WHERE id = ${fileId}`;
      assert.equal(file?.status, "processed");
      assert.deepEqual(await eventRows(db, fileId), [
        {
          id: other.id,
          eventType: "file.expiring",
          idempotencyKey: `UploadFile:${fileId}`,
          payload: { file_id: fileId },
        },
        {
          id: first.id,
          eventType: "file.stored",
          idempotencyKey: `UploadFile:${fileId}`,
          payload: { file_id: fileId },
        },
      ]);

      // One NOTIFY per created event and none for the duplicate; a transaction's notifications
      // arrive together at its commit, so once the last is here every one of them is.
      await listener.waitFor(other.id!);
      assert.deepEqual([...listener.payloads].sort(), [first.id, other.id].sort());
    });

    await t.step(
      "in a later transaction the same key is a duplicate of the stored id",
      async () => {
        const before = listener.payloads.length;
        const again = await db.sql.begin((tx) => emitEvent(tx, storedEvent(fileId)));
        assert.deepEqual(again, { status: "duplicate", id: storedId });
        // A different key for the same aggregate and type is a new event.
        const keyed = await db.sql.begin((tx) =>
          emitEvent(tx, { ...storedEvent(fileId), idempotencyKey: `UploadFile:${fileId}:v2` })
        );
        assert.equal(keyed.status, "created");
        await listener.waitFor(keyed.id!);
        assert.deepEqual(listener.payloads.slice(before), [keyed.id]);
      },
    );
  } finally {
    await listener.unlisten();
    await testDb.drop();
  }
});

Deno.test("emitEvent() in a rolled-back transaction leaves no row and sends no NOTIFY", async (t) => {
  const { testDb, db } = await createMigratedDatabase("outbox_emit_rollback");
  const listener = await listenOnOutbox(testDb.open({ max: 1 }));
  try {
    await t.step("a rollback: no row, and no notification within the wait", async () => {
      const fileId = newId();
      let emittedId: string | null = null;
      await assert.rejects(
        db.sql.begin(async (tx) => {
          await insertStoredFile(tx, fileId);
          const emitted = await emitEvent(tx, storedEvent(fileId));
          assert.equal(emitted.status, "created");
          emittedId = emitted.id;
          throw new Error("the upload failed after emitting");
        }),
        /the upload failed after emitting/,
      );
      assert.ok(emittedId !== null);
      await delay(QUIET_MS);
      assert.deepEqual(listener.payloads, []);
      assert.deepEqual(await eventRows(db, fileId), []);
      const files = await db.sql`SELECT id FROM upload_file WHERE id = ${fileId}`;
      assert.equal(files.length, 0);
    });

    await t.step("a commit: the notification arrives, and only after the commit", async () => {
      const fileId = newId();
      const emitted = await db.sql.begin(async (tx) => {
        await insertStoredFile(tx, fileId);
        const emitted = await emitEvent(tx, storedEvent(fileId));
        // pg_notify has run, but Postgres holds the notification until the commit.
        await delay(QUIET_MS);
        assert.deepEqual(listener.payloads, [], "no notification before the commit");
        return emitted;
      });
      assert.equal(emitted.status, "created");
      await listener.waitFor(emitted.id!);
      // The rolled-back event never shows up, not even late: it would have come first.
      assert.deepEqual(listener.payloads, [emitted.id]);
      assert.equal((await eventRows(db, fileId)).length, 1);
    });
  } finally {
    await listener.unlisten();
    await testDb.drop();
  }
});

Deno.test("emitEvent() makes an event due for a worker's clock as soon as it commits", async () => {
  // A worker woken by the commit compares next_attempt_at with its own clock, sent as a
  // millisecond timestamp: an event stamped with now()'s microseconds looked not yet due to a
  // pass in the same millisecond (52 of 300 before the fix), and waited for the fallback timer.
  const { testDb, db } = await createMigratedDatabase("outbox_emit_due");
  try {
    let notDue = 0;
    for (let i = 0; i < 300; i++) {
      const id = await db.sql.begin(async (tx) =>
        (await emitEvent(tx, {
          aggregateType: "UploadFile",
          aggregateId: crypto.randomUUID(),
          eventType: "file.stored",
          payload: {},
        })).id
      );
      const now = new Date();
      const [row] = await db.sql<{ due: boolean }[]>`
        SELECT next_attempt_at <= ${now} AS due FROM outbox_event WHERE id = ${id}`;
      if (!row!.due) notDue++;
    }
    assert.equal(notDue, 0, `${notDue} of 300 events were not due right after their commit`);
  } finally {
    await testDb.drop();
  }
});
