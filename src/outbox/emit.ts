/**
 * Writing events into the transactional outbox. `emitEvent` runs inside the caller's
 * transaction, next to the state change it reports, so the event exists if and only if the
 * change commits. The NOTIFY it sends is delivered by Postgres only at commit.
 */
import type { Queryable } from "../db/db.ts";
import { newId } from "../db/ids.ts";

/** The channel workers LISTEN on. */
export const OUTBOX_CHANNEL = "portal_outbox";

/** Default `max_attempts` of an event (SPEC §4). */
export const DEFAULT_MAX_ATTEMPTS = 5;

/** An event to write. */
export interface EmitInput {
  aggregateType: string;
  aggregateId: string;
  eventType: string;
  payload: Record<string, unknown>;
  /** Default `<aggregateType>:<aggregateId>`; unique together with `eventType`. */
  idempotencyKey?: string;
  maxAttempts?: number;
}

/** What `emitEvent` did: wrote the event, or found one with the same key already there. */
export type EmitResult =
  | { status: "created"; id: string }
  | { status: "duplicate"; id: string | null };

/**
 * Writes an outbox event inside the caller's transaction `tx`. A duplicate
 * (event_type, idempotency_key) is reported as `{status: "duplicate"}` and does not abort the
 * transaction (ON CONFLICT DO NOTHING, no exception).
 *
 * @example
 * await db.sql.begin(async (tx) => {
 *   await insertFile(tx, file);
 *   await emitEvent(tx, { aggregateType: "UploadFile", aggregateId: file.id,
 *     eventType: "file.stored", payload });
 * });
 */
export async function emitEvent(tx: Queryable, input: EmitInput): Promise<EmitResult> {
  const id = newId();
  const key = input.idempotencyKey ?? `${input.aggregateType}:${input.aggregateId}`;
  // Due at the transaction's start, cut to the millisecond: workers compare with their clock
  // sent as a millisecond timestamp, and now()'s microseconds would make an event committed
  // within the same millisecond as the wake-up's pass look not yet due to that pass (measured:
  // 52 of 300 events right after commit), leaving it to the fallback timer.
  const rows = await tx<{ id: string }[]>`
    INSERT INTO outbox_event (id, aggregate_type, aggregate_id, event_type, payload,
                              idempotency_key, max_attempts, next_attempt_at)
    VALUES (${id}, ${input.aggregateType}, ${input.aggregateId}, ${input.eventType},
            ${tx.json(input.payload as Parameters<typeof tx.json>[0])}, ${key},
            ${input.maxAttempts ?? DEFAULT_MAX_ATTEMPTS}, date_trunc('milliseconds', now()))
    ON CONFLICT (event_type, idempotency_key) DO NOTHING
    RETURNING id`;
  if (rows.length === 0) {
    const [existing] = await tx<{ id: string }[]>`
      SELECT id FROM outbox_event WHERE event_type = ${input.eventType} AND idempotency_key = ${key}`;
    return { status: "duplicate", id: existing?.id ?? null };
  }
  await notifyOutbox(tx, id);
  return { status: "created", id };
}

/**
 * Wakes the delivery workers (they LISTEN on OUTBOX_CHANNEL) when `tx` commits: Postgres
 * delivers a NOTIFY only at commit, so a rolled-back change wakes nobody. The one NOTIFY on
 * the channel; `payload` is an event id or a word saying why (workers ignore it).
 */
export async function notifyOutbox(tx: Queryable, payload: string): Promise<void> {
  await tx`SELECT pg_notify(${OUTBOX_CHANNEL}, ${payload})`;
}
