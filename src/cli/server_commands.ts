/**
 * `portal serve`, `portal worker` and `portal migrate`: open the database (migrated), the key,
 * storage and metrics; run the web server and/or the background work until SIGINT or SIGTERM;
 * then shut down in one order for both (`shutDown`).
 */
import type { Config } from "../config/config.ts";
import type { Database } from "../db/db.ts";
import { openDatabase } from "../db/open.ts";
import { migrate } from "../db/migrate.ts";
import type { Logger } from "../log/logger.ts";
import { bootstrapAdmin } from "../auth/account_service.ts";
import { loadSecretKey } from "../auth/secret_key.ts";
import { Metrics } from "../metrics/metrics.ts";
import type { AppDeps } from "../app_deps.ts";
import { type Handler, type RunningServer, startServer } from "../http/server.ts";
import type { StorageAdapter } from "../storage/storage.ts";
import { createStorage } from "../storage/storage_factory.ts";
import { registerDeliveryMetrics } from "../webhooks/delivery_metrics.ts";
import { type Background, startBackground } from "../jobs/background.ts";
import type { CommandIo } from "./cli_types.ts";

/**
 * The HTTP apps the servers run. They are built by the route table (app.ts at the top) and
 * handed in by main.ts, so nothing under src/ imports routes/.
 */
export interface ServerApps {
  /** The whole web app of `portal serve`. */
  web(deps: AppDeps): { fetch: Handler };
  /** The health and metrics app of `portal worker`. */
  worker(deps: AppDeps): { fetch: Handler };
  /** The app of the PORTAL_METRICS_PORT listener, in either mode. */
  metrics(deps: AppDeps): { fetch: Handler };
}

/** The PORTAL_METRICS_PORT listener when one is configured. */
async function startMetricsServer(
  deps: AppDeps,
  apps: ServerApps,
): Promise<RunningServer | null> {
  if (deps.config.metricsPort === null) return null;
  const server = await startServer(apps.metrics(deps).fetch, {
    hostname: deps.config.metricsHost,
    port: deps.config.metricsPort,
  });
  deps.logger.info("metrics listening", { host: server.hostname, port: server.port });
  return server;
}

/** Resolves when SIGINT or SIGTERM arrives. */
function terminationSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
  });
}

async function openRuntime(config: Readonly<Config>, logger: Logger): Promise<Database> {
  const started = performance.now();
  const db = await openDatabase(config, {
    onEvent: (message, fields) => logger.info(message, fields),
  });
  const { applied } = await migrate(db);
  logger.info("database ready", {
    database: db.description,
    migrations_applied: applied,
    duration_ms: Math.round(performance.now() - started),
  });
  return db;
}

/** The shared parts of `serve` and `worker`: database, key, storage and metrics. */
async function openServices(config: Readonly<Config>, logger: Logger) {
  const db = await openRuntime(config, logger);
  const secretKey = await loadSecretKey(db, config.secretKey);
  if (config.secretKey === null && config.databaseUrl !== null) {
    // The key then sits in the database beside the files it guards: anyone who reads a backup
    // can sign download links. The embedded default keeps both in one data dir anyway.
    logger.warn("PORTAL_SECRET_KEY is unset: the signing key is kept in the database", {
      hint: "set PORTAL_SECRET_KEY (32+ characters) in production, the same on every replica",
    });
  }
  const storage = createStorage(config);
  const metrics = new Metrics();
  registerDeliveryMetrics(metrics, db);
  return { config, db, logger, secretKey, storage, metrics };
}

/**
 * The one shutdown order of `serve` and `worker`: stop taking work and drain it (the HTTP
 * server stops accepting and finishes its requests while the background work stops claiming
 * and finishes its deliveries and job ticks, both within `timeoutMs`), then close storage,
 * then the database (the embedded server stops with the last process on it).
 */
export async function shutDown(
  parts: {
    server: RunningServer;
    metricsServer: RunningServer | null;
    background: Background | null;
    storage: StorageAdapter;
    db: Database;
    logger: Logger;
  },
  timeoutMs: number,
): Promise<void> {
  await Promise.all([
    parts.server.shutdown(timeoutMs),
    parts.metricsServer?.shutdown(timeoutMs),
    parts.background?.stop(timeoutMs),
  ]);
  parts.storage.close?.();
  await parts.db.close();
  parts.logger.info("stopped");
}

/** The one-time admin password, framed so a person finds it between the log lines. */
function firstRunBlock(url: string, admin: { email: string; password: string }): string {
  const lines = [
    "First start: an admin account was created. Its password is shown this once:",
    "",
    `  open      ${url}`,
    `  email     ${admin.email}`,
    `  password  ${admin.password}`,
    "",
    "Lost it? A new one: portal user reset-password --email " + admin.email,
    "(from the source tree: deno run -A main.ts user reset-password --email " + admin.email + ")",
  ];
  const width = Math.max(...lines.map((line) => line.length));
  const rule = `+${"-".repeat(width + 2)}+`;
  return ["", rule, ...lines.map((line) => `| ${line.padEnd(width)} |`), rule, ""].join("\n");
}

/** `portal serve`. */
export async function serve(
  config: Readonly<Config>,
  logger: Logger,
  apps: ServerApps,
): Promise<number> {
  const deps = await openServices(config, logger);
  let firstRun: { email: string; password: string } | null = null;
  if (deps.db.embedded) {
    const admin = await bootstrapAdmin(deps, config.adminEmail);
    if (admin) firstRun = admin;
  }
  const server = await startServer(apps.web(deps).fetch, {
    hostname: config.host,
    port: config.port,
    onError: (error) => logger.error("unhandled server error", { error }),
    bodyIdleTimeoutMs: config.bodyIdleTimeoutSeconds * 1000,
  });
  const metricsServer = await startMetricsServer(deps, apps);
  const background = config.jobs ? startBackground(deps) : null;
  logger.info("listening", { url: config.publicUrl, host: server.hostname, port: server.port });
  console.log(`Portal is running at ${config.publicUrl} (press Ctrl+C to stop)`);
  if (firstRun) console.log(firstRunBlock(config.publicUrl, firstRun));

  const signal = await terminationSignal();
  logger.info("shutting down", { signal });
  await shutDown(
    { ...deps, server, metricsServer, background },
    config.shutdownTimeoutSeconds * 1000,
  );
  return 0;
}

/** `portal worker`. */
export async function worker(
  config: Readonly<Config>,
  logger: Logger,
  apps: ServerApps,
): Promise<number> {
  const deps = await openServices(config, logger);
  const server = await startServer(apps.worker(deps).fetch, {
    hostname: config.host,
    port: config.workerPort,
  });
  const metricsServer = await startMetricsServer(deps, apps);
  const background = startBackground(deps);
  logger.info("worker listening", { host: server.hostname, port: server.port });
  const signal = await terminationSignal();
  logger.info("shutting down", { signal });
  await shutDown(
    { ...deps, server, metricsServer, background },
    config.shutdownTimeoutSeconds * 1000,
  );
  return 0;
}

/** `portal migrate`. */
export async function migrateCommand(io: CommandIo, config: Readonly<Config>): Promise<number> {
  const db = await openDatabase(config);
  try {
    const { applied, alreadyApplied } = await migrate(db);
    io.stdout(
      applied.length > 0
        ? `Applied ${applied.length} migration(s): ${applied.join(", ")}`
        : `Nothing to apply: ${alreadyApplied} migration(s) already applied`,
    );
  } finally {
    await db.close();
  }
  return 0;
}
