/** SQL for API tokens. Only the SHA-256 of a token is stored. */
import type { Queryable } from "../db/db.ts";
import type { User } from "./users_repo.ts";

/** A token as listed (never the token itself). */
export interface ApiTokenInfo {
  id: string;
  userId: string;
  name: string;
  tokenPrefix: string;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  createdAt: Date;
}

/** Inserts a token row. */
export async function insertToken(
  sql: Queryable,
  input: { id: string; userId: string; name: string; tokenHash: string; tokenPrefix: string },
): Promise<void> {
  await sql`
    INSERT INTO api_tokens (id, user_id, name, token_hash, token_prefix)
    VALUES (${input.id}, ${input.userId}, ${input.name}, ${input.tokenHash}, ${input.tokenPrefix})`;
}

/** Finds the active user owning an unrevoked token, and marks the token used. */
export async function findUserByTokenHash(sql: Queryable, tokenHash: string): Promise<User | null> {
  const rows = await sql<User[]>`
    UPDATE api_tokens t SET last_used_at = now()
    FROM users u
    WHERE t.token_hash = ${tokenHash} AND t.revoked_at IS NULL AND u.id = t.user_id AND u.is_active
    RETURNING u.id, u.email, u.is_admin AS "isAdmin", u.is_active AS "isActive",
              u.created_at AS "createdAt"`;
  return rows[0] ?? null;
}

/** Revokes a token by id; returns false when there was none to revoke. */
export async function revokeToken(sql: Queryable, tokenId: string): Promise<boolean> {
  const rows = await sql`
    UPDATE api_tokens SET revoked_at = now(), updated_at = now()
    WHERE id = ${tokenId} AND revoked_at IS NULL RETURNING id`;
  return rows.length > 0;
}

/** Lists a user's tokens, or every token when `userId` is null. */
export async function listTokens(sql: Queryable, userId: string | null): Promise<ApiTokenInfo[]> {
  return await sql<ApiTokenInfo[]>`
    SELECT id, user_id AS "userId", name, token_prefix AS "tokenPrefix",
           last_used_at AS "lastUsedAt", revoked_at AS "revokedAt", created_at AS "createdAt"
    FROM api_tokens
    ${userId === null ? sql`` : sql`WHERE user_id = ${userId}`}
    ORDER BY created_at`;
}
