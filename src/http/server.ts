/**
 * Runs a fetch handler on `Deno.serve` and shuts it down gracefully: stop accepting, let
 * in-flight requests finish for at most `timeoutMs`, then close what is left.
 */

/** A running server. */
export interface RunningServer {
  /** The port actually bound (useful with port 0). */
  port: number;
  hostname: string;
  /** Stops accepting and waits for in-flight requests, at most `timeoutMs`. */
  shutdown(timeoutMs: number): Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
}

/** Starts serving `handler` on `hostname:port`. */
export function startServer(
  handler: (
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ) => Response | Promise<Response>,
  options: { hostname: string; port: number; onError?: (error: unknown) => void },
): Promise<RunningServer> {
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
              const controller = new AbortController();
              const timer = setTimeout(() => controller.abort(), timeoutMs);
              try {
                await Promise.race([
                  server.shutdown(),
                  new Promise<void>((done) =>
                    controller.signal.addEventListener("abort", () => done())
                  ),
                ]);
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
      }, handler);
    } catch (error) {
      reject(error);
    }
  });
}
