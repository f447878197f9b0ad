/** `portal storage check`: a round trip through the configured storage backend. */
import { checkStorage } from "../storage/storage_check.ts";
import type { StorageAdapter } from "../storage/storage.ts";
import { parseArgs } from "./args.ts";
import type { CommandIo } from "./cli_types.ts";

/**
 * Writes, reads back and deletes a probe object on `storage`, prints what `checkStorage`
 * found and returns 0 when it worked, 1 when it did not. Closes the adapter.
 *
 * @example
 * const code = await storageCheck(io, createStorage(config));
 */
export async function storageCheck(io: CommandIo, storage: StorageAdapter): Promise<number> {
  parseArgs(io.args, {});
  try {
    const result = await checkStorage(storage);
    if (result.ok) {
      io.stdout(`Storage OK: ${result.details}`);
      return 0;
    }
    io.stderr(`Storage check failed: ${result.message}`);
    return 1;
  } finally {
    storage.close?.();
  }
}
