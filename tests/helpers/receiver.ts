/**
 * A webhook receiver for tests: `Deno.serve` on 127.0.0.1 with a free port, recording every
 * request (headers, exact body, arrival time) and answering with a scripted response.
 */

/** One request as the receiver saw it. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Headers;
  /** The body exactly as sent (what the signatures cover). */
  body: string;
  /** Arrival time, `performance.timeOrigin + performance.now()` in milliseconds. */
  receivedAt: number;
}

/** Helpers a responder can use. */
export interface RespondContext {
  /** The 0-based number of this request. */
  index: number;
  /** Never answers until the receiver closes (then 503): a receiver that hangs. */
  hang(): Promise<Response>;
}

/** Decides the answer to a request (default: 200 "ok"). */
export type Responder = (
  request: ReceivedRequest,
  ctx: RespondContext,
) => Response | Promise<Response>;

/** A running receiver. */
export interface Receiver {
  /** `http://127.0.0.1:<port>/hook`. */
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Replaces the responder. */
  respond(responder: Responder): void;
  /** Resolves when at least `count` requests have arrived; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  /** Releases hanging requests and stops the server. */
  close(): Promise<void>;
}

/**
 * Starts a receiver.
 *
 * @example
 * const receiver = startReceiver((_req, { index }) =>
 *   new Response(index === 0 ? "busy" : "ok", { status: index === 0 ? 503 : 200 }));
 */
export function startReceiver(responder?: Responder): Receiver {
  let current: Responder = responder ?? (() => new Response("ok"));
  const requests: ReceivedRequest[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const hanging: (() => void)[] = [];
  const abort = new AbortController();
  let closed = false;

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: abort.signal,
    onListen: () => {},
  }, async (req) => {
    const received: ReceivedRequest = {
      method: req.method,
      path: new URL(req.url).pathname,
      headers: req.headers,
      body: await req.text(),
      receivedAt: performance.timeOrigin + performance.now(),
    };
    const index = requests.push(received) - 1;
    for (const waiter of waiters.filter((w) => requests.length >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    return await current(received, {
      index,
      hang: () =>
        closed
          ? Promise.resolve(new Response("closing", { status: 503 }))
          : new Promise((resolve) =>
            hanging.push(() => resolve(new Response("closing", { status: 503 })))
          ),
    });
  });
  const port = server.addr.port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    requests,
    respond(next) {
      current = next;
    },
    waitFor(count, timeoutMs = 10_000) {
      if (requests.length >= count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(
            new Error(`expected ${count} requests within ${timeoutMs} ms, got ${requests.length}`),
          );
        }, timeoutMs);
        const waiter = {
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        waiters.push(waiter);
      });
    },
    async close() {
      closed = true;
      for (const release of hanging.splice(0)) release();
      abort.abort();
      await server.finished;
    },
  };
}
