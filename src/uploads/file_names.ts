/**
 * Client-supplied filenames: never trusted as paths. `storageName` turns one into a single
 * safe path segment for the storage key; `originalFilename` keeps what the user sent, minus
 * the characters that would corrupt logs and headers.
 */

/** Name used when nothing usable is left of the client's filename. */
export const FALLBACK_NAME = "file";

const MAX_NAME_BYTES = 255; // the usual file-name limit of Linux filesystems (NAME_MAX)
const MAX_EXTENSION_BYTES = 32;
const MAX_ORIGINAL_CHARS = 1000;
// C0 and C1 controls (NUL included) end C strings, split log lines and inject headers; bidi
// controls make "gpj.exe" display as "exe.jpg".
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// Reserved on Windows and awkward in URLs and shells; harmless to replace everywhere.
const AWKWARD = /[<>:"|?*%#]/g;

const encoder = new TextEncoder();

/**
 * Makes a filename safe to use as the last segment of a storage key: the directory part is
 * dropped (both "/" and "\"), control and bidi characters removed, dots and spaces trimmed
 * at both ends, at most 255 UTF-8 bytes with the extension kept, "file" when nothing is left.
 *
 * @example
 * storageName("../../etc/passwd"); // => "passwd"
 * storageName("..."); // => "file"
 */
export function storageName(filename: string): string {
  const base = String(filename).toWellFormed().normalize("NFC").split(/[/\\]/).pop() ?? "";
  const cleaned = base.replace(CONTROL, "").replace(BIDI, "").replace(AWKWARD, "_")
    .replace(/^[\s.]+|[\s.]+$/g, "");
  if (cleaned === "") return FALLBACK_NAME;
  return truncateKeepingExtension(cleaned, MAX_NAME_BYTES);
}

/**
 * The filename as recorded in `original_filename`: control characters removed (they are
 * never part of a real name and would corrupt logs), at most 1000 characters; may be empty.
 *
 * @example
 * originalFilename("report\u0000.pdf"); // => "report.pdf"
 */
export function originalFilename(filename: string): string {
  const cleaned = String(filename).toWellFormed().replace(CONTROL, "");
  return Array.from(cleaned).slice(0, MAX_ORIGINAL_CHARS).join("");
}

/** Lowercase extension without the dot ("" when none), for type fallbacks. */
export function extensionOf(filename: string): string {
  const name = storageName(filename);
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
}

/** Cuts `name` to `maxBytes` of UTF-8 on a character boundary, keeping a short extension. */
function truncateKeepingExtension(name: string, maxBytes: number): string {
  if (encoder.encode(name).byteLength <= maxBytes) return name;
  const dot = name.lastIndexOf(".");
  const extension = dot > 0 ? name.slice(dot) : "";
  const keep = encoder.encode(extension).byteLength <= MAX_EXTENSION_BYTES ? extension : "";
  const stem = keep === "" ? name : name.slice(0, dot);
  let budget = maxBytes - encoder.encode(keep).byteLength;
  let out = "";
  for (const char of stem) {
    const size = encoder.encode(char).byteLength;
    if (size > budget) break;
    out += char;
    budget -= size;
  }
  const trimmed = out.replace(/[\s.]+$/, "");
  return (trimmed === "" ? FALLBACK_NAME : trimmed) + keep;
}
