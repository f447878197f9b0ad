/**
 * Operator actions on outbox events: list, inspect, retry failed ones from attempt 0 (the seeds'
 * admin "retry" fixed to reset `attempts`), and delete old finished ones (SPEC §5 Jobs: outbox
 * retention, `OUTBOX_RETENTION_HOURS`).
 */
import { isUuid } from "../db/ids.ts";
import type { Config } from "../config/config.ts";
import type { Database } from "../db/db.ts";
import { type Clock, currentTime } from "../app_deps.ts";
import { notifyOutbox } from "../outbox/emit.ts";
import { rollUpEvents } from "../outbox/deliveries_repo.ts";
import {
  type AttemptLogRow,
  deleteTerminalEvents,
  type DeliveryRow,
  type DeliveryStatus,
  findEvent,
  listAttempts,
  listDeliveries,
  listEvents,
  lockEvents,
  type OutboxEventDetail,
  type OutboxEventSummary,
  resetFailedDeliveries,
} from "../outbox/events_repo.ts";

export type {
  AttemptLogRow,
  DeliveryRow,
  DeliveryStatus,
  OutboxEventDetail,
  OutboxEventSummary,
} from "../outbox/events_repo.ts";

/** Default and largest page of `listOutboxEvents`. */
export const EVENT_LIST_LIMITS = { default: 50, max: 1000 } as const;

/** An event with its deliveries and their attempts. */
export interface EventDetail {
  event: OutboxEventDetail;
  deliveries: DeliveryRow[];
  attempts: AttemptLogRow[];
}

/** What a retry did. */
export interface RetryResult {
  /** Events put back to pending. */
  events: number;
  /** Failed deliveries started again from attempt 0. */
  deliveries: number;
}

/**
 * Lists events, newest first.
 *
 * @example
 * const failed = await listOutboxEvents({ db }, { status: "failed", limit: 20 });
 */
export async function listOutboxEvents(
  deps: { db: Database },
  input: { status?: DeliveryStatus; eventType?: string; limit?: number } = {},
): Promise<OutboxEventSummary[]> {
  const limit = Math.min(input.limit ?? EVENT_LIST_LIMITS.default, EVENT_LIST_LIMITS.max);
  return await listEvents(deps.db.sql, { ...input, limit });
}

/** An event with its deliveries and attempts, or null when there is no such event. */
export async function getEventDetail(
  deps: { db: Database },
  id: string,
): Promise<EventDetail | null> {
  if (!isUuid(id)) return null;
  const event = await findEvent(deps.db.sql, id);
  if (event === null) return null;
  const [deliveries, attempts] = await Promise.all([
    listDeliveries(deps.db.sql, id),
    listAttempts(deps.db.sql, id),
  ]);
  return { event, deliveries, attempts };
}

/**
 * Starts a failed event again: its failed deliveries go back to pending from attempt 0, due now;
 * deliveries that succeeded are not sent again. Null when the event does not exist; zero counts
 * when it has nothing to retry (delivered, or still pending without failures).
 *
 * @example
 * await retryEvent({ db }, eventId);
 */
export async function retryEvent(
  deps: { db: Database; clock?: Clock },
  eventId: string,
): Promise<RetryResult | null> {
  if (!isUuid(eventId)) return null;
  const now = currentTime(deps);
  return await deps.db.sql.begin(async (tx) => {
    const locked = await lockEvents(tx, { ids: [eventId] });
    if (locked.length === 0) return null;
    const deliveries = await resetFailedDeliveries(tx, { eventIds: [eventId], now });
    if (deliveries === 0 && locked[0]?.status !== "failed") return { events: 0, deliveries: 0 };
    await rollUpEvents(tx, { eventIds: [eventId], now });
    // Wake the workers now rather than at their next timer.
    await notifyOutbox(tx, eventId);
    return { events: 1, deliveries };
  });
}

/** Retries every failed event (see `retryEvent`). */
export async function retryAllFailed(
  deps: { db: Database; clock?: Clock },
): Promise<RetryResult> {
  const now = currentTime(deps);
  return await deps.db.sql.begin(async (tx) => {
    const ids = (await lockEvents(tx, { status: "failed" })).map((row) => row.id);
    if (ids.length === 0) return { events: 0, deliveries: 0 };
    const deliveries = await resetFailedDeliveries(tx, { eventIds: ids, now });
    await rollUpEvents(tx, { eventIds: ids, now });
    await notifyOutbox(tx, "retry");
    return { events: ids.length, deliveries };
  });
}

const RETENTION_BATCH = 1000;

/**
 * Deletes delivered and failed events older than `outboxRetentionHours` with their deliveries
 * and attempts, in batches so no transaction grows large; never a pending event.
 *
 * @example
 * const { deleted } = await deleteOldEvents({ db, config });
 */
export async function deleteOldEvents(
  deps: { db: Database; config: Pick<Config, "outboxRetentionHours">; clock?: Clock },
): Promise<{ deleted: number }> {
  const before = new Date(
    currentTime(deps).getTime() - deps.config.outboxRetentionHours * 3_600_000,
  );
  let deleted = 0;
  for (;;) {
    const count = await deleteTerminalEvents(deps.db.sql, { before, limit: RETENTION_BATCH });
    deleted += count;
    if (count < RETENTION_BATCH) return { deleted };
  }
}
