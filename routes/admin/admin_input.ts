/**
 * What the admin route files share for reading a request and answering it: notices carried by
 * the query, the CSRF-checked form, id and filter parameters.
 */
import type { Context } from "hono";
import { isUuid } from "../../src/db/ids.ts";
import type { AppEnv } from "../../src/http/app_env.ts";
import { HttpError } from "../../src/http/errors.ts";
import { checkCsrf } from "../../src/http/middleware.ts";
import type { Notice } from "../../components/AdminSection.tsx";

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
