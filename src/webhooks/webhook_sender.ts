/**
 * Sends one webhook attempt over HTTP(S) to an address the SSRF guard already checked. The
 * socket connects to that pinned address while the Host header, TLS SNI and certificate check use
 * the URL's host name, so a DNS answer that changes between check and send changes nothing.
 * Redirects are not followed, only the start of the response is read, and network failures come
 * back as readable strings rather than exceptions.
 */
import { Buffer } from "node:buffer";
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import { ipFamily } from "./address_policy.ts";

/** Where to send: the URL plus the checked address from `resolveTarget`. */
export interface SendTarget {
  /** The webhook URL; its host goes in the Host header and TLS SNI. */
  url: URL;
  /** The IP address to connect to. */
  address: string;
  /** The address family of `address`. */
  family: 4 | 6;
}

/** The signed request from `buildWebhookRequest`. */
export interface SendRequest {
  /** The exact body that was signed. */
  body: string;
  /** Headers to send (a Host header is added from the URL). */
  headers: Record<string, string>;
}

/** Options for `sendWebhook`. */
export interface SendOptions {
  /** Longest wait for the TCP connection to be established. */
  connectTimeoutMs: number;
  /** Longest wait for the whole attempt, from connecting to the start of the response body. */
  timeoutMs: number;
  /** Aborts the attempt (worker shutdown). */
  signal?: AbortSignal;
  /** Extra trusted CA certificates in PEM (default: none beyond the runtime's trust store). */
  ca?: string | string[];
}

/** The outcome of one attempt; `error` is empty exactly when the receiver answered 2xx. */
export interface SendResult {
  /** The response status, or null when no response arrived. */
  statusCode: number | null;
  /** Milliseconds from starting the request to the result. */
  durationMs: number;
  /** Why the attempt failed, e.g. `HTTP 500` or `connect timeout after 10000 ms`; "" on success. */
  error: string;
  /** The first 500 bytes of the response body, decoded as UTF-8 (invalid bytes replaced). */
  responseStart: string;
  /** Seconds the receiver asked to wait (Retry-After on 429 and 503), else null. */
  retryAfterSeconds: number | null;
  /** True when the receiver answered with a redirect, which is never followed. */
  redirected?: boolean;
}

/** How many bytes of a response body are kept for the attempt log. */
export const RESPONSE_START_BYTES = 500;

/**
 * Sends one attempt and reports what happened; never throws for network problems.
 *
 * @example
 * const result = await sendWebhook(target, buildWebhookRequest(input), {
 *   connectTimeoutMs: 10_000, timeoutMs: 30_000, signal,
 * });
 * if (result.error !== "") scheduleRetry(result);
 */
export function sendWebhook(
  target: SendTarget,
  request: SendRequest,
  options: SendOptions,
): Promise<SendResult> {
  const started = performance.now();
  return new Promise<SendResult>((resolve) => {
    const timers: ReturnType<typeof setTimeout>[] = [];
    let settled = false;
    let statusCode: number | null = null;
    let location: string | undefined;
    let retryAfter: string | undefined;
    const kept: Buffer[] = [];
    let keptBytes = 0;
    let req: http.ClientRequest | undefined;

    const finish = (error: string | null) => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      // Whatever is left of the body is not wanted: close the connection instead of reading it.
      req?.destroy();
      resolve(result(error));
    };

    const result = (error: string | null): SendResult => {
      const responseStart = new TextDecoder().decode(Buffer.concat(kept));
      const base = { statusCode, durationMs: Math.round(performance.now() - started) };
      if (error !== null || statusCode === null) {
        return { ...base, error: error ?? "no response", responseStart, retryAfterSeconds: null };
      }
      // RFC 9110 §10.2.3: Retry-After on 503, and RFC 6585 §4 on 429.
      const retryAfterSeconds = statusCode === 429 || statusCode === 503
        ? parseRetryAfter(retryAfter ?? null, new Date())
        : null;
      if (statusCode >= 300 && statusCode < 400) {
        // Following a redirect would reach a host the SSRF guard never checked.
        const to = location === undefined ? "(no Location header)" : absolute(location, target.url);
        return {
          ...base,
          error: `redirect to ${to} not followed`,
          responseStart,
          retryAfterSeconds,
          redirected: true,
        };
      }
      // Standard Webhooks spec §Delivery: any 2xx status means the message was received.
      const error2xx = statusCode >= 200 && statusCode < 300 ? "" : `HTTP ${statusCode}`;
      return { ...base, error: error2xx, responseStart, retryAfterSeconds };
    };

    const onAbort = () => finish("aborted");

    const isHttps = target.url.protocol === "https:";
    const hostname = target.url.hostname.replace(/^\[(.*)\]$/, "$1");
    const body = Buffer.from(request.body, "utf8");
    const headers: Record<string, string | number> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (name.toLowerCase() !== "host") headers[name] = value;
    }
    // RFC 9110 §7.2: Host carries the URL's authority (port only when not the default).
    headers["Host"] = target.url.host;
    headers["Content-Length"] = body.byteLength;
    headers["Connection"] = "close";
    const requestOptions: https.RequestOptions = {
      // Connecting to the literal address means no resolver runs here at all.
      host: target.address,
      family: target.family,
      port: Number(target.url.port) || (isHttps ? 443 : 80),
      path: `${target.url.pathname}${target.url.search}`,
      method: "POST",
      headers,
      // A fresh socket per attempt: nothing pooled can outlive the attempt or leak between hosts.
      agent: false,
    };
    if (isHttps) {
      // RFC 6066 §3 forbids an IP literal as SNI; then the certificate is checked against the IP.
      if (ipFamily(hostname) === null) requestOptions.servername = hostname;
      if (options.ca !== undefined) requestOptions.ca = options.ca;
    }

    try {
      req = (isHttps ? https : http).request(requestOptions);
    } catch (error) {
      // E.g. a header value with a newline: report it like any other failed attempt.
      finish(error instanceof Error ? error.message : String(error));
      return;
    }
    timers.push(setTimeout(() => {
      // Once the status line arrived the receiver has answered; a body that stalls only shortens
      // the logged response start.
      finish(statusCode === null ? `timeout after ${options.timeoutMs} ms` : null);
    }, options.timeoutMs));
    if (options.signal?.aborted) {
      queueMicrotask(onAbort);
    } else {
      options.signal?.addEventListener("abort", onAbort, { once: true });
    }

    req.on("socket", (socket: Socket) => {
      if (!socket.connecting) return;
      const connectTimer = setTimeout(
        () => finish(`connect timeout after ${options.connectTimeoutMs} ms`),
        options.connectTimeoutMs,
      );
      timers.push(connectTimer);
      socket.once("connect", () => clearTimeout(connectTimer));
    });
    req.on("error", (error: Error) => finish(describeError(error)));
    req.on("response", (res: http.IncomingMessage) => {
      statusCode = res.statusCode ?? null;
      location = firstHeader(res.headers.location);
      retryAfter = firstHeader(res.headers["retry-after"]);
      res.on("data", (chunk: Buffer) => {
        const room = RESPONSE_START_BYTES - keptBytes;
        if (room > 0) {
          const part = chunk.byteLength > room ? chunk.subarray(0, room) : chunk;
          kept.push(part);
          keptBytes += part.byteLength;
        }
        if (keptBytes >= RESPONSE_START_BYTES) finish(null);
      });
      res.on("end", () => finish(null));
      // A body cut short after the status arrived still answers the attempt.
      res.on("error", () => finish(null));
      res.on("aborted", () => finish(null));
    });
    req.end(body);
  });
}

/**
 * Seconds to wait from a Retry-After value (RFC 9110 §10.2.3: delay-seconds or an HTTP-date), or
 * null when absent or malformed.
 */
export function parseRetryAfter(value: string | null, now: Date): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  // Every HTTP-date form (IMF-fixdate, RFC 850, asctime) starts with the day name; this keeps
  // Date.parse from reading "-5" or "2" as a year.
  if (!/^[A-Za-z]{3}/.test(text)) return null;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - now.getTime()) / 1000));
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function absolute(location: string, base: URL): string {
  try {
    return new URL(location, base).href;
  } catch {
    return location;
  }
}

const ERROR_CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by the receiver",
  ECONNABORTED: "connection aborted",
  EPIPE: "connection closed while sending",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "connection timed out",
  EADDRNOTAVAIL: "address not available",
};

/** A short readable description of a socket, TLS or HTTP parser error. */
function describeError(error: Error): string {
  const code = (error as Error & { code?: unknown }).code;
  if (error.message === "socket hang up") return "connection closed before a response";
  if (typeof code === "string") {
    const known = ERROR_CODES[code];
    if (known !== undefined) return known;
    if (code.startsWith("ERR_TLS") || code.includes("CERT") || code.startsWith("ERR_SSL")) {
      return `TLS error: ${error.message}`;
    }
  }
  if (/certificate|tls|ssl|handshake/i.test(error.message)) return `TLS error: ${error.message}`;
  return error.message || String(error);
}
