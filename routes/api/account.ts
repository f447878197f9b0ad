/** /api/v1/me and /api/v1/tokens: who am I, and tokens for scripts. */
import { Hono } from "hono";
import { createApiToken } from "../../src/auth/account_service.ts";
import type { AppDeps, AppEnv } from "../../src/http/app_env.ts";
import { HttpError } from "../../src/http/errors.ts";
import { readJsonObject } from "../../src/http/json_body.ts";

/** Account API routes (mounted under /api/v1 behind `requireToken`). */
export function accountApiRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/me", (c) => {
    const user = c.get("user")!;
    return c.json({ id: user.id, email: user.email, is_admin: user.isAdmin });
  });
  app.post("/tokens", async (c) => {
    const body = await readJsonObject(c);
    const name = body.name ?? "";
    if (typeof name !== "string" || name.length > 200) {
      throw new HttpError(
        400,
        "invalid",
        'Cannot create token: "name" must be a string of at most 200 characters',
      );
    }
    const created = await createApiToken(deps, { email: c.get("user")!.email, name });
    return c.json({ id: created.id, token: created.token, name }, 201);
  });
  return app;
}
