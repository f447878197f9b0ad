/** Help texts for `portal --help` and `portal <command> --help`. */
import { VERSION } from "../version.ts";

/** Top-level help. */
export const MAIN_USAGE = `portal ${VERSION}: a self-hosted file portal

Usage: portal <command> [options]

Commands:
  serve                       run the web server (and the background jobs unless PORTAL_JOBS=off)
  worker                      run the background jobs only, with /healthz on PORTAL_WORKER_PORT
  migrate                     apply pending database migrations and exit
  user create --email E       create a user [--admin] [--password-stdin]
  user list                   list users
  token create --email E      create an API token for scripts [--name N]
  storage check               write, read and delete a probe object on the configured storage
  webhook ...                 manage webhook endpoints (portal webhook --help)
  events ...                  inspect and retry outbox events (portal events --help)

Options:
  -h, --help                  show help (also after a command: portal user create --help)
  -V, --version               print the version

Settings come from environment variables (see .env.example). With no DATABASE_URL, Portal
runs on an embedded database in PORTAL_DATA_DIR (default ./data).`;

/** Help per command path. */
export const COMMAND_USAGE: Record<string, string> = {
  serve: `Usage: portal serve

Runs the HTTP server on PORTAL_HOST:PORTAL_PORT (default 127.0.0.1:8000): upload page, API,
downloads, /healthz, /readyz, /metrics. Applies pending migrations first. Unless PORTAL_JOBS=off,
also runs the background jobs (webhook delivery, expiry notices, cleanup, retention).
On the first start with the embedded database, creates an admin account and prints its password.`,
  worker: `Usage: portal worker

Runs the background jobs without the web app: webhook delivery, expiry notices, expired-file
cleanup and outbox retention, plus /healthz on PORTAL_WORKER_PORT (default 8001). Any number of
workers and servers may share one database.`,
  migrate: `Usage: portal migrate

Applies pending migrations and exits. Safe to run from several processes at once.`,
  "user create": `Usage: portal user create --email E [--admin] [--password-stdin]

Creates a user. Without --password-stdin a random password is generated and printed once.
  --email E          the account's email (login name)
  --admin            make the user an admin
  --password-stdin   read the password from standard input (at least 8 characters)`,
  "user list": `Usage: portal user list

Lists users: id, email, admin, active, created.`,
  "token create": `Usage: portal token create --email E [--name N]

Creates an API token for the user and prints it once on standard output; only its hash is
stored. Use it as "Authorization: Bearer <token>".
  --email E   the user the token acts as
  --name N    a label to recognise the token by`,
  "storage check": `Usage: portal storage check

Writes, reads back and deletes a probe object on the configured storage backend and says
what is wrong if that fails (bucket missing, credentials refused, endpoint down).`,
};
