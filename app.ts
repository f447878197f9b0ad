/**
 * The route table, written by hand: one sub-app per URL area, each from its file in routes/.
 *
 *   /healthz /readyz /metrics   routes/health.ts (also the worker's and the metrics listener;
 *                               /metrics only with PORTAL_METRICS_TOKEN on this port)
 *   /static/*                   routes/static.ts
 *   /login /logout              routes/login.tsx
 *   /                           routes/home.tsx
 *   /upload                     routes/upload.tsx
 *   /files/:id/download         routes/download.ts (cookie, bearer token or signed link)
 *   /api/v1/*                   bearer token: routes/api/{account,uploads}.ts
 *   /admin /admin/*             admin session: routes/admin/{home,events,webhooks,files}.tsx
 */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "./src/http/app_env.ts";
import { errorHandlers } from "./src/http/errors.ts";
import { securityHeaders } from "./src/http/security_headers.ts";
import { requestCodings } from "./src/http/request_codings.ts";
import {
  loadSession,
  requestContext,
  requireAdmin,
  requireToken,
  requireUser,
} from "./src/http/middleware.ts";
import { renderErrorPage } from "./components/render.tsx";
import { healthRoutes } from "./routes/health.ts";
import { staticRoutes } from "./routes/static.ts";
import { loginRoutes } from "./routes/login.tsx";
import { homeRoutes } from "./routes/home.tsx";
import { uploadRoutes } from "./routes/upload.tsx";
import { downloadRoutes } from "./routes/download.ts";
import { accountApiRoutes } from "./routes/api/account.ts";
import { uploadApiRoutes } from "./routes/api/uploads.ts";
import { adminHomeRoutes } from "./routes/admin/home.tsx";
import { adminEventRoutes } from "./routes/admin/events.tsx";
import { adminWebhookRoutes } from "./routes/admin/webhooks.tsx";
import { adminFileRoutes } from "./routes/admin/files.tsx";

/** Builds the web app of `portal serve`. */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const errors = errorHandlers(renderErrorPage);
  app.onError(errors.onError);
  app.notFound(errors.notFound);
  app.use("*", securityHeaders(deps.config));
  app.use("*", requestContext(deps));
  app.use("*", requestCodings());
  app.route("/", healthRoutes(deps, { token: deps.config.metricsToken, open: false }));
  app.route("/", staticRoutes());
  app.use("*", loadSession(deps));

  const api = new Hono<AppEnv>();
  api.use("*", requireToken(deps));
  api.route("/", accountApiRoutes(deps));
  api.route("/", uploadApiRoutes(deps));
  app.route("/api/v1", api);
  app.route("/", downloadRoutes(deps));

  app.route("/", loginRoutes(deps));
  app.route("/", homeRoutes(deps));
  app.route("/", uploadRoutes(deps));

  const admin = new Hono<AppEnv>();
  admin.use("*", requireUser(), requireAdmin());
  admin.route("/", adminHomeRoutes(deps));
  admin.route("/events", adminEventRoutes(deps));
  admin.route("/webhooks", adminWebhookRoutes(deps));
  admin.route("/files", adminFileRoutes(deps));
  app.route("/admin", admin);
  return app;
}

/** Builds the small app of `portal worker`: health, and metrics for the token's holder. */
export function createWorkerApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.use("*", securityHeaders(deps.config));
  app.route("/", healthRoutes(deps, { token: deps.config.metricsToken, open: false }));
  return app;
}

/** Builds the app of the PORTAL_METRICS_PORT listener (either mode): health and metrics. */
export function createMetricsApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.use("*", securityHeaders(deps.config));
  app.route("/", healthRoutes(deps, { token: deps.config.metricsToken, open: true }));
  return app;
}
