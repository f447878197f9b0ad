/**
 * Security review probe: cross-site request forgery. Every state-changing form is found in
 * Portal's own HTML (the pages an anonymous visitor, a user and an admin reach, with a webhook
 * endpoint, a failed event and files present so row buttons render, crawled by following
 * links, again after each round of posts so buttons that appear later are found too), and
 * each POST is refused 403 without the CSRF token and with a token from another session,
 * changing nothing, and is accepted with the right one. A form added without protection is
 * caught without editing this file. The JSON API: a browser session cookie without its
 * `X-CSRF-Token` is refused for POST and DELETE, while a bearer token needs none. /login has
 * its own token, signed over a nonce cookie.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../../app.ts";
import type { AppEnv } from "../../src/http/app_env.ts";
import { deliverDueOnce } from "../../src/webhooks/delivery_loop.ts";
import { addEndpoint } from "../../src/webhooks/endpoint_service.ts";
import { Browser, login } from "../helpers/app.ts";
import { type Receiver, startReceiver } from "../helpers/receiver.ts";
import { createTestUser, createUploadFixture, type UploadFixture } from "../helpers/uploads.ts";
import { deliveryDeps, emit, webhookTestConfig } from "../helpers/webhooks.ts";

const PASSWORD = "correct horse battery";
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** Who renders the pages: each has two accounts, one the victim's, one the attacker's. */
type Role = "anonymous" | "user" | "admin";

const ACCOUNTS: Record<Role, readonly [string, string]> = {
  anonymous: ["admin@example.test", "user@example.test"], // who signs in through /login
  user: ["user@example.test", "user2@example.test"],
  admin: ["admin@example.test", "admin2@example.test"],
};

const START_PAGES: Record<Role, string[]> = {
  anonymous: ["/login"],
  user: ["/", "/upload"],
  admin: ["/", "/upload", "/admin", "/admin/events", "/admin/webhooks", "/admin/files"],
};

/** The forms Portal has today: discovery must find at least these (ids shown as ":id"). */
const KNOWN_FORMS = [
  "anonymous POST /login",
  "user POST /logout",
  "user POST /upload",
  "admin POST /logout",
  "admin POST /upload",
  "admin POST /admin/webhooks",
  "admin POST /admin/webhooks/:id/disable",
  "admin POST /admin/webhooks/:id/enable",
  "admin POST /admin/webhooks/:id/rotate",
  "admin POST /admin/webhooks/:id/test",
  "admin POST /admin/webhooks/:id/delete",
  "admin POST /admin/events/retry-failed",
  "admin POST /admin/events/:id/retry",
];

/** A field of a form, in document order. */
interface Field {
  name: string;
  type: string;
  value: string;
}

/** A form found on a page. */
interface Form {
  role: Role;
  page: string;
  method: string;
  action: string;
  multipart: boolean;
  fields: Field[];
}

function decode(text: string): string {
  return text.replaceAll("&quot;", '"').replaceAll("&#x27;", "'").replaceAll("&#39;", "'")
    .replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
}

function attributes(tag: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const match of tag.matchAll(/([^\s=<>"/]+)(?:="([^"]*)")?/g)) {
    found[match[1]!.toLowerCase()] = decode(match[2] ?? "");
  }
  return found;
}

/**
 * The POST forms of a page, with their fields; a submit button's `formaction` counts as a form
 * of its own.
 */
function postForms(html: string, role: Role, page: string): Form[] {
  const forms: Form[] = [];
  for (const match of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(match[1]!);
    const inner = match[2]!;
    const fields: Field[] = [];
    for (const control of inner.matchAll(/<(input|select|textarea)\b([^>]*)>/gi)) {
      const a = attributes(control[2]!);
      if (!a.name) continue;
      const kind = control[1]!.toLowerCase();
      const type = kind === "input" ? (a.type ?? "text").toLowerCase() : kind;
      if (type === "submit" || type === "button" || type === "reset") continue;
      if ((type === "checkbox" || type === "radio") && !("checked" in a)) continue;
      fields.push({ name: a.name, type, value: a.value ?? "" });
    }
    const base = {
      role,
      page,
      multipart: (attrs.enctype ?? "").toLowerCase() === "multipart/form-data",
      fields,
    };
    const method = (attrs.method ?? "get").toUpperCase();
    if (method === "POST") forms.push({ ...base, method, action: attrs.action ?? page });
    for (const button of inner.matchAll(/<button\b([^>]*)>/gi)) {
      const b = attributes(button[1]!);
      const buttonMethod = (b.formmethod ?? method).toUpperCase();
      if (b.formaction !== undefined && buttonMethod === "POST") {
        forms.push({ ...base, method: buttonMethod, action: b.formaction });
      }
    }
  }
  return forms;
}

function formKey(form: Pick<Form, "role" | "method" | "action">): string {
  const path = new URL(form.action, "http://portal.test").pathname;
  return `${form.role} ${form.method} ${path.replace(UUID, ":id")}`;
}

/** The page's links worth following: same-origin pages, not downloads, assets or sign-out. */
function links(html: string): string[] {
  const found: string[] = [];
  for (const match of html.matchAll(/<a\b[^>]*\bhref="([^"]*)"/gi)) {
    const href = decode(match[1]!);
    if (!href.startsWith("/") || href.startsWith("//")) continue;
    if (/^\/(static|files)\//.test(href) || /^\/(login|logout)\b/.test(href)) continue;
    found.push(href);
  }
  return found;
}

/** The world the forms act on, and the sessions they are posted from. */
interface Site {
  fx: UploadFixture;
  app: Hono<AppEnv>;
  receiver: Receiver;
}

/** A browser of `role` signed in as its `which` account (anonymous: holding /login's cookie). */
async function session(site: Site, role: Role, which: 0 | 1): Promise<Browser> {
  if (role === "anonymous") {
    const browser = new Browser(site.app);
    await browser.loginFormToken();
    return browser;
  }
  return await login(site.app, ACCOUNTS[role][which], PASSWORD);
}

/** The CSRF token the browser's own pages carry. */
async function tokenOf(browser: Browser, role: Role): Promise<string> {
  return role === "anonymous" ? await browser.loginFormToken() : await browser.sessionCsrfToken();
}

/** Every POST form the role reaches from its start pages, by following links. */
async function crawl(site: Site, role: Role): Promise<Form[]> {
  const browser = role === "anonymous" ? new Browser(site.app) : await session(site, role, 0);
  const queue = [...START_PAGES[role]];
  const seen = new Set<string>();
  const forms: Form[] = [];
  while (queue.length > 0 && seen.size < 100) {
    const page = queue.shift()!;
    if (seen.has(page)) continue;
    seen.add(page);
    const response = await browser.get(page, { accept: "text/html" });
    const html = await response.text();
    if (
      response.status !== 200 || !/^text\/html/.test(response.headers.get("content-type") ?? "")
    ) {
      continue;
    }
    forms.push(...postForms(html, role, page));
    queue.push(...links(html).filter((link) => !seen.has(link)));
  }
  assert.ok(seen.size >= START_PAGES[role].length, `${role}: the start pages were read`);
  return forms;
}

/** What a refused post must leave exactly as it was. */
async function fingerprint(site: Site): Promise<string> {
  const sql = site.fx.db.sql;
  const tables = await Promise.all([
    sql`SELECT id, email, password_hash, is_admin, is_active FROM users ORDER BY id`,
    sql`SELECT id, csrf_token, expires_at FROM sessions ORDER BY id`,
    sql`SELECT id, revoked_at FROM api_tokens ORDER BY id`,
    sql`SELECT count(*)::int AS n FROM login_attempt`,
    sql`SELECT id, status FROM upload_batch ORDER BY id`,
    sql`SELECT id, status, storage_key FROM upload_file ORDER BY id`,
    sql`SELECT id, status, attempts, next_attempt_at FROM outbox_event ORDER BY id`,
    sql`SELECT id, url, secret, previous_secret, event_types, is_active
        FROM webhook_endpoint ORDER BY id`,
    sql`SELECT id, status, attempts FROM webhook_delivery ORDER BY id`,
    sql`SELECT count(*)::int AS n FROM webhook_attempt`,
  ]);
  return JSON.stringify([tables.map((rows) => [...rows]), site.receiver.requests.length]);
}

/** The value a field is posted with. */
function fill(field: Field, role: Role, site: Site): string {
  if (field.type === "hidden") return field.value;
  if (field.value !== "") return field.value;
  switch (field.name) {
    case "email":
      return ACCOUNTS[role][0];
    case "password":
      return PASSWORD;
    case "url":
      return `${site.receiver.url}?from=csrf-probe`;
    case "event_types":
      return "";
    default:
      return "csrf probe";
  }
}

/** Posts the form from `browser` with `csrf` as its token field (null: the field left out). */
async function submit(
  site: Site,
  browser: Browser,
  form: Form,
  csrf: string | null,
): Promise<Response> {
  const entries: [string, string | File][] = [];
  for (const field of form.fields) {
    if (field.name === "csrf_token") {
      if (csrf !== null) entries.push([field.name, csrf]);
    } else if (field.type === "file") {
      entries.push([field.name, new File(["csrf probe\n"], "probe.txt", { type: "text/plain" })]);
    } else {
      entries.push([field.name, fill(field, form.role, site)]);
    }
  }
  if (csrf !== null && !form.fields.some((field) => field.name === "csrf_token")) {
    // The form carries no token field: post the token anyway, so only the server decides.
    entries.unshift(["csrf_token", csrf]);
  }
  if (form.multipart) {
    const body = new FormData();
    for (const [name, value] of entries) body.append(name, value);
    return await browser.request(form.action, { method: "POST", body });
  }
  const body = new URLSearchParams(entries.map(([name, value]) => [name, String(value)]));
  return await browser.request(form.action, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: body.toString(),
  });
}

/**
 * Posts `form` as a fresh victim session: no token, a token of another account's session and
 * of the victim's own other session must each answer 403 and change nothing; the victim's own
 * token must pass (anything but 403 and 5xx). Returns the problems found.
 */
async function probeForm(site: Site, form: Form): Promise<string[]> {
  const key = formKey(form);
  const problems: string[] = [];
  const victim = await session(site, form.role, 0);
  const foreign: [string, string][] = [
    ["another account's session", await tokenOf(await session(site, form.role, 1), form.role)],
    [
      "the same account's other session",
      await tokenOf(await session(site, form.role, 0), form.role),
    ],
  ];
  const own = await tokenOf(victim, form.role);
  const before = await fingerprint(site);
  for (const [what, csrf] of [["no token", null], ...foreign] as [string, string | null][]) {
    const response = await submit(site, victim, form, csrf);
    const body = await response.text();
    if (response.status !== 403 || !/Request refused/.test(body)) {
      problems.push(`${key} (from ${form.page}) with ${what}: answered ${response.status}`);
    }
  }
  if (await fingerprint(site) !== before) {
    problems.push(`${key}: a refused post changed the database or sent a webhook`);
  }
  const accepted = await submit(site, victim, form, own);
  await accepted.body?.cancel();
  if (accepted.status === 403 || accepted.status >= 500) {
    problems.push(`${key} with the session's own token: answered ${accepted.status}`);
  }
  return problems;
}

/** A site with two admins, two users, a webhook endpoint, a failed event and stored files. */
async function withSite(label: string, fn: (site: Site) => Promise<void>): Promise<void> {
  const fx = await createUploadFixture(label, { env: { PORTAL_WEBHOOK_ALLOW_PRIVATE: "true" } });
  const receiver = startReceiver(() => new Response("receiver is down", { status: 500 }));
  try {
    const admin = await createTestUser(fx.db, "admin@example.test", { admin: true });
    await createTestUser(fx.db, "admin2@example.test", { admin: true });
    const user = await createTestUser(fx.db, "user@example.test");
    await createTestUser(fx.db, "user2@example.test");
    const app = createApp(fx.deps);
    for (const owner of [admin, user]) {
      const stored = await app.request("/api/v1/files?filename=row.txt", {
        method: "POST",
        headers: owner.auth,
        body: "a row in the files table\n",
      });
      assert.equal(stored.status, 201);
      await stored.body?.cancel();
    }
    await addEndpoint(fx.deps, { url: receiver.url, description: "answers 500" });
    await emit(fx.db, "file.stored", { file_id: crypto.randomUUID() });
    const config = webhookTestConfig({ WEBHOOK_MAX_ATTEMPTS: "1" });
    const counts = await deliverDueOnce(deliveryDeps(fx.db, { config }));
    assert.ok(counts.failed >= 1, "an event failed, so its Retry button renders");
    await fn({ fx, app, receiver });
  } finally {
    await receiver.close();
    await fx.close();
  }
}

Deno.test("every POST form on Portal's pages is refused 403 without its CSRF token or with another session's, changing nothing, and accepted with its own", async () => {
  await withSite("sec_csrf_forms", async (site) => {
    const probed = new Set<string>();
    const deferred = new Map<string, Form>();
    const problems: string[] = [];
    // Round after round: an accepted post can make new buttons appear (Disable → Enable).
    // Deletions wait for the end, so the rows they remove are probed first.
    for (let round = 0; round < 4; round++) {
      const fresh = new Map<string, Form>();
      for (const role of ["anonymous", "user", "admin"] as const) {
        for (const form of await crawl(site, role)) {
          const key = formKey(form);
          if (probed.has(key) || fresh.has(key) || deferred.has(key)) continue;
          if (/\/delete$/.test(key)) deferred.set(key, form);
          else fresh.set(key, form);
        }
      }
      if (fresh.size === 0) break;
      for (const [key, form] of fresh) {
        probed.add(key);
        problems.push(...await probeForm(site, form));
      }
    }
    for (const [key, form] of deferred) {
      probed.add(key);
      problems.push(...await probeForm(site, form));
    }
    const missing = KNOWN_FORMS.filter((key) => !probed.has(key));
    assert.deepEqual(missing, [], `discovery missed forms; it found: ${[...probed].join(", ")}`);
    assert.equal(problems.length, 0, `CSRF protection failed:\n${problems.join("\n")}`);
  });
});

Deno.test("POST /login checks its own token against the nonce cookie: missing, another browser's or without the cookie is 403 and no password is tried", async () => {
  await withSite("sec_csrf_login", async (site) => {
    const victim = new Browser(site.app);
    const token = await victim.loginFormToken();
    const other = new Browser(site.app);
    const otherToken = await other.loginFormToken();
    assert.notEqual(token, otherToken, "each browser gets its own token");
    const fields = { email: "admin@example.test", password: PASSWORD };
    const before = await fingerprint(site);

    const noCookie = new Browser(site.app);
    const swapped = new Browser(site.app);
    for (const [name, value] of other.cookies) swapped.cookies.set(name, value);
    const attempts: [string, Browser, Record<string, string>][] = [
      ["no token", victim, fields],
      ["an empty token", victim, { ...fields, csrf_token: "" }],
      ["another browser's token", victim, { ...fields, csrf_token: otherToken }],
      ["the token without its cookie", noCookie, { ...fields, csrf_token: token }],
      ["the token with another browser's cookie", swapped, { ...fields, csrf_token: token }],
    ];
    for (const [what, browser, form] of attempts) {
      const response = await browser.postForm("/login", form);
      assert.equal(response.status, 403, what);
      assert.match(await response.text(), /Request refused: the sign-in form expired/, what);
      assert.equal(
        response.headers.getSetCookie().some((c) => c.startsWith("portal_session=")),
        false,
      );
    }
    assert.equal(await fingerprint(site), before, "no session, no login attempt recorded");
    const signedIn = await victim.postForm("/login", { ...fields, csrf_token: token });
    await signedIn.body?.cancel();
    assert.equal(signedIn.status, 303, "the browser's own token signs in");
    assert.ok(victim.cookies.has("portal_session"));
  });
});

Deno.test("the JSON API refuses POST and DELETE with a session cookie but no valid X-CSRF-Token, and a bearer token needs none", async () => {
  await withSite("sec_csrf_api", async (site) => {
    const user = await login(site.app, "user@example.test", PASSWORD);
    const csrf = await user.sessionCsrfToken();
    const otherCsrf = await (await login(site.app, "user2@example.test", PASSWORD))
      .sessionCsrfToken();
    const sameUserOtherCsrf = await (await login(site.app, "user@example.test", PASSWORD))
      .sessionCsrfToken();
    const bearer = await createTestUser(site.fx.db, "script@example.test");

    /** A fresh target for each request, made with a bearer token of the acting user. */
    const makeFile = async (auth: Record<string, string>) => {
      const response = await site.app.request("/api/v1/files?filename=t.txt", {
        method: "POST",
        headers: auth,
        body: "target\n",
      });
      return (await response.json() as { id: string }).id;
    };
    const makeBatch = async (auth: Record<string, string>) => {
      const response = await site.app.request("/api/v1/batches", { method: "POST", headers: auth });
      return (await response.json() as { id: string }).id;
    };
    // The session's user needs targets of its own: make them through its session with the token.
    const sessionAuth = { "x-csrf-token": csrf };
    const viaSession = async (path: string, init: RequestInit) =>
      await user.request(path, { ...init, headers: { ...sessionAuth, ...init.headers } });
    const sessionFile = async () =>
      (await (await viaSession("/api/v1/files?filename=s.txt", { method: "POST", body: "s\n" }))
        .json() as { id: string }).id;
    const sessionBatch = async () =>
      (await (await viaSession("/api/v1/batches", { method: "POST" })).json() as { id: string })
        .id;

    type Call = { what: string; make(): Promise<RequestInit & { path: string }> };
    const json = { "content-type": "application/json" };
    const calls: Call[] = [
      {
        what: "POST /api/v1/tokens",
        make: () =>
          Promise.resolve({
            path: "/api/v1/tokens",
            method: "POST",
            headers: json,
            body: '{"name":"x"}',
          }),
      },
      {
        what: "POST /api/v1/batches",
        make: () =>
          Promise.resolve({ path: "/api/v1/batches", method: "POST", headers: json, body: "{}" }),
      },
      {
        what: "POST /api/v1/files",
        make: () =>
          Promise.resolve({ path: "/api/v1/files?filename=f.txt", method: "POST", body: "f\n" }),
      },
      {
        what: "POST /api/v1/batches/:id/finalize",
        make: async () => ({
          path: `/api/v1/batches/${await sessionBatch()}/finalize`,
          method: "POST",
        }),
      },
      {
        what: "DELETE /api/v1/files/:id",
        make: async () => ({ path: `/api/v1/files/${await sessionFile()}`, method: "DELETE" }),
      },
    ];

    for (const call of calls) {
      const { path, ...init } = await call.make();
      const before = await fingerprint(site);
      for (
        const [what, header] of [
          ["no X-CSRF-Token", null],
          ["another account's token", otherCsrf],
          ["the same user's other session's token", sameUserOtherCsrf],
          ["an empty token", ""],
        ] as [string, string | null][]
      ) {
        const headers = new Headers(init.headers);
        if (header !== null) headers.set("x-csrf-token", header);
        const response = await user.request(path, { ...init, headers });
        const body = await response.json() as { error?: { code?: string } };
        assert.ok(
          response.status === 401 || response.status === 403,
          `${call.what} with a session and ${what}: answered ${response.status}`,
        );
        assert.ok(
          body.error?.code === "unauthorized" || body.error?.code === "csrf",
          `${call.what} with ${what}: ${JSON.stringify(body)}`,
        );
      }
      assert.equal(await fingerprint(site), before, `${call.what}: a refused call changed nothing`);
      const withToken = await user.request(path, {
        ...init,
        headers: { ...Object.fromEntries(new Headers(init.headers)), "x-csrf-token": csrf },
      });
      await withToken.body?.cancel();
      assert.ok(
        withToken.status >= 200 && withToken.status < 300,
        `${call.what} with the session's own X-CSRF-Token: answered ${withToken.status}`,
      );
    }

    // A bearer token is never sent by a browser on its own: no CSRF token is asked.
    const bearerCalls: [string, () => Promise<RequestInit & { path: string }>][] = [
      ["POST /api/v1/tokens", () =>
        Promise.resolve({
          path: "/api/v1/tokens",
          method: "POST",
          headers: json,
          body: "{}",
        })],
      ["POST /api/v1/batches", () => Promise.resolve({ path: "/api/v1/batches", method: "POST" })],
      [
        "POST /api/v1/files",
        () =>
          Promise.resolve({ path: "/api/v1/files?filename=b.txt", method: "POST", body: "b\n" }),
      ],
      ["POST /api/v1/batches/:id/finalize", async () => ({
        path: `/api/v1/batches/${await makeBatch(bearer.auth)}/finalize`,
        method: "POST",
      })],
      ["DELETE /api/v1/files/:id", async () => ({
        path: `/api/v1/files/${await makeFile(bearer.auth)}`,
        method: "DELETE",
      })],
    ];
    for (const [what, make] of bearerCalls) {
      const { path, ...init } = await make();
      const response = await site.app.request(path, {
        ...init,
        headers: { ...Object.fromEntries(new Headers(init.headers)), ...bearer.auth },
      });
      await response.body?.cancel();
      assert.ok(
        response.status >= 200 && response.status < 300,
        `${what} by bearer: ${response.status}`,
      );
    }
    // And a session's GET needs no token (the upload island reads the API it feeds on).
    const list = await user.get("/api/v1/files");
    assert.equal(list.status, 200);
    await list.body?.cancel();
  });
});
