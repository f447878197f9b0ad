/**
 * The short list of types a browser may show inline (SPEC §5 Security): raster images and
 * PDF. Everything else, HTML and SVG above all, is served as an attachment so uploaded content
 * never runs in Portal's origin.
 */

const INLINE_TYPES: ReadonlySet<string> = new Set([
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "image/avif",
  "image/bmp",
  "application/pdf",
]);

/** True when a file of this (sniffed) type may be served `inline`. */
export function isInlineType(contentType: string): boolean {
  return INLINE_TYPES.has(contentType.split(";")[0]!.trim().toLowerCase());
}
