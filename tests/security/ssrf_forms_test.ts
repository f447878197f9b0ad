/**
 * Security review probe: webhook endpoint URLs that would make Portal call itself, the host's
 * private network or the cloud metadata service. Through the admin console's form and the
 * `portal webhook add` command, every spelling of such an address (decimal, octal, hex, short
 * IPv4, IPv6 and IPv4-mapped IPv6, metadata, RFC 1918, unspecified, a name resolving to
 * loopback), other schemes and credentials in the URL are refused with a 4xx (exit 1) saying
 * why, and nothing is stored. An endpoint already stored (created while private targets were
 * allowed, or whose name later resolves to loopback) is refused at send time, for the
 * console's test button and for a real delivery, and its receiver never hears a request.
 * `tests/webhook_ssrf_guard_test.ts` covers `resolveTarget()` itself.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../../app.ts";
import type { AppEnv } from "../../src/http/app_env.ts";
import { newId } from "../../src/db/ids.ts";
import { deliverDueOnce } from "../../src/webhooks/delivery_loop.ts";
import { insertEndpoint } from "../../src/webhooks/endpoints_repo.ts";
import { generateSecret } from "../../src/webhooks/webhook_signer.ts";
import { type Browser, login } from "../helpers/app.ts";
import { runCli } from "../helpers/cli.ts";
import { startReceiver } from "../helpers/receiver.ts";
import { createTestUser, createUploadFixture, type UploadFixture } from "../helpers/uploads.ts";
import { deliveryDeps } from "../helpers/webhooks.ts";

const PASSWORD = "correct horse battery";
const ADMIN = "admin@example.test";

/** A URL the endpoint form must refuse, and what the refusal must name. */
interface Forbidden {
  url: string;
  reason: RegExp;
}

const LOOPBACK = /loopback/;

/** Addresses that are not public, in the spellings an attacker would try. */
const FORBIDDEN_ADDRESSES: Forbidden[] = [
  { url: "http://127.0.0.1/hook", reason: LOOPBACK },
  { url: "http://127.0.0.1:8000/api/v1/files", reason: LOOPBACK },
  { url: "http://localhost:8080/hook", reason: LOOPBACK },
  { url: "http://2130706433/hook", reason: LOOPBACK },
  { url: "http://017700000001/hook", reason: LOOPBACK },
  { url: "http://0x7f000001/hook", reason: LOOPBACK },
  { url: "http://0x7f.0.0.1/hook", reason: LOOPBACK },
  { url: "http://127.1/hook", reason: LOOPBACK },
  { url: "http://[::1]/hook", reason: LOOPBACK },
  { url: "http://[::ffff:127.0.0.1]/hook", reason: LOOPBACK },
  { url: "http://[::ffff:7f00:1]/hook", reason: LOOPBACK },
  { url: "http://169.254.169.254/latest/meta-data/", reason: /link-local/ },
  { url: "http://[::ffff:169.254.169.254]/latest/meta-data/", reason: /link-local/ },
  { url: "http://10.0.0.1/hook", reason: /private/ },
  { url: "http://10.255.255.254:8080/hook", reason: /private/ },
  { url: "http://192.168.0.1/hook", reason: /private/ },
  { url: "http://192.168.1.254/hook", reason: /private/ },
  { url: "http://172.16.0.1/hook", reason: /private/ },
  { url: "http://0.0.0.0:8000/hook", reason: /unspecified|this network/ },
  { url: "http://0/hook", reason: /unspecified|this network/ },
  { url: "http://[::]/hook", reason: /unspecified/ },
];

/** Not an address problem: the URL itself is not one Portal may call. */
const FORBIDDEN_URLS: Forbidden[] = [
  { url: "file:///etc/passwd", reason: /only http and https|scheme/ },
  { url: "gopher://127.0.0.1:70/_GET", reason: /only http and https|scheme/ },
  { url: "ftp://93.184.215.14/", reason: /only http and https|scheme/ },
  { url: "https://admin:hunter2@93.184.215.14/hook", reason: /credentials/ },
  { url: "https://admin@93.184.215.14/hook", reason: /credentials/ },
];

/** Public addresses the form must accept: the refusals above are the guard's, not the form's. */
const PUBLIC_URLS = ["https://93.184.215.14/hook", "https://[2606:4700::1111]/hook"];

interface Console {
  fx: UploadFixture;
  app: Hono<AppEnv>;
  admin: Browser;
  csrf: string;
}

/** A fresh database with the default policy (private targets refused) and a signed-in admin. */
async function withConsole(label: string, fn: (ctx: Console) => Promise<void>): Promise<void> {
  const fx = await createUploadFixture(label);
  try {
    assert.equal(fx.deps.config.webhookAllowPrivate, false, "the default policy is under test");
    await createTestUser(fx.db, ADMIN, { admin: true });
    const app = createApp(fx.deps);
    const admin = await login(app, ADMIN, PASSWORD);
    await fn({ fx, app, admin, csrf: await admin.sessionCsrfToken() });
  } finally {
    await fx.close();
  }
}

async function endpointUrls(fx: UploadFixture): Promise<string[]> {
  const rows = await fx.db.sql<{ url: string }[]>`SELECT url FROM webhook_endpoint ORDER BY url`;
  return rows.map((row) => row.url);
}

/** The text of the page's alert notice, tags stripped and entities decoded. */
function alertText(html: string): string | null {
  const match = /<p class="notice error" role="alert">([\s\S]*?)<\/p>/.exec(html);
  if (!match) return null;
  return match[1]!.replace(/<[^>]*>/g, "").replaceAll("&quot;", '"').replaceAll("&#x27;", "'")
    .replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
}

/** Posts each URL to the add form; returns one line per URL not refused as it must be. */
async function refusalProblems(ctx: Console, cases: Forbidden[]): Promise<string[]> {
  const problems: string[] = [];
  for (const { url, reason } of cases) {
    const response = await ctx.admin.postForm("/admin/webhooks", {
      csrf_token: ctx.csrf,
      url,
      event_types: "",
      description: "probe",
    });
    const html = await response.text();
    const text = alertText(html);
    const stored = await endpointUrls(ctx.fx);
    if (response.status !== 400 || text === null || !reason.test(text) || stored.length > 0) {
      problems.push(
        `${url}: answered ${response.status}, notice ${JSON.stringify(text)}, stored ${
          JSON.stringify(stored)
        }`,
      );
    }
    // The form may keep what the admin typed; the message (which may reach logs) may not.
    if (text !== null && /hunter2/.test(text)) {
      problems.push(`${url}: the notice repeats the password`);
    }
    // Whatever happened, start the next case from an empty table.
    await ctx.fx.db.sql`DELETE FROM webhook_endpoint`;
  }
  return problems;
}

Deno.test("the console's endpoint form refuses loopback, private, link-local and unspecified addresses in every spelling with a 400 naming the range", async () => {
  await withConsole("sec_ssrf_form_addresses", async (ctx) => {
    const problems = await refusalProblems(ctx, FORBIDDEN_ADDRESSES);
    assert.equal(
      problems.length,
      0,
      `endpoint URLs accepted or refused without a clear reason:\n${problems.join("\n")}`,
    );
  });
});

Deno.test("the console's endpoint form refuses file:, gopher: and ftp: URLs and credentials in the URL with a 400, and accepts public addresses", async () => {
  await withConsole("sec_ssrf_form_urls", async (ctx) => {
    const problems = await refusalProblems(ctx, FORBIDDEN_URLS);
    assert.equal(problems.length, 0, `endpoint URLs not refused:\n${problems.join("\n")}`);
    for (const url of PUBLIC_URLS) {
      const response = await ctx.admin.postForm("/admin/webhooks", { csrf_token: ctx.csrf, url });
      assert.equal(response.status, 201, `${url}: ${alertText(await response.text())}`);
    }
    assert.deepEqual(await endpointUrls(ctx.fx), [...PUBLIC_URLS].sort());
  });
});

Deno.test("portal webhook add refuses loopback, metadata and IPv4-mapped addresses with exit 1 and the reason", async () => {
  const fx = await createUploadFixture("sec_ssrf_cli");
  try {
    const cases: Forbidden[] = [
      { url: "http://127.0.0.1:8000/hook", reason: LOOPBACK },
      { url: "http://169.254.169.254/latest/meta-data/", reason: /link-local/ },
      { url: "http://[::ffff:7f00:1]/hook", reason: LOOPBACK },
      { url: "gopher://127.0.0.1:70/", reason: /only http and https|scheme/ },
    ];
    const results = await Promise.all(cases.map(async ({ url, reason }) => {
      const result = await runCli(["webhook", "add", "--url", url], {
        env: { DATABASE_URL: fx.testDb.url, PORTAL_LOG_LEVEL: "error" },
      });
      const ok = result.code === 1 && reason.test(result.stderr) &&
        !/^Created webhook endpoint/m.test(result.stdout);
      return ok ? null : `${url}: exit ${result.code}, ${JSON.stringify(result.stderr.trim())}`;
    }));
    const problems = results.filter((line) => line !== null);
    assert.equal(problems.length, 0, `portal webhook add accepted:\n${problems.join("\n")}`);
    assert.deepEqual(await endpointUrls(fx), [], "nothing was stored");
  } finally {
    await fx.close();
  }
});

Deno.test("an endpoint stored with a name that resolves to loopback is refused at send time: the console's test and a real delivery never reach it", async () => {
  const receiver = startReceiver();
  try {
    await withConsole("sec_ssrf_send_time", async ({ fx, app, admin, csrf }) => {
      // As if added while PORTAL_WEBHOOK_ALLOW_PRIVATE was on, or before its name was pointed
      // at 127.0.0.1 (DNS rebinding): the row exists, the send must still be refused.
      const url = `http://localhost:${receiver.port}/hook`;
      const endpoint = await insertEndpoint(fx.db.sql, {
        id: newId(),
        url,
        secret: generateSecret(),
        eventTypes: [],
        description: "resolves to loopback",
        now: new Date(),
      });

      const tested = await admin.postForm(`/admin/webhooks/${endpoint.id}/test`, {
        csrf_token: csrf,
      });
      assert.equal(tested.status, 200);
      assert.match(tested.headers.get("content-type") ?? "", /^text\/html/);
      const page = await tested.text();
      assert.match(page, /class="test-answer error"/);
      assert.match(
        page,
        /not sent: Refused webhook URL &quot;http:\/\/localhost:\d+\/hook&quot;: host &quot;localhost&quot; resolves to (127\.0\.0\.1|::1) \(loopback\)/,
      );

      // A real event: a stored file, delivered by the worker's loop with the same settings.
      const owner = await createTestUser(fx.db, "owner@example.test");
      const stored = await app.request("/api/v1/files?filename=a.txt", {
        method: "POST",
        headers: owner.auth,
        body: "for the webhook\n",
      });
      assert.equal(stored.status, 201);
      await stored.body?.cancel();
      const counts = await deliverDueOnce(
        deliveryDeps(fx.db, { config: fx.deps.config, secretKey: fx.deps.secretKey }),
      );
      assert.equal(counts.delivered, 0);
      const deliveries = await fx.db.sql<{ status: string; lastError: string }[]>`
        SELECT status, last_error AS "lastError" FROM webhook_delivery
        WHERE endpoint_id = ${endpoint.id}`;
      assert.equal(deliveries.length, 1, "the event was fanned out to the endpoint");
      assert.equal(deliveries[0]!.status, "failed", "a policy refusal is final, not retried");
      assert.match(deliveries[0]!.lastError, /resolves to (127\.0\.0\.1|::1) \(loopback\)/);
      assert.equal(receiver.requests.length, 0, "the receiver never heard a request");

      // Control: the receiver is up, and the same button reaches it once private targets are on.
      const allowing = createApp({
        ...fx.deps,
        config: { ...fx.deps.config, webhookAllowPrivate: true },
      });
      const tab = await login(allowing, ADMIN, PASSWORD);
      const reached = await tab.postForm(`/admin/webhooks/${endpoint.id}/test`, {
        csrf_token: await tab.sessionCsrfToken(),
      });
      assert.equal(reached.status, 200);
      assert.match(await reached.text(), /class="test-answer ok"/);
      assert.equal(receiver.requests.length, 1, "with private targets allowed it is reached");
    });
  } finally {
    await receiver.close();
  }
});
