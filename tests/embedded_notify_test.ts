import assert from "node:assert/strict";
import { openEmbeddedDatabase } from "../src/db/embedded.ts";
import { migrate } from "../src/db/migrate.ts";
import { emitEvent, OUTBOX_CHANNEL } from "../src/outbox/emit.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { deliveryDeps, emit } from "./helpers/webhooks.ts";
import { addEndpoint } from "../src/webhooks/endpoint_service.ts";
import { startDeliveryLoop } from "../src/webhooks/delivery_worker.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `check()` is true; rejects after `timeoutMs`. */
async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`not true within ${timeoutMs} ms`);
    await sleep(2);
  }
}

Deno.test("openEmbeddedDatabase() listen() is woken by a committed NOTIFY only, without polling", async (t) => {
  const dataDir = await Deno.makeTempDir({ prefix: "portal-embedded-notify-" });
  const db = await openEmbeddedDatabase(dataDir);
  try {
    await migrate(db);
    const wakes: { payload: string; at: number; visible: Promise<boolean> }[] = [];
    let listened = 0;
    const subscription = await db.listen(OUTBOX_CHANNEL, (payload) => {
      wakes.push({
        payload,
        at: performance.now(),
        // Asked at wake-up time: the event the NOTIFY names is already committed.
        visible: db.sql`SELECT 1 FROM outbox_event WHERE id = ${payload}::uuid`.then((rows) =>
          rows.length === 1
        ).catch(() => false),
      });
    }, () => listened++);
    assert.equal(listened, 1, "onListen runs once the subscription is active");

    await t.step("an idle database wakes nobody", async () => {
      await sleep(1000);
      assert.deepEqual(wakes, []);
    });

    await t.step("each committed event wakes the listener within 50 ms of its commit", async () => {
      const lags: number[] = [];
      for (let i = 0; i < 5; i++) {
        const id = await emit(db, "file.stored", { i });
        const committedAt = performance.now();
        await until(() => wakes.length === i + 1, 1000);
        const wake = wakes[i]!;
        assert.equal(wake.payload, id);
        lags.push(wake.at - committedAt);
        assert.ok(wake.at - committedAt < 50, `woken ${Math.round(wake.at - committedAt)} ms late`);
        assert.equal(await wake.visible, true);
      }
      // Negative: the wake-up arrives with the COMMIT's reply, just before the caller resumes.
      console.log(
        `embedded wake-up after commit: ${lags.map((lag) => lag.toFixed(1)).join(", ")} ms`,
      );
    });

    await t.step("a rolled-back event wakes nobody", async () => {
      const before = wakes.length;
      await assert.rejects(
        db.sql.begin(async (tx) => {
          await emitEvent(tx, {
            aggregateType: "UploadFile",
            aggregateId: crypto.randomUUID(),
            eventType: "file.stored",
            payload: {},
          });
          throw new Error("roll back");
        }),
        /roll back/,
      );
      await sleep(300);
      assert.equal(wakes.length, before);
    });

    await t.step("the delivery loop on it sends an event as soon as it commits", async () => {
      const receiver = startReceiver();
      const loop = startDeliveryLoop(deliveryDeps(db));
      try {
        await addEndpoint({ db }, { url: receiver.url });
        await loop.drained();
        const started = performance.now();
        await emit(db, "file.stored", { loop: true });
        await receiver.waitFor(1, 2000);
        const waited = performance.now() - started;
        // Far sooner than the loop's 5 s fallback timer: NOTIFY woke it.
        assert.ok(waited < 500, `delivered after ${Math.round(waited)} ms`);
      } finally {
        await loop.stop(1000);
        await receiver.close();
      }
    });

    await t.step("after unlisten nothing wakes it", async () => {
      await subscription.unlisten();
      const before = wakes.length;
      await emit(db, "file.stored", { after: "unlisten" });
      await sleep(300);
      assert.equal(wakes.length, before);
    });
  } finally {
    await db.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
