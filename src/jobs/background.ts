/**
 * Everything that runs in the background of `portal serve` (unless PORTAL_JOBS=off) and of
 * `portal worker`: the webhook delivery loop, woken by NOTIFY, and the scheduled jobs.
 */
import { hostname } from "node:os";
import type { AppDeps } from "../app_deps.ts";
import { startDeliveryLoop } from "../webhooks/delivery_loop.ts";
import { startScheduler, type TickOutcome } from "./scheduler.ts";
import { portalJobs } from "./portal_jobs.ts";

/** The running background work. */
export interface Background {
  /** Runs one tick of the scheduled job `name` now (see `Scheduler.runNow`). */
  runJob(name: string): Promise<TickOutcome>;
  /**
   * Stops scheduling and claiming, lets in-flight deliveries and running job ticks finish for up
   * to `timeoutMs`, then aborts the sends and releases their claims.
   */
  stop(timeoutMs: number): Promise<void>;
}

/** Starts the delivery loop and the job schedule. */
export function startBackground(deps: AppDeps): Background {
  const delivery = startDeliveryLoop(deps);
  const jobs = portalJobs(deps, delivery);
  const scheduler = startScheduler({ ...deps, owner: `${hostname()}:${Deno.pid}` }, jobs);
  deps.logger.info("background jobs started", { jobs: jobs.map((job) => job.name) });
  return {
    runJob: (name) => scheduler.runNow(name),
    async stop(timeoutMs) {
      await Promise.all([scheduler.stop(timeoutMs), delivery.stop(timeoutMs)]);
    },
  };
}
