/**
 * /healthz (the process answers), /readyz (database reachable and migrated), /metrics.
 *
 * /metrics tells how busy Portal is and how its deliveries fare, which is nobody's business on
 * the public port: there it answers only with `Authorization: Bearer <PORTAL_METRICS_TOKEN>`.
 * A listener of its own (PORTAL_METRICS_PORT, loopback by default) serves it without one,
 * unless a token is set, which every listener then asks for.
 */
import { Hono } from "hono";
import type { Database } from "../src/db/db.ts";
import { migrationsApplied } from "../src/db/migrate.ts";
import type { Metrics } from "../src/metrics/metrics.ts";
import { safeEqual } from "../src/http/middleware.ts";

/** Who may read /metrics on a listener. */
export interface MetricsAccess {
  /** PORTAL_METRICS_TOKEN: when set, asked for on every listener. */
  token: string | null;
  /** True on the metrics listener: no token needed when none is set. */
  open: boolean;
}

/** Health and metrics routes; used by `serve`, by `worker`'s small server and the metrics port. */
export function healthRoutes(
  deps: { db: Database; metrics: Metrics },
  access: MetricsAccess,
): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    try {
      const ready = await migrationsApplied(deps.db);
      if (!ready) return c.json({ status: "unavailable", reason: "migrations not applied" }, 503);
      return c.json({ status: "ready" });
    } catch {
      return c.json({ status: "unavailable", reason: "database unreachable" }, 503);
    }
  });
  app.get("/metrics", async (c) => {
    if (access.token !== null) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
      if (!match || !safeEqual(match[1]!, access.token)) {
        c.header("WWW-Authenticate", 'Bearer realm="portal-metrics"');
        return c.json({
          error: {
            code: "unauthorized",
            message: 'Cannot read metrics: send "Authorization: Bearer <PORTAL_METRICS_TOKEN>"',
          },
        }, 401);
      }
    } else if (!access.open) {
      return c.json({
        error: {
          code: "not_found",
          message:
            "Metrics are not served on this port: set PORTAL_METRICS_TOKEN, or PORTAL_METRICS_PORT for a listener of their own",
        },
      }, 404);
    }
    c.header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return c.body(await deps.metrics.render());
  });
  return app;
}
