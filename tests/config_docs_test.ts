import assert from "node:assert/strict";
import { type Config, configFrom, loadConfig } from "../src/config/config.ts";
import { DEFAULT_ALLOWED_TYPES, SETTINGS } from "../src/config/settings.ts";

const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, root));

const BEGIN = "<!-- settings:begin -->";
const END = "<!-- settings:end -->";

/** Splits a Markdown table row into trimmed cells (`deno fmt` pads them with spaces). */
function cells(row: string): string[] {
  return row.trim().replace(/^\|/, "").replace(/\|$/, "").split(/(?<!\\)\|/).map((c) => c.trim());
}

Deno.test("README's settings table matches SETTINGS", async () => {
  const readme = await read("README.md");
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  assert.ok(start >= 0 && end > start, `README.md has the ${BEGIN} ... ${END} markers`);
  const rows = readme.slice(start + BEGIN.length, end).split("\n").filter((line) =>
    line.trim().startsWith("|")
  );
  assert.deepEqual(cells(rows[0] ?? ""), ["Variable", "Default", "Meaning"]);
  assert.match(rows[1] ?? "", /^\|[\s|:-]+\|$/, "the second row is the separator");
  const documented = rows.slice(2).map(cells);
  const expected = SETTINGS.map((s) => [`\`${s.name}\``, s.default, s.description]);
  assert.deepEqual(documented, expected, 'run "deno task docs" after changing settings.ts');
});

Deno.test(".env.example lists every setting with its default and meaning", async () => {
  const lines = (await read(".env.example")).split("\n");
  const names: string[] = [];
  for (const [i, line] of lines.entries()) {
    const match = /^#?\s*([A-Z][A-Z0-9_]*)=/.exec(line);
    if (!match) continue;
    const name = match[1]!;
    names.push(name);
    const setting = SETTINGS.find((s) => s.name === name);
    if (!setting) continue; // reported by the name comparison below
    assert.equal(lines[i - 1], `# Default: ${setting.default}`, `default of ${name}`);
    assert.equal(lines[i - 2], `# ${setting.description.replace(/`/g, "")}`, `meaning of ${name}`);
  }
  assert.deepEqual(names, SETTINGS.map((s) => s.name), 'run "deno task docs"');
});

Deno.test("every environment variable config.ts reads is documented in SETTINGS, and back", async () => {
  const source = await read("src/config/config.ts");
  const readNames = [
    ...source.matchAll(/\br\.(?:string|int|bool|oneOf|url|raw)\(\s*"([A-Z0-9_]+)"/g),
  ]
    .map((m) => m[1]!);
  assert.ok(readNames.length >= 30, `found ${readNames.length} reads; did the Reader API change?`);
  const documented = new Set(SETTINGS.map((s) => s.name));
  assert.deepEqual(readNames.filter((name) => !documented.has(name)), [], "undocumented settings");
  const readSet = new Set(readNames);
  assert.deepEqual(
    SETTINGS.map((s) => s.name).filter((name) => !readSet.has(name)),
    [],
    "documented settings config.ts never reads",
  );
  assert.equal(documented.size, SETTINGS.length, "SETTINGS names are unique");
});

/**
 * Defaults documented as a description rather than a value, each with what it must mean in
 * `loadConfig({})`. A new descriptive default fails the test below until it is added here.
 */
const DESCRIBED_DEFAULTS: Record<string, { text: string; check: (config: Config) => void }> = {
  DATABASE_URL: {
    text: "(unset: embedded database)",
    check: (config) => assert.equal(config.databaseUrl, null),
  },
  PORTAL_PUBLIC_URL: {
    text: "http://<host>:<port>",
    check: (config) => assert.equal(config.publicUrl, `http://${config.host}:${config.port}`),
  },
  PORTAL_SECRET_KEY: {
    text: "(generated, kept in the database)",
    check: (config) => assert.equal(config.secretKey, null),
  },
  PORTAL_SECRET_KEY_PREVIOUS: {
    text: "(none)",
    check: (config) => assert.equal(config.secretKeyPrevious, null),
  },
  PORTAL_METRICS_TOKEN: {
    text: "(none)",
    check: (config) => assert.equal(config.metricsToken, null),
  },
  PORTAL_METRICS_PORT: {
    text: "(none)",
    check: (config) => assert.equal(config.metricsPort, null),
  },
  PORTAL_TRUST_PROXY: {
    text: "(empty)",
    check: (config) => assert.deepEqual(config.trustProxy, []),
  },
  FILE_UPLOAD_ALLOWED_TYPES: {
    text: "(documents, images, archives, audio, video, text)",
    check: (config) =>
      assert.deepEqual(config.uploadAllowedTypes, DEFAULT_ALLOWED_TYPES.split(",")),
  },
  AWS_STORAGE_BUCKET_NAME: {
    text: "(empty)",
    check: (config) => assert.equal(config.s3.bucket, ""),
  },
  AWS_S3_ENDPOINT_URL: {
    text: "(empty: AWS)",
    check: (config) => assert.equal(config.s3.endpointUrl, null),
  },
  AWS_ACCESS_KEY_ID: {
    text: "(empty)",
    check: (config) => assert.equal(config.s3.accessKeyId, ""),
  },
  AWS_SECRET_ACCESS_KEY: {
    text: "(empty)",
    check: (config) => assert.equal(config.s3.secretAccessKey, ""),
  },
};

Deno.test("every documented default is what loadConfig({}) applies", async (t) => {
  const defaults = configFrom({});
  for (const setting of SETTINGS) {
    await t.step(`${setting.name} = ${setting.default}`, () => {
      const described = DESCRIBED_DEFAULTS[setting.name];
      if (described !== undefined) {
        assert.equal(setting.default, described.text, "update DESCRIBED_DEFAULTS with the docs");
        described.check(defaults);
        return;
      }
      assert.doesNotMatch(
        setting.default,
        /^\(|</,
        "a default that is not a value needs an entry in DESCRIBED_DEFAULTS",
      );
      // Setting the documented default explicitly must change nothing at all.
      const result = loadConfig({ [setting.name]: setting.default });
      assert.ok(result.ok, `the documented default is refused: ${!result.ok && result.errors}`);
      assert.deepEqual(result.config, defaults);
    });
  }
  const unknown = Object.keys(DESCRIBED_DEFAULTS).filter((name) =>
    !SETTINGS.some((s) => s.name === name)
  );
  assert.deepEqual(unknown, [], "DESCRIBED_DEFAULTS names only documented settings");
});
