/**
 * Middleware for every request (request id, client address, access log, session) and the
 * guards routes opt into (signed-in user, admin, API token, CSRF).
 */
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { timingSafeEqual } from "node:crypto";
import { resolveSession, type User } from "../auth/account_service.ts";
import { resolveApiToken } from "../auth/token_service.ts";
import type { AppDeps, AppEnv } from "./app_env.ts";
import { clientAddress } from "./client_address.ts";
import { HttpError, wantsJson } from "./errors.ts";

/** Name of the session cookie. */
export const SESSION_COOKIE = "portal_session";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;

/** Sets the request id, the client address and the per-request logger; logs one line per request. */
export function requestContext(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async function requestContext(c, next) {
    const incoming = c.req.header("x-request-id");
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    const peer = socketAddress(c);
    const address = clientAddress(peer, c.req.header("x-forwarded-for"), deps.config.trustProxy);
    const logger = deps.logger.child({ request_id: requestId });
    c.set("requestId", requestId);
    c.set("clientAddress", address);
    c.set("logger", logger);
    c.set("user", null);
    c.set("session", null);
    c.set("tokenExpiresAt", null);
    const started = performance.now();
    try {
      await next();
    } finally {
      c.header("X-Request-Id", requestId);
      logger.info("request", {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        duration_ms: Math.round(performance.now() - started),
        client: address,
        user_id: c.get("user")?.id ?? null,
      });
    }
  };
}

function socketAddress(c: Context<AppEnv>): string {
  // Deno.serve passes its ServeHandlerInfo as Hono's `env`.
  const info = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return info?.remoteAddr?.hostname ?? "127.0.0.1";
}

/** Loads the browser session (if any) into `user` and `session`. */
export function loadSession(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async function loadSession(c, next) {
    const cookie = getCookie(c, SESSION_COOKIE);
    if (cookie) {
      const session = await resolveSession(deps, cookie);
      if (session) {
        c.set("session", session);
        c.set("user", session.user);
      }
    }
    await next();
  };
}

/** Requires a signed-in user: pages redirect to /login, API calls get 401. */
export function requireUser(): MiddlewareHandler<AppEnv> {
  return async function requireUser(c, next) {
    if (!c.get("user")) {
      if (wantsJson(c) || c.req.method !== "GET") {
        throw new HttpError(401, "unauthorized", "Sign in first: this page needs a login");
      }
      const next = encodeURIComponent(c.req.path + (new URL(c.req.url).search || ""));
      return c.redirect(`/login?next=${next}`, 303);
    }
    await next();
  };
}

/** Requires an admin (after `requireUser` or `requireToken`). */
export function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async function requireAdmin(c, next) {
    if (!c.get("user")?.isAdmin) {
      throw new HttpError(403, "forbidden", "Admins only: your account is not an admin");
    }
    await next();
  };
}

/**
 * The owner of the request's bearer token (also set as `user`), null when the request carries
 * no Authorization header; a malformed, unknown or revoked token is a 401.
 */
export async function bearerUser(deps: AppDeps, c: Context<AppEnv>): Promise<User | null> {
  const header = c.req.header("authorization");
  if (header === undefined) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) {
    throw new HttpError(
      401,
      "unauthorized",
      'Cannot authenticate: expected "Authorization: Bearer <token>"',
      {
        "WWW-Authenticate": 'Bearer realm="portal"',
      },
    );
  }
  const user = await resolveApiToken(deps, match[1]!);
  if (!user) {
    throw new HttpError(
      401,
      "invalid_token",
      "Cannot authenticate: the token is unknown or revoked",
      {
        "WWW-Authenticate": 'Bearer realm="portal", error="invalid_token"',
      },
    );
  }
  c.set("user", user);
  c.set("tokenExpiresAt", user.tokenExpiresAt);
  return user;
}

/**
 * Authenticates API calls with `Authorization: Bearer <token>`. A browser session also counts
 * for GET requests, so the upload page's island can read the API it feeds on.
 */
export function requireToken(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async function requireToken(c, next) {
    if (await bearerUser(deps, c)) return await next();
    if (
      c.get("user") && (c.req.method === "GET" || c.req.method === "HEAD" || csrfHeaderValid(c))
    ) {
      return await next();
    }
    throw new HttpError(
      401,
      "unauthorized",
      'Cannot authenticate: send "Authorization: Bearer <token>"',
      {
        "WWW-Authenticate": 'Bearer realm="portal"',
      },
    );
  };
}

function csrfHeaderValid(c: Context<AppEnv>): boolean {
  const expected = c.get("session")?.csrfToken;
  const given = c.req.header("x-csrf-token");
  return !!expected && !!given && safeEqual(expected, given);
}

/** Constant-time string comparison. */
export function safeEqual(a: string, b: string): boolean {
  const left = new TextEncoder().encode(a);
  const right = new TextEncoder().encode(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/**
 * Checks the session's CSRF token on a state-changing browser request: the `X-CSRF-Token`
 * header, or the `csrf_token` form field passed in by the route (after parsing its body).
 */
export function checkCsrf(c: Context<AppEnv>, formToken: string | undefined): void {
  verifyCsrf(c.get("session")?.csrfToken, c.req.header("x-csrf-token") ?? formToken);
}

/** Refuses (403) unless `given` is the session's token `expected`. */
export function verifyCsrf(expected: string | undefined, given: string | undefined): void {
  if (!expected || !given || !safeEqual(expected, given)) {
    throw new HttpError(
      403,
      "csrf",
      "Request refused: the form's security token is missing or stale; reload the page and try again",
    );
  }
}
