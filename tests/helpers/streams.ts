/** Byte streams for tests: deterministic data of any size, produced as the consumer pulls. */
import { createHash } from "node:crypto";

/**
 * Deterministic pseudo-random bytes (xorshift32). `onChunk` runs before each pull, so a memory
 * probe can sample while the bytes move.
 */
export function seededStream(
  seed: number,
  size: number,
  { chunkSize = 64 * 1024, onChunk = () => {} }: { chunkSize?: number; onChunk?: () => void } = {},
): ReadableStream<Uint8Array> {
  let state = seed >>> 0 || 1;
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      onChunk();
      if (sent >= size) return controller.close();
      const n = Math.min(chunkSize, size - sent);
      const words = new Uint32Array(Math.ceil(n / 4));
      for (let i = 0; i < words.length; i++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        words[i] = state >>> 0;
      }
      controller.enqueue(new Uint8Array(words.buffer, 0, n));
      sent += n;
    },
  });
}

/** Reads a whole (small) stream into memory. */
export async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** SHA-256 hex of bytes. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
