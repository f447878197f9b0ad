/** `portal events list|show|retry`: inspect the outbox and start failed events again. */
import { isUuid } from "../db/ids.ts";
import {
  type DeliveryStatus,
  EVENT_LIST_LIMITS,
  getEventDetail,
  listOutboxEvents,
  retryAllFailed,
  retryEvent,
} from "../webhooks/event_service.ts";
import type { WithDatabase } from "./account_commands.ts";
import { parseArgs } from "./args.ts";
import { type CommandIo, UsageError } from "./cli_types.ts";

const STATUSES: readonly DeliveryStatus[] = ["pending", "delivered", "failed"];

/** `portal events list [--status S] [--type T] [--limit N]`: newest first, tab-separated. */
export async function eventsList(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const { values } = parseArgs(io.args, {
    status: { type: "string" },
    type: { type: "string" },
    limit: { type: "string" },
  });
  const status = values.status?.toLowerCase();
  if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) {
    throw new UsageError(`--status: expected one of ${STATUSES.join(", ")}, got "${status}"`);
  }
  let limit: number = EVENT_LIST_LIMITS.default;
  if (values.limit !== undefined) {
    limit = Number(values.limit);
    if (!/^\d+$/.test(values.limit) || limit < 1 || limit > EVENT_LIST_LIMITS.max) {
      throw new UsageError(
        `--limit: expected a whole number 1..${EVENT_LIST_LIMITS.max}, got "${values.limit}"`,
      );
    }
  }
  return await withDb(async (db) => {
    const events = await listOutboxEvents({ db }, {
      status: status as DeliveryStatus | undefined,
      eventType: values.type,
      limit,
    });
    io.stdout(["ID", "TYPE", "STATUS", "ATTEMPTS", "CREATED", "DELIVERED", "ERROR"].join("\t"));
    for (const event of events) {
      io.stdout([
        event.id,
        event.eventType,
        event.status,
        String(event.attempts),
        event.createdAt.toISOString(),
        event.deliveredAt?.toISOString() ?? "-",
        oneLine(event.errorMessage),
      ].join("\t"));
    }
    return 0;
  });
}

/** `portal events show ID`: the event, its payload, deliveries and attempts. */
export async function eventsShow(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const id = requireId(parseArgs(io.args, {}, { positionals: 1 }).positionals);
  return await withDb(async (db) => {
    const detail = isUuid(id) ? await getEventDetail({ db }, id) : null;
    if (detail === null) return notFound(io, id);
    const { event, deliveries, attempts } = detail;
    io.stdout(`Event ${event.id}`);
    io.stdout(`  type:        ${event.eventType}`);
    io.stdout(`  aggregate:   ${event.aggregateType} ${event.aggregateId}`);
    io.stdout(`  status:      ${event.status} (attempts ${event.attempts})`);
    io.stdout(`  created:     ${event.createdAt.toISOString()}`);
    if (event.deliveredAt) io.stdout(`  delivered:   ${event.deliveredAt.toISOString()}`);
    if (event.status === "pending") {
      io.stdout(`  next due:    ${event.nextAttemptAt.toISOString()}`);
    }
    if (event.errorMessage) io.stdout(`  error:       ${oneLine(event.errorMessage)}`);
    io.stdout(`  payload:`);
    for (const line of JSON.stringify(event.payload, null, 2).split("\n")) {
      io.stdout(`    ${line}`);
    }
    io.stdout(`Deliveries (${deliveries.length}):`);
    for (const d of deliveries) {
      const when = d.status === "delivered"
        ? `delivered ${d.deliveredAt?.toISOString()}`
        : d.status === "pending"
        ? `next attempt ${d.nextAttemptAt.toISOString()}`
        : "failed";
      io.stdout(
        `  ${d.id} ${d.url} ${d.status} attempts ${d.attempts}/${d.maxAttempts}, ${when}` +
          (d.lastError ? `, last error: ${oneLine(d.lastError)}` : ""),
      );
    }
    io.stdout(`Attempts (${attempts.length}):`);
    for (const a of attempts) {
      io.stdout(
        `  ${a.attemptedAt.toISOString()} delivery ${a.deliveryId} #${a.attemptNumber}: ` +
          `${a.statusCode ?? "no response"} in ${a.durationMs} ms` +
          (a.error ? `, error: ${oneLine(a.error)}` : "") +
          (a.responseBody ? `, response: ${oneLine(a.responseBody).slice(0, 120)}` : ""),
      );
    }
    return 0;
  });
}

/** `portal events retry ID` or `portal events retry --all-failed`. */
export async function eventsRetry(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const { values, positionals } = parseArgs(io.args, { "all-failed": { type: "boolean" } }, {
    positionals: 1,
  });
  const id = positionals[0];
  if ((id === undefined) === !values["all-failed"]) {
    throw new UsageError("give either an event ID or --all-failed");
  }
  return await withDb(async (db) => {
    if (values["all-failed"]) {
      const result = await retryAllFailed({ db });
      io.stdout(
        `Retrying ${result.events} failed event(s): ${result.deliveries} delivery(ies) start again from attempt 0`,
      );
      return 0;
    }
    const result = isUuid(id!) ? await retryEvent({ db }, id!) : null;
    if (result === null) return notFound(io, id!);
    if (result.events === 0) {
      io.stdout(`Nothing to retry: event ${id} has no failed delivery`);
      return 0;
    }
    io.stdout(
      `Retrying event ${id}: ${result.deliveries} failed delivery(ies) start again from attempt 0`,
    );
    return 0;
  });
}

function requireId(positionals: string[]): string {
  const id = positionals[0];
  if (id === undefined) throw new UsageError("the event ID is required");
  return id;
}

function notFound(io: CommandIo, id: string): number {
  io.stderr(`Cannot find event "${id}": run "portal events list" for the IDs`);
  return 1;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}
