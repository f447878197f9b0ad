/** SQL for login attempts, the shared memory of the login rate limit across replicas. */
import type { Queryable } from "../db/db.ts";

/** Records one login attempt. */
export async function recordLoginAttempt(
  sql: Queryable,
  input: { email: string; address: string; succeeded: boolean },
): Promise<void> {
  await sql`
    INSERT INTO login_attempt (email, address, succeeded)
    VALUES (${input.email}, ${input.address}, ${input.succeeded})`;
}

/** Failed attempts since `since` for an email and for an address. */
export async function countRecentFailures(
  sql: Queryable,
  input: { email: string; address: string; since: Date },
): Promise<{ byEmail: number; byAddress: number }> {
  const [row] = await sql<{ byEmail: number; byAddress: number }[]>`
    SELECT
      count(*) FILTER (WHERE email = ${input.email})::int AS "byEmail",
      count(*) FILTER (WHERE address = ${input.address})::int AS "byAddress"
    FROM login_attempt
    WHERE NOT succeeded AND created_at > ${input.since}
      AND (email = ${input.email} OR address = ${input.address})`;
  return row ?? { byEmail: 0, byAddress: 0 };
}

/** Deletes attempts older than `before`; returns how many. */
export async function deleteOldLoginAttempts(sql: Queryable, before: Date): Promise<number> {
  const rows = await sql`DELETE FROM login_attempt WHERE created_at < ${before} RETURNING id`;
  return rows.length;
}
