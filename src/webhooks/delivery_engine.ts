/**
 * The delivery engine behind `deliverDueOnce` and `startDeliveryLoop`: fans out due events,
 * leases due deliveries, sends them with bounded parallelism and no database lock or transaction
 * open (SPEC §5 Delivery), and writes the results back in short batched transactions guarded by
 * the lease.
 *
 * Past 300 lines on purpose: fan-out, lease, send and write-back share one in-flight set and one
 * wake-up flag, and split across files they would have to hand their state back and forth.
 */
import { hostname } from "node:os";
import type { Config } from "../config/config.ts";
import type { Database } from "../db/db.ts";
import type { Logger } from "../log/logger.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { payloadToSend } from "../uploads/download_links.ts";
import { VERSION } from "../version.ts";
import {
  applyDeliveryUpdates,
  claimDueDeliveries,
  type ClaimedDelivery,
  disableGoneEndpoints,
  insertAttempts,
  releaseLeases,
  rollUpEvents,
} from "../outbox/deliveries_repo.ts";
import { type Clock, systemClock } from "../app_deps.ts";
import { attemptDelivery, type AttemptOutcome } from "./delivery_attempt.ts";
import { attemptDurationHistogram, deliveriesCounter } from "./delivery_metrics.ts";
import { FAN_OUT_BATCH, fanOutDueEvents } from "./fanout.ts";
import type { Lookup } from "./ssrf_guard.ts";

/** What the delivery engine needs. */
export interface DeliveryDeps {
  db: Database;
  config: Readonly<Config>;
  /** Signs the download links that file events carry (`payloadToSend`). */
  secretKey: string;
  logger: Logger;
  metrics: Metrics;
  /** Names this worker in `lease_owner` (default `host:pid:random`). */
  workerId?: string;
  /** Scheduling time source (default: the system clock). */
  clock?: Clock;
  /** Jitter source in [0, 1) (default `Math.random`). */
  random?: () => number;
  /** Name resolution for the SSRF guard (default: the OS resolver). */
  lookup?: Lookup;
  /** Lease length in seconds (default 2 × (connect + whole timeout) + 30). */
  leaseSeconds?: number;
  /** Requests in flight per worker (default 32). */
  maxInFlight?: number;
}

/** Counts of one pass (or of a loop's life so far). */
export interface DeliveryCounts {
  /** Events taken from the outbox by fan-out. */
  fannedOut: number;
  delivered: number;
  retried: number;
  failed: number;
  refused: number;
}

const DEFAULT_MAX_IN_FLIGHT = 32;
const WRITE_BATCH = 500;

/** The default lease: longer than any attempt can take, so a live worker keeps its claims. */
export function defaultLeaseSeconds(config: Readonly<Config>): number {
  return 2 * (config.webhookConnectTimeoutSeconds + config.webhookTimeoutSeconds) + 30;
}

function defaultWorkerId(): string {
  let host = "worker";
  try {
    host = hostname();
  } catch {
    // No --allow-sys: the pid and the random part still make the id unique.
  }
  return `${host}:${Deno.pid}:${crypto.randomUUID().slice(0, 8)}`;
}

/** One engine per worker: holds the in-flight sends, the write-back queue and the claims. */
export class DeliveryEngine {
  /** This worker's `lease_owner`. */
  readonly owner: string;
  /** What this engine did so far (results written, not merely sent). */
  readonly counts: DeliveryCounts = {
    fannedOut: 0,
    delivered: 0,
    retried: 0,
    failed: 0,
    refused: 0,
  };
  /** Set by NOTIFY and timers: events may be waiting for fan-out. */
  eventsMaybeDue = true;
  /** Called with the earliest retry time a write-back scheduled. */
  onScheduled: (at: Date) => void = () => {};
  /** Set by a stopping loop: no new claims. */
  stopping = false;

  readonly #deps: DeliveryDeps;
  readonly #clock: Clock;
  readonly #maxInFlight: number;
  readonly #leaseMs: number;
  readonly #abort = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
  /** Claimed and not yet written back: what a stop must release. */
  readonly #held = new Set<string>();
  #queue: AttemptOutcome[] = [];
  #flushing: Promise<void> | null = null;
  #slotWaiters: (() => void)[] = [];

  constructor(deps: DeliveryDeps) {
    this.#deps = deps;
    this.owner = deps.workerId ?? defaultWorkerId();
    this.#clock = deps.clock ?? systemClock;
    this.#maxInFlight = deps.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    const leaseSeconds = deps.leaseSeconds ?? defaultLeaseSeconds(deps.config);
    // A lease shorter than an attempt would hand a live send to a second worker mid-flight.
    if (!(leaseSeconds > deps.config.webhookTimeoutSeconds)) {
      throw new Error(
        `Cannot start webhook delivery: the lease (${leaseSeconds} s) must be longer than ` +
          `WEBHOOK_TIMEOUT_SECONDS (${deps.config.webhookTimeoutSeconds} s)`,
      );
    }
    this.#leaseMs = leaseSeconds * 1000;
  }

  /** True while sends are in flight or results wait to be written. */
  get busy(): boolean {
    return this.#inFlight.size > 0 || this.#flushing !== null || this.#queue.length > 0;
  }

  /** Fans out and claims until nothing more is due; sends keep running after it returns. */
  async pump(): Promise<void> {
    while (!this.stopping) {
      const now = this.#clock.now();
      // Claim in batches of at least half the window, so each claim query carries its weight.
      const room = this.#inFlight.size > this.#maxInFlight / 2
        ? 0
        : this.#maxInFlight - this.#inFlight.size;
      const claim = {
        now,
        owner: this.owner,
        leasedUntil: new Date(now.getTime() + this.#leaseMs),
        limit: room,
      };
      let moreEvents = false;
      let rows: ClaimedDelivery[];
      if (this.eventsMaybeDue) {
        this.eventsMaybeDue = false;
        const fanned = await fanOutDueEvents(this.#deps, {
          now,
          maxAttempts: this.#deps.config.webhookMaxAttempts,
          claim: room > 0 ? claim : undefined,
        });
        this.counts.fannedOut += fanned.events;
        moreEvents = fanned.events >= FAN_OUT_BATCH;
        if (moreEvents) this.eventsMaybeDue = true;
        rows = fanned.claimed;
      } else {
        rows = await claimDueDeliveries(this.#deps.db.sql, claim);
      }
      for (const row of rows) this.#held.add(row.id);
      if (this.stopping) return; // the claims are released by stop()
      for (const row of rows) this.#start(row);
      if (room === 0) {
        if (!moreEvents) await this.#slotsFree();
        continue;
      }
      if (!moreEvents && rows.length < room) return;
    }
  }

  /** Resolves once every started send has finished and its result is written. */
  async idle(): Promise<void> {
    while (this.busy) {
      await Promise.allSettled([...this.#inFlight]);
      if (this.#flushing) await this.#flushing;
    }
  }

  /** Aborts the requests still in flight (their claims are released, not written). */
  abortSends(): void {
    this.#abort.abort();
  }

  /** Returns every claim not written back to the pool. */
  async release(): Promise<number> {
    const ids = [...this.#held];
    this.#held.clear();
    return await releaseLeases(this.#deps.db.sql, {
      owner: this.owner,
      ids,
      now: this.#clock.now(),
    });
  }

  #start(row: ClaimedDelivery): void {
    const send = (async () => {
      const outcome = await attemptDelivery(row, {
        config: this.#deps.config,
        preparePayload: (payload) => payloadToSend(this.#deps, payload),
        clock: this.#clock,
        random: this.#deps.random ?? Math.random,
        lookup: this.#deps.lookup,
        signal: this.#abort.signal,
        version: VERSION,
      });
      if (outcome === null) return; // aborted by stop(): released below
      deliveriesCounter(this.#deps.metrics).inc({ outcome: outcome.kind });
      if (outcome.durationSeconds !== null) {
        attemptDurationHistogram(this.#deps.metrics).observe(outcome.durationSeconds);
      }
      this.#queue.push(outcome);
      this.#flushing ??= this.#flush().finally(() => (this.#flushing = null));
    })().catch((error) => {
      this.#deps.logger.error("webhook attempt crashed", { delivery_id: row.id, error });
    }).finally(() => {
      this.#inFlight.delete(send);
      if (this.#inFlight.size <= this.#maxInFlight / 2) {
        for (const resolve of this.#slotWaiters.splice(0)) resolve();
      }
    });
    this.#inFlight.add(send);
  }

  #slotsFree(): Promise<void> {
    if (this.#inFlight.size <= this.#maxInFlight / 2) return Promise.resolve();
    return new Promise((resolve) => this.#slotWaiters.push(resolve));
  }

  /** Writes queued results; results that arrive meanwhile ride in the next batch. */
  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, WRITE_BATCH);
      await this.#write(batch);
      for (const outcome of batch) this.#held.delete(outcome.update.id);
    }
  }

  async #write(batch: AttemptOutcome[]): Promise<void> {
    const now = this.#clock.now();
    for (let tries = 1;; tries++) {
      try {
        const applied = await this.#deps.db.sql.begin(async (tx) => {
          // A result lost in a database crash only means the request is sent again with the same
          // webhook-id (at-least-once), so this commit need not wait for the WAL flush.
          await tx`SET LOCAL synchronous_commit = off`;
          const rows = await applyDeliveryUpdates(tx, {
            owner: this.owner,
            updates: batch.map((outcome) => outcome.update),
            now,
          });
          const ids = new Set(rows.map((row) => row.id));
          const mine = batch.filter((outcome) => ids.has(outcome.update.id));
          await insertAttempts(tx, {
            attempts: mine.flatMap((outcome) => outcome.attempt ? [outcome.attempt] : []),
            now,
          });
          await disableGoneEndpoints(tx, {
            endpoints: mine.flatMap((outcome) =>
              outcome.disableEndpointReason === null
                ? []
                : [{ id: outcome.endpointId, reason: outcome.disableEndpointReason }]
            ),
            now,
          });
          await rollUpEvents(tx, { eventIds: mine.map((outcome) => outcome.eventId), now });
          return mine;
        });
        this.#tally(applied, batch.length);
        return;
      } catch (error) {
        // Deadlock or serialisation failure (an operator deleting an endpoint meanwhile): the
        // transaction rolled back whole, so running it again is safe.
        const code = (error as { code?: unknown }).code;
        if ((code === "40P01" || code === "40001") && tries < 3) continue;
        // The claims stay leased and come back when the lease ends: sent again, same webhook-id.
        this.#deps.logger.error("Cannot record webhook results: the write-back failed", {
          deliveries: batch.length,
          error,
        });
        return;
      }
    }
  }

  #tally(applied: AttemptOutcome[], total: number): void {
    let earliestRetry: Date | null = null;
    for (const outcome of applied) {
      if (outcome.kind === "delivered") this.counts.delivered++;
      else if (outcome.kind === "retry") this.counts.retried++;
      else if (outcome.kind === "refused") this.counts.refused++;
      else this.counts.failed++;
      if (outcome.kind === "retry") {
        const at = outcome.update.nextAttemptAt;
        if (earliestRetry === null || at < earliestRetry) earliestRetry = at;
      }
      if (outcome.disableEndpointReason !== null) {
        this.#deps.logger.warn("webhook endpoint disabled", {
          endpoint_id: outcome.endpointId,
          reason: outcome.disableEndpointReason,
        });
      }
    }
    if (applied.length < total) {
      // Another worker took these over after our lease ended; its result stands.
      this.#deps.logger.warn("webhook results dropped: lease taken over", {
        dropped: total - applied.length,
      });
    }
    if (earliestRetry !== null) this.onScheduled(earliestRetry);
  }
}
