/**
 * GET /admin: the admin start page (SPEC §5 Security: admins only, forms CSRF-protected). The
 * admin pages are plain server-rendered forms: each POST checks the session's CSRF token, calls
 * one service and answers 303 back to the page with a notice code, or renders the page itself
 * when it must show a secret once (a secret never goes in a URL).
 */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "../../src/http/app_env.ts";
import { renderPage } from "../../components/render.tsx";
import { AdminSection } from "../../components/AdminSection.tsx";

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
