/** GET/POST /login and POST /logout. */
import { type Context, Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { bodyLimit } from "hono/body-limit";
import { createHmac, randomBytes } from "node:crypto";
import { authenticate, endSession, startSession } from "../src/auth/account_service.ts";
import type { AppDeps, AppEnv } from "../src/http/app_env.ts";
import { HttpError } from "../src/http/errors.ts";
import { readForm } from "../src/http/form_body.ts";
import { checkCsrf, safeEqual, SESSION_COOKIE } from "../src/http/middleware.ts";
import { verifyingKeys } from "../src/auth/secret_key.ts";
import { renderPage } from "../components/render.tsx";

const LOGIN_CSRF_COOKIE = "portal_login_csrf";

/** Props of `LoginPage`. */
export interface LoginPageProps {
  csrfToken: string;
  next: string;
  email?: string;
  error?: string;
}

/** The sign-in form; posts `email`, `password` and `csrf_token`. */
export function LoginPage({ csrfToken, next, email, error }: LoginPageProps) {
  return (
    <section class="card narrow">
      <h1>Sign in</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <form method="post" action="/login">
        <input type="hidden" name="csrf_token" value={csrfToken} />
        <input type="hidden" name="next" value={next} />
        <label>
          Email
          <input
            type="email"
            name="email"
            value={email ?? ""}
            autocomplete="username"
            required
            autofocus
          />
        </label>
        <label>
          Password
          <input type="password" name="password" autocomplete="current-password" required />
        </label>
        <button type="submit">Sign in</button>
      </form>
    </section>
  );
}

/**
 * Only same-site relative paths are followed after login (no open redirect). Control
 * characters are refused too: in a Location header they are a header injection or a 500.
 */
function safeNext(value: unknown): string {
  return typeof value === "string" && /^\/(?![/\\])/.test(value) &&
      // deno-lint-ignore no-control-regex -- refusing control characters is the point
      !/[\u0000-\u001f\u007f]/.test(value)
    ? value
    : "/";
}

function signLoginToken(secretKey: string, nonce: string): string {
  return createHmac("sha256", secretKey).update(`login-csrf:${nonce}`).digest("base64url");
}

/** Routes for signing in and out. */
export function loginRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const secure = deps.config.publicUrl.startsWith("https:");

  const issueLoginToken = (c: Context<AppEnv>) => {
    let nonce = getCookie(c, LOGIN_CSRF_COOKIE);
    if (!nonce || nonce.length > 64) {
      nonce = randomBytes(18).toString("base64url");
      setCookie(c, LOGIN_CSRF_COOKIE, nonce, {
        httpOnly: true,
        sameSite: "Lax",
        secure,
        path: "/login",
      });
    }
    return signLoginToken(deps.secretKey, nonce);
  };

  app.get("/login", (c) => {
    if (c.get("user")) return c.redirect(safeNext(c.req.query("next")), 303);
    return renderPage(
      c,
      <LoginPage csrfToken={issueLoginToken(c)} next={safeNext(c.req.query("next"))} />,
      {
        title: "Sign in",
      },
    );
  });

  app.post("/login", bodyLimit({ maxSize: 16 * 1024 }), async (c) => {
    let form: Record<string, string>;
    try {
      form = await readForm(c);
    } catch (error) {
      if (!(error instanceof HttpError) || error.code !== "invalid_text") throw error;
      // A control character (a NUL in the email): the form again, with the reason.
      return renderPage(
        c,
        <LoginPage csrfToken={issueLoginToken(c)} next="/" error={error.message} />,
        { status: 400, title: "Sign in" },
      );
    }
    const nonce = getCookie(c, LOGIN_CSRF_COOKIE);
    const given = typeof form.csrf_token === "string" ? form.csrf_token : "";
    if (
      !nonce ||
      !verifyingKeys(deps).some((key) => safeEqual(signLoginToken(key, nonce), given))
    ) {
      throw new HttpError(
        403,
        "csrf",
        "Request refused: the sign-in form expired; reload the page and try again",
      );
    }
    const email = typeof form.email === "string" ? form.email : "";
    const password = typeof form.password === "string" ? form.password : "";
    const next = safeNext(form.next);
    const result = await authenticate(deps, {
      email,
      password,
      address: c.get("clientAddress"),
    });
    if (!result.ok) {
      const rateLimited = result.reason === "rate_limited";
      if (rateLimited) c.header("Retry-After", String(result.retryAfterSeconds));
      const error = rateLimited
        ? "Too many failed sign-in attempts from your address: wait 15 minutes and try again"
        : "Sign-in failed: wrong email or password";
      return renderPage(
        c,
        <LoginPage csrfToken={issueLoginToken(c)} next={next} email={email} error={error} />,
        {
          status: rateLimited ? 429 : 401,
          title: "Sign in",
        },
      );
    }
    const session = await startSession(deps, {
      userId: result.user.id,
      ttlHours: deps.config.sessionTtlHours,
    });
    setCookie(c, SESSION_COOKIE, session.cookieValue, {
      httpOnly: true,
      sameSite: "Lax",
      secure,
      path: "/",
      expires: session.expiresAt,
    });
    deleteCookie(c, LOGIN_CSRF_COOKIE, { path: "/login" });
    c.get("logger").info("login", { user_id: result.user.id });
    return c.redirect(next, 303);
  });

  app.post("/logout", bodyLimit({ maxSize: 16 * 1024 }), async (c) => {
    const form = await readForm(c);
    const cookie = getCookie(c, SESSION_COOKIE);
    if (cookie && c.get("session")) {
      checkCsrf(c, typeof form.csrf_token === "string" ? form.csrf_token : undefined);
      await endSession(deps, cookie);
    }
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    return c.redirect("/login", 303);
  });

  return app;
}
