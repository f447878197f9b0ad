/**
 * Server-side request forgery guard for webhook URLs: resolves the host once, refuses it when any
 * address is loopback, private, link-local or otherwise not public (unless private targets are
 * allowed), and returns the address to connect to so the sender never resolves the name again
 * (a second lookup is what DNS rebinding exploits).
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { ipFamily, isForbiddenAddress } from "./address_policy.ts";

/** Resolves a host name to its IP addresses. */
export type Lookup = (host: string) => Promise<string[]>;

/** A URL that passed the guard, with the checked address to connect to. */
export interface AllowedTarget {
  ok: true;
  /** The parsed URL; its hostname goes in the Host header and TLS SNI. */
  url: URL;
  /** The checked IP address the request must connect to. */
  address: string;
  /** The address family of `address`. */
  family: 4 | 6;
}

/** A URL the guard refused, with a readable reason. */
export interface RefusedTarget {
  ok: false;
  /**
   * E.g. `Refused webhook URL "http://x/": host "x" resolves to 10.0.0.5 (private)`, or for a
   * name that did not resolve `Cannot resolve host "x" of webhook URL "http://x/": no such host`.
   */
  reason: string;
  /**
   * True when the host name could not be resolved (lookup error or timeout, no address): nothing
   * was checked or sent, and a DNS failure may be transient. False when the URL or an address
   * is forbidden by policy.
   */
  unresolved: boolean;
}

/** Options for `resolveTarget`. */
export interface ResolveTargetOptions {
  /** Let loopback, private and other non-public addresses through (tests, trusted networks). */
  allowPrivate: boolean;
  /** Name resolution (default: `systemLookup`, the OS resolver). */
  lookup?: Lookup;
  /** How long resolution may take before the URL is refused (default 10 000 ms). */
  lookupTimeoutMs?: number;
}

const DEFAULT_LOOKUP_TIMEOUT_MS = 10_000;

/**
 * What can be refused about a webhook URL without resolving it: an IP literal in a forbidden
 * range (every IPv4 spelling is a dotted quad once parsed) or a `localhost` name (RFC 6761
 * §6.3). Null when nothing is wrong on its face; the send-time check still resolves the name.
 *
 * @example
 * refusedOnItsFace(new URL("http://2130706433/"), false); // => "address 127.0.0.1 is not allowed (loopback)"
 */
export function refusedOnItsFace(url: URL, allowPrivate: boolean): string | null {
  if (allowPrivate) return null;
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (ipFamily(host) !== null) {
    const reason = isForbiddenAddress(host);
    return reason === null ? null : `address ${host} is not allowed (${reason})`;
  }
  const name = host.replace(/\.$/, "").toLowerCase();
  if (name === "localhost" || name.endsWith(".localhost")) {
    return `host ${name} is not allowed (loopback)`;
  }
  return null;
}

/** The OS resolver (getaddrinfo, so /etc/hosts applies): every A and AAAA address of `host`. */
export async function systemLookup(host: string): Promise<string[]> {
  const results = await dnsLookup(host, { all: true, verbatim: true });
  return results.map((result) => result.address);
}

/**
 * Checks a webhook URL and picks the address to deliver to; fails closed when the host does not
 * resolve.
 *
 * @example
 * const target = await resolveTarget(endpoint.url, { allowPrivate: config.webhookAllowPrivate });
 * if (!target.ok) return recordFailure(target.reason);
 */
export async function resolveTarget(
  url: string,
  options: ResolveTargetOptions,
): Promise<AllowedTarget | RefusedTarget> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return refuse(url, "not a valid URL");
  }
  const shown = redact(parsed);
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return refuse(shown, `scheme "${parsed.protocol}" is not allowed (only http and https)`);
  }
  // Credentials in the URL would be sent as Basic auth by some clients and end up in logs.
  if (parsed.username !== "" || parsed.password !== "") {
    return refuse(shown, "credentials in the URL are not allowed");
  }
  // The WHATWG URL parser has already normalised IPv4 spellings such as 0x7f.1 or 2130706433
  // to dotted quads, and IPv6 literals keep their brackets in `hostname`.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const literalFamily = ipFamily(host);
  if (literalFamily !== null) {
    const reason = options.allowPrivate ? null : isForbiddenAddress(host);
    if (reason !== null) return refuse(shown, `address ${host} is not allowed (${reason})`);
    return { ok: true, url: parsed, address: host, family: literalFamily };
  }

  const name = host.replace(/\.$/, "").toLowerCase();
  // RFC 6761 §6.4: "invalid" names never resolve, and resolvers should answer that without
  // asking the network.
  if (name === "invalid" || name.endsWith(".invalid")) {
    return unresolved(shown, host, ".invalid names never resolve");
  }
  let addresses: string[];
  try {
    addresses = await withTimeout(
      (options.lookup ?? systemLookup)(host),
      options.lookupTimeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS,
    );
  } catch (error) {
    return unresolved(shown, host, errorMessage(error));
  }
  const [first] = addresses;
  if (first === undefined) return unresolved(shown, host, "it resolves to no address");
  for (const address of addresses) {
    const family = ipFamily(address);
    if (family === null) {
      return refuse(shown, `host "${host}" resolves to "${address}", not an IP address`);
    }
    // Every address is checked, not only the one used: an attacker controlling the zone could
    // otherwise mix a public and a private record and win on the client's address ordering.
    const reason = options.allowPrivate ? null : isForbiddenAddress(address);
    if (reason !== null) return refuse(shown, `host "${host}" resolves to ${address} (${reason})`);
  }
  return { ok: true, url: parsed, address: first, family: ipFamily(first) ?? 4 };
}

function refuse(url: string, detail: string): RefusedTarget {
  return { ok: false, reason: `Refused webhook URL "${url}": ${detail}`, unresolved: false };
}

function unresolved(url: string, host: string, detail: string): RefusedTarget {
  return {
    ok: false,
    reason: `Cannot resolve host "${host}" of webhook URL "${url}": ${detail}`,
    unresolved: true,
  };
}

/** The URL without user info, so a refused URL's password never reaches a log. */
function redact(url: URL): string {
  if (url.username === "" && url.password === "") return url.href;
  const copy = new URL(url.href);
  copy.username = "";
  copy.password = "";
  return copy.href;
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`lookup timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as Error & { code?: unknown }).code;
    if (code === "ENOTFOUND") return "no such host";
    return error.message;
  }
  return String(error);
}
