/**
 * Portal on its embedded default, as a newcomer runs it: `portal serve` with no DATABASE_URL,
 * a data dir of its own, the first-start admin password read from the framed block.
 */
import postgres from "postgres";
import { join } from "node:path";
import { freePort } from "./app.ts";
import { type PortalProcess, startPortal, waitForStatus } from "./cli.ts";

/**
 * A fresh data dir. Mode 0755: when the tests run as root the embedded server runs as the
 * `postgres` account, which must be able to reach it (Deno.makeTempDir makes 0700 folders).
 */
export async function embeddedDataDir(label: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: `portal-${label}-` });
  await Deno.chmod(dir, 0o755);
  return dir;
}

/** A running `portal serve` on the embedded database. */
export interface EmbeddedPortal {
  portal: PortalProcess;
  base: string;
  port: number;
  /** Milliseconds from spawn to the first 200 from /readyz. */
  readyMs: number;
}

/** Starts `portal serve` on `dataDir`; resolves once /readyz answers 200. */
export async function serveEmbedded(
  dataDir: string,
  env: Record<string, string> = {},
): Promise<EmbeddedPortal> {
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const portal = startPortal(["serve"], {
    env: { PORTAL_DATA_DIR: dataDir, PORTAL_PORT: String(port), PORTAL_JOBS: "off", ...env },
  });
  try {
    const readyMs = await Promise.race([
      waitForStatus(`${base}/readyz`, { timeoutMs: 60_000 }),
      portal.exited().then((status) => {
        throw new Error(
          `portal serve exited with ${status.code} before it was ready:\n${
            [...portal.stdoutLines, ...portal.stderrLines].join("\n")
          }`,
        );
      }),
    ]);
    return { portal, base, port, readyMs };
  } catch (error) {
    await portal.stop("SIGKILL");
    throw error;
  }
}

const PASSWORD_LINE = /^\|\s+password\s+(\S+)\s+\|$/;

/** The one-time admin password from the framed first-start block (waits for it). */
export async function adminPassword(portal: PortalProcess, timeoutMs = 10_000): Promise<string> {
  const line = await portal.waitForLine(PASSWORD_LINE, timeoutMs);
  return PASSWORD_LINE.exec(line)![1]!;
}

/** A direct connection to the embedded server of `dataDir` (read from its own files). */
export async function connectEmbedded(
  dataDir: string,
  database = "portal",
): Promise<postgres.Sql> {
  const pid = await Deno.readTextFile(join(dataDir, "pg", "postmaster.pid"));
  const port = Number(pid.split("\n")[3]);
  const password = (await Deno.readTextFile(join(dataDir, "pg-password"))).trim();
  return postgres({
    host: "127.0.0.1",
    port,
    user: "postgres",
    password,
    database,
    max: 2,
    onnotice: () => {},
  });
}

/** The postmaster's pid when the embedded server of `dataDir` runs, else null. */
export async function postmasterPid(dataDir: string): Promise<number | null> {
  try {
    const text = await Deno.readTextFile(join(dataDir, "pg", "postmaster.pid"));
    const pid = Number(text.split("\n")[0]);
    Deno.kill(pid, "SIGCONT");
    return pid;
  } catch {
    return null;
  }
}

/** Waits until the embedded server of `dataDir` has stopped (its postmaster.pid is gone). */
export async function waitForServerStopped(dataDir: string, timeoutMs = 15_000): Promise<void> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (await postmasterPid(dataDir) === null) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`The embedded server of "${dataDir}" still runs after ${timeoutMs} ms`);
}

/** Stops the detached server a failed test may have left running (cleanup in `finally`). */
export async function stopEmbeddedServer(dataDir: string): Promise<void> {
  const pid = await postmasterPid(dataDir);
  if (pid === null) return;
  Deno.kill(pid, "SIGTERM");
  await waitForServerStopped(dataDir).catch(() => {});
}
