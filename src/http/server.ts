/**
 * Runs a fetch handler on `Deno.serve` and shuts it down gracefully: let in-flight requests
 * finish for at most `timeoutMs`, then stop accepting and close what is left.
 *
 * Deno 2.9's `HttpServer.shutdown()` makes every in-flight request body unreadable at once
 * (BadResource, denoland/deno#36809), which would turn an upload caught by SIGTERM into a
 * 500. So shutdown drains first: requests already running finish with their bodies intact,
 * requests arriving meanwhile get a 503 with `Connection: close` (a load balancer retries them
 * elsewhere), and only when nothing is in flight is `Deno.serve` shut down, which closes the
 * listener so new connections are refused.
 *
 * A request body the app leaves unread is settled by request_body_guard.ts: a small rest is
 * read and discarded so the connection stays alive, a large one (an upload refused at the size
 * limit) is cancelled once the answer has been sent, so Deno drops the connection instead of
 * reading the rest.
 */
import { type GuardedRequest, guardRequestBody, watchIdleBody } from "./request_body_guard.ts";

/** A running server. */
export interface RunningServer {
  /** The port actually bound (useful with port 0). */
  port: number;
  hostname: string;
  /** Drains in-flight requests (at most `timeoutMs`), then stops accepting and closes. */
  shutdown(timeoutMs: number): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

export type Handler = (
  request: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

/** The answer to a request that arrives while the server drains. */
function shuttingDown(): Response {
  return new Response(
    JSON.stringify({
      error: { code: "shutting_down", message: "Server is shutting down: retry the request" },
    }),
    {
      status: 503,
      headers: { "content-type": "application/json", "connection": "close", "retry-after": "1" },
    },
  );
}

/** Starts serving `handler` on `hostname:port`. */
export function startServer(
  handler: Handler,
  options: {
    hostname: string;
    port: number;
    onError?: (error: unknown) => void;
    /** A request body silent this long fails its reader (PORTAL_BODY_IDLE_TIMEOUT_SECONDS). */
    bodyIdleTimeoutMs?: number;
  },
): Promise<RunningServer> {
  const idleTimeoutMs = options.bodyIdleTimeoutMs ?? Infinity;
  let inFlight = 0;
  let draining = false;
  let onIdle: (() => void) | null = null;

  // Request bodies held until their answer has been sent (see request_body_guard.ts).
  const held = new Set<GuardedRequest>();

  const tracked: Handler = async (request, info) => {
    // Before the try, whose finally settles the body. It never throws: a request it cannot
    // copy (a TRACE) is passed on as served.
    const guarded = guardRequestBody(request, { idleTimeoutMs });
    try {
      if (draining) return shuttingDown();
      inFlight++;
      try {
        const served = guarded?.request ?? watchIdleBody(request, idleTimeoutMs) ?? request;
        return await handler(served, info);
      } finally {
        inFlight--;
        if (inFlight === 0) onIdle?.();
      }
    } finally {
      if (guarded !== null) {
        held.add(guarded);
        guarded.answered(info.completed).then(() => held.delete(guarded));
      }
    }
  };

  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname: options.hostname,
        port: options.port,
        onListen: (addr) => {
          resolve({
            port: addr.port,
            hostname: addr.hostname,
            get finished() {
              return server.finished;
            },
            async shutdown(timeoutMs: number) {
              let timer: ReturnType<typeof setTimeout> | undefined;
              const expired = new Promise<void>((done) => {
                timer = setTimeout(done, timeoutMs);
              });
              try {
                draining = true;
                if (inFlight > 0) {
                  await Promise.race([
                    new Promise<void>((done) => (onIdle = done)),
                    expired,
                  ]);
                }
                for (const guarded of held) guarded.release();
                await Promise.race([server.shutdown(), expired]);
              } finally {
                clearTimeout(timer);
              }
            },
          });
        },
        onError: (error) => {
          options.onError?.(error);
          return new Response(
            JSON.stringify({ error: { code: "internal", message: "Internal error" } }),
            {
              status: 500,
              headers: { "content-type": "application/json" },
            },
          );
        },
      }, tracked);
    } catch (error) {
      reject(error);
    }
  });
}
