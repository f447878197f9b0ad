/**
 * API tokens for scripts: created (shown once, only the SHA-256 stored, optionally with an
 * expiry), resolved on every bearer request, listed without secrets and revoked. SQL lives in
 * tokens_repo.ts.
 */
import { randomBytes } from "node:crypto";
import { currentTime } from "../app_deps.ts";
import { isUuid, newId } from "../db/ids.ts";
import { type AccountDeps, AccountError, normalizeEmail, sha256Hex } from "./account_service.ts";
import {
  type ApiTokenInfo,
  findToken,
  findUserByTokenHash,
  insertToken,
  listTokens,
  revokeToken,
  type TokenUser,
} from "./tokens_repo.ts";
import { findUserByEmail, type User } from "./users_repo.ts";

const TOKEN_PREFIX = "ptk_";

export type { ApiTokenInfo, ApiTokenStatus } from "./tokens_repo.ts";

/** The longest lifetime a token can be given, in days (about ten years). */
export const MAX_TOKEN_DAYS = 3650;

/** Why `days` is not a token lifetime (a whole number from 1 to MAX_TOKEN_DAYS), or null. */
export function tokenDaysProblem(days: unknown): string | null {
  if (typeof days === "number" && Number.isInteger(days) && days >= 1 && days <= MAX_TOKEN_DAYS) {
    return null;
  }
  const shown = typeof days === "number"
    ? String(days)
    : typeof days === "string"
    ? `"${days}"`
    : JSON.stringify(days) ?? String(days);
  return `expected a whole number of days from 1 to ${MAX_TOKEN_DAYS}, got ${shown.slice(0, 40)}`;
}

/**
 * Creates an API token for a user; the token is returned once and only its hash is stored.
 * With `expiresInDays` it stops working that many days from now (RangeError unless a whole
 * number from 1 to MAX_TOKEN_DAYS); without, it works until revoked.
 *
 * @example
 * const { token } = await createApiToken({ db }, { email: "ci@example.org", expiresInDays: 90 });
 */
export async function createApiToken(
  deps: AccountDeps,
  input: {
    email: string;
    name?: string;
    expiresInDays?: number;
    /** The latest the token may work: a token made with a token ends no later than it. */
    notAfter?: Date | null;
  },
): Promise<{ id: string; token: string; user: User; expiresAt: Date | null }> {
  const problem = input.expiresInDays === undefined ? null : tokenDaysProblem(input.expiresInDays);
  if (problem !== null) throw new RangeError(`Cannot create token: ${problem}`);
  const email = normalizeEmail(input.email);
  const user = await findUserByEmail(deps.db.sql, email);
  if (!user) throw new AccountError("unknown_user", `Cannot create token: no user "${email}"`);
  const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  const id = newId();
  const asked = input.expiresInDays === undefined
    ? null
    : new Date(currentTime(deps).getTime() + input.expiresInDays * 86_400_000);
  const cap = input.notAfter ?? null;
  const expiresAt = cap === null ? asked : asked === null || cap < asked ? cap : asked;
  await insertToken(deps.db.sql, {
    id,
    userId: user.id,
    name: (input.name ?? "").slice(0, 200),
    tokenHash: sha256Hex(token),
    tokenPrefix: token.slice(0, TOKEN_PREFIX.length + 6),
    expiresAt,
  });
  const { passwordHash: _hash, ...plain } = user;
  return { id, token, user: plain, expiresAt };
}

/**
 * Resolves a bearer token to its user, or null (unknown, revoked, expired, or inactive user).
 * Marks the token used, at most once a minute.
 */
export async function resolveApiToken(
  deps: AccountDeps,
  token: string,
): Promise<TokenUser | null> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return null;
  return await findUserByTokenHash(deps.db.sql, {
    tokenHash: sha256Hex(token),
    now: currentTime(deps),
  });
}

/**
 * Revokes a token by id, only `ownerId`'s when given; false when there was none to revoke
 * (unknown, not a uuid, another user's, or revoked already).
 *
 * @example
 * const revoked = await revokeApiToken({ db }, tokenId, { ownerId: user.id });
 */
export async function revokeApiToken(
  deps: AccountDeps,
  tokenId: string,
  options: { ownerId?: string } = {},
): Promise<boolean> {
  if (!isUuid(tokenId)) return false;
  return await revokeToken(deps.db.sql, {
    tokenId,
    userId: options.ownerId,
    now: currentTime(deps),
  });
}

/** One token (never its secret), only `ownerId`'s when given; null when there is none. */
export async function findApiToken(
  deps: AccountDeps,
  input: { tokenId: string; ownerId?: string },
): Promise<ApiTokenInfo | null> {
  if (!isUuid(input.tokenId)) return null;
  return await findToken(deps.db.sql, {
    tokenId: input.tokenId,
    userId: input.ownerId,
    now: currentTime(deps),
  });
}

/**
 * A user's tokens, oldest first, without their secrets; throws `unknown_user`.
 *
 * @example
 * const { tokens } = await listApiTokens({ db }, { email: "ci@example.org" });
 */
export async function listApiTokens(
  deps: AccountDeps,
  input: { email: string },
): Promise<{ user: User; tokens: ApiTokenInfo[] }> {
  const email = normalizeEmail(input.email);
  const user = await findUserByEmail(deps.db.sql, email);
  if (!user) throw new AccountError("unknown_user", `Cannot list tokens: no user "${email}"`);
  const tokens = await listTokens(deps.db.sql, { userId: user.id, now: currentTime(deps) });
  const { passwordHash: _hash, ...plain } = user;
  return { user: plain, tokens };
}
