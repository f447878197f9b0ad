/** `portal user create|list|reset-password` and `portal token create`. */
import {
  AccountError,
  createApiToken,
  createUser,
  listAllUsers,
  resetPassword,
} from "../auth/account_service.ts";
import { generatePassword } from "../auth/passwords.ts";
import type { Database } from "../db/db.ts";
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

/** `portal token create --email E [--name N]`: prints the token once. */
export async function tokenCreate(io: CommandIo, withDb: WithDatabase): Promise<number> {
  const { values } = parseArgs(io.args, { email: { type: "string" }, name: { type: "string" } });
  if (!values.email) throw new UsageError("--email is required");
  return await withDb(async (db) => {
    try {
      const created = await createApiToken({ db }, {
        email: values.email!,
        name: values.name ?? "",
      });
      io.stderr(
        `Created token ${created.id} for ${created.user.email}; it is shown once, store it now:`,
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
