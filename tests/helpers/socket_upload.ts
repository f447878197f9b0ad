/**
 * A raw-socket upload client that keeps sending after the answer, like a client that does not
 * look at answers mid-upload: it shows whether the server stops reading and drops the
 * connection, which `fetch` cannot.
 */

/** What the client saw. */
export interface SocketUpload {
  /** Body bytes written when the answer's first byte arrived; -1 when none arrived. */
  sentBeforeResponse: number;
  /** Body bytes written in all (the kernel's socket buffers included). */
  sent: number;
  /** Everything the server sent, as text. */
  response: string;
  /** The server closed or reset the connection (false: the client stopped, or gave up). */
  closed: boolean;
}

/** Options of `uploadOverSocket`. */
export interface SocketUploadOptions {
  /** Body bytes to send at most. */
  total: number;
  /** The body's first bytes (default: none); zeros follow. */
  first?: Uint8Array;
  /** Frame the body as `Transfer-Encoding: chunked` (the head must say so); default false. */
  chunked?: boolean;
  /** Give up (close from the client side) after this long; default 10 s. */
  timeoutMs?: number;
}

const CHUNK = 64 * 1024;

/**
 * Writes `head` (request line and headers) to 127.0.0.1:`port`, then the body, in 64 KiB
 * chunks, until `total` bytes are sent, the server closes or resets the connection, or the
 * time is up. A server that stops reading without closing blocks the writes: that ends in the
 * timeout, with `closed` false.
 *
 * @example
 * const head = `POST /api/v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: ${n}\r\n\r\n`;
 * const result = await uploadOverSocket(server.port, head, { total: n });
 * result.closed; // true when the server dropped the connection
 */
export async function uploadOverSocket(
  port: number,
  head: string,
  options: SocketUploadOptions,
): Promise<SocketUpload> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const encoder = new TextEncoder();
  let sent = 0;
  let sentBeforeResponse = -1;
  let response = "";
  let closed = false;
  let closedByClient = false;
  let released = false;
  const closeFromClient = () => {
    if (released) return;
    released = true;
    if (!closed) closedByClient = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const timer = setTimeout(closeFromClient, options.timeoutMs ?? 10_000);
  const reading = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    const decoder = new TextDecoder();
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      if (sentBeforeResponse < 0) sentBeforeResponse = sent;
      response += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    if (!closedByClient) closed = true; // EOF or reset from the server
  })();
  try {
    await writeAll(conn, encoder.encode(head));
    const zeros = new Uint8Array(CHUNK);
    let first = options.first ?? new Uint8Array(0);
    while (sent < options.total && !closed) {
      const data = first.byteLength > 0
        ? first.subarray(0, CHUNK)
        : zeros.subarray(0, Math.min(CHUNK, options.total - sent));
      first = first.subarray(data.byteLength);
      if (options.chunked) {
        await writeAll(conn, encoder.encode(`${data.byteLength.toString(16)}\r\n`));
      }
      await writeAll(conn, data);
      if (options.chunked) await writeAll(conn, encoder.encode("\r\n"));
      sent += data.byteLength;
    }
    if (options.chunked && sent >= options.total) await writeAll(conn, encoder.encode("0\r\n\r\n"));
  } catch {
    if (!closedByClient) closed = true; // the server closed the connection under us
  }
  // The whole body went out: wait for the answer, and for a close if one comes.
  let settle: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([reading, new Promise((resolve) => (settle = setTimeout(resolve, 1000)))]);
  clearTimeout(settle);
  clearTimeout(timer);
  closeFromClient();
  await reading;
  return { sentBeforeResponse, sent, response, closed };
}

/** `conn.write` may write part of the buffer (a full socket buffer): write it all. */
async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) offset += await conn.write(data.subarray(offset));
}

/** One answer read off a raw connection. */
export interface RawAnswer {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * Sends `requests` one after the other on one connection, each once the previous answer has
 * been read, and returns the answers; stops early when the server closes the connection.
 * Answers must carry a Content-Length (Portal's JSON answers do).
 *
 * @example
 * const answers = await requestsOverOneConnection(server.port, [first, second]);
 * answers.length; // 2 when the connection was kept alive
 */
export async function requestsOverOneConnection(
  port: number,
  requests: Uint8Array[],
): Promise<RawAnswer[]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const answers: RawAnswer[] = [];
  let pending = new Uint8Array(0);
  const buffer = new Uint8Array(64 * 1024);
  const decoder = new TextDecoder();
  try {
    for (const request of requests) {
      try {
        await writeAll(conn, request);
      } catch {
        break; // closed by the server
      }
      let answer: RawAnswer | null = null;
      while (answer === null) {
        const text = decoder.decode(pending);
        const headEnd = text.indexOf("\r\n\r\n");
        if (headEnd >= 0) {
          const [statusLine = "", ...lines] = text.slice(0, headEnd).split("\r\n");
          const headers = new Headers(lines.map((line) => {
            const colon = line.indexOf(":");
            return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()] as [string, string];
          }));
          const length = Number(headers.get("content-length") ?? "0");
          const headBytes = new TextEncoder().encode(text.slice(0, headEnd + 4)).byteLength;
          if (pending.byteLength >= headBytes + length) {
            answer = {
              status: Number(statusLine.split(" ")[1]),
              headers,
              body: decoder.decode(pending.subarray(headBytes, headBytes + length)),
            };
            pending = pending.slice(headBytes + length);
            break;
          }
        }
        const n = await conn.read(buffer).catch(() => null);
        if (n === null) break;
        pending = new Uint8Array([...pending, ...buffer.subarray(0, n)]);
      }
      if (answer === null) break;
      answers.push(answer);
    }
  } finally {
    conn.close();
  }
  return answers;
}

/**
 * Frames `body` as `Transfer-Encoding: chunked` in chunks of `chunkSize` bytes (default
 * 64 KiB), ending with the last-chunk `0\r\n\r\n` unless `end` is false (RFC 9112 §7.1).
 *
 * @example
 * const wire = chunkedBody(utf8("hello"), { chunkSize: 2 }); // "2\r\nhe\r\n2\r\nll\r\n1\r\no\r\n0\r\n\r\n"
 */
export function chunkedBody(
  body: Uint8Array,
  options: { chunkSize?: number; end?: boolean } = {},
): Uint8Array {
  const encoder = new TextEncoder();
  const size = options.chunkSize ?? CHUNK;
  const parts: Uint8Array[] = [];
  for (let offset = 0; offset < body.byteLength; offset += size) {
    const chunk = body.subarray(offset, offset + size);
    parts.push(
      encoder.encode(`${chunk.byteLength.toString(16)}\r\n`),
      chunk,
      encoder.encode("\r\n"),
    );
  }
  if (options.end ?? true) parts.push(encoder.encode("0\r\n\r\n"));
  const wire = new Uint8Array(parts.reduce((n, part) => n + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    wire.set(part, offset);
    offset += part.byteLength;
  }
  return wire;
}

/**
 * Writes `bytes` (a request cut short) to 127.0.0.1:`port` and closes the connection, like a
 * client that goes away mid-upload.
 */
export async function sendThenDisconnect(port: number, bytes: Uint8Array): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, bytes);
  } finally {
    conn.close();
  }
}
