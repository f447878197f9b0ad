/**
 * Fan-out: each due outbox event becomes one `webhook_delivery` per active endpoint whose
 * `event_types` match (empty list = every type), in one short transaction per batch. An event no
 * endpoint wants is marked delivered at once (the seeds' "no matching endpoint" rule). The same
 * transaction can lease the due deliveries, new ones included, so a fresh event reaches the
 * network after a single commit.
 */
import type { Database } from "../db/db.ts";
import { newId } from "../db/ids.ts";
import {
  claimDueDeliveries,
  type ClaimedDelivery,
  insertDeliveries,
  lockEventsForFanOut,
  rollUpEvents,
} from "../outbox/deliveries_repo.ts";
import { setEventMaxAttempts } from "../outbox/events_repo.ts";

/** Events fanned out per transaction. */
export const FAN_OUT_BATCH = 500;

/** What one fan-out batch did. */
export interface FanOutResult {
  /** Events taken from the outbox in this batch. */
  events: number;
  /** Deliveries created. */
  deliveries: number;
  /** Deliveries leased in the same transaction (when `claim` was given). */
  claimed: ClaimedDelivery[];
}

/** Input of `fanOutDueEvents`. */
export interface FanOutInput {
  now: Date;
  /** `max_attempts` of the new deliveries. */
  maxAttempts: number;
  /** Events per batch (default 500). */
  limit?: number;
  /** Also lease up to `limit` due deliveries to `owner` before committing. */
  claim?: { owner: string; leasedUntil: Date; limit: number };
}

/**
 * Fans out one batch of due events (and optionally leases due deliveries).
 *
 * @example
 * const { events } = await fanOutDueEvents({ db }, { now: new Date(), maxAttempts: 5 });
 */
export async function fanOutDueEvents(
  deps: { db: Database },
  input: FanOutInput,
): Promise<FanOutResult> {
  return await deps.db.sql.begin(async (tx) => {
    const rows = await lockEventsForFanOut(tx, {
      now: input.now,
      limit: input.limit ?? FAN_OUT_BATCH,
    });
    const eventIds = [...new Set(rows.map((row) => row.eventId))];
    const deliveries = rows.flatMap((row) =>
      row.endpointId === null
        ? []
        : [{ id: newId(), eventId: row.eventId, endpointId: row.endpointId }]
    );
    if (eventIds.length > 0) {
      await insertDeliveries(tx, {
        rows: deliveries,
        maxAttempts: input.maxAttempts,
        now: input.now,
      });
      // The event shows the attempt limit its deliveries run under (WEBHOOK_MAX_ATTEMPTS), not
      // the default it was written with.
      await setEventMaxAttempts(tx, { eventIds, maxAttempts: input.maxAttempts });
      // Events with no matching endpoint roll up to delivered; the rest to pending with the
      // time their deliveries fall due.
      await rollUpEvents(tx, { eventIds, now: input.now, alreadyLocked: true });
    }
    // The commit stays synchronous: delivery ids are the webhook-ids, so they must be durable
    // before any request carries one.
    const claimed = input.claim
      ? await claimDueDeliveries(tx, { now: input.now, ...input.claim })
      : [];
    return { events: eventIds.length, deliveries: deliveries.length, claimed };
  });
}
