/**
 * The real `portal worker` and `portal serve` processes (main.ts as a subprocess) on a per-test
 * database: the worker answers /healthz and /metrics on PORTAL_WORKER_PORT, delivers an event a
 * transaction commits, and exits 0 on SIGTERM within the shutdown timeout; `serve` with
 * PORTAL_JOBS=off delivers nothing, and a worker on the same database picks the event up.
 */
import assert from "node:assert/strict";
import { PRIVATE_TARGETS_ALLOWED } from "./helpers/webhooks.ts";
import { Webhook } from "npm:standardwebhooks@1.1.1";
import type { Database } from "../src/db/db.ts";
import { emitEvent } from "../src/outbox/emit.ts";
import { addEndpoint } from "../src/webhooks/endpoint_service.ts";
import { freePort } from "./helpers/app.ts";
import { type PortalProcess, startPortal, waitForStatus } from "./helpers/cli.ts";
import { createMigratedDatabase, type TestDatabase } from "./helpers/db.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { deliveriesOf, eventState } from "./helpers/webhooks.ts";

const SHUTDOWN_TIMEOUT_SECONDS = 5;

/** How long an event that must not be delivered is watched. */
const QUIET_MS = 1_500;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Settings shared by the processes of one test. */
const METRICS_TOKEN = "worker-metrics-token-0123456789";
const METRICS_AUTH = { authorization: `Bearer ${METRICS_TOKEN}` };

function portalEnv(testDb: TestDatabase, dataDir: string): Record<string, string> {
  return {
    DATABASE_URL: testDb.url,
    PORTAL_DATA_DIR: dataDir,
    PORTAL_SECRET_KEY: "worker-mode-secret-key-0123456789abcdefgh",
    PORTAL_METRICS_TOKEN: METRICS_TOKEN,
    PORTAL_WEBHOOK_ALLOW_PRIVATE: "true",
    PORTAL_SHUTDOWN_TIMEOUT_SECONDS: String(SHUTDOWN_TIMEOUT_SECONDS),
    PORTAL_DB_POOL_SIZE: "4",
  };
}

/** Starts `portal worker` and waits for its /healthz. */
async function startWorker(env: Record<string, string>): Promise<{
  worker: PortalProcess;
  base: string;
}> {
  const port = freePort();
  const worker = startPortal(["worker"], { env: { ...env, PORTAL_WORKER_PORT: String(port) } });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForStatus(`${base}/healthz`, { timeoutMs: 60_000 });
  } catch (error) {
    await worker.stop("SIGKILL");
    throw new Error(`${(error as Error).message}\n${worker.stderrLines.join("\n")}`);
  }
  return { worker, base };
}

/** Emits one event in a transaction of its own, as a state change would; returns its id. */
async function emitStored(db: Database, payload: Record<string, unknown>): Promise<string> {
  return await db.sql.begin(async (tx) => {
    const emitted = await emitEvent(tx, {
      aggregateType: "UploadFile",
      aggregateId: crypto.randomUUID(),
      eventType: "file.stored",
      payload,
    });
    return emitted.id!;
  });
}

async function waitForStatusOf(db: Database, eventId: string, status: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await eventState(db, eventId)).status !== status) {
    if (Date.now() > deadline) throw new Error(`event "${eventId}" never became ${status}`);
    await delay(50);
  }
}

/** Sends SIGTERM; asserts exit code 0 within the shutdown timeout (plus process teardown). */
async function stopGracefully(portal: PortalProcess): Promise<void> {
  const started = performance.now();
  const status = await portal.stop("SIGTERM");
  const elapsed = performance.now() - started;
  assert.equal(status.code, 0, portal.stderrLines.join("\n"));
  assert.ok(
    elapsed < SHUTDOWN_TIMEOUT_SECONDS * 1000 + 2_000,
    `exited ${Math.round(elapsed)} ms after SIGTERM`,
  );
  assert.ok(
    portal.stdoutLines.some((line) => line.includes('"msg":"stopped"')),
    "it logs that it stopped",
  );
}

Deno.test("portal worker serves /healthz and /metrics, delivers a committed event, exits 0 on SIGTERM", async (t) => {
  const { testDb, db } = await createMigratedDatabase("worker_mode");
  const dataDir = await Deno.makeTempDir({ prefix: "portal-worker-" });
  const receiver = startReceiver();
  let worker: PortalProcess | null = null;
  try {
    const endpoint = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: receiver.url,
    });
    const started = await startWorker(portalEnv(testDb, dataDir));
    worker = started.worker;
    const { base } = started;

    await t.step("/healthz answers 200", async () => {
      const response = await fetch(`${base}/healthz`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      assert.deepEqual(await response.json(), { status: "ok" });
    });

    await t.step("/metrics lists the job and delivery series from the start", async () => {
      const anonymous = await fetch(`${base}/metrics`);
      assert.equal(anonymous.status, 401, "not without PORTAL_METRICS_TOKEN");
      await anonymous.body?.cancel();
      const response = await fetch(`${base}/metrics`, { headers: METRICS_AUTH });
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      const text = await response.text();
      assert.match(text, /^# TYPE portal_job_runs_total counter$/m);
      for (const job of ["delivery-sweep", "expiry-notices", "expired-file-cleanup"]) {
        assert.match(
          text,
          new RegExp(`^portal_job_runs_total\\{job="${job}",outcome="ran"\\} \\d+$`, "m"),
          `a series for ${job}`,
        );
      }
      assert.match(text, /^portal_webhook_deliveries_total\{outcome="delivered"\} 0$/m);
      assert.match(text, /^portal_outbox_pending_events 0$/m);
    });

    await t.step("an event committed by another process is delivered, signed", async () => {
      const eventId = await emitStored(db, { file_id: "f-worker", size_bytes: 3 });
      await receiver.waitFor(1, 10_000);
      const request = receiver.requests[0]!;
      const verified = new Webhook(endpoint.secret).verify(
        request.body,
        Object.fromEntries(request.headers.entries()),
      ) as { type: string; data: unknown };
      assert.equal(verified.type, "file.stored");
      assert.deepEqual(verified.data, { file_id: "f-worker", size_bytes: 3 });
      await waitForStatusOf(db, eventId, "delivered");
      const [delivery] = await deliveriesOf(db, eventId);
      assert.equal(delivery?.status, "delivered");
      assert.equal(request.headers.get("webhook-id"), `msg_${delivery.id}`);
      const metrics = await (await fetch(`${base}/metrics`, { headers: METRICS_AUTH })).text();
      assert.match(metrics, /^portal_webhook_deliveries_total\{outcome="delivered"\} 1$/m);
    });

    await t.step("SIGTERM: exit code 0 within the shutdown timeout", async () => {
      await stopGracefully(worker!);
      worker = null;
      assert.equal(receiver.requests.length, 1, "nothing was sent twice");
      const leased = await db.sql`SELECT id FROM webhook_delivery WHERE lease_owner IS NOT NULL`;
      assert.equal(leased.length, 0, "no claim is left behind");
    });
  } finally {
    await worker?.stop("SIGKILL");
    await receiver.close();
    await testDb.drop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("portal serve with PORTAL_JOBS=off delivers nothing; a worker on the same database does", async (t) => {
  const { testDb, db } = await createMigratedDatabase("worker_mode_jobs_off");
  const dataDir = await Deno.makeTempDir({ prefix: "portal-jobs-off-" });
  const receiver = startReceiver();
  const env = portalEnv(testDb, dataDir);
  const port = freePort();
  let serve: PortalProcess | null = startPortal(["serve"], {
    env: { ...env, PORTAL_PORT: String(port), PORTAL_JOBS: "off" },
  });
  let worker: PortalProcess | null = null;
  try {
    await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, { url: receiver.url });
    await waitForStatus(`http://127.0.0.1:${port}/readyz`, { timeoutMs: 60_000 });

    let eventId = "";
    await t.step("serve alone: the event stays pending and nothing is sent", async () => {
      eventId = await emitStored(db, { file_id: "f-serve" });
      await delay(QUIET_MS);
      assert.equal(receiver.requests.length, 0);
      const event = await eventState(db, eventId);
      assert.equal(event.status, "pending");
      assert.equal(event.attempts, 0);
      assert.equal((await deliveriesOf(db, eventId)).length, 0, "not even fanned out");
      assert.ok(
        !serve!.stdoutLines.some((line) => line.includes('"msg":"background jobs started"')),
        "serve started no background jobs",
      );
    });

    await t.step("a worker starting on the same database delivers it", async () => {
      worker = (await startWorker(env)).worker;
      await receiver.waitFor(1, 10_000);
      assert.equal(JSON.parse(receiver.requests[0]!.body).data.file_id, "f-serve");
      await waitForStatusOf(db, eventId, "delivered");
    });

    await t.step("both exit 0 on SIGTERM", async () => {
      await stopGracefully(worker!);
      worker = null;
      await stopGracefully(serve!);
      serve = null;
      assert.equal(receiver.requests.length, 1);
    });
  } finally {
    await (worker as PortalProcess | null)?.stop("SIGKILL");
    await serve?.stop("SIGKILL");
    await receiver.close();
    await testDb.drop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
