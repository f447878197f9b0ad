/**
 * The one way Portal sends a webhook, for deliveries and for `portal webhook test` alike:
 * check the endpoint's URL against the SSRF guard at send time, sign the message (Standard
 * Webhooks headers), and send it to the checked address.
 */
import type { Config } from "../config/config.ts";
import { type SendResult, sendWebhook } from "./webhook_sender.ts";
import { buildWebhookRequest, type WebhookRequestInput } from "./webhook_signer.ts";
import { type Lookup, resolveTarget } from "./ssrf_guard.ts";

/** What sending needs besides the message. */
export interface SendContext {
  config: Pick<
    Config,
    "webhookAllowPrivate" | "webhookConnectTimeoutSeconds" | "webhookTimeoutSeconds"
  >;
  /** Name resolution for the SSRF guard (default: the OS resolver). */
  lookup?: Lookup;
  /** Aborts the request (a stopping worker). */
  signal?: AbortSignal;
}

/** How a send ended: refused before any request, or the receiver's answer (or its failure). */
export type SendOutcome =
  | {
    sent: false;
    reason: string; /** The name did not resolve: may work later. */
    unresolved: boolean;
  }
  | { sent: true; result: SendResult };

/**
 * Sends `message` to `url`.
 *
 * @example
 * const outcome = await sendToEndpoint(endpoint.url, { deliveryId, msgId, ... }, { config });
 * if (outcome.sent && outcome.result.error === "") console.log("delivered");
 */
export async function sendToEndpoint(
  url: string,
  message: WebhookRequestInput,
  ctx: SendContext,
): Promise<SendOutcome> {
  const target = await resolveTarget(url, {
    allowPrivate: ctx.config.webhookAllowPrivate,
    lookup: ctx.lookup,
  });
  if (!target.ok) return { sent: false, reason: target.reason, unresolved: target.unresolved };
  const result = await sendWebhook(target, buildWebhookRequest(message), {
    connectTimeoutMs: ctx.config.webhookConnectTimeoutSeconds * 1000,
    timeoutMs: ctx.config.webhookTimeoutSeconds * 1000,
    signal: ctx.signal,
  });
  return { sent: true, result };
}
