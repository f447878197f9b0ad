/**
 * Storage on a local directory. Final objects live under `<root>/objects/<key>`, parts of
 * resumable uploads under `<root>/tmp/parts/<session>/<part>`. Every write goes to a temp file
 * in `<root>/tmp/incoming/` first and is renamed into place after fsync, so a crash or a
 * failed upload never leaves a half-written file at a final path.
 */
import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import {
  type ByteRange,
  type DownloadUrlOptions,
  type ObjectBody,
  type ObjectInfo,
  type PutObjectOptions,
  type StorageAdapter,
  StorageError,
  type StoredObject,
  type WriteOptions,
} from "../storage.ts";
import {
  assertValidKey,
  assertValidPart,
  assertValidRange,
  assertValidSession,
  partKey,
  PARTS_PREFIX,
} from "../keys.ts";
import { abortedError, readChunks } from "../streams.ts";
import {
  fileStream,
  fsError,
  fsStep,
  infoFromStat,
  openFile,
  pruneEmptyDirectories,
  removeFile,
  renameIntoPlace,
  syncDirectory,
  SyncedWriter,
} from "./files.ts";

/** Options of `LocalStorageAdapter`. */
export interface LocalStorageOptions {
  /** Directory that holds `objects/` and `tmp/`; created on first write. */
  root: string;
}

/** A `StorageAdapter` on a local directory. */
export class LocalStorageAdapter implements StorageAdapter {
  readonly backend = "local" as const;
  /** Absolute path of the storage root. */
  readonly root: string;
  #objectsDir: string;
  #partsDir: string;
  #incomingDir: string;

  constructor(options: LocalStorageOptions) {
    this.root = resolve(options.root);
    this.#objectsDir = join(this.root, "objects");
    this.#partsDir = join(this.root, PARTS_PREFIX);
    this.#incomingDir = join(this.root, "tmp", "incoming");
  }

  /** Names the directory, for logs and `portal storage check`. */
  describe(): string {
    return `local directory "${this.root}"`;
  }

  /** Nothing to release: every file handle is closed when its stream ends. */
  close(): void {}

  /** Stores one part of a resumable upload at `tmp/parts/<sessionId>/<partNumber>`. */
  async writePart(
    sessionId: string,
    partNumber: number,
    body: ReadableStream<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<StoredObject & { key: string }> {
    assertValidPart(sessionId, partNumber);
    const key = partKey(sessionId, partNumber);
    const action = `store part ${partNumber} of upload "${sessionId}"`;
    const stored = await this.#writeAtomically(join(this.root, key), body, action, options.signal);
    return { ...stored, key };
  }

  /** Streams a part; throws StorageError "not_found" when it is missing. */
  async readPart(sessionId: string, partNumber: number): Promise<ReadableStream<Uint8Array>> {
    assertValidPart(sessionId, partNumber);
    const action = `read part ${partNumber} of upload "${sessionId}"`;
    const opened = await openFile(join(this.root, partKey(sessionId, partNumber)), action);
    if (opened === null) {
      throw new StorageError("not_found", `Cannot ${action}: it does not exist`);
    }
    return fileStream(opened.file, opened.stat.size, action);
  }

  /** Deletes one part; a missing part is not an error. */
  async deletePart(sessionId: string, partNumber: number): Promise<void> {
    assertValidPart(sessionId, partNumber);
    const path = join(this.root, partKey(sessionId, partNumber));
    await removeFile(path, `delete part ${partNumber} of upload "${sessionId}"`);
    await pruneEmptyDirectories(dirname(path), this.#partsDir);
  }

  /** Deletes the session's part directory; a missing one is not an error. */
  async deleteSessionParts(sessionId: string): Promise<void> {
    assertValidSession(sessionId);
    try {
      await Deno.remove(join(this.#partsDir, sessionId), { recursive: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw fsError(`delete the parts of upload "${sessionId}"`, error);
    }
  }

  /** Streams `body` to `objects/<key>` through a temp file, hashing as it writes. */
  async putObject(
    key: string,
    body: ReadableStream<Uint8Array>,
    options: PutObjectOptions = {},
  ): Promise<StoredObject> {
    assertValidKey(key);
    return await this.#writeAtomically(
      this.#objectPath(key),
      body,
      `store object "${key}"`,
      options.signal,
    );
  }

  /** Streams the object (or `range` of it) in 128 KiB reads; null when it does not exist. */
  async getObject(key: string, options: { range?: ByteRange } = {}): Promise<ObjectBody | null> {
    assertValidKey(key);
    const { range } = options;
    if (range !== undefined) assertValidRange(range);
    const action = `read object "${key}"`;
    const opened = await openFile(this.#objectPath(key), action);
    if (opened === null) return null;
    const { file, stat } = opened;
    const info = infoFromStat(stat);
    if (range === undefined) return { body: fileStream(file, stat.size, action), info };
    try {
      if (range.start >= stat.size) {
        throw new RangeError(
          `Cannot read byte range "${range.start}-${range.end}" of object "${key}": it has ${stat.size} bytes`,
        );
      }
      // RFC 9110 §14.1.2: a last-pos past the end means "to the end".
      const served = { start: range.start, end: Math.min(range.end, stat.size - 1) };
      await file.seek(served.start, Deno.SeekMode.Start);
      return { body: fileStream(file, served.end - served.start + 1, action), info, range: served };
    } catch (error) {
      file.close();
      if (error instanceof RangeError) throw error;
      throw fsError(action, error);
    }
  }

  /** Reads size and mtime; null when the object does not exist. */
  async headObject(key: string): Promise<ObjectInfo | null> {
    assertValidKey(key);
    try {
      const stat = await Deno.stat(this.#objectPath(key));
      return stat.isFile ? infoFromStat(stat) : null;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw fsError(`read object "${key}"`, error);
    }
  }

  /** Deletes the object and the directories it leaves empty; a missing object is not an error. */
  async deleteObject(key: string): Promise<void> {
    assertValidKey(key);
    const path = this.#objectPath(key);
    await removeFile(path, `delete object "${key}"`);
    await pruneEmptyDirectories(dirname(path), this.#objectsDir);
  }

  /**
   * Deletes temp files in `tmp/incoming/` last modified before `olderThan` (a write in progress
   * touches its file with every chunk, so only abandoned ones are that old). `prefix` does not
   * apply: temp files are named by random ids, not keys.
   */
  async deleteIncomplete(options: { olderThan: Date; prefix: string }): Promise<number> {
    const action = "delete abandoned temp files";
    let removed = 0;
    try {
      for await (const entry of Deno.readDir(this.#incomingDir)) {
        if (!entry.isFile || !entry.name.endsWith(".tmp")) continue;
        const path = join(this.#incomingDir, entry.name);
        const stat = await Deno.stat(path).catch(() => null);
        if (stat?.mtime == null || stat.mtime >= options.olderThan) continue;
        await removeFile(path, action);
        removed++;
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return removed;
      throw fsError(action, error);
    }
    return removed;
  }

  /** Always null: Portal serves local files itself, behind its own signed links. */
  // deno-lint-ignore require-await -- async so an invalid key rejects instead of throwing
  async presignedDownloadUrl(key: string, _options: DownloadUrlOptions): Promise<string | null> {
    assertValidKey(key);
    return null;
  }

  #objectPath(key: string): string {
    return join(this.#objectsDir, ...key.split("/"));
  }

  async #writeAtomically(
    finalPath: string,
    body: ReadableStream<Uint8Array>,
    action: string,
    signal: AbortSignal | undefined,
  ): Promise<StoredObject> {
    const tempPath = join(this.#incomingDir, `${crypto.randomUUID()}.tmp`);
    const file = await fsStep(action, async () => {
      await Deno.mkdir(this.#incomingDir, { recursive: true });
      return await Deno.open(tempPath, { write: true, createNew: true });
    });
    const writer = new SyncedWriter(file, tempPath, action);
    const hash = createHash("sha256");
    let size = 0;
    try {
      const chunks = readChunks(body, {
        signal,
        onAbort: () => abortedError(action, signal!),
      });
      for await (const chunk of chunks) {
        // The write runs on Deno's blocking pool while SHA-256 runs here, so disk and hash
        // overlap instead of taking turns.
        const previousWritten = writer.write(chunk);
        hash.update(chunk);
        size += chunk.byteLength;
        await previousWritten;
      }
      await writer.finish();
      await fsStep(action, () => renameIntoPlace(tempPath, finalPath));
    } catch (error) {
      await writer.close();
      await Deno.remove(tempPath).catch(() => {});
      throw error;
    }
    // Makes the rename itself durable; best effort because not every platform can fsync a
    // directory, and the object is already complete at its final path.
    await syncDirectory(dirname(finalPath));
    return { size, sha256: hash.digest("hex") };
  }
}
