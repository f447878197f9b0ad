/**
 * The file-system steps of local storage: the temp-file writer that flushes as it goes, the
 * rename into place, directory fsync and pruning, reading a file as a stream, and turning
 * OS errors into StorageErrors.
 */
import { dirname, sep } from "node:path";
import { type ObjectInfo, StorageError } from "../storage.ts";

// Large enough to keep syscalls rare, small enough that many parallel downloads stay cheap.
const READ_CHUNK_SIZE = 128 * 1024;
// Written bytes between background flushes of a temp file: big enough that each fdatasync
// has real work to do, small enough that the final one has almost none left.
const SYNC_INTERVAL_BYTES = 32 * 1024 * 1024;
// A concurrent deleteObject may prune the directory between our mkdir and rename.
const RENAME_ATTEMPTS = 3;

/**
 * Writes a temp file with one write in flight while the caller hashes, and flushes it to disk
 * in the background as it grows, so the final fsync has little left to do (measured for 1 GiB
 * on ext4: 15 ms instead of 300-450 ms, i.e. the disk works while the body is still arriving).
 */
export class SyncedWriter {
  #file: Deno.FsFile;
  #path: string;
  #action: string;
  #writing: Promise<void> = Promise.resolve();
  // Deno runs the operations of one file handle one after another: a syncData on #file would
  // hold up the next write for the whole flush (measured: 180 ms per 512 MiB). The background
  // flushes use their own handle, which flushes the same inode.
  #syncHandle: Deno.FsFile | null = null;
  #syncing: Promise<void> | null = null;
  #unsynced = 0;
  #failure: { error: unknown } | null = null;
  #closed = false;

  constructor(file: Deno.FsFile, path: string, action: string) {
    this.#file = file;
    this.#path = path;
    this.#action = action;
  }

  /**
   * Starts writing `chunk` once the previous write is done; resolves when that previous
   * write is, so at most one write is in flight and the caller may reuse a chunk's buffer
   * once it has handed over the next one.
   */
  write(chunk: Uint8Array): Promise<void> {
    const previous = this.#writing;
    this.#writing = previous.then(() => writeAll(this.#file, chunk));
    // Rejections are reported by the next write() or finish(), never left unhandled.
    this.#writing.catch(() => {});
    return this.#afterWrite(previous, chunk.byteLength);
  }

  async #afterWrite(previous: Promise<void>, bytes: number): Promise<void> {
    await fsStep(this.#action, () => previous);
    this.#throwIfFailed();
    this.#unsynced += bytes;
    if (this.#unsynced >= SYNC_INTERVAL_BYTES && this.#syncing === null) {
      this.#unsynced = 0;
      this.#syncing = this.#syncInBackground();
    }
  }

  /** Writes what is left, flushes data and metadata, and closes the file. */
  async finish(): Promise<void> {
    await fsStep(this.#action, () => this.#writing);
    await this.#syncing;
    this.#throwIfFailed();
    // Still required: the background flushes leave the tail and the file size unsynced.
    await fsStep(this.#action, () => this.#file.sync());
    await this.close();
  }

  /** Waits for the writes and flushes in flight, then closes both handles. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writing.catch(() => {});
    await this.#syncing;
    this.#file.close();
    this.#syncHandle?.close();
  }

  async #syncInBackground(): Promise<void> {
    try {
      this.#syncHandle ??= await Deno.open(this.#path, { write: true });
      await this.#syncHandle.syncData();
    } catch (error) {
      this.#failure ??= { error };
    } finally {
      this.#syncing = null;
    }
  }

  #throwIfFailed(): void {
    if (this.#failure !== null) throw fsError(this.#action, this.#failure.error);
  }
}

export async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) offset += await file.write(data.subarray(offset));
}

export async function renameIntoPlace(from: string, to: string): Promise<void> {
  for (let attempt = 1;; attempt++) {
    await Deno.mkdir(dirname(to), { recursive: true });
    try {
      await Deno.rename(from, to);
      return;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || attempt >= RENAME_ATTEMPTS) throw error;
    }
  }
}

export async function syncDirectory(path: string): Promise<void> {
  try {
    const dir = await Deno.open(path, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  } catch {
    // See the caller: durability of the directory entry is best effort.
  }
}

export async function removeFile(path: string, action: string): Promise<void> {
  try {
    const stat = await Deno.lstat(path);
    // A key that names a directory (a prefix of other keys) is not an object.
    if (!stat.isFile) return;
    await Deno.remove(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw fsError(action, error);
  }
}

/** Removes `dir` and its parents while they are empty, never `stopAt` or anything above it. */
export async function pruneEmptyDirectories(dir: string, stopAt: string): Promise<void> {
  while (dir !== stopAt && dir.startsWith(stopAt + sep)) {
    try {
      await Deno.remove(dir);
    } catch {
      return; // not empty, or already gone: either way the pruning is done
    }
    dir = dirname(dir);
  }
}

export async function openFile(
  path: string,
  action: string,
): Promise<{ file: Deno.FsFile; stat: Deno.FileInfo } | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw fsError(action, error);
  }
  try {
    const stat = await file.stat();
    if (stat.isFile) return { file, stat };
    file.close();
    return null;
  } catch (error) {
    file.close();
    throw fsError(action, error);
  }
}

/** Streams `length` bytes from the file's current position, closing it at the end or on cancel. */
export function fileStream(
  file: Deno.FsFile,
  length: number,
  action: string,
): ReadableStream<Uint8Array> {
  let remaining = length;
  let closed = false;
  let reading: Promise<unknown> = Promise.resolve();
  const close = () => {
    if (closed) return;
    closed = true;
    file.close();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (remaining <= 0) {
        close();
        controller.close();
        return;
      }
      try {
        const buffer = new Uint8Array(Math.min(READ_CHUNK_SIZE, remaining));
        const read = file.read(buffer);
        reading = read.catch(() => {});
        const n = await read;
        if (closed) return;
        if (n === null) {
          throw new Error(`the file ended ${remaining} bytes early`);
        }
        remaining -= n;
        controller.enqueue(n === buffer.byteLength ? buffer : buffer.subarray(0, n));
        if (remaining <= 0) {
          close();
          controller.close();
        }
      } catch (error) {
        close();
        controller.error(fsError(action, error));
      }
    },
    async cancel() {
      // Closing the file under an in-flight read would fail that read with a bad resource.
      await reading;
      close();
    },
  });
}

export function infoFromStat(stat: Deno.FileInfo): ObjectInfo {
  const mtime = stat.mtime?.getTime() ?? 0;
  // Strong validator: a rewrite renames a new inode into place, so ino changes even when size
  // and mtime (millisecond precision) happen to match.
  const etag = `"${stat.size.toString(16)}-${mtime.toString(16)}-${(stat.ino ?? 0).toString(16)}"`;
  return { size: stat.size, etag, lastModified: stat.mtime, contentType: null };
}

export async function fsStep<T>(action: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw fsError(action, error);
  }
}

export function fsError(action: string, error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const kind = error instanceof Deno.errors.PermissionDenied
    ? "denied"
    : error instanceof Deno.errors.NotFound
    ? "not_found"
    : "io";
  return new StorageError(kind, `Cannot ${action}: ${message}`, { cause: error });
}
