/**
 * Validation while streaming (SPEC §5 Uploads): the size limit is enforced at the byte that
 * crosses it, the type is sniffed from the first bytes before any byte reaches storage, and an
 * empty body is refused at its end. The checked stream is what storage reads, so a refusal
 * makes the storage write fail and clean up after itself.
 */
import { isTypeAllowed, SNIFF_BYTES, sniffContentType } from "./content_sniff.ts";

/** Why a file was refused by validation. */
export type RejectionCode = "too_large" | "type_not_allowed" | "empty";

/** A refusal: what the client did wrong, in a message it can show. */
export class UploadRejection extends Error {
  override name = "UploadRejection";

  constructor(readonly code: RejectionCode, message: string) {
    super(message);
  }
}

/** The limits a file is checked against. */
export interface UploadLimits {
  /** FILE_UPLOAD_MAX_SIZE in bytes. */
  maxSize: number;
  /** FILE_UPLOAD_ALLOWED_TYPES (`type/*` admits a family). */
  allowedTypes: readonly string[];
  /** The client's filename (only used in messages and to name text types). */
  filename: string;
}

/** What the validator saw; read it after the consumer finished or failed. */
export interface ValidationState {
  /** Bytes read from the source so far. */
  bytes: number;
  /** The sniffed type, once known. */
  contentType: string | null;
  /** Set when validation refused the file. */
  rejection: UploadRejection | null;
  /** Set when the source itself failed (client disconnected). */
  sourceError: unknown;
}

/** Bytes per chunk handed to storage: fewer, larger writes than the socket's ~64 KiB reads. */
export const CHUNK_BYTES = 256 * 1024;
// Chunks read ahead while storage writes the current one, so network and disk overlap.
const QUEUE_CHUNKS = 2;
// Chunk buffers are recycled: a buffer is refilled only after QUEUE_CHUNKS + 2 newer chunks,
// i.e. once the consumer has asked for later chunks. Allocating a fresh buffer per chunk would
// leave tens of MB of garbage between collections (RSS grows, measured in bench/upload.ts).
const RING_SIZE = QUEUE_CHUNKS + 3;

/**
 * Wraps `source` in a stream that passes its bytes through unchanged once the first
 * SNIFF_BYTES have been sniffed and admitted, and errors with an UploadRejection as soon as a
 * limit is crossed (the source is cancelled then, so the rest is never read).
 *
 * The bytes come out in chunks of up to CHUNK_BYTES whose buffers are reused: the consumer
 * must be done with a chunk (written or copied it) by the time it has read two more. Both
 * storage adapters are (they await each write or copy into part buffers).
 *
 * @example
 * const { stream, state } = validateUpload(request.body, { maxSize, allowedTypes, filename });
 * await storage.putObject(key, stream); // rejects when validation refuses
 * state.contentType; // "application/pdf"
 */
export function validateUpload(
  source: ReadableStream<Uint8Array>,
  limits: UploadLimits,
): { stream: ReadableStream<Uint8Array>; state: ValidationState } {
  const state: ValidationState = {
    bytes: 0,
    contentType: null,
    rejection: null,
    sourceError: undefined,
  };
  const reader = new ChunkReader(source);
  const ring: Uint8Array<ArrayBuffer>[] = [];
  let slot = 0;
  let sniffed = false;

  const refuse = (
    controller: ReadableStreamDefaultController<Uint8Array>,
    rejection: UploadRejection,
  ) => {
    state.rejection = rejection;
    controller.error(rejection);
    // Not awaited: the refusal must reach the caller now, not after the client stops sending.
    reader.cancel(rejection);
  };

  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let buffer = ring[slot] ?? new Uint8Array(CHUNK_BYTES);
      let filled = 0;
      let done = false;
      while (filled < CHUNK_BYTES) {
        let read;
        try {
          read = await reader.readInto(buffer, filled);
        } catch (error) {
          state.sourceError = error;
          throw error;
        }
        buffer = read.buffer;
        if (read.done) {
          done = true;
          break;
        }
        filled += read.bytes;
        state.bytes += read.bytes;
        if (state.bytes > limits.maxSize) {
          refuse(
            controller,
            new UploadRejection(
              "too_large",
              `File "${limits.filename}" is too large: it exceeds FILE_UPLOAD_MAX_SIZE (${limits.maxSize} bytes)`,
            ),
          );
          return;
        }
      }
      ring[slot] = buffer;
      slot = (slot + 1) % RING_SIZE;
      if (!sniffed) {
        sniffed = true;
        if (state.bytes === 0) {
          refuse(
            controller,
            new UploadRejection("empty", "Cannot store upload: the file is empty"),
          );
          return;
        }
        // CHUNK_BYTES > SNIFF_BYTES: the first chunk holds the whole head, or the whole file.
        const type = await sniffContentType(buffer.subarray(0, Math.min(filled, SNIFF_BYTES)), {
          filename: limits.filename,
          complete: done,
        });
        state.contentType = type;
        if (!isTypeAllowed(type, limits.allowedTypes)) {
          refuse(
            controller,
            new UploadRejection(
              "type_not_allowed",
              `File "${limits.filename}" is not allowed: type "${type}" is not in FILE_UPLOAD_ALLOWED_TYPES`,
            ),
          );
          return;
        }
      }
      if (filled > 0) controller.enqueue(buffer.subarray(0, filled));
      if (done) controller.close();
    },
    cancel(reason) {
      reader.cancel(reason);
    },
  }, { highWaterMark: QUEUE_CHUNKS });
  return { stream, state };
}

/**
 * Reads a stream into caller-provided buffers: with a BYOB reader when the source is a byte
 * stream (Deno's request bodies are: the socket writes straight into our buffer, no chunk
 * allocated per read), else by copying the default reader's chunks.
 */
class ChunkReader {
  #byob: ReadableStreamBYOBReader | null = null;
  #plain: ReadableStreamDefaultReader<Uint8Array> | null = null;
  #pending: Uint8Array | null = null;

  constructor(source: ReadableStream<Uint8Array>) {
    try {
      this.#byob = source.getReader({ mode: "byob" });
    } catch {
      this.#plain = source.getReader();
    }
  }

  /** Reads some bytes into `buffer` at `offset`; returns the (possibly new) buffer. */
  async readInto(
    buffer: Uint8Array<ArrayBuffer>,
    offset: number,
  ): Promise<{ buffer: Uint8Array<ArrayBuffer>; bytes: number; done: boolean }> {
    if (this.#byob !== null) {
      // A BYOB read transfers the buffer; the answer's view is the way back to its memory.
      const { done, value } = await this.#byob.read(
        new Uint8Array(buffer.buffer, offset, buffer.byteLength - offset),
      );
      const back = value === undefined
        ? new Uint8Array(buffer.byteLength)
        : new Uint8Array(value.buffer as ArrayBuffer);
      return { buffer: back, bytes: done ? 0 : value!.byteLength, done };
    }
    let chunk = this.#pending;
    this.#pending = null;
    while (chunk === null || chunk.byteLength === 0) {
      const { done, value } = await this.#plain!.read();
      if (done) return { buffer, bytes: 0, done: true };
      chunk = value;
    }
    const space = buffer.byteLength - offset;
    if (chunk.byteLength > space) {
      this.#pending = chunk.subarray(space);
      chunk = chunk.subarray(0, space);
    }
    buffer.set(chunk, offset);
    return { buffer, bytes: chunk.byteLength, done: false };
  }

  cancel(reason: unknown): void {
    (this.#byob ?? this.#plain)!.cancel(reason).catch(() => {});
  }
}
