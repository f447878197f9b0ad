/** SQL for browser sessions. Only the SHA-256 of the cookie value is stored. */
import type { Queryable } from "../db/db.ts";
import type { User } from "./users_repo.ts";

/** A live session with its user. */
export interface SessionWithUser {
  sessionHash: string;
  csrfToken: string;
  expiresAt: Date;
  user: User;
}

/** Inserts a session. */
export async function insertSession(
  sql: Queryable,
  input: { sessionHash: string; userId: string; csrfToken: string; expiresAt: Date },
): Promise<void> {
  await sql`
    INSERT INTO sessions (id, user_id, csrf_token, expires_at)
    VALUES (${input.sessionHash}, ${input.userId}, ${input.csrfToken}, ${input.expiresAt})`;
}

/** Finds an unexpired session of an active user. */
export async function findSession(
  sql: Queryable,
  sessionHash: string,
): Promise<SessionWithUser | null> {
  const rows = await sql<
    {
      csrfToken: string;
      expiresAt: Date;
      id: string;
      email: string;
      isAdmin: boolean;
      isActive: boolean;
      createdAt: Date;
    }[]
  >`
    SELECT s.csrf_token AS "csrfToken", s.expires_at AS "expiresAt",
           u.id, u.email, u.is_admin AS "isAdmin", u.is_active AS "isActive",
           u.created_at AS "createdAt"
    FROM sessions s JOIN users u ON u.id = s.user_id
    WHERE s.id = ${sessionHash} AND s.expires_at > now() AND u.is_active`;
  const row = rows[0];
  if (!row) return null;
  return {
    sessionHash,
    csrfToken: row.csrfToken,
    expiresAt: row.expiresAt,
    user: {
      id: row.id,
      email: row.email,
      isAdmin: row.isAdmin,
      isActive: row.isActive,
      createdAt: row.createdAt,
    },
  };
}

/** Deletes a session (logout). */
export async function deleteSession(sql: Queryable, sessionHash: string): Promise<void> {
  await sql`DELETE FROM sessions WHERE id = ${sessionHash}`;
}

/** Deletes expired sessions; returns how many. */
export async function deleteExpiredSessions(sql: Queryable): Promise<number> {
  const rows = await sql`DELETE FROM sessions WHERE expires_at <= now() RETURNING id`;
  return rows.length;
}

/** Deletes every session of a user (signs them out everywhere); returns how many. */
export async function deleteUserSessions(sql: Queryable, userId: string): Promise<number> {
  const rows = await sql`DELETE FROM sessions WHERE user_id = ${userId} RETURNING id`;
  return rows.length;
}
