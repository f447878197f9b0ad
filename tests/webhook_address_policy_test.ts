import assert from "node:assert/strict";
import { ipFamily, isForbiddenAddress } from "../src/webhooks/address_policy.ts";

// [address, expected verdict]; null means public, so webhooks may go there.
const CASES: ReadonlyArray<readonly [string, string | null]> = [
  // IPv4 public
  ["8.8.8.8", null],
  ["1.1.1.1", null],
  ["93.184.215.14", null],
  ["172.15.255.255", null],
  ["172.32.0.0", null],
  ["100.63.255.255", null],
  ["100.128.0.0", null],
  ["198.17.255.255", null],
  ["198.20.0.0", null],
  ["223.255.255.255", null],
  // IPv4 special purpose
  ["127.0.0.1", "loopback"],
  ["127.255.255.254", "loopback"],
  ["10.0.0.1", "private"],
  ["10.255.255.255", "private"],
  ["172.16.0.1", "private"],
  ["172.31.255.255", "private"],
  ["192.168.1.1", "private"],
  ["169.254.169.254", "link-local"],
  ["100.64.0.1", "CGNAT"],
  ["100.127.255.255", "CGNAT"],
  ["0.0.0.0", "unspecified"],
  ["0.1.2.3", "this network"],
  ["224.0.0.1", "multicast"],
  ["239.255.255.250", "multicast"],
  ["240.0.0.1", "reserved"],
  ["255.255.255.254", "reserved"],
  ["255.255.255.255", "broadcast"],
  ["192.0.0.8", "reserved"],
  ["192.0.2.10", "documentation"],
  ["198.51.100.7", "documentation"],
  ["203.0.113.9", "documentation"],
  ["198.18.0.1", "benchmarking"],
  ["198.19.255.255", "benchmarking"],
  ["192.88.99.1", "reserved"],
  // IPv6 public
  ["2606:4700:4700::1111", null],
  ["2a00:1450:4001:80b::200e", null],
  ["2001:4860:4860::8888", null],
  ["[2606:4700:4700::1111]", null],
  ["::ffff:8.8.8.8", null],
  ["64:ff9b::8.8.8.8", null],
  ["2002:0808:0808::1", null],
  // IPv6 special purpose
  ["::1", "loopback"],
  ["0:0:0:0:0:0:0:1", "loopback"],
  ["[::1]", "loopback"],
  ["::", "unspecified"],
  ["fc00::1", "unique-local"],
  ["fd12:3456:789a::1", "unique-local"],
  ["fe80::1", "link-local"],
  ["fe80::1%eth0", "link-local"],
  ["[fe80::abcd%25eth0]", "link-local"],
  ["febf:ffff::1", "link-local"],
  ["fec0::1", "site-local"],
  ["ff02::1", "multicast"],
  ["ff05::1:3", "multicast"],
  ["::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1 (loopback)"],
  ["::ffff:7f00:1", "IPv4-mapped 127.0.0.1 (loopback)"],
  ["::FFFF:A9FE:A9FE", "IPv4-mapped 169.254.169.254 (link-local)"],
  ["0:0:0:0:0:ffff:10.1.2.3", "IPv4-mapped 10.1.2.3 (private)"],
  ["::127.0.0.1", "IPv4-compatible 127.0.0.1 (loopback)"],
  ["::8.8.8.8", "IPv4-compatible (deprecated)"],
  ["64:ff9b::127.0.0.1", "NAT64 127.0.0.1 (loopback)"],
  ["64:ff9b::a00:1", "NAT64 10.0.0.1 (private)"],
  ["64:ff9b:1::1", "NAT64 local-use"],
  ["2002:7f00:0001::1", "6to4 127.0.0.1 (loopback)"],
  ["2002:c0a8:0101:1::1", "6to4 192.168.1.1 (private)"],
  ["2001::1", "Teredo"],
  ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"],
  ["2001:db8::1", "documentation"],
  ["2001:0db8:85a3::8a2e:0370:7334", "documentation"],
  ["3fff::1", "documentation"],
  ["100::1", "discard-only"],
  ["2001:10::1", "reserved"],
  ["1:2:3:4:5:6:7:8", "reserved"],
  ["4000::1", "reserved"],
  // Not addresses: refused, so the policy fails closed
  ["", "not an IP address"],
  ["localhost", "not an IP address"],
  ["256.1.1.1", "not an IP address"],
  ["1.2.3", "not an IP address"],
  ["010.0.0.1", "not an IP address"],
  ["0x7f.0.0.1", "not an IP address"],
  ["1::2::3", "not an IP address"],
  [":::", "not an IP address"],
  ["1:2:3:4:5:6:7:8:9", "not an IP address"],
  ["12345::1", "not an IP address"],
  ["::ffff:1.2.3.256", "not an IP address"],
];

Deno.test("isForbiddenAddress() classifies the address table", () => {
  const failures = CASES
    .map(([address, expected]) => ({ address, expected, actual: isForbiddenAddress(address) }))
    .filter((row) => row.actual !== row.expected);
  assert.deepEqual(failures, []);
});

Deno.test("isForbiddenAddress() refuses every address of the IPv4 private and loopback blocks", () => {
  for (const prefix of ["127.", "10.", "192.168."]) {
    for (const last of [0, 1, 128, 255]) {
      const address = prefix === "192.168." ? `${prefix}7.${last}` : `${prefix}1.2.${last}`;
      assert.notEqual(isForbiddenAddress(address), null, address);
    }
  }
  for (let second = 16; second <= 31; second++) {
    assert.equal(isForbiddenAddress(`172.${second}.0.1`), "private");
  }
});

Deno.test("ipFamily() recognises IPv4 and IPv6 literals only", () => {
  assert.equal(ipFamily("127.0.0.1"), 4);
  assert.equal(ipFamily("::1"), 6);
  assert.equal(ipFamily("[fe80::1%lo]"), 6);
  assert.equal(ipFamily("::ffff:1.2.3.4"), 6);
  assert.equal(ipFamily("example.com"), null);
  assert.equal(ipFamily("1.2.3.4.5"), null);
});
