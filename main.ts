/**
 * `portal`: the composition root. Loads the config, opens the database, builds the storage
 * adapter, the app and the jobs, serves, and shuts down in reverse order. The only module with
 * process side effects.
 */
import { type Config, loadConfig } from "./src/config/config.ts";
import type { Database } from "./src/db/db.ts";
import { openDatabase } from "./src/db/open.ts";
import { migrate } from "./src/db/migrate.ts";
import { createLogger, type Logger } from "./src/log/logger.ts";
import { bootstrapAdmin } from "./src/auth/account_service.ts";
import { loadSecretKey } from "./src/auth/secret_key.ts";
import { Metrics } from "./src/metrics/metrics.ts";
import { createApp } from "./src/http/app.ts";
import { healthRoutes } from "./src/http/health_routes.ts";
import { startServer } from "./src/http/server.ts";
import { type CommandIo, UsageError } from "./src/cli/cli_types.ts";
import { parseArgs } from "./src/cli/args.ts";
import { COMMAND_USAGE, MAIN_USAGE } from "./src/cli/usage.ts";
import {
  tokenCreate,
  userCreate,
  userList,
  userResetPassword,
  type WithDatabase,
} from "./src/cli/account_commands.ts";
import { DataDirError } from "./src/db/embedded/legacy_data_dir.ts";
import { NoEmbeddedPostgresError } from "./src/db/embedded/postgres_binaries.ts";
import { embeddedUpgrade } from "./src/cli/embedded_commands.ts";
import { VERSION } from "./src/version.ts";
import {
  webhookAdd,
  webhookDelete,
  webhookDisable,
  webhookEnable,
  webhookList,
  webhookRotateSecret,
  webhookTest,
} from "./src/cli/webhook_commands.ts";
import { eventsList, eventsRetry, eventsShow } from "./src/cli/events_commands.ts";
import { createStorage } from "./src/storage/storage_factory.ts";
import { storageCheck } from "./src/cli/storage_commands.ts";
import { registerDeliveryMetrics } from "./src/webhooks/delivery_metrics.ts";
import { type Background, startBackground } from "./src/jobs/background.ts";

/** Loads the config or exits 2 with every problem listed. */
function configOrExit(env: Record<string, string | undefined>): Readonly<Config> {
  const result = loadConfig(env);
  if (result.ok) return result.config;
  console.error("Cannot start: invalid configuration:");
  for (const error of result.errors) console.error(`  ${error}`);
  Deno.exit(2);
}

/** Opens and migrates the database for a one-shot command. */
function databaseRunner(config: Readonly<Config>): WithDatabase {
  return async (fn) => {
    const db = await openDatabase(config);
    try {
      await migrate(db);
      return await fn(db);
    } finally {
      await db.close();
    }
  };
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
  const storage = createStorage(config);
  const metrics = new Metrics();
  registerDeliveryMetrics(metrics, db);
  return { config, db, logger, secretKey, storage, metrics };
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

async function serve(config: Readonly<Config>, logger: Logger): Promise<number> {
  const deps = await openServices(config, logger);
  let firstRun: { email: string; password: string } | null = null;
  if (deps.db.embedded) {
    const admin = await bootstrapAdmin(deps.db, config.adminEmail);
    if (admin) firstRun = admin;
  }
  const server = await startServer(createApp(deps).fetch, {
    hostname: config.host,
    port: config.port,
    onError: (error) => logger.error("unhandled server error", { error }),
  });
  const background: Background | null = config.jobs ? startBackground(deps) : null;
  logger.info("listening", { url: config.publicUrl, host: server.hostname, port: server.port });
  console.log(`Portal is running at ${config.publicUrl} (press Ctrl+C to stop)`);
  if (firstRun) console.log(firstRunBlock(config.publicUrl, firstRun));

  const signal = await terminationSignal();
  logger.info("shutting down", { signal });
  const timeoutMs = config.shutdownTimeoutSeconds * 1000;
  await Promise.all([server.shutdown(timeoutMs), background?.stop(timeoutMs)]);
  deps.storage.close?.();
  await deps.db.close();
  logger.info("stopped");
  return 0;
}

async function worker(config: Readonly<Config>, logger: Logger): Promise<number> {
  const deps = await openServices(config, logger);
  const health = healthRoutes(deps);
  const server = await startServer(health.fetch, {
    hostname: config.host,
    port: config.workerPort,
  });
  const background = startBackground(deps);
  logger.info("worker listening", { host: server.hostname, port: server.port });
  const signal = await terminationSignal();
  logger.info("shutting down", { signal });
  const timeoutMs = config.shutdownTimeoutSeconds * 1000;
  await background.stop(timeoutMs);
  await server.shutdown(timeoutMs);
  deps.storage.close?.();
  await deps.db.close();
  logger.info("stopped");
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const env = Deno.env.toObject();
  const [first, second] = argv;
  if (first === "--version" || first === "-V") {
    console.log(`portal ${VERSION}`);
    return 0;
  }
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    console.log(MAIN_USAGE);
    return first === undefined ? 2 : 0;
  }
  const twoWord = second !== undefined && !second.startsWith("-") ? `${first} ${second}` : null;
  const path = twoWord && COMMAND_USAGE[twoWord] !== undefined ? twoWord : first;
  const rest = argv.slice(path.split(" ").length);
  const usage = COMMAND_USAGE[path];
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(usage ?? MAIN_USAGE);
    return usage ? 0 : 2;
  }
  const io: CommandIo = {
    args: rest,
    env,
    stdout: (line) => console.log(line),
    stderr: (line) => console.error(line),
    readStdin: async () =>
      new TextDecoder().decode(await new Response(Deno.stdin.readable).arrayBuffer()),
  };
  try {
    const config = () => configOrExit(env);
    const logger = (c: Readonly<Config>) => createLogger({ level: c.logLevel });
    switch (path) {
      case "serve": {
        parseArgs(rest, {});
        const c = config();
        return await serve(c, logger(c));
      }
      case "worker": {
        parseArgs(rest, {});
        const c = config();
        return await worker(c, logger(c));
      }
      case "migrate": {
        parseArgs(rest, {});
        const c = config();
        const db = await openDatabase(c);
        try {
          const { applied, alreadyApplied } = await migrate(db);
          console.log(
            applied.length > 0
              ? `Applied ${applied.length} migration(s): ${applied.join(", ")}`
              : `Nothing to apply: ${alreadyApplied} migration(s) already applied`,
          );
        } finally {
          await db.close();
        }
        return 0;
      }
      case "user create":
        return await userCreate(io, databaseRunner(config()));
      case "user list":
        return await userList(io, databaseRunner(config()));
      case "user reset-password":
        return await userResetPassword(io, databaseRunner(config()));
      case "embedded upgrade":
        return await embeddedUpgrade(io, config());
      case "token create":
        return await tokenCreate(io, databaseRunner(config()));
      case "webhook add":
        return await webhookAdd(io, databaseRunner(config()));
      case "webhook list":
        return await webhookList(io, databaseRunner(config()));
      case "webhook disable":
        return await webhookDisable(io, databaseRunner(config()));
      case "webhook enable":
        return await webhookEnable(io, databaseRunner(config()));
      case "webhook delete":
        return await webhookDelete(io, databaseRunner(config()));
      case "webhook rotate-secret":
        return await webhookRotateSecret(io, databaseRunner(config()));
      case "webhook test": {
        const c = config();
        return await webhookTest(io, databaseRunner(c), c);
      }
      case "events list":
        return await eventsList(io, databaseRunner(config()));
      case "events show":
        return await eventsShow(io, databaseRunner(config()));
      case "events retry":
        return await eventsRetry(io, databaseRunner(config()));
      case "storage check":
        return await storageCheck(io, createStorage(config()));
      default:
        throw new UsageError(`unknown command "${argv.join(" ")}"`);
    }
  } catch (error) {
    if (error instanceof DataDirError || error instanceof NoEmbeddedPostgresError) {
      console.error(`portal: ${error.message}`);
      return 2;
    }
    if (error instanceof UsageError) {
      console.error(`portal: ${error.message}`);
      console.error(usage ? `\n${usage}` : `Run "portal --help" for the commands.`);
      return 2;
    }
    console.error(`portal: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
