/** The Hono environment of Portal's apps: the per-request values middleware sets (and `AppDeps`). */
import type { Logger } from "../log/logger.ts";
import type { SessionWithUser, User } from "../auth/account_service.ts";

/** The app is built from the one `AppDeps` (src/app_deps.ts). */
export type { AppDeps } from "../app_deps.ts";

/** Per-request values set by middleware. */
export interface AppVariables {
  requestId: string;
  clientAddress: string;
  logger: Logger;
  /** The signed-in user (session or bearer token), or null. */
  user: User | null;
  /** When the request's bearer token stops working; null without one or without an expiry. */
  tokenExpiresAt: Date | null;
  /** The browser session, when the request came with one. */
  session: SessionWithUser | null;
}

/** Hono environment type for Portal's apps. */
export interface AppEnv {
  Variables: AppVariables;
}
