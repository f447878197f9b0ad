/**
 * Everything that runs in the background of `portal serve` (unless PORTAL_JOBS=off) and of
 * `portal worker`: the webhook delivery loop, woken by NOTIFY, and the scheduled jobs.
 */
import { hostname } from "node:os";
import type { UploadDeps } from "../uploads/upload_deps.ts";
import { startDeliveryLoop } from "../webhooks/delivery_worker.ts";
import { startScheduler } from "./scheduler.ts";
import { portalJobs } from "./portal_jobs.ts";

/** The running background work. */
export interface Background {
  /** Stops scheduling, lets in-flight deliveries finish for up to `timeoutMs`, releases claims. */
  stop(timeoutMs: number): Promise<void>;
}

/** Starts the delivery loop and the job schedule. */
export function startBackground(deps: UploadDeps): Background {
  const jobs = portalJobs(deps);
  const delivery = startDeliveryLoop(deps);
  const scheduler = startScheduler({ ...deps, owner: `${hostname()}:${Deno.pid}` }, jobs);
  deps.logger.info("background jobs started", { jobs: jobs.map((job) => job.name) });
  return {
    async stop(timeoutMs) {
      await Promise.all([scheduler.stop(), delivery.stop(timeoutMs)]);
    },
  };
}
