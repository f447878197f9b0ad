/** SQL for login attempts, the shared memory of the login rate limit across replicas. */
import type { Queryable } from "../db/db.ts";

/**
 * Records an attempt as failed before its password is checked, so concurrent guesses see each
 * other; returns its id (`markLoginAttemptSucceeded` or `deleteLoginAttempt` settle it).
 */
export async function insertLoginAttempt(
  sql: Queryable,
  input: { email: string; address: string },
): Promise<number> {
  const [row] = await sql<{ id: string }[]>`
    INSERT INTO login_attempt (email, address, succeeded)
    VALUES (${input.email}, ${input.address}, false)
    RETURNING id`;
  return Number(row!.id);
}

/** Marks an attempt as succeeded (it no longer counts toward the limit). */
export async function markLoginAttemptSucceeded(sql: Queryable, id: number): Promise<void> {
  await sql`UPDATE login_attempt SET succeeded = true, updated_at = now() WHERE id = ${id}`;
}

/** Forgets an attempt that was refused by the limit, so refusals do not extend a lockout. */
export async function deleteLoginAttempt(sql: Queryable, id: number): Promise<void> {
  await sql`DELETE FROM login_attempt WHERE id = ${id}`;
}

/** Failures counted by the login limit (see LOGIN_LIMITS in account_service.ts). */
export interface RecentFailures {
  /** On this account, from any address. */
  byEmail: number;
  /** From this address, on any account. */
  byAddress: number;
  /** On this account from this address. */
  byEmailAndAddress: number;
}

/** Failed attempts since `since` for an email and for an address, made before attempt `beforeId`. */
export async function countRecentFailures(
  sql: Queryable,
  input: { email: string; address: string; since: Date; beforeId: number },
): Promise<RecentFailures> {
  const [row] = await sql<RecentFailures[]>`
    SELECT
      count(*) FILTER (WHERE email = ${input.email})::int AS "byEmail",
      count(*) FILTER (WHERE address = ${input.address})::int AS "byAddress",
      count(*) FILTER (WHERE email = ${input.email} AND address = ${input.address})::int
        AS "byEmailAndAddress"
    FROM login_attempt
    WHERE NOT succeeded AND created_at > ${input.since} AND id < ${input.beforeId}
      AND (email = ${input.email} OR address = ${input.address})`;
  return row ?? { byEmail: 0, byAddress: 0, byEmailAndAddress: 0 };
}

/** Deletes attempts older than `before`; returns how many. */
export async function deleteOldLoginAttempts(sql: Queryable, before: Date): Promise<number> {
  const rows = await sql`DELETE FROM login_attempt WHERE created_at < ${before} RETURNING id`;
  return rows.length;
}
