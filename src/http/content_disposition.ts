/**
 * Content-Disposition (RFC 6266 with RFC 8187 `filename*`), both ways: read the filename a
 * client sends (a raw upload's header, a multipart part's header), and build the value of a
 * download so an uploaded file's name can never inject a header parameter, a path or a
 * spoofed extension. A leaf module: the S3 adapter uses it for its response overrides too.
 */

const FALLBACK_NAME = "download";
const MAX_NAME_LENGTH = 200;
const MAX_EXTENSION_LENGTH = 20;
// C0/C1 controls end headers or confuse terminals; bidi controls let "txt.exe" pose as
// "exe.txt" (CVE-2021-42574 style spoofing).
// deno-lint-ignore no-control-regex
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Builds a Content-Disposition header value: `attachment` (or `inline`), an ASCII `filename`
 * fallback for old clients and the exact name as `filename*=UTF-8''...`.
 *
 * @example
 * contentDisposition("résumé.pdf", false);
 * // => `attachment; filename="resume.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`
 */
export function contentDisposition(filename: string, inline: boolean): string {
  const name = safeFilename(filename);
  const type = inline ? "inline" : "attachment";
  return `${type}; filename="${asciiFallback(name)}"; filename*=UTF-8''${encodeRfc8187(name)}`;
}

/**
 * Cleans a client-supplied filename for display and headers: no control or bidi characters,
 * no quotes, path separators turned into "_", at most 200 characters (extension kept),
 * "download" when nothing usable is left.
 */
export function safeFilename(filename: string): string {
  let name = String(filename).toWellFormed().normalize("NFC")
    .replace(UNSAFE_CHARS, "")
    .replace(/["]/g, "")
    .replace(/[/\\]/g, "_")
    .trim();
  if (name === "" || /^\.+$/.test(name)) return FALLBACK_NAME;
  const chars = Array.from(name);
  if (chars.length > MAX_NAME_LENGTH) {
    const dot = name.lastIndexOf(".");
    const extension = dot > 0 ? Array.from(name.slice(dot)) : [];
    const keep = extension.length <= MAX_EXTENSION_LENGTH ? extension : [];
    name = chars.slice(0, MAX_NAME_LENGTH - keep.length).join("") + keep.join("");
  }
  return name;
}

/**
 * Printable ASCII only, accents dropped, no "%" (some browsers percent-decode it) and no path
 * separator.
 */
function asciiFallback(name: string): string {
  const ascii = name.normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    // After NFKD: a fullwidth solidus (U+FF0F) decomposes to "/", so separators go here too.
    .replace(/[^\x20-\x7e]|[%\\"/]/g, "_");
  return ascii.trim() === "" ? FALLBACK_NAME : ascii;
}

/** RFC 8187 §3.2.1: attr-char excludes "'", "(", ")" and "*", which encodeURIComponent keeps. */
function encodeRfc8187(name: string): string {
  return encodeURIComponent(name).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Reads the filename of a `Content-Disposition` header (RFC 6266): `filename*` (RFC 8187,
 * UTF-8) wins over `filename`; null when neither is present or the header is malformed.
 *
 * @example
 * filenameFromContentDisposition(`attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`);
 * // => "résumé.pdf"
 */
export function filenameFromContentDisposition(header: string | null | undefined): string | null {
  if (!header) return null;
  const params = dispositionParams(header);
  const extended = params.get("filename*");
  if (extended !== undefined) {
    const match = /^([\w!#$%&+^`{}~-]+)'[^']*'(.*)$/.exec(extended);
    if (match) {
      try {
        const charset = match[1]!.toLowerCase();
        const raw = match[2]!;
        if (charset === "utf-8") return decodeURIComponent(raw);
        if (charset === "iso-8859-1") {
          // The one legacy charset RFC 8187 names: each %XX is one code point.
          return raw.replace(
            /%([0-9a-f]{2})/gi,
            (_, hex) => String.fromCharCode(parseInt(hex, 16)),
          );
        }
      } catch {
        // Malformed percent-encoding: fall back to the plain parameter.
      }
    }
  }
  return params.get("filename") ?? null;
}

/** Parses `type; name=value; name="quoted"` parameters, lowercase names. */
export function dispositionParams(header: string): Map<string, string> {
  const params = new Map<string, string>();
  const pattern = /;\s*([^\s=;]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^;]*)/g;
  for (const match of header.matchAll(pattern)) {
    const name = match[1]!.toLowerCase();
    const value = match[3] !== undefined ? match[3].replace(/\\(.)/g, "$1") : match[2]!.trim();
    if (!params.has(name)) params.set(name, value);
  }
  return params;
}
