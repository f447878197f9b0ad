/**
 * The README's examples work as written: the webhook verification snippet runs against a real
 * delivery from Portal's delivery engine, and the curl examples of the API section run in order,
 * in one bash session, against a real Portal on loopback.
 */
import assert from "node:assert/strict";
import { PRIVATE_TARGETS_ALLOWED } from "./helpers/webhooks.ts";
import { join, relative, sep } from "node:path";
import { createMigratedDatabase } from "./helpers/db.ts";
import { freePort, testDeps } from "./helpers/app.ts";
import { startReceiver } from "./helpers/receiver.ts";
import { deliveryDeps, emit } from "./helpers/webhooks.ts";
import { createUser } from "../src/auth/account_service.ts";
import { createApiToken } from "../src/auth/token_service.ts";
import { createApp } from "../app.ts";
import { startServer } from "../src/http/server.ts";
import { addEndpoint } from "../src/webhooks/endpoint_service.ts";
import { deliverDueOnce } from "../src/webhooks/delivery_loop.ts";

const README = new URL("../README.md", import.meta.url);

/** The first ```ts block after `<!-- snippet:NAME -->`. */
async function snippet(name: string): Promise<string> {
  const text = await Deno.readTextFile(README);
  const marker = text.indexOf(`<!-- snippet:${name} -->`);
  assert.ok(marker >= 0, `README.md has no <!-- snippet:${name} --> marker`);
  const match = /```ts\n([\s\S]*?)```/.exec(text.slice(marker));
  assert.ok(match, `README.md has no ts block after the ${name} marker`);
  return match[1]!;
}

Deno.test("README's verifyPortalWebhook snippet verifies a real Portal delivery", async () => {
  const dir = await Deno.makeTempDir({ prefix: "portal-readme-" });
  const { testDb, db } = await createMigratedDatabase("readme");
  const receiver = startReceiver();
  try {
    await Deno.writeTextFile(`${dir}/verify.ts`, await snippet("verify-webhook"));
    const { verifyPortalWebhook } = await import(`file://${dir}/verify.ts`);
    const endpoint = await addEndpoint({ db, config: PRIVATE_TARGETS_ALLOWED }, {
      url: receiver.url,
    });
    await emit(db, "file.stored", { file_id: "f1", size_bytes: 3 });
    await deliverDueOnce(deliveryDeps(db));
    await receiver.waitFor(1);
    const request = receiver.requests[0]!;

    const event = verifyPortalWebhook(endpoint.secret, request.headers, request.body);
    assert.equal(event.type, "file.stored");
    assert.deepEqual(event.data, { file_id: "f1", size_bytes: 3 });
    assert.throws(
      () => verifyPortalWebhook(endpoint.secret, request.headers, request.body + " "),
      /invalid signature/,
    );
    assert.throws(
      () =>
        verifyPortalWebhook(
          "whsec_" + btoa("another secret entirely"),
          request.headers,
          request.body,
        ),
      /invalid signature/,
    );
  } finally {
    await receiver.close();
    await testDb.drop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Every ```sh block that follows a `<!-- snippet:NAME -->` marker, in README order. */
async function shellSnippets(name: string): Promise<string[]> {
  const text = await Deno.readTextFile(README);
  const marker = `<!-- snippet:${name} -->`;
  const blocks: string[] = [];
  for (let at = text.indexOf(marker); at >= 0; at = text.indexOf(marker, at + 1)) {
    const match = /^\s*```sh\n([\s\S]*?)```/.exec(text.slice(at + marker.length));
    assert.ok(match, `README.md has a ${marker} marker not followed by a sh block`);
    blocks.push(match[1]!);
  }
  return blocks;
}

/** A minimal PDF, enough for the type sniffer: the README's `report.pdf`. */
const SAMPLE_PDF =
  "%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

/** Paths of every file under `root`, relative to it, with "/" separators. */
async function walkFiles(root: string, dir = root): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) found.push(...await walkFiles(root, path));
    else found.push(relative(root, path).split(sep).join("/"));
  }
  return found;
}

Deno.test("README's curl examples work as written against a running Portal", async () => {
  const curl = await new Deno.Command("curl", { args: ["--version"], stdout: "null" }).output()
    .catch(() => null);
  assert.ok(
    curl?.success,
    "the README's API examples need curl: install it (apt-get install curl)",
  );
  const blocks = await shellSnippets("curl-api");
  assert.ok(blocks.length >= 8, `expected the API section's examples, found ${blocks.length}`);

  const dir = await Deno.makeTempDir({ prefix: "portal-readme-curl-" });
  const { testDb, db } = await createMigratedDatabase("readme_curl");
  // The signed links in answers are built from PORTAL_PUBLIC_URL, so it names the real port.
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const deps = testDeps(db, {
    env: { PORTAL_DATA_DIR: join(dir, "data"), PORTAL_PORT: String(port), PORTAL_PUBLIC_URL: url },
  });
  const server = await startServer(createApp(deps).fetch, { hostname: "127.0.0.1", port });
  try {
    await createUser({ db }, { email: "you@example.com", password: "correct horse battery" });
    const { token } = await createApiToken({ db }, { email: "you@example.com", name: "readme" });
    const work = join(dir, "work");
    await Deno.mkdir(work);
    await Deno.writeTextFile(join(work, "report.pdf"), SAMPLE_PDF);
    await Deno.writeTextFile(join(work, "api.sh"), blocks.join("\n"));

    // A clean environment: no proxy variables, no ~/.curlrc, only loopback.
    const run = await new Deno.Command("bash", {
      args: ["-euo", "pipefail", "api.sh"],
      cwd: work,
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: work,
        LC_ALL: "C.UTF-8",
        PORTAL_URL: url,
        PORTAL_TOKEN: token,
      },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `the examples failed:\n${stderr}\n--- output ---\n${stdout}`);

    // What the README says each example prints.
    const shown = [
      '"email":"you@example.com","is_admin":false}',
      '"status":"stored","original_filename":"report.pdf","content_type":"application/pdf"',
      '"original_filename":"copy.pdf"',
      '{"error":{"code":"unauthorized",',
      "}} 401\n",
      '{"error":{"code":"type_not_allowed",',
      '"status":"failed"',
      "}} 415\n",
      '"next_cursor":"',
      '"status":"partial"',
      "same bytes\n",
      "%PDF-1.4\n",
      'content-disposition: inline; filename="report.pdf"',
      "content-security-policy: sandbox",
      "x-content-type-options: nosniff",
      "the link works\n",
      '"status":"deleted"',
      '"url":null}',
      '{"error":{"code":"gone",',
      "}} 410\n",
    ];
    for (const text of shown) {
      assert.ok(stdout.includes(text), `the output lacks ${JSON.stringify(text)}:\n${stdout}`);
    }

    // The Storage section's key layout, on the disk the examples wrote to.
    const keys = await walkFiles(join(deps.config.mediaDir, "objects"));
    assert.ok(keys.length >= 4, `expected the stored uploads on disk, found ${keys.join(", ")}`);
    for (const key of keys) {
      assert.match(key, /^uploads\/\d{4}\/\d{2}\/[0-9a-f-]{36}\/(report|copy)\.pdf$/);
    }
  } finally {
    await server.shutdown(5_000);
    await server.finished;
    deps.storage.close?.();
    await testDb.drop();
    await Deno.remove(dir, { recursive: true });
  }
});
