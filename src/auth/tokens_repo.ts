/** SQL for API tokens. Only the SHA-256 of a token is stored. */
import type { Queryable } from "../db/db.ts";
import type { User } from "./users_repo.ts";

/** Whether a token authenticates: `revoked` wins over `expired`. */
export type ApiTokenStatus = "active" | "revoked" | "expired";

/** A token as listed (never the token itself nor its hash). */
export interface ApiTokenInfo {
  id: string;
  userId: string;
  name: string;
  tokenPrefix: string;
  status: ApiTokenStatus;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  createdAt: Date;
}

/** Inserts a token row (`expiresAt` null: it never expires). */
export async function insertToken(
  sql: Queryable,
  input: {
    id: string;
    userId: string;
    name: string;
    tokenHash: string;
    tokenPrefix: string;
    expiresAt: Date | null;
  },
): Promise<void> {
  await sql`
    INSERT INTO api_tokens (id, user_id, name, token_hash, token_prefix, expires_at)
    VALUES (${input.id}, ${input.userId}, ${input.name}, ${input.tokenHash}, ${input.tokenPrefix},
            ${input.expiresAt})`;
}

/**
 * Finds the active user owning an unrevoked, unexpired token, in one statement that also marks
 * the token used: `last_used_at` is written at most once a minute, so a busy script does not
 * rewrite (and lock) its token row on every request.
 */
/** A token's user, and when the token itself stops working (null: when revoked). */
export type TokenUser = User & { tokenExpiresAt: Date | null };

export async function findUserByTokenHash(
  sql: Queryable,
  input: { tokenHash: string; now: Date },
): Promise<TokenUser | null> {
  // A data-modifying WITH runs to completion whether or not the outer query reads it.
  const rows = await sql<TokenUser[]>`
    WITH found AS (
      SELECT t.id AS token_id, t.expires_at, u.id, u.email, u.is_admin, u.is_active, u.created_at
      FROM api_tokens t JOIN users u ON u.id = t.user_id
      WHERE t.token_hash = ${input.tokenHash} AND t.revoked_at IS NULL
        AND (t.expires_at IS NULL OR t.expires_at > ${input.now}) AND u.is_active
    ), touched AS (
      UPDATE api_tokens t SET last_used_at = ${input.now}
      FROM found
      WHERE t.id = found.token_id
        AND (t.last_used_at IS NULL
             OR t.last_used_at < ${input.now}::timestamptz - interval '1 minute')
    )
    SELECT id, email, is_admin AS "isAdmin", is_active AS "isActive", created_at AS "createdAt",
           expires_at AS "tokenExpiresAt"
    FROM found`;
  return rows[0] ?? null;
}

/**
 * Revokes an unrevoked token by id (only `userId`'s, when given); returns false when there was
 * none to revoke.
 */
export async function revokeToken(
  sql: Queryable,
  input: { tokenId: string; userId?: string; now: Date },
): Promise<boolean> {
  const rows = await sql`
    UPDATE api_tokens SET revoked_at = ${input.now}, updated_at = ${input.now}
    WHERE id = ${input.tokenId} AND revoked_at IS NULL
      ${input.userId === undefined ? sql`` : sql`AND user_id = ${input.userId}`}
    RETURNING id`;
  return rows.length > 0;
}

/** Lists a user's tokens (every token when `userId` is null), oldest first. */
export async function listTokens(
  sql: Queryable,
  input: { userId: string | null; now: Date },
): Promise<ApiTokenInfo[]> {
  return await sql<ApiTokenInfo[]>`
    SELECT ${tokenColumns(sql, input.now)}
    FROM api_tokens
    ${input.userId === null ? sql`` : sql`WHERE user_id = ${input.userId}`}
    ORDER BY created_at, id`;
}

/** One token by id (only `userId`'s, when given), or null. */
export async function findToken(
  sql: Queryable,
  input: { tokenId: string; userId?: string; now: Date },
): Promise<ApiTokenInfo | null> {
  const rows = await sql<ApiTokenInfo[]>`
    SELECT ${tokenColumns(sql, input.now)}
    FROM api_tokens
    WHERE id = ${input.tokenId}
      ${input.userId === undefined ? sql`` : sql`AND user_id = ${input.userId}`}`;
  return rows[0] ?? null;
}

/** The columns of `ApiTokenInfo`, its status as of `now`. */
function tokenColumns(sql: Queryable, now: Date) {
  return sql`
    id, user_id AS "userId", name, token_prefix AS "tokenPrefix",
    CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
         WHEN expires_at <= ${now} THEN 'expired'
         ELSE 'active' END AS status,
    last_used_at AS "lastUsedAt", expires_at AS "expiresAt", revoked_at AS "revokedAt",
    created_at AS "createdAt"`;
}
