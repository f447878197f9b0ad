/**
 * The command table of `portal`: every command's path, its line in `portal --help` and what it
 * runs. `main.ts` dispatches through `findCommand`, and `mainUsage` builds the top-level help
 * from the same table, so a command cannot be runnable and unlisted, or listed and missing.
 * Each command's long help is `COMMAND_USAGE[path]` (usage.ts).
 */
import { type Config, loadConfig } from "../config/config.ts";
import { openDatabase } from "../db/open.ts";
import { migrate } from "../db/migrate.ts";
import { createLogger } from "../log/logger.ts";
import { createStorage } from "../storage/storage_factory.ts";
import { VERSION } from "../version.ts";
import {
  tokenCreate,
  tokenList,
  tokenRevoke,
  userCreate,
  userList,
  userResetPassword,
  type WithDatabase,
} from "./account_commands.ts";
import { parseArgs } from "./args.ts";
import type { CommandIo } from "./cli_types.ts";
import { embeddedUpgrade } from "./embedded_commands.ts";
import { eventsList, eventsRetry, eventsShow } from "./events_commands.ts";
import { migrateCommand, serve, type ServerApps, worker } from "./server_commands.ts";
import { storageCheck } from "./storage_commands.ts";
import {
  webhookAdd,
  webhookDelete,
  webhookDisable,
  webhookEnable,
  webhookList,
  webhookRotateSecret,
  webhookTest,
} from "./webhook_commands.ts";

/** Thrown when the settings are invalid: `portal` prints them and exits 2. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join("; ")}`);
  }
}

/** What a command runs with: its I/O, and the settings and database on first use. */
export interface CommandContext {
  io: CommandIo;
  /** The validated settings (throws `ConfigError`). */
  config(): Readonly<Config>;
  /** Opens and migrates the database around `fn`, closing it after. */
  database(): WithDatabase;
  /** The HTTP apps `serve` and `worker` run (from app.ts, through main.ts). */
  apps: ServerApps;
}

/** One runnable command. */
export interface CommandSpec {
  /** "serve", "user create". */
  path: string;
  /** Its line in `portal --help` ([synopsis, summary]); null when its group's line covers it. */
  help: [string, string] | null;
  run(ctx: CommandContext): Promise<number>;
}

/** Commands with no options of their own refuse any. */
function noArgs(run: (ctx: CommandContext) => Promise<number>) {
  return (ctx: CommandContext) => {
    parseArgs(ctx.io.args, {});
    return run(ctx);
  };
}

const logger = (config: Readonly<Config>) => createLogger({ level: config.logLevel });

/** Every command, in the order `portal --help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    path: "serve",
    help: ["serve", "run the web server (and the background jobs unless PORTAL_JOBS=off)"],
    run: noArgs((ctx) => serve(ctx.config(), logger(ctx.config()), ctx.apps)),
  },
  {
    path: "worker",
    help: ["worker", "run the background jobs only, with /healthz on PORTAL_WORKER_PORT"],
    run: noArgs((ctx) => worker(ctx.config(), logger(ctx.config()), ctx.apps)),
  },
  {
    path: "migrate",
    help: ["migrate", "apply pending database migrations and exit"],
    run: noArgs((ctx) => migrateCommand(ctx.io, ctx.config())),
  },
  {
    path: "user create",
    help: ["user create --email E", "create a user [--admin] [--password-stdin]"],
    run: (ctx) => userCreate(ctx.io, ctx.database()),
  },
  {
    path: "user list",
    help: ["user list", "list users"],
    run: (ctx) => userList(ctx.io, ctx.database()),
  },
  {
    path: "user reset-password",
    help: ["user reset-password --email E", "new one-time password for a user; signs them out"],
    run: (ctx) => userResetPassword(ctx.io, ctx.database()),
  },
  {
    path: "token create",
    help: [
      "token create --email E",
      "create an API token for scripts [--name N] [--expires-in-days D]",
    ],
    run: (ctx) => tokenCreate(ctx.io, ctx.database()),
  },
  {
    path: "token list",
    help: ["token list --email E", "list a user's tokens (never the secrets)"],
    run: (ctx) => tokenList(ctx.io, ctx.database()),
  },
  {
    path: "token revoke",
    help: ["token revoke ID", "revoke a token: it is refused from then on"],
    run: (ctx) => tokenRevoke(ctx.io, ctx.database()),
  },
  {
    path: "storage check",
    help: ["storage check", "write, read and delete a probe object on the configured storage"],
    run: (ctx) => storageCheck(ctx.io, createStorage(ctx.config())),
  },
  {
    path: "embedded upgrade",
    help: [
      "embedded upgrade",
      "carry a data dir of the PGlite-era Portal over to the embedded server",
    ],
    run: (ctx) => embeddedUpgrade(ctx.io, ctx.config()),
  },
  {
    path: "webhook add",
    help: null,
    run: (ctx) => webhookAdd(ctx.io, ctx.database(), ctx.config()),
  },
  { path: "webhook list", help: null, run: (ctx) => webhookList(ctx.io, ctx.database()) },
  { path: "webhook disable", help: null, run: (ctx) => webhookDisable(ctx.io, ctx.database()) },
  { path: "webhook enable", help: null, run: (ctx) => webhookEnable(ctx.io, ctx.database()) },
  { path: "webhook delete", help: null, run: (ctx) => webhookDelete(ctx.io, ctx.database()) },
  {
    path: "webhook rotate-secret",
    help: null,
    run: (ctx) => webhookRotateSecret(ctx.io, ctx.database()),
  },
  {
    path: "webhook test",
    help: null,
    run: (ctx) => webhookTest(ctx.io, ctx.database(), ctx.config()),
  },
  { path: "events list", help: null, run: (ctx) => eventsList(ctx.io, ctx.database()) },
  { path: "events show", help: null, run: (ctx) => eventsShow(ctx.io, ctx.database()) },
  { path: "events retry", help: null, run: (ctx) => eventsRetry(ctx.io, ctx.database()) },
];

/** The help lines of command groups whose members have none of their own. */
const GROUP_HELP: [string, string][] = [
  ["webhook ...", "manage webhook endpoints (portal webhook --help)"],
  ["events ...", "inspect and retry outbox events (portal events --help)"],
];

/** The text of `portal --help`. */
export function mainUsage(): string {
  const lines = [...COMMANDS.flatMap((c) => c.help === null ? [] : [c.help]), ...GROUP_HELP];
  const width = 28;
  const commands = lines.map(([synopsis, summary]) =>
    `  ${synopsis.length < width ? synopsis.padEnd(width) : `${synopsis}   `}${summary}`
  );
  return [
    `portal ${VERSION}: a self-hosted file portal`,
    "",
    "Usage: portal <command> [options]",
    "",
    "Commands:",
    ...commands,
    "",
    "Options:",
    `  ${"-h, --help".padEnd(width)}show help (also after a command: portal user create --help)`,
    `  ${"-V, --version".padEnd(width)}print the version`,
    "",
    "Settings come from environment variables (see .env.example). With no DATABASE_URL, Portal",
    "runs on an embedded PostgreSQL server in PORTAL_DATA_DIR (default ./data), shared by every",
    "portal process on that folder.",
  ].join("\n");
}

/** The command `argv` names (one or two words) and the arguments after it, or null. */
export function findCommand(argv: string[]): { command: CommandSpec; rest: string[] } | null {
  for (const words of [2, 1]) {
    const path = argv.slice(0, words).join(" ");
    const command = COMMANDS.find((c) => c.path === path);
    if (command) return { command, rest: argv.slice(words) };
  }
  return null;
}

/** The context a command runs in, reading settings from `env` when first asked. */
export function commandContext(io: CommandIo, apps: ServerApps): CommandContext {
  let config: Readonly<Config> | null = null;
  const ctx: CommandContext = {
    io,
    apps,
    config() {
      if (config === null) {
        const result = loadConfig(io.env);
        if (!result.ok) throw new ConfigError(result.errors);
        config = result.config;
      }
      return config;
    },
    database() {
      const settings = ctx.config();
      return async (fn) => {
        const db = await openDatabase(settings);
        try {
          await migrate(db);
          return await fn(db);
        } finally {
          await db.close();
        }
      };
    },
  };
  return ctx;
}
