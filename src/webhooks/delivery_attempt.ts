/**
 * One delivery attempt, from a claimed row to the row's next state: check the URL against the
 * SSRF guard at send time, sign, send to the checked address, and decide what happens next
 * (delivered, retry with backoff, or failed). No database access here: the caller holds no lock
 * or transaction while this runs (SPEC §5 Delivery).
 */
import type { Clock } from "../app_deps.ts";
import type { Config } from "../config/config.ts";
import { newId } from "../db/ids.ts";
import { applyRetryAfter, nextAttemptDelaySeconds } from "./backoff.ts";
import type { AttemptRow, ClaimedDelivery, DeliveryUpdate } from "../outbox/deliveries_repo.ts";
import { sendToEndpoint } from "./send.ts";
import type { Lookup } from "./ssrf_guard.ts";

/** How an attempt ended, as counted in `portal_webhook_deliveries_total{outcome}`. */
export type AttemptKind = "delivered" | "retry" | "failed" | "refused";

/** The result of one attempt: the delivery's new state and the attempt to log. */
export interface AttemptOutcome {
  kind: AttemptKind;
  eventId: string;
  endpointId: string;
  update: DeliveryUpdate;
  /** Null when no request was made for a reason other than the SSRF guard. */
  attempt: AttemptRow | null;
  /** Set when the endpoint must be disabled (it answered `410 Gone`). */
  disableEndpointReason: string | null;
  /** Seconds the request took, for the duration histogram; null when nothing was sent. */
  durationSeconds: number | null;
}

/** What `attemptDelivery` needs besides the claimed row. */
export interface AttemptContext {
  config: Pick<
    Config,
    | "webhookAllowPrivate"
    | "webhookBackoffBaseSeconds"
    | "webhookBackoffMaxSeconds"
    | "webhookConnectTimeoutSeconds"
    | "webhookTimeoutSeconds"
  >;
  /** Turns the stored payload into the one sent (adds a file event's download link). */
  preparePayload?: (payload: unknown) => unknown;
  clock: Clock;
  /** Jitter source in [0, 1). */
  random: () => number;
  /** Name resolution for the SSRF guard (default: the OS resolver). */
  lookup?: Lookup;
  /** Aborts the request when the worker stops. */
  signal?: AbortSignal;
  version: string;
}

/** The Standard Webhooks `webhook-id` of a delivery: stable across retries and duplicates. */
export function messageId(deliveryId: string): string {
  return `msg_${deliveryId}`;
}

/** The secrets to sign with: the current one, then the previous one while it is still valid. */
export function signingSecrets(
  endpoint: { secret: string; previousSecret: string | null; previousSecretExpiresAt: Date | null },
  now: Date,
): string[] {
  const secrets = [endpoint.secret];
  if (
    endpoint.previousSecret !== null && endpoint.previousSecretExpiresAt !== null &&
    endpoint.previousSecretExpiresAt.getTime() > now.getTime()
  ) {
    secrets.push(endpoint.previousSecret);
  }
  return secrets;
}

/**
 * Makes one attempt for `row`; returns null when the attempt was aborted by a stopping worker
 * (the claim is then released and the delivery sent again later, with the same webhook-id).
 */
export async function attemptDelivery(
  row: ClaimedDelivery,
  ctx: AttemptContext,
): Promise<AttemptOutcome | null> {
  const startedAt = ctx.clock.now();
  const attemptNumber = row.attempts + 1;
  const base = { eventId: row.eventId, endpointId: row.endpointId };

  if (!row.endpointActive) {
    // The endpoint was disabled after fan-out: nothing is sent; "retry" after enabling it.
    const reason = row.disabledReason === "" ? "" : `: ${row.disabledReason}`;
    const error = `Cannot deliver to endpoint "${row.endpointId}": it is disabled${reason}`;
    return {
      ...base,
      kind: "failed",
      update: finalUpdate(row, { status: "failed", attempts: row.attempts, error, now: startedAt }),
      attempt: null,
      disableEndpointReason: null,
      durationSeconds: null,
    };
  }

  const sent = await sendToEndpoint(row.url, {
    deliveryId: row.id,
    msgId: messageId(row.id),
    eventType: row.eventType,
    payload: ctx.preparePayload ? ctx.preparePayload(row.payload) : row.payload,
    occurredAt: row.occurredAt,
    secrets: signingSecrets(row, startedAt),
    now: startedAt,
    version: ctx.version,
  }, ctx);
  if (!sent.sent) {
    // A name that does not resolve may resolve later (DNS outage): nothing was sent, so retry
    // like a network error and say so. A forbidden address is policy (SPEC §5 Delivery): fail
    // at once, never retry.
    if (sent.unresolved) {
      const error = attemptNumber < row.maxAttempts ? `${sent.reason}; will retry` : sent.reason;
      const attempt = attemptRow(row, { number: attemptNumber, at: startedAt, error });
      return retryOrFail(row, ctx, { attempt, statusCode: null, error }, null);
    }
    const attempt = attemptRow(row, { number: attemptNumber, at: startedAt, error: sent.reason });
    return {
      ...base,
      kind: "refused",
      update: finalUpdate(row, {
        status: "failed",
        attempts: attemptNumber,
        error: sent.reason,
        now: ctx.clock.now(),
      }),
      attempt,
      disableEndpointReason: null,
      durationSeconds: null,
    };
  }
  const result = sent.result;
  if (ctx.signal?.aborted && result.error === "aborted") return null;

  const attempt = attemptRow(row, {
    number: attemptNumber,
    at: startedAt,
    statusCode: result.statusCode,
    durationMs: result.durationMs,
    error: result.error,
    responseBody: result.responseStart,
  });
  const durationSeconds = result.durationMs / 1000;
  const now = ctx.clock.now();
  if (result.error === "") {
    return {
      ...base,
      kind: "delivered",
      update: finalUpdate(row, {
        status: "delivered",
        attempts: attemptNumber,
        statusCode: result.statusCode,
        now,
      }),
      attempt,
      disableEndpointReason: null,
      durationSeconds,
    };
  }
  if (result.statusCode === 410) {
    // 410 Gone: the receiver says the endpoint no longer exists; stop sending to it at all.
    const reason = `the receiver answered 410 Gone on ${now.toISOString()}`;
    return {
      ...base,
      kind: "failed",
      update: finalUpdate(row, {
        status: "failed",
        attempts: attemptNumber,
        statusCode: 410,
        error: result.error,
        now,
      }),
      attempt,
      disableEndpointReason: reason,
      durationSeconds,
    };
  }
  return retryOrFail(row, ctx, {
    attempt,
    statusCode: result.statusCode,
    error: result.error,
    retryAfterSeconds: result.retryAfterSeconds,
  }, durationSeconds);
}

function retryOrFail(
  row: ClaimedDelivery,
  ctx: AttemptContext,
  failure: {
    attempt: AttemptRow;
    statusCode: number | null;
    error: string;
    retryAfterSeconds?: number | null;
  },
  durationSeconds: number | null,
): AttemptOutcome {
  const now = ctx.clock.now();
  const attempts = failure.attempt.attemptNumber;
  const base = {
    eventId: row.eventId,
    endpointId: row.endpointId,
    attempt: failure.attempt,
    disableEndpointReason: null,
    durationSeconds,
  };
  if (attempts >= row.maxAttempts) {
    return {
      ...base,
      kind: "failed",
      update: finalUpdate(row, {
        status: "failed",
        attempts,
        statusCode: failure.statusCode,
        error: failure.error,
        now,
      }),
    };
  }
  // SPEC §5 Delivery: min(base·2^(n-1), max) plus up to 10% jitter, never sooner than the
  // receiver's Retry-After (429/503).
  const delaySeconds = applyRetryAfter(
    nextAttemptDelaySeconds(attempts, {
      baseSeconds: ctx.config.webhookBackoffBaseSeconds,
      maxSeconds: ctx.config.webhookBackoffMaxSeconds,
      random: ctx.random,
    }),
    failure.retryAfterSeconds ?? null,
  );
  return {
    ...base,
    kind: "retry",
    update: {
      id: row.id,
      leasedUntil: row.leasedUntil,
      status: "pending",
      attempts,
      nextAttemptAt: new Date(now.getTime() + Math.round(delaySeconds * 1000)),
      lastStatusCode: failure.statusCode,
      lastError: cleanText(failure.error),
      deliveredAt: null,
    },
  };
}

/** The last state of a delivery that is done (delivered, or failed for good). */
function finalUpdate(
  row: ClaimedDelivery,
  end: {
    status: "delivered" | "failed";
    attempts: number;
    statusCode?: number | null;
    error?: string;
    now: Date;
  },
): DeliveryUpdate {
  return {
    id: row.id,
    leasedUntil: row.leasedUntil,
    status: end.status,
    attempts: end.attempts,
    nextAttemptAt: end.now,
    lastStatusCode: end.statusCode ?? null,
    lastError: cleanText(end.error ?? ""),
    deliveredAt: end.status === "delivered" ? end.now : null,
  };
}

/** The log row of one attempt; nothing sent when only `number`, `at` and `error` are given. */
function attemptRow(
  row: ClaimedDelivery,
  attempt: {
    number: number;
    at: Date;
    statusCode?: number | null;
    durationMs?: number;
    error: string;
    responseBody?: string;
  },
): AttemptRow {
  return {
    id: newId(),
    deliveryId: row.id,
    attemptNumber: attempt.number,
    attemptedAt: attempt.at,
    statusCode: attempt.statusCode ?? null,
    durationMs: Math.round(attempt.durationMs ?? 0),
    error: cleanText(attempt.error),
    responseBody: cleanText(attempt.responseBody ?? ""),
  };
}

/** Postgres `text` cannot hold NUL; a receiver's bytes must not make the write-back fail. */
function cleanText(text: string): string {
  return text.includes("\u0000") ? text.replaceAll("\u0000", "\uFFFD") : text;
}
