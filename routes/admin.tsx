/**
 * GET /admin: the admin start page, and what the admin pages share (SPEC §5 Security: admins
 * only, forms CSRF-protected). The pages are plain server-rendered forms: each POST checks the
 * session's CSRF token, calls one service and answers 303 back to the page with a notice code,
 * or renders the page itself when it must show a secret once (a secret never goes in a URL).
 */
import { type Context, Hono } from "hono";
import type { ComponentChildren } from "preact";
import { isUuid } from "../src/db/ids.ts";
import type { AppDeps, AppEnv } from "../src/http/app_env.ts";
import { HttpError } from "../src/http/errors.ts";
import { checkCsrf } from "../src/http/middleware.ts";
import { renderPage } from "../src/http/render.tsx";

/** Routes of the admin start page (mounted at /admin behind requireUser and requireAdmin). */
export function adminHomeRoutes(_deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/", (c) => {
    return renderPage(
      c,
      <AdminSection title="Admin" current="">
        <ul class="admin-links">
          <li>
            <a href="/admin/events">Outbox events</a>
            <span class="muted">: deliveries, attempts, retries</span>
          </li>
          <li>
            <a href="/admin/events?status=failed">Failed events</a>
            <span class="muted">: what needs a retry</span>
          </li>
          <li>
            <a href="/admin/webhooks">Webhook endpoints</a>
            <span class="muted">: add, enable, disable, rotate secrets, send a test</span>
          </li>
          <li>
            <a href="/admin/files">Files</a>
            <span class="muted">: every user's uploads</span>
          </li>
        </ul>
      </AdminSection>,
      { title: "Admin" },
    );
  });
  return app;
}

const SECTIONS = [
  ["events", "Events"],
  ["webhooks", "Webhooks"],
  ["files", "Files"],
] as const;

/** Props of `AdminSection`. */
export interface AdminSectionProps {
  title: string;
  /** The admin area shown ("" on the start page). */
  current: "" | (typeof SECTIONS)[number][0];
  /** A notice to show above the content (the outcome of the last action). */
  notice?: Notice | null;
  children: ComponentChildren;
}

/** An admin page: the admin sub-navigation, a title, an optional notice, the content. */
export function AdminSection({ title, current, notice, children }: AdminSectionProps) {
  return (
    <section class="card admin">
      <nav class="admin-nav" aria-label="Admin">
        <a href="/admin" aria-current={current === "" ? "page" : undefined}>Admin</a>
        {SECTIONS.map(([key, label]) => (
          <a key={key} href={`/admin/${key}`} aria-current={current === key ? "page" : undefined}>
            {label}
          </a>
        ))}
      </nav>
      <h1>{title}</h1>
      {notice && (
        <p class={`notice ${notice.kind}`} role={notice.kind === "error" ? "alert" : "status"}>
          {notice.text}
        </p>
      )}
      {children}
    </section>
  );
}

/** The outcome of an action, shown once at the top of a page. */
export interface Notice {
  kind: "ok" | "error";
  text: string;
}

/**
 * The notice named by the `notice` query parameter (with the count in `n`), from the page's own
 * fixed texts: the query never puts arbitrary text on the page.
 */
export function noticeFromQuery(
  c: Context<AppEnv>,
  texts: Readonly<Record<string, (count: number) => Notice>>,
): Notice | null {
  const key = c.req.query("notice") ?? "";
  const text = Object.hasOwn(texts, key) ? texts[key] : undefined;
  const count = Number(c.req.query("n") ?? "0");
  return text ? text(Number.isSafeInteger(count) && count >= 0 ? count : 0) : null;
}

/** A 303 to `path` carrying a notice code (and a count) for `noticeFromQuery`. */
export function redirectWithNotice(
  c: Context<AppEnv>,
  path: string,
  notice: string,
  count?: number,
): Response {
  const url = new URL(path, "http://portal.invalid");
  url.searchParams.set("notice", notice);
  if (count !== undefined) url.searchParams.set("n", String(count));
  return c.redirect(`${url.pathname}${url.search}`, 303);
}

/** The session's CSRF token, for the hidden field of every admin form. */
export function csrfToken(c: Context<AppEnv>): string {
  return c.get("session")?.csrfToken ?? "";
}

/**
 * Reads an urlencoded or multipart form and checks its CSRF token (403 when missing or stale);
 * returns the text fields. A body that is not a form has no token, so it is refused too.
 */
export async function readAdminForm(c: Context<AppEnv>): Promise<Record<string, string>> {
  let body: Record<string, unknown>;
  try {
    body = await c.req.parseBody();
  } catch {
    throw new HttpError(400, "bad_form", "Cannot read the form: the request body is malformed");
  }
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) {
    if (typeof value === "string") fields[name] = value;
  }
  checkCsrf(c, fields.csrf_token);
  return fields;
}

/** The `:id` path parameter when it is a UUID; otherwise 404, as for an unknown id. */
export function uuidParam(c: Context<AppEnv>, what: string): string {
  const id = c.req.param("id") ?? "";
  if (!isUuid(id)) throw notFound(what, id);
  return id.toLowerCase();
}

/** The 404 for an id that names nothing. */
export function notFound(what: string, id: string): HttpError {
  return new HttpError(404, "not_found", `Not found: no ${what} "${id.slice(0, 100)}"`);
}

/** Props of `PostButton`. */
export interface PostButtonProps {
  action: string;
  csrf: string;
  label: string;
  /** Extra hidden fields (default none). */
  fields?: Record<string, string>;
  /** Class of the button (default none). */
  class?: string;
}

/** A one-button POST form carrying the CSRF token. */
export function PostButton({ action, csrf, label, fields = {}, class: cls }: PostButtonProps) {
  return (
    <form method="post" action={action} class="inline">
      <input type="hidden" name="csrf_token" value={csrf} />
      {Object.entries(fields).map(([name, value]) => (
        <input key={name} type="hidden" name={name} value={value} />
      ))}
      <button type="submit" class={cls}>{label}</button>
    </form>
  );
}

/** A time as "2026-01-31 12:34:56Z" in a `<time>` element; "—" for none. */
export function Time({ at }: { at: Date | null }) {
  if (at === null) return <span class="muted">—</span>;
  const iso = at.toISOString();
  return <time datetime={iso}>{iso.replace("T", " ").replace(/\.\d+Z$/, "Z")}</time>;
}

/** A query parameter that must be one of `allowed` ("" or absent: no filter); else 400. */
export function enumQuery<T extends string>(
  c: Context<AppEnv>,
  name: string,
  allowed: readonly T[],
): T | undefined {
  const value = (c.req.query(name) ?? "").trim().toLowerCase();
  if (value === "") return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new HttpError(
      400,
      "bad_filter",
      `Cannot filter by ${name} "${value.slice(0, 50)}": expected one of ${allowed.join(", ")}`,
    );
  }
  return value as T;
}
