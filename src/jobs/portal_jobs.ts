/**
 * Portal's scheduled jobs (SPEC §5 Jobs): the table of names, schedules and the plain functions
 * they call. Each runs in one replica per tick (see scheduler.ts).
 */
import type { UploadDeps } from "../uploads/upload_deps.ts";
import { deleteExpiredFiles, notifyExpiringFiles } from "../uploads/upload_jobs.ts";
import { deliverDueOnce } from "../webhooks/delivery_worker.ts";
import { deleteOldEvents } from "../webhooks/event_service.ts";
import { housekeeping } from "./housekeeping.ts";
import type { JobDefinition } from "./scheduler.ts";

/** Builds the job table from the settings. */
export function portalJobs(deps: UploadDeps): JobDefinition[] {
  const { config } = deps;
  return [
    {
      // The backstop to NOTIFY: catches events whose wake-up was lost (a worker restarting).
      name: "delivery-sweep",
      schedule: `*/${config.outboxSweepIntervalMinutes} * * * *`,
      run: async () => ({ ...(await deliverDueOnce(deps)) }),
    },
    {
      name: "expiry-notices",
      schedule: "0 * * * *",
      run: async () => ({ ...(await notifyExpiringFiles(deps)) }),
    },
    {
      name: "expired-file-cleanup",
      schedule: `0 */${config.cleanupIntervalHours} * * *`,
      run: async () => ({ ...(await deleteExpiredFiles(deps, { batchSize: 1000 })) }),
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
