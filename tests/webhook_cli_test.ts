import assert from "node:assert/strict";
import { createMigratedDatabase } from "./helpers/db.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { deliveryDeps, emit, webhookTestConfig } from "./helpers/webhooks.ts";
import { deliverDueOnce } from "../src/webhooks/delivery_loop.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function portal(databaseUrl: string) {
  return async (...args: string[]): Promise<Run> => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-q",
        "-A",
        `--lock=${new URL("./deno.lock", import.meta.url).pathname}`,
        MAIN,
        ...args,
      ],
      env: {
        DATABASE_URL: databaseUrl,
        PORTAL_WEBHOOK_ALLOW_PRIVATE: "true",
        PORTAL_LOG_LEVEL: "error",
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return {
      code: output.code,
      stdout: decoder.decode(output.stdout),
      stderr: decoder.decode(output.stderr),
    };
  };
}

Deno.test("portal webhook add|list|test|rotate-secret|disable|enable|delete manage endpoints", async (t) => {
  const { testDb } = await createMigratedDatabase("webhook_cli_endpoints");
  const receiver = startReceiver(() => new Response("hello from the receiver"));
  const run = portal(testDb.url);
  try {
    let id = "";
    let secret = "";
    await t.step("add prints the id and the secret", async () => {
      const result = await run(
        "webhook",
        "add",
        "--url",
        receiver.url,
        "--event-type",
        "file.stored",
        "--event-type",
        "file.deleted",
        "--description",
        "billing sync",
      );
      assert.equal(result.code, 0, result.stderr);
      id = /Created webhook endpoint (\S+)/.exec(result.stdout)?.[1] ?? "";
      secret = /Secret: (whsec_\S+)/.exec(result.stdout)?.[1] ?? "";
      assert.match(id, /^[0-9a-f-]{36}$/);
      assert.ok(secret.length > 20);
      assert.match(result.stdout, /Events: file\.stored,file\.deleted/);
    });

    await t.step("list shows it without the secret", async () => {
      const result = await run("webhook", "list");
      assert.equal(result.code, 0, result.stderr);
      const line = result.stdout.split("\n").find((l) => l.startsWith(id));
      assert.deepEqual(line?.split("\t"), [
        id,
        receiver.url,
        "yes",
        "file.stored,file.deleted",
        "billing sync",
        "",
      ]);
      assert.ok(!result.stdout.includes(secret));
    });

    await t.step("test sends portal.test and prints the answer", async () => {
      const result = await run("webhook", "test", id);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^Status: 200$/m);
      assert.match(result.stdout, /^Duration: \d+ ms$/m);
      assert.match(result.stdout, /^Response: hello from the receiver$/m);
      assert.equal(receiver.requests.at(-1)?.headers.get("x-webhook-event"), "portal.test");
    });

    await t.step("rotate-secret prints a new secret", async () => {
      const result = await run("webhook", "rotate-secret", id);
      assert.equal(result.code, 0, result.stderr);
      const rotated = result.stdout.trim();
      assert.match(rotated, /^whsec_/);
      assert.notEqual(rotated, secret);
      assert.match(result.stderr, /signed with both secrets until/);
    });

    await t.step("disable and enable", async () => {
      let result = await run("webhook", "disable", id, "--reason", "receiver migration");
      assert.equal(result.code, 0, result.stderr);
      result = await run("webhook", "list");
      assert.match(result.stdout, new RegExp(`${id}\t.*\tno\t.*\treceiver migration`));
      result = await run("webhook", "enable", id);
      assert.equal(result.code, 0, result.stderr);
      result = await run("webhook", "list");
      assert.match(result.stdout, new RegExp(`${id}\t\\S+\tyes\t`));
    });

    await t.step(
      "mistakes: missing --url is a usage error, an unknown id is not found",
      async () => {
        let result = await run("webhook", "add");
        assert.equal(result.code, 2);
        assert.match(result.stderr, /--url is required/);
        assert.match(result.stderr, /Usage: portal webhook add/);
        result = await run("webhook", "add", "--url", "ftp://example.com/");
        assert.equal(result.code, 1);
        assert.match(result.stderr, /only http and https URLs are allowed/);
        result = await run("webhook", "disable", crypto.randomUUID());
        assert.equal(result.code, 1);
        assert.match(result.stderr, /Cannot find webhook endpoint/);
        result = await run("webhook", "--help");
        assert.equal(result.code, 0);
        assert.match(result.stdout, /rotate-secret ID/);
      },
    );

    await t.step("delete removes it", async () => {
      let result = await run("webhook", "delete", id);
      assert.equal(result.code, 0, result.stderr);
      result = await run("webhook", "list");
      assert.ok(!result.stdout.includes(id));
    });
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});

Deno.test("portal events list|show|retry inspect the outbox and retry failed events", async (t) => {
  const { testDb, db } = await createMigratedDatabase("webhook_cli_events");
  const receiver = startReceiver(() => new Response("database locked", { status: 500 }));
  const run = portal(testDb.url);
  try {
    let result = await run("webhook", "add", "--url", receiver.url);
    assert.equal(result.code, 0, result.stderr);
    const failed = await emit(db, "file.stored", { file_id: "f-1", original_filename: "a.pdf" });
    const config = webhookTestConfig({ WEBHOOK_MAX_ATTEMPTS: "1" });
    await deliverDueOnce(deliveryDeps(db, { config }));
    const other = await emit(db, "file.deleted", { file_id: "f-2", reason: "expired" });

    await t.step("list filters by status and type", async () => {
      result = await run("events", "list", "--status", "failed");
      assert.equal(result.code, 0, result.stderr);
      const rows = result.stdout.trim().split("\n").slice(1);
      assert.equal(rows.length, 1);
      assert.deepEqual(rows[0]!.split("\t").slice(0, 4), [failed, "file.stored", "failed", "1"]);
      assert.match(rows[0]!, /HTTP 500/);
      result = await run("events", "list", "--type", "file.deleted", "--limit", "5");
      assert.deepEqual(result.stdout.trim().split("\n").slice(1).map((l) => l.split("\t")[0]), [
        other,
      ]);
      result = await run("events", "list", "--status", "lost");
      assert.equal(result.code, 2);
      assert.match(result.stderr, /--status: expected one of pending, delivered, failed/);
    });

    await t.step("show prints the payload, the delivery and its attempts", async () => {
      result = await run("events", "show", failed);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /type: +file\.stored/);
      assert.match(result.stdout, /status: +failed \(attempts 1\)/);
      assert.match(result.stdout, /"original_filename": "a\.pdf"/);
      assert.match(result.stdout, /Deliveries \(1\):/);
      assert.match(result.stdout, /failed attempts 1\/1/);
      assert.match(result.stdout, /#1: 500 in \d+ ms, error: HTTP 500, response: database locked/);
      result = await run("events", "show", crypto.randomUUID());
      assert.equal(result.code, 1);
      assert.match(result.stderr, /Cannot find event/);
    });

    await t.step("retry puts a failed event back to pending from attempt 0", async () => {
      result = await run("events", "retry");
      assert.equal(result.code, 2);
      result = await run("events", "retry", failed);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Retrying event .*: 1 failed delivery/);
      const [event] = await db.sql<{ status: string; attempts: number }[]>`
        SELECT status, attempts FROM outbox_event WHERE id = ${failed}`;
      assert.deepEqual({ ...event }, { status: "pending", attempts: 0 });
      await deliverDueOnce(deliveryDeps(db, { config }));
      result = await run("events", "retry", "--all-failed");
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Retrying 2 failed event\(s\): 2 delivery/);
    });
  } finally {
    await receiver.close();
    await testDb.drop();
  }
});
