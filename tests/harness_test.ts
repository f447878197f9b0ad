/**
 * The test command on a machine with no Postgres: `tests/run.ts` finds nothing at
 * TEST_DATABASE_URL, starts the embedded PostgreSQL server Portal's default uses, and the test
 * files run on it (each in its own database, as on a system server).
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "./helpers/cli.ts";
import { freePort } from "./helpers/app.ts";

const RUN_TS = new URL("./run.ts", import.meta.url).pathname;
const LOCK = new URL("./deno.lock", import.meta.url).pathname;

Deno.test("tests/run.ts starts the embedded server when no Postgres answers, and the tests pass on it", async () => {
  // Files that lean on the database: migrations, the outbox, uploads through the API, delivery.
  const files = [
    "tests/migrate_test.ts",
    "tests/outbox_emit_test.ts",
    "tests/uploads_api_test.ts",
    "tests/webhook_delivery_test.ts",
  ];
  const env: Record<string, string> = {
    // Nothing listens there: the harness must fall back to the embedded server.
    TEST_DATABASE_URL: `postgres://postgres@127.0.0.1:${freePort()}/postgres`,
    NO_COLOR: "1",
  };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR", "CHROMIUM_PATH"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", "-A", `--lock=${LOCK}`, RUN_TS, ...files],
    cwd: REPO_ROOT,
    clearEnv: true,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.match(
    stderr,
    /No Postgres at .*: started the embedded PostgreSQL server for this run in \d+ ms/,
  );
  const summary = /^(\d+) passed, (\d+) failed$/m.exec(stdout);
  assert.ok(summary, `a summary line:\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`);
  assert.equal(summary[2], "0", `${stdout.slice(-4000)}\n${stderr.slice(-2000)}`);
  assert.ok(Number(summary[1]) >= 20, `${summary[1]} tests ran`);
  assert.equal(output.code, 0);
  console.log(`on the embedded server: ${summary[0]}`);
});
