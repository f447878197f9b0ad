/**
 * Accounts: users, browser sessions and the login rate limit (API tokens: token_service.ts).
 * Route handlers and the CLI call these; SQL lives in the `*_repo.ts` files beside this one.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Database } from "../db/db.ts";
import { type Clock, currentTime } from "../app_deps.ts";
import { newId } from "../db/ids.ts";
import { DUMMY_HASH, generatePassword, hashPassword, verifyPassword } from "./passwords.ts";
import {
  countUsers,
  findUserByEmail,
  insertUser,
  listUsers,
  updatePasswordHash,
  type User,
} from "./users_repo.ts";
import {
  deleteSession,
  deleteUserSessions,
  findSession,
  insertSession,
  type SessionWithUser,
} from "./sessions_repo.ts";
import {
  countRecentFailures,
  deleteLoginAttempt,
  insertLoginAttempt,
  markLoginAttemptSucceeded,
} from "./login_attempts_repo.ts";

export type { User } from "./users_repo.ts";
export type { SessionWithUser } from "./sessions_repo.ts";

/**
 * The login rate limit, counted over a sliding window. Refusals are per address and per
 * (account, address) pair, never per account alone: otherwise anyone could lock the admin
 * out by guessing wrong from anywhere. Against guesses spread over many addresses an account
 * slows down instead: past `accountSlowAfter` failures from anywhere, every wrong answer (and a
 * right one from an address that has failed on it) waits, doubling from 100 ms up to
 * `maxDelayMs`; the right password from an address that has not failed is answered at once.
 */
export const LOGIN_LIMITS = {
  windowMinutes: 15,
  /** Failures one address may make on one account before that pair is refused (429). */
  perAccountAndAddress: 5,
  /** Failures one address may make across all accounts before it is refused (429). */
  perAddress: 20,
  /** Failures on one account, from any address, before its answers slow down. */
  accountSlowAfter: 5,
  maxDelayMs: 5_000,
} as const;

/**
 * How long to hold the answer to a login attempt, given the failures before it in the window;
 * 0 for the right password from an address that has not failed on the account.
 */
export function loginDelayMs(
  failures: { byEmail: number; byEmailAndAddress: number },
  succeeded: boolean,
): number {
  if (succeeded && failures.byEmailAndAddress === 0) return 0;
  const over = failures.byEmail - LOGIN_LIMITS.accountSlowAfter;
  if (over < 0) return 0;
  return Math.min(LOGIN_LIMITS.maxDelayMs, 100 * 2 ** Math.min(over, 16));
}

/** A problem with account input the caller shows to the user. */
export class AccountError extends Error {
  constructor(
    readonly code: "invalid_email" | "weak_password" | "email_taken" | "unknown_user",
    message: string,
  ) {
    super(message);
  }
}

// C0 controls and DEL are never part of an email address; Postgres refuses NUL in text.
// deno-lint-ignore no-control-regex -- finding control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/g;

/** What the account functions need: the database, and the clock (default the system's). */
export interface AccountDeps {
  db: Database;
  clock?: Clock;
  /** Waits out a login slowdown (default a timer; tests record the delays instead). */
  sleep?: (ms: number) => Promise<void>;
}

/** Normalizes and checks an email address (no control characters, at most 254 characters). */
export function normalizeEmail(email: string): string {
  if (email.search(CONTROL_CHARACTER) !== -1) {
    throw new AccountError(
      "invalid_email",
      `Cannot use email "${
        email.replace(CONTROL_CHARACTER, "\uFFFD")
      }": it contains a control character`,
    );
  }
  const value = email.trim().toLowerCase();
  if (value.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(value) || !value.isWellFormed()) {
    throw new AccountError("invalid_email", `Cannot use email "${email}": not an email address`);
  }
  return value;
}

/** Creates a user (password at least 8 characters). */
export async function createUser(
  deps: AccountDeps,
  input: { email: string; password: string; isAdmin?: boolean },
): Promise<User> {
  const email = normalizeEmail(input.email);
  if (input.password.length < 8) {
    throw new AccountError(
      "weak_password",
      "Cannot create user: the password needs at least 8 characters",
    );
  }
  const user = await insertUser(deps.db.sql, {
    id: newId(),
    email,
    passwordHash: await hashPassword(input.password),
    isAdmin: input.isAdmin ?? false,
  });
  if (!user) {
    throw new AccountError("email_taken", `Cannot create user "${email}": the email is taken`);
  }
  return user;
}

/** Lists users. */
export function listAllUsers(deps: AccountDeps): Promise<User[]> {
  return listUsers(deps.db.sql);
}

/** Outcome of a login attempt. */
export type LoginResult =
  | { ok: true; user: User }
  | { ok: false; reason: "invalid" }
  | { ok: false; reason: "rate_limited"; retryAfterSeconds: number };

/**
 * Checks credentials under the rate limit. Unknown accounts cost the same time as known ones.
 *
 * @example
 * const result = await authenticate({ db }, { email, password, address: "203.0.113.9" });
 */
export async function authenticate(
  deps: AccountDeps,
  input: { email: string; password: string; address: string },
): Promise<LoginResult> {
  const typed = input.email.trim().toLowerCase().slice(0, 254);
  // A control character (refused by Postgres as NUL) matches no account: the attempt is still
  // recorded, under the email with those characters replaced, and counts against the limits.
  const email = typed.replace(CONTROL_CHARACTER, "\uFFFD").toWellFormed();
  const now = currentTime(deps);
  const since = new Date(now.getTime() - LOGIN_LIMITS.windowMinutes * 60_000);
  // Recorded as a failure first and counted against the attempts before it: parallel guesses
  // cannot all pass the check before any of them is recorded.
  const attemptId = await insertLoginAttempt(deps.db.sql, { email, address: input.address });
  const failures = await countRecentFailures(deps.db.sql, {
    email,
    address: input.address,
    since,
    beforeId: attemptId,
  });
  if (
    failures.byEmailAndAddress >= LOGIN_LIMITS.perAccountAndAddress ||
    failures.byAddress >= LOGIN_LIMITS.perAddress
  ) {
    await deleteLoginAttempt(deps.db.sql, attemptId);
    return {
      ok: false,
      reason: "rate_limited",
      retryAfterSeconds: LOGIN_LIMITS.windowMinutes * 60,
    };
  }
  const user = email === typed ? await findUserByEmail(deps.db.sql, email) : null;
  const valid = await verifyPassword(input.password, user?.passwordHash ?? DUMMY_HASH);
  const succeeded = valid && user !== null && user.isActive;
  if (succeeded) await markLoginAttemptSucceeded(deps.db.sql, attemptId);
  const delay = loginDelayMs(failures, succeeded);
  if (delay > 0) {
    await (deps.sleep ?? ((ms) => new Promise<void>((done) => setTimeout(done, ms))))(delay);
  }
  if (!succeeded || !user) return { ok: false, reason: "invalid" };
  const { passwordHash: _hash, ...plain } = user;
  return { ok: true, user: plain };
}

/** SHA-256 hex, used to store session ids and tokens without storing the secrets. */
export function sha256Hex(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** Starts a browser session; returns the cookie value (shown to the browser only). */
export async function startSession(
  deps: AccountDeps,
  input: { userId: string; ttlHours: number },
): Promise<{ cookieValue: string; csrfToken: string; expiresAt: Date }> {
  const cookieValue = randomBytes(32).toString("base64url");
  const csrfToken = randomBytes(24).toString("base64url");
  const expiresAt = new Date(currentTime(deps).getTime() + input.ttlHours * 3_600_000);
  await insertSession(deps.db.sql, {
    sessionHash: sha256Hex(cookieValue),
    userId: input.userId,
    csrfToken,
    expiresAt,
  });
  return { cookieValue, csrfToken, expiresAt };
}

/** Resolves a session cookie to its session and user, or null. */
export async function resolveSession(
  deps: AccountDeps,
  cookieValue: string,
): Promise<SessionWithUser | null> {
  if (cookieValue.length < 20 || cookieValue.length > 100) return null;
  return await findSession(deps.db.sql, sha256Hex(cookieValue));
}

/** Ends a session (logout). */
export async function endSession(deps: AccountDeps, cookieValue: string): Promise<void> {
  await deleteSession(deps.db.sql, sha256Hex(cookieValue));
}

/**
 * Gives a user a new generated password and signs out all their sessions, in one
 * transaction; returns the password (shown once) or throws `unknown_user`.
 *
 * @example
 * const { password } = await resetPassword({ db }, { email: "admin@localhost" });
 */
export async function resetPassword(
  deps: AccountDeps,
  input: { email: string },
): Promise<{ user: User; password: string; sessionsEnded: number }> {
  const email = normalizeEmail(input.email);
  const password = generatePassword();
  const passwordHash = await hashPassword(password);
  const result = await deps.db.sql.begin(async (tx) => {
    const user = await findUserByEmail(tx, email);
    if (!user) return null;
    await updatePasswordHash(tx, user.id, passwordHash);
    const sessionsEnded = await deleteUserSessions(tx, user.id);
    const { passwordHash: _hash, ...plain } = user;
    return { user: plain, sessionsEnded };
  });
  if (!result) {
    throw new AccountError("unknown_user", `Cannot reset the password: no user "${email}"`);
  }
  return { ...result, password };
}

/**
 * Creates the first admin when there are no users yet; returns its credentials once, or null.
 * Serialized by an advisory lock so two replicas starting together create one admin.
 */
export async function bootstrapAdmin(
  deps: AccountDeps,
  email: string,
): Promise<{ email: string; password: string } | null> {
  if (await countUsers(deps.db.sql) > 0) return null;
  const password = generatePassword();
  const passwordHash = await hashPassword(password);
  const created = await deps.db.sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${9_000_001})`;
    if (await countUsers(tx) > 0) return null;
    return await insertUser(tx, {
      id: newId(),
      email: normalizeEmail(email),
      passwordHash,
      isAdmin: true,
    });
  });
  return created ? { email: created.email, password } : null;
}
