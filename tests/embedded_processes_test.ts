/**
 * Several processes on one embedded data dir, as people run them: `serve` and `worker` and CLI
 * commands at once; the worker delivers what `serve` commits; a SIGKILLed `serve` (the process
 * that started the server), a SIGKILLed server itself, and two processes racing to create the
 * server on an empty data dir lose nothing that was committed.
 */
import assert from "node:assert/strict";
import { freePort } from "./helpers/app.ts";
import { type PortalProcess, runCli, startPortal, waitForStatus } from "./helpers/cli.ts";
import {
  connectEmbedded,
  embeddedDataDir,
  postmasterPid,
  serveEmbedded,
  stopEmbeddedServer,
  waitForServerStopped,
} from "./helpers/embedded.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { pdfBytes } from "./helpers/uploads.ts";

const ENV = {
  PORTAL_WEBHOOK_ALLOW_PRIVATE: "true",
  PORTAL_SHUTDOWN_TIMEOUT_SECONDS: "3",
  PORTAL_DB_POOL_SIZE: "4",
};

async function startWorker(dataDir: string): Promise<{ worker: PortalProcess; base: string }> {
  const port = freePort();
  const worker = startPortal(["worker"], {
    env: { ...ENV, PORTAL_DATA_DIR: dataDir, PORTAL_WORKER_PORT: String(port) },
  });
  try {
    await waitForStatus(`http://127.0.0.1:${port}/readyz`, { timeoutMs: 60_000 });
  } catch (error) {
    await worker.stop("SIGKILL");
    throw new Error(`${(error as Error).message}\n${worker.stdoutLines.join("\n")}`);
  }
  return { worker, base: `http://127.0.0.1:${port}` };
}

async function cli(dataDir: string, args: string[]): Promise<string> {
  const result = await runCli(args, { env: { ...ENV, PORTAL_DATA_DIR: dataDir } });
  assert.equal(result.code, 0, `portal ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

/** Uploads one PDF through the API; returns the file id. */
async function upload(base: string, token: string, name: string, seed: number): Promise<string> {
  const response = await fetch(`${base}/api/v1/files?filename=${name}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/pdf" },
    body: pdfBytes(4096, seed),
  });
  const body = await response.json();
  assert.equal(response.status, 201, JSON.stringify(body));
  return body.id ?? body.file?.id;
}

/** The `file.stored` events the receiver got, by file id. */
function deliveredFileIds(bodies: string[]): Set<string> {
  return new Set(bodies.map((body) => JSON.parse(body).data?.file_id).filter(Boolean));
}

async function waitUntil(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > timeoutMs) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test("serve, worker and the CLI share one embedded server; SIGKILLs lose nothing committed", async (t) => {
  const dataDir = await embeddedDataDir("embedded-processes");
  const receiver = startReceiver();
  const running: PortalProcess[] = [];
  try {
    let serve = await serveEmbedded(dataDir, ENV);
    running.push(serve.portal);
    const { worker, base: workerBase } = await startWorker(dataDir);
    running.push(worker);
    let token = "";
    const files: string[] = [];

    await t.step("CLI commands run at once while serve and worker run", async () => {
      const [tokenOut] = await Promise.all([
        cli(dataDir, ["token", "create", "--email", "admin@localhost"]),
        cli(dataDir, ["webhook", "add", "--url", receiver.url, "--event-type", "file.stored"]),
        cli(dataDir, ["user", "create", "--email", "member@example.com"]),
        cli(dataDir, ["migrate"]),
      ]);
      token = tokenOut.trim();
      assert.match(token, /^ptk_/);
    });

    await t.step("the worker delivers what serve commits", async () => {
      for (let i = 0; i < 3; i++) files.push(await upload(serve.base, token, `a${i}.pdf`, i));
      await waitUntil("3 deliveries", () => receiver.requests.length >= 3);
      const delivered = deliveredFileIds(receiver.requests.map((r) => r.body));
      for (const id of files) assert.ok(delivered.has(id), `file.stored for ${id}`);
    });

    await t.step("SIGKILL of the serve that started the server: the worker goes on", async () => {
      const pid = await postmasterPid(dataDir);
      await serve.portal.stop("SIGKILL");
      running.splice(running.indexOf(serve.portal), 1);
      assert.equal(await postmasterPid(dataDir), pid, "the server outlives the process");
      const workerReady = await fetch(`${workerBase}/readyz`);
      assert.equal(workerReady.status, 200, "the worker still reaches the database");
      await workerReady.body?.cancel();
      const before = receiver.requests.length;
      serve = await serveEmbedded(dataDir, ENV);
      running.push(serve.portal);
      files.push(await upload(serve.base, token, "after-kill.pdf", 10));
      await waitUntil("the delivery after the restart", () => {
        return deliveredFileIds(receiver.requests.slice(before).map((r) => r.body)).has(
          files.at(-1)!,
        );
      });
      const listed = await fetch(`${serve.base}/api/v1/files?limit=50`, {
        headers: { authorization: `Bearer ${token}` },
      }).then((r) => r.json());
      const ids = new Set((listed.files ?? listed.items ?? []).map((f: { id: string }) => f.id));
      for (const id of files) assert.ok(ids.has(id), `file ${id} is still listed`);
    });

    await t.step(
      "SIGKILL of the server itself: it is started again and nothing committed is lost",
      async () => {
        const pid = await postmasterPid(dataDir);
        assert.ok(pid !== null);
        Deno.kill(pid, "SIGKILL");
        // The processes notice their presence connection drop and bring the server back.
        await waitUntil("a new postmaster", () => {
          try {
            const text = Deno.readTextFileSync(`${dataDir}/pg/postmaster.pid`);
            return Number(text.split("\n")[0]) !== pid && /ready/.test(text);
          } catch {
            return false;
          }
        }, 30_000);
        await waitForStatus(`${serve.base}/readyz`, { timeoutMs: 30_000 });
        const sql = await connectEmbedded(dataDir);
        try {
          const rows = await sql<{ id: string }[]>`
          SELECT id FROM upload_file WHERE status = 'stored' AND id = ANY(${files})`;
          assert.equal(rows.length, files.length, "every committed file is still there");
        } finally {
          await sql.end();
        }
        const before = receiver.requests.length;
        // The pools reconnect: a new upload through serve is delivered by the worker.
        let id = "";
        for (let attempt = 0; attempt < 50 && id === ""; attempt++) {
          try {
            id = await upload(serve.base, token, "after-crash.pdf", 20);
          } catch {
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
        }
        assert.ok(id !== "", "an upload succeeds after the crash");
        files.push(id);
        await waitUntil("the delivery after the crash", () => {
          return deliveredFileIds(receiver.requests.slice(before).map((r) => r.body)).has(id);
        }, 30_000);
        assert.ok(
          [...serve.portal.stdoutLines, ...worker.stdoutLines].some((line) =>
            line.includes("embedded database restarted after it stopped")
          ),
          "a process says it restarted the server",
        );
      },
    );

    await t.step(
      "the last process out stops the server; the files are all there next time",
      async () => {
        for (const portal of running.splice(0)) {
          assert.equal((await portal.stop("SIGTERM")).code, 0, portal.stdoutLines.join("\n"));
        }
        await waitForServerStopped(dataDir);
        const again = await serveEmbedded(dataDir, ENV);
        running.push(again.portal);
        for (const id of files) {
          const response = await fetch(`${again.base}/api/v1/files/${id}`, {
            headers: { authorization: `Bearer ${token}` },
          });
          await response.body?.cancel();
          assert.equal(response.status, 200, `file ${id}`);
        }
      },
    );
  } finally {
    for (const portal of running) await portal.stop("SIGKILL");
    await receiver.close();
    await stopEmbeddedServer(dataDir);
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("two processes racing to create the embedded server on an empty data dir make one", async () => {
  const dataDir = await embeddedDataDir("embedded-race");
  const running: PortalProcess[] = [];
  try {
    const [a, b] = await Promise.all([serveEmbedded(dataDir, ENV), serveEmbedded(dataDir, ENV)]);
    running.push(a.portal, b.portal);
    const created = [...a.portal.stdoutLines, ...b.portal.stdoutLines].filter((line) =>
      line.includes('"msg":"embedded database created"')
    );
    assert.equal(created.length, 1, "one initdb");
    const passwords = [...a.portal.stdoutLines, ...b.portal.stdoutLines].filter((line) =>
      /^\|\s+password\s/.test(line)
    );
    assert.equal(passwords.length, 1, "one admin account");
    for (const base of [a.base, b.base]) {
      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 200);
      await ready.body?.cancel();
    }
  } finally {
    for (const portal of running) await portal.stop("SIGTERM");
    await stopEmbeddedServer(dataDir);
    await Deno.remove(dataDir, { recursive: true });
  }
});
