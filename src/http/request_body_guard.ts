/**
 * Stops `Deno.serve` from reading the rest of a request body Portal has refused.
 *
 * Deno 2.9's HTTP/1.1 server drains a request body that is cancelled, or never read, by the
 * time the answer is written, whatever its size and despite `Connection: close`: a 413 for a
 * declared 1.5 GiB upload still takes in the 1.5 GiB (chunked bodies are drained the same
 * way). It drops the connection instead when the body is still held by a reader as the answer
 * goes out and is cancelled only after that (measured with raw sockets; the 413 tests in
 * tests/uploads_api_test.ts and tests/upload_connection_test.ts keep it true).
 *
 * So the server hands the app a pass-through body and keeps the real one. A cancel from the
 * app, or a body left unread, is settled once the answer has been sent, by cancelling the
 * held body: Deno then closes the connection. Meanwhile nothing reads the socket, so TCP flow
 * control stops the client. A remainder of at most DRAIN_BYTES is left to Deno to drain, so a
 * small unread body or a multipart epilogue keeps the connection alive; a body read to its
 * end is not touched.
 */

/** Declared bytes Deno may drain after the answer: cheaper than a new connection. */
export const DRAIN_BYTES = 64 * 1024;
// Between the answer being sent and the cancel that closes the socket: the close resets the
// connection (unread bytes are pending), and a reset discards what the kernel has not yet
// transmitted, so the answer gets a moment to leave. Nothing is read meanwhile.
const SEND_GRACE_MS = 50;

/** A request whose body the server holds (see the module comment). */
export interface GuardedRequest {
  /** What the app reads: the same URL, method and headers, and a pass-through body. */
  request: Request;
  /**
   * Call once the handler has answered, with `info.completed`: cancels the held body right
   * away when at most DRAIN_BYTES are left, else once the answer has been sent. Resolves when
   * the body has been released.
   */
  answered(completed: Promise<void>): Promise<void>;
  /** Cancels the held body now (server shutdown). */
  release(): void;
}

/**
 * Holds the body of `request`, or returns null when there is nothing to hold: no body, a
 * declared Content-Length of at most DRAIN_BYTES, or a GET or HEAD.
 *
 * @example
 * const guarded = guardRequestBody(request);
 * const response = await handler(guarded?.request ?? request, info);
 * guarded?.answered(info.completed);
 */
export function guardRequestBody(request: Request): GuardedRequest | null {
  const declared = declaredLength(request);
  if (request.body === null || (declared !== null && declared <= DRAIN_BYTES)) return null;
  // A Request with these methods cannot be given a body; Portal reads none for them anyway.
  if (request.method === "GET" || request.method === "HEAD") return null;
  let reader: ReadableStreamBYOBReader;
  try {
    reader = request.body.getReader({ mode: "byob" });
  } catch {
    return null; // not a byte stream: not a Deno.serve request body
  }

  let received = 0;
  let ended = false; // read to its end, failed, or cancelled: nothing left to settle
  let abandoned = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onReleased = () => {};
  const released = new Promise<void>((resolve) => (onReleased = resolve));
  const release = () => {
    clearTimeout(timer);
    if (!ended) {
      ended = true;
      // Not awaited: it settles when Deno has dropped (or drained) the rest.
      reader.cancel().catch(() => {});
    }
    onReleased();
  };
  const fewLeft = () => declared !== null && declared - received <= DRAIN_BYTES;

  const source: UnderlyingByteSource = {
    type: "bytes",
    autoAllocateChunkSize: 64 * 1024,
    async pull(controller) {
      const pullInto = controller.byobRequest!;
      const view = pullInto.view as Uint8Array<ArrayBuffer>;
      let result;
      try {
        // The view's memory goes to the socket read and comes back in `value`: no copy.
        result = await reader.read(view);
      } catch (error) {
        ended = true; // the client went away or sent a broken body
        throw error;
      }
      if (abandoned) return;
      if (result.done) {
        ended = true;
        controller.close();
      } else {
        received += result.value.byteLength;
      }
      pullInto.respondWithNewView(result.value!);
    },
    cancel() {
      // Resolves at once: the app must not wait for the answer it has yet to give.
      abandoned = true;
      if (fewLeft()) release();
    },
  };
  const body = new ReadableStream(source);

  return {
    // Not `new Request(request, …)`: following the served request's signal makes Deno warn
    // about its legacy abort-on-success behaviour, and Portal does not use the signal.
    request: new Request(request.url, {
      method: request.method,
      headers: request.headers,
      body,
      duplex: "half",
    } as RequestInit),
    answered(completed) {
      if (ended || fewLeft()) {
        release();
      } else {
        completed.catch(() => {}).then(() => {
          if (!ended) timer = setTimeout(release, SEND_GRACE_MS);
        });
      }
      return released;
    },
    release,
  };
}

/** The declared Content-Length, or null when the body is chunked or the header unusable. */
function declaredLength(request: Request): number | null {
  const value = request.headers.get("content-length");
  return value !== null && /^\d{1,16}$/.test(value) ? Number(value) : null;
}
