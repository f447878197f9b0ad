/**
 * PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER: how many upload requests one user may have in flight,
 * counted in the database so the limit holds across replicas. A slot is a lease renewed while
 * its upload runs; a process killed mid-upload frees its slots when their leases run out
 * (LEASE_SECONDS), without anyone cleaning up.
 */
import { newId } from "../db/ids.ts";
import type { AppDeps } from "../app_deps.ts";
import { releaseSlot, renewSlot, takeSlot } from "./upload_slots_repo.ts";

/** How long a slot counts without renewal: the most a killed process holds one. */
export const LEASE_SECONDS = 60;
const RENEW_EVERY_MS = (LEASE_SECONDS / 3) * 1000;

/** Every slot of `userId` is taken: the caller answers 429. */
export class UploadSlotsFull extends Error {
  constructor(readonly max: number) {
    super(
      `Too many uploads at once: at most ${max} per user may run together (PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER); wait for one to finish`,
    );
  }
}

/**
 * Runs `upload` holding one of `userId`'s slots; throws UploadSlotsFull when none is free.
 *
 * @example
 * const answer = await withUploadSlot(deps, user.id, () => uploadFile(deps, input));
 */
export async function withUploadSlot<T>(
  deps: Pick<AppDeps, "db" | "config" | "logger">,
  userId: string,
  upload: () => Promise<T>,
): Promise<T> {
  const id = newId();
  const max = deps.config.maxConcurrentUploadsPerUser;
  if (!await takeSlot(deps.db, { id, userId, max, leaseSeconds: LEASE_SECONDS })) {
    throw new UploadSlotsFull(max);
  }
  const renewal = setInterval(() => {
    renewSlot(deps.db.sql, id, LEASE_SECONDS).catch((error) =>
      deps.logger.warn("upload slot renewal failed", { error })
    );
  }, RENEW_EVERY_MS);
  try {
    return await upload();
  } finally {
    clearInterval(renewal);
    await releaseSlot(deps.db.sql, id).catch((error) =>
      deps.logger.warn("upload slot release failed: its lease runs out instead", { error })
    );
  }
}
