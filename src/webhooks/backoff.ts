/**
 * Retry timing for webhook deliveries: exponential backoff with a cap and up to 10% jitter
 * (SPEC §5 Delivery: `min(60 * 2^(attempt-1), 3600)` seconds), stretched when the receiver asks
 * for more with Retry-After.
 */

/** Options for `nextAttemptDelaySeconds`. */
export interface BackoffOptions {
  /** Delay after the first failed attempt, in seconds (Portal uses 60). */
  baseSeconds: number;
  /** Cap on the delay before jitter, in seconds (Portal uses 3600). */
  maxSeconds: number;
  /** Source of jitter in [0, 1) (default: `Math.random`). */
  random?: () => number;
}

/** Options for `applyRetryAfter`. */
export interface RetryAfterOptions {
  /** Longest Retry-After honoured, in seconds (default 86 400, one day). */
  maxSeconds?: number;
}

const DEFAULT_RETRY_AFTER_MAX_SECONDS = 86_400;

/**
 * Seconds to wait after failed attempt `attempt` (1-based): `min(base * 2^(attempt-1), max)` plus
 * up to 10% of that as jitter.
 */
export function nextAttemptDelaySeconds(attempt: number, options: BackoffOptions): number {
  const random = options.random ?? Math.random;
  const exponent = Math.max(0, Math.floor(attempt) - 1);
  // 2 ** exponent reaches Infinity for huge attempts, which the cap turns back into max.
  const delay = Math.min(options.baseSeconds * 2 ** exponent, options.maxSeconds);
  // Jitter spreads retries of many deliveries that failed together (one receiver outage) so
  // they do not all come back in the same second.
  return delay + delay * 0.1 * random();
}

/**
 * The later of our backoff and the receiver's Retry-After (RFC 9110 §10.2.3), the latter capped so
 * a receiver cannot park a delivery indefinitely.
 */
export function applyRetryAfter(
  delaySeconds: number,
  retryAfterSeconds: number | null,
  options: RetryAfterOptions = {},
): number {
  if (retryAfterSeconds === null || !Number.isFinite(retryAfterSeconds)) return delaySeconds;
  const cap = options.maxSeconds ?? DEFAULT_RETRY_AFTER_MAX_SECONDS;
  return Math.max(delaySeconds, Math.min(retryAfterSeconds, cap));
}
