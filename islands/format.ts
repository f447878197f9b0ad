/** Values shown to people, shared by the upload island and the server-rendered results page. */

const UNITS = ["KB", "MB", "GB", "TB"] as const;

/**
 * Formats a byte count with binary multiples, one decimal below 10 units.
 *
 * @example
 * formatBytes(52428800); // "50 MB"
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = "B";
  for (const next of UNITS) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  const digits = value < 10 && !Number.isInteger(value) ? 1 : 0;
  return `${value.toFixed(digits)} ${unit}`;
}

// Plain words for the MIME types of the default allow-list (src/config/settings.ts); a type
// not listed here is shown as its subtype.
const TYPE_LABELS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^application\/pdf$/, "PDF"],
  [/^application\/(msword|rtf|vnd\.(ms-|openxmlformats|oasis))/, "office documents"],
  [/^application\/(zip|gzip|x-tar|x-7z-compressed)$/, "archives"],
  [/^image\//, "images"],
  [/^audio\//, "audio"],
  [/^video\//, "video"],
  [/^text\/(plain|csv|markdown)$/, "text"],
  [/^application\/json$/, "JSON"],
];

/**
 * Summarizes an allow-list of MIME types in a few words, each family once, in list order.
 *
 * @example
 * describeTypes(["application/pdf", "image/png", "image/jpeg", "audio/*"]); // "PDF, images, audio"
 */
export function describeTypes(types: readonly string[]): string {
  const labels = new Set<string>();
  for (const type of types) {
    const label = TYPE_LABELS.find(([pattern]) => pattern.test(type))?.[1];
    labels.add(label ?? type.split("/")[1] ?? type);
  }
  return [...labels].join(", ");
}
