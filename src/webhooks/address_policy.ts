/**
 * Which IP addresses a webhook may not be sent to: anything that is not ordinary public unicast
 * (loopback, private, link-local, shared, reserved, multicast, documentation ranges, and IPv6
 * forms that embed such an IPv4 address). Ranges follow the IANA special-purpose address
 * registries (RFC 6890 and updates). Unparsable input is refused, so the policy fails closed.
 */

type Verdict = string | null;

// IANA IPv4 Special-Purpose Address Registry (RFC 6890 §2.2.2 and the RFCs cited per row),
// most specific first.
const IPV4_RANGES: ReadonlyArray<readonly [string, number, string]> = [
  ["255.255.255.255", 32, "broadcast"], // RFC 919
  ["0.0.0.0", 32, "unspecified"], // RFC 1122 §3.2.1.3; Linux connects it to the local host
  ["0.0.0.0", 8, "this network"], // RFC 791
  ["10.0.0.0", 8, "private"], // RFC 1918
  ["100.64.0.0", 10, "CGNAT"], // RFC 6598 shared address space
  ["127.0.0.0", 8, "loopback"], // RFC 1122
  ["169.254.0.0", 16, "link-local"], // RFC 3927; cloud metadata services live here
  ["172.16.0.0", 12, "private"], // RFC 1918
  ["192.0.0.0", 24, "reserved"], // RFC 6890 IETF protocol assignments
  ["192.0.2.0", 24, "documentation"], // RFC 5737 TEST-NET-1
  ["192.88.99.0", 24, "reserved"], // RFC 7526 deprecated 6to4 relay anycast
  ["192.168.0.0", 16, "private"], // RFC 1918
  ["198.18.0.0", 15, "benchmarking"], // RFC 2544
  ["198.51.100.0", 24, "documentation"], // RFC 5737 TEST-NET-2
  ["203.0.113.0", 24, "documentation"], // RFC 5737 TEST-NET-3
  ["224.0.0.0", 4, "multicast"], // RFC 5771
  ["240.0.0.0", 4, "reserved"], // RFC 1112 §4
];

const IPV4_TABLE = IPV4_RANGES.map(([base, bits, reason]) => ({
  base: parseIpv4(base) ?? 0,
  mask: bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0,
  reason,
}));

/**
 * Returns why `ip` must not receive webhooks (e.g. `loopback`, `private`,
 * `IPv4-mapped 127.0.0.1 (loopback)`), or null for a public address.
 */
export function isForbiddenAddress(ip: string): string | null {
  const text = stripDecoration(ip);
  const v4 = parseIpv4(text);
  if (v4 !== null) return ipv4Verdict(v4);
  const v6 = parseIpv6(text);
  if (v6 !== null) return ipv6Verdict(v6);
  return "not an IP address";
}

/** 4 or 6 when `ip` is an IPv4 or IPv6 literal (brackets and zone id allowed), else null. */
export function ipFamily(ip: string): 4 | 6 | null {
  const text = stripDecoration(ip);
  if (parseIpv4(text) !== null) return 4;
  if (parseIpv6(text) !== null) return 6;
  return null;
}

function ipv4Verdict(address: number): Verdict {
  for (const range of IPV4_TABLE) {
    if (((address & range.mask) >>> 0) === range.base) return range.reason;
  }
  return null;
}

function ipv6Verdict(groups: number[]): Verdict {
  const g = (index: number) => groups[index] ?? 0;
  const zeroUpTo = (end: number) => groups.slice(0, end).every((group) => group === 0);
  const embedded = (high: number, low: number) => ((g(high) << 16) | g(low)) >>> 0;

  if (zeroUpTo(8)) return "unspecified"; // RFC 4291 §2.5.2
  if (zeroUpTo(7) && g(7) === 1) return "loopback"; // RFC 4291 §2.5.3
  if (zeroUpTo(5) && g(5) === 0xffff) {
    // RFC 4291 §2.5.5.2: the socket talks IPv4 to the embedded address, so judge that one.
    return embeddedVerdict("IPv4-mapped", embedded(6, 7));
  }
  if (zeroUpTo(6)) {
    // RFC 4291 §2.5.5.1: IPv4-compatible addresses are deprecated; never a valid destination.
    const inner = embeddedVerdict("IPv4-compatible", embedded(6, 7));
    return inner ?? "IPv4-compatible (deprecated)";
  }
  if (g(0) === 0x0064 && g(1) === 0xff9b) {
    // RFC 6052 §2.1 well-known NAT64 prefix 64:ff9b::/96 reaches the embedded IPv4 address;
    // 64:ff9b:1::/48 (RFC 8215) is for local use only.
    if (g(2) === 0 && g(3) === 0 && g(4) === 0 && g(5) === 0) {
      return embeddedVerdict("NAT64", embedded(6, 7));
    }
    return g(2) === 1 ? "NAT64 local-use" : "reserved";
  }
  if (g(0) === 0x0100 && g(1) === 0 && g(2) === 0 && g(3) === 0) return "discard-only"; // RFC 6666
  if (g(0) === 0x2001 && g(1) === 0x0db8) return "documentation"; // RFC 3849
  // RFC 4380: a Teredo address tunnels to an IPv4 host through a relay; its real destination is
  // obfuscated in the address, so it is refused rather than decoded.
  if (g(0) === 0x2001 && g(1) === 0) return "Teredo";
  if (g(0) === 0x2001 && g(1) < 0x0200) return "reserved"; // RFC 2928 IETF protocol assignments
  if (g(0) === 0x2002) {
    // RFC 3056 §2: 6to4 carries the IPv4 address of the site in bits 16-47.
    return embeddedVerdict("6to4", embedded(1, 2));
  }
  if ((g(0) & 0xfff0) === 0x3ff0) return "documentation"; // RFC 9637 3fff::/20
  if ((g(0) & 0xfe00) === 0xfc00) return "unique-local"; // RFC 4193 fc00::/7
  if ((g(0) & 0xffc0) === 0xfe80) return "link-local"; // RFC 4291 §2.5.6
  if ((g(0) & 0xffc0) === 0xfec0) return "site-local"; // RFC 3879 (deprecated)
  if ((g(0) & 0xff00) === 0xff00) return "multicast"; // RFC 4291 §2.7
  // RFC 4291 §2.4: IANA allocates global unicast only from 2000::/3; the rest is reserved.
  if ((g(0) & 0xe000) !== 0x2000) return "reserved";
  return null;
}

function embeddedVerdict(kind: string, address: number): Verdict {
  const reason = ipv4Verdict(address);
  return reason === null ? null : `${kind} ${formatIpv4(address)} (${reason})`;
}

/** Strips `[...]` brackets and an RFC 6874 zone id (`%eth0`), which do not change the address. */
function stripDecoration(ip: string): string {
  let text = ip.trim();
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  const zone = text.indexOf("%");
  return zone === -1 ? text : text.slice(0, zone);
}

/** Strict dotted quad (no octal, hex or short forms; URL parsing has already normalised those). */
function parseIpv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = value * 256 + octet;
  }
  return value;
}

/** RFC 4291 §2.2 text forms: `::` compression and a trailing dotted quad; returns 8 groups. */
function parseIpv6(text: string): number[] | null {
  if (!text.includes(":")) return null;
  let body = text;
  let v4Groups: number[] = [];
  const lastColon = body.lastIndexOf(":");
  const last = body.slice(lastColon + 1);
  if (last.includes(".")) {
    const v4 = parseIpv4(last);
    if (v4 === null) return null;
    v4Groups = [v4 >>> 16, v4 & 0xffff];
    body = body.slice(0, lastColon + 1);
    // "::ffff:1.2.3.4" leaves "::ffff:" (drop the separator); "::1.2.3.4" leaves "::" (keep it).
    if (!body.endsWith("::")) body = body.slice(0, -1);
  }
  const halves = body.split("::");
  if (halves.length > 2) return null;
  const head = parseGroups(halves[0] ?? "");
  const rest = parseGroups(halves[1] ?? "");
  if (head === null || rest === null) return null;
  const explicit = head.length + rest.length + v4Groups.length;
  if (halves.length === 2) {
    if (explicit > 7) return null;
    return [...head, ...new Array<number>(8 - explicit).fill(0), ...rest, ...v4Groups];
  }
  return explicit === 8 ? [...head, ...v4Groups] : null;
}

function parseGroups(part: string): number[] | null {
  if (part === "") return [];
  const groups: number[] = [];
  for (const group of part.split(":")) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
    groups.push(parseInt(group, 16));
  }
  return groups;
}

function formatIpv4(address: number): string {
  return [address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255].join(".");
}
