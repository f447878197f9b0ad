/**
 * Prints the README configuration table and `.env.example` from src/config/settings.ts.
 * `deno task docs` rewrites both; tests/config_docs_test.ts fails when they drift.
 */
import { SETTINGS } from "../src/config/settings.ts";

/** The Markdown table for the README. */
export function settingsTable(): string {
  const rows = SETTINGS.map((s) => `| \`${s.name}\` | ${s.default} | ${s.description} |`);
  return ["| Variable | Default | Meaning |", "| --- | --- | --- |", ...rows].join("\n");
}

/** The `.env.example` file. */
export function envExample(): string {
  const lines = [
    "# Portal settings: every variable, its default and what it does.",
    "# Copy to .env (or set in your service manager) and uncomment what you change.",
    "",
  ];
  for (const s of SETTINGS) {
    lines.push(`# ${s.description.replace(/`/g, "")}`);
    lines.push(`# Default: ${s.default}`);
    lines.push(`# ${s.name}=`);
    lines.push("");
  }
  return lines.join("\n");
}

const BEGIN = "<!-- settings:begin -->";
const END = "<!-- settings:end -->";

/** Replaces the table between the markers in README text. */
export function withSettingsTable(readme: string): string {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md lacks the ${BEGIN} ... ${END} markers`);
  return readme.slice(0, start + BEGIN.length) + "\n" + settingsTable() + "\n" + readme.slice(end);
}

if (import.meta.main) {
  const readme = await Deno.readTextFile("README.md");
  await Deno.writeTextFile("README.md", withSettingsTable(readme));
  await Deno.writeTextFile(".env.example", envExample());
  console.log("README.md and .env.example updated from src/config/settings.ts");
}
