import assert from "node:assert/strict";
import { Webhook } from "npm:standardwebhooks@1.1.1";
import {
  buildWebhookRequest,
  generateSecret,
  signLegacy,
  signStandard,
  verifyStandard,
  type WebhookRequestInput,
} from "../src/webhooks/webhook_signer.ts";

// Published test vector of the Standard Webhooks spec (spec.md §Signature scheme and the
// reference libraries' test suites).
const VECTOR = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  msgId: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

function input(overrides: Partial<WebhookRequestInput> = {}): WebhookRequestInput {
  return {
    deliveryId: "0193a5c4-7d2e-7b1a-9f00-1234567890ab",
    msgId: "msg_0193a5c4-7d2e-7b1a-9f00-000000000001",
    eventType: "file.stored",
    payload: { file_id: "0193a5c4-0000-7000-8000-000000000002", size_bytes: 42, name: "été.txt" },
    occurredAt: new Date("2026-01-02T03:04:05.678Z"),
    secrets: [generateSecret()],
    // The standardwebhooks library checks the timestamp against the real clock.
    now: new Date(),
    version: "0.1.0",
    ...overrides,
  };
}

async function webCryptoHmacHex(key: string, body: string): Promise<string> {
  const encoder = new TextEncoder();
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    encoder.encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(body)));
  return Array.from(mac, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

Deno.test("signStandard() reproduces the Standard Webhooks test vector", () => {
  assert.equal(
    signStandard(VECTOR.secret, VECTOR.msgId, VECTOR.timestamp, VECTOR.body),
    VECTOR.signature,
  );
});

Deno.test("generateSecret() returns whsec_ and the base64 of 32 random bytes", () => {
  const secret = generateSecret();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);
  const bytes = atob(secret.slice("whsec_".length));
  assert.ok(bytes.length >= 24 && bytes.length <= 32);
  assert.notEqual(generateSecret(), secret);
  // The reference library must accept it as a key.
  assert.doesNotThrow(() => new Webhook(secret));
});

Deno.test("buildWebhookRequest() body and headers follow Standard Webhooks and the reference", () => {
  const request = input({ now: new Date("2026-01-02T03:04:10.999Z") });
  const { body, headers } = buildWebhookRequest(request);
  assert.deepEqual(JSON.parse(body), {
    type: "file.stored",
    timestamp: "2026-01-02T03:04:05.678Z",
    data: request.payload,
  });
  assert.equal(headers["content-type"], "application/json");
  assert.equal(headers["webhook-id"], request.msgId);
  assert.equal(headers["webhook-timestamp"], "1767323050");
  assert.match(headers["webhook-signature"] ?? "", /^v1,[A-Za-z0-9+/]{43}=$/);
  assert.equal(headers["X-Webhook-Event"], "file.stored");
  assert.equal(headers["X-Webhook-Delivery"], request.deliveryId);
  assert.equal(headers["User-Agent"], "Portal-Webhooks/0.1.0");
});

Deno.test("buildWebhookRequest() keeps webhook-id stable across retries", () => {
  const first = buildWebhookRequest(input({ now: new Date("2026-01-02T03:00:00Z") }));
  const retry = buildWebhookRequest(input({ now: new Date("2026-01-02T04:00:00Z") }));
  assert.equal(first.headers["webhook-id"], retry.headers["webhook-id"]);
  assert.notEqual(first.headers["webhook-timestamp"], retry.headers["webhook-timestamp"]);
});

Deno.test("buildWebhookRequest() signature verifies with the standardwebhooks package", () => {
  const request = input();
  const { body, headers } = buildWebhookRequest(request);
  const secret = request.secrets[0] ?? "";
  assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
  assert.throws(() => new Webhook(generateSecret()).verify(body, headers), /No matching signature/);
  assert.throws(
    () => new Webhook(secret).verify(body.replace("42", "43"), headers),
    /No matching signature/,
  );
});

Deno.test("buildWebhookRequest() signs with both secrets during a rotation", () => {
  const current = generateSecret();
  const previous = generateSecret();
  const { body, headers } = buildWebhookRequest(input({ secrets: [current, previous] }));
  const signatures = (headers["webhook-signature"] ?? "").split(" ");
  assert.equal(signatures.length, 2);
  assert.ok(signatures.every((signature) => signature.startsWith("v1,")));
  // A receiver still on the old secret and one already on the new secret both accept it.
  assert.doesNotThrow(() => new Webhook(current).verify(body, headers));
  assert.doesNotThrow(() => new Webhook(previous).verify(body, headers));
  assert.throws(() => new Webhook(generateSecret()).verify(body, headers));
});

Deno.test("buildWebhookRequest() X-Webhook-Signature matches an independent Web Crypto HMAC", async () => {
  const current = generateSecret();
  const { body, headers } = buildWebhookRequest(input({ secrets: [current, generateSecret()] }));
  // The reference implementation keys the HMAC with the secret string's UTF-8 bytes.
  assert.equal(headers["X-Webhook-Signature"], await webCryptoHmacHex(current, body));
  assert.equal(signLegacy("test-secret", "{}"), await webCryptoHmacHex("test-secret", "{}"));
});

Deno.test("buildWebhookRequest() refuses to build a request without a secret", () => {
  assert.throws(() => buildWebhookRequest(input({ secrets: [] })), /no secret given/);
});

Deno.test("verifyStandard() accepts Portal's requests and rejects tampering and stale ones", () => {
  const now = new Date("2026-03-01T12:00:00Z");
  const current = generateSecret();
  const previous = generateSecret();
  const { body, headers } = buildWebhookRequest(input({ secrets: [current, previous], now }));
  assert.deepEqual(verifyStandard([current], headers, body, { now }), { ok: true });
  assert.deepEqual(verifyStandard([previous], new Headers(headers), body, { now }), { ok: true });
  assert.deepEqual(verifyStandard([generateSecret()], headers, body, { now }), {
    ok: false,
    reason: "no matching signature",
  });
  assert.equal(verifyStandard([current], headers, `${body} `, { now }).ok, false);
  const late = new Date(now.getTime() + 301_000);
  assert.match(
    (verifyStandard([current], headers, body, { now: late }) as { reason: string }).reason,
    /outside the tolerance/,
  );
  assert.deepEqual(
    verifyStandard([current], headers, body, { now: late, toleranceSeconds: 600 }),
    { ok: true },
  );
  assert.equal(verifyStandard([current], { "webhook-id": "x" }, body, { now }).ok, false);
});

Deno.test("verifyStandard() accepts the Standard Webhooks test vector", () => {
  const headers = {
    "webhook-id": VECTOR.msgId,
    "webhook-timestamp": String(VECTOR.timestamp),
    "webhook-signature": `v1,bm9ldHUgZXJyb3Jvcg== ${VECTOR.signature}`,
  };
  const now = new Date(VECTOR.timestamp * 1000);
  assert.deepEqual(verifyStandard([VECTOR.secret], headers, VECTOR.body, { now }), { ok: true });
});
