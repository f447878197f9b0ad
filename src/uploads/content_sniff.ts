/**
 * Deciding a file's type from its first bytes, never from the client's claim (SPEC §1).
 * `file-type` knows binary formats; text has no magic number, so a small rule classifies it,
 * built to be safe: markup (HTML, SVG, XML) is never reported as text/plain, so it cannot slip
 * past an allow-list that permits plain text.
 */
import { fileTypeFromBuffer } from "file-type";
import { extensionOf } from "./file_names.ts";

/** How many leading bytes the sniffer looks at (file-type's own recommendation). */
export const SNIFF_BYTES = 4100;

/** The type of bytes nothing recognised. */
export const UNKNOWN_TYPE = "application/octet-stream";

// Tags that make a browser (or an XML parser) treat text as active content. Searched anywhere
// in the sniffed prefix, case-insensitively: a Markdown file quoting "<script>" is refused as
// HTML rather than an HTML page admitted as text.
const HTML_MARKERS = [
  "<!doctype html",
  "<html",
  "<head",
  "<body",
  "<script",
  "<iframe",
  "<object",
  "<embed",
];
const SVG_MARKER = "<svg";
const XML_MARKER = "<?xml";

// Names whose content is active whatever the bytes look like: a comment-padded page stays HTML.
const ACTIVE_EXTENSIONS: Readonly<Record<string, string>> = {
  html: "text/html",
  htm: "text/html",
  xhtml: "application/xhtml+xml",
  shtml: "text/html",
  svg: "image/svg+xml",
  svgz: "image/svg+xml",
  xml: "application/xml",
  xsl: "application/xml",
  js: "text/javascript",
  mjs: "text/javascript",
};

const TEXT_EXTENSIONS: Readonly<Record<string, string>> = {
  csv: "text/csv",
  tsv: "text/tab-separated-values",
  md: "text/markdown",
  markdown: "text/markdown",
};

/**
 * The MIME type of a file from its first bytes (`head`, at most SNIFF_BYTES; `complete` when
 * it is the whole file) and, for text only, its name.
 *
 * @example
 * await sniffContentType(pngBytes, { filename: "x.txt", complete: true }); // => "image/png"
 * await sniffContentType(utf8("<svg onload=…>"), { filename: "a.txt", complete: true });
 * // => "image/svg+xml"
 */
export async function sniffContentType(
  head: Uint8Array,
  options: { filename: string; complete: boolean },
): Promise<string> {
  const markup = markupType(head);
  const detected = await fileTypeFromBuffer(head).catch(() => undefined);
  if (detected) {
    // file-type calls any "<?xml" document XML; an SVG must keep its more dangerous name.
    return detected.mime === "application/xml" && markup !== null ? markup : detected.mime;
  }
  if (markup !== null) return markup;
  if (!isText(head, options.complete)) return UNKNOWN_TYPE;
  const extension = extensionOf(options.filename);
  const active = ACTIVE_EXTENSIONS[extension];
  if (active !== undefined) return active;
  if (extension === "json" && /^\s*[[{]/.test(decodeHead(head))) return "application/json";
  return TEXT_EXTENSIONS[extension] ?? "text/plain";
}

/**
 * True when `type` is in `allowed`, where `family/*` admits the whole family.
 *
 * @example
 * isTypeAllowed("audio/ogg", ["audio/*"]); // => true
 */
export function isTypeAllowed(type: string, allowed: readonly string[]): boolean {
  const normalized = type.toLowerCase();
  const family = normalized.split("/")[0];
  return allowed.some((entry) => entry === normalized || entry === `${family}/*`);
}

function markupType(head: Uint8Array): string | null {
  const text = decodeHead(head).toLowerCase();
  if (text.includes(SVG_MARKER)) return "image/svg+xml";
  if (HTML_MARKERS.some((marker) => text.includes(marker))) return "text/html";
  if (text.includes(XML_MARKER)) return "application/xml";
  return null;
}

function decodeHead(head: Uint8Array): string {
  // NUL bytes removed so "<\0s\0c\0r\0i\0p\0t" (UTF-16) cannot hide a tag.
  return new TextDecoder("utf-8").decode(head).replaceAll("\u0000", "");
}

/**
 * Valid UTF-8 without NUL or other control bytes (tab, newlines, form feed and escape are
 * fine). A sequence cut at the end of an incomplete head is not an error.
 */
function isText(head: Uint8Array, complete: boolean): boolean {
  for (const byte of head) {
    if (
      byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0c && byte !== 0x0d &&
      byte !== 0x1b
    ) return false;
    if (byte === 0x7f) return false;
  }
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(head, { stream: !complete });
    return true;
  } catch {
    return false;
  }
}
