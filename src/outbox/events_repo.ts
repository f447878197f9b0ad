/** SQL for reading, retrying and expiring outbox events with their deliveries and attempts. */
import type postgres from "postgres";
import type { Queryable } from "../db/db.ts";

/** A piece of SQL built with the tagged template, to embed in another query. */
type SqlFragment = postgres.PendingQuery<postgres.Row[]>;

/** Status of an outbox event or a delivery. */
export type DeliveryStatus = "pending" | "delivered" | "failed";

/** An outbox event as listed. */
export interface OutboxEventSummary {
  id: string;
  aggregateType: string;
  aggregateId: string;
  eventType: string;
  status: DeliveryStatus;
  attempts: number;
  maxAttempts: number;
  nextAttemptAt: Date;
  deliveredAt: Date | null;
  errorMessage: string;
  createdAt: Date;
}

/** An event with its payload. */
export interface OutboxEventDetail extends OutboxEventSummary {
  idempotencyKey: string;
  payload: unknown;
}

/** A delivery of an event to one endpoint. */
export interface DeliveryRow {
  id: string;
  endpointId: string;
  url: string;
  status: DeliveryStatus;
  attempts: number;
  maxAttempts: number;
  nextAttemptAt: Date;
  leasedUntil: Date | null;
  leaseOwner: string | null;
  lastStatusCode: number | null;
  lastError: string;
  deliveredAt: Date | null;
}

/** One logged attempt of a delivery. */
export interface AttemptLogRow {
  deliveryId: string;
  attemptNumber: number;
  attemptedAt: Date;
  statusCode: number | null;
  durationMs: number;
  error: string;
  responseBody: string;
}

const SUMMARY = (sql: Queryable) =>
  sql`id, aggregate_type AS "aggregateType", aggregate_id AS "aggregateId",
      event_type AS "eventType", status, attempts, max_attempts AS "maxAttempts",
      next_attempt_at AS "nextAttemptAt", delivered_at AS "deliveredAt",
      error_message AS "errorMessage", created_at AS "createdAt"`;

/** Lists events, newest first, optionally filtered by status and type. */
export async function listEvents(
  sql: Queryable,
  input: { status?: DeliveryStatus; eventType?: string; limit: number },
): Promise<OutboxEventSummary[]> {
  return await sql<OutboxEventSummary[]>`
    SELECT ${SUMMARY(sql)} FROM outbox_event
    WHERE true
      ${input.status ? sql`AND status = ${input.status}` : sql``}
      ${input.eventType ? sql`AND event_type = ${input.eventType}` : sql``}
    ORDER BY created_at DESC, id DESC
    LIMIT ${input.limit}`;
}

/** Finds one event with its payload. */
export async function findEvent(sql: Queryable, id: string): Promise<OutboxEventDetail | null> {
  const rows = await sql<OutboxEventDetail[]>`
    SELECT ${SUMMARY(sql)}, idempotency_key AS "idempotencyKey", payload
    FROM outbox_event WHERE id = ${id}`;
  return rows[0] ?? null;
}

/** The deliveries of an event, with each endpoint's URL. */
export async function listDeliveries(sql: Queryable, eventId: string): Promise<DeliveryRow[]> {
  return await sql<DeliveryRow[]>`
    SELECT d.id, d.endpoint_id AS "endpointId", w.url, d.status, d.attempts,
           d.max_attempts AS "maxAttempts", d.next_attempt_at AS "nextAttemptAt",
           d.leased_until AS "leasedUntil", d.lease_owner AS "leaseOwner",
           d.last_status_code AS "lastStatusCode", d.last_error AS "lastError",
           d.delivered_at AS "deliveredAt"
    FROM webhook_delivery d JOIN webhook_endpoint w ON w.id = d.endpoint_id
    WHERE d.event_id = ${eventId}
    ORDER BY d.created_at, d.id`;
}

/** The attempts of an event's deliveries, in order. */
export async function listAttempts(sql: Queryable, eventId: string): Promise<AttemptLogRow[]> {
  return await sql<AttemptLogRow[]>`
    SELECT a.delivery_id AS "deliveryId", a.attempt_number AS "attemptNumber",
           a.attempted_at AS "attemptedAt", a.status_code AS "statusCode",
           a.duration_ms AS "durationMs", a.error, a.response_body AS "responseBody"
    FROM webhook_attempt a JOIN webhook_delivery d ON d.id = a.delivery_id
    WHERE d.event_id = ${eventId}
    ORDER BY a.attempted_at, a.attempt_number`;
}

/** Locks events for a retry, in id order (the order every writer uses); returns their status. */
export async function lockEvents(
  tx: Queryable,
  input: { ids: string[] } | { status: "failed" },
): Promise<{ id: string; status: DeliveryStatus }[]> {
  return await tx<{ id: string; status: DeliveryStatus }[]>`
    SELECT id, status FROM outbox_event
    WHERE ${"ids" in input ? tx`id = ANY (${input.ids}::uuid[])` : tx`status = ${input.status}`}
    ORDER BY id
    FOR UPDATE`;
}

/**
 * Starts the failed deliveries of `eventIds` again from attempt 0, due at `now`; deliveries that
 * succeeded are left alone (SPEC §4: never a second delivery to an endpoint that succeeded).
 */
export async function resetFailedDeliveries(
  tx: Queryable,
  input: { eventIds: string[]; now: Date },
): Promise<number> {
  if (input.eventIds.length === 0) return 0;
  const rows = await tx`
    UPDATE webhook_delivery
    SET status = 'pending', attempts = 0, next_attempt_at = ${input.now}, last_error = '',
        last_status_code = NULL, leased_until = NULL, lease_owner = NULL, delivered_at = NULL,
        updated_at = ${input.now}
    WHERE event_id = ANY (${input.eventIds}::uuid[]) AND status = 'failed'
    RETURNING id`;
  return rows.length;
}

/**
 * Deletes up to `limit` delivered or failed events last changed before `before`, with their
 * deliveries and attempts (ON DELETE CASCADE). Pending events, and events with a delivery still
 * pending, are kept.
 */
export async function deleteTerminalEvents(
  sql: Queryable,
  input: { before: Date; limit: number },
): Promise<number> {
  const rows = await sql`
    DELETE FROM outbox_event
    WHERE id IN (
      SELECT e.id FROM outbox_event e
      WHERE e.status IN ('delivered', 'failed') AND e.updated_at < ${input.before}
        AND NOT EXISTS (SELECT 1 FROM webhook_delivery d
                        WHERE d.event_id = e.id AND d.status = 'pending')
      ORDER BY e.updated_at
      LIMIT ${input.limit}
      FOR UPDATE SKIP LOCKED
    )
    RETURNING id`;
  return rows.length;
}

/**
 * Sets the attempt limit its deliveries run under (WEBHOOK_MAX_ATTEMPTS) on events written
 * with another default; fan-out calls it.
 */
export async function setEventMaxAttempts(
  tx: Queryable,
  input: { eventIds: string[]; maxAttempts: number },
): Promise<void> {
  await tx`
    UPDATE outbox_event SET max_attempts = ${input.maxAttempts}
    WHERE id = ANY(${input.eventIds}::uuid[]) AND max_attempts <> ${input.maxAttempts}`;
}

/** The outbox's backlog: pending events and the age of the oldest (0 when none). */
export async function outboxBacklog(
  sql: Queryable,
): Promise<{ pending: number; oldestAgeSeconds: number }> {
  const [row] = await sql<{ pending: number; age: number | null }[]>`
    SELECT count(*)::int AS pending,
           EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS age
      FROM outbox_event WHERE status = 'pending'`;
  return { pending: row?.pending ?? 0, oldestAgeSeconds: Math.max(0, row?.age ?? 0) };
}

/**
 * An SQL condition, for another table's query, that holds when an event of `eventType` with
 * the idempotency key `key` (an SQL expression over that query's row) was emitted.
 *
 * @example
 * sql`SELECT ... FROM upload_file f WHERE NOT ${eventEmitted(sql, "file.expiring", sql`'UploadFile:' || f.id::text`)}`
 */
export function eventEmitted(
  sql: Queryable,
  eventType: string,
  key: SqlFragment,
): SqlFragment {
  return sql`EXISTS (
    SELECT 1 FROM outbox_event e WHERE e.event_type = ${eventType} AND e.idempotency_key = ${key})`;
}
