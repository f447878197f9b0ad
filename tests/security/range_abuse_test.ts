/**
 * Security review probe: `Range` header abuse on `/files/:id/download` of a local file, over
 * real loopback HTTP. A thousand ranges, overlapping and reversed ones, a suffix longer than
 * the file, numbers past 2^53, negative and garbage values, odd whitespace and stale `If-Range`
 * validators each get one of three answers: 200 with the whole file, 206 with exactly the one
 * range asked for and its `Content-Range`, or 416 whose `Content-Range` gives only the size
 * (RFC 9110 §14.4: an asterisk, a slash, the length); never a 500, no error in the log, and the
 * server keeps serving afterwards.
 */
import assert from "node:assert/strict";
import { captureLogger, startTestServer } from "../helpers/app.ts";
import { createTestUser, createUploadFixture, pdfBytes } from "../helpers/uploads.ts";

const SIZE = 1000;
const CONTENT = pdfBytes(SIZE, 11);

/** What a Range request must be answered with. */
type Outcome = "full" | "unsatisfiable" | readonly [start: number, end: number];

/** One probe: its headers and every answer it may get (RFC 9110 §14 leaves some choices). */
interface RangeProbe {
  what: string;
  headers: Record<string, string>;
  allowed: Outcome[];
}

const FULL: Outcome[] = ["full"];

/** A thousand one-byte ranges, `bytes=0-0,2-2,...,1998-1998`. */
const THOUSAND_RANGES = `bytes=${
  Array.from({ length: 1000 }, (_, i) => `${2 * i}-${2 * i}`).join(",")
}`;

function probes(etag: string): RangeProbe[] {
  const range = (value: string, allowed: Outcome[]): RangeProbe => ({
    what: `Range: ${value.length > 60 ? `${value.slice(0, 60)}… (${value.length} chars)` : value}`,
    headers: { range: value },
    allowed,
  });
  return [
    // Control: plain single ranges are served exactly.
    range("bytes=0-9", [[0, 9]]),
    range("bytes=990-", [[990, 999]]),
    range("bytes=-10", [[990, 999]]),
    // Several ranges: Portal serves one range only and ignores the rest (§14.2 allows it).
    range(THOUSAND_RANGES, FULL),
    range("bytes=0-10,5-15", FULL),
    range("bytes=0-999,0-999,0-999,0-999", FULL),
    range("bytes=0-0, 2-2", FULL),
    // Invalid or unusual single ranges.
    range("bytes=5-1", FULL),
    range("bytes=-5000", [[0, 999]]),
    range("bytes=0-99999999999999999999", ["full", [0, 999]]),
    range("bytes=99999999999999999999-", ["full", "unsatisfiable"]),
    range("bytes=-99999999999999999999", ["full", [0, 999]]),
    range("bytes=9007199254740993-9007199254740994", ["full", "unsatisfiable"]),
    range("bytes=999-1000000", [[999, 999]]),
    range("bytes=1000-", ["unsatisfiable"]),
    range("bytes=1000-2000", ["unsatisfiable"]),
    range("bytes=-0", ["unsatisfiable", "full"]),
    range("bytes=-5-10", FULL),
    range("bytes=--5", FULL),
    range("bytes=0--5", FULL),
    range("bytes=-", FULL),
    range("bytes=", FULL),
    range("bytes=1.5-3", FULL),
    range("bytes=0x10-0x20", FULL),
    range("bytes=1e2-2e2", FULL),
    range("bytes=abc", FULL),
    range("bytes=0-5;q=1", FULL),
    // Other units and malformed specifiers.
    range("items=0-5", FULL),
    range("bits=0-5", FULL),
    range("bytes 0-5", FULL),
    range("=0-5", FULL),
    range("0-5", FULL),
    range("", FULL),
    range("bytes=bytes=0-5", FULL),
    // Whitespace: optional whitespace (§5.6.3) is trimmed; a server may read or ignore the rest.
    range("  bytes=0-5  ", [[0, 5]]),
    range("bytes = 0 - 5", [[0, 5], "full"]),
    range("bytes=\t0-5", [[0, 5], "full"]),
    range("BYTES=0-5", [[0, 5], "full"]),
    // If-Range (§13.1.5): only the current strong ETag lets the range through.
    {
      what: "If-Range: another ETag",
      headers: { range: "bytes=0-9", "if-range": '"0000"' },
      allowed: FULL,
    },
    {
      what: "If-Range: the weak form of the ETag",
      headers: { range: "bytes=0-9", "if-range": `W/${etag}` },
      allowed: FULL,
    },
    {
      what: "If-Range: an HTTP date",
      headers: { range: "bytes=0-9", "if-range": "Tue, 01 Jan 2030 00:00:00 GMT" },
      allowed: FULL,
    },
    {
      what: "If-Range: the ETag without quotes",
      headers: { range: "bytes=0-9", "if-range": etag.slice(1, -1) },
      allowed: FULL,
    },
    {
      what: "If-Range: garbage",
      headers: { range: "bytes=0-9", "if-range": "\u00ff\u00fe" },
      allowed: FULL,
    },
    {
      what: "If-Range: the current ETag",
      headers: { range: "bytes=0-9", "if-range": etag },
      allowed: [[0, 9]],
    },
  ];
}

/** Describes what came back, checking it is one of the three well-formed answers. */
async function outcomeOf(response: Response, method: string): Promise<Outcome | string> {
  const body = new Uint8Array(await response.arrayBuffer());
  const length = response.headers.get("content-length");
  const contentRange = response.headers.get("content-range");
  if (response.status === 200) {
    if (contentRange !== null) return `200 with Content-Range ${contentRange}`;
    if (length !== String(SIZE)) return `200 with Content-Length ${length}`;
    if (method === "GET" && !sameBytes(body, CONTENT)) return "200 with other bytes";
    return "full";
  }
  if (response.status === 206) {
    const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(contentRange ?? "");
    if (!match) return `206 with Content-Range ${contentRange}`;
    const [start, end, total] = [Number(match[1]), Number(match[2]), Number(match[3])];
    if (total !== SIZE || start > end || end >= SIZE) {
      return `206 with Content-Range ${contentRange}`;
    }
    if (length !== String(end - start + 1)) return `206 with Content-Length ${length}`;
    if (method === "GET" && !sameBytes(body, CONTENT.subarray(start, end + 1))) {
      return `206 ${contentRange} with other bytes`;
    }
    return [start, end];
  }
  if (response.status === 416) {
    if (contentRange !== `bytes */${SIZE}`) return `416 with Content-Range ${contentRange}`;
    return "unsatisfiable";
  }
  return `${response.status} ${new TextDecoder().decode(body).slice(0, 200)}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
}

function show(outcome: Outcome | string): string {
  return Array.isArray(outcome) ? `206 bytes ${outcome[0]}-${outcome[1]}` : String(outcome);
}

Deno.test("Range abuse on a local download answers 200, an exact 206 or 416 bytes */size, never 500, and the server keeps serving", async () => {
  const fx = await createUploadFixture("sec_range_abuse");
  const { logger, lines } = captureLogger();
  const server = await startTestServer({ ...fx.deps, logger });
  try {
    const ada = await createTestUser(fx.db, "ada@example.test");
    const stored = await fetch(`${server.url}/api/v1/files?filename=report.pdf`, {
      method: "POST",
      headers: ada.auth,
      body: CONTENT,
    });
    assert.equal(stored.status, 201, await stored.clone().text());
    const { id } = await stored.json() as { id: string };
    const url = `${server.url}/files/${id}/download`;
    const plain = await fetch(url, { headers: ada.auth });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get("accept-ranges"), "bytes");
    const etag = plain.headers.get("etag") ?? "";
    assert.match(etag, /^"[0-9a-f]{64}"$/);
    assert.ok(sameBytes(new Uint8Array(await plain.arrayBuffer()), CONTENT));

    const wrong: string[] = [];
    for (const probe of probes(etag)) {
      for (const method of ["GET", "HEAD"]) {
        const response = await fetch(url, { method, headers: { ...ada.auth, ...probe.headers } });
        const got = await outcomeOf(response, method);
        const ok = probe.allowed.some((allowed) => show(allowed) === show(got));
        if (!ok) {
          wrong.push(
            `${method} ${probe.what}: got ${show(got)}, expected ${
              probe.allowed.map(show).join(" or ")
            }`,
          );
        }
      }
    }
    assert.equal(wrong.length, 0, `Range answers out of bounds:\n${wrong.join("\n")}`);

    // The same abuse in parallel, then ordinary requests: the server still serves correctly.
    const burst = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const response = await fetch(url, {
          headers: {
            ...ada.auth,
            range: i % 2 === 0 ? THOUSAND_RANGES : "bytes=0-99999999999999999999",
          },
        });
        return show(await outcomeOf(response, "GET"));
      }),
    );
    assert.ok(burst.every((got) => got === "full" || got === "206 bytes 0-999"), burst.join(", "));
    const after = await fetch(url, { headers: { ...ada.auth, range: "bytes=100-199" } });
    assert.equal(show(await outcomeOf(after, "GET")), "206 bytes 100-199");
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    assert.deepEqual(
      lines.filter((line) => JSON.parse(line).level === "error"),
      [],
      "no request failed with an internal error",
    );
  } finally {
    await server.stop();
    await fx.close();
  }
});
