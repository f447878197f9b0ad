/**
 * Runs `main.ts` (the `portal` CLI) as a real subprocess: one-shot commands with stdin and a
 * timeout, and long-running `portal serve` processes whose output is watched line by line.
 * The child's environment is built from scratch (PATH, HOME and what the test passes), so a
 * DATABASE_URL or PORTAL_* set in the developer's shell never leaks into a test.
 */

/** The repository root (the directory holding deno.json). */
export const REPO_ROOT = new URL("../../", import.meta.url).pathname;

/** Path of the CLI entry point. */
export const MAIN_TS = new URL("../../main.ts", import.meta.url).pathname;

/** What a finished command printed and returned. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for `runCli` and `startPortal`. */
export interface CliOptions {
  /** Environment of the child, on top of PATH and HOME (default: nothing else). */
  env?: Record<string, string>;
  /** Text written to the child's standard input, which is then closed (default: none). */
  stdin?: string;
  /** Kill the child and fail after this long (default 30 s). */
  timeoutMs?: number;
}

/** The minimal environment a `deno` child needs to find its cache. */
function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

function command(args: string[], options: CliOptions, signal?: AbortSignal): Deno.Command {
  // `-q`: on a fresh Deno cache, `deno run` may print its own "Download https://..." progress
  // lines on stderr; they are not Portal's output and would break the comparisons below.
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      "-A",
      `--lock=${new URL("../deno.lock", import.meta.url).pathname}`,
      MAIN_TS,
      ...args,
    ],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: baseEnv(options.env),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal,
  });
}

/**
 * Runs `portal <args>` to completion.
 *
 * @example
 * const { code, stdout } = await runCli(["user", "list"], { env: { DATABASE_URL: url } });
 */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    const child = command(args, options, controller.signal).spawn();
    if (options.stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(options.stdin));
      await writer.close();
    }
    const output = await child.output();
    const result = {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
    if (timedOut) {
      throw new Error(
        `Cannot finish "portal ${args.join(" ")}": no exit after ${timeoutMs} ms\n${result.stderr}`,
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/** A running `portal` process whose output is collected as it arrives. */
export interface PortalProcess {
  child: Deno.ChildProcess;
  /** Lines printed on stdout so far. */
  stdoutLines: string[];
  /** Lines printed on stderr so far. */
  stderrLines: string[];
  /** Resolves with the first stdout line matching `pattern` (fails after `timeoutMs`). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` (default SIGTERM) and resolves with the exit status once output is drained. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Resolves with the exit status once the process ended by itself and output is drained. */
  exited(): Promise<Deno.CommandStatus>;
}

/** Reads a byte stream line by line into `lines`, calling `onLine` for each. */
async function collectLines(
  stream: ReadableStream<Uint8Array>,
  lines: string[],
  onLine: () => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    lines.push(...parts);
    if (parts.length > 0) onLine();
  }
  if (pending !== "") {
    lines.push(pending);
    onLine();
  }
}

/**
 * Starts `portal <args>` (usually `serve`) in the background.
 *
 * @example
 * const portal = startPortal(["serve"], { env: { DATABASE_URL: url, PORTAL_PORT: "0" } });
 * await portal.waitForLine(/Portal is running at/);
 * assert.equal((await portal.stop()).code, 0);
 */
export function startPortal(args: string[], options: CliOptions = {}): PortalProcess {
  const child = command(args, { ...options, stdin: undefined }).spawn();
  const stdoutLines: string[] = [];
  const stderrLines: string[] = [];
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  const drained = Promise.all([
    collectLines(child.stdout, stdoutLines, notify),
    collectLines(child.stderr, stderrLines, notify),
  ]);
  let ended = false;
  const finished = (async () => {
    const status = await child.status;
    await drained;
    ended = true;
    notify();
    return status;
  })();

  return {
    child,
    stdoutLines,
    stderrLines,
    waitForLine(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = stdoutLines.find((l) => pattern.test(l));
          if (line !== undefined || ended) {
            listeners.delete(check);
            clearTimeout(timer);
            if (line !== undefined) resolve(line);
            else {
              reject(
                new Error(
                  `portal exited before printing ${pattern}:\n${
                    [...stdoutLines, ...stderrLines].join("\n")
                  }`,
                ),
              );
            }
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(
            new Error(
              `portal printed no line matching ${pattern} within ${timeoutMs} ms:\n${
                [...stdoutLines, ...stderrLines].join("\n")
              }`,
            ),
          );
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async stop(signal = "SIGTERM") {
      if (!ended) {
        try {
          child.kill(signal);
        } catch {
          // already exited
        }
      }
      return await finished;
    },
    exited: () => finished,
  };
}

/** Polls `url` until it answers `status` (default 200); returns the milliseconds it took. */
export async function waitForStatus(
  url: string,
  { status = 200, timeoutMs = 30_000, intervalMs = 50 } = {},
): Promise<number> {
  const started = performance.now();
  let last = "no answer";
  while (performance.now() - started < timeoutMs) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.status === status) return performance.now() - started;
      last = `status ${response.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`Cannot reach ${url} with status ${status} within ${timeoutMs} ms: ${last}`);
}
