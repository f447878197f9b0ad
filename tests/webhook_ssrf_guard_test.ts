import assert from "node:assert/strict";
import {
  type Lookup,
  type RefusedTarget,
  resolveTarget,
  systemLookup,
} from "../src/webhooks/ssrf_guard.ts";

/** A resolver answering from a table, so no test query leaves the machine. */
function fakeLookup(table: Record<string, string[]>): Lookup {
  return (host) => {
    const addresses = table[host];
    if (addresses === undefined) return Promise.reject(new Error(`getaddrinfo ENOTFOUND ${host}`));
    return Promise.resolve(addresses);
  };
}

async function refused(url: string, lookup?: Lookup): Promise<RefusedTarget> {
  const result = await resolveTarget(url, { allowPrivate: false, lookup });
  assert.equal(result.ok, false, `${url} should be refused`);
  if (result.ok) throw new Error("unreachable");
  return result;
}

async function refusal(url: string, lookup?: Lookup): Promise<string> {
  return (await refused(url, lookup)).reason;
}

Deno.test("resolveTarget() refuses IP literals in non-public ranges", async () => {
  assert.equal(
    await refusal("http://127.0.0.1:8080/hook"),
    'Refused webhook URL "http://127.0.0.1:8080/hook": address 127.0.0.1 is not allowed (loopback)',
  );
  assert.match(await refusal("http://10.0.0.5/"), /address 10\.0\.0\.5 is not allowed \(private\)/);
  assert.match(await refusal("http://169.254.169.254/latest/meta-data/"), /\(link-local\)/);
  assert.match(await refusal("https://[::1]:8443/"), /address ::1 is not allowed \(loopback\)/);
  assert.match(await refusal("http://[::ffff:127.0.0.1]/"), /IPv4-mapped 127\.0\.0\.1/);
  assert.match(await refusal("http://[fd00::2]/"), /unique-local/);
  assert.match(await refusal("http://0.0.0.0:9/"), /unspecified/);
});

Deno.test("resolveTarget() sees through IPv4 spellings the URL parser normalises", async () => {
  // WHATWG URL turns these into 127.0.0.1 before the guard looks at them.
  for (
    const url of ["http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/"]
  ) {
    assert.match(await refusal(url), /127\.0\.0\.1 is not allowed \(loopback\)/, url);
  }
});

Deno.test("resolveTarget() refuses localhost through the system resolver", async () => {
  // Real resolution: "localhost" is answered from /etc/hosts without a DNS query.
  const reason = await refusal("http://localhost:8080/hook");
  assert.match(
    reason,
    /^Refused webhook URL "http:\/\/localhost:8080\/hook": host "localhost" resolves to (127\.0\.0\.1|::1) \(loopback\)$/,
  );
});

Deno.test("systemLookup() resolves localhost to loopback addresses", async () => {
  const addresses = await systemLookup("localhost");
  assert.ok(addresses.length > 0);
  assert.ok(addresses.every((address) => address === "::1" || address.startsWith("127.")));
});

Deno.test("resolveTarget() refuses a host name that resolves to a private address", async () => {
  const lookup = fakeLookup({
    "rebind.example.com": ["127.0.0.1"],
    "x.internal": ["10.1.2.3"],
    "mixed.example.com": ["93.184.215.14", "10.1.2.3"],
    "v6.example.com": ["2606:4700::1", "fe80::1"],
    "empty.example.com": [],
    "garbage.example.com": ["not-an-ip"],
  });
  assert.deepEqual(await refused("http://rebind.example.com/hook", lookup), {
    ok: false,
    reason:
      'Refused webhook URL "http://rebind.example.com/hook": host "rebind.example.com" resolves to 127.0.0.1 (loopback)',
    unresolved: false,
  });
  assert.equal(
    await refusal("http://x.internal/", lookup),
    'Refused webhook URL "http://x.internal/": host "x.internal" resolves to 10.1.2.3 (private)',
  );
  // One bad record is enough: the client might pick any of them.
  assert.match(await refusal("https://mixed.example.com/", lookup), /resolves to 10\.1\.2\.3/);
  assert.match(
    await refusal("https://v6.example.com/", lookup),
    /resolves to fe80::1 \(link-local\)/,
  );
  assert.match(await refusal("https://garbage.example.com/", lookup), /not an IP address/);
  // A name with no address at all is a resolution failure, not a policy refusal.
  assert.deepEqual(await refused("https://empty.example.com/", lookup), {
    ok: false,
    reason:
      'Cannot resolve host "empty.example.com" of webhook URL "https://empty.example.com/": it resolves to no address',
    unresolved: true,
  });
});

Deno.test("resolveTarget() fails closed when the name does not resolve, marked unresolved", async () => {
  const failing: Lookup = () =>
    Promise.reject(new Error("getaddrinfo EAI_AGAIN hooks.example.com"));
  assert.deepEqual(await refused("https://hooks.example.com/x", failing), {
    ok: false,
    reason:
      'Cannot resolve host "hooks.example.com" of webhook URL "https://hooks.example.com/x": getaddrinfo EAI_AGAIN hooks.example.com',
    unresolved: true,
  });
  const missing: Lookup = () =>
    Promise.reject(Object.assign(new Error("x"), { code: "ENOTFOUND" }));
  assert.equal(
    await refusal("https://gone.example.com/", missing),
    'Cannot resolve host "gone.example.com" of webhook URL "https://gone.example.com/": no such host',
  );
  // Default resolver: RFC 6761 .invalid names are refused without asking any DNS server.
  assert.deepEqual(await refused("http://portal-webhook-test.invalid/hook"), {
    ok: false,
    reason:
      'Cannot resolve host "portal-webhook-test.invalid" of webhook URL "http://portal-webhook-test.invalid/hook": .invalid names never resolve',
    unresolved: true,
  });
  const hanging: Lookup = () => new Promise<string[]>(() => {});
  const slow = await resolveTarget("https://slow.example.com/", {
    allowPrivate: false,
    lookup: hanging,
    lookupTimeoutMs: 20,
  });
  assert.deepEqual(slow, {
    ok: false,
    reason:
      'Cannot resolve host "slow.example.com" of webhook URL "https://slow.example.com/": lookup timed out after 20 ms',
    unresolved: true,
  });
});

Deno.test("resolveTarget() refuses schemes other than http and https, and bad URLs", async () => {
  for (
    const url of ["ftp://example.com/", "file:///etc/passwd", "gopher://1.1.1.1/", "ws://a.b/"]
  ) {
    assert.match(
      await refusal(url),
      /scheme "[a-z]+:" is not allowed \(only http and https\)/,
      url,
    );
  }
  assert.equal(await refusal("not a url"), 'Refused webhook URL "not a url": not a valid URL');
});

Deno.test("resolveTarget() refuses credentials in the URL without echoing them", async () => {
  const reason = await refusal("https://user:hunter2@hooks.example.com/x");
  assert.equal(
    reason,
    'Refused webhook URL "https://hooks.example.com/x": credentials in the URL are not allowed',
  );
  assert.ok(!reason.includes("hunter2"));
});

Deno.test("resolveTarget() lets private addresses through when allowPrivate is true", async () => {
  const literal = await resolveTarget("http://127.0.0.1:9000/hook", { allowPrivate: true });
  assert.equal(literal.ok, true);
  assert.ok(literal.ok);
  assert.equal(literal.address, "127.0.0.1");
  assert.equal(literal.family, 4);
  assert.equal(literal.url.href, "http://127.0.0.1:9000/hook");

  const v6 = await resolveTarget("http://[::1]:9000/", { allowPrivate: true });
  assert.ok(v6.ok);
  assert.equal(v6.address, "::1");
  assert.equal(v6.family, 6);

  const named = await resolveTarget("http://x.internal/", {
    allowPrivate: true,
    lookup: fakeLookup({ "x.internal": ["10.1.2.3"] }),
  });
  assert.ok(named.ok);
  assert.equal(named.address, "10.1.2.3");

  // Scheme, credentials and resolution failures are still refused.
  assert.equal((await resolveTarget("ftp://127.0.0.1/", { allowPrivate: true })).ok, false);
  assert.equal((await resolveTarget("http://a:b@127.0.0.1/", { allowPrivate: true })).ok, false);
  assert.equal((await resolveTarget("http://x.invalid/", { allowPrivate: true })).ok, false);
});

Deno.test("resolveTarget() accepts public addresses and pins the first resolved one", async () => {
  const lookup = fakeLookup({ "hooks.example.com": ["2606:4700::6810:84e5", "104.16.132.229"] });
  const target = await resolveTarget("https://hooks.example.com/in?x=1", {
    allowPrivate: false,
    lookup,
  });
  assert.deepEqual(target, {
    ok: true,
    url: new URL("https://hooks.example.com/in?x=1"),
    address: "2606:4700::6810:84e5",
    family: 6,
  });
  const literal = await resolveTarget("http://93.184.215.14/", { allowPrivate: false });
  assert.ok(literal.ok);
  assert.equal(literal.family, 4);
});
