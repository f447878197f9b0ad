/**
 * Who may download a file and where its bytes come from: the owner, an admin, or anyone with
 * a valid signed link; local files stream from disk (with ranges), S3 files redirect to a
 * presigned URL.
 */
import { isUuid } from "../db/ids.ts";
import type { ByteRange } from "../storage/storage.ts";
import {
  eventLinkExpiry,
  isExpired,
  linkLifetimeSeconds,
  verifyDownloadLink,
} from "./download_links.ts";
import { verifyingKeys } from "../auth/secret_key.ts";
import { FALLBACK_NAME } from "./file_names.ts";
import { findFile, type UploadFileRecord } from "./files_repo.ts";
import { isInlineType } from "./inline_types.ts";
import { type AppDeps, currentTime } from "../app_deps.ts";
import { type Uploader } from "./uploader.ts";

/** The outcome of `authorizeDownload`. */
export type DownloadAccess =
  | { kind: "ok"; file: UploadFileRecord }
  | { kind: "not_found" }
  | { kind: "gone"; file: UploadFileRecord }
  | { kind: "link_invalid" }
  | { kind: "link_outlives_file" }
  | { kind: "link_expired"; expiredAt: Date };

/**
 * Decides whether the request may download `fileId`: with `link` (the `expires` and `sig` query
 * values) the signature decides, and the link may not end after its file does; otherwise
 * `viewer` must own the file or be an admin. Files that are not yours, unknown or never stored
 * are "not_found"; deleted ones, and ones past `expires_at` (before cleanup has run), "gone".
 *
 * @example
 * const access = await authorizeDownload(deps, { fileId, viewer: user, link: null });
 */
export async function authorizeDownload(
  deps: AppDeps,
  input: {
    fileId: string;
    viewer: Uploader | null;
    link: { expires: string; sig: string } | null;
  },
): Promise<DownloadAccess> {
  if (!isUuid(input.fileId)) return { kind: "not_found" };
  const now = currentTime(deps);
  let check: "valid" | "expired" | "invalid" = "valid";
  if (input.link !== null) {
    check = verifyDownloadLink(verifyingKeys(deps), {
      fileId: input.fileId,
      ...input.link,
      now,
    });
    if (check === "invalid") return { kind: "link_invalid" };
  }
  const file = await findFile(deps.db.sql, input.fileId);
  if (input.link !== null) {
    // An event's link ends with its file: past that, the file is gone (410), not the link.
    if (file !== null && (file.status === "deleted" || isExpired(file, now))) {
      return { kind: "gone", file };
    }
    if (check === "expired") {
      return { kind: "link_expired", expiredAt: new Date(Number(input.link.expires) * 1000) };
    }
    if (file === null) return { kind: "not_found" };
    if (Number(input.link.expires) > eventLinkExpiry(file)) return { kind: "link_outlives_file" };
  } else {
    const viewer = input.viewer;
    if (file === null) return { kind: "not_found" };
    if (viewer === null || (!viewer.isAdmin && file.uploadedBy !== viewer.id)) {
      return { kind: "not_found" };
    }
    if (file.status === "deleted" || isExpired(file, now)) return { kind: "gone", file };
  }
  if (file.status !== "stored" && file.status !== "processed") return { kind: "not_found" };
  return { kind: "ok", file };
}

/** How to send a file's bytes. */
export type DownloadSource =
  | { kind: "redirect"; url: string }
  | {
    kind: "stream";
    body: ReadableStream<Uint8Array> | null;
    size: number;
    range: ByteRange | null;
  }
  | { kind: "missing" };

/** How a file is presented: its name for Content-Disposition, type, and inline or not. */
export interface Presentation {
  filename: string;
  contentType: string;
  inline: boolean;
}

/** Name, type and disposition of a download: inline only for raster images and PDF. */
export function presentation(file: UploadFileRecord): Presentation {
  const contentType = file.contentType === "" ? "application/octet-stream" : file.contentType;
  return {
    filename: file.originalFilename === "" ? FALLBACK_NAME : file.originalFilename,
    contentType,
    inline: isInlineType(contentType),
  };
}

/**
 * Where the bytes come from: a presigned URL on S3 (with the same disposition as a local
 * download), or the object (`range` of it; no body when `head`) on local storage. "missing"
 * when the object is gone or the file lives on a backend no longer configured.
 *
 * @example
 * const source = await openDownload(deps, file, { range: { start: 0, end: 99 } });
 */
export async function openDownload(
  deps: AppDeps,
  file: UploadFileRecord,
  options: { range?: ByteRange; head?: boolean } = {},
): Promise<DownloadSource> {
  if (file.storageKey === null || file.storageBackend !== deps.storage.backend) {
    return { kind: "missing" };
  }
  const shown = presentation(file);
  const url = await deps.storage.presignedDownloadUrl(file.storageKey, {
    ...shown,
    expiresInSeconds: Math.max(1, linkLifetimeSeconds(deps, file, currentTime(deps))),
  });
  if (url !== null) return { kind: "redirect", url };
  if (options.head) {
    const info = await deps.storage.headObject(file.storageKey);
    if (info === null) return { kind: "missing" };
    return { kind: "stream", body: null, size: info.size, range: options.range ?? null };
  }
  const object = await deps.storage.getObject(file.storageKey, { range: options.range });
  if (object === null) return { kind: "missing" };
  return {
    kind: "stream",
    body: object.body,
    size: object.info.size,
    range: object.range ?? null,
  };
}
