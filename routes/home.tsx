/** GET /: the signed-in user's start page. */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "../src/http/app_env.ts";
import { requireUser } from "../src/http/middleware.ts";
import { renderPage } from "../components/render.tsx";

/** Routes for the home page. */
export function homeRoutes(_deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/", requireUser(), (c) => {
    const user = c.get("user")!;
    return renderPage(
      c,
      <section class="card">
        <h1>Welcome, {user.email}</h1>
        <p>
          <a class="button" href="/upload">Upload files</a>
        </p>
      </section>,
      { title: "Portal" },
    );
  });
  return app;
}
