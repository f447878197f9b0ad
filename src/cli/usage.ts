/** Help texts for `portal <command> --help` (`portal --help` is built from commands.ts). */

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
  user: `Usage: portal user <command> [options]

Manages accounts.
  create --email E        create a user [--admin] [--password-stdin]
  list                    list users
  reset-password --email E   new one-time password; signs the user out
Run "portal user <command> --help" for details.`,
  "user create": `Usage: portal user create --email E [--admin] [--password-stdin]

Creates a user. Without --password-stdin a random password is generated and printed once.
  --email E          the account's email (login name)
  --admin            make the user an admin
  --password-stdin   read the password from standard input (at least 8 characters)`,
  "user reset-password": `Usage: portal user reset-password --email E

Gives the user a new random password, printed once, and signs out all their browser sessions.
Works while portal serve runs (on the embedded database too). Use it when the first-start admin
password is lost.
  --email E          the account's email`,
  embedded: `Usage: portal embedded <command>

The embedded PostgreSQL server in PORTAL_DATA_DIR/pg (used when DATABASE_URL is unset).
  upgrade                 carry a data dir of the PGlite-era Portal over to it
Run "portal embedded <command> --help" for details.`,
  "embedded upgrade": `Usage: portal embedded upgrade

For a PORTAL_DATA_DIR written by an earlier Portal whose embedded database was PGlite: reads
every table from PORTAL_DATA_DIR/pg with PGlite, renames that folder to pg-pglite (nothing is
deleted), creates the embedded PostgreSQL server in PORTAL_DATA_DIR/pg and copies the rows in.
Stop every Portal process on the data dir first. Files under PORTAL_DATA_DIR/media stay where
they are.`,
  "user list": `Usage: portal user list

Lists users: id, email, admin, active, created.`,
  token: `Usage: portal token <command> [options]

Manages API tokens for scripts.
  create --email E        create a token and print it once [--name N] [--expires-in-days D]
  list --email E          list a user's tokens (never the tokens themselves)
  revoke ID               revoke a token: it is refused from then on
Run "portal token <command> --help" for details.`,
  "token create": `Usage: portal token create --email E [--name N] [--expires-in-days D]

Creates an API token for the user and prints it once on standard output; only its hash is
stored. Use it as "Authorization: Bearer <token>".
  --email E             the user the token acts as
  --name N              a label to recognise the token by
  --expires-in-days D   refuse the token D days from now (1 to 3650); without it, the token
                        works until it is revoked`,
  "token list": `Usage: portal token list --email E

Lists the user's tokens, oldest first: id, name, the first characters of the token, when it was
created, last used (recorded at most once a minute), expires and was revoked, and its status
(active, expired or revoked). The tokens themselves are not stored and cannot be shown.
  --email E   the user whose tokens to list`,
  "token revoke": `Usage: portal token revoke ID

Revokes the token with this ID (from "portal token list"): every request with it is refused
from then on, like an unknown token. Revoking cannot be undone; create a new token instead.
Exits 1 when there is no such token or it was revoked already.`,
  "storage check": `Usage: portal storage check

Writes, reads back and deletes a probe object on the configured storage backend and says
what is wrong if that fails (bucket missing, credentials refused, endpoint down).`,
  webhook: `Usage: portal webhook <command> [options]

Manages the endpoints that receive Portal's events as signed HTTP POSTs (Standard Webhooks).
  add --url U             add an endpoint [--event-type T ...] [--secret S] [--description D]
  list                    list endpoints (without their secrets)
  disable ID              stop delivering to an endpoint [--reason R]
  enable ID               deliver to a disabled endpoint again
  delete ID               delete an endpoint with its delivery history
  rotate-secret ID        give an endpoint a new secret (the old one stays valid 24 hours)
  test ID                 send a portal.test event now and print the answer
Run "portal webhook <command> --help" for details.`,
  "webhook add":
    `Usage: portal webhook add --url U [--event-type T ...] [--secret S] [--description D]

Adds a webhook endpoint and prints its ID and signing secret.
  --url U            where to POST events (http or https); URLs that resolve to loopback,
                     private or link-local addresses are refused at delivery time unless
                     PORTAL_WEBHOOK_ALLOW_PRIVATE=true
  --event-type T     deliver only this event type (repeat for several, e.g. file.stored,
                     file.expiring, file.deleted); without it, every event is delivered
  --secret S         use this secret ("whsec_" + base64 of 24 to 64 bytes) instead of a new one
  --description D    a note to recognise the endpoint by`,
  "webhook list": `Usage: portal webhook list

Lists endpoints: id, URL, active, event types ("*" means all), description, and why a disabled
endpoint was disabled. Secrets are not shown.`,
  "webhook disable": `Usage: portal webhook disable ID [--reason R]

Stops delivering to the endpoint. New events skip it; its pending deliveries fail without a
request (after "portal webhook enable ID", start them again with "portal events retry").
  --reason R   recorded with the endpoint (default "disabled by an operator")`,
  "webhook enable": `Usage: portal webhook enable ID

Delivers to a disabled endpoint again (also one disabled because it answered 410 Gone).`,
  "webhook delete": `Usage: portal webhook delete ID

Deletes the endpoint together with its deliveries and their attempts.`,
  "webhook rotate-secret": `Usage: portal webhook rotate-secret ID

Gives the endpoint a new secret and prints it. For 24 hours every request carries signatures
made with both the new and the previous secret, so the receiver can switch without a gap.`,
  "webhook test": `Usage: portal webhook test ID

Sends a signed portal.test event to the endpoint now and prints the status code, the duration,
the error if any and the start of the response. Nothing is recorded. Exits 1 unless the
receiver answered 2xx.`,
  events: `Usage: portal events <command> [options]

Inspects the outbox of events and starts failed ones again.
  list                    list events [--status pending|delivered|failed] [--type T] [--limit N]
  show ID                 show an event's payload, deliveries and attempts
  retry ID|--all-failed   start failed deliveries again from attempt 0
Run "portal events <command> --help" for details.`,
  "events list": `Usage: portal events list [--status S] [--type T] [--limit N]

Lists outbox events, newest first: id, type, status, attempts, created, delivered, last error.
  --status S   pending, delivered or failed
  --type T     only this event type, e.g. file.stored
  --limit N    at most N events (default 50, at most 1000)`,
  "events show": `Usage: portal events show ID

Shows one event: its payload, its delivery to each endpoint (status, attempts, next attempt,
last error) and every attempt (time, status code, duration, error, start of the response).`,
  "events retry": `Usage: portal events retry ID
       portal events retry --all-failed

Starts the failed deliveries of one failed event (or of every failed event) again from
attempt 0, due now. Endpoints that already received the event do not get it again.`,
};
