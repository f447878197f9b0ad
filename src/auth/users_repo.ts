/** SQL for the `users` table. */
import type { Queryable } from "../db/db.ts";

/** A user row as the app uses it (never carries the hash outside this folder's services). */
export interface User {
  id: string;
  email: string;
  isAdmin: boolean;
  isActive: boolean;
  createdAt: Date;
}

/** A user with its password hash, for authentication only. */
export interface UserWithHash extends User {
  passwordHash: string;
}

/** Inserts a user; returns null when the email is taken. */
export async function insertUser(
  sql: Queryable,
  input: { id: string; email: string; passwordHash: string; isAdmin: boolean },
): Promise<User | null> {
  const rows = await sql<User[]>`
    INSERT INTO users (id, email, password_hash, is_admin)
    VALUES (${input.id}, ${input.email}, ${input.passwordHash}, ${input.isAdmin})
    ON CONFLICT (email) DO NOTHING
    RETURNING id, email, is_admin AS "isAdmin", is_active AS "isActive", created_at AS "createdAt"`;
  return rows[0] ?? null;
}

/** Finds a user with its hash by email. */
export async function findUserByEmail(sql: Queryable, email: string): Promise<UserWithHash | null> {
  const rows = await sql<UserWithHash[]>`
    SELECT id, email, password_hash AS "passwordHash", is_admin AS "isAdmin",
           is_active AS "isActive", created_at AS "createdAt"
    FROM users WHERE email = ${email}`;
  return rows[0] ?? null;
}

/** Lists every user, oldest first. */
export async function listUsers(sql: Queryable): Promise<User[]> {
  return await sql<User[]>`
    SELECT id, email, is_admin AS "isAdmin", is_active AS "isActive", created_at AS "createdAt"
    FROM users ORDER BY created_at, email`;
}

/** Counts users. */
export async function countUsers(sql: Queryable): Promise<number> {
  const [row] = await sql<{ count: number }[]>`SELECT count(*)::int AS count FROM users`;
  return row?.count ?? 0;
}

/** Replaces a user's password hash. */
export async function updatePasswordHash(sql: Queryable, userId: string, passwordHash: string) {
  await sql`UPDATE users SET password_hash = ${passwordHash}, updated_at = now() WHERE id = ${userId}`;
}
