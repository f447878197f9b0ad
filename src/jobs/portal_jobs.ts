/**
 * Portal's scheduled jobs (SPEC §5 Jobs): the table of names, schedules and the plain functions
 * they call. Each runs in one replica per tick (see scheduler.ts).
 */
import type { AppDeps } from "../app_deps.ts";
import {
  deleteExpiredFiles,
  deleteIncompleteUploads,
  notifyExpiringFiles,
} from "../uploads/upload_jobs.ts";
import type { DeliveryLoop } from "../webhooks/delivery_loop.ts";
import { deleteOldEvents } from "../webhooks/event_service.ts";
import { housekeeping } from "./housekeeping.ts";
import type { JobDefinition } from "./scheduler.ts";

/** Builds the job table from the settings; the sweep drives this process's `delivery` loop. */
export function portalJobs(
  deps: AppDeps,
  delivery: Pick<DeliveryLoop, "sweep">,
): JobDefinition[] {
  const { config } = deps;
  return [
    {
      // The backstop to NOTIFY: catches events whose wake-up was lost (a worker restarting). It
      // runs on the process's own delivery loop, not an engine of its own, so a SIGTERM stops
      // its claims and releases them on the loop's one stop path.
      name: "delivery-sweep",
      schedule: `*/${config.outboxSweepIntervalMinutes} * * * *`,
      run: async () => ({ ...(await delivery.sweep()) }),
    },
    {
      name: "expiry-notices",
      schedule: "0 * * * *",
      run: async () => ({ ...(await notifyExpiringFiles(deps)) }),
    },
    {
      name: "expired-file-cleanup",
      schedule: `0 */${config.cleanupIntervalHours} * * *`,
      run: async () => ({
        ...(await deleteExpiredFiles(deps, { batchSize: 1000 })),
        incomplete: await deleteIncompleteUploads(deps),
      }),
    },
    {
      name: "outbox-retention",
      schedule: "30 * * * *",
      run: async () => ({ ...(await deleteOldEvents(deps)) }),
    },
    {
      name: "housekeeping",
      schedule: "45 * * * *",
      run: async () => ({ ...(await housekeeping(deps)) }),
    },
  ];
}
