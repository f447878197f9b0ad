import assert from "node:assert/strict";
import { authenticate } from "../src/auth/account_service.ts";
import { COMMANDS, findCommand, mainUsage } from "../src/cli/commands.ts";
import { COMMAND_USAGE } from "../src/cli/usage.ts";
import { createApp } from "../app.ts";
import { VERSION } from "../src/version.ts";
import { freePort, testDeps } from "./helpers/app.ts";
import { runCli } from "./helpers/cli.ts";
import { createTestDatabase } from "./helpers/db.ts";
import { startS3rver } from "./helpers/s3rver.ts";

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

Deno.test("portal --help, <command> --help and --version exit 0", async (t) => {
  await t.step("--version prints the version", async () => {
    for (const flag of ["--version", "-V"]) {
      const result = await runCli([flag]);
      assert.equal(result.code, 0);
      assert.equal(result.stdout, `portal ${VERSION}\n`);
    }
  });

  await t.step("--help lists every command", async () => {
    const result = await runCli(["--help"]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^portal .*: a self-hosted file portal/);
    for (
      const command of ["serve", "worker", "migrate", "user create", "user list", "token create"]
    ) {
      assert.ok(result.stdout.includes(`  ${command}`), `--help mentions "${command}"`);
    }
  });

  await t.step("each command's --help prints its usage", async () => {
    const paths = Object.keys(COMMAND_USAGE);
    for (
      const required of ["serve", "worker", "migrate", "user create", "user list", "token create"]
    ) {
      assert.ok(paths.includes(required), `COMMAND_USAGE has "${required}"`);
    }
    const results = await Promise.all(
      paths.map((path) => runCli([...path.split(" "), "--help"])),
    );
    results.forEach((result, i) => {
      const path = paths[i]!;
      assert.equal(result.code, 0, `portal ${path} --help: ${result.stderr}`);
      assert.equal(result.stdout.trimEnd(), COMMAND_USAGE[path]);
      assert.match(result.stdout, new RegExp(`^Usage: portal ${path}\\b`));
    });
  });

  await t.step("-h works after a subcommand too", async () => {
    const result = await runCli(["user", "create", "-h"]);
    assert.equal(result.code, 0);
    assert.equal(result.stdout.trimEnd(), COMMAND_USAGE["user create"]);
  });
});

Deno.test("portal refuses unknown commands and flags with exit code 2", async () => {
  const [bare, unknown, unknownSub, unknownFlag, missingValue, missingEmail] = await Promise.all([
    runCli([]),
    runCli(["frobnicate"]),
    runCli(["user", "delete"]),
    runCli(["serve", "--port", "80"]),
    runCli(["user", "create", "--email"]),
    runCli(["token", "create"]),
  ]);
  assert.equal(bare.code, 2, "no command at all");
  assert.match(bare.stdout, /Usage: portal <command>/);

  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^portal: unknown command "frobnicate"/);
  assert.match(unknown.stderr, /portal --help/);

  assert.equal(unknownSub.code, 2);
  assert.match(unknownSub.stderr, /unknown command "user delete"/);

  assert.equal(unknownFlag.code, 2);
  assert.match(unknownFlag.stderr, /^portal: Unknown option '--port'/);
  assert.match(unknownFlag.stderr, /Usage: portal serve/);

  assert.equal(missingValue.code, 2);
  assert.match(missingValue.stderr, /--email/);

  assert.equal(missingEmail.code, 2);
  assert.match(missingEmail.stderr, /^portal: --email is required/);
  assert.match(missingEmail.stderr, /Usage: portal token create/);
});

Deno.test("portal user create, user list and token create manage accounts", async (t) => {
  const testDb = await createTestDatabase("cli_accounts");
  const env = { DATABASE_URL: testDb.url };
  try {
    let userId = "";
    let token = "";

    await t.step("user create --password-stdin creates the user", async () => {
      const result = await runCli(
        ["user", "create", "--email", "A@B.c", "--password-stdin"],
        { env, stdin: "s3cret password\n" },
      );
      assert.equal(result.code, 0, result.stderr);
      const match = new RegExp(`^Created user a@b\\.c \\((${UUID.source})\\)\\n$`).exec(
        result.stdout,
      );
      assert.ok(match, result.stdout);
      userId = match[1]!;
      assert.doesNotMatch(result.stdout + result.stderr, /s3cret/, "the password is not echoed");
    });

    const db = testDb.open({ max: 2 });

    await t.step("the password from stdin (without its newline) signs in", async () => {
      const ok = await authenticate({ db }, {
        email: "a@b.c",
        password: "s3cret password",
        address: "192.0.2.1",
      });
      assert.equal(ok.ok, true);
    });

    await t.step(
      "user create without --password-stdin prints a generated password once",
      async () => {
        const result = await runCli(["user", "create", "--email", "boss@b.c", "--admin"], { env });
        assert.equal(result.code, 0, result.stderr);
        const lines = result.stdout.trimEnd().split("\n");
        assert.match(lines[0] ?? "", new RegExp(`^Created admin boss@b\\.c \\(${UUID.source}\\)$`));
        const password = /^Password for boss@b\.c: (\S{16,})$/.exec(lines[1] ?? "")?.[1];
        assert.ok(password, result.stdout);
        const ok = await authenticate({ db }, {
          email: "boss@b.c",
          password,
          address: "192.0.2.1",
        });
        assert.ok(ok.ok && ok.user.isAdmin);
      },
    );

    await t.step("creating the same email again fails with exit code 1", async () => {
      const result = await runCli(
        ["user", "create", "--email", "a@b.c", "--password-stdin"],
        { env, stdin: "another password" },
      );
      assert.equal(result.code, 1);
      assert.match(result.stderr, /Cannot create user "a@b\.c": the email is taken/);
    });

    await t.step("a short password fails with exit code 1", async () => {
      const result = await runCli(
        ["user", "create", "--email", "c@b.c", "--password-stdin"],
        { env, stdin: "short\n" },
      );
      assert.equal(result.code, 1);
      assert.match(result.stderr, /at least 8 characters/);
    });

    await t.step("user list shows the users", async () => {
      const result = await runCli(["user", "list"], { env });
      assert.equal(result.code, 0, result.stderr);
      const rows = result.stdout.trimEnd().split("\n").map((line) => line.split("\t"));
      assert.deepEqual(rows[0], ["ID", "EMAIL", "ADMIN", "ACTIVE", "CREATED"]);
      assert.equal(rows.length, 3);
      const row = rows.find((r) => r[1] === "a@b.c");
      assert.ok(row, result.stdout);
      assert.deepEqual(row.slice(0, 4), [userId, "a@b.c", "no", "yes"]);
      assert.ok(!Number.isNaN(Date.parse(row[4]!)));
      assert.deepEqual(rows.find((r) => r[1] === "boss@b.c")?.slice(2, 4), ["yes", "yes"]);
    });

    await t.step("token create prints only the token on stdout", async () => {
      const result = await runCli(["token", "create", "--email", "a@b.c", "--name", "ci"], { env });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^ptk_[A-Za-z0-9_-]{40,}\n$/);
      token = result.stdout.trim();
      assert.match(result.stderr, /it is shown once/);
      const [row] = await db.sql<{ name: string; hash: string }[]>`
        SELECT name, token_hash AS hash FROM api_tokens`;
      assert.equal(row?.name, "ci");
      assert.notEqual(row?.hash, token, "only the hash is stored");
    });

    await t.step("the token authenticates /api/v1/me", async () => {
      const app = createApp(testDeps(db));
      const response = await app.request("/api/v1/me", {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      assert.deepEqual(await response.json(), { id: userId, email: "a@b.c", is_admin: false });
    });

    await t.step("token create for an unknown user fails with exit code 1", async () => {
      const result = await runCli(["token", "create", "--email", "nobody@b.c"], { env });
      assert.equal(result.code, 1);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, /Cannot create token: no user "nobody@b\.c"/);
    });
  } finally {
    await testDb.drop();
  }
});

/** `text` matched literally inside a RegExp. */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Every regular file under `dir` (relative paths, sorted). */
async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) found.push(...await filesUnder(`${dir}/${entry.name}`, `${path}/`));
    else found.push(path);
  }
  return found.sort();
}

Deno.test("portal storage check round-trips a probe object and says what is wrong", async (t) => {
  const dataDir = await Deno.makeTempDir({ prefix: "portal_cli_storage_" });
  const s3 = await startS3rver();
  const endpoint = escapeRegExp(s3.endpointUrl);
  // PORTAL_DATA_DIR in every case: the child's working directory is the repository.
  const s3Env = (overrides: Record<string, string> = {}) => ({
    PORTAL_DATA_DIR: dataDir,
    STORAGE_BACKEND: "s3",
    AWS_STORAGE_BUCKET_NAME: s3.bucket,
    AWS_S3_ENDPOINT_URL: s3.endpointUrl,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    ...overrides,
  });
  try {
    await t.step("local: exit 0 and one success line naming the directory", async () => {
      const result = await runCli(["storage", "check"], { env: { PORTAL_DATA_DIR: dataDir } });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, "");
      assert.match(
        result.stdout,
        new RegExp(
          `^Storage OK: local directory "${escapeRegExp(dataDir)}/media": wrote, read back ` +
            `and deleted a 4096-byte probe object in \\d+ ms\\n$`,
        ),
      );
      assert.deepEqual(await filesUnder(dataDir), [], "the probe left no file behind");
    });

    await t.step("S3 endpoint down: exit 1 naming the endpoint", async () => {
      const closed = `http://127.0.0.1:${freePort()}`;
      const result = await runCli(["storage", "check"], {
        env: s3Env({ AWS_S3_ENDPOINT_URL: closed }),
      });
      assert.equal(result.code, 1);
      assert.equal(result.stdout, "");
      assert.equal(
        result.stderr,
        `Storage check failed: Cannot reach S3 endpoint "${closed}": connection refused; ` +
          `check AWS_S3_ENDPOINT_URL and that the service is running\n`,
      );
    });

    await t.step("S3 bucket missing: exit 1 naming the bucket", async () => {
      const missing = `${s3.bucket}-missing`;
      const result = await runCli(["storage", "check"], {
        env: s3Env({ AWS_STORAGE_BUCKET_NAME: missing }),
      });
      assert.equal(result.code, 1);
      assert.equal(result.stdout, "");
      assert.match(
        result.stderr,
        new RegExp(
          `^Storage check failed: Cannot store object "portal-probe/[0-9a-f-]{36}": bucket ` +
            `"${missing}" does not exist at "${endpoint}"; create the bucket or fix ` +
            `AWS_STORAGE_BUCKET_NAME\\n$`,
        ),
      );
    });

    await t.step("S3 credentials refused: exit 1 naming the settings to check", async () => {
      // s3rver knows one access key and does not verify signatures: an unknown key id is the
      // refusal it can give.
      const result = await runCli(["storage", "check"], {
        env: s3Env({ AWS_ACCESS_KEY_ID: "PORTALUNKNOWNKEY" }),
      });
      assert.equal(result.code, 1);
      assert.equal(result.stdout, "");
      assert.match(
        result.stderr,
        new RegExp(
          `^Storage check failed: Cannot store object "portal-probe/[0-9a-f-]{36}": S3 endpoint ` +
            `"${endpoint}" refused access to bucket "${s3.bucket}" ` +
            `\\(InvalidAccessKeyId: .*\\); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and ` +
            `the bucket policy\\n$`,
        ),
      );
    });

    await t.step("S3 with the bucket: exit 0 and the probe is gone", async () => {
      const result = await runCli(["storage", "check"], { env: s3Env() });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, "");
      assert.match(
        result.stdout,
        new RegExp(
          `^Storage OK: S3 bucket "${s3.bucket}" at "${endpoint}": wrote, read back and ` +
            `deleted a 4096-byte probe object in \\d+ ms\\n$`,
        ),
      );
      assert.deepEqual(await filesUnder(`${s3.directory}/${s3.bucket}`), []);
      assert.deepEqual(await s3.pendingUploads(), []);
    });
  } finally {
    await s3.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the command table and the help texts agree: every command has its usage and a line in --help", () => {
  const groups = new Set(
    COMMANDS.map((c) => c.path.split(" ")[0]!).filter((word) =>
      COMMANDS.some((c) => c.path.startsWith(`${word} `))
    ),
  );
  for (const command of COMMANDS) {
    assert.ok(COMMAND_USAGE[command.path], `COMMAND_USAGE has "${command.path}"`);
    const [group] = command.path.split(" ");
    const listed = command.help !== null || mainUsage().includes(`  ${group} ...`);
    assert.ok(listed, `portal --help lists "${command.path}" or its group`);
  }
  for (const path of Object.keys(COMMAND_USAGE)) {
    const runnable = COMMANDS.some((c) => c.path === path) || groups.has(path);
    assert.ok(runnable, `"${path}" has a usage text but runs nothing`);
  }
  assert.deepEqual(findCommand(["user", "create", "--email", "a@b"])?.rest, ["--email", "a@b"]);
  assert.equal(findCommand(["user", "create"])?.command.path, "user create");
  assert.equal(findCommand(["serve"])?.command.path, "serve");
  assert.equal(findCommand(["nope"]), null);
});
