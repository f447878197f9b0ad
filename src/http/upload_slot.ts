/** The per-user upload limit as middleware for the routes that take uploads. */
import type { MiddlewareHandler } from "hono";
import { UploadSlotsFull, withUploadSlot } from "../uploads/upload_slots.ts";
import type { AppDeps, AppEnv } from "./app_env.ts";
import { HttpError } from "./errors.ts";

/** Holds one of the signed-in user's upload slots for the request; 429 when none is free. */
export function uploadSlot(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async function uploadSlot(c, next) {
    const user = c.get("user");
    if (user === null) return await next();
    try {
      await withUploadSlot(deps, user.id, () => next());
    } catch (error) {
      if (!(error instanceof UploadSlotsFull)) throw error;
      throw new HttpError(429, "too_many_uploads", error.message, { "Retry-After": "2" });
    }
  };
}
