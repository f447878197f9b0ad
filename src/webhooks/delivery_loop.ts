/**
 * Webhook delivery for workers and jobs: `startDeliveryLoop` runs the engine on NOTIFY, on
 * `wake()`, on `sweep()` (the sweep job) and on a timer; `deliverDueOnce` is one full pass on an
 * engine of its own, for tests and one-shot commands.
 */
import { OUTBOX_CHANNEL } from "../outbox/emit.ts";
import { nextDueAt } from "../outbox/deliveries_repo.ts";
import { systemClock } from "../app_deps.ts";
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
  /**
   * Wakes the loop and resolves when a pass begun after the call has claimed all that was due
   * (its sends may still be in flight), with what the loop wrote meanwhile. Rejects when that
   * pass fails; resolves at once, with zeros, once `stop` has begun.
   */
  sweep(): Promise<DeliveryCounts>;
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
  // Pumps begun so far; a sweep waits for one numbered above what it saw when it was called.
  let pumps = 0;
  const sweeps = new Set<{ after: number; settle: (error?: unknown) => void }>();
  const settleSweeps = (pump: number, error?: unknown) => {
    for (const waiter of sweeps) {
      if (pump > waiter.after) {
        sweeps.delete(waiter);
        waiter.settle(error);
      }
    }
  };

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
      const pump = ++pumps;
      try {
        await engine.pump();
        settleSweeps(pump);
      } catch (error) {
        settleSweeps(pump, error);
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
    async sweep() {
      const before = { ...engine.counts };
      if (!stopped) {
        await new Promise<void>((resolve, reject) => {
          sweeps.add({
            after: pumps,
            settle: (error) => error === undefined ? resolve() : reject(error),
          });
          wake();
        });
      }
      const counts = { ...engine.counts };
      for (const key of Object.keys(counts) as (keyof DeliveryCounts)[]) {
        counts[key] -= before[key];
      }
      return counts;
    },
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
      // A sweep tick must not hold shutdown: the pass it waits for stops claiming now.
      settleSweeps(Infinity);
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
