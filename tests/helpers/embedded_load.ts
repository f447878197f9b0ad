/**
 * Load-test pieces for the embedded default: timed requests, latency figures, a barrier that
 * lines concurrent transactions up, and a scan of a server's output for errors.
 */
import type { PortalProcess } from "./cli.ts";
import { postmasterPid, waitForServerStopped } from "./embedded.ts";

/** One finished request: what it was, its status and how long it took. */
export interface Timed {
  kind: string;
  status: number;
  ms: number;
}

/**
 * Runs `fn` (a request and the checks of its answer) and times it. A thrown error (a refused
 * connection, a failed check) is recorded as status 0 with its message, so one bad answer does
 * not hide the others of the same burst.
 */
export async function timed(
  kind: string,
  fn: () => Promise<number>,
  problems: string[],
): Promise<Timed> {
  const began = performance.now();
  try {
    const status = await fn();
    return { kind, status, ms: performance.now() - began };
  } catch (error) {
    problems.push(`${kind}: ${(error as Error).message}`);
    return { kind, status: 0, ms: performance.now() - began };
  }
}

/** The `p`-th percentile (0 to 100) of `values`, nearest rank; 0 for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Database failures as they show up in a log line or an error message. */
const DATABASE_ERROR =
  /PostgresError|does not exist|deadlock|could not serialize|current transaction is aborted|CONNECTION_(CLOSED|ENDED|DESTROYED)|ECONNRESET|too many clients|remaining connection slots|terminating connection|syntax error|duplicate key|violates/i;

/**
 * The lines of a server's stdout and stderr that report a problem: a JSON log line with level
 * "error", a request answered 5xx, or any line naming a database error.
 */
export function serverProblems(portal: PortalProcess): string[] {
  const found: string[] = [];
  for (const line of [...portal.stdoutLines, ...portal.stderrLines]) {
    if (DATABASE_ERROR.test(line)) {
      found.push(line);
      continue;
    }
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof record !== "object" || record === null) continue;
    const { level, status } = record as { level?: unknown; status?: unknown };
    if (level === "error" || (typeof status === "number" && status >= 500)) found.push(line);
  }
  return found;
}

/**
 * A barrier for `parties` tasks: each `wait()` resolves once all of them have called it. Used to
 * hold transactions at a chosen point so they interleave the way a test needs.
 */
export class Barrier {
  #waiting = 0;
  #release!: () => void;
  readonly #open: Promise<void>;

  constructor(readonly parties: number) {
    this.#open = new Promise((resolve) => this.#release = resolve);
  }

  /** Resolves when every party has arrived. */
  wait(): Promise<void> {
    if (++this.#waiting >= this.parties) this.#release();
    return this.#open;
  }
}

/** Stops the embedded server of `dataDir` if a failed test left it running (it is detached). */
export async function stopLeftoverServer(dataDir: string): Promise<void> {
  const pid = await postmasterPid(dataDir);
  if (pid === null) return;
  Deno.kill(pid, "SIGTERM");
  await waitForServerStopped(dataDir).catch(() => {});
}

/** Polls `check` every 100 ms until it returns true; throws `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const began = performance.now();
  while (!(await check())) {
    if (performance.now() - began > timeoutMs) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting until ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
