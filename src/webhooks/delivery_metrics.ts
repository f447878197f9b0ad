/**
 * Delivery metrics (SPEC §5 Operations: deliveries by outcome, outbox lag). Counters and the
 * duration histogram live in the process; the gauges are read from the database at scrape time
 * so every replica reports the shared backlog.
 */
import type { Database } from "../db/db.ts";
import type { Counter, Histogram, Metrics } from "../metrics/metrics.ts";
import { outboxBacklog } from "../outbox/events_repo.ts";

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** `portal_webhook_deliveries_total{outcome=delivered|retry|failed|refused}`. */
export function deliveriesCounter(metrics: Metrics): Counter {
  return metrics.counter(
    "portal_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, retry, failed, refused)",
  );
}

/** `portal_webhook_attempt_duration_seconds`: time from sending to the receiver's answer. */
export function attemptDurationHistogram(metrics: Metrics): Histogram {
  return metrics.histogram(
    "portal_webhook_attempt_duration_seconds",
    "Duration of webhook HTTP attempts in seconds",
    DURATION_BUCKETS,
  );
}

/**
 * Registers the delivery series on `metrics`: the counters at zero and the scrape-time gauges
 * `portal_outbox_pending_events`, `portal_outbox_oldest_pending_age_seconds` (outbox lag) and
 * `portal_webhook_pending_deliveries`. Call once per registry.
 */
export function registerDeliveryMetrics(metrics: Metrics, db: Database): void {
  const counter = deliveriesCounter(metrics);
  for (const outcome of ["delivered", "retry", "failed", "refused"]) counter.inc({ outcome }, 0);
  attemptDurationHistogram(metrics);
  metrics.gauge({
    name: "portal_outbox_pending_events",
    help: "Outbox events not yet delivered or failed",
    async collect() {
      return [{ value: (await outboxBacklog(db.sql)).pending }];
    },
  });
  metrics.gauge({
    name: "portal_outbox_oldest_pending_age_seconds",
    help: "Age of the oldest pending outbox event in seconds (0 when none): the outbox lag",
    async collect() {
      return [{ value: (await outboxBacklog(db.sql)).oldestAgeSeconds }];
    },
  });
  metrics.gauge({
    name: "portal_webhook_pending_deliveries",
    help: "Webhook deliveries waiting to be sent or retried",
    async collect() {
      const [row] = await db.sql<{ count: number }[]>`
        SELECT count(*)::int AS count FROM webhook_delivery WHERE status = 'pending'`;
      return [{ value: row?.count ?? 0 }];
    },
  });
}
