import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Browser, freePort, login } from "./helpers/app.ts";
import { type PortalProcess, runCli, startPortal, waitForStatus } from "./helpers/cli.ts";

const ADMIN_LINE = /^Created admin account: sign in as admin@localhost with password (\S+)$/;

/** Starts `portal serve` on the embedded database in `dataDir`; resolves once /readyz is 200. */
async function serveEmbedded(
  dataDir: string,
): Promise<{ portal: PortalProcess; base: string; readyMs: number }> {
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const portal = startPortal(["serve"], {
    env: { PORTAL_DATA_DIR: dataDir, PORTAL_PORT: String(port), PORTAL_JOBS: "off" },
  });
  try {
    const readyMs = await Promise.race([
      waitForStatus(`${base}/readyz`, { timeoutMs: 60_000 }),
      portal.exited().then((status) => {
        throw new Error(
          `portal serve exited with ${status.code} before it was ready:\n${
            [...portal.stdoutLines, ...portal.stderrLines].join("\n")
          }`,
        );
      }),
    ]);
    return { portal, base, readyMs };
  } catch (error) {
    await portal.stop("SIGKILL");
    throw error;
  }
}

Deno.test("portal serve runs on the embedded database with no DATABASE_URL", async (t) => {
  const dataDir = await Deno.makeTempDir({ prefix: "portal-embedded-" });
  let running: PortalProcess | null = null;
  try {
    let password = "";

    await t.step("the first start creates the database and prints the admin password", async () => {
      const { portal, base, readyMs } = await serveEmbedded(dataDir);
      running = portal;
      console.log(`embedded first start: /readyz 200 after ${Math.round(readyMs)} ms`);
      const line = await portal.waitForLine(ADMIN_LINE, 5_000);
      password = ADMIN_LINE.exec(line)![1]!;
      assert.ok(password.length >= 16, "a long random password");
      assert.ok(existsSync(join(dataDir, "pg")), "the database lives in PORTAL_DATA_DIR/pg");
      assert.ok(existsSync(join(dataDir, "embedded.pid")), "the pid file marks the folder");

      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { status: "ready" });

      // The printed password signs in through the real form.
      const browser = await login(base, "admin@localhost", password);
      const home = await browser.get("/");
      assert.equal(home.status, 200);
      assert.match(home.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(await home.text(), /admin@localhost/);
    });

    await t.step("a second serve on the same folder fails fast with a clear message", async () => {
      const started = performance.now();
      const second = await runCli(["serve"], {
        env: { PORTAL_DATA_DIR: dataDir, PORTAL_PORT: String(freePort()), PORTAL_JOBS: "off" },
        timeoutMs: 15_000,
      });
      const ms = performance.now() - started;
      assert.notEqual(second.code, 0);
      assert.match(
        second.stderr,
        /Cannot open the embedded database in ".*": process \d+ is using it \(the embedded database serves one process; set DATABASE_URL to run several\)/,
      );
      assert.doesNotMatch(second.stdout, /Created admin account|Portal is running/);
      assert.ok(ms < 10_000, `refused after ${Math.round(ms)} ms`);
    });

    await t.step("SIGTERM stops it with exit code 0 and removes the pid file", async () => {
      const status = await running!.stop("SIGTERM");
      running = null;
      assert.equal(status.code, 0);
      assert.equal(existsSync(join(dataDir, "embedded.pid")), false);
    });

    await t.step("a restart keeps the data and prints no new password", async () => {
      const { portal, base, readyMs } = await serveEmbedded(dataDir);
      running = portal;
      console.log(`embedded restart: /readyz 200 after ${Math.round(readyMs)} ms`);
      await login(base, "admin@localhost", password);
      const wrong = await new Browser(base).submitLogin("admin@localhost", "not-the-password");
      await wrong.body?.cancel();
      assert.equal(wrong.status, 401);
      await portal.waitForLine(/^Portal is running at /, 5_000);
      assert.equal(portal.stdoutLines.some((line) => /Created admin account/.test(line)), false);
      const status = await portal.stop("SIGTERM");
      running = null;
      assert.equal(status.code, 0);
    });
  } finally {
    if (running) await (running as PortalProcess).stop("SIGKILL");
    await Deno.remove(dataDir, { recursive: true });
  }
});
