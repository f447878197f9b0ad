/**
 * /api/v1/me and /api/v1/tokens: who am I, and tokens for scripts. A user sees and revokes only
 * their own tokens (another user's answers 404, like an unknown id); never a token's secret.
 */
import { Hono } from "hono";
import {
  type ApiTokenInfo,
  createApiToken,
  findApiToken,
  listApiTokens,
  revokeApiToken,
  tokenDaysProblem,
} from "../../src/auth/token_service.ts";
import { isUuid } from "../../src/db/ids.ts";
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
  app.get("/tokens", async (c) => {
    const { tokens } = await listApiTokens(deps, { email: c.get("user")!.email });
    return c.json({ tokens: tokens.map(tokenJson) });
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
    const days = body.expires_in_days ?? undefined;
    if (days !== undefined && (typeof days !== "number" || tokenDaysProblem(days) !== null)) {
      throw new HttpError(
        400,
        "invalid",
        `Cannot create token: "expires_in_days" ${tokenDaysProblem(days)}`,
      );
    }
    const created = await createApiToken(deps, {
      email: c.get("user")!.email,
      name,
      expiresInDays: days,
      // A leaked token with an expiry must not mint itself a successor without one.
      notAfter: c.get("tokenExpiresAt"),
    });
    return c.json({
      id: created.id,
      token: created.token,
      name,
      expires_at: created.expiresAt?.toISOString() ?? null,
    }, 201);
  });
  app.delete("/tokens/:id", async (c) => {
    const id = c.req.param("id");
    const ownerId = c.get("user")!.id;
    if (await revokeApiToken(deps, id, { ownerId })) return c.body(null, 204);
    // Told apart only for the owner: another user's token is as unknown as a made-up id.
    if (await findApiToken(deps, { tokenId: id, ownerId }) === null) {
      throw new HttpError(
        404,
        "not_found",
        `Cannot find token "${isUuid(id) ? id : id.slice(0, 100)}"`,
      );
    }
    throw new HttpError(409, "conflict", `Cannot revoke token "${id}": it is revoked already`);
  });
  return app;
}

/** A token as the API shows it: never the token or its hash. */
function tokenJson(token: ApiTokenInfo): Record<string, unknown> {
  return {
    id: token.id,
    name: token.name,
    prefix: token.tokenPrefix,
    status: token.status,
    created_at: token.createdAt.toISOString(),
    last_used_at: token.lastUsedAt?.toISOString() ?? null,
    expires_at: token.expiresAt?.toISOString() ?? null,
    revoked_at: token.revokedAt?.toISOString() ?? null,
  };
}
