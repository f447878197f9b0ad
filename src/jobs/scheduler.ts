/**
 * Wires croner around Portal's singleton jobs. Every replica schedules every job; on each tick
 * the job runs in one replica only: a session advisory lock keeps two runs from overlapping,
 * and a `job_run` row unique on (job, tick) keeps a replica that comes late (after the first
 * finished and released the lock) from running the same tick again.
 */
import { Cron } from "croner";
import { type Database, LOCK_BUSY, lockKey } from "../db/db.ts";
import type { Logger } from "../log/logger.ts";
import type { Metrics } from "../metrics/metrics.ts";

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
  const runs = deps.metrics.counter("portal_job_runs_total", "Job ticks by job and outcome");
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
  runs.inc({ job: job.name, outcome: result });
  return result;
}

/** A running schedule. */
export interface Scheduler {
  /** Stops scheduling and waits for running ticks to finish. */
  stop(): Promise<void>;
}

/** Starts every job on its schedule in this process. */
export function startScheduler(deps: SchedulerDeps, jobs: JobDefinition[]): Scheduler {
  const running = new Set<Promise<unknown>>();
  const crons = jobs.map((job) =>
    new Cron(
      job.schedule,
      { name: job.name, protect: true, timezone: "UTC" },
      async (self: Cron) => {
        // The scheduled time, the same in every replica, names the tick (to the second).
        const scheduled = self.currentRun() ?? new Date();
        const tick = new Date(Math.floor(scheduled.getTime() / 1000) * 1000);
        const pending = runJobTick(deps, job, tick).catch((error) => {
          deps.logger.error("job tick failed", { job: job.name, error });
        });
        running.add(pending);
        try {
          await pending;
        } finally {
          running.delete(pending);
        }
      },
    )
  );
  return {
    async stop() {
      for (const cron of crons) cron.stop();
      await Promise.allSettled([...running]);
    },
  };
}
