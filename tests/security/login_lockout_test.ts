/**
 * Finding 2 of the security review: five wrong guesses from anywhere locked any account, the
 * admin's included, for 15 minutes, repeatable forever. Over real loopback HTTP behind a
 * trusted proxy (X-Forwarded-For names the client): one address hammering the admin's password
 * is refused, while the admin signs in from another address during and after the attack; and
 * without a trusted proxy a client cannot escape its limit by inventing X-Forwarded-For values.
 */
import assert from "node:assert/strict";
import { Browser, startTestServer } from "../helpers/app.ts";
import { createTestUser, createUploadFixture } from "../helpers/uploads.ts";

const PASSWORD = "correct horse battery";
const ADMIN = "admin@example.test";

async function signIn(url: string, forwardedFor: string, password: string): Promise<number> {
  const browser = new Browser(url);
  const token = await browser.loginFormToken();
  const response = await browser.postForm(
    "/login",
    { email: ADMIN, password, csrf_token: token },
    { "x-forwarded-for": forwardedFor },
  );
  await response.body?.cancel();
  return response.status;
}

Deno.test("the admin still signs in from a second address while a first one hammers wrong passwords", async () => {
  const fx = await createUploadFixture("sec_lockout", { env: { PORTAL_TRUST_PROXY: "127.0.0.1" } });
  const server = await startTestServer(fx.deps);
  try {
    await createTestUser(fx.db, ADMIN, { admin: true });
    const attacker = "198.51.100.66";
    const hammering = Promise.all(
      Array.from({ length: 30 }, (_, i) => signIn(server.url, attacker, `guess ${i}`)),
    );
    const during = await signIn(server.url, "203.0.113.5", PASSWORD);
    const statuses = await hammering;
    assert.equal(during, 303, "the admin signed in during the attack");
    assert.equal(statuses.filter((s) => s === 401).length, 5, "five guesses were checked");
    assert.equal(statuses.filter((s) => s === 429).length, 25, "the rest were refused");
    assert.equal(await signIn(server.url, attacker, PASSWORD), 429, "the attacker stays refused");
    assert.equal(await signIn(server.url, "203.0.113.5", PASSWORD), 303, "the admin, after it");
    assert.equal(await signIn(server.url, "192.0.2.44", PASSWORD), 303, "and from a third address");
  } finally {
    await server.stop();
    await fx.close();
  }
});

Deno.test("without a trusted proxy, invented X-Forwarded-For values do not reset an address's limit", async () => {
  const fx = await createUploadFixture("sec_lockout_spoof");
  const server = await startTestServer(fx.deps);
  try {
    await createTestUser(fx.db, ADMIN, { admin: true });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push(await signIn(server.url, `10.9.8.${i}`, "nope"));
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);
  } finally {
    await server.stop();
    await fx.close();
  }
});
