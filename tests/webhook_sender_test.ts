import assert from "node:assert/strict";
import net from "node:net";
import { Webhook } from "npm:standardwebhooks@1.1.1";
import { parseRetryAfter, type SendTarget, sendWebhook } from "../src/webhooks/webhook_sender.ts";
import { buildWebhookRequest, generateSecret } from "../src/webhooks/webhook_signer.ts";

// Test-only PKI (EC P-256, valid until 2126) for the HTTPS tests: a CA and a leaf certificate for
// DNS:webhook.test signed by it. Generated with openssl; trusted nowhere but in this file.
const TEST_CA = `-----BEGIN CERTIFICATE-----
MIIBmTCCAT+gAwIBAgIUYzAlIKHVxe6INnDEG1gCxTek81EwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOUG9ydGFsIHRlc3QgQ0EwIBcNMjYxMTIzMTUyNzE4WhgPMjEy
NjEwMzAxNTI3MThaMBkxFzAVBgNVBAMMDlBvcnRhbCB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAETCZB7k7Sd6ysfpVWuuNp3f1otGbTKueLEyXem4Qz
H2aKDcB5AygNRKU01FNdc8mEiCIUiFbGdVpPfFfeHCA+MaNjMGEwHQYDVR0OBBYE
FDF7EXcpjkhvDWSgRxstgAgydPj3MB8GA1UdIwQYMBaAFDF7EXcpjkhvDWSgRxst
gAgydPj3MA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgIEMAoGCCqGSM49
BAMCA0gAMEUCIGITYvOXOPaDEX6LCxlG+S2LhOm/2uD7F1UGBMtoptuBAiEAkAaM
GoJ6BKbXedof+jgyyVMkNbMGmIntv1ctRxECTLM=
-----END CERTIFICATE-----
`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBvTCCAWSgAwIBAgIUNCnKDNtU18IvUMd6R1Mp0BQjUz4wCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOUG9ydGFsIHRlc3QgQ0EwIBcNMjYxMTIzMTUyNzE4WhgPMjEy
NjEwMzAxNTI3MThaMBcxFTATBgNVBAMMDHdlYmhvb2sudGVzdDBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABHnksC0QO8f1Y17Ob6x0S6Emw1XuaPi846YIAJsxmLPo
1p9dPY4P2p4JsexJMU65Hj+1LvMcqoSKSqwa1yx6qOijgYkwgYYwFwYDVR0RBBAw
DoIMd2ViaG9vay50ZXN0MAkGA1UdEwQCMAAwCwYDVR0PBAQDAgeAMBMGA1UdJQQM
MAoGCCsGAQUFBwMBMB0GA1UdDgQWBBTb1ok4Rc7AV4A++R6mYorlgUqlyTAfBgNV
HSMEGDAWgBQxexF3KY5Ibw1koEcbLYAIMnT49zAKBggqhkjOPQQDAgNHADBEAiA/
SZG5HlF9Gk8yAxgbDq77qbn5rIHVwBbDaOjckSFNdgIgWWcaXfXPfd2qQMcIYHDF
2n7xEqNFy3yRLeLIbJSrrGA=
-----END CERTIFICATE-----
`;
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsOGxYm7bPg6CpVfc
Hlyp+km7OqKlkPwL0sDxIvLC+H+hRANCAAR55LAtEDvH9WNezm+sdEuhJsNV7mj4
vOOmCACbMZiz6NafXT2OD9qeCbHsSTFOuR4/tS7zHKqEikqsGtcseqjo
-----END PRIVATE KEY-----
`;

const TIMEOUTS = { connectTimeoutMs: 2_000, timeoutMs: 5_000 };

interface Received {
  method: string;
  path: string;
  headers: Headers;
  body: string;
}

/** A Deno.serve receiver on 127.0.0.1 that records what it got. */
function startReceiver(
  handler: (request: Request) => Response | Promise<Response>,
  tls?: { cert: string; key: string },
) {
  const received: Received[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {}, ...tls },
    async (request) => {
      const url = new URL(request.url);
      received.push({
        method: request.method,
        path: url.pathname + url.search,
        headers: request.headers,
        body: await request.text(),
      });
      return handler(request);
    },
  );
  return { port: server.addr.port, received, close: () => server.shutdown() };
}

/** A raw TCP listener on 127.0.0.1 that hands each accepted connection to `onConnection`. */
function startRawListener(onConnection: (conn: Deno.Conn) => void) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      connections.push(conn);
      onConnection(conn);
    }
  })();
  return {
    port: listener.addr.port,
    async close() {
      listener.close();
      for (const conn of connections) {
        try {
          conn.close();
        } catch {
          // Already closed by the handler.
        }
      }
      await accepting;
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function loopbackTarget(url: string): SendTarget {
  return { url: new URL(url), address: "127.0.0.1", family: 4 };
}

function signedRequest(secret = generateSecret()) {
  return buildWebhookRequest({
    deliveryId: "0193a5c4-7d2e-7b1a-9f00-1234567890ab",
    msgId: "msg_0193a5c4-7d2e-7b1a-9f00-000000000001",
    eventType: "file.stored",
    payload: { file_id: "0193a5c4-0000-7000-8000-000000000002", original_filename: "ünï.txt" },
    occurredAt: new Date("2026-01-02T03:04:05Z"),
    secrets: [secret],
    now: new Date(),
    version: "0.1.0",
  });
}

Deno.test("sendWebhook() delivers a signed POST and reports a 2xx as success", async () => {
  const receiver = startReceiver(() => new Response("thanks", { status: 200 }));
  try {
    const secret = generateSecret();
    const request = signedRequest(secret);
    const result = await sendWebhook(
      loopbackTarget(`http://127.0.0.1:${receiver.port}/hook?src=portal`),
      request,
      TIMEOUTS,
    );
    assert.equal(result.statusCode, 200);
    assert.equal(result.error, "");
    assert.equal(result.responseStart, "thanks");
    assert.equal(result.retryAfterSeconds, null);
    assert.equal(result.redirected, undefined);
    assert.ok(result.durationMs >= 0 && result.durationMs < 5_000);

    const [got] = receiver.received;
    assert.ok(got);
    assert.equal(got.method, "POST");
    assert.equal(got.path, "/hook?src=portal");
    assert.equal(got.body, request.body);
    assert.equal(got.headers.get("content-type"), "application/json");
    assert.equal(got.headers.get("x-webhook-event"), "file.stored");
    assert.equal(got.headers.get("user-agent"), "Portal-Webhooks/0.1.0");
    // What arrived verifies with the reference Standard Webhooks library.
    const headers = Object.fromEntries(got.headers);
    assert.deepEqual(new Webhook(secret).verify(got.body, headers), JSON.parse(request.body));
  } finally {
    await receiver.close();
  }
});

Deno.test("sendWebhook() connects to the pinned address and sends the URL's Host header", async () => {
  const receiver = startReceiver(() => new Response(null, { status: 204 }));
  try {
    // webhook.test is never resolved: the socket goes to the address the guard checked.
    const result = await sendWebhook(
      loopbackTarget(`http://webhook.test:${receiver.port}/hook`),
      signedRequest(),
      TIMEOUTS,
    );
    assert.equal(result.statusCode, 204);
    assert.equal(result.error, "");
    assert.equal(receiver.received[0]?.headers.get("host"), `webhook.test:${receiver.port}`);
  } finally {
    await receiver.close();
  }
});

Deno.test("sendWebhook() checks the HTTPS certificate against the URL's host, not the address", async (t) => {
  const receiver = startReceiver(async (request) => {
    if (new URL(request.url).pathname === "/slow") await delay(300);
    return new Response("secure");
  }, { cert: TEST_CERT, key: TEST_KEY });
  try {
    await t.step("the certificate for webhook.test is accepted", async () => {
      const result = await sendWebhook(
        loopbackTarget(`https://webhook.test:${receiver.port}/hook`),
        signedRequest(),
        { ...TIMEOUTS, ca: TEST_CA },
      );
      assert.equal(result.error, "");
      assert.equal(result.statusCode, 200);
      assert.equal(result.responseStart, "secure");
      assert.equal(receiver.received.at(-1)?.headers.get("host"), `webhook.test:${receiver.port}`);
    });
    await t.step("a response slower than the connect timeout still arrives", async () => {
      const result = await sendWebhook(
        loopbackTarget(`https://webhook.test:${receiver.port}/slow`),
        signedRequest(),
        { connectTimeoutMs: 100, timeoutMs: 5_000, ca: TEST_CA },
      );
      assert.equal(result.error, "");
      assert.equal(result.responseStart, "secure");
    });
    await t.step("another host name on the same address fails verification", async () => {
      const result = await sendWebhook(
        loopbackTarget(`https://other.test:${receiver.port}/hook`),
        signedRequest(),
        { ...TIMEOUTS, ca: TEST_CA },
      );
      assert.equal(result.statusCode, null);
      assert.match(result.error, /^TLS error: .*other\.test/);
    });
    await t.step("an untrusted CA fails verification", async () => {
      const result = await sendWebhook(
        loopbackTarget(`https://webhook.test:${receiver.port}/hook`),
        signedRequest(),
        TIMEOUTS,
      );
      assert.equal(result.statusCode, null);
      assert.match(result.error, /^TLS error: /);
    });
  } finally {
    await receiver.close();
  }
});

Deno.test("sendWebhook() keeps the first 500 bytes of a 1 MB error body without reading it all", async () => {
  const chunkSize = 64 * 1024;
  const chunks = 16; // 1 MiB in all
  let sentBytes = 0;
  let pending: ReturnType<typeof setTimeout> | undefined;
  let resolveCancelled = () => {};
  const cancelled = new Promise<void>((resolve) => (resolveCancelled = resolve));
  const receiver = startReceiver(() => {
    let index = 0;
    // The first chunk goes at once, each later one after 100 ms: reading the whole body would
    // take at least 1.5 s.
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (index > 0) await new Promise((resolve) => (pending = setTimeout(resolve, 100)));
        const fill = index === 0 ? "E".charCodeAt(0) : "x".charCodeAt(0);
        controller.enqueue(new Uint8Array(chunkSize).fill(fill));
        sentBytes += chunkSize;
        if (++index === chunks) controller.close();
      },
      cancel() {
        clearTimeout(pending);
        resolveCancelled();
      },
    });
    return new Response(body, { status: 500, headers: { "content-type": "text/plain" } });
  });
  try {
    const result = await sendWebhook(
      loopbackTarget(`http://127.0.0.1:${receiver.port}/hook`),
      signedRequest(),
      TIMEOUTS,
    );
    assert.equal(result.statusCode, 500);
    assert.equal(result.error, "HTTP 500");
    assert.equal(result.responseStart, "E".repeat(500));
    assert.equal(result.retryAfterSeconds, null);
    assert.ok(result.durationMs < 1_000, `took ${result.durationMs} ms`);
    // The receiver sees the connection go away before it could send the whole body.
    await cancelled;
    assert.ok(sentBytes < chunks * chunkSize, `sent ${sentBytes} bytes`);
  } finally {
    await receiver.close();
  }
});

Deno.test("sendWebhook() gives up on a receiver that never answers after the whole timeout", async () => {
  const listener = startRawListener(() => {});
  try {
    const result = await sendWebhook(
      loopbackTarget(`http://127.0.0.1:${listener.port}/hook`),
      signedRequest(),
      { connectTimeoutMs: 2_000, timeoutMs: 300 },
    );
    assert.equal(result.statusCode, null);
    assert.equal(result.error, "timeout after 300 ms");
    assert.equal(result.responseStart, "");
    assert.ok(result.durationMs >= 290 && result.durationMs < 2_000, `${result.durationMs} ms`);
  } finally {
    await listener.close();
  }
});

Deno.test("sendWebhook() treats a 2xx whose body stalls as delivered", async () => {
  let stop = () => {};
  const receiver = startReceiver(() => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("accepted"));
        stop = () => controller.close();
      },
    });
    return new Response(body, { status: 202 });
  });
  try {
    const result = await sendWebhook(
      loopbackTarget(`http://127.0.0.1:${receiver.port}/hook`),
      signedRequest(),
      { connectTimeoutMs: 2_000, timeoutMs: 300 },
    );
    assert.equal(result.statusCode, 202);
    assert.equal(result.error, "");
    assert.equal(result.responseStart, "accepted");
  } finally {
    try {
      stop();
    } catch {
      // Already cancelled when the client went away.
    }
    await receiver.close();
  }
});

Deno.test("sendWebhook() reports a connect timeout separately from the whole timeout", async () => {
  const listener = await saturatedListener();
  if (typeof listener === "string") {
    console.log(`skipped: ${listener}`);
    return;
  }
  try {
    const result = await sendWebhook(
      loopbackTarget(`http://127.0.0.1:${listener.port}/hook`),
      signedRequest(),
      { connectTimeoutMs: 200, timeoutMs: 5_000 },
    );
    assert.equal(result.statusCode, null);
    assert.equal(result.error, "connect timeout after 200 ms");
    assert.ok(result.durationMs >= 190 && result.durationMs < 2_000, `${result.durationMs} ms`);
  } finally {
    listener.close();
  }
});

Deno.test("sendWebhook() connect timeout does not cover a slow response", async () => {
  const receiver = startReceiver(async () => {
    await delay(300);
    return new Response("late but fine");
  });
  try {
    const result = await sendWebhook(
      loopbackTarget(`http://127.0.0.1:${receiver.port}/hook`),
      signedRequest(),
      { connectTimeoutMs: 100, timeoutMs: 5_000 },
    );
    assert.equal(result.statusCode, 200);
    assert.equal(result.error, "");
    assert.ok(result.durationMs >= 290, `${result.durationMs} ms`);
  } finally {
    await receiver.close();
  }
});

Deno.test("sendWebhook() reports a refused connection", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const result = await sendWebhook(
    loopbackTarget(`http://127.0.0.1:${port}/hook`),
    signedRequest(),
    TIMEOUTS,
  );
  assert.equal(result.statusCode, null);
  assert.equal(result.error, "connection refused");
});

Deno.test("sendWebhook() reports a receiver that closes without answering", async () => {
  const listener = startRawListener((conn) => conn.close());
  try {
    const result = await sendWebhook(
      loopbackTarget(`http://127.0.0.1:${listener.port}/hook`),
      signedRequest(),
      TIMEOUTS,
    );
    assert.equal(result.statusCode, null);
    assert.match(result.error, /^connection (closed before a response|reset by the receiver)$/);
  } finally {
    await listener.close();
  }
});

Deno.test("sendWebhook() returns an unsendable header as an error instead of throwing", async () => {
  const request = { body: "{}", headers: { "X-Webhook-Event": "file.stored\r\nX-Injected: 1" } };
  const result = await sendWebhook(loopbackTarget("http://127.0.0.1:9/hook"), request, TIMEOUTS);
  assert.equal(result.statusCode, null);
  assert.match(result.error, /invalid character|X-Webhook-Event/i);
});

Deno.test("sendWebhook() does not follow a redirect", async () => {
  const receiver = startReceiver(() =>
    new Response("moved", { status: 302, headers: { location: "http://10.0.0.1/" } })
  );
  try {
    const result = await sendWebhook(
      loopbackTarget(`http://127.0.0.1:${receiver.port}/hook`),
      signedRequest(),
      TIMEOUTS,
    );
    assert.equal(result.statusCode, 302);
    assert.equal(result.error, "redirect to http://10.0.0.1/ not followed");
    assert.equal(result.redirected, true);
    assert.equal(result.responseStart, "moved");
    // One request, to the receiver; there is no code path that could connect to 10.0.0.1.
    assert.equal(receiver.received.length, 1);
  } finally {
    await receiver.close();
  }
});

Deno.test("sendWebhook() parses Retry-After on 429 and 503", async () => {
  const inNinetySeconds = new Date(Date.now() + 90_000).toUTCString();
  const responses = [
    new Response("slow down", { status: 429, headers: { "retry-after": "120" } }),
    new Response("maintenance", { status: 503, headers: { "retry-after": inNinetySeconds } }),
    new Response("oops", { status: 500, headers: { "retry-after": "120" } }),
  ];
  const receiver = startReceiver(() => responses.shift() ?? new Response(null, { status: 500 }));
  try {
    const target = loopbackTarget(`http://127.0.0.1:${receiver.port}/hook`);
    const tooMany = await sendWebhook(target, signedRequest(), TIMEOUTS);
    assert.equal(tooMany.statusCode, 429);
    assert.equal(tooMany.error, "HTTP 429");
    assert.equal(tooMany.retryAfterSeconds, 120);

    const unavailable = await sendWebhook(target, signedRequest(), TIMEOUTS);
    assert.equal(unavailable.statusCode, 503);
    assert.ok(
      unavailable.retryAfterSeconds !== null && unavailable.retryAfterSeconds >= 85 &&
        unavailable.retryAfterSeconds <= 91,
      `retryAfterSeconds ${unavailable.retryAfterSeconds}`,
    );

    const serverError = await sendWebhook(target, signedRequest(), TIMEOUTS);
    assert.equal(serverError.retryAfterSeconds, null);
  } finally {
    await receiver.close();
  }
});

Deno.test("parseRetryAfter() reads delay-seconds and HTTP dates", () => {
  const now = new Date("2026-05-01T12:00:00Z");
  assert.equal(parseRetryAfter("120", now), 120);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Fri, 01 May 2026 12:01:30 GMT", now), 90);
  assert.equal(parseRetryAfter("Fri, 01 May 2026 11:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("-5", now), null);
  assert.equal(parseRetryAfter("soon", now), null);
  assert.equal(parseRetryAfter(null, now), null);
});

Deno.test("sendWebhook() stops when its signal aborts", async () => {
  const listener = startRawListener(() => {});
  try {
    const target = loopbackTarget(`http://127.0.0.1:${listener.port}/hook`);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 50);
    const result = await sendWebhook(target, signedRequest(), {
      ...TIMEOUTS,
      signal: controller.signal,
    });
    clearTimeout(timer);
    assert.equal(result.statusCode, null);
    assert.equal(result.error, "aborted");
    assert.ok(result.durationMs < 2_000);

    const already = await sendWebhook(target, signedRequest(), {
      ...TIMEOUTS,
      signal: AbortSignal.abort(),
    });
    assert.equal(already.error, "aborted");
  } finally {
    await listener.close();
  }
});

/**
 * A loopback listener whose accept queue is full, so a new connection attempt hangs in SYN_SENT:
 * listen(2) with backlog 0 via libc (Deno.listen has no backlog option), one queued connection
 * that is never accepted, and further SYNs dropped by the kernel. Returns a reason when the
 * platform does not allow it.
 */
async function saturatedListener(): Promise<{ port: number; close(): void } | string> {
  if (Deno.build.os !== "linux") return `needs Linux libc, running on ${Deno.build.os}`;
  let libc;
  try {
    libc = Deno.dlopen("libc.so.6", {
      socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
      bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
      listen: { parameters: ["i32", "i32"], result: "i32" },
      getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
    });
  } catch (error) {
    return `cannot load libc.so.6: ${error instanceof Error ? error.message : error}`;
  }
  const lib = libc;
  const AF_INET = 2;
  const SOCK_STREAM = 1;
  const fd = lib.symbols.socket(AF_INET, SOCK_STREAM, 0);
  // struct sockaddr_in for 127.0.0.1, port 0 (the kernel picks one).
  const address = new Uint8Array(16);
  address.set([AF_INET, 0, 0, 0, 127, 0, 0, 1]);
  const length = new Uint32Array([address.byteLength]);
  const fillers: net.Socket[] = [];
  const close = () => {
    for (const socket of fillers) socket.destroy();
    if (fd >= 0) lib.symbols.close(fd);
    lib.close();
  };
  if (
    fd < 0 || lib.symbols.bind(fd, address, address.byteLength) !== 0 ||
    lib.symbols.listen(fd, 0) !== 0 ||
    lib.symbols.getsockname(fd, address, new Uint8Array(length.buffer)) !== 0
  ) {
    close();
    return "cannot create a listening socket through libc";
  }
  const port = ((address[2] ?? 0) << 8) | (address[3] ?? 0);
  // Connect until one attempt hangs: from then on the queue is full.
  for (let attempt = 0; attempt < 8; attempt++) {
    const socket = net.connect({ host: "127.0.0.1", port });
    fillers.push(socket);
    socket.on("error", () => {});
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 300);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!connected) return { port, close };
  }
  close();
  return "the kernel kept accepting connections on a backlog-0 listener";
}
