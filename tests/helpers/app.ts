/**
 * The app under test: `AppDeps` for a test database, a loopback server on a free port, and a
 * small cookie-keeping browser that signs in through the real login form.
 */
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hono } from "hono";
import { configFrom } from "../../src/config/config.ts";
import type { Database } from "../../src/db/db.ts";
import { createApp } from "../../app.ts";
import type { AppDeps, AppEnv } from "../../src/http/app_env.ts";
import { startServer } from "../../src/http/server.ts";
import { createLogger, type Logger, silentLogger } from "../../src/log/logger.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { createStorage } from "../../src/storage/storage_factory.ts";
import type { StorageAdapter } from "../../src/storage/storage.ts";

/** A fixed signing key for tests (PORTAL_SECRET_KEY needs at least 32 characters). */
export const TEST_SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnop";

/** Options for `testDeps`. */
export interface TestDepsOptions {
  /** Extra settings, as environment variables (default: none). */
  env?: Record<string, string>;
  /** Logger (default: `silentLogger`). */
  logger?: Logger;
  /**
   * Storage adapter (default: local storage under a temp path that is only created if a test
   * writes a file; these tests do not).
   */
  storage?: StorageAdapter;
}

/** Builds `AppDeps` around `db` with test defaults. */
export function testDeps(db: Database, options: TestDepsOptions = {}): AppDeps {
  const config = configFrom({
    PORTAL_SECRET_KEY: TEST_SECRET_KEY,
    PORTAL_LOG_LEVEL: "error",
    PORTAL_DATA_DIR: join(tmpdir(), `portal-test-${crypto.randomUUID()}`),
    ...options.env,
  });
  return {
    config,
    db,
    logger: options.logger ?? silentLogger,
    secretKey: TEST_SECRET_KEY,
    metrics: new Metrics(),
    storage: options.storage ?? createStorage(config),
  };
}

/** A logger that keeps every line it writes, as the JSON text it would print. */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (line) => lines.push(line) });
  return { logger, lines };
}

/** A server on 127.0.0.1 and a free port. */
export interface TestServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** Serves the app built from `deps` over real loopback. */
export async function startTestServer(deps: AppDeps): Promise<TestServer> {
  const app = createApp(deps);
  const server = await startServer(app.fetch, { hostname: "127.0.0.1", port: 0 });
  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port,
    async stop() {
      await server.shutdown(5_000);
      await server.finished;
    },
  };
}

/** A port nobody listens on right now (the kernel's choice; free at the time of the call). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Sends a request somewhere: a base URL over the network, or an app in-process. */
export type Target = string | Hono<AppEnv>;

/** Options for in-process requests. */
export interface BrowserOptions {
  /** The socket address the app sees for in-process requests (default 127.0.0.1). */
  address?: string;
}

/**
 * A cookie-keeping client, like a browser with one tab: follows nothing, remembers
 * `Set-Cookie` (name=value, respecting deletions), sends the cookies back on every request.
 */
export class Browser {
  readonly cookies = new Map<string, string>();
  #target: Target;
  #address: string;

  constructor(target: Target, options: BrowserOptions = {}) {
    this.#target = target;
    this.#address = options.address ?? "127.0.0.1";
  }

  /** Sends a request with the jar's cookies and stores the answer's cookies. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0 && !headers.has("cookie")) {
      headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    }
    const response = typeof this.#target === "string"
      ? await fetch(new URL(path, this.#target), { ...init, headers, redirect: "manual" })
      : await this.#target.request(path, { ...init, headers, redirect: "manual" }, {
        remoteAddr: { hostname: this.#address, port: 50000, transport: "tcp" },
      });
    for (const line of response.headers.getSetCookie()) {
      const [pair = "", ...attributes] = line.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a)) ||
        attributes.some((a) => {
          const match = /^\s*expires=(.*)$/i.exec(a);
          return match !== null && new Date(match[1]!).getTime() < Date.now();
        });
      if (expired || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }

  /** GET `path`. */
  get(path: string, headers: HeadersInit = {}): Promise<Response> {
    return this.request(path, { headers });
  }

  /** POST an urlencoded form. */
  postForm(path: string, fields: Record<string, string>, headers: HeadersInit = {}) {
    return this.request(path, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams(fields).toString(),
    });
  }

  /** GETs /login and returns the form's CSRF field (the cookie lands in the jar). */
  async loginFormToken(): Promise<string> {
    const page = await this.get("/login");
    assert.equal(page.status, 200);
    return formField(await page.text(), "csrf_token");
  }

  /** Signs in through the form; returns the POST /login response (body unread). */
  async submitLogin(email: string, password: string): Promise<Response> {
    const csrfToken = await this.loginFormToken();
    return await this.postForm("/login", { email, password, csrf_token: csrfToken });
  }

  /** The session's CSRF token, read from a signed-in page's `<meta name="csrf-token">`. */
  async sessionCsrfToken(): Promise<string> {
    const page = await this.get("/");
    assert.equal(page.status, 200);
    const match = /<meta name="csrf-token" content="([^"]+)"/.exec(await page.text());
    assert.ok(match, "the signed-in page carries a csrf-token meta tag");
    return match[1]!;
  }
}

/** The value of the hidden input `name` in an HTML form. */
export function formField(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  assert.ok(match, `the page has a "${name}" field`);
  return match[1]!;
}

/**
 * Signs in through the real login form and returns the browser holding the session cookie.
 *
 * @example
 * const browser = await login(server.url, "a@b.c", "correct horse");
 * const home = await browser.get("/");
 */
export async function login(
  target: Target,
  email: string,
  password: string,
  options: BrowserOptions = {},
): Promise<Browser> {
  const browser = new Browser(target, options);
  const response = await browser.submitLogin(email, password);
  await response.body?.cancel();
  assert.equal(response.status, 303, `signing in as ${email} redirects`);
  assert.ok(browser.cookies.has("portal_session"), "signing in sets the session cookie");
  return browser;
}
