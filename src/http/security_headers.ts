/**
 * The headers every answer carries so a browser cannot be turned against Portal's pages:
 * no framing (clickjacking the console's one-button forms), no inline or foreign script, no
 * MIME sniffing, no full URL leaking in the Referer, and HSTS once Portal is served on https.
 *
 * JSON answers are `Cache-Control: no-store` too (they carry signed links and tokens, which no
 * shared cache should keep), like the pages.
 *
 * Set after the route has answered, and only where the route set none of its own: a download
 * keeps its `Content-Security-Policy: sandbox`.
 */
import type { MiddlewareHandler } from "hono";

/** The policy of every HTML page: only Portal's own script, style, images and requests. */
export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  // The layout's empty favicon is a data: URL (no /favicon.ico round trip).
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
  "base-uri 'none'",
  "object-src 'none'",
].join("; ");

/** Options of `securityHeaders`. */
export interface SecurityHeadersOptions {
  /** PORTAL_PUBLIC_URL: HSTS is sent when it is https. */
  publicUrl: string;
}

/** Adds the security headers to every answer. */
export function securityHeaders(options: SecurityHeadersOptions): MiddlewareHandler {
  const always: [string, string][] = [
    ["X-Content-Type-Options", "nosniff"],
    ["Referrer-Policy", "same-origin"],
  ];
  if (options.publicUrl.startsWith("https:")) {
    always.push(["Strict-Transport-Security", "max-age=31536000"]);
  }
  const pages: [string, string][] = [
    ["Content-Security-Policy", PAGE_CSP],
    ["X-Frame-Options", "DENY"],
  ];
  return async function securityHeaders(c, next) {
    await next();
    const type = c.res.headers.get("content-type") ?? "";
    const html = /^text\/html/i.test(type);
    const wanted = html ? [...always, ...pages] : [...always];
    if (/^application\/json/i.test(type)) wanted.push(["Cache-Control", "no-store"]);
    const missing = wanted.filter(([name]) => !c.res.headers.has(name));
    if (missing.length === 0) return;
    try {
      for (const [name, value] of missing) c.res.headers.set(name, value);
    } catch {
      // Headers of a Response.redirect() or a fetched response are immutable: copy it.
      const copy = new Response(c.res.body, c.res);
      for (const [name, value] of missing) copy.headers.set(name, value);
      c.res = copy;
    }
  };
}
