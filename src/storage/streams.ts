/** Stream helpers the adapters share: abortable chunk reading and byte-range slicing. */
import { StorageError } from "./storage.ts";

/** The error a write rejects with when its signal fires. */
export function abortedError(action: string, signal: AbortSignal): StorageError {
  return new StorageError("aborted", `Cannot ${action}: the write was aborted`, {
    cause: signal.reason,
  });
}

/**
 * Reads `body` chunk by chunk. When `signal` fires, a pending read is abandoned and the
 * generator throws `onAbort()`; when the consumer stops early, the source is cancelled so its
 * producer stops too. Errors of the source stream pass through unchanged.
 */
export async function* readChunks(
  body: ReadableStream<Uint8Array>,
  options: { signal?: AbortSignal; onAbort: () => Error },
): AsyncGenerator<Uint8Array, void, undefined> {
  const { signal, onAbort } = options;
  const reader = body.getReader();
  let removeListener = () => {};
  const aborted = signal === undefined ? null : new Promise<never>((_, reject) => {
    const listener = () => reject(onAbort());
    signal.addEventListener("abort", listener, { once: true });
    removeListener = () => signal.removeEventListener("abort", listener);
  });
  aborted?.catch(() => {});
  let finished = false;
  try {
    while (true) {
      if (signal?.aborted) throw onAbort();
      const result = aborted === null
        ? await reader.read()
        : await Promise.race([reader.read(), aborted]);
      if (result.done) {
        finished = true;
        return;
      }
      yield result.value;
    }
  } finally {
    removeListener();
    // Not awaited: a source stuck in pull() must not hold up the caller's cleanup, and
    // cancelling an errored stream rejects while the original error is already on its way up.
    if (!finished) reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * Skips `skip` bytes of `source`, then passes `length` bytes and cancels the rest, pulling
 * only as fast as the consumer reads.
 */
export function sliceStream(
  source: ReadableStream<Uint8Array>,
  skip: number,
  length: number,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let toSkip = skip;
  let remaining = length;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      while (true) {
        if (remaining <= 0) {
          controller.close();
          await reader.cancel().catch(() => {});
          return;
        }
        const { done, value } = await reader.read();
        if (done) {
          controller.error(
            new StorageError("io", `Cannot read stream: it ended ${remaining} bytes early`),
          );
          return;
        }
        let chunk = value;
        if (toSkip > 0) {
          const dropped = Math.min(toSkip, chunk.byteLength);
          toSkip -= dropped;
          chunk = chunk.subarray(dropped);
        }
        if (chunk.byteLength === 0) continue;
        if (chunk.byteLength > remaining) chunk = chunk.subarray(0, remaining);
        remaining -= chunk.byteLength;
        controller.enqueue(chunk);
        return;
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
