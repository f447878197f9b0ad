/** A time shown the same way on every page. */

/** A time as "2026-01-31 12:34:56Z" in a `<time>` element; "—" for none. */
export function Time({ at }: { at: Date | null }) {
  if (at === null) return <span class="muted">—</span>;
  const iso = at.toISOString();
  return <time datetime={iso}>{iso.replace("T", " ").replace(/\.\d+Z$/, "Z")}</time>;
}
