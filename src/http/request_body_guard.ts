/**
 * Stops `Deno.serve` from reading the rest of a request body Portal has refused, while a small
 * unread rest still keeps the connection alive.
 *
 * Deno 2.9's HTTP/1.1 server drains a request body that is cancelled, or never read, by the
 * time the answer is written, whatever its size and despite `Connection: close`: a 413 for a
 * declared 1.5 GiB upload still takes in the 1.5 GiB (chunked bodies are drained the same
 * way). It drops the connection instead when the body is still held by a reader as the answer
 * goes out and is cancelled only after that (measured with raw sockets; the 413 tests in
 * tests/uploads_api_test.ts and tests/upload_connection_test.ts keep it true).
 *
 * So the server hands the app a pass-through body and keeps the real one. Once the app is done
 * with it (it answered, or cancelled its stream) the guard does a lingering close, like
 * nginx's: it reads and discards what is left itself, at most DRAIN_BYTES within
 * DRAIN_DEADLINE_MS. A body that ends within that budget is read to its end, so Deno keeps the
 * connection alive (a multipart epilogue, the last chunk of a chunked body, a small body a 401
 * left unread). Otherwise it stops reading, so TCP flow control stops the client, and cancels
 * the held body SEND_GRACE_MS after the answer has been sent: Deno then drops the connection.
 * A declared Content-Length that already says more than DRAIN_BYTES are left skips the reading.
 *
 * Deno cannot abort a read of the body in progress (its body resource has no cancel), and the
 * cancel takes effect only when that read returns. So a client that stops sending altogether
 * during the drain keeps its connection until it sends again or closes; a slow client is
 * dropped at the deadline.
 *
 * A body that sends nothing for `idleTimeoutMs` fails the app's read with a `TimeoutError`
 * (a DOMException, so src/uploads can tell it without importing this module): the upload is
 * refused and cleaned up, the answer (408) is written, and the socket itself is left to the
 * client or the proxy in front (docs/security.md), for the reason above. Bodies the guard does
 * not hold get the same watch from `watchIdleBody`.
 */

/** The error a stalled body fails with. */
export function bodyIdleError(idleTimeoutMs: number): DOMException {
  return new DOMException(
    `the request body sent nothing for ${Math.round(idleTimeoutMs / 1000)} s`,
    "TimeoutError",
  );
}

/** `read`, or a rejection with `bodyIdleError` once it has taken `idleTimeoutMs`. */
function withinIdle<T>(read: Promise<T>, idleTimeoutMs: number): Promise<T> {
  if (!Number.isFinite(idleTimeoutMs)) return read;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(bodyIdleError(idleTimeoutMs)), idleTimeoutMs);
  });
  return Promise.race([read, idle]).finally(() => clearTimeout(timer));
}

/**
 * What the server reads of a body the app left, to keep its connection: cheaper than a new
 * connection (TCP and TLS handshakes), and at most a few milliseconds on a LAN (0.8 s at
 * 10 Mbit/s). Declared bodies this small are left to Deno, which reads no more than this either.
 */
export const DRAIN_BYTES = 1024 * 1024;
// A client too slow to send DRAIN_BYTES in this long loses its connection rather than holding
// it (nginx's lingering_time plays the same part, 30 s there, with no byte budget).
const DRAIN_DEADLINE_MS = 1_000;
// Between the answer being sent and the cancel that closes the socket. The close resets the
// connection (unread bytes are pending), and a reset makes the client's kernel discard what
// its application has not read yet, the answer included; `info.completed` only says the answer
// reached our kernel. So the answer gets time to cross the link and be read: a few round trips
// on a slow or distant link (satellite RTTs are ~600 ms), plus delayed ACKs. Nothing is read
// meanwhile, so the client is held by flow control and the wait costs no bytes, only an idle
// socket. 50 ms (the first choice) is less than one round trip on many WAN links.
const SEND_GRACE_MS = 1_000;

/** A request whose body the server holds (see the module comment). */
export interface GuardedRequest {
  /** What the app reads: the same URL, method and headers, and a pass-through body. */
  request: Request;
  /**
   * Call once the handler has answered, with `info.completed`: reads the rest of the body (at
   * most DRAIN_BYTES, briefly) or, when it does not end within that, cancels the held body
   * SEND_GRACE_MS after the answer has been sent. Resolves when the body has been released.
   */
  answered(completed: Promise<void>): Promise<void>;
  /** Cancels the held body now (server shutdown). */
  release(): void;
}

/**
 * Holds the body of `request`, or returns null when there is nothing to hold: no body, a
 * declared Content-Length of at most DRAIN_BYTES, a GET or HEAD, or a method the Fetch
 * `Request` constructor refuses (TRACE, TRACK). Never throws.
 *
 * @example
 * const guarded = guardRequestBody(request);
 * const response = await handler(guarded?.request ?? request, info);
 * guarded?.answered(info.completed);
 */
export function guardRequestBody(
  request: Request,
  options: { idleTimeoutMs?: number } = {},
): GuardedRequest | null {
  const idleTimeoutMs = options.idleTimeoutMs ?? Infinity;
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
  let stalled = false; // a read outlived the idle timeout: it may never return
  let abandoned = false; // the app is done with its stream: the guard reads the rest
  let pulling: Promise<unknown> = Promise.resolve(); // the app's read in flight
  let controller: ReadableByteStreamController | undefined;
  let draining: Promise<boolean> | null = null;
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

  // Reads what the app left; true when the body ended within DRAIN_BYTES and the deadline.
  const drainRest = async (): Promise<boolean> => {
    abandoned = true;
    // A stream the app still has open fails its next read instead of racing the guard's.
    controller?.error(new TypeError("Cannot read the request body: the answer has been given"));
    if (stalled) return false;
    await pulling;
    if (ended) return true;
    if (declared !== null && declared - received > DRAIN_BYTES) return false;
    let expire = () => {};
    const deadline = setTimeout(() => expire(), DRAIN_DEADLINE_MS);
    const expired = new Promise<null>((resolve) => (expire = () => resolve(null)));
    try {
      let buffer = new Uint8Array(64 * 1024);
      let drained = 0;
      while (!ended) {
        const read = reader.read(buffer);
        read.catch(() => {}); // left pending past the deadline, it may fail unawaited
        const result = await Promise.race([read, expired]);
        if (result === null) return false;
        if (result.done) return (ended = true);
        drained += result.value.byteLength;
        if (drained > DRAIN_BYTES) return false;
        buffer = new Uint8Array(result.value.buffer);
      }
      return true; // released meanwhile (server shutdown)
    } catch {
      return (ended = true); // the client went away or sent a broken body
    } finally {
      clearTimeout(deadline);
    }
  };
  const drain = () => (draining ??= drainRest());

  const source: UnderlyingByteSource = {
    type: "bytes",
    autoAllocateChunkSize: 64 * 1024,
    start(c) {
      controller = c;
    },
    async pull(c) {
      const pullInto = c.byobRequest!;
      const view = pullInto.view as Uint8Array<ArrayBuffer>;
      let result;
      try {
        // The view's memory goes to the socket read and comes back in `value`: no copy.
        const read = reader.read(view);
        pulling = read.catch(() => {});
        result = await withinIdle(read, idleTimeoutMs);
      } catch (error) {
        if (error instanceof DOMException && error.name === "TimeoutError") stalled = true;
        else ended = true; // the client went away or sent a broken body
        throw error;
      }
      if (result.done) ended = true;
      else received += result.value.byteLength;
      if (abandoned) return;
      if (result.done) c.close();
      pullInto.respondWithNewView(result.value!);
    },
    cancel() {
      // Resolves at once: the app must not wait for the answer it has yet to give.
      abandoned = true;
      drain();
    },
  };

  let copy: Request;
  try {
    // Not `new Request(request, …)`: following the served request's signal makes Deno warn
    // about its legacy abort-on-success behaviour, and Portal does not use the signal.
    copy = new Request(request.url, {
      method: request.method,
      headers: request.headers,
      body: new ReadableStream(source),
      duplex: "half",
    } as RequestInit);
  } catch {
    // A method the constructor refuses (Fetch §4.5 forbidden methods: TRACE, TRACK): the app
    // gets the request as served and Deno drains its body, as it would without the guard.
    reader.releaseLock();
    return null;
  }

  return {
    request: copy,
    answered(completed) {
      const sentAt = completed.catch(() => {}).then(() => Date.now());
      drain().then(async (clean) => {
        if (clean || ended) return release();
        const wait = (await sentAt) + SEND_GRACE_MS - Date.now();
        if (!ended) timer = setTimeout(release, Math.max(0, wait));
      });
      return released;
    },
    release,
  };
}

/**
 * `request` with its body watched for `idleTimeoutMs` of silence (see the module comment), for
 * a body the guard does not hold. The body is taken only when the app first reads it, so one
 * the app leaves unread is still Deno's to drain, as before. Null when there is no body.
 */
export function watchIdleBody(request: Request, idleTimeoutMs: number): Request | null {
  if (request.body === null || request.method === "GET" || request.method === "HEAD") return null;
  if (!Number.isFinite(idleTimeoutMs)) return null;
  const body = request.body;
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  const watched = new ReadableStream<Uint8Array>({
    async pull(controller) {
      reader ??= body.getReader();
      const result = await withinIdle(reader.read(), idleTimeoutMs);
      if (result.done) controller.close();
      else controller.enqueue(result.value);
    },
    cancel(reason) {
      return (reader ?? body).cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
  try {
    return new Request(request.url, {
      method: request.method,
      headers: request.headers,
      body: watched,
      duplex: "half",
    } as RequestInit);
  } catch {
    return null; // TRACE and TRACK: see guardRequestBody
  }
}

/** The declared Content-Length, or null when the body is chunked or the header unusable. */
function declaredLength(request: Request): number | null {
  const value = request.headers.get("content-length");
  return value !== null && /^\d{1,16}$/.test(value) ? Number(value) : null;
}
