/**
 * The admin pages against the real app and a fresh Postgres database: admins only, forms
 * CSRF-protected, failed events listed and retried from attempt 0 (SPEC §5 Delivery), webhook
 * endpoints managed through the forms, every user's files listed, bad input answered 4xx. One
 * Chromium check clicks Retry on a failed event.
 */
import assert from "node:assert/strict";
import { createUser, type User } from "../src/auth/account_service.ts";
import type { Database } from "../src/db/db.ts";
import { newId } from "../src/db/ids.ts";
import { createApp } from "../app.ts";
import type { AppDeps } from "../src/http/app_env.ts";
import { insertFile } from "../src/uploads/files_repo.ts";
import { deliverDueOnce } from "../src/webhooks/delivery_loop.ts";
import { addEndpoint } from "../src/webhooks/endpoint_service.ts";
import { type Browser, login, startTestServer, testDeps } from "./helpers/app.ts";
import { launchChromium, signInThroughForm } from "./helpers/browser.ts";
import { createMigratedDatabase, type TestDatabase } from "./helpers/db.ts";
import { startReceiver } from "./helpers/receiver.ts";
import {
  deliveriesOf,
  deliveryDeps,
  emit,
  eventState,
  webhookTestConfig,
} from "./helpers/webhooks.ts";

const ADMIN = { email: "admin@example.test", password: "correct horse admin" };
const MEMBER = { email: "member@example.test", password: "correct horse member" };
const ADMIN_PAGES = ["/admin", "/admin/events?status=failed", "/admin/webhooks", "/admin/files"];

/** A migrated database, app deps (private webhook targets allowed), an admin and a member. */
interface Fixture {
  testDb: TestDatabase;
  db: Database;
  deps: AppDeps;
  app: ReturnType<typeof createApp>;
  admin: User;
  member: User;
  close(): Promise<void>;
}

async function createFixture(label: string): Promise<Fixture> {
  const { testDb, db } = await createMigratedDatabase(label);
  const deps = testDeps(db, { env: { PORTAL_WEBHOOK_ALLOW_PRIVATE: "true" } });
  const admin = await createUser({ db }, { ...ADMIN, isAdmin: true });
  const member = await createUser({ db }, MEMBER);
  return {
    testDb,
    db,
    deps,
    app: createApp(deps),
    admin,
    member,
    close: () => testDb.drop(),
  };
}

/** Signs in as the admin; returns the browser and the session's CSRF token. */
async function signInAdmin(fx: Fixture): Promise<{ browser: Browser; csrf: string }> {
  const browser = await login(fx.app, ADMIN.email, ADMIN.password);
  return { browser, csrf: await browser.sessionCsrfToken() };
}

/**
 * An event whose only delivery failed: an endpoint at `receiverUrl` (answering 500) and
 * WEBHOOK_MAX_ATTEMPTS=1, so the first attempt is the last.
 */
async function failedEvent(fx: Fixture, receiverUrl: string): Promise<string> {
  await addEndpoint(fx.deps, { url: receiverUrl, description: "down receiver" });
  const eventId = await emit(fx.db, "file.stored", { file_id: "f-1", original_filename: "a.pdf" });
  const config = webhookTestConfig({ WEBHOOK_MAX_ATTEMPTS: "1" });
  const counts = await deliverDueOnce(deliveryDeps(fx.db, { config }));
  assert.equal(counts.failed, 1, "the single attempt fails the delivery");
  assert.equal((await eventState(fx.db, eventId)).status, "failed");
  return eventId;
}

async function html(response: Response, status: number): Promise<string> {
  const body = await response.text();
  assert.equal(response.status, status, body.slice(0, 500));
  assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
  return body;
}

Deno.test("admin pages redirect a signed-out visitor to /login and refuse a non-admin with 403", async (t) => {
  const fx = await createFixture("admin_access");
  try {
    await t.step("signed out: GET redirects to the login page, POST is 401", async () => {
      for (const path of ADMIN_PAGES) {
        const response = await fx.app.request(path, { redirect: "manual" });
        await response.body?.cancel();
        assert.equal(response.status, 303, path);
        assert.equal(response.headers.get("location"), `/login?next=${encodeURIComponent(path)}`);
      }
      const post = await fx.app.request("/admin/events/retry-failed", { method: "POST" });
      await post.body?.cancel();
      assert.equal(post.status, 401);
    });

    await t.step("a member gets 403 on every page and form, and no Admin link", async () => {
      const browser = await login(fx.app, MEMBER.email, MEMBER.password);
      const csrf = await browser.sessionCsrfToken();
      for (const path of ADMIN_PAGES) {
        const body = await html(await browser.get(path), 403);
        assert.match(body, /Admins only/);
      }
      const post = await browser.postForm("/admin/webhooks", {
        csrf_token: csrf,
        url: "http://127.0.0.1:9/hook",
      });
      await html(post, 403);
      assert.equal((await fx.db.sql`SELECT id FROM webhook_endpoint`).length, 0);
      const home = await html(await browser.get("/"), 200);
      assert.doesNotMatch(home, /href="\/admin"/);
    });

    await t.step("an admin sees the pages and the Admin link", async () => {
      const { browser } = await signInAdmin(fx);
      for (const path of ADMIN_PAGES) await html(await browser.get(path), 200);
      assert.match(await html(await browser.get("/"), 200), /href="\/admin"/);
    });
  } finally {
    await fx.close();
  }
});

Deno.test("admin forms refuse a POST without the session's CSRF token with 403", async () => {
  const fx = await createFixture("admin_csrf");
  try {
    const { browser } = await signInAdmin(fx);
    const endpoint = await addEndpoint(fx.deps, { url: "http://127.0.0.1:9/hook" });
    const forms: [string, Record<string, string>][] = [
      ["/admin/events/retry-failed", {}],
      ["/admin/webhooks", { url: "http://127.0.0.1:9/other" }],
      [`/admin/webhooks/${endpoint.id}/disable`, { csrf_token: "forged" }],
      [`/admin/webhooks/${endpoint.id}/delete`, {}],
    ];
    for (const [path, fields] of forms) {
      const body = await html(await browser.postForm(path, fields), 403);
      assert.match(body, /security token is missing or stale/, path);
    }
    const rows = await fx.db.sql`SELECT is_active FROM webhook_endpoint`;
    assert.deepEqual(rows.map((row) => row.is_active), [true], "nothing changed");
  } finally {
    await fx.close();
  }
});

Deno.test("GET /admin/events lists a failed event; POST retry starts it again from attempt 0", async (t) => {
  const fx = await createFixture("admin_events");
  const receiver = startReceiver(() => new Response("receiver is down", { status: 500 }));
  try {
    const eventId = await failedEvent(fx, receiver.url);
    const { browser, csrf } = await signInAdmin(fx);

    await t.step("the failed filter lists it with a Retry form; other filters do not", async () => {
      const body = await html(await browser.get("/admin/events?status=failed"), 200);
      assert.match(body, new RegExp(`data-event-id="${eventId}" data-status="failed"`));
      assert.match(body, new RegExp(`action="/admin/events/${eventId}/retry"`));
      assert.match(body, /file\.stored/);
      assert.match(body, /: HTTP 500</, "the row shows the last error");
      const delivered = await html(await browser.get("/admin/events?status=delivered"), 200);
      assert.doesNotMatch(delivered, new RegExp(eventId));
      const byType = await html(await browser.get("/admin/events?type=file.deleted"), 200);
      assert.doesNotMatch(byType, new RegExp(eventId));
    });

    await t.step("the detail page shows payload, delivery and attempt", async () => {
      const body = await html(await browser.get(`/admin/events/${eventId}`), 200);
      assert.match(body, /&quot;original_filename&quot;: &quot;a\.pdf&quot;/);
      assert.match(body, new RegExp(receiver.url.replace(/[.:/]/g, "\\$&")));
      assert.match(body, /data-status="failed"/);
      assert.match(body, /receiver is down/, "the attempt shows the start of the response");
      assert.match(body, /<td>500<\/td>/, "the attempt shows the status code");
    });

    await t.step("POST retry resets the delivery to pending at attempt 0", async () => {
      const response = await browser.postForm(`/admin/events/${eventId}/retry`, {
        csrf_token: csrf,
        back: "/admin/events?status=failed",
      });
      await response.body?.cancel();
      assert.equal(response.status, 303);
      const location = response.headers.get("location") ?? "";
      assert.equal(location, "/admin/events?status=failed&notice=retried&n=1");
      const event = await eventState(fx.db, eventId);
      assert.equal(event.status, "pending");
      assert.equal(event.attempts, 0);
      const [delivery] = await deliveriesOf(fx.db, eventId);
      assert.equal(delivery?.status, "pending");
      assert.equal(delivery?.attempts, 0);
      assert.equal(delivery?.lastStatusCode, null);
      const page = await html(await browser.get(location), 200);
      assert.match(page, /Retry started: 1 failed delivery start again from attempt 0/);
      assert.doesNotMatch(page, new RegExp(eventId), "no longer among the failed");
    });

    await t.step("retrying a pending event changes nothing and says so", async () => {
      const response = await browser.postForm(`/admin/events/${eventId}/retry`, {
        csrf_token: csrf,
        back: "https://evil.example/",
      });
      await response.body?.cancel();
      assert.equal(response.headers.get("location"), `/admin/events/${eventId}?notice=nothing`);
    });

    await t.step("Retry all failed starts every failed event again", async () => {
      await deliverDueOnce(
        deliveryDeps(fx.db, { config: webhookTestConfig({ WEBHOOK_MAX_ATTEMPTS: "1" }) }),
      );
      assert.equal((await eventState(fx.db, eventId)).status, "failed");
      const response = await browser.postForm("/admin/events/retry-failed", { csrf_token: csrf });
      await response.body?.cancel();
      assert.equal(response.status, 303);
      assert.equal(response.headers.get("location"), "/admin/events?notice=retried_all&n=1");
      assert.equal((await eventState(fx.db, eventId)).status, "pending");
      assert.equal((await eventState(fx.db, eventId)).attempts, 0);
    });
  } finally {
    await receiver.close();
    await fx.close();
  }
});

Deno.test("admin pages answer bad input with a 4xx page, never a 500", async () => {
  const fx = await createFixture("admin_bad_input");
  try {
    const { browser, csrf } = await signInAdmin(fx);
    const unknown = newId();
    const gets: [string, number, RegExp][] = [
      ["/admin/events/not-a-uuid", 404, /no event &quot;not-a-uuid&quot;/],
      [`/admin/events/${unknown}`, 404, /no event/],
      ["/admin/events?status=lost", 400, /expected one of pending, delivered, failed/],
      ["/admin/events?type=%00bad", 400, /Cannot filter by type/],
      [`/admin/webhooks/${unknown}/delete`, 404, /no webhook endpoint/],
      ["/admin/webhooks/42/delete", 404, /no webhook endpoint/],
      ["/admin/files?status=gone", 400, /Cannot filter by status/],
      ["/admin/files?cursor=%%%", 400, /cursor is malformed/],
      ["/admin/nowhere", 404, /Not found/],
    ];
    for (const [path, status, message] of gets) {
      assert.match(await html(await browser.get(path), status), message, path);
    }
    const posts: [string, Record<string, string>, number, RegExp][] = [
      [`/admin/events/${unknown}/retry`, {}, 404, /no event/],
      ["/admin/events/x/retry", {}, 404, /no event/],
      [`/admin/webhooks/${unknown}/enable`, {}, 404, /no webhook endpoint/],
      [`/admin/webhooks/${unknown}/rotate`, {}, 404, /no webhook endpoint/],
      [`/admin/webhooks/${unknown}/test`, {}, 404, /no webhook endpoint/],
      [`/admin/webhooks/${unknown}/delete`, {}, 404, /no webhook endpoint/],
      ["/admin/webhooks", { url: "not a url" }, 400, /&quot;not a url&quot; is not a URL/],
      ["/admin/webhooks", { url: "ftp://example.com/x" }, 400, /only http and https/],
      [
        "/admin/webhooks",
        { url: "https://example.com", event_types: "file stored" },
        400,
        /event type/,
      ],
      ["/admin/webhooks", { url: "https://example.com", description: "a\u0000b" }, 400, /one line/],
    ];
    for (const [path, fields, status, message] of posts) {
      const body = await html(
        await browser.postForm(path, { csrf_token: csrf, ...fields }),
        status,
      );
      assert.match(body, message, path);
    }
    const refused = await html(
      await browser.postForm("/admin/webhooks", { csrf_token: csrf, url: "not a url" }),
      400,
    );
    assert.match(refused, /value="not a url"/, "the form keeps what was typed");
    assert.equal((await fx.db.sql`SELECT id FROM webhook_endpoint`).length, 0);
  } finally {
    await fx.close();
  }
});

Deno.test("admin webhook forms add, disable, enable, rotate, test and delete an endpoint", async (t) => {
  const fx = await createFixture("admin_webhooks");
  const receiver = startReceiver(() => new Response("hello from the receiver"));
  try {
    const { browser, csrf } = await signInAdmin(fx);
    let id = "";
    let secret = "";
    const endpointRow = async () => {
      const [row] = await fx.db.sql<
        { isActive: boolean; disabledReason: string; secret: string; previousSecret: string }[]
      >`
        SELECT is_active AS "isActive", disabled_reason AS "disabledReason", secret,
               previous_secret AS "previousSecret"
        FROM webhook_endpoint WHERE id = ${id}`;
      return row;
    };

    await t.step("add shows the generated secret once", async () => {
      const body = await html(
        await browser.postForm("/admin/webhooks", {
          csrf_token: csrf,
          url: receiver.url,
          event_types: "file.stored, file.deleted,",
          description: "Billing sync",
        }),
        201,
      );
      const [row] = await fx.db.sql<{ id: string; secret: string; eventTypes: string[] }[]>`
        SELECT id, secret, event_types AS "eventTypes" FROM webhook_endpoint`;
      assert.ok(row);
      id = row.id;
      secret = row.secret;
      assert.deepEqual(row.eventTypes, ["file.stored", "file.deleted"]);
      assert.match(secret, /^whsec_/);
      assert.ok(body.includes(secret), "the answer shows the secret");
      const list = await html(await browser.get("/admin/webhooks"), 200);
      assert.ok(!list.includes(secret), "the list never shows it again");
      assert.match(list, /Billing sync/);
      assert.match(list, /file\.stored, file\.deleted/);
      assert.match(list, new RegExp(`data-endpoint-id="${id}" data-active="true"`));
    });

    await t.step("disable and enable flip is_active", async () => {
      const off = await browser.postForm(`/admin/webhooks/${id}/disable`, { csrf_token: csrf });
      await off.body?.cancel();
      assert.equal(off.status, 303);
      assert.equal(off.headers.get("location"), "/admin/webhooks?notice=disabled");
      assert.equal((await endpointRow())?.isActive, false);
      const list = await html(await browser.get("/admin/webhooks?notice=disabled"), 200);
      assert.match(list, /disabled by an operator/);
      assert.match(list, /Endpoint disabled/);
      const on = await browser.postForm(`/admin/webhooks/${id}/enable`, { csrf_token: csrf });
      await on.body?.cancel();
      assert.equal(on.status, 303);
      assert.equal((await endpointRow())?.isActive, true);
      assert.equal((await endpointRow())?.disabledReason, "");
    });

    await t.step("rotate shows the new secret once and keeps the old one as previous", async () => {
      const body = await html(
        await browser.postForm(`/admin/webhooks/${id}/rotate`, { csrf_token: csrf }),
        200,
      );
      const row = await endpointRow();
      assert.notEqual(row?.secret, secret);
      assert.equal(row?.previousSecret, secret);
      assert.ok(body.includes(row!.secret), "the answer shows the new secret");
      assert.match(body, /old secret stays valid for 24 hours/);
    });

    await t.step("send test shows the receiver's answer", async () => {
      const body = await html(
        await browser.postForm(`/admin/webhooks/${id}/test`, { csrf_token: csrf }),
        200,
      );
      assert.equal(receiver.requests.length, 1);
      assert.equal(receiver.requests[0]?.headers.get("x-webhook-event"), "portal.test");
      assert.match(body, /200 in \d+ ms/);
      assert.match(body, /hello from the receiver/);
    });

    await t.step("delete asks first, then removes the row", async () => {
      const confirm = await html(await browser.get(`/admin/webhooks/${id}/delete`), 200);
      assert.match(confirm, new RegExp(`action="/admin/webhooks/${id}/delete"`));
      assert.equal((await fx.db.sql`SELECT id FROM webhook_endpoint`).length, 1);
      const gone = await browser.postForm(`/admin/webhooks/${id}/delete`, { csrf_token: csrf });
      await gone.body?.cancel();
      assert.equal(gone.status, 303);
      assert.equal(gone.headers.get("location"), "/admin/webhooks?notice=deleted");
      assert.equal((await fx.db.sql`SELECT id FROM webhook_endpoint`).length, 0);
    });
  } finally {
    await receiver.close();
    await fx.close();
  }
});

Deno.test("GET /admin/files lists every user's files with owner, status and download links", async () => {
  const fx = await createFixture("admin_files");
  try {
    const stored = newId();
    const failed = newId();
    await insertFile(fx.db.sql, {
      id: stored,
      batchId: null,
      uploadedBy: fx.member.id,
      originalFilename: "report <2026>.pdf",
      contentType: "application/pdf",
      sizeBytes: 2048,
      sha256: "0".repeat(64),
      storageBackend: "local",
      storageKey: `uploads/2026/01/${stored}/report.pdf`,
      status: "stored",
      errorMessage: "",
      expiresAt: new Date("2030-01-02T03:04:05Z"),
    });
    await insertFile(fx.db.sql, {
      id: failed,
      batchId: null,
      uploadedBy: fx.admin.id,
      originalFilename: "tool.exe",
      contentType: "application/x-executable",
      sizeBytes: 256,
      sha256: "",
      storageBackend: "local",
      storageKey: null,
      status: "failed",
      errorMessage: 'Cannot store "tool.exe": type not allowed',
      expiresAt: null,
      metadata: { error_code: "type_not_allowed", request_id: "req-tool-1" },
    });
    const { browser } = await signInAdmin(fx);
    const body = await html(await browser.get("/admin/files"), 200);
    assert.match(
      body,
      new RegExp(`<a href="/files/${stored}/download">report &lt;2026>\\.pdf</a>`),
    );
    assert.match(body, /member@example\.test/);
    assert.match(body, /<td>2 KB<\/td>/);
    assert.match(body, /2030-01-02 03:04:05Z/);
    assert.match(body, /tool\.exe/);
    assert.doesNotMatch(body, new RegExp(`/files/${failed}/download`), "no bytes, no link");
    assert.match(body, /type not allowed/);
    assert.match(body, /request id <code>req-tool-1<\/code>/, "the id to look up in the log");
    const onlyFailed = await html(await browser.get("/admin/files?status=failed"), 200);
    assert.match(onlyFailed, /tool\.exe/);
    assert.doesNotMatch(onlyFailed, /report/);
  } finally {
    await fx.close();
  }
});

Deno.test({
  name: "GET /admin/events in Chromium: an admin clicks Retry and sees the event pending",
  async fn() {
    const fx = await createFixture("admin_chromium");
    const receiver = startReceiver(() => new Response("nope", { status: 500 }));
    const server = await startTestServer(fx.deps);
    const chromium = await launchChromium();
    try {
      const eventId = await failedEvent(fx, receiver.url);
      const page = await chromium.newPage();
      await signInThroughForm(page, server.url, { ...ADMIN, next: "/admin/events" });
      const row = page.locator(`tr[data-event-id="${eventId}"]`);
      assert.equal(await row.getAttribute("data-status"), "failed");
      await Promise.all([
        page.waitForURL((url) => url.searchParams.get("notice") === "retried"),
        row.locator('button:has-text("Retry")').click(),
      ]);
      assert.equal(await row.getAttribute("data-status"), "pending");
      assert.match(await page.locator(".notice").innerText(), /Retry started/);
      assert.equal((await eventState(fx.db, eventId)).attempts, 0);
    } finally {
      await chromium.close();
      await server.stop();
      await receiver.close();
      await fx.close();
    }
  },
});
