/** /healthz (the process answers), /readyz (database reachable and migrated), /metrics. */
import { Hono } from "hono";
import type { Database } from "../src/db/db.ts";
import { migrationsApplied } from "../src/db/migrate.ts";
import type { Metrics } from "../src/metrics/metrics.ts";

/** Health and metrics routes; used by `serve` and by `worker`'s small server. */
export function healthRoutes(deps: { db: Database; metrics: Metrics }): Hono {
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
    c.header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return c.body(await deps.metrics.render());
  });
  return app;
}
