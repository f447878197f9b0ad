/**
 * The key that signs download links and CSRF cookies. From PORTAL_SECRET_KEY, or generated
 * once and stored in `portal_setting` so every replica signs and verifies with the same key.
 * During a rotation PORTAL_SECRET_KEY_PREVIOUS verifies too; only the current key signs.
 */
import { randomBytes } from "node:crypto";
import type { Database } from "../db/db.ts";

/** Returns the configured key, or the shared generated one (creating it on first use). */
export async function loadSecretKey(db: Database, configured: string | null): Promise<string> {
  if (configured !== null) return configured;
  const candidate = randomBytes(32).toString("base64url");
  await db.sql`
    INSERT INTO portal_setting (key, value) VALUES ('secret_key', ${candidate})
    ON CONFLICT (key) DO NOTHING`;
  const [row] = await db.sql<{ value: string }[]>`
    SELECT value FROM portal_setting WHERE key = 'secret_key'`;
  if (!row) throw new Error("Cannot load the secret key: portal_setting has no secret_key row");
  return row.value;
}

/** The keys that verify a signature: the one that signs, then the previous one in a rotation. */
export function verifyingKeys(
  deps: { secretKey: string; config: { secretKeyPrevious: string | null } },
): string[] {
  const previous = deps.config.secretKeyPrevious;
  return previous === null ? [deps.secretKey] : [deps.secretKey, previous];
}
