/** Static assets, embedded in the module graph so the compiled binary needs no files. */
import { Hono } from "hono";
import { createHash } from "node:crypto";
import css from "../static/portal.css" with { type: "text" };
// Built by `deno task bundle` (scripts/bundle_islands.ts) and committed.
import islandsJs from "../static/islands.js" with { type: "text" };

/** Serves /static/*. */
export function staticRoutes(): Hono {
  const app = new Hono();
  // The bundle changes with each release while its URL stays put: browsers revalidate each
  // time (a 304 costs one round trip) instead of running an hour-old bundle against new pages.
  const islandsEtag = `"${
    createHash("sha256").update(islandsJs).digest("base64url").slice(0, 22)
  }"`;
  app.get("/static/portal.css", (c) => {
    c.header("Content-Type", "text/css; charset=utf-8");
    c.header("Cache-Control", "public, max-age=3600");
    return c.body(css);
  });
  app.get("/static/islands.js", (c) => {
    c.header("Cache-Control", "no-cache");
    c.header("ETag", islandsEtag);
    if (c.req.header("if-none-match") === islandsEtag) return c.body(null, 304);
    c.header("Content-Type", "text/javascript; charset=utf-8");
    c.header("X-Content-Type-Options", "nosniff");
    return c.body(islandsJs);
  });
  return app;
}
