/**
 * Download links a consumer can use without logging in (SPEC §4 `url`): a presigned URL on
 * S3, or on local storage `<PORTAL_PUBLIC_URL>/files/<id>/download?expires=<unix>&sig=<hex>`
 * where sig is HMAC-SHA256 of "<id>.<expires>" under the instance's secret key. Both live for
 * AWS_QUERYSTRING_EXPIRE seconds (default 3600), so one setting governs every link lifetime,
 * and never longer than the file: no link is made for an expired file, and a link whose
 * `expires` lies past its file's end is refused however well it is signed (a leaked key cannot
 * mint a link for the year 33658). PORTAL_SECRET_KEY_PREVIOUS verifies links, never signs them.
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import type { UploadFileRecord } from "./files_repo.ts";
import { type AppDeps, currentTime } from "../app_deps.ts";
import { isInlineType } from "./inline_types.ts";

/** The result of checking a signed link. */
export type LinkCheck = "valid" | "expired" | "invalid";

/** Hex HMAC-SHA256 of "<fileId>.<expires>" under `secretKey`. */
export function signDownload(secretKey: string, fileId: string, expires: number): string {
  return createHmac("sha256", secretKey).update(`${fileId}.${expires}`).digest("hex");
}

/**
 * Checks `expires` (unix seconds, as sent) and `sig` for `fileId` against each of `keys`, in
 * constant time; a bad signature is "invalid" even when the link is also past its expiry.
 *
 * @example
 * verifyDownloadLink([key], { fileId, expires: "1767225600", sig, now: new Date() }); // => "valid"
 */
export function verifyDownloadLink(
  keys: readonly string[],
  input: { fileId: string; expires: string; sig: string; now: Date },
): LinkCheck {
  // One spelling per link: no leading zeros, so a cache, a log or a deny-list keyed on the URL
  // sees every use of it.
  if (!/^(0|[1-9]\d{0,11})$/.test(input.expires) || !/^[0-9a-f]{64}$/.test(input.sig)) {
    return "invalid";
  }
  const given = Buffer.from(input.sig, "hex");
  const signed = keys.some((key) =>
    timingSafeEqual(
      Buffer.from(signDownload(key, input.fileId, Number(input.expires)), "hex"),
      given,
    )
  );
  if (!signed) return "invalid";
  return Number(input.expires) * 1000 < input.now.getTime() ? "expired" : "valid";
}

/** True once `file` is past its `expires_at`: gone to every reader, whatever cleanup has done. */
export function isExpired(file: Pick<UploadFileRecord, "expiresAt">, now: Date): boolean {
  return file.expiresAt !== null && file.expiresAt.getTime() <= now.getTime();
}

/**
 * How long a link made now for `file` may live: the configured lifetime, cut to what is left of
 * the file's; 0 once the file has expired.
 */
export function linkLifetimeSeconds(
  deps: Pick<AppDeps, "config">,
  file: Pick<UploadFileRecord, "expiresAt">,
  now: Date,
): number {
  const configured = deps.config.s3.querystringExpireSeconds;
  if (file.expiresAt === null) return configured;
  const left = Math.floor((file.expiresAt.getTime() - now.getTime()) / 1000);
  return Math.max(0, Math.min(configured, left));
}

/** A signed local link for `fileId`, valid for `expiresInSeconds` from `now`. */
export function localDownloadUrl(
  deps: Pick<AppDeps, "config" | "secretKey">,
  fileId: string,
  input: { now: Date; expiresInSeconds: number },
): string {
  const expires = Math.floor(input.now.getTime() / 1000) + input.expiresInSeconds;
  const sig = signDownload(deps.secretKey, fileId, expires);
  return `${deps.config.publicUrl}/files/${fileId}/download?expires=${expires}&sig=${sig}`;
}

/** Ten years: the link lifetime of a file that never expires. */
const NO_EXPIRY_SECONDS = 10 * 365 * 24 * 3600;

/**
 * When an event's link for `file` stops working: when the file expires (unix seconds), so the
 * link lives exactly as long as the file. It is stored in the event as `link_expires`; the
 * link itself, a bearer credential, is made only when the event is sent.
 */
export function eventLinkExpiry(file: Pick<UploadFileRecord, "expiresAt" | "createdAt">): number {
  const until = file.expiresAt ?? new Date(file.createdAt.getTime() + NO_EXPIRY_SECONDS * 1000);
  return Math.floor(until.getTime() / 1000);
}

/**
 * The payload an event is sent with: a stored `{file_id, link_expires}` becomes `url`, a
 * Portal link signed until the file expires (`/files/<id>/download`, which streams local files
 * and redirects to a fresh presigned URL on S3). Other payloads are sent as stored.
 *
 * @example
 * payloadToSend({ config, secretKey }, { file_id: id, link_expires: 1767225600 }).url;
 * // => "https://portal.example/files/<id>/download?expires=1767225600&sig=…"
 */
export function payloadToSend(
  deps: { config: Pick<AppDeps["config"], "publicUrl">; secretKey: string },
  payload: unknown,
): unknown {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return payload;
  const { link_expires: expires, ...rest } = payload as Record<string, unknown>;
  if (typeof rest.file_id !== "string" || typeof expires !== "number") return payload;
  const sig = signDownload(deps.secretKey, rest.file_id, expires);
  const url =
    `${deps.config.publicUrl}/files/${rest.file_id}/download?expires=${expires}&sig=${sig}`;
  return { ...rest, url };
}

/**
 * The download link of a stored or processed file: presigned on S3, signed by Portal on local
 * storage; null for files without bytes (failed, deleted) or stored on another backend than
 * the one configured now, and for expired ones.
 *
 * @example
 * const url = await fileDownloadUrl(deps, file); // "https://portal.example/files/…/download?…"
 */
export async function fileDownloadUrl(
  deps: AppDeps,
  file: UploadFileRecord,
): Promise<string | null> {
  if (file.status !== "stored" && file.status !== "processed") return null;
  if (file.storageKey === null || file.storageBackend !== deps.storage.backend) return null;
  const now = currentTime(deps);
  const expiresInSeconds = linkLifetimeSeconds(deps, file, now);
  if (expiresInSeconds === 0) return null;
  const presigned = await deps.storage.presignedDownloadUrl(file.storageKey, {
    filename: file.originalFilename,
    contentType: file.contentType,
    inline: isInlineType(file.contentType),
    expiresInSeconds,
  });
  return presigned ?? localDownloadUrl(deps, file.id, { now, expiresInSeconds });
}
