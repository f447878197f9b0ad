import assert from "node:assert/strict";
import { PRIVATE_TARGETS_ALLOWED } from "./helpers/webhooks.ts";
import { createUploadFixture } from "./helpers/uploads.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { deliveryDeps, emit } from "./helpers/webhooks.ts";
import { startBackground } from "../src/jobs/background.ts";
import { addEndpoint } from "../src/webhooks/endpoint_service.ts";
import { deliverDueOnce } from "../src/webhooks/delivery_loop.ts";

const BACKLOG = 120;

Deno.test("startBackground().stop() is bounded while the delivery sweep runs and releases unfinished claims", async (t) => {
  const fx = await createUploadFixture("shutdown_sweep", {
    env: {
      PORTAL_WEBHOOK_ALLOW_PRIVATE: "true",
      PORTAL_SHUTDOWN_TIMEOUT_SECONDS: "1",
      WEBHOOK_TIMEOUT_SECONDS: "2",
    },
  });
  const { db, deps } = fx;
  // A slow receiver: nothing answers before the shutdown timeout.
  const receiver = startReceiver((_request, { hang }) => hang());
  try {
    // Every claim, with the database's own clock, so "after stop began" is exact.
    await db.sql`CREATE TABLE claim_log (
      delivery_id uuid NOT NULL, owner text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`;
    await db.sql`CREATE FUNCTION log_claim() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO claim_log (delivery_id, owner) VALUES (NEW.id, NEW.lease_owner); RETURN NEW; END $$`;
    await db.sql`CREATE TRIGGER log_claim AFTER INSERT OR UPDATE OF lease_owner ON webhook_delivery
      FOR EACH ROW WHEN (NEW.lease_owner IS NOT NULL) EXECUTE FUNCTION log_claim()`;
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: receiver.url });
    for (let i = 0; i < BACKLOG; i++) await emit(db, "file.stored", { i });

    const timeoutMs = deps.config.shutdownTimeoutSeconds * 1000;
    const background = startBackground(deps);
    let stopBegan!: Date;
    let sweep!: Promise<unknown>;
    await t.step("the delivery loop and a triggered sweep work on the backlog", async () => {
      await receiver.waitFor(1, 10_000);
      sweep = background.runJob("delivery-sweep");
      // Let the sweep tick take its lock and start before stopping.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const [held] = await db.sql<{ count: number }[]>`
        SELECT count(*)::int AS count FROM webhook_delivery WHERE lease_owner IS NOT NULL`;
      assert.ok((held?.count ?? 0) > 0, "some deliveries are claimed when stop begins");
      assert.ok((held?.count ?? 0) < BACKLOG, "the backlog is not all claimed at once");
    });

    await t.step("stop() returns within the shutdown timeout plus the release", async () => {
      const [now] = await db.sql<{ at: Date }[]>`SELECT clock_timestamp() AS at`;
      stopBegan = now!.at;
      const started = performance.now();
      await background.stop(timeoutMs);
      const elapsed = performance.now() - started;
      assert.ok(elapsed < timeoutMs + 1500, `stop took ${Math.round(elapsed)} ms`);
      assert.equal(await sweep, "ran", "the sweep tick ends with the loop");
    });

    await t.step("no claim was made after stop began", async () => {
      const late = await db.sql<{ at: Date }[]>`
        SELECT at FROM claim_log WHERE at > ${stopBegan} ORDER BY at`;
      assert.deepEqual(late.map((row) => row.at.toISOString()), []);
    });

    await t.step("unfinished claims are released: pending, unleased and due now", async () => {
      const rows = await db.sql<{ status: string; leaseOwner: string | null; due: boolean }[]>`
        SELECT status, lease_owner AS "leaseOwner", leased_until IS NULL AND next_attempt_at <= now() AS due
        FROM webhook_delivery`;
      assert.equal(rows.length, BACKLOG, "every event fanned out");
      assert.deepEqual(
        rows.filter((row) => row.status !== "pending" || row.leaseOwner !== null || !row.due),
        [],
      );
      const [run] = await db.sql<{ status: string }[]>`
        SELECT status FROM job_run WHERE job_name = 'delivery-sweep'`;
      assert.equal(run?.status, "succeeded");
    });

    await t.step("another worker delivers them at once, without waiting for a lease", async () => {
      receiver.respond(() => new Response("ok"));
      const started = performance.now();
      const counts = await deliverDueOnce(deliveryDeps(db, { config: deps.config }));
      assert.equal(counts.delivered, BACKLOG);
      assert.ok(performance.now() - started < 10_000);
    });
  } finally {
    await receiver.close();
    await fx.close();
  }
});
