import assert from "node:assert/strict";
import { PRIVATE_TARGETS_ALLOWED } from "./helpers/webhooks.ts";
import type { Database } from "../src/db/db.ts";
import { emitEvent } from "../src/outbox/emit.ts";
import { addEndpoint } from "../src/webhooks/endpoint_service.ts";
import { createMigratedDatabase } from "./helpers/db.ts";
import { startReceiver } from "./helpers/receiver.ts";

const WORKER = new URL("./fixtures/delivery_worker.ts", import.meta.url).pathname;

/** Starts a delivery worker process on the test database. */
function spawnWorker(databaseUrl: string, env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", "-A", `--lock=${new URL("./deno.lock", import.meta.url).pathname}`, WORKER],
    env: {
      DATABASE_URL: databaseUrl,
      PORTAL_WEBHOOK_ALLOW_PRIVATE: "true",
      PORTAL_DB_POOL_SIZE: "4",
      ...env,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Sends SIGTERM and returns the worker's last JSON line. */
async function terminate(child: Deno.ChildProcess): Promise<Record<string, unknown>> {
  child.kill("SIGTERM");
  const output = await child.output();
  const stdout = new TextDecoder().decode(output.stdout).trim().split("\n");
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return JSON.parse(stdout.at(-1) ?? "{}");
}

/** Writes `count` events in transactions of 500, as that many commits of state changes would. */
async function emitMany(db: Database, count: number): Promise<void> {
  for (let start = 0; start < count; start += 500) {
    await db.sql.begin(async (tx) => {
      for (let i = start; i < Math.min(count, start + 500); i++) {
        await emitEvent(tx, {
          aggregateType: "UploadFile",
          aggregateId: crypto.randomUUID(),
          eventType: "file.stored",
          payload: { n: i },
        });
      }
    });
  }
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function count(db: Database, where: string): Promise<number> {
  const [row] = await db.sql.unsafe<{ count: number }[]>(
    `SELECT count(*)::int AS count FROM ${where}`,
  );
  return row?.count ?? 0;
}

Deno.test("startDeliveryLoop() in two processes delivers 2,000 events to each endpoint exactly once", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_two_workers");
  const receiver = startReceiver();
  const base = `http://127.0.0.1:${receiver.port}`;
  const workers: Deno.ChildProcess[] = [];
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: `${base}/a` });
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: `${base}/b`,
      eventTypes: ["file.stored"],
    });
    await emitMany(db, 2000);
    workers.push(spawnWorker(testDb.url), spawnWorker(testDb.url));
    await receiver.waitFor(4000, 120_000);
    await waitUntil(
      "every event to be delivered",
      async () => (await count(db, "outbox_event WHERE status <> 'delivered'")) === 0,
    );
    const results = await Promise.all(workers.splice(0).map(terminate));
    const delivered = results.map((r) => Number(r.delivered));
    assert.equal(delivered[0]! + delivered[1]!, 4000);

    // Exactly once per (event, endpoint): 4,000 requests with 4,000 distinct webhook-ids.
    assert.equal(receiver.requests.length, 4000);
    const ids = new Set(receiver.requests.map((r) => r.headers.get("webhook-id")));
    assert.equal(ids.size, 4000);
    const perPath = Object.groupBy(receiver.requests, (r) => r.path);
    assert.equal(perPath["/a"]?.length, 2000);
    assert.equal(perPath["/b"]?.length, 2000);
    assert.equal(await count(db, "webhook_delivery WHERE status = 'delivered'"), 4000);
    assert.equal(await count(db, "webhook_attempt"), 4000);
  } finally {
    for (const worker of workers) worker.kill("SIGKILL");
    for (const worker of workers) await worker.output();
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("a worker killed with SIGKILL mid-batch loses nothing: its claims return when the lease ends", async () => {
  const { testDb, db } = await createMigratedDatabase("webhook_sigkill");
  // Slow answers keep a full window of requests in flight in both workers when one dies.
  const receiver = startReceiver(async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return new Response("ok");
  });
  const base = `http://127.0.0.1:${receiver.port}`;
  const workers: Deno.ChildProcess[] = [];
  const env = {
    DELIVERY_LEASE_SECONDS: "3",
    WEBHOOK_TIMEOUT_SECONDS: "2",
    WEBHOOK_CONNECT_TIMEOUT_SECONDS: "2",
    // An attempt that times out on a loaded machine comes back in a second, not a minute.
    WEBHOOK_BACKOFF_BASE_SECONDS: "1",
  };
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: `${base}/a` });
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: `${base}/b` });
    await emitMany(db, 600);
    const doomed = spawnWorker(testDb.url, { ...env, WORKER_ID: "doomed" });
    const survivor = spawnWorker(testDb.url, { ...env, WORKER_ID: "survivor" });
    workers.push(doomed, survivor);

    // Both drain side by side: kill one while each holds claims, some way into the backlog.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const owners = await db.sql<{ owner: string }[]>`
        SELECT DISTINCT lease_owner AS owner FROM webhook_delivery
        WHERE status = 'pending' AND lease_owner IS NOT NULL`;
      if (owners.length === 2 && receiver.requests.length >= 200) break;
      if (Date.now() > deadline) throw new Error("Timed out waiting for both workers to drain");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const killedAt = performance.timeOrigin + performance.now();
    doomed.kill("SIGKILL");
    await doomed.output();
    workers.splice(workers.indexOf(doomed), 1);
    // Its unfinished claims. FOR UPDATE waits out a write-back it left open (Postgres rolls it
    // back when the connection drops, or commits it if COMMIT was already sent) and rechecks.
    const orphans = await db.sql.begin((tx) =>
      tx<{ id: string; leasedUntil: Date }[]>`
        SELECT 'msg_' || id AS id, leased_until AS "leasedUntil" FROM webhook_delivery
        WHERE lease_owner = 'doomed' AND status = 'pending'
        FOR UPDATE`
    );
    assert.ok(orphans.length > 0, "the worker died holding claims");
    assert.ok(receiver.requests.length < 1200, "the worker died before the backlog was sent");
    for (const orphan of orphans) {
      assert.ok(orphan.leasedUntil.getTime() > killedAt, "the worker died during its leases");
    }

    await waitUntil(
      "every event to be delivered",
      async () => (await count(db, "outbox_event WHERE status <> 'delivered'")) === 0,
    );
    await terminate(workers.pop()!);

    const deliveries = await db.sql<{ id: string; path: string; n: number }[]>`
      SELECT 'msg_' || d.id AS id, substring(w.url FROM '/[a-z]+$') AS path,
             (e.payload ->> 'n')::int AS n
      FROM webhook_delivery d
      JOIN webhook_endpoint w ON w.id = d.endpoint_id
      JOIN outbox_event e ON e.id = d.event_id`;
    assert.equal(deliveries.length, 1200);
    assert.equal(await count(db, "webhook_delivery WHERE status = 'delivered'"), 1200);
    const requests = Map.groupBy(receiver.requests, (r) => r.headers.get("webhook-id"));

    // Every (event, endpoint) arrived at least once, at its endpoint with its event's data, and
    // every request belongs to a delivery.
    for (const delivery of deliveries) {
      const sent = requests.get(delivery.id) ?? [];
      assert.ok(sent.length >= 1, `delivery ${delivery.id} never arrived`);
      for (const request of sent) {
        assert.equal(request.path, delivery.path);
        assert.equal(JSON.parse(request.body).data.n, delivery.n);
      }
    }
    assert.equal(requests.size, deliveries.length, "every request carries a delivery's id");
    // Duplicates only with the same webhook-id: one id per (endpoint, event).
    const idsPerPair = Map.groupBy(
      receiver.requests,
      (r) => `${r.path} ${JSON.parse(r.body).data.n}`,
    );
    assert.equal(idsPerPair.size, 1200);
    for (const [pair, sent] of idsPerPair) {
      assert.equal(new Set(sent.map((r) => r.headers.get("webhook-id"))).size, 1, pair);
    }

    // Only the dead worker's unfinished claims arrive twice (or an attempt that failed and was
    // retried, on a loaded machine).
    const leaseOf = new Map(orphans.map((o) => [o.id, o.leasedUntil.getTime()]));
    const failed = new Set(
      (await db.sql<{ id: string }[]>`
        SELECT DISTINCT 'msg_' || delivery_id AS id FROM webhook_attempt WHERE error <> ''`)
        .map((r) => r.id),
    );
    for (const delivery of deliveries) {
      if (leaseOf.has(delivery.id) || failed.has(delivery.id)) continue;
      assert.equal(requests.get(delivery.id)?.length, 1, `delivery ${delivery.id} sent twice`);
    }

    // The survivor took each orphan over only once its lease had ended: the dead worker's send
    // (if it got that far) came before, the survivor's after. Receiver and worker clocks differ
    // by the drift of performance.now(), well under the slack.
    const slackMs = 250;
    for (const [id, leasedUntil] of leaseOf) {
      const arrivals = (requests.get(id) ?? []).map((r) => r.receivedAt);
      const early = arrivals.filter((at) => at < leasedUntil - slackMs);
      assert.ok(early.length <= 1, `${id} was sent ${early.length} times within its lease`);
      assert.ok(
        arrivals.some((at) => at >= leasedUntil - slackMs),
        `${id} was not sent again after its lease (arrivals ${
          arrivals.map((at) => at - leasedUntil)
        } ms from its end)`,
      );
    }
    const attempts = await db.sql<{ id: string; attemptedAt: Date }[]>`
      SELECT 'msg_' || delivery_id AS id, attempted_at AS "attemptedAt" FROM webhook_attempt
      WHERE 'msg_' || delivery_id = ANY (${[...leaseOf.keys()]}::text[])`;
    assert.ok(attempts.length >= orphans.length, "every orphan's retry was recorded");
    for (const attempt of attempts) {
      const early = leaseOf.get(attempt.id)! - attempt.attemptedAt.getTime();
      assert.ok(early <= 0, `${attempt.id} was attempted ${early} ms before its lease ended`);
    }
  } finally {
    for (const worker of workers) worker.kill("SIGKILL");
    for (const worker of workers) await worker.output();
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("SIGTERM stops a worker gracefully: in-flight sends finish, unfinished claims are released", async (t) => {
  const { testDb, db } = await createMigratedDatabase("webhook_sigterm");
  const receiver = startReceiver();
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: receiver.url });

    await t.step("sends that answer within the stop timeout are recorded", async () => {
      receiver.respond(async () => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        return new Response("ok");
      });
      await emitMany(db, 10);
      const worker = spawnWorker(testDb.url, { STOP_TIMEOUT_MS: "5000" });
      await receiver.waitFor(10, 30_000);
      const result = await terminate(worker);
      assert.equal(result.delivered, 10);
      assert.equal(await count(db, "webhook_delivery WHERE status = 'delivered'"), 10);
    });

    await t.step("sends still hanging at the stop timeout are aborted and released", async () => {
      receiver.requests.length = 0;
      receiver.respond((_req, { hang }) => hang());
      await emitMany(db, 50);
      const worker = spawnWorker(testDb.url, {
        STOP_TIMEOUT_MS: "300",
        DELIVERY_MAX_IN_FLIGHT: "16",
      });
      await receiver.waitFor(16, 30_000);
      const started = performance.now();
      const result = await terminate(worker);
      assert.ok(performance.now() - started < 10_000, "the worker stopped promptly");
      assert.equal(result.delivered, 0);
      assert.equal(await count(db, "webhook_delivery WHERE status = 'pending'"), 50);
      assert.equal(await count(db, "outbox_event WHERE status = 'pending'"), 50);
      assert.equal(
        await count(
          db,
          "webhook_delivery WHERE lease_owner IS NOT NULL OR leased_until IS NOT NULL",
        ),
        0,
        "every claim was released",
      );
      assert.equal(
        await count(db, "webhook_delivery WHERE attempts > 0 AND status = 'pending'"),
        0,
      );
    });
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});
