/**
 * Wires croner around Portal's singleton jobs. Every replica schedules every job; on each tick
 * the job runs in one replica only: a session advisory lock keeps two runs from overlapping,
 * and a `job_run` row unique on (job, tick) keeps a replica that comes late (after the first
 * finished and released the lock) from running the same tick again.
 */
import { Cron } from "croner";
import { type Database, LOCK_BUSY, lockKey } from "../db/db.ts";
import type { Logger } from "../log/logger.ts";
import type { Counter, Metrics } from "../metrics/metrics.ts";

/** A job: a name, a croner pattern, and a plain function the tests call directly. */
export interface JobDefinition {
  name: string;
  /** Croner pattern; six fields allow seconds (tests), five are minutes. */
  schedule: string;
  run(): Promise<Record<string, number> | void>;
}

/** What the scheduler needs. */
export interface SchedulerDeps {
  db: Database;
  logger: Logger;
  metrics: Metrics;
  /** Identifies this process in `job_run.owner` (host:pid). */
  owner: string;
}

/** Outcome of one tick in this process. */
export type TickOutcome = "ran" | "failed" | "busy" | "already_ran";

const TICK_OUTCOMES: readonly TickOutcome[] = ["ran", "failed", "busy", "already_ran"];

function jobRunsCounter(metrics: Metrics): Counter {
  return metrics.counter("portal_job_runs_total", "Job ticks by job and outcome");
}

/**
 * Runs `job` for `tick` unless another process holds its lock or already ran that tick.
 *
 * @example
 * await runJobTick(deps, job, new Date("2026-11-23T10:00:00Z"));
 */
export async function runJobTick(
  deps: SchedulerDeps,
  job: JobDefinition,
  tick: Date,
): Promise<TickOutcome> {
  const outcome = await deps.db.tryWithLock(lockKey(`portal:job:${job.name}`), async () => {
    const claimed = await deps.db.sql<{ id: string }[]>`
      INSERT INTO job_run (job_name, tick, owner) VALUES (${job.name}, ${tick}, ${deps.owner})
      ON CONFLICT (job_name, tick) DO NOTHING
      RETURNING id`;
    const runId = claimed[0]?.id;
    if (runId === undefined) return "already_ran" as const;
    const started = performance.now();
    try {
      const result = await job.run();
      await deps.db.sql`
        UPDATE job_run SET status = 'succeeded', finished_at = now(), updated_at = now()
        WHERE id = ${runId}`;
      deps.logger.info("job ran", {
        job: job.name,
        tick: tick.toISOString(),
        duration_ms: Math.round(performance.now() - started),
        ...(result ?? {}),
      });
      return "ran" as const;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await deps.db.sql`
        UPDATE job_run SET status = 'failed', error = ${message.slice(0, 2000)},
                           finished_at = now(), updated_at = now()
        WHERE id = ${runId}`.catch(() => {});
      deps.logger.error("job failed", { job: job.name, tick: tick.toISOString(), error });
      return "failed" as const;
    }
  });
  const result: TickOutcome = outcome === LOCK_BUSY ? "busy" : outcome;
  jobRunsCounter(deps.metrics).inc({ job: job.name, outcome: result });
  return result;
}

/** A running schedule. */
export interface Scheduler {
  /**
   * Runs the tick of job `name` now, as its schedule would (same lock, same `job_run` row,
   * named after the slot nearest now, see tickName); `stop` waits for it like a scheduled tick.
   */
  runNow(name: string): Promise<TickOutcome>;
  /**
   * Stops scheduling and waits up to `timeoutMs` for running ticks; a tick still running then
   * is logged and left to end with the process (Postgres releases its lock with the session).
   */
  stop(timeoutMs: number): Promise<void>;
}

/**
 * Starts every job on its schedule in this process. Each job's `portal_job_runs_total` series
 * exist from the start, at zero, so a fresh process's /metrics already lists them.
 *
 * @example
 * const scheduler = startScheduler({ db, logger, metrics, owner: "host:42" }, portalJobs(deps));
 * // on SIGTERM:
 * await scheduler.stop(config.shutdownTimeoutSeconds * 1000);
 */
export function startScheduler(deps: SchedulerDeps, jobs: JobDefinition[]): Scheduler {
  const runs = jobRunsCounter(deps.metrics);
  for (const job of jobs) {
    for (const outcome of TICK_OUTCOMES) runs.init({ job: job.name, outcome });
  }
  const running = new Map<Promise<TickOutcome | null>, string>();
  const tickNow = async (job: JobDefinition, at: Date): Promise<TickOutcome | null> => {
    const tick = tickName(job.schedule, at);
    const pending = runJobTick(deps, job, tick).catch((error) => {
      deps.logger.error("job tick failed", { job: job.name, error });
      return null;
    });
    running.set(pending, job.name);
    try {
      return await pending;
    } finally {
      running.delete(pending);
    }
  };
  const crons = jobs.map((job) =>
    new Cron(
      job.schedule,
      { name: job.name, protect: true, timezone: "UTC" },
      async (self: Cron) => {
        await tickNow(job, self.currentRun() ?? new Date());
      },
    )
  );
  let stopped = false;
  return {
    async runNow(name) {
      const job = jobs.find((candidate) => candidate.name === name);
      if (job === undefined) throw new Error(`Cannot run job "${name}": no such job`);
      if (stopped) throw new Error(`Cannot run job "${name}": the scheduler is stopped`);
      return (await tickNow(job, new Date())) ?? "failed";
    },
    async stop(timeoutMs) {
      stopped = true;
      for (const cron of crons) cron.stop();
      if (running.size === 0) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeoutMs);
      });
      const outcome = await Promise.race([Promise.allSettled([...running.keys()]), timedOut]);
      clearTimeout(timer);
      if (outcome === "timeout") {
        deps.logger.warn("Cannot finish jobs before shutdown: still running after the timeout", {
          jobs: [...new Set(running.values())],
          timeout_ms: timeoutMs,
        });
      }
    },
  };
}

/**
 * The scheduled slot a firing belongs to: its time rounded down to the pattern's resolution (the
 * minute for five-field patterns, the second for six-field ones), after allowing for a timer
 * that fires a little early. Every replica names the slot alike even when its timer fires late
 * (a busy event loop: up to the resolution less the allowance), so the `job_run` row keeps the
 * slot to one run.
 *
 * @example
 * tickName("0 * * * *", new Date("2026-01-01T10:00:01.700Z")); // 2026-01-01T10:00:00.000Z
 */
export function tickName(schedule: string, at: Date): Date {
  const seconds = schedule.trim().split(/\s+/).length >= 6;
  const unit = seconds ? 1000 : 60_000;
  // Timers fire at or a hair after their time; the allowance only absorbs clock rounding, and
  // is kept small so a late firing (up to the resolution less it) keeps its own slot.
  const early = seconds ? 20 : 1_000;
  return new Date(Math.floor((at.getTime() + early) / unit) * unit);
}
