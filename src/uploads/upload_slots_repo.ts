/** SQL for upload slots: the uploads each user has in flight, as leases (see 0004). */
import type { Database, Queryable } from "../db/db.ts";

/**
 * Takes a slot for `userId` when fewer than `max` unexpired ones are held; true when taken.
 * Serialized per user by a transaction-scoped advisory lock, so two replicas cannot both take
 * the last slot; the user's expired leases are deleted on the way.
 */
export async function takeSlot(
  db: Database,
  input: { id: string; userId: string; max: number; leaseSeconds: number },
): Promise<boolean> {
  return await db.sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(hashtextextended('upload_slot:' || ${input.userId}, 0))`;
    await tx`DELETE FROM upload_slot WHERE user_id = ${input.userId} AND lease_until <= now()`;
    const rows = await tx`
      INSERT INTO upload_slot (id, user_id, lease_until)
      SELECT ${input.id}, ${input.userId}, now() + make_interval(secs => ${input.leaseSeconds})
      WHERE (SELECT count(*) FROM upload_slot WHERE user_id = ${input.userId}) < ${input.max}
      RETURNING id`;
    return rows.length > 0;
  });
}

/** Extends a held slot's lease. */
export async function renewSlot(sql: Queryable, id: string, leaseSeconds: number): Promise<void> {
  await sql`
    UPDATE upload_slot SET lease_until = now() + make_interval(secs => ${leaseSeconds})
    WHERE id = ${id}`;
}

/** Gives a slot back. */
export async function releaseSlot(sql: Queryable, id: string): Promise<void> {
  await sql`DELETE FROM upload_slot WHERE id = ${id}`;
}
