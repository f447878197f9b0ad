/**
 * The webhook receiver of bench/delivery.ts, run as its own process so its work does not share
 * an event loop with the bench. POST anything: counted by `webhook-id` and path, and when the
 * payload carries `committed_at` (epoch ms) the commit-to-arrival latency is kept; when it carries
 * a `file_id` (a real `file.stored` event) its arrival time is kept for GET /arrivals.
 * GET /stats returns the figures; POST /reset clears them. Prints `{"port":N}` when listening.
 */

let count = 0;
let ids = new Set<string>();
let latencies: number[] = [];
let arrivals = new Map<string, number>();
let first = 0;
let last = 0;
const perPath = new Map<string, number>();

function now(): number {
  return performance.timeOrigin + performance.now();
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(JSON.stringify({ port })),
}, async (req) => {
  const url = new URL(req.url);
  if (req.method === "GET" && url.pathname === "/stats") {
    const sorted = [...latencies].sort((a, b) => a - b);
    return Response.json({
      count,
      unique: ids.size,
      first,
      last,
      perPath: Object.fromEntries(perPath),
      latency: {
        n: sorted.length,
        p50: percentile(sorted, 50),
        p90: percentile(sorted, 90),
        p99: percentile(sorted, 99),
        max: sorted.at(-1) ?? null,
      },
    });
  }
  if (req.method === "GET" && url.pathname === "/arrivals") {
    return Response.json(Object.fromEntries(arrivals));
  }
  if (req.method === "POST" && url.pathname === "/reset") {
    count = 0;
    ids = new Set();
    latencies = [];
    arrivals = new Map();
    first = last = 0;
    perPath.clear();
    return new Response("reset");
  }
  const body = await req.text();
  const at = now();
  count++;
  if (first === 0) first = at;
  last = at;
  perPath.set(url.pathname, (perPath.get(url.pathname) ?? 0) + 1);
  const id = req.headers.get("webhook-id");
  if (id) ids.add(id);
  const data = (JSON.parse(body) as { data?: { committed_at?: number; file_id?: string } }).data;
  if (typeof data?.committed_at === "number") latencies.push(at - data.committed_at);
  if (typeof data?.file_id === "string" && !arrivals.has(data.file_id)) {
    arrivals.set(data.file_id, at);
  }
  return new Response("ok");
});

Deno.addSignalListener("SIGTERM", () => server.shutdown());
await server.finished;
