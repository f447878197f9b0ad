/** Static assets, embedded in the module graph so the compiled binary needs no files. */
import { Hono } from "hono";
import css from "../../static/portal.css" with { type: "text" };

/** Serves /static/*. */
export function staticRoutes(): Hono {
  const app = new Hono();
  app.get("/static/portal.css", (c) => {
    c.header("Content-Type", "text/css; charset=utf-8");
    c.header("Cache-Control", "public, max-age=3600");
    return c.body(css);
  });
  return app;
}
