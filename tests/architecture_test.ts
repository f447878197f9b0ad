/**
 * The shape of the house (docs/architecture.md, "Who may import whom"), checked on the source
 * itself so a change that breaks a rule fails here with the file and line to fix.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

async function sourceFiles(folder: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (/\.tsx?$/.test(entry.name)) found.push(path);
    }
  };
  await walk(join(ROOT, folder));
  return found.sort();
}

/** Every `from "..."` and `import("...")` specifier of a module, with its line number. */
function importsOf(text: string): { specifier: string; line: number }[] {
  const found: { specifier: string; line: number }[] = [];
  text.split("\n").forEach((line, index) => {
    for (const match of line.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
      found.push({ specifier: match[1]!, line: index + 1 });
    }
  });
  return found;
}

async function offences(
  files: string[],
  test: (text: string, file: string) => { line: number; what: string }[],
): Promise<string[]> {
  const out: string[] = [];
  for (const file of files) {
    const text = await Deno.readTextFile(file);
    for (const hit of test(text, file)) {
      out.push(`${relative(ROOT, file)}:${hit.line}: ${hit.what}`);
    }
  }
  return out;
}

const srcFiles = await sourceFiles("src");

Deno.test("nothing under src/ imports routes/, components/ or app.ts", async () => {
  const found = await offences(srcFiles, (text, file) =>
    importsOf(text).filter(({ specifier }) => {
      if (!specifier.startsWith(".")) return false;
      const target = relative(ROOT, join(file, "..", specifier));
      return target.startsWith("routes/") || target.startsWith("components/") ||
        target === "app.ts" || target === "main.ts";
    }).map(({ specifier, line }) => ({ line, what: `imports "${specifier}"` })));
  assert.deepEqual(found, []);
});

Deno.test("src/uploads/ knows nothing of requests: it imports nothing from src/http/", async () => {
  const files = srcFiles.filter((file) => relative(ROOT, file).startsWith("src/uploads/"));
  assert.ok(files.length > 5);
  const found = await offences(
    files,
    (text) =>
      importsOf(text).filter(({ specifier }) => specifier.includes("/http/"))
        .map(({ specifier, line }) => ({ line, what: `imports "${specifier}"` })),
  );
  assert.deepEqual(found, []);
});

Deno.test("no `as any` in the app's code", async () => {
  const files = [
    ...srcFiles,
    ...await sourceFiles("routes"),
    ...await sourceFiles("components"),
    ...await sourceFiles("islands"),
    join(ROOT, "main.ts"),
    join(ROOT, "app.ts"),
  ];
  const found = await offences(
    files,
    (text) =>
      text.split("\n").flatMap((line, index) =>
        /\bas any\b/.test(line) ? [{ line: index + 1, what: line.trim() }] : []
      ),
  );
  assert.deepEqual(found, []);
});

Deno.test("only src/outbox/ holds SQL on outbox_event or NOTIFY on its channel", async () => {
  const files = [...srcFiles, ...await sourceFiles("routes")].filter((file) =>
    !relative(ROOT, file).startsWith("src/outbox/")
  );
  const sql = /\b(FROM|INTO|UPDATE|JOIN|TABLE)\s+outbox_event\b|pg_notify\s*\(|\bNOTIFY\s+\w/i;
  const found = await offences(
    files,
    (text) =>
      text.split("\n").flatMap((line, index) =>
        !/^\s*(\/?\*|\/\/)/.test(line) && sql.test(line)
          ? [{ line: index + 1, what: line.trim() }]
          : []
      ),
  );
  assert.deepEqual(found, []);
});

Deno.test("a file under src/ past 300 lines says at its top why", async () => {
  const found: string[] = [];
  for (const file of srcFiles) {
    const lines = (await Deno.readTextFile(file)).split("\n");
    if (lines.length <= 300 + 1) continue;
    const header = lines.slice(0, 20).join("\n");
    if (!/on purpose/.test(header)) found.push(`${relative(ROOT, file)}: ${lines.length} lines`);
  }
  assert.deepEqual(found, []);
});
