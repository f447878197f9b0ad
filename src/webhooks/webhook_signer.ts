/**
 * Webhook request signing: the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature`, https://www.standardwebhooks.com/ and its spec.md) plus the reference
 * implementation's `X-Webhook-*` headers, so consumers of either can verify what Portal sends.
 * Pure functions: the caller supplies ids, clocks and secrets.
 */
import { Buffer } from "node:buffer";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Prefix of a Standard Webhooks secret; the rest is the base64 of the key bytes. */
export const SECRET_PREFIX = "whsec_";

/** Default tolerance of `verifyStandard` for the timestamp, in seconds (the spec's 5 minutes). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

// 32 bytes = the output size of SHA-256, the HMAC key length RFC 2104 §3 recommends; the spec
// asks for 24 to 64 random bytes.
const SECRET_BYTES = 32;

/** A new endpoint secret: `whsec_` + base64 of 32 random bytes. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString("base64");
}

/**
 * The Standard Webhooks signature `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`, where the
 * key is the base64-decoded part of the secret after `whsec_`.
 */
export function signStandard(
  secret: string,
  msgId: string,
  timestampSeconds: number,
  body: string,
): string {
  // Standard Webhooks spec §Signature scheme: the signed content is `${id}.${timestamp}.${body}`
  // with the timestamp as integer seconds since the epoch.
  const content = `${msgId}.${Math.floor(timestampSeconds)}.${body}`;
  const mac = createHmac("sha256", decodeSecret(secret)).update(content, "utf8").digest("base64");
  return `v1,${mac}`;
}

/**
 * The reference implementation's `X-Webhook-Signature`: hex HMAC-SHA256 of the body, keyed with
 * the UTF-8 bytes of the whole secret string (prefix included).
 */
export function signLegacy(secret: string, body: string): string {
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(body, "utf8").digest("hex");
}

/** What `buildWebhookRequest` needs to know about one delivery attempt. */
export interface WebhookRequestInput {
  /** The delivery row's id, sent as `X-Webhook-Delivery`. */
  deliveryId: string;
  /** The Standard Webhooks message id, the same on every retry so consumers can deduplicate. */
  msgId: string;
  /** The event type, e.g. `file.stored`. */
  eventType: string;
  /** The event payload, sent as `data`. */
  payload: unknown;
  /** When the event happened, sent as the body's `timestamp`. */
  occurredAt: Date;
  /** The current secret first, then a previous one still valid during a rotation. */
  secrets: string[];
  /** The time of this attempt, sent as `webhook-timestamp`. */
  now: Date;
  /** Portal's version, for the User-Agent. */
  version: string;
}

/** A signed webhook request, ready to send as a POST. */
export interface WebhookRequest {
  /** The exact JSON text that was signed; send it byte for byte. */
  body: string;
  /** Request headers (Standard Webhooks and `X-Webhook-*`). */
  headers: Record<string, string>;
}

/**
 * Builds the body and headers of one delivery attempt.
 *
 * @example
 * const { body, headers } = buildWebhookRequest({
 *   deliveryId, msgId: `msg_${eventId}`, eventType: "file.stored", payload,
 *   occurredAt: event.createdAt, secrets: [endpoint.secret], now: new Date(), version: VERSION,
 * });
 */
export function buildWebhookRequest(input: WebhookRequestInput): WebhookRequest {
  const [current] = input.secrets;
  if (current === undefined) {
    throw new Error(`Cannot sign webhook delivery "${input.deliveryId}": no secret given`);
  }
  // Standard Webhooks spec §Payload structure: `type`, `timestamp` (ISO 8601) and `data`.
  const body = JSON.stringify({
    type: input.eventType,
    timestamp: input.occurredAt.toISOString(),
    data: input.payload,
  });
  const timestamp = Math.floor(input.now.getTime() / 1000);
  // Standard Webhooks spec §Signature scheme: several space-delimited signatures let a receiver
  // that still holds the previous secret verify during a rotation.
  const signature = input.secrets
    .map((secret) => signStandard(secret, input.msgId, timestamp, body))
    .join(" ");
  return {
    body,
    headers: {
      "content-type": "application/json",
      "webhook-id": input.msgId,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signature,
      "X-Webhook-Signature": signLegacy(current, body),
      "X-Webhook-Event": input.eventType,
      "X-Webhook-Delivery": input.deliveryId,
      "User-Agent": `Portal-Webhooks/${input.version}`,
    },
  };
}

/** Options for `verifyStandard`. */
export interface VerifyOptions {
  /** Largest accepted distance between `webhook-timestamp` and `now` (default 300 s). */
  toleranceSeconds?: number;
  /** The verifier's clock (default: the current time). */
  now?: Date;
}

/** The outcome of `verifyStandard`. */
export type VerifyResult = { ok: true } | { ok: false; reason: string };

/**
 * Verifies a Standard Webhooks request as a consumer would: one of the `v1` signatures must match
 * one of `secrets`, and the timestamp must be within the tolerance.
 */
export function verifyStandard(
  secrets: string[],
  headers: Headers | Record<string, string>,
  body: string,
  options: VerifyOptions = {},
): VerifyResult {
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const msgId = headerValue(headers, "webhook-id");
  const timestampText = headerValue(headers, "webhook-timestamp");
  const signatureText = headerValue(headers, "webhook-signature");
  if (!msgId || !timestampText || !signatureText) {
    return { ok: false, reason: "missing webhook-id, webhook-timestamp or webhook-signature" };
  }
  if (!/^\d+$/.test(timestampText)) {
    return { ok: false, reason: `invalid webhook-timestamp "${timestampText}"` };
  }
  const timestamp = Number(timestampText);
  // Standard Webhooks spec §Verifying: the timestamp bounds replays of a captured request.
  if (Math.abs(now - timestamp) > tolerance) {
    return { ok: false, reason: `webhook-timestamp ${timestamp} is outside the tolerance` };
  }
  const passed = signatureText.split(" ")
    .filter((entry) => entry.startsWith("v1,"))
    .map((entry) => Buffer.from(entry.slice(3), "utf8"));
  for (const secret of secrets) {
    let expected: Buffer;
    try {
      expected = Buffer.from(signStandard(secret, msgId, timestamp, body).slice(3), "utf8");
    } catch {
      continue;
    }
    // Constant-time comparison so response timing does not leak how much of a guess matched.
    if (passed.some((sig) => sig.length === expected.length && timingSafeEqual(sig, expected))) {
      return { ok: true };
    }
  }
  return { ok: false, reason: "no matching signature" };
}

function decodeSecret(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const key = Buffer.from(encoded, "base64");
  if (key.length === 0) throw new Error("Cannot sign webhook: the secret is empty");
  return key;
}

function headerValue(headers: Headers | Record<string, string>, name: string): string | null {
  if (headers instanceof Headers) return headers.get(name);
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) return value;
  }
  return null;
}
