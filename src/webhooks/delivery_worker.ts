/**
 * Webhook delivery for workers and jobs: `startDeliveryLoop` runs the engine on NOTIFY, on
 * `wake()` and on a timer; `deliverDueOnce` is one full pass for tests and the sweep job.
 */
import { OUTBOX_CHANNEL } from "../outbox/emit.ts";
import { nextDueAt } from "./deliveries_repo.ts";
import { systemClock } from "./delivery_attempt.ts";
import { type DeliveryCounts, type DeliveryDeps, DeliveryEngine } from "./delivery_engine.ts";

export type { DeliveryCounts, DeliveryDeps } from "./delivery_engine.ts";

/** Fallback wake-up when nothing is scheduled sooner: NOTIFY is only a hint (STYLE Database). */
const FALLBACK_WAKE_MS = 5_000;
const ERROR_RETRY_MS = 1_000;

/**
 * One full pass: fans out every due event, sends every due delivery and waits for the results
 * to be written. Returns what it did.
 *
 * @example
 * const counts = await deliverDueOnce({ db, config, logger, metrics });
 */
export async function deliverDueOnce(deps: DeliveryDeps): Promise<DeliveryCounts> {
  const engine = new DeliveryEngine(deps);
  try {
    await engine.pump();
    await engine.idle();
  } finally {
    if (engine.busy) {
      engine.abortSends();
      await engine.idle();
    }
    await engine.release();
  }
  return { ...engine.counts };
}

/** A running delivery loop. */
export interface DeliveryLoop {
  /** Runs a pass now (or right after the current one). */
  wake(): void;
  /** Resolves when no pass is running and no send is in flight. */
  drained(): Promise<void>;
  /**
   * Stops claiming, lets in-flight sends finish for up to `timeoutMs`, aborts the rest and
   * returns their claims to the pool.
   */
  stop(timeoutMs: number): Promise<void>;
  /** Totals since start. */
  counts(): DeliveryCounts;
}

/**
 * Starts delivering: LISTENs on the outbox channel (each commit of an event wakes it), rescans on
 * every (re)connect, and wakes on a timer at the next due retry (at least every 5 s).
 *
 * @example
 * const loop = startDeliveryLoop({ db, config, logger, metrics });
 * // on SIGTERM:
 * await loop.stop(config.shutdownTimeoutSeconds * 1000);
 */
export function startDeliveryLoop(deps: DeliveryDeps): DeliveryLoop {
  const engine = new DeliveryEngine(deps);
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger.child({ worker: engine.owner });
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timerAt = Infinity;

  const arm = (at: number) => {
    if (stopped || at >= timerAt) return;
    clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(() => {
      timerAt = Infinity;
      wake();
    }, Math.max(0, at - clock.now().getTime()));
  };
  engine.onScheduled = (at) => arm(at.getTime());

  const pass = async () => {
    do {
      again = false;
      try {
        await engine.pump();
      } catch (error) {
        if (stopped) break;
        logger.error("Cannot deliver webhooks: the delivery pass failed", { error });
        arm(clock.now().getTime() + ERROR_RETRY_MS);
        return;
      }
    } while (again && !stopped);
    if (stopped) return;
    const now = clock.now().getTime();
    let next = now + FALLBACK_WAKE_MS;
    try {
      const due = await nextDueAt(deps.db.sql, clock.now());
      if (due !== null && due.getTime() < next) next = due.getTime();
    } catch (error) {
      logger.warn("Cannot read the next due time: waking on the fallback timer", { error });
    }
    arm(Math.max(next, now + 10));
  };

  const wake = () => {
    if (stopped) return;
    engine.eventsMaybeDue = true;
    if (running !== null) {
      again = true;
      return;
    }
    running = pass().finally(() => {
      running = null;
      if (again && !stopped) wake();
    });
  };

  const subscription = deps.db.listen(OUTBOX_CHANNEL, () => wake(), () => wake()).catch(
    (error) => {
      logger.error("Cannot LISTEN for outbox events: relying on the timer", { error });
      return null;
    },
  );
  wake();

  return {
    wake,
    counts: () => ({ ...engine.counts }),
    async drained() {
      while (running !== null || engine.busy) {
        if (running !== null) await running;
        await engine.idle();
      }
    },
    async stop(timeoutMs) {
      if (stopped) return;
      stopped = true;
      engine.stopping = true;
      clearTimeout(timer);
      await (await subscription)?.unlisten().catch(() => {});
      let deadline: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<void>((resolve) => (deadline = setTimeout(resolve, timeoutMs)));
      await Promise.race([
        (async () => {
          await running;
          await engine.idle();
        })(),
        timedOut,
      ]);
      clearTimeout(deadline);
      engine.abortSends();
      await running;
      await engine.idle();
      const released = await engine.release();
      logger.info("delivery loop stopped", { released, ...engine.counts });
    },
  };
}
