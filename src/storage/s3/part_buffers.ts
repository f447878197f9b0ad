/**
 * The part buffers of S3 uploads, kept for reuse: one upload's worth (partsInFlight + 1).
 * Buffers dropped after each upload would wait for a major GC, and the next upload would
 * allocate new ones meanwhile: peak RSS grew by the pool's size per upload until V8 collected
 * them (measured).
 */
export class PartBuffers {
  #free: Uint8Array<ArrayBuffer>[] = [];

  constructor(readonly partSize: number, readonly partsInFlight: number) {}

  /** A part buffer from the pool, or a new one. */
  take(): Uint8Array<ArrayBuffer> {
    return this.#free.pop() ?? new Uint8Array(this.partSize);
  }

  /** Gives a buffer back once its part was sent (or dropped). */
  giveBack(buffer: Uint8Array<ArrayBuffer>): void {
    if (this.#free.length <= this.partsInFlight) this.#free.push(buffer);
  }
}
