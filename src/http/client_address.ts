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

/** An IPv6 address (zone and dotted IPv4 tail allowed) as a 128-bit number, or null. */
function ipv6ToBigInt(ip: string): bigint | null {
  let text = ip.toLowerCase().replace(/%.*$/, "");
  const dottedTail = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dottedTail) {
    const v4 = ipv4ToInt(dottedTail[2]!);
    if (v4 === null) return null;
    text = `${dottedTail[1]}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groupsOf = (part: string) => (part === "" ? [] : part.split(":"));
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  const zeros = 8 - head.length - tail.length;
  if (halves.length === 2 ? zeros < 1 : zeros !== 0) return null;
  const filler = new Array<string>(halves.length === 2 ? zeros : 0).fill("0");
  let value = 0n;
  for (const group of [...head, ...filler, ...tail]) {
    if (!/^[0-9a-f]{1,4}$/.test(group)) return null;
    value = (value << 16n) | BigInt(parseInt(group, 16));
  }
  return value;
}

/** True when `ip` matches `rule`: an IPv4 or IPv6 address, or a CIDR of either. */
export function matchesRule(ip: string, rule: string): boolean {
  const address = stripMapped(ip);
  const [rawBase, bitsText] = rule.split("/");
  if (rawBase === undefined) return false;
  const base = stripMapped(rawBase);
  if (address.includes(":") || base.includes(":")) {
    // PORTAL_TRUST_PROXY accepts IPv6 rules, so they must match (fd00::/8, ::1).
    const a = ipv6ToBigInt(address);
    const b = ipv6ToBigInt(base);
    const bits = bitsText === undefined ? 128 : Number(bitsText);
    if (a === null || b === null || !Number.isInteger(bits) || bits < 0 || bits > 128) return false;
    const shift = BigInt(128 - bits);
    return a >> shift === b >> shift;
  }
  if (bitsText === undefined) return address === base;
  const a = ipv4ToInt(address);
  const b = ipv4ToInt(base);
  const bits = Number(bitsText);
  if (a === null || b === null || !Number.isInteger(bits) || bits < 0 || bits > 32) return false;
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
