import assert from "node:assert/strict";
import { createMigratedDatabase } from "./helpers/db.ts";
import { type JobDefinition, runJobTick, startScheduler, tickName } from "../src/jobs/scheduler.ts";
import { housekeeping } from "../src/jobs/housekeeping.ts";
import { createLogger, silentLogger } from "../src/log/logger.ts";
import { Metrics } from "../src/metrics/metrics.ts";

const FIXTURE = new URL("./fixtures/jobs_process.ts", import.meta.url).pathname;

/** One replica's tick outcomes for the probe job, as tests/fixtures/jobs_process.ts prints them. */
interface ReplicaOutcomes {
  ran: number;
  failed: number;
  busy: number;
  already_ran: number;
}

/** The lines of a child's output as they arrive. */
async function* lines(stream: ReadableStream<Uint8Array<ArrayBuffer>>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n")) {
      yield buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
    }
  }
  if (buffered !== "") yield buffered;
}

/**
 * Runs `count` replicas of the jobs fixture over one common window of `runMs`: each is started,
 * and once all have opened their pools they are told the same start time (`startAt`), so a slow
 * start-up cannot widen the window the ticks are counted over.
 */
async function runReplicas(
  databaseUrl: string,
  options: { count: number; runMs: number; jobMs: number },
): Promise<{ startAt: number; outcomes: ReplicaOutcomes[] }> {
  const children = Array.from({ length: options.count }, () =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-q",
        "-A",
        `--lock=${new URL("./deno.lock", import.meta.url).pathname}`,
        FIXTURE,
      ],
      env: {
        DATABASE_URL: databaseUrl,
        RUN_MS: String(options.runMs),
        JOB_MS: String(options.jobMs),
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn());
  const stderr = children.map((child) => new Response(child.stderr).text());
  const stdout = children.map((child) => lines(child.stdout));
  try {
    for (const [i, out] of stdout.entries()) {
      const first = await out.next();
      if (first.value !== "ready") {
        throw new Error(`Cannot start replica ${i}: ${await stderr[i]}`);
      }
    }
    // 300 ms into a second, so the window's edges never race a tick.
    const startAt = Math.ceil((Date.now() + 300) / 1000) * 1000 + 300;
    for (const child of children) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(`${startAt}\n`));
      await writer.close();
    }
    const outcomes: ReplicaOutcomes[] = [];
    for (const [i, out] of stdout.entries()) {
      let last = "";
      for await (const line of out) last = line;
      const status = await children[i]!.status;
      if (!status.success) throw new Error(`Replica ${i} failed: ${await stderr[i]}`);
      outcomes.push(JSON.parse(last));
    }
    return { startAt, outcomes };
  } finally {
    for (const [i, child] of children.entries()) {
      // After an error above, replicas still waiting or running are stopped.
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await child.stdin.close().catch(() => {});
      for await (const _ of stdout[i]!) { /* drain */ }
      await child.status;
      await stderr[i];
    }
  }
}

Deno.test("startScheduler() runs a singleton job once per tick across three processes", async () => {
  const { testDb, db } = await createMigratedDatabase("jobs_replicas");
  const runMs = 4500;
  try {
    await db
      .sql`CREATE TABLE probe_run (id serial PRIMARY KEY, pid int NOT NULL, at timestamptz NOT NULL DEFAULT now())`;
    // The probe takes 300 ms, so a replica firing the same tick meanwhile finds the lock held.
    const { startAt, outcomes } = await runReplicas(testDb.url, {
      count: 3,
      runMs,
      jobMs: 300,
    });
    const ticks = await db.sql<{ tick: Date; status: string }[]>`
      SELECT tick, status FROM job_run WHERE job_name = 'probe' ORDER BY tick`;
    const runs = await db.sql<
      { pid: number; at: Date }[]
    >`SELECT pid, at FROM probe_run ORDER BY at`;
    const detail = JSON.stringify({
      startAt: new Date(startAt),
      ticks: ticks.map((t) => t.tick),
      runs: runs.map((r) => [r.pid, r.at]),
      outcomes,
    });

    // The fixture's pattern fires every second: each tick is named after its whole second.
    for (const { tick } of ticks) {
      assert.equal(tick.getTime() % 1000, 0, `tick ${tick.toISOString()} is not a whole second`);
    }
    assert.ok(ticks.every((t) => t.status === "succeeded"), detail);
    // Once per tick: no wall-clock second holds two executions of the probe.
    const perSecond = Object.groupBy(runs, (r) => String(Math.floor(r.at.getTime() / 1000)));
    for (const [second, inSecond] of Object.entries(perSecond)) {
      assert.equal(
        inSecond?.length,
        1,
        `${inSecond?.length} executions in second ${
          new Date(Number(second) * 1000).toISOString()
        }: ${detail}`,
      );
    }
    // A window of 4.5 s holds 4 or 5 whole seconds; it ran on (nearly) every one of them.
    assert.ok(runs.length <= runMs / 1000 + 1, `${runs.length} executions: ${detail}`);
    assert.ok(runs.length >= runMs / 1000 - 2, `${runs.length} executions: ${detail}`);
    assert.equal(runs.length, ticks.length, detail);

    // Every replica fired (nearly) every tick; the one that ran it is the only one that did, the
    // other two were refused (lock held or tick already run), not idle.
    const ran = outcomes.reduce((sum, o) => sum + o.ran, 0);
    assert.equal(ran, runs.length, detail);
    for (const o of outcomes) {
      assert.equal(o.failed, 0, detail);
      assert.ok(o.ran + o.busy + o.already_ran >= runs.length - 1, `a replica sat out: ${detail}`);
    }
    const refused = outcomes.reduce((sum, o) => sum + o.busy + o.already_ran, 0);
    assert.ok(refused >= 2 * runs.length - 3, `only ${refused} refusals: ${detail}`);
    // The winner holds the advisory lock for the 300 ms the probe runs, so replicas firing with
    // it are refused as busy (already_ran is for one more than 300 ms late).
    const busy = outcomes.reduce((sum, o) => sum + o.busy, 0);
    assert.ok(busy > 0, `no replica was refused by the job's lock: ${detail}`);
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
