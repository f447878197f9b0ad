/**
 * `deno task test`: checks the prerequisites (a Postgres server, Chromium), runs every test
 * file in parallel with `deno test`, and ends with the plain line CI reads:
 * `N passed, N failed` (plus `, N skipped`).
 *
 * Postgres: the server at TEST_DATABASE_URL (default 127.0.0.1:5432) when it answers; else,
 * or with PORTAL_TEST_EMBEDDED=1, the embedded server Portal's default runs, started for this
 * run in a temporary folder and handed to every test file in TEST_DATABASE_URL.
 */
import {
  type HarnessServer,
  probe,
  redact,
  startHarnessServer,
  TEST_DATABASE_URL,
} from "./helpers/db.ts";
import { ensureChromium } from "./helpers/chromium.ts";

async function main(): Promise<number> {
  let harness: HarnessServer | null = null;
  const forceEmbedded = Deno.env.get("PORTAL_TEST_EMBEDDED") === "1";
  const problem = forceEmbedded ? "PORTAL_TEST_EMBEDDED=1" : await probe(TEST_DATABASE_URL);
  if (problem !== null) {
    try {
      const began = performance.now();
      harness = await startHarnessServer();
      console.error(
        `No Postgres at ${
          redact(TEST_DATABASE_URL)
        } (${problem}): started the embedded PostgreSQL server for this run in ${
          Math.round(performance.now() - began)
        } ms`,
      );
    } catch (error) {
      console.error(`Cannot run the tests: ${(error as Error).message}`);
      console.log("0 passed, 1 failed");
      return 1;
    }
  }
  try {
    return await runTests(harness);
  } finally {
    await harness?.stop();
  }
}

async function runTests(harness: HarnessServer | null): Promise<number> {
  const chromium = await ensureChromium();
  if (!chromium.ok) console.error(`Chromium: ${chromium.message}`);

  const filters = Deno.args;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "-A",
      `--lock=${new URL("./deno.lock", import.meta.url).pathname}`,
      "--parallel",
      ...(filters.length > 0 ? filters : ["tests/"]),
    ],
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1", ...(harness ? { TEST_DATABASE_URL: harness.url } : {}) },
  }).spawn();

  let summary = "";
  let tail = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4000);
  }
  const status = await child.status;
  for (const line of tail.split("\n").reverse()) {
    if (/^(ok|FAILED) \|/.test(line.trim())) {
      summary = line.trim();
      break;
    }
  }
  const count = (label: string) => Number(new RegExp(`(\\d+) ${label}`).exec(summary)?.[1] ?? 0);
  const passed = count("passed");
  let failed = count("failed");
  const skipped = count("ignored");
  if (!status.success && failed === 0) failed = 1; // a crash or a type error before any test ran
  console.log(`\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`);
  return status.success && failed === 0 ? 0 : 1;
}

Deno.exit(await main());
