/** `portal user create|list|reset-password` and `portal token create|list|revoke`. */
import { AccountError, createUser, listAllUsers, resetPassword } from "../auth/account_service.ts";
import {
  type ApiTokenInfo,
  createApiToken,
  findApiToken,
  listApiTokens,
  revokeApiToken,
  tokenDaysProblem,
} from "../auth/token_service.ts";
import { generatePassword } from "../auth/passwords.ts";
import type { Database } from "../db/db.ts";
import { isUuid } from "../db/ids.ts";
import { parseArgs } from "./args.ts";
import { type CommandIo, UsageError } from "./cli_types.ts";

/** Runs `fn` on a migrated database, closing it afterwards. */
export type WithDatabase = <T>(fn: (db: Database) => Promise<T>) => Promise<T>;

/** `portal user create --email E [--admin] [--password-stdin]`. */
export async function userCreate(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const { values } = parseArgs(io.args, {
    email: { type: "string" },
    admin: { type: "boolean" },
    "password-stdin": { type: "boolean" },
  });
  if (!values.email) throw new UsageError("--email is required");
  let password: string;
  let generated = false;
  if (values["password-stdin"]) {
    password = (await io.readStdin()).replace(/\r?\n$/, "");
  } else {
    password = generatePassword();
    generated = true;
  }
  return await withDb(async (db) => {
    try {
      const user = await createUser({ db }, {
        email: values.email!,
        password,
        isAdmin: values.admin ?? false,
      });
      io.stdout(`Created ${user.isAdmin ? "admin" : "user"} ${user.email} (${user.id})`);
      if (generated) io.stdout(`Password for ${user.email}: ${password}`);
      return 0;
    } catch (error) {
      if (error instanceof AccountError) {
        io.stderr(error.message);
        return 1;
      }
      throw error;
    }
  });
}

/** `portal user reset-password --email E`: a new one-time password; signs the user out. */
export async function userResetPassword(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const { values } = parseArgs(io.args, { email: { type: "string" } });
  if (!values.email) throw new UsageError("--email is required");
  return await withDb(async (db) => {
    try {
      const reset = await resetPassword({ db }, { email: values.email! });
      io.stderr(
        `Reset the password of ${reset.user.email}; signed out ${reset.sessionsEnded} session(s). ` +
          `It is shown once:`,
      );
      io.stdout(reset.password);
      return 0;
    } catch (error) {
      if (error instanceof AccountError) {
        io.stderr(error.message);
        return 1;
      }
      throw error;
    }
  });
}

/** `portal user list`. */
export async function userList(io: CommandIo, withDb: WithDatabase): Promise<number> {
  parseArgs(io.args, {});
  return await withDb(async (db) => {
    const users = await listAllUsers({ db });
    io.stdout(["ID", "EMAIL", "ADMIN", "ACTIVE", "CREATED"].join("\t"));
    for (const user of users) {
      io.stdout(
        [
          user.id,
          user.email,
          user.isAdmin ? "yes" : "no",
          user.isActive ? "yes" : "no",
          user.createdAt.toISOString(),
        ].join("\t"),
      );
    }
    return 0;
  });
}

/** `portal token create --email E [--name N] [--expires-in-days D]`: prints the token once. */
export async function tokenCreate(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const { values } = parseArgs(io.args, {
    email: { type: "string" },
    name: { type: "string" },
    "expires-in-days": { type: "string" },
  });
  if (!values.email) throw new UsageError("--email is required");
  const expiresInDays = expiryDays(values["expires-in-days"]);
  return await withDb(async (db) => {
    try {
      const created = await createApiToken({ db }, {
        email: values.email!,
        name: values.name ?? "",
        expiresInDays,
      });
      const until = created.expiresAt === null
        ? "it does not expire"
        : `it expires ${formatTime(created.expiresAt)}`;
      io.stderr(
        `Created token ${created.id} for ${created.user.email} (${until}); it is shown once, ` +
          `store it now:`,
      );
      io.stdout(created.token);
      return 0;
    } catch (error) {
      if (error instanceof AccountError) {
        io.stderr(error.message);
        return 1;
      }
      throw error;
    }
  });
}

/** `portal token list --email E`: a user's tokens as a table, never their secrets. */
export async function tokenList(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const { values } = parseArgs(io.args, { email: { type: "string" } });
  if (!values.email) throw new UsageError("--email is required");
  return await withDb(async (db) => {
    try {
      const { user, tokens } = await listApiTokens({ db }, { email: values.email! });
      if (tokens.length === 0) {
        io.stdout(`No tokens for ${user.email}: create one with "portal token create"`);
        return 0;
      }
      for (const line of tokenTable(tokens)) io.stdout(line);
      return 0;
    } catch (error) {
      if (error instanceof AccountError) {
        io.stderr(error.message);
        return 1;
      }
      throw error;
    }
  });
}

/** `portal token revoke ID`: the token stops working at once. */
export async function tokenRevoke(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const id = parseArgs(io.args, {}, { positionals: 1 }).positionals[0];
  if (id === undefined) throw new UsageError("the token ID is required");
  if (!isUuid(id)) {
    throw new UsageError(
      `Cannot revoke token "${printable(id.slice(0, 100))}": not a token ID ` +
        `(run "portal token list --email E" for the IDs)`,
    );
  }
  return await withDb(async (db) => {
    if (await revokeApiToken({ db }, id)) {
      io.stdout(`Revoked token ${id}: it is refused from now on`);
      return 0;
    }
    const token = await findApiToken({ db }, { tokenId: id });
    io.stderr(
      token === null
        ? `Cannot revoke token "${id}": there is no such token (run "portal token list --email E" ` +
          `for the IDs)`
        : `Cannot revoke token "${id}": it was revoked already` +
          (token.revokedAt === null ? "" : `, at ${formatTime(token.revokedAt)}`),
    );
    return 1;
  });
}

/** The value of `--expires-in-days`, checked (UsageError); undefined without the option. */
function expiryDays(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const days = /^\d{1,9}$/.test(text) ? Number(text) : text;
  const problem = tokenDaysProblem(days);
  if (problem !== null || typeof days !== "number") {
    throw new UsageError(`--expires-in-days: ${problem}`);
  }
  return days;
}

/** The lines of the `token list` table: a header, then one token a line, columns aligned. */
function tokenTable(tokens: ApiTokenInfo[]): string[] {
  const rows = [
    ["ID", "NAME", "PREFIX", "CREATED", "LAST USED", "EXPIRES", "REVOKED", "STATUS"],
    ...tokens.map((token) => [
      token.id,
      token.name === "" ? "-" : shortened(printable(token.name), 40),
      `${token.tokenPrefix}…`,
      formatTime(token.createdAt),
      token.lastUsedAt === null ? "never" : formatTime(token.lastUsedAt),
      token.expiresAt === null ? "never" : formatTime(token.expiresAt),
      token.revokedAt === null ? "-" : formatTime(token.revokedAt),
      token.status,
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd()
  );
}

/** A time to the second, in UTC: `2025-12-06 03:40:12Z`. */
function formatTime(time: Date): string {
  return time.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z");
}

// Names come from API callers too: a control character (an escape sequence, a newline) would
// rewrite the operator's terminal or break the table.
// deno-lint-ignore no-control-regex -- finding control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

function printable(text: string): string {
  return text.replace(CONTROL_CHARACTERS, "\uFFFD");
}

function shortened(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}
