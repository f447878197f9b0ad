/** `portal webhook add|list|disable|enable|delete|rotate-secret|test`. */
import type { Config } from "../config/config.ts";
import { isUuid } from "../db/ids.ts";
import {
  addEndpoint,
  deleteEndpoint,
  disableEndpoint,
  enableEndpoint,
  listEndpoints,
  rotateSecret,
  testEndpoint,
  type WebhookEndpoint,
  WebhookEndpointError,
} from "../webhooks/endpoint_service.ts";
import type { WithDatabase } from "./account_commands.ts";
import { parseArgs } from "./args.ts";
import { type CommandIo, UsageError } from "./cli_types.ts";

/** `portal webhook add --url U [--event-type T ...] [--secret S] [--description D]`. */
export async function webhookAdd(
  io: CommandIo,
  withDb: WithDatabase,
  config: Readonly<Config>,
): Promise<number> {
  const { values } = parseArgs(io.args, {
    url: { type: "string" },
    "event-type": { type: "string", multiple: true },
    secret: { type: "string" },
    description: { type: "string" },
  });
  if (!values.url) throw new UsageError("--url is required");
  return await withDb(async (db) => {
    try {
      const endpoint = await addEndpoint({ db, config }, {
        url: values.url!,
        eventTypes: values["event-type"] ?? [],
        secret: values.secret,
        description: values.description,
      });
      io.stdout(`Created webhook endpoint ${endpoint.id} for ${endpoint.url}`);
      io.stdout(`Events: ${formatEventTypes(endpoint)}`);
      io.stdout(`Secret: ${endpoint.secret}`);
      return 0;
    } catch (error) {
      if (error instanceof WebhookEndpointError) {
        io.stderr(error.message);
        return 1;
      }
      throw error;
    }
  });
}

/** `portal webhook list`: one endpoint a line, tab-separated, without secrets. */
export async function webhookList(io: CommandIo, withDb: WithDatabase): Promise<number> {
  parseArgs(io.args, {});
  return await withDb(async (db) => {
    const endpoints = await listEndpoints({ db });
    io.stdout(["ID", "URL", "ACTIVE", "EVENTS", "DESCRIPTION", "DISABLED_REASON"].join("\t"));
    for (const endpoint of endpoints) {
      io.stdout([
        endpoint.id,
        endpoint.url,
        endpoint.isActive ? "yes" : "no",
        formatEventTypes(endpoint),
        endpoint.description,
        endpoint.disabledReason,
      ].join("\t"));
    }
    return 0;
  });
}

/** `portal webhook disable ID [--reason R]`. */
export async function webhookDisable(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const { values, positionals } = parseArgs(io.args, { reason: { type: "string" } }, {
    positionals: 1,
  });
  const id = requireId(positionals);
  return await withDb(async (db) => {
    const endpoint = isUuid(id)
      ? await disableEndpoint({ db }, id, { reason: values.reason ?? undefined })
      : null;
    if (endpoint === null) return notFound(io, id);
    io.stdout(`Disabled webhook endpoint ${endpoint.id} (${endpoint.url})`);
    return 0;
  });
}

/** `portal webhook enable ID`. */
export async function webhookEnable(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const id = requireId(parseArgs(io.args, {}, { positionals: 1 }).positionals);
  return await withDb(async (db) => {
    const endpoint = isUuid(id) ? await enableEndpoint({ db }, id) : null;
    if (endpoint === null) return notFound(io, id);
    io.stdout(`Enabled webhook endpoint ${endpoint.id} (${endpoint.url})`);
    return 0;
  });
}

/** `portal webhook delete ID`: removes the endpoint with its deliveries and attempts. */
export async function webhookDelete(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const id = requireId(parseArgs(io.args, {}, { positionals: 1 }).positionals);
  return await withDb(async (db) => {
    const deleted = isUuid(id) ? await deleteEndpoint({ db }, id) : false;
    if (!deleted) return notFound(io, id);
    io.stdout(`Deleted webhook endpoint ${id}`);
    return 0;
  });
}

/** `portal webhook rotate-secret ID`: prints the new secret on standard output. */
export async function webhookRotateSecret(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const id = requireId(parseArgs(io.args, {}, { positionals: 1 }).positionals);
  return await withDb(async (db) => {
    const endpoint = isUuid(id) ? await rotateSecret({ db }, id) : null;
    if (endpoint === null) return notFound(io, id);
    io.stderr(
      `Rotated the secret of webhook endpoint ${endpoint.id}; requests are signed with both ` +
        `secrets until ${endpoint.previousSecretExpiresAt?.toISOString()}. New secret:`,
    );
    io.stdout(endpoint.secret);
    return 0;
  });
}

/** `portal webhook test ID`: sends a `portal.test` event now and prints the answer. */
export async function webhookTest(
  io: CommandIo,
  withDb: WithDatabase,
  config: Readonly<Config>,
): Promise<number> {
  const id = requireId(parseArgs(io.args, {}, { positionals: 1 }).positionals);
  return await withDb(async (db) => {
    const answer = isUuid(id) ? await testEndpoint({ db, config }, id) : null;
    if (answer === null) return notFound(io, id);
    io.stdout(`Status: ${answer.statusCode ?? "no response"}`);
    io.stdout(`Duration: ${answer.durationMs} ms`);
    if (answer.error !== "") io.stdout(`Error: ${answer.error}`);
    if (answer.responseStart !== "") io.stdout(`Response: ${answer.responseStart}`);
    return answer.error === "" ? 0 : 1;
  });
}

function requireId(positionals: string[]): string {
  const id = positionals[0];
  if (id === undefined) throw new UsageError("the endpoint ID is required");
  return id;
}

function notFound(io: CommandIo, id: string): number {
  io.stderr(`Cannot find webhook endpoint "${id}": run "portal webhook list" for the IDs`);
  return 1;
}

function formatEventTypes(endpoint: WebhookEndpoint): string {
  return endpoint.eventTypes.length === 0 ? "* (all)" : endpoint.eventTypes.join(",");
}
