/**
 * Builds the storage adapter the configuration asks for; `main.ts` calls it once.
 */
import type { Config } from "../config/config.ts";
import { LocalStorageAdapter } from "./local/local_storage.ts";
import { S3StorageAdapter } from "./s3/s3_storage.ts";
import type { StorageAdapter } from "./storage.ts";

/**
 * Returns a `LocalStorageAdapter` on `config.mediaDir` or an `S3StorageAdapter` on `config.s3`.
 * Opens no connection: the first request does.
 *
 * @example
 * const storage = createStorage(config);
 * const result = await checkStorage(storage);
 */
export function createStorage(config: Readonly<Config>): StorageAdapter {
  if (config.storageBackend === "local") {
    return new LocalStorageAdapter({ root: config.mediaDir });
  }
  const { s3 } = config;
  return new S3StorageAdapter({
    bucket: s3.bucket,
    endpointUrl: s3.endpointUrl,
    region: s3.region,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    querystringAuth: s3.querystringAuth,
  });
}
