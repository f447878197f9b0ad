/**
 * The client's address: the socket peer, or, when that peer is a trusted proxy
 * (PORTAL_TRUST_PROXY), the right-most untrusted address of `X-Forwarded-For`.
 */

function ipv4ToInt(ip: string): number | null {
  const parts = ip.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return null;
    value = value * 256 + Number(part);
  }
  return value;
}

function stripMapped(ip: string): string {
  return ip.toLowerCase().startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
}

/** True when `ip` matches `rule` (an address or IPv4 CIDR). */
export function matchesRule(ip: string, rule: string): boolean {
  const address = stripMapped(ip);
  const [base, bitsText] = rule.split("/");
  if (base === undefined) return false;
  if (bitsText === undefined) return address.toLowerCase() === stripMapped(base).toLowerCase();
  const a = ipv4ToInt(address);
  const b = ipv4ToInt(base);
  const bits = Number(bitsText);
  if (a === null || b === null || bits < 0 || bits > 32) return false;
  if (bits === 0) return true;
  const mask = (0xffffffff << (32 - bits)) >>> 0;
  return ((a & mask) >>> 0) === ((b & mask) >>> 0);
}

/** Resolves the client address for a request from `peer` with header `forwardedFor`. */
export function clientAddress(
  peer: string,
  forwardedFor: string | undefined,
  trusted: readonly string[],
): string {
  const isTrusted = (ip: string) => trusted.some((rule) => matchesRule(ip, rule));
  if (!forwardedFor || !isTrusted(peer)) return stripMapped(peer);
  const hops = forwardedFor.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (!isTrusted(hop)) return stripMapped(hop);
  }
  return stripMapped(hops[0] ?? peer);
}
