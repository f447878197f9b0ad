/**
 * Webhook endpoints: add, list, enable, disable, delete, rotate the secret, and send a test
 * event. The CLI and the admin pages call these; SQL lives in `endpoints_repo.ts`.
 */
import { refusedOnItsFace } from "./ssrf_guard.ts";
import { Buffer } from "node:buffer";
import type { Config } from "../config/config.ts";
import type { Database } from "../db/db.ts";
import { isUuid, newId } from "../db/ids.ts";
import { VERSION } from "../version.ts";
import { rollUpEvents } from "../outbox/deliveries_repo.ts";
import { type Clock, systemClock } from "../app_deps.ts";
import { messageId, signingSecrets } from "./delivery_attempt.ts";
import {
  deleteEndpointRow,
  findEndpoint,
  insertEndpoint,
  listEndpoints as listEndpointRows,
  openEventIdsForEndpoint,
  rotateEndpointSecret,
  setEndpointActive,
  type WebhookEndpoint,
} from "./endpoints_repo.ts";
import { sendToEndpoint } from "./send.ts";
import { generateSecret, SECRET_PREFIX } from "./webhook_signer.ts";
import type { Lookup } from "./ssrf_guard.ts";

export type { WebhookEndpoint } from "./endpoints_repo.ts";

/** How long the secret before a rotation stays valid: receivers have a day to switch. */
export const ROTATION_GRACE_HOURS = 24;

/** The event type of `testEndpoint`. */
export const TEST_EVENT_TYPE = "portal.test";

/** Invalid endpoint input, with a message for the operator. */
export class WebhookEndpointError extends Error {}

/** Input of `addEndpoint`. */
export interface AddEndpointInput {
  url: string;
  /** Event types to deliver (default: none listed, meaning every type). */
  eventTypes?: string[];
  /** A `whsec_` secret (default: a new random one). */
  secret?: string;
  description?: string;
}

/**
 * Adds an endpoint; throws WebhookEndpointError for a bad URL, secret or event type.
 *
 * @example
 * const endpoint = await addEndpoint({ db, config }, {
 *   url: "https://example.com/hooks", eventTypes: ["file.stored"],
 * });
 * console.log(endpoint.secret); // whsec_...
 */
export async function addEndpoint(
  deps: { db: Database; clock?: Clock; config: { webhookAllowPrivate: boolean } },
  input: AddEndpointInput,
): Promise<WebhookEndpoint> {
  const url = validateUrl(input.url, deps.config.webhookAllowPrivate);
  const secret = input.secret === undefined ? generateSecret() : validateSecret(input.secret);
  const eventTypes = validateEventTypes(input.eventTypes ?? []);
  return await insertEndpoint(deps.db.sql, {
    id: newId(),
    url,
    secret,
    eventTypes,
    description: validateDescription(input.description ?? ""),
    now: (deps.clock ?? systemClock).now(),
  });
}

/** Lists every endpoint, oldest first. */
export async function listEndpoints(deps: { db: Database }): Promise<WebhookEndpoint[]> {
  return await listEndpointRows(deps.db.sql);
}

/** One endpoint, or null. */
export async function getEndpoint(
  deps: { db: Database },
  id: string,
): Promise<WebhookEndpoint | null> {
  if (!isUuid(id)) return null;
  return await findEndpoint(deps.db.sql, id);
}

/** Enables an endpoint (clearing the disabled reason); null when there is no such endpoint. */
export async function enableEndpoint(
  deps: { db: Database; clock?: Clock },
  id: string,
): Promise<WebhookEndpoint | null> {
  if (!isUuid(id)) return null;
  const now = (deps.clock ?? systemClock).now();
  return await setEndpointActive(deps.db.sql, { id, active: true, reason: "", now });
}

/**
 * Disables an endpoint: new events skip it and its pending deliveries fail without a request
 * (retry them after enabling it again). Null when there is no such endpoint.
 */
export async function disableEndpoint(
  deps: { db: Database; clock?: Clock },
  id: string,
  { reason = "disabled by an operator" }: { reason?: string } = {},
): Promise<WebhookEndpoint | null> {
  if (!isUuid(id)) return null;
  const now = (deps.clock ?? systemClock).now();
  return await setEndpointActive(deps.db.sql, { id, active: false, reason, now });
}

/**
 * Deletes an endpoint with its deliveries and attempts; events that were waiting only on it
 * become delivered (or stay failed/pending because of other endpoints). False when not found.
 */
export async function deleteEndpoint(
  deps: { db: Database; clock?: Clock },
  id: string,
): Promise<boolean> {
  if (!isUuid(id)) return false;
  const now = (deps.clock ?? systemClock).now();
  return await deps.db.sql.begin(async (tx) => {
    const eventIds = await openEventIdsForEndpoint(tx, id);
    const deleted = await deleteEndpointRow(tx, id);
    await rollUpEvents(tx, { eventIds, now });
    return deleted;
  });
}

/**
 * Gives an endpoint a new secret; the old one stays valid for 24 hours, during which every
 * request carries a signature with each (Standard Webhooks: space-separated signatures), so the
 * receiver can switch without losing a message. Null when not found.
 *
 * @example
 * const endpoint = await rotateSecret({ db }, id);
 * console.log(endpoint?.secret);
 */
export async function rotateSecret(
  deps: { db: Database; clock?: Clock },
  id: string,
): Promise<WebhookEndpoint | null> {
  if (!isUuid(id)) return null;
  const now = (deps.clock ?? systemClock).now();
  return await rotateEndpointSecret(deps.db.sql, {
    id,
    secret: generateSecret(),
    previousExpiresAt: new Date(now.getTime() + ROTATION_GRACE_HOURS * 3_600_000),
    now,
  });
}

/** The receiver's answer to a test event. */
export interface EndpointTestResult {
  /** False when the SSRF guard refused the URL and nothing was sent. */
  sent: boolean;
  statusCode: number | null;
  durationMs: number;
  /** "" when the receiver answered 2xx. */
  error: string;
  /** The first 500 bytes of the response. */
  responseStart: string;
}

/**
 * Sends a signed `portal.test` event to one endpoint now (active or not) and returns the answer;
 * nothing is written to the database. Null when there is no such endpoint.
 *
 * @example
 * const answer = await testEndpoint({ db, config }, id);
 */
export async function testEndpoint(
  deps: {
    db: Database;
    config: Pick<
      Config,
      "webhookAllowPrivate" | "webhookConnectTimeoutSeconds" | "webhookTimeoutSeconds"
    >;
    clock?: Clock;
    lookup?: Lookup;
  },
  id: string,
): Promise<EndpointTestResult | null> {
  if (!isUuid(id)) return null;
  const endpoint = await findEndpoint(deps.db.sql, id);
  if (endpoint === null) return null;
  const now = (deps.clock ?? systemClock).now();
  const deliveryId = newId();
  const outcome = await sendToEndpoint(endpoint.url, {
    deliveryId,
    msgId: messageId(deliveryId),
    eventType: TEST_EVENT_TYPE,
    payload: { endpoint_id: endpoint.id, message: "Test event from Portal" },
    occurredAt: now,
    secrets: signingSecrets(endpoint, now),
    now,
    version: VERSION,
  }, deps);
  if (!outcome.sent) {
    return {
      sent: false,
      statusCode: null,
      durationMs: 0,
      error: outcome.reason,
      responseStart: "",
    };
  }
  const { result } = outcome;
  return {
    sent: true,
    statusCode: result.statusCode,
    durationMs: result.durationMs,
    error: result.error,
    responseStart: result.responseStart,
  };
}

/**
 * Checks what can be checked before the first send: the scheme, no credentials, and no address
 * refused on its face (loopback, private, link-local, metadata, `localhost`); a name that
 * resolves to such an address is caught when a delivery resolves it.
 */
function validateUrl(value: string, allowPrivate: boolean): string {
  const text = value.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new WebhookEndpointError(
      `Cannot add webhook endpoint: "${text.replace(/\/\/[^/@]*@/, "//***@")}" is not a URL`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new WebhookEndpointError(
      `Cannot add webhook endpoint "${url.protocol}//${url.host}": only http and https URLs are allowed`,
    );
  }
  if (url.username !== "" || url.password !== "") {
    throw new WebhookEndpointError(
      `Cannot add webhook endpoint "${url.host}": credentials in the URL are not allowed`,
    );
  }
  const refused = refusedOnItsFace(url, allowPrivate);
  if (refused !== null) {
    throw new WebhookEndpointError(
      `Cannot add webhook endpoint "${url.origin}": ${refused}; webhooks go to public addresses only (PORTAL_WEBHOOK_ALLOW_PRIVATE=true allows private ones)`,
    );
  }
  return url.href;
}

function validateDescription(value: string): string {
  const description = value.trim();
  // deno-lint-ignore no-control-regex -- control characters (NUL above all) are what we refuse
  if (description.length > 500 || /[\u0000-\u001f\u007f]/.test(description)) {
    throw new WebhookEndpointError(
      "Cannot use the description: expected at most 500 characters without control characters",
    );
  }
  return description;
}

function validateSecret(secret: string): string {
  // Standard Webhooks spec §Signature scheme: `whsec_` + base64 of 24 to 64 random bytes.
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : null;
  const bytes = encoded !== null && /^[A-Za-z0-9+/]+={0,2}$/.test(encoded)
    ? Buffer.from(encoded, "base64").length
    : 0;
  if (bytes < 24 || bytes > 64) {
    throw new WebhookEndpointError(
      `Cannot use the webhook secret: expected "${SECRET_PREFIX}" and the base64 of 24 to 64 bytes`,
    );
  }
  return secret;
}

function validateEventTypes(types: string[]): string[] {
  const cleaned = [...new Set(types.map((type) => type.trim()))];
  for (const type of cleaned) {
    if (!/^[a-z0-9][a-z0-9_.-]*$/i.test(type)) {
      throw new WebhookEndpointError(
        `Cannot use event type "${type}": expected letters, digits, ".", "_" or "-" like "file.stored"`,
      );
    }
  }
  return cleaned;
}
