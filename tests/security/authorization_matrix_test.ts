/**
 * Security review probe: who may do what, as one table of routes × callers. Callers are an
 * anonymous client, user A by browser session and by bearer token, user B, an admin (B and the
 * admin hold a session and a token, so whichever a route reads is theirs) and A's revoked
 * token. Session callers send their own CSRF token, so every refusal here is authorization,
 * not CSRF (tests/security/csrf_forms_test.ts covers that). Each cell is the status, then the
 * redirect's path or the JSON error code, then what the request did to its target (a fresh
 * one per cell where the request changes it). Silent on success; a failure prints every
 * mismatching row whole.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../../app.ts";
import { createApiToken, revokeApiToken } from "../../src/auth/token_service.ts";
import type { AppEnv } from "../../src/http/app_env.ts";
import { deliverDueOnce } from "../../src/webhooks/delivery_loop.ts";
import { addEndpoint } from "../../src/webhooks/endpoint_service.ts";
import { login } from "../helpers/app.ts";
import { startReceiver } from "../helpers/receiver.ts";
import {
  createTestUser,
  createUploadFixture,
  type TestUser,
  type UploadFixture,
} from "../helpers/uploads.ts";
import { deliveryDeps, emit, webhookTestConfig } from "../helpers/webhooks.ts";

const PASSWORD = "correct horse battery";
const CALLERS = ["anonymous", "A session", "A token", "B", "admin", "revoked token"] as const;
type CallerName = (typeof CALLERS)[number];

/** What a caller sends: a session cookie (with its CSRF token) and/or a bearer token. */
interface Caller {
  cookie?: string;
  csrf?: string;
  bearer?: string;
}

/** The state every row reads: the app, A's file and batch, and makers of fresh targets. */
interface World {
  fx: UploadFixture;
  app: Hono<AppEnv>;
  ada: TestUser;
  fileA: string;
  batchA: string;
  newFileOfA(): Promise<string>;
  newBatchOfA(): Promise<string>;
  newEndpoint(): Promise<string>;
  newFailedEvent(): Promise<string>;
}

/** How to send one request as a caller. */
interface Send {
  method?: string;
  path: string;
  accept?: string;
  /** A JSON API call with a body (state-changing). */
  json?: unknown;
  /** An HTML form post (state-changing); the caller's csrf_token is added. */
  form?: Record<string, string>;
}

/** One route of the table. */
interface Row {
  route: string;
  /** Makes a fresh target for each cell (default: none, the row reads the shared world). */
  prepare?(world: World): Promise<string>;
  request(world: World, target: string): Send;
  /** What the request did or showed, appended to the cell (default nothing). */
  effect?(world: World, target: string, body: string): Promise<string>;
  expect: Record<CallerName, string>;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** One expectation for every caller, then the cells that differ. */
function cells(
  all: string,
  others: Partial<Record<CallerName, string>>,
): Record<CallerName, string> {
  return Object.fromEntries(CALLERS.map((caller) => [caller, others[caller] ?? all])) as Record<
    CallerName,
    string
  >;
}

const API_CELLS = (ok: string, b: string) =>
  cells(ok, {
    anonymous: "401 unauthorized",
    B: b,
    "revoked token": "401 invalid_token",
  });
const PAGE_CELLS = cells("303 /login", { "A session": "403", B: "403", admin: "200" });
const ADMIN_POST_CELLS = (ok: string, unchanged: string) =>
  cells(`401 ${unchanged}`, { "A session": `403 ${unchanged}`, B: `403 ${unchanged}`, admin: ok });

async function fileStatus(world: World, id: string): Promise<string> {
  const [row] = await world.fx.db.sql<{ status: string }[]>`
    SELECT status FROM upload_file WHERE id = ${id}`;
  return row?.status === "deleted" ? "deleted" : "kept";
}

const ROWS: Row[] = [
  {
    route: "GET /api/v1/me",
    request: () => ({ path: "/api/v1/me" }),
    effect: (_w, _t, body) => Promise.resolve(emailOf(body)),
    expect: cells("", {
      anonymous: "401 unauthorized",
      "A session": "200 ada",
      "A token": "200 ada",
      B: "200 bob",
      admin: "200 admin",
      "revoked token": "401 invalid_token",
    }),
  },
  {
    route: "GET /api/v1/files/:id (A's file)",
    request: (w) => ({ path: `/api/v1/files/${w.fileA}` }),
    expect: API_CELLS("200", "404 not_found"),
  },
  {
    route: "GET /api/v1/files (does the list hold A's file?)",
    request: () => ({ path: "/api/v1/files" }),
    effect: (w, _t, body) =>
      Promise.resolve(!body.includes('"files"') ? "" : body.includes(w.fileA) ? "+A" : "-A"),
    expect: API_CELLS("200 +A", "200 -A"),
  },
  {
    route: "DELETE /api/v1/files/:id (a fresh file of A)",
    prepare: (w) => w.newFileOfA(),
    request: (_w, id) => ({ method: "DELETE", path: `/api/v1/files/${id}`, json: null }),
    effect: (w, id) => fileStatus(w, id),
    expect: cells("200 deleted", {
      anonymous: "401 unauthorized kept",
      B: "404 not_found kept",
      "revoked token": "401 invalid_token kept",
    }),
  },
  {
    route: "GET /files/:id/download (A's file, JSON client)",
    request: (w) => ({ path: `/files/${w.fileA}/download`, accept: "application/json" }),
    expect: API_CELLS("200", "404 not_found"),
  },
  {
    route: "GET /files/:id/download (A's file, browser)",
    request: (w) => ({ path: `/files/${w.fileA}/download`, accept: "text/html" }),
    expect: cells("200", { anonymous: "303 /login", B: "404", "revoked token": "401" }),
  },
  {
    route: "GET /api/v1/batches/:id (A's batch)",
    request: (w) => ({ path: `/api/v1/batches/${w.batchA}` }),
    expect: API_CELLS("200", "404 not_found"),
  },
  {
    route: "POST /api/v1/batches/:id/finalize (a fresh batch of A)",
    prepare: (w) => w.newBatchOfA(),
    request: (_w, id) => ({ method: "POST", path: `/api/v1/batches/${id}/finalize`, json: {} }),
    effect: async (w, id) => {
      const [row] = await w.fx.db.sql<{ status: string }[]>`
        SELECT status FROM upload_batch WHERE id = ${id}`;
      return row?.status === "open" ? "open" : "closed";
    },
    expect: cells("200 closed", {
      anonymous: "401 unauthorized open",
      B: "404 not_found open",
      "revoked token": "401 invalid_token open",
    }),
  },
  {
    route: "POST /api/v1/tokens",
    request: () => ({ method: "POST", path: "/api/v1/tokens", json: { name: "matrix" } }),
    expect: API_CELLS("201", "201"),
  },
  ...["/admin", "/admin/events", "/admin/webhooks", "/admin/files"].map((path): Row => ({
    route: `GET ${path}`,
    request: () => ({ path, accept: "text/html" }),
    expect: PAGE_CELLS,
  })),
  {
    route: "GET /admin/events/:id",
    prepare: (w) => w.newFailedEvent(),
    request: (_w, id) => ({ path: `/admin/events/${id}`, accept: "text/html" }),
    expect: PAGE_CELLS,
  },
  {
    route: "GET /admin/webhooks/:id/delete (the confirmation page)",
    prepare: (w) => w.newEndpoint(),
    request: (_w, id) => ({ path: `/admin/webhooks/${id}/delete`, accept: "text/html" }),
    expect: PAGE_CELLS,
  },
  {
    route: "POST /admin/webhooks (add an endpoint)",
    prepare: () => Promise.resolve(crypto.randomUUID()),
    request: (_w, marker) => ({
      method: "POST",
      path: "/admin/webhooks",
      form: { url: `https://93.184.215.14/hook?m=${marker}`, event_types: "", description: "" },
    }),
    effect: async (w, marker) => {
      const rows = await w.fx.db.sql`
        SELECT id FROM webhook_endpoint WHERE url LIKE ${`%${marker}`}`;
      return rows.length === 0 ? "none" : "added";
    },
    expect: ADMIN_POST_CELLS("201 added", "none"),
  },
  {
    route: "POST /admin/webhooks/:id/disable",
    prepare: (w) => w.newEndpoint(),
    request: (_w, id) => ({ method: "POST", path: `/admin/webhooks/${id}/disable`, form: {} }),
    effect: async (w, id) => {
      const [row] = await w.fx.db.sql<{ active: boolean }[]>`
        SELECT is_active AS active FROM webhook_endpoint WHERE id = ${id}`;
      return row?.active ? "active" : "disabled";
    },
    expect: ADMIN_POST_CELLS("303 /admin/webhooks disabled", "active"),
  },
  {
    route: "POST /admin/webhooks/:id/rotate",
    prepare: (w) => w.newEndpoint(),
    request: (_w, id) => ({ method: "POST", path: `/admin/webhooks/${id}/rotate`, form: {} }),
    effect: async (w, id) => {
      const [row] = await w.fx.db.sql<{ previous: string | null }[]>`
        SELECT previous_secret AS previous FROM webhook_endpoint WHERE id = ${id}`;
      return row?.previous ? "rotated" : "same";
    },
    expect: ADMIN_POST_CELLS("200 rotated", "same"),
  },
  {
    route: "POST /admin/webhooks/:id/delete",
    prepare: (w) => w.newEndpoint(),
    request: (_w, id) => ({ method: "POST", path: `/admin/webhooks/${id}/delete`, form: {} }),
    effect: async (w, id) => {
      const rows = await w.fx.db.sql`SELECT id FROM webhook_endpoint WHERE id = ${id}`;
      return rows.length === 0 ? "deleted" : "kept";
    },
    expect: ADMIN_POST_CELLS("303 /admin/webhooks deleted", "kept"),
  },
  {
    route: "POST /admin/events/:id/retry (a fresh failed event)",
    prepare: (w) => w.newFailedEvent(),
    request: (_w, id) => ({ method: "POST", path: `/admin/events/${id}/retry`, form: {} }),
    effect: (w, id) => eventStatus(w, id),
    expect: ADMIN_POST_CELLS("303 /admin/events/:id retried", "failed"),
  },
  {
    route: "POST /admin/events/retry-failed (a fresh failed event)",
    prepare: (w) => w.newFailedEvent(),
    request: () => ({ method: "POST", path: "/admin/events/retry-failed", form: {} }),
    effect: (w, id) => eventStatus(w, id),
    expect: ADMIN_POST_CELLS("303 /admin/events retried", "failed"),
  },
];

async function eventStatus(world: World, id: string): Promise<string> {
  const [row] = await world.fx.db.sql<{ status: string }[]>`
    SELECT status FROM outbox_event WHERE id = ${id}`;
  return row?.status === "failed" ? "failed" : "retried";
}

function emailOf(body: string): string {
  try {
    const me = JSON.parse(body) as { email?: string };
    return me.email?.split("@")[0] ?? "";
  } catch {
    return "";
  }
}

/** Sends `send` as `caller`. */
function requestAs(app: Hono<AppEnv>, caller: Caller, send: Send): Promise<Response> {
  const headers = new Headers();
  if (caller.cookie) headers.set("cookie", caller.cookie);
  if (caller.bearer) headers.set("authorization", `Bearer ${caller.bearer}`);
  if (send.accept) headers.set("accept", send.accept);
  let body: string | undefined;
  if (send.form !== undefined) {
    headers.set("content-type", "application/x-www-form-urlencoded");
    body = new URLSearchParams({
      ...send.form,
      ...(caller.csrf ? { csrf_token: caller.csrf } : {}),
    }).toString();
  } else if (send.json !== undefined) {
    if (caller.cookie && caller.csrf) headers.set("x-csrf-token", caller.csrf);
    if (send.json !== null) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(send.json);
    }
  }
  return Promise.resolve(
    app.request(send.path, { method: send.method ?? "GET", headers, body, redirect: "manual" }),
  );
}

/** The cell: status, then the redirect's path or the JSON error code, ids shown as ":id". */
function describe(response: Response, body: string): string {
  const parts = [String(response.status)];
  const location = response.headers.get("location");
  if (location !== null) parts.push(new URL(location, "http://portal.test").pathname);
  if (/^application\/json/.test(response.headers.get("content-type") ?? "")) {
    try {
      const code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
      if (code) parts.push(code);
    } catch {
      // not an error body
    }
  }
  return parts.join(" ").replace(UUID, ":id");
}

async function buildWorld(fx: UploadFixture, receiverUrl: string): Promise<{
  world: World;
  callers: Record<CallerName, Caller>;
}> {
  const app = createApp(fx.deps);
  const ada = await createTestUser(fx.db, "ada@example.test");
  const bob = await createTestUser(fx.db, "bob@example.test");
  const admin = await createTestUser(fx.db, "admin@example.test", { admin: true });
  const revoked = await createApiToken({ db: fx.db }, { email: "ada@example.test" });
  assert.ok(await revokeApiToken({ db: fx.db }, revoked.id), "the token is revoked");

  const session = async (email: string): Promise<Caller> => {
    const browser = await login(app, email, PASSWORD);
    const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    return { cookie, csrf: await browser.sessionCsrfToken() };
  };
  const asApi = async (path: string, body: BodyInit | null, headers: HeadersInit = {}) => {
    const response = await app.request(path, {
      method: "POST",
      headers: { ...ada.auth, ...headers },
      body,
    });
    assert.ok(response.status === 201, `${path}: ${await response.clone().text()}`);
    return (await response.json() as { id: string }).id;
  };
  const newBatchOfA = () => asApi("/api/v1/batches", "{}", { "content-type": "application/json" });
  const newFileOfA = () => asApi("/api/v1/files?filename=a.txt", "A's words\n");
  const batchA = await newBatchOfA();
  await asApi(`/api/v1/files?filename=b.txt&batch_id=${batchA}`, "in the batch\n");
  const failingConfig = webhookTestConfig({ WEBHOOK_MAX_ATTEMPTS: "1" });

  const world: World = {
    fx,
    app,
    ada,
    fileA: await newFileOfA(),
    batchA,
    newFileOfA,
    newBatchOfA,
    newEndpoint: async () => (await addEndpoint(fx.deps, { url: receiverUrl })).id,
    newFailedEvent: async () => {
      const id = await emit(fx.db, "file.stored", { file_id: crypto.randomUUID() });
      await deliverDueOnce(deliveryDeps(fx.db, { config: failingConfig }));
      const [row] = await fx.db.sql<{ status: string }[]>`
        SELECT status FROM outbox_event WHERE id = ${id}`;
      assert.equal(row?.status, "failed", "the fresh event failed its only attempt");
      return id;
    },
  };
  // Fan-out needs an endpoint for an event to fail.
  await world.newEndpoint();
  const callers: Record<CallerName, Caller> = {
    anonymous: {},
    "A session": await session("ada@example.test"),
    "A token": { bearer: ada.token },
    B: { ...await session("bob@example.test"), bearer: bob.token },
    admin: { ...await session("admin@example.test"), bearer: admin.token },
    "revoked token": { bearer: revoked.token },
  };
  return { world, callers };
}

Deno.test("authorization matrix: every route answers each caller (anonymous, A by session and token, B, admin, revoked token) as the table says", async () => {
  const fx = await createUploadFixture("sec_authz_matrix", {
    env: { PORTAL_WEBHOOK_ALLOW_PRIVATE: "true" },
  });
  const receiver = startReceiver(() => new Response("down", { status: 500 }));
  try {
    const { world, callers } = await buildWorld(fx, receiver.url);
    const failures: string[] = [];
    for (const row of ROWS) {
      const got = {} as Record<CallerName, string>;
      for (const name of CALLERS) {
        const target = row.prepare ? await row.prepare(world) : "";
        const response = await requestAs(world.app, callers[name], row.request(world, target));
        const body = await response.text();
        const effect = row.effect ? await row.effect(world, target, body) : "";
        got[name] = [describe(response, body), effect].filter((part) => part !== "").join(" ");
      }
      if (CALLERS.some((name) => got[name] !== row.expect[name])) {
        const width = Math.max(...CALLERS.map((name) => row.expect[name].length), 8);
        failures.push(
          [
            row.route,
            ...CALLERS.map((name) =>
              `  ${got[name] === row.expect[name] ? " " : "✗"} ${name.padEnd(14)} expected ${
                row.expect[name].padEnd(width)
              }  got ${got[name]}`
            ),
          ].join("\n"),
        );
      }
    }
    if (failures.length > 0) {
      assert.fail(
        `${failures.length} route(s) answered callers wrongly:\n\n${failures.join("\n\n")}`,
      );
    }
  } finally {
    await receiver.close();
    await fx.close();
  }
});
