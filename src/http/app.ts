/**
 * The route table, written by hand: one sub-app per URL area.
 *
 *   /healthz /readyz /metrics   health_routes.ts
 *   /static/*                   static_routes.ts
 *   /login /logout              routes/login.tsx
 *   /                           routes/home.tsx
 *   /upload                     routes/upload.tsx
 *   /admin /admin/*             admin session (routes/admin.tsx, admin_{events,webhooks,files}.tsx)
 *   /files/:id/download         download_routes.ts (cookie, bearer token or signed link)
 *   /api/v1/*                   bearer token (account_api_routes.ts, upload_api_routes.ts, ...)
 */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "./app_env.ts";
import { handleError, handleNotFound } from "./errors.ts";
import {
  loadSession,
  requestContext,
  requireAdmin,
  requireToken,
  requireUser,
} from "./middleware.ts";
import { healthRoutes } from "./health_routes.ts";
import { staticRoutes } from "./static_routes.ts";
import { accountApiRoutes } from "./account_api_routes.ts";
import { uploadApiRoutes } from "./upload_api_routes.ts";
import { downloadRoutes } from "./download_routes.ts";
import { loginRoutes } from "../../routes/login.tsx";
import { homeRoutes } from "../../routes/home.tsx";
import { uploadRoutes } from "../../routes/upload.tsx";
import { adminHomeRoutes } from "../../routes/admin.tsx";
import { adminEventRoutes } from "../../routes/admin_events.tsx";
import { adminWebhookRoutes } from "../../routes/admin_webhooks.tsx";
import { adminFileRoutes } from "../../routes/admin_files.tsx";

/** Builds the web app. */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.onError(handleError);
  app.notFound(handleNotFound);
  app.use("*", requestContext(deps));
  app.route("/", healthRoutes(deps));
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
