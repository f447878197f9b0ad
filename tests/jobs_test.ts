import assert from "node:assert/strict";
import { createMigratedDatabase } from "./helpers/db.ts";
import { type JobDefinition, runJobTick, startScheduler, tickName } from "../src/jobs/scheduler.ts";
import { housekeeping } from "../src/jobs/housekeeping.ts";
import { createLogger, silentLogger } from "../src/log/logger.ts";
import { Metrics } from "../src/metrics/metrics.ts";

const FIXTURE = new URL("./fixtures/jobs_process.ts", import.meta.url).pathname;

Deno.test("startScheduler() runs a singleton job once per tick across three processes", async () => {
  const { testDb, db } = await createMigratedDatabase("jobs_replicas");
  try {
    await db
      .sql`CREATE TABLE probe_run (id serial PRIMARY KEY, pid int NOT NULL, at timestamptz NOT NULL DEFAULT now())`;
    const children = [0, 1, 2].map(() =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-q", "-A", FIXTURE],
        env: { DATABASE_URL: testDb.url, RUN_MS: "4500", JOB_MS: "300" },
        stdout: "piped",
        stderr: "piped",
      }).output()
    );
    const results = await Promise.all(children);
    for (const result of results) {
      assert.ok(result.success, new TextDecoder().decode(result.stderr));
    }
    const ticks = await db.sql<{ tick: Date; owner: string; status: string }[]>`
      SELECT tick, owner, status FROM job_run WHERE job_name = 'probe' ORDER BY tick`;
    const [probe] = await db.sql<{ count: number }[]>`SELECT count(*)::int AS count FROM probe_run`;
    const count = probe?.count;
    assert.ok(ticks.length >= 3, `expected at least 3 ticks in 4.5 s, got ${ticks.length}`);
    // Every execution belongs to exactly one tick: no tick ran twice.
    assert.equal(count, ticks.length);
    assert.ok(ticks.every((t) => t.status === "succeeded"));
    // Ticks are distinct seconds.
    assert.equal(new Set(ticks.map((t) => t.tick.getTime())).size, ticks.length);
  } finally {
    await testDb.drop();
  }
});

Deno.test("runJobTick() skips a tick another process already ran, and records failures", async (t) => {
  const { testDb, db } = await createMigratedDatabase("jobs_tick");
  const metrics = new Metrics();
  const deps = { db, logger: silentLogger, metrics, owner: "test" };
  try {
    let runs = 0;
    const job: JobDefinition = {
      name: "counting",
      schedule: "0 * * * *",
      run: () => {
        runs++;
        return Promise.resolve({ done: 1 });
      },
    };
    const tick = new Date("2026-11-23T10:00:00Z");
    await t.step("the first run of a tick runs", async () => {
      assert.equal(await runJobTick(deps, job, tick), "ran");
      assert.equal(runs, 1);
    });
    await t.step("the same tick again is skipped", async () => {
      assert.equal(await runJobTick(deps, job, tick), "already_ran");
      assert.equal(runs, 1);
    });
    await t.step("the next tick runs", async () => {
      assert.equal(await runJobTick(deps, job, new Date("2026-11-23T11:00:00Z")), "ran");
      assert.equal(runs, 2);
    });
    await t.step("a job that throws is recorded as failed and counted", async () => {
      const failing: JobDefinition = {
        name: "failing",
        schedule: "0 * * * *",
        run: () => Promise.reject(new Error("storage down")),
      };
      assert.equal(await runJobTick(deps, failing, tick), "failed");
      const [row] = await db.sql<{ status: string; error: string }[]>`
        SELECT status, error FROM job_run WHERE job_name = 'failing'`;
      assert.equal(row?.status, "failed");
      assert.equal(row?.error, "storage down");
      assert.equal(
        metrics.counter("portal_job_runs_total", "").get({ job: "failing", outcome: "failed" }),
        1,
      );
    });
    await t.step("a tick while another holds the job's lock is busy", async () => {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const slow: JobDefinition = { name: "slow", schedule: "0 * * * *", run: () => held };
      const first = runJobTick(deps, slow, tick);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(await runJobTick(deps, slow, new Date("2026-11-23T12:00:00Z")), "busy");
      release();
      assert.equal(await first, "ran");
    });
  } finally {
    await testDb.drop();
  }
});

Deno.test("startScheduler() lists every job's series at zero and stop() waits no longer than its timeout", async (t) => {
  const { testDb, db } = await createMigratedDatabase("jobs_stop");
  const metrics = new Metrics();
  const lines: string[] = [];
  const logger = createLogger({ level: "warn", write: (line) => lines.push(line) });
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  // Patterns that do not fire during the test: ticks come from runNow().
  const jobs: JobDefinition[] = [
    { name: "stuck", schedule: "0 0 1 1 *", run: () => held },
    { name: "quick", schedule: "0 0 1 1 *", run: () => Promise.resolve() },
  ];
  const scheduler = startScheduler({ db, logger, metrics, owner: "test" }, jobs);
  try {
    await t.step("a fresh scheduler's /metrics has every job and outcome at 0", async () => {
      const text = await metrics.render();
      for (const job of ["stuck", "quick"]) {
        for (const outcome of ["ran", "failed", "busy", "already_ran"]) {
          assert.match(
            text,
            new RegExp(`^portal_job_runs_total\\{job="${job}",outcome="${outcome}"\\} 0$`, "m"),
          );
        }
      }
    });

    await t.step("runNow() runs a tick under the job's lock", async () => {
      assert.equal(await scheduler.runNow("quick"), "ran");
      assert.equal(
        metrics.counter("portal_job_runs_total", "").get({ job: "quick", outcome: "ran" }),
        1,
      );
      await assert.rejects(scheduler.runNow("missing"), /Cannot run job "missing": no such job/);
    });

    await t.step(
      "stop() gives up on a stuck tick after the timeout and names the job",
      async () => {
        const stuck = scheduler.runNow("stuck");
        await new Promise((resolve) => setTimeout(resolve, 100));
        const started = performance.now();
        await scheduler.stop(300);
        const elapsed = performance.now() - started;
        assert.ok(elapsed >= 290 && elapsed < 1000, `stop took ${Math.round(elapsed)} ms`);
        const warning = lines.map((line) => JSON.parse(line)).find((record) =>
          record.msg.startsWith("Cannot finish jobs before shutdown")
        );
        assert.deepEqual(warning?.jobs, ["stuck"]);
        assert.equal(warning?.timeout_ms, 300);
        release();
        assert.equal(await stuck, "ran");
      },
    );

    await t.step("a stopped scheduler runs nothing more", async () => {
      await assert.rejects(scheduler.runNow("quick"), /the scheduler is stopped/);
    });
  } finally {
    release();
    await scheduler.stop(1000);
    await testDb.drop();
  }
});

Deno.test("housekeeping() deletes expired sessions and old job runs only", async () => {
  const { testDb, db } = await createMigratedDatabase("jobs_housekeeping");
  try {
    const userId = crypto.randomUUID();
    await db
      .sql`INSERT INTO users (id, email, password_hash) VALUES (${userId}, 'h@example.com', 'x')`;
    await db.sql`INSERT INTO sessions (id, user_id, csrf_token, expires_at)
      VALUES ('old', ${userId}, 't', now() - interval '1 hour'), ('live', ${userId}, 't', now() + interval '1 hour')`;
    await db.sql`INSERT INTO job_run (job_name, tick, owner, created_at)
      VALUES ('a', now() - interval '8 days', 'x', now() - interval '8 days'), ('a', now(), 'x', now())`;
    const result = await housekeeping({ db });
    assert.deepEqual(result, { sessions: 1, loginAttempts: 0, jobRuns: 1 });
    const sessions = await db.sql`SELECT id FROM sessions`;
    assert.deepEqual(sessions.map((s) => s.id), ["live"]);
  } finally {
    await testDb.drop();
  }
});

Deno.test("tickName() names a late or early firing after its scheduled slot", () => {
  const at = (iso: string) => new Date(iso).toISOString();
  // A replica whose event loop stalled 1.7 s still names the 10:00 slot, like the one on time.
  assert.equal(
    tickName("0 * * * *", new Date("2026-01-01T10:00:01.700Z")).toISOString(),
    at("2026-01-01T10:00:00Z"),
  );
  assert.equal(
    tickName("0 * * * *", new Date("2026-01-01T10:00:00.004Z")).toISOString(),
    at("2026-01-01T10:00:00Z"),
  );
  // A timer firing a few ms early names the slot it was meant for.
  assert.equal(
    tickName("*/5 * * * *", new Date("2026-01-01T10:04:59.990Z")).toISOString(),
    at("2026-01-01T10:05:00Z"),
  );
  // Six-field (seconds) patterns resolve to the second.
  assert.equal(
    tickName("* * * * * *", new Date("2026-01-01T10:00:03.600Z")).toISOString(),
    at("2026-01-01T10:00:03Z"),
  );
  // A minute pattern firing 50 s late (a stalled replica) still names its own slot.
  assert.equal(
    tickName("*/5 * * * *", new Date("2026-01-01T10:05:50Z")).toISOString(),
    at("2026-01-01T10:05:00Z"),
  );
});
