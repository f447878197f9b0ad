/** Shared setup for the webhook tests: config, event emission, delivery deps and row reads. */
import { type Config, configFrom } from "../../src/config/config.ts";
import type { Database } from "../../src/db/db.ts";
import { silentLogger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { emitEvent } from "../../src/outbox/emit.ts";
import type { Clock } from "../../src/app_deps.ts";
import type { DeliveryDeps } from "../../src/webhooks/delivery_loop.ts";

/** A config for tests: private targets allowed (receivers live on 127.0.0.1). */
export function webhookTestConfig(env: Record<string, string> = {}): Readonly<Config> {
  return configFrom({ PORTAL_WEBHOOK_ALLOW_PRIVATE: "true", ...env });
}

/** A clock the test moves by hand. */
export class ManualClock implements Clock {
  #now: number;
  constructor(start = new Date()) {
    this.#now = start.getTime();
  }
  now(): Date {
    return new Date(this.#now);
  }
  set(at: Date): void {
    this.#now = at.getTime();
  }
  advance(ms: number): void {
    this.#now += ms;
  }
}

/** Delivery deps on `db` with a fresh registry, silent logs and fixed jitter. */
export function deliveryDeps(
  db: Database,
  overrides: Partial<DeliveryDeps> = {},
): DeliveryDeps {
  return {
    db,
    config: webhookTestConfig(),
    secretKey: "webhook-test-secret-0123456789abcdefghijkl",
    logger: silentLogger,
    metrics: new Metrics(),
    random: () => 0.5,
    ...overrides,
  };
}

/** Emits one event in its own transaction, as a state change would; returns its id. */
export async function emit(
  db: Database,
  eventType: string,
  payload: Record<string, unknown> = {},
  aggregateId: string = crypto.randomUUID(),
): Promise<string> {
  return await db.sql.begin(async (tx) => {
    const result = await emitEvent(tx, {
      aggregateType: "UploadFile",
      aggregateId,
      eventType,
      payload,
    });
    return result.id!;
  });
}

/** A delivery row as the tests read it. */
export interface DeliveryState {
  id: string;
  endpointId: string;
  status: string;
  attempts: number;
  nextAttemptAt: Date;
  lastStatusCode: number | null;
  lastError: string;
  leaseOwner: string | null;
  leasedUntil: Date | null;
}

/** The deliveries of an event. */
export async function deliveriesOf(db: Database, eventId: string): Promise<DeliveryState[]> {
  return await db.sql<DeliveryState[]>`
    SELECT id, endpoint_id AS "endpointId", status, attempts, next_attempt_at AS "nextAttemptAt",
           last_status_code AS "lastStatusCode", last_error AS "lastError",
           lease_owner AS "leaseOwner", leased_until AS "leasedUntil"
    FROM webhook_delivery WHERE event_id = ${eventId} ORDER BY created_at, id`;
}

/** An event row as the tests read it. */
export interface EventState {
  status: string;
  attempts: number;
  errorMessage: string;
  deliveredAt: Date | null;
  nextAttemptAt: Date;
}

/** One event. */
export async function eventState(db: Database, eventId: string): Promise<EventState> {
  const [row] = await db.sql<EventState[]>`
    SELECT status, attempts, error_message AS "errorMessage", delivered_at AS "deliveredAt",
           next_attempt_at AS "nextAttemptAt"
    FROM outbox_event WHERE id = ${eventId}`;
  if (!row) throw new Error(`Cannot find event "${eventId}"`);
  return row;
}

/**
 * The endpoint policy of tests whose receivers listen on loopback (PORTAL_WEBHOOK_ALLOW_PRIVATE
 * on): `addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, ...)`. The default policy, which
 * refuses them, is what tests/security/ssrf_forms_test.ts proves.
 */
export const PRIVATE_TARGETS_ALLOWED = { webhookAllowPrivate: true } as const;
