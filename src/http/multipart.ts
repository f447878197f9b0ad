/**
 * A streaming `multipart/form-data` reader (RFC 7578 on RFC 2046 §5.1). Each part's body is a
 * ReadableStream fed straight from the request, so a file part reaches storage chunk by chunk.
 *
 * Why not `@remix-run/multipart-parser` 0.16.3: its `MultipartParser` collects every part's
 * content in memory and yields the part only after its closing boundary (2 MiB default cap),
 * which would buffer whole uploads; SPEC §1 asks for a streaming parser.
 *
 * Past 300 lines on purpose: one state machine over one buffer (boundary search, part headers,
 * part bodies with back-pressure); its pieces are private to each other.
 */
import { Buffer } from "node:buffer";
import { dispositionParams, filenameFromContentDisposition } from "./content_disposition.ts";

/** A multipart body that cannot be read: malformed, or larger than allowed. */
export class MultipartError extends Error {
  override name = "MultipartError";

  constructor(readonly code: "malformed" | "too_large", message: string) {
    super(message);
  }
}

/** One part of a form: a text field (`filename` null) or a file. */
export interface MultipartPart {
  /** The form field name ("" when absent). */
  name: string;
  /** The client's filename for file parts; null for text fields. */
  filename: string | null;
  /** The part's declared Content-Type (informational only: types are sniffed). */
  contentType: string | null;
  /** Lowercase header names. */
  headers: ReadonlyMap<string, string>;
  /** The part's bytes; read it or cancel it before asking for the next part. */
  body: ReadableStream<Uint8Array>;
}

/** Limits of `readMultipart`. */
export interface MultipartLimits {
  /** Bytes of headers per part; default 16 KiB. */
  maxHeaderBytes?: number;
  /** Bytes of the whole body; default unlimited. */
  maxTotalBytes?: number;
  /** Parts (fields and files); default 1000. */
  maxParts?: number;
}

const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");
const MAX_PREAMBLE = 64 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * The boundary of a `multipart/form-data` Content-Type, or null when the header is another
 * type or has no usable boundary (RFC 2046 §5.1.1: 1 to 70 characters).
 *
 * @example
 * multipartBoundary('multipart/form-data; boundary="abc"'); // => "abc"
 */
export function multipartBoundary(contentType: string | null | undefined): string | null {
  if (!contentType || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return null;
  const boundary = dispositionParams(contentType).get("boundary");
  if (boundary === undefined || !/^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$/.test(boundary)) return null;
  if (boundary.endsWith(" ")) return null;
  return boundary;
}

/**
 * Yields the parts of a multipart body as they arrive. A part left unread is skipped when the
 * next one is requested; stopping the iteration cancels the source.
 *
 * @example
 * for await (const part of readMultipart(request.body!, { boundary })) {
 *   if (part.filename === null) fields[part.name] = await new Response(part.body).text();
 *   else await storage.putObject(key, part.body);
 * }
 */
export async function* readMultipart(
  body: ReadableStream<Uint8Array>,
  options: MultipartLimits & { boundary: string },
): AsyncGenerator<MultipartPart, void, undefined> {
  const reader = new MultipartReader(body, options);
  let finished = false;
  try {
    while (true) {
      const part = await reader.next();
      if (part === null) {
        finished = true;
        return;
      }
      yield part;
    }
  } finally {
    if (!finished) reader.cancel();
  }
}

/** The state machine behind `readMultipart`. */
class MultipartReader {
  #source: ReadableStreamDefaultReader<Uint8Array>;
  #buffer: Uint8Array = EMPTY;
  #eof = false;
  #total = 0;
  #parts = 0;
  #started = false;
  #done = false;
  /** True while the current part's body has not reached its delimiter. */
  #inBody = false;
  #delimiter: Buffer;
  #firstDelimiter: Buffer;
  #maxHeaderBytes: number;
  #maxTotalBytes: number;
  #maxParts: number;
  /** Where #append grows a buffer in place (see there), and how much of it is used. */
  #store: Uint8Array | null = null;
  #storeEnd = 0;

  constructor(body: ReadableStream<Uint8Array>, options: MultipartLimits & { boundary: string }) {
    this.#source = body.getReader();
    this.#delimiter = Buffer.from(`\r\n--${options.boundary}`);
    this.#firstDelimiter = Buffer.from(`--${options.boundary}`);
    this.#maxHeaderBytes = options.maxHeaderBytes ?? 16 * 1024;
    this.#maxTotalBytes = options.maxTotalBytes ?? Number.POSITIVE_INFINITY;
    this.#maxParts = options.maxParts ?? 1000;
  }

  cancel(): void {
    this.#source.cancel().catch(() => {});
  }

  async next(): Promise<MultipartPart | null> {
    if (this.#done) return null;
    if (!this.#started) {
      await this.#skipPreamble();
      this.#started = true;
    } else {
      while (this.#inBody) await this.#bodyChunk(); // skip what the consumer left unread
    }
    if (await this.#afterDelimiter()) {
      this.#done = true;
      this.cancel(); // the epilogue carries nothing (RFC 2046 §5.1.1)
      return null;
    }
    if (++this.#parts > this.#maxParts) {
      throw new MultipartError("malformed", `the form has more than ${this.#maxParts} parts`);
    }
    const headers = await this.#readHeaders();
    this.#inBody = true;
    const disposition = headers.get("content-disposition") ?? "";
    if (!/^\s*form-data\s*(;|$)/i.test(disposition)) {
      throw new MultipartError("malformed", 'a part lacks "Content-Disposition: form-data"');
    }
    const params = dispositionParams(disposition);
    const hasFilename = params.has("filename") || params.has("filename*");
    return {
      name: params.get("name") ?? "",
      filename: hasFilename ? filenameFromContentDisposition(disposition) ?? "" : null,
      contentType: headers.get("content-type") ?? null,
      headers,
      body: this.#partStream(),
    };
  }

  #partStream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          while (this.#inBody) {
            const chunk = await this.#bodyChunk();
            if (chunk.byteLength > 0) {
              controller.enqueue(chunk);
              return;
            }
          }
          controller.close();
        } catch (error) {
          controller.error(error);
        }
      },
      // Nothing to do: the next call to next() skips the rest of the part.
      cancel: () => {},
    }, { highWaterMark: 0 });
  }

  /**
   * Returns the next bytes of the current part (possibly empty while more input is needed);
   * clears #inBody when the delimiter is reached.
   */
  async #bodyChunk(): Promise<Uint8Array> {
    const delimiter = this.#delimiter;
    while (true) {
      const buffer = this.#buffer;
      const at = asBuffer(buffer).indexOf(delimiter);
      if (at >= 0) {
        this.#buffer = buffer.subarray(at + delimiter.byteLength);
        this.#inBody = false;
        return buffer.subarray(0, at);
      }
      // Keep a tail that may be the start of a delimiter split across chunks.
      const safe = buffer.byteLength - (delimiter.byteLength - 1);
      if (safe > 0) {
        this.#buffer = buffer.subarray(safe);
        return buffer.subarray(0, safe);
      }
      if (!await this.#fill()) {
        throw new MultipartError("malformed", "the body ended inside a part");
      }
    }
  }

  async #skipPreamble(): Promise<void> {
    // Bytes already searched: each chunk is searched once (with a delimiter's overlap), so a
    // preamble sent a byte at a time costs linear time, not quadratic.
    let searched = 0;
    while (true) {
      const buffer = asBuffer(this.#buffer);
      if (buffer.byteLength >= this.#firstDelimiter.byteLength) {
        if (buffer.subarray(0, this.#firstDelimiter.byteLength).equals(this.#firstDelimiter)) {
          this.#buffer = this.#buffer.subarray(this.#firstDelimiter.byteLength);
          return;
        }
        const from = Math.max(0, searched - this.#delimiter.byteLength + 1);
        searched = buffer.byteLength;
        const at = buffer.indexOf(this.#delimiter, from);
        if (at >= 0) {
          this.#buffer = this.#buffer.subarray(at + this.#delimiter.byteLength);
          return;
        }
      }
      if (buffer.byteLength > MAX_PREAMBLE) {
        throw new MultipartError("malformed", "no boundary found at the start of the body");
      }
      if (!await this.#fill()) {
        throw new MultipartError(
          "malformed",
          this.#total === 0 ? "the body is empty" : "no boundary found in the body",
        );
      }
    }
  }

  /** After a delimiter: true for the close delimiter "--", else consumes padding and CRLF. */
  async #afterDelimiter(): Promise<boolean> {
    while (true) {
      const buffer = this.#buffer;
      if (buffer.byteLength >= 2 && buffer[0] === 0x2d && buffer[1] === 0x2d) return true;
      // RFC 2046 §5.1.1 transport padding: linear whitespace before the CRLF.
      let i = 0;
      while (i < buffer.byteLength && (buffer[i] === 0x20 || buffer[i] === 0x09)) i++;
      if (buffer.byteLength - i >= 2) {
        if (buffer[i] !== 0x0d || buffer[i + 1] !== 0x0a) {
          throw new MultipartError("malformed", "a boundary is not followed by a line break");
        }
        this.#buffer = buffer.subarray(i + 2);
        return false;
      }
      if (i > 1024) throw new MultipartError("malformed", "a boundary line is too long");
      if (!await this.#fill()) {
        throw new MultipartError("malformed", "the body ended after a boundary");
      }
    }
  }

  async #readHeaders(): Promise<Map<string, string>> {
    let searched = 0; // as in #skipPreamble
    while (true) {
      const buffer = asBuffer(this.#buffer);
      // A part without headers starts with the blank line itself.
      if (buffer.byteLength >= 2 && buffer.subarray(0, 2).equals(CRLF)) {
        this.#buffer = this.#buffer.subarray(2);
        return new Map();
      }
      const end = buffer.indexOf(HEADER_END, Math.max(0, searched - HEADER_END.byteLength + 1));
      searched = buffer.byteLength;
      if (end >= 0) {
        if (end > this.#maxHeaderBytes) break;
        const text = new TextDecoder().decode(this.#buffer.subarray(0, end));
        this.#buffer = this.#buffer.subarray(end + HEADER_END.byteLength);
        return parseHeaders(text);
      }
      // Headers of exactly maxHeaderBytes may wait for the rest of their blank line.
      if (buffer.byteLength >= this.#maxHeaderBytes + HEADER_END.byteLength) break;
      if (!await this.#fill()) {
        throw new MultipartError("malformed", "the body ended inside a part's headers");
      }
    }
    throw new MultipartError(
      "malformed",
      `a part's headers are longer than ${this.#maxHeaderBytes} bytes`,
    );
  }

  /** Reads one more chunk into the buffer; false at the end of the source. */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const { done, value } = await this.#source.read();
    if (done) {
      this.#eof = true;
      return false;
    }
    this.#total += value.byteLength;
    if (this.#total > this.#maxTotalBytes) {
      throw new MultipartError(
        "too_large",
        `the request is larger than ${this.#maxTotalBytes} bytes`,
      );
    }
    this.#append(value);
    return true;
  }

  /**
   * Adds `value` after the buffered bytes. In a part's body the leftover is at most a
   * delimiter's length, so one exact copy is cheap. Where bytes pile up (a preamble or headers
   * sent in tiny chunks) the buffer grows in a store of doubling size, appended to in place:
   * linear in the bytes, not quadratic.
   */
  #append(value: Uint8Array): void {
    const buffer = this.#buffer;
    if (buffer.byteLength === 0) {
      this.#buffer = value;
      return;
    }
    const store = this.#store;
    const end = buffer.byteOffset + buffer.byteLength;
    if (
      store !== null && buffer.buffer === store.buffer && end === this.#storeEnd &&
      end + value.byteLength <= store.byteLength
    ) {
      store.set(value, end);
      this.#storeEnd = end + value.byteLength;
      this.#buffer = store.subarray(buffer.byteOffset, this.#storeEnd);
      return;
    }
    const size = buffer.byteLength + value.byteLength;
    if (buffer.byteLength < value.byteLength) {
      this.#buffer = concat(buffer, value);
      return;
    }
    const grown = new Uint8Array(size * 2);
    grown.set(buffer, 0);
    grown.set(value, buffer.byteLength);
    this.#store = grown;
    this.#storeEnd = size;
    this.#buffer = grown.subarray(0, size);
  }
}

function parseHeaders(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) {
      throw new MultipartError("malformed", "a part has a header line without a name");
    }
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const existing = headers.get(name);
    headers.set(name, existing === undefined ? value : `${existing}, ${value}`);
  }
  return headers;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}
