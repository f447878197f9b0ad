import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Browser, login } from "./helpers/app.ts";
import { type PortalProcess, runCli } from "./helpers/cli.ts";
import {
  adminPassword,
  connectEmbedded,
  embeddedDataDir,
  postmasterPid,
  serveEmbedded,
  stopEmbeddedServer,
  waitForServerStopped,
} from "./helpers/embedded.ts";

Deno.test("portal serve runs a real PostgreSQL server in the data dir, shared by a second serve and the CLI", async (t) => {
  const dataDir = await embeddedDataDir("embedded");
  const running: PortalProcess[] = [];
  try {
    let password = "";
    let first!: Awaited<ReturnType<typeof serveEmbedded>>;

    await t.step(
      "the first start creates the server and prints the admin password in a frame",
      async () => {
        first = await serveEmbedded(dataDir);
        running.push(first.portal);
        console.log(`embedded first start: /readyz 200 after ${Math.round(first.readyMs)} ms`);
        password = await adminPassword(first.portal);
        assert.ok(password.length >= 16, "a long random password");
        const frame = first.portal.stdoutLines.join("\n");
        assert.match(frame, /\| {3}open {6}http:\/\/127\.0\.0\.1:\d+ +\|/);
        assert.match(frame, /portal user reset-password --email admin@localhost/);
        assert.ok(
          existsSync(join(dataDir, "pg", "PG_VERSION")),
          "the cluster lives in PORTAL_DATA_DIR/pg",
        );
        const secret = await Deno.stat(join(dataDir, "pg-password"));
        assert.equal(
          secret.mode! & 0o777,
          0o600,
          "the generated password is readable by its owner only",
        );

        const browser = await login(first.base, "admin@localhost", password);
        const home = await browser.get("/");
        assert.equal(home.status, 200);
        assert.match(await home.text(), /admin@localhost/);
      },
    );

    await t.step(
      "the server is a real PostgreSQL listening on loopback only, with a password",
      async () => {
        const sql = await connectEmbedded(dataDir);
        try {
          const [row] = await sql<
            { version: string; listen: string; sockets: string; hba: string }[]
          >`SELECT version() AS version, current_setting('listen_addresses') AS listen,
                 current_setting('unix_socket_directories') AS sockets,
                 (SELECT string_agg(DISTINCT auth_method, ',') FROM pg_hba_file_rules
                   WHERE type = 'host') AS hba`;
          assert.match(row!.version, /^PostgreSQL 18\./);
          assert.equal(row!.listen, "127.0.0.1");
          assert.equal(row!.sockets, "");
          assert.equal(row!.hba, "scram-sha-256");
        } finally {
          await sql.end();
        }
      },
    );

    await t.step("a second serve on the same data dir joins the running server", async () => {
      const second = await serveEmbedded(dataDir);
      running.push(second.portal);
      console.log(`embedded join: /readyz 200 after ${Math.round(second.readyMs)} ms`);
      // The same accounts: the admin signs in on the second process too.
      await login(second.base, "admin@localhost", password);
      assert.equal(second.portal.stdoutLines.some((l) => /password/.test(l)), false);
    });

    await t.step("user reset-password works while serve runs and signs the user out", async () => {
      const before = await login(first.base, "admin@localhost", password);
      const reset = await runCli(["user", "reset-password", "--email", "admin@localhost"], {
        env: { PORTAL_DATA_DIR: dataDir },
      });
      assert.equal(reset.code, 0, reset.stderr);
      assert.match(reset.stderr, /signed out \d+ session\(s\)/);
      const fresh = reset.stdout.trim();
      assert.ok(fresh.length >= 16 && fresh !== password);
      const signedOut = await before.get("/upload");
      await signedOut.body?.cancel();
      assert.equal(signedOut.status, 303, "the old session no longer works");
      assert.match(signedOut.headers.get("location") ?? "", /^\/login/);
      const wrong = await new Browser(first.base).submitLogin("admin@localhost", password);
      await wrong.body?.cancel();
      assert.equal(wrong.status, 401, "the old password no longer works");
      await login(first.base, "admin@localhost", fresh);
      password = fresh;
    });

    await t.step("the first serve stops; the server stays up for the second", async () => {
      const pid = await postmasterPid(dataDir);
      assert.ok(pid !== null);
      assert.equal((await running.shift()!.stop("SIGTERM")).code, 0);
      assert.equal(await postmasterPid(dataDir), pid, "the same server still runs");
      const ready = await fetch(`http://127.0.0.1:${portOf(running[0]!)}/readyz`);
      assert.equal(ready.status, 200);
      await ready.body?.cancel();
    });

    await t.step("the last process out stops the server", async () => {
      assert.equal((await running.shift()!.stop("SIGTERM")).code, 0);
      await waitForServerStopped(dataDir);
    });

    await t.step("a restart keeps the data and prints no new password", async () => {
      const again = await serveEmbedded(dataDir);
      running.push(again.portal);
      console.log(`embedded restart: /readyz 200 after ${Math.round(again.readyMs)} ms`);
      await login(again.base, "admin@localhost", password);
      await again.portal.waitForLine(/^Portal is running at /, 5_000);
      assert.equal(again.portal.stdoutLines.some((line) => /password/.test(line)), false);
      assert.equal((await running.shift()!.stop("SIGTERM")).code, 0);
      await waitForServerStopped(dataDir);
    });

    await t.step(
      "a CLI command with no server running starts one for its run and stops it",
      async () => {
        const list = await runCli(["user", "list"], { env: { PORTAL_DATA_DIR: dataDir } });
        assert.equal(list.code, 0, list.stderr);
        assert.match(list.stdout, /admin@localhost\tyes\tyes/);
        assert.equal(await postmasterPid(dataDir), null);
      },
    );
  } finally {
    for (const portal of running) await portal.stop("SIGKILL");
    await stopEmbeddedServer(dataDir);
    await Deno.remove(dataDir, { recursive: true });
  }
});

/** The port a running `portal serve` printed. */
function portOf(portal: PortalProcess): number {
  const line = portal.stdoutLines.find((l) => /^Portal is running at /.test(l)) ?? "";
  return Number(/:(\d+) /.exec(line)?.[1]);
}
