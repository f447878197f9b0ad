/**
 * SQL for the delivery pipeline (SPEC §4 outbox_event, webhook_delivery, webhook_attempt): fan-out,
 * leased claims, result write-back and the per-event roll-up. Every time comes from the caller's
 * clock so tests can move time without sleeping.
 */
import type { Queryable } from "../db/db.ts";

/** A due event picked for fan-out, with one matching active endpoint (null when none match). */
export interface FanOutRow {
  eventId: string;
  endpointId: string | null;
}

/**
 * Locks up to `limit` due pending events that have no deliveries yet (FOR UPDATE SKIP LOCKED, so
 * workers split them) and returns each with its matching active endpoints. Run inside a
 * transaction. Fanned-out events carry a later `next_attempt_at` than fresh ones, so the index
 * order reaches fresh events first.
 */
export async function lockEventsForFanOut(
  tx: Queryable,
  input: { now: Date; limit: number },
): Promise<FanOutRow[]> {
  return await tx<FanOutRow[]>`
    SELECT e.id AS "eventId", w.id AS "endpointId"
    FROM (
      SELECT id, event_type, next_attempt_at FROM outbox_event
      -- The database's clock too: a fresh event is stamped with it, and a worker whose own
      -- clock runs behind (another host) must still see the event its commit woke it for.
      WHERE status = 'pending' AND next_attempt_at <= greatest(${input.now}::timestamptz, now())
        AND NOT EXISTS (SELECT 1 FROM webhook_delivery d WHERE d.event_id = outbox_event.id)
      ORDER BY next_attempt_at
      LIMIT ${input.limit}
      FOR UPDATE SKIP LOCKED
    ) e
    LEFT JOIN webhook_endpoint w
      ON w.is_active
     AND (cardinality(w.event_types) = 0 OR e.event_type = ANY (w.event_types))
    ORDER BY e.next_attempt_at, e.id, w.id`;
}

/** Inserts deliveries; a second fan-out of the same event adds nothing (unique event+endpoint). */
export async function insertDeliveries(
  tx: Queryable,
  input: {
    rows: { id: string; eventId: string; endpointId: string }[];
    maxAttempts: number;
    now: Date;
  },
): Promise<void> {
  if (input.rows.length === 0) return;
  await tx`
    INSERT INTO webhook_delivery (id, event_id, endpoint_id, max_attempts, next_attempt_at,
                                  created_at, updated_at)
    SELECT v.id, v.event_id, v.endpoint_id, ${input.maxAttempts}, ${input.now}, ${input.now},
           ${input.now}
    FROM unnest(${input.rows.map((r) => r.id)}::uuid[],
                ${input.rows.map((r) => r.eventId)}::uuid[],
                ${input.rows.map((r) => r.endpointId)}::uuid[]) AS v(id, event_id, endpoint_id)
    ON CONFLICT (event_id, endpoint_id) DO NOTHING`;
}

/**
 * Recomputes events from their deliveries: delivered when all are delivered (or there are none:
 * no endpoint matched), failed when any is failed, else pending with the earliest next attempt.
 * The event rows are locked first, in id order (unless the caller already holds them), so
 * concurrent write-backs for the same event serialise and the last one sees every delivery's
 * final state.
 */
export async function rollUpEvents(
  tx: Queryable,
  input: { eventIds: string[]; now: Date; alreadyLocked?: boolean },
): Promise<void> {
  if (input.eventIds.length === 0) return;
  const ids = [...new Set(input.eventIds)].sort();
  if (!input.alreadyLocked) {
    await tx`SELECT id FROM outbox_event WHERE id = ANY (${ids}::uuid[]) ORDER BY id FOR UPDATE`;
  }
  await tx`
    UPDATE outbox_event e
    SET status = s.status,
        attempts = s.attempts,
        delivered_at = CASE WHEN s.status = 'delivered'
                            THEN COALESCE(s.delivered_at, ${input.now}) END,
        error_message = CASE WHEN s.status = 'delivered' THEN '' ELSE s.error END,
        next_attempt_at = COALESCE(s.next_attempt_at, e.next_attempt_at),
        updated_at = ${input.now}
    FROM (
      SELECT ev.id,
             CASE WHEN count(d.id) FILTER (WHERE d.status = 'failed') > 0 THEN 'failed'
                  WHEN count(d.id) FILTER (WHERE d.status = 'pending') > 0 THEN 'pending'
                  ELSE 'delivered' END AS status,
             COALESCE(max(d.attempts), 0) AS attempts,
             max(d.delivered_at) AS delivered_at,
             min(d.next_attempt_at) FILTER (WHERE d.status = 'pending') AS next_attempt_at,
             COALESCE((array_agg(w.url || ': ' || d.last_error
                                 ORDER BY d.status = 'failed' DESC, d.updated_at DESC)
                         FILTER (WHERE d.last_error <> ''))[1], '') AS error
      FROM outbox_event ev
      LEFT JOIN webhook_delivery d ON d.event_id = ev.id
      LEFT JOIN webhook_endpoint w ON w.id = d.endpoint_id
      WHERE ev.id = ANY (${ids}::uuid[])
      GROUP BY ev.id
    ) s
    WHERE e.id = s.id`;
}

/** A claimed delivery with what sending it needs from its event and endpoint. */
export interface ClaimedDelivery {
  id: string;
  eventId: string;
  endpointId: string;
  /** Attempts made before this one. */
  attempts: number;
  maxAttempts: number;
  /** The lease this claim holds; the write-back must present it. */
  leasedUntil: Date;
  eventType: string;
  payload: unknown;
  /** The event's creation time, sent as the body's `timestamp`. */
  occurredAt: Date;
  url: string;
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
  endpointActive: boolean;
  disabledReason: string;
}

/**
 * Leases up to `limit` due deliveries to `owner` until `leasedUntil` (SPEC §5: FOR UPDATE SKIP
 * LOCKED with a lease, so a crashed worker's claims return to the pool when the lease ends). The
 * row locks last only for this statement; no lock is held while sending.
 */
export async function claimDueDeliveries(
  sql: Queryable,
  input: { now: Date; leasedUntil: Date; owner: string; limit: number },
): Promise<ClaimedDelivery[]> {
  if (input.limit <= 0) return [];
  return await sql<ClaimedDelivery[]>`
    WITH due AS (
      SELECT id FROM webhook_delivery
      WHERE status = 'pending' AND next_attempt_at <= ${input.now}
        AND (leased_until IS NULL OR leased_until < ${input.now})
      ORDER BY next_attempt_at
      LIMIT ${input.limit}
      FOR UPDATE SKIP LOCKED
    )
    UPDATE webhook_delivery d
    SET leased_until = ${input.leasedUntil}, lease_owner = ${input.owner}, updated_at = ${input.now}
    FROM due, outbox_event e, webhook_endpoint w
    WHERE d.id = due.id AND e.id = d.event_id AND w.id = d.endpoint_id
    RETURNING d.id, d.event_id AS "eventId", d.endpoint_id AS "endpointId", d.attempts,
              d.max_attempts AS "maxAttempts", d.leased_until AS "leasedUntil",
              e.event_type AS "eventType", e.payload, e.created_at AS "occurredAt", w.url,
              w.secret, w.previous_secret AS "previousSecret",
              w.previous_secret_expires_at AS "previousSecretExpiresAt",
              w.is_active AS "endpointActive", w.disabled_reason AS "disabledReason"`;
}

/** The new state of one delivery after an attempt. */
export interface DeliveryUpdate {
  id: string;
  /** The lease the claim held; an update whose lease was taken over is dropped. */
  leasedUntil: Date;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  nextAttemptAt: Date;
  lastStatusCode: number | null;
  lastError: string;
  deliveredAt: Date | null;
}

/**
 * Applies attempt results for deliveries still leased by `owner` with the same lease; returns the
 * ids and events it updated. A worker whose lease expired and was claimed again elsewhere gets
 * nothing back, so the newer owner's result stands.
 */
export async function applyDeliveryUpdates(
  tx: Queryable,
  input: { owner: string; updates: DeliveryUpdate[]; now: Date },
): Promise<{ id: string; eventId: string }[]> {
  const u = input.updates;
  if (u.length === 0) return [];
  return await tx<{ id: string; eventId: string }[]>`
    UPDATE webhook_delivery d
    SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_attempt_at,
        last_status_code = v.last_status_code, last_error = v.last_error,
        delivered_at = v.delivered_at, leased_until = NULL, lease_owner = NULL,
        updated_at = ${input.now}
    FROM unnest(${u.map((x) => x.id)}::uuid[],
                ${u.map((x) => x.leasedUntil.toISOString())}::timestamptz[],
                ${u.map((x) => x.status)}::text[],
                ${u.map((x) => x.attempts)}::int[],
                ${u.map((x) => x.nextAttemptAt.toISOString())}::timestamptz[],
                ${u.map((x) => x.lastStatusCode)}::int[],
                ${u.map((x) => x.lastError)}::text[],
                ${u.map((x) => x.deliveredAt?.toISOString() ?? null)}::timestamptz[])
      AS v(id, leased_until, status, attempts, next_attempt_at, last_status_code, last_error,
           delivered_at)
    WHERE d.id = v.id AND d.status = 'pending' AND d.lease_owner = ${input.owner}
      AND d.leased_until = v.leased_until
    RETURNING d.id, d.event_id AS "eventId"`;
}

/** One row of `webhook_attempt`. */
export interface AttemptRow {
  id: string;
  deliveryId: string;
  attemptNumber: number;
  attemptedAt: Date;
  statusCode: number | null;
  durationMs: number;
  error: string;
  /** The first 500 bytes of the response. */
  responseBody: string;
}

/** Inserts attempt rows. */
export async function insertAttempts(
  tx: Queryable,
  input: { attempts: AttemptRow[]; now: Date },
): Promise<void> {
  const a = input.attempts;
  if (a.length === 0) return;
  await tx`
    INSERT INTO webhook_attempt (id, delivery_id, attempt_number, attempted_at, status_code,
                                 duration_ms, error, response_body, created_at, updated_at)
    SELECT v.*, ${input.now}::timestamptz, ${input.now}::timestamptz
    FROM unnest(${a.map((x) => x.id)}::uuid[], ${a.map((x) => x.deliveryId)}::uuid[],
                ${a.map((x) => x.attemptNumber)}::int[],
                ${a.map((x) => x.attemptedAt.toISOString())}::timestamptz[],
                ${a.map((x) => x.statusCode)}::int[], ${a.map((x) => x.durationMs)}::int[],
                ${a.map((x) => x.error)}::text[], ${a.map((x) => x.responseBody)}::text[])
      AS v(id, delivery_id, attempt_number, attempted_at, status_code, duration_ms, error,
           response_body)`;
}

/** Disables endpoints that answered `410 Gone`, recording why. */
export async function disableGoneEndpoints(
  tx: Queryable,
  input: { endpoints: { id: string; reason: string }[]; now: Date },
): Promise<void> {
  for (const endpoint of input.endpoints) {
    await tx`
      UPDATE webhook_endpoint
      SET is_active = false, disabled_reason = ${endpoint.reason}, updated_at = ${input.now}
      WHERE id = ${endpoint.id} AND is_active`;
  }
}

/** Returns unfinished claims of `owner` to the pool at once (graceful stop). */
export async function releaseLeases(
  sql: Queryable,
  input: { owner: string; ids: string[]; now: Date },
): Promise<number> {
  if (input.ids.length === 0) return 0;
  const rows = await sql`
    UPDATE webhook_delivery
    SET leased_until = NULL, lease_owner = NULL, updated_at = ${input.now}
    WHERE id = ANY (${input.ids}::uuid[]) AND lease_owner = ${input.owner} AND status = 'pending'
    RETURNING id`;
  return rows.length;
}

/**
 * When the next delivery falls due: the earliest pending one not leased (or whose lease ended),
 * read in index order so it costs a few rows whatever the backlog. Null when none is pending.
 * Fresh events need no timer: their commit sends a NOTIFY.
 */
export async function nextDueAt(sql: Queryable, now: Date): Promise<Date | null> {
  const [row] = await sql<{ at: Date }[]>`
    SELECT next_attempt_at AS at FROM webhook_delivery
    WHERE status = 'pending' AND (leased_until IS NULL OR leased_until < ${now})
    ORDER BY next_attempt_at
    LIMIT 1`;
  return row?.at ?? null;
}
