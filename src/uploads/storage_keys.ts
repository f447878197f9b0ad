/** Storage keys of uploaded files: unique by construction (SPEC §4). */
import { storageName } from "./file_names.ts";

/** Every uploaded file's key starts with this. */
export const FILE_KEY_PREFIX = "uploads/";

/**
 * `uploads/YYYY/MM/<file id>/<safe name>` (UTC year and month of `now`). The file id makes the
 * key unique, so two uploads of "report.pdf" never overwrite each other on any backend; the
 * name keeps the object recognisable to an operator browsing the bucket.
 *
 * @example
 * fileStorageKey("0193…", "../../report.pdf", new Date("2026-03-05T00:00:00Z"));
 * // => "uploads/2026/03/0193…/report.pdf"
 */
export function fileStorageKey(fileId: string, filename: string, now: Date): string {
  const year = now.getUTCFullYear().toString().padStart(4, "0");
  const month = (now.getUTCMonth() + 1).toString().padStart(2, "0");
  return `${FILE_KEY_PREFIX}${year}/${month}/${fileId}/${storageName(filename)}`;
}
