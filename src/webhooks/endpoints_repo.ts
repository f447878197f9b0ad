/** SQL for the `webhook_endpoint` table (SPEC §4). */
import type { Queryable } from "../db/db.ts";

/** A webhook endpoint row. `secret` and `previousSecret` never leave the services un-asked. */
export interface WebhookEndpoint {
  id: string;
  url: string;
  secret: string;
  /** The secret before the last rotation, still signed with until `previousSecretExpiresAt`. */
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
  /** Event types delivered to this endpoint; empty means every type. */
  eventTypes: string[];
  isActive: boolean;
  /** Why the endpoint was disabled (by an operator, or by a `410 Gone`); "" when active. */
  disabledReason: string;
  description: string;
  createdAt: Date;
  updatedAt: Date;
}

const COLUMNS = (sql: Queryable) =>
  sql`id, url, secret, previous_secret AS "previousSecret",
      previous_secret_expires_at AS "previousSecretExpiresAt", event_types AS "eventTypes",
      is_active AS "isActive", disabled_reason AS "disabledReason", description,
      created_at AS "createdAt", updated_at AS "updatedAt"`;

/** Inserts an endpoint. */
export async function insertEndpoint(
  sql: Queryable,
  input: {
    id: string;
    url: string;
    secret: string;
    eventTypes: string[];
    description: string;
    now: Date;
  },
): Promise<WebhookEndpoint> {
  const [row] = await sql<WebhookEndpoint[]>`
    INSERT INTO webhook_endpoint (id, url, secret, event_types, description, created_at,
                                  updated_at)
    VALUES (${input.id}, ${input.url}, ${input.secret}, ${input.eventTypes}::text[],
            ${input.description}, ${input.now}, ${input.now})
    RETURNING ${COLUMNS(sql)}`;
  return row!;
}

/** Lists every endpoint, oldest first. */
export async function listEndpoints(sql: Queryable): Promise<WebhookEndpoint[]> {
  return await sql<WebhookEndpoint[]>`
    SELECT ${COLUMNS(sql)} FROM webhook_endpoint ORDER BY created_at, id`;
}

/** Finds one endpoint by id. */
export async function findEndpoint(sql: Queryable, id: string): Promise<WebhookEndpoint | null> {
  const rows = await sql<WebhookEndpoint[]>`
    SELECT ${COLUMNS(sql)} FROM webhook_endpoint WHERE id = ${id}`;
  return rows[0] ?? null;
}

/** Sets `is_active` (and the reason when disabling); returns the updated row or null. */
export async function setEndpointActive(
  sql: Queryable,
  input: { id: string; active: boolean; reason: string; now: Date },
): Promise<WebhookEndpoint | null> {
  const rows = await sql<WebhookEndpoint[]>`
    UPDATE webhook_endpoint
    SET is_active = ${input.active}, disabled_reason = ${input.active ? "" : input.reason},
        updated_at = ${input.now}
    WHERE id = ${input.id}
    RETURNING ${COLUMNS(sql)}`;
  return rows[0] ?? null;
}

/** Replaces the secret, keeping the old one valid until `previousExpiresAt`. */
export async function rotateEndpointSecret(
  sql: Queryable,
  input: { id: string; secret: string; previousExpiresAt: Date; now: Date },
): Promise<WebhookEndpoint | null> {
  const rows = await sql<WebhookEndpoint[]>`
    UPDATE webhook_endpoint
    SET previous_secret = secret, previous_secret_expires_at = ${input.previousExpiresAt},
        secret = ${input.secret}, updated_at = ${input.now}
    WHERE id = ${input.id}
    RETURNING ${COLUMNS(sql)}`;
  return rows[0] ?? null;
}

/** Deletes an endpoint (its deliveries and attempts go with it: ON DELETE CASCADE). */
export async function deleteEndpointRow(sql: Queryable, id: string): Promise<boolean> {
  const rows = await sql`DELETE FROM webhook_endpoint WHERE id = ${id} RETURNING id`;
  return rows.length > 0;
}

/** Events with a delivery to `endpointId` that is not delivered: they need a roll-up after it goes. */
export async function openEventIdsForEndpoint(
  sql: Queryable,
  endpointId: string,
): Promise<string[]> {
  const rows = await sql<{ eventId: string }[]>`
    SELECT DISTINCT event_id AS "eventId" FROM webhook_delivery
    WHERE endpoint_id = ${endpointId} AND status <> 'delivered'`;
  return rows.map((row) => row.eventId);
}
