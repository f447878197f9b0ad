import assert from "node:assert/strict";
import { originalFilename, storageName } from "../src/uploads/file_names.ts";
import { filenameFromContentDisposition } from "../src/http/content_disposition.ts";
import { fileStorageKey } from "../src/uploads/storage_keys.ts";
import { isTypeAllowed, sniffContentType } from "../src/uploads/content_sniff.ts";
import { validateUpload } from "../src/uploads/validation.ts";
import { multipartBoundary, MultipartError, readMultipart } from "../src/http/multipart.ts";
import { etagMatches, parseRange } from "../src/http/byte_range.ts";
import { signDownload, verifyDownloadLink } from "../src/uploads/download_links.ts";
import { canTransition } from "../src/uploads/file_service.ts";
import {
  multipartBody,
  pdfBytes,
  pngBytes,
  randomBytes,
  streamOf,
  utf8,
} from "./helpers/uploads.ts";

Deno.test("storageName() never lets a client filename act as a path", () => {
  assert.equal(storageName("../../etc/passwd"), "passwd");
  assert.equal(storageName("..\\..\\windows\\system32\\evil.dll"), "evil.dll");
  assert.equal(storageName("a\u0000b\u0007c.txt"), "abc.txt");
  assert.equal(storageName("..."), "file");
  assert.equal(storageName(" . . "), "file");
  assert.equal(storageName(""), "file");
  assert.equal(storageName("dir/"), "file");
  assert.equal(storageName(".hidden"), "hidden");
  assert.equal(storageName("report.pdf."), "report.pdf");
  assert.equal(storageName("a\u202egpj.exe"), "agpj.exe");
  assert.equal(storageName('we<ird>:"na|me?*.txt'), "we_ird___na_me__.txt");
  const long = "x".repeat(300) + ".pdf";
  const safe = storageName(long);
  assert.equal(new TextEncoder().encode(safe).byteLength, 255);
  assert.ok(safe.endsWith(".pdf"));
  const wide = "é".repeat(200) + ".txt"; // 2 bytes each: cut on a character boundary
  const cut = storageName(wide);
  assert.ok(new TextEncoder().encode(cut).byteLength <= 255);
  assert.ok(cut.endsWith(".txt"));
  assert.doesNotThrow(() => decodeURIComponent(encodeURIComponent(cut)));
});

Deno.test("originalFilename() keeps the name but drops control characters and caps it", () => {
  assert.equal(originalFilename("../a\u0000b\r\n.txt"), "../ab.txt");
  assert.equal(originalFilename("x".repeat(1500)).length, 1000);
});

Deno.test("fileStorageKey() is uploads/YYYY/MM/<id>/<safe name>", () => {
  const key = fileStorageKey(
    "0193a3c4-7f1e-7000-8000-000000000001",
    "../../r.pdf",
    new Date("2026-03-05T10:00:00Z"),
  );
  assert.equal(key, "uploads/2026/03/0193a3c4-7f1e-7000-8000-000000000001/r.pdf");
});

Deno.test("filenameFromContentDisposition() prefers filename* and tolerates junk", () => {
  assert.equal(filenameFromContentDisposition('attachment; filename="a b.pdf"'), "a b.pdf");
  assert.equal(filenameFromContentDisposition("attachment; filename=plain.txt"), "plain.txt");
  assert.equal(
    filenameFromContentDisposition(
      `attachment; filename="x.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`,
    ),
    "résumé.pdf",
  );
  assert.equal(filenameFromContentDisposition("attachment"), null);
  assert.equal(filenameFromContentDisposition(undefined), null);
  assert.equal(filenameFromContentDisposition(`attachment; filename*=UTF-8''%E0%A4%A`), null);
});

Deno.test("sniffContentType() reads the bytes, and markup is never plain text", async () => {
  const sniff = (bytes: Uint8Array, filename = "x.txt") =>
    sniffContentType(bytes, { filename, complete: true });
  assert.equal(await sniff(pngBytes(100), "photo.txt"), "image/png");
  assert.equal(await sniff(pdfBytes(100), "doc.exe"), "application/pdf");
  assert.equal(await sniff(utf8("hello world\n")), "text/plain");
  assert.equal(await sniff(utf8("a,b\n1,2\n"), "data.csv"), "text/csv");
  assert.equal(await sniff(utf8("# Title\n"), "README.md"), "text/markdown");
  assert.equal(await sniff(utf8('{"a": 1}'), "data.json"), "application/json");
  assert.equal(await sniff(utf8("<!DOCTYPE html><p>hi"), "page.txt"), "text/html");
  assert.equal(await sniff(utf8("notes\n<script>alert(1)</script>"), "notes.txt"), "text/html");
  assert.equal(
    await sniff(utf8('<svg xmlns="http://www.w3.org/2000/svg"/>'), "a.txt"),
    "image/svg+xml",
  );
  assert.equal(
    await sniff(utf8('<?xml version="1.0"?>\n<svg><script>alert(1)</script></svg>'), "a.txt"),
    "image/svg+xml",
  );
  assert.equal(await sniff(utf8('<?xml version="1.0"?><root/>'), "a.txt"), "application/xml");
  assert.equal(await sniff(utf8("just text"), "page.html"), "text/html");
  assert.equal(await sniff(utf8("\u0000<\u0000s\u0000c\u0000r\u0000i\u0000p\u0000t")), "text/html");
  assert.equal(await sniff(randomBytes(1000)), "application/octet-stream");
  assert.equal(await sniff(new Uint8Array([0x68, 0x69, 0x00, 0x21])), "application/octet-stream");
});

Deno.test("isTypeAllowed() matches exact types and type/* families", () => {
  assert.ok(isTypeAllowed("image/png", ["image/png"]));
  assert.ok(isTypeAllowed("audio/ogg", ["audio/*"]));
  assert.ok(!isTypeAllowed("text/html", ["text/plain", "image/*"]));
  assert.ok(!isTypeAllowed("image/svg+xml", ["image/png"]));
});

Deno.test("validateUpload() errors at the byte that crosses the limit and cancels the source", async () => {
  let pulled = 0;
  let cancelled = false;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled += 1000;
      controller.enqueue(pulled === 1000 ? pngBytes(1000) : new Uint8Array(1000));
    },
    cancel() {
      cancelled = true;
    },
  }, { highWaterMark: 0 });
  const { stream, state } = validateUpload(source, {
    maxSize: 10_500,
    allowedTypes: ["image/png"],
    filename: "a.png",
  });
  await assert.rejects(new Response(stream).arrayBuffer(), /too large/);
  assert.equal(state.rejection?.code, "too_large");
  assert.equal(state.bytes, 11_000);
  assert.equal(pulled, 11_000);
  assert.ok(cancelled);
  assert.equal(state.contentType, null, "refused before the first chunk was sniffed");
});

Deno.test("validateUpload() passes the bytes through unchanged", async () => {
  const bytes = pngBytes(300_000);
  const { stream, state } = validateUpload(streamOf(bytes, 1000), {
    maxSize: 300_000,
    allowedTypes: ["image/*"],
    filename: "a.png",
  });
  const out = new Uint8Array(await new Response(stream).arrayBuffer());
  assert.deepEqual(out, bytes);
  assert.equal(state.bytes, 300_000);
  assert.equal(state.rejection, null);
});

Deno.test("multipartBoundary() accepts only multipart/form-data with a sane boundary", () => {
  assert.equal(multipartBoundary("multipart/form-data; boundary=abc"), "abc");
  assert.equal(multipartBoundary('multipart/form-data; boundary="a b"'), "a b");
  assert.equal(multipartBoundary("multipart/mixed; boundary=abc"), null);
  assert.equal(multipartBoundary("multipart/form-data"), null);
  assert.equal(multipartBoundary("application/json"), null);
  assert.equal(multipartBoundary(`multipart/form-data; boundary=${"x".repeat(71)}`), null);
});

Deno.test("readMultipart() streams parts whatever the chunking", async (t) => {
  const file = randomBytes(60_000, 9);
  const { body, contentType } = multipartBody([
    { name: "csrf_token", data: "tok" },
    { name: "file", filename: "a.bin", contentType: "application/octet-stream", data: file },
    { name: "file", filename: "", data: "" },
    { name: "note", data: "héllo\r\n--almost" },
  ]);
  const boundary = multipartBoundary(contentType)!;
  for (const chunkSize of [1, 7, 70, 4096, 1 << 20]) {
    await t.step(`chunks of ${chunkSize} bytes`, async () => {
      const parts: { name: string; filename: string | null; data: Uint8Array }[] = [];
      for await (const part of readMultipart(streamOf(body, chunkSize), { boundary })) {
        parts.push({
          name: part.name,
          filename: part.filename,
          data: new Uint8Array(await new Response(part.body).arrayBuffer()),
        });
      }
      assert.deepEqual(parts.map((p) => [p.name, p.filename]), [
        ["csrf_token", null],
        ["file", "a.bin"],
        ["file", ""],
        ["note", null],
      ]);
      assert.equal(new TextDecoder().decode(parts[0]!.data), "tok");
      assert.deepEqual(parts[1]!.data, file);
      assert.equal(parts[2]!.data.byteLength, 0);
      assert.equal(new TextDecoder().decode(parts[3]!.data), "héllo\r\n--almost");
    });
  }
  await t.step("unread parts are skipped", async () => {
    const names: string[] = [];
    for await (const part of readMultipart(streamOf(body, 999), { boundary })) {
      names.push(part.name);
    }
    assert.deepEqual(names, ["csrf_token", "file", "file", "note"]);
  });
});

Deno.test("readMultipart() refuses malformed bodies", async () => {
  const read = async (text: string, boundary = "b") => {
    for await (const part of readMultipart(streamOf(utf8(text)), { boundary })) {
      await new Response(part.body).arrayBuffer();
    }
  };
  await assert.rejects(read(""), MultipartError);
  await assert.rejects(read("no boundary here at all"), /no boundary/);
  await assert.rejects(
    read('--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nunterminated'),
    /ended inside a part/,
  );
  await assert.rejects(
    read("--b\r\nContent-Disposition: attachment\r\n\r\nx\r\n--b--"),
    /form-data/,
  );
  await assert.rejects(read("--bX\r\n"), /line break/);
  await read('--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nok\r\n--b--\r\n');
});

Deno.test("parseRange() serves one range and ignores what it cannot serve", () => {
  assert.deepEqual(parseRange("bytes=0-99", 1000), { kind: "range", start: 0, end: 99 });
  assert.deepEqual(parseRange("bytes=900-", 1000), { kind: "range", start: 900, end: 999 });
  assert.deepEqual(parseRange("bytes=-100", 1000), { kind: "range", start: 900, end: 999 });
  assert.deepEqual(parseRange("bytes=-5000", 1000), { kind: "range", start: 0, end: 999 });
  assert.deepEqual(parseRange("bytes=990-5000", 1000), { kind: "range", start: 990, end: 999 });
  assert.deepEqual(parseRange("bytes=1000-", 1000), { kind: "unsatisfiable" });
  assert.deepEqual(parseRange("bytes=-0", 1000), { kind: "unsatisfiable" });
  assert.deepEqual(parseRange("bytes=0-1,5-6", 1000), { kind: "none" });
  assert.deepEqual(parseRange("items=0-1", 1000), { kind: "none" });
  assert.deepEqual(parseRange("bytes=5-1", 1000), { kind: "none" });
  assert.deepEqual(parseRange(undefined, 1000), { kind: "none" });
  assert.ok(etagMatches('"a", W/"b"', '"b"'));
  assert.ok(etagMatches("*", '"b"'));
  assert.ok(!etagMatches('"c"', '"b"'));
});

Deno.test("verifyDownloadLink() accepts its own signatures until they expire", () => {
  const key = "k".repeat(40);
  const id = "0193a3c4-7f1e-7000-8000-000000000001";
  const now = new Date("2026-01-01T00:00:00Z");
  const expires = Math.floor(now.getTime() / 1000) + 60;
  const sig = signDownload(key, id, expires);
  const check = (e: string, s: string, at = now) =>
    verifyDownloadLink([key], { fileId: id, expires: e, sig: s, now: at });
  assert.equal(check(String(expires), sig), "valid");
  assert.equal(check(String(expires), sig, new Date(now.getTime() + 61_000)), "expired");
  assert.equal(check(String(expires + 1), sig), "invalid");
  assert.equal(
    check(String(expires), sig.replace(/^./, (c) => (c === "a" ? "b" : "a"))),
    "invalid",
  );
  assert.equal(check("abc", sig), "invalid");
  assert.equal(
    verifyDownloadLink([key], {
      fileId: id.replace(/1$/, "2"),
      expires: String(expires),
      sig,
      now,
    }),
    "invalid",
  );
});

Deno.test("canTransition() follows the file lifecycle", () => {
  assert.ok(canTransition("uploading", "stored"));
  assert.ok(canTransition("stored", "processed"));
  assert.ok(canTransition("stored", "deleted"));
  assert.ok(canTransition("stored", "failed"));
  assert.ok(canTransition("processed", "deleted"));
  assert.ok(!canTransition("processed", "stored"));
  assert.ok(!canTransition("deleted", "processed"));
  assert.ok(!canTransition("failed", "stored"));
  assert.ok(!canTransition("deleted", "deleted"));
});
