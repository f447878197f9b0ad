/** Housekeeping: expired sessions, old login attempts and old job_run rows. */
import type { Database } from "../db/db.ts";
import { type Clock, currentTime } from "../app_deps.ts";
import { deleteExpiredSessions } from "../auth/sessions_repo.ts";
import { deleteOldLoginAttempts } from "../auth/login_attempts_repo.ts";

/** How long job_run rows and login attempts are kept. */
const KEEP_DAYS = 7;

/** Deletes expired sessions, login attempts and job runs older than a week. */
export async function housekeeping(
  deps: { db: Database; clock?: Clock },
): Promise<{ sessions: number; loginAttempts: number; jobRuns: number }> {
  const before = new Date(currentTime(deps).getTime() - KEEP_DAYS * 86_400_000);
  const sessions = await deleteExpiredSessions(deps.db.sql);
  const loginAttempts = await deleteOldLoginAttempts(deps.db.sql, before);
  const jobRuns = await deps.db.sql`DELETE FROM job_run WHERE created_at < ${before} RETURNING id`;
  return { sessions, loginAttempts, jobRuns: jobRuns.length };
}
