/**
 * Security review probe: signed download links (`/files/:id/download?expires=&sig=`) tampered
 * with in every way a link holder could try. A flipped digit, another file's signature, a
 * moved expiry, an expiry or signature spelled differently from what Portal signed, duplicated
 * parameters, or a swapped id: each is refused 403 (404 for an id that is not a UUID), never
 * 200 and never 500; a genuine link to a deleted file answers 410.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../../app.ts";
import type { AppEnv } from "../../src/http/app_env.ts";
import { captureLogger } from "../helpers/app.ts";
import { createTestUser, createUploadFixture, type TestUser } from "../helpers/uploads.ts";

const JSON_ACCEPT = { accept: "application/json" };

/** A stored file and the parts of its signed link. */
interface Linked {
  id: string;
  text: string;
  path: string;
  expires: string;
  sig: string;
}

/** Two files of one user with their links, on a fresh database. */
interface LinkContext {
  app: Hono<AppEnv>;
  ada: TestUser;
  first: Linked;
  second: Linked;
}

async function uploadLinked(app: Hono<AppEnv>, ada: TestUser, text: string): Promise<Linked> {
  const response = await app.request("/api/v1/files?filename=note.txt", {
    method: "POST",
    headers: ada.auth,
    body: text,
  });
  assert.equal(response.status, 201, await response.clone().text());
  const file = await response.json() as { id: string; url: string };
  const url = new URL(file.url);
  return {
    id: file.id,
    text,
    path: url.pathname,
    expires: url.searchParams.get("expires") ?? "",
    sig: url.searchParams.get("sig") ?? "",
  };
}

/** Runs `fn` on a fresh app with two linked files; fails if any request logged an error. */
async function withLinks(label: string, fn: (ctx: LinkContext) => Promise<void>): Promise<void> {
  const fx = await createUploadFixture(label);
  try {
    const { logger, lines } = captureLogger();
    const app = createApp({ ...fx.deps, logger });
    const ada = await createTestUser(fx.db, "ada@example.test");
    const first = await uploadLinked(app, ada, "the first file\n");
    const second = await uploadLinked(app, ada, "the second file\n");
    assert.match(first.expires, /^[1-9]\d{9}$/, "a link's expires is unix seconds");
    assert.match(first.sig, /^[0-9a-f]{64}$/, "a link's sig is lowercase hex");
    // The untampered link works: every refusal below is the tampering's doing.
    const genuine = await app.request(`${first.path}?expires=${first.expires}&sig=${first.sig}`);
    assert.equal(genuine.status, 200);
    assert.equal(await genuine.text(), first.text);
    await fn({ app, ada, first, second });
    assert.deepEqual(
      lines.filter((line) => JSON.parse(line).level === "error"),
      [],
      "no request failed with an internal error",
    );
  } finally {
    await fx.close();
  }
}

/** One tampered request and the answer it must get. */
interface Probe {
  what: string;
  /** Path and query, sent as is. */
  url: string;
  status: 403 | 404;
}

/**
 * Sends every probe anonymously and asserts each answer; collects every mismatch first so a
 * failure lists all of them.
 */
async function assertRefused(app: Hono<AppEnv>, probes: Probe[]): Promise<void> {
  const wrong: string[] = [];
  for (const probe of probes) {
    for (const method of ["GET", "HEAD"]) {
      const response = await app.request(probe.url, { method, headers: JSON_ACCEPT });
      const body = await response.text();
      const json = /^application\/json/.test(response.headers.get("content-type") ?? "");
      const code = json && body !== ""
        ? (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? ""
        : "";
      const expectedCode = probe.status === 404 ? "not_found" : /^link_(invalid|expired)$/;
      const codeOk = method === "HEAD" ||
        (typeof expectedCode === "string" ? code === expectedCode : expectedCode.test(code));
      if (response.status !== probe.status || !codeOk) {
        wrong.push(
          `${probe.what}: ${method} ${probe.url} answered ${response.status} ${code}, expected ${probe.status}`,
        );
      }
    }
  }
  assert.equal(wrong.length, 0, `tampered links were not refused:\n${wrong.join("\n")}`);
}

/** `hex` with the digit at `index` replaced by another hex digit. */
function flipDigit(hex: string, index: number): string {
  const digit = hex[index]!;
  const other = digit === "0" ? "1" : "0";
  return hex.slice(0, index) + other + hex.slice(index + 1);
}

Deno.test("a download link with a tampered, foreign, re-cased or missing sig is refused 403 link_invalid", async () => {
  await withLinks("sec_tamper_sig", async ({ app, first, second }) => {
    const { path, expires, sig } = first;
    assert.match(sig, /[a-f]/, "the signature has letters to upper-case");
    await assertRefused(
      app,
      [
        { what: "first digit flipped", url: `${path}?expires=${expires}&sig=${flipDigit(sig, 0)}` },
        {
          what: "middle digit flipped",
          url: `${path}?expires=${expires}&sig=${flipDigit(sig, 31)}`,
        },
        { what: "last digit flipped", url: `${path}?expires=${expires}&sig=${flipDigit(sig, 63)}` },
        {
          what: "sig and expires of another file",
          url: `${path}?expires=${second.expires}&sig=${second.sig}`,
        },
        { what: "sig upper-cased", url: `${path}?expires=${expires}&sig=${sig.toUpperCase()}` },
        { what: "sig missing", url: `${path}?expires=${expires}` },
        { what: "sig empty", url: `${path}?expires=${expires}&sig=` },
        { what: "sig one digit short", url: `${path}?expires=${expires}&sig=${sig.slice(0, 63)}` },
        { what: "sig one digit long", url: `${path}?expires=${expires}&sig=${sig}0` },
        { what: "sig with a trailing space", url: `${path}?expires=${expires}&sig=${sig}%20` },
        { what: "sig as base64", url: `${path}?expires=${expires}&sig=${hexToBase64Url(sig)}` },
      ].map((probe) => ({ ...probe, status: 403 })),
    );
  });
});

Deno.test("a download link with expires moved, not a number, or past 12 digits is refused 403", async () => {
  await withLinks("sec_tamper_expires", async ({ app, first }) => {
    const { path, expires, sig } = first;
    const n = Number(expires);
    const withExpires = (value: string) => `${path}?expires=${value}&sig=${sig}`;
    await assertRefused(
      app,
      [
        { what: "expires + 1", url: withExpires(String(n + 1)) },
        { what: "expires - 1", url: withExpires(String(n - 1)) },
        { what: "expires a year on", url: withExpires(String(n + 365 * 86400)) },
        { what: "expires with a letter", url: withExpires(`${expires}a`) },
        { what: "expires in exponent form", url: withExpires(`${expires.slice(0, 1)}e9`) },
        { what: "expires with a plus sign", url: withExpires(`%2B${expires}`) },
        { what: "expires with a decimal point", url: withExpires(`${expires}.0`) },
        { what: "expires with a leading space", url: withExpires(`%20${expires}`) },
        { what: "expires in hex", url: withExpires(`0x${n.toString(16)}`) },
        { what: "expires negative", url: withExpires("-1") },
        { what: "expires empty", url: withExpires("") },
        { what: "expires in Arabic-Indic digits", url: withExpires(encodeURIComponent("١٢٣")) },
        { what: "expires zero-padded to 13 digits", url: withExpires(expires.padStart(13, "0")) },
        { what: "expires of 13 digits", url: withExpires("9999999999999") },
        { what: "expires of 20 digits", url: withExpires("9".repeat(20)) },
        { what: "expires missing", url: `${path}?sig=${sig}` },
      ].map((probe) => ({ ...probe, status: 403 })),
    );
  });
});

Deno.test("a download link's expires must be spelled as Portal signed it: leading zeros are refused 403", async () => {
  await withLinks("sec_tamper_zeros", async ({ app, first }) => {
    const { path, expires, sig } = first;
    // Same number, other text: a link is a bearer credential, so only the exact text Portal
    // issued may verify (a cache, log or revocation list keyed by the URL must not be dodged).
    await assertRefused(
      app,
      [
        { what: "one leading zero", url: `${path}?expires=0${expires}&sig=${sig}` },
        { what: "two leading zeros", url: `${path}?expires=00${expires}&sig=${sig}` },
      ].map((probe) => ({ ...probe, status: 403 })),
    );
  });
});

Deno.test("a download link with duplicated expires or sig parameters is refused 403", async () => {
  await withLinks("sec_tamper_duplicates", async ({ app, first }) => {
    const { path, expires, sig } = first;
    const later = String(Number(expires) + 86400);
    const bad = flipDigit(sig, 10);
    await assertRefused(
      app,
      [
        {
          what: "a later expires first",
          url: `${path}?expires=${later}&sig=${sig}&expires=${expires}`,
        },
        {
          what: "a later expires last",
          url: `${path}?expires=${expires}&sig=${sig}&expires=${later}`,
        },
        {
          what: "expires twice, the same",
          url: `${path}?expires=${expires}&expires=${expires}&sig=${sig}`,
        },
        { what: "a bad sig first", url: `${path}?expires=${expires}&sig=${bad}&sig=${sig}` },
        { what: "a bad sig last", url: `${path}?expires=${expires}&sig=${sig}&sig=${bad}` },
        { what: "sig twice, the same", url: `${path}?expires=${expires}&sig=${sig}&sig=${sig}` },
      ].map((probe) => ({ ...probe, status: 403 })),
    );
  });
});

Deno.test("a link's signature is bound to its file id: another id is refused 403, a malformed id 404", async () => {
  await withLinks("sec_tamper_id", async ({ app, first, second }) => {
    const query = `expires=${first.expires}&sig=${first.sig}`;
    const unknown = crypto.randomUUID();
    await assertRefused(app, [
      { what: "the other file's id", url: `/files/${second.id}/download?${query}`, status: 403 },
      { what: "an unknown id", url: `/files/${unknown}/download?${query}`, status: 403 },
      {
        what: "the same id upper-cased",
        url: `/files/${first.id.toUpperCase()}/download?${query}`,
        status: 403,
      },
      { what: "not a UUID", url: `/files/not-a-uuid/download?${query}`, status: 404 },
      {
        what: "the id plus a character",
        url: `/files/${first.id}0/download?${query}`,
        status: 404,
      },
      { what: "the id with a NUL", url: `/files/${first.id}%00/download?${query}`, status: 404 },
      {
        what: "the id cut short",
        url: `/files/${first.id.slice(0, 35)}/download?${query}`,
        status: 404,
      },
    ]);
    const other = await app.request(`${second.path}?expires=${second.expires}&sig=${second.sig}`);
    assert.equal(await other.text(), second.text, "the other file's own link still works");
  });
});

Deno.test("a genuine link to a deleted file answers 410 gone; a tampered one stays 403", async () => {
  await withLinks("sec_tamper_deleted", async ({ app, ada, first, second }) => {
    const deleted = await app.request(`/api/v1/files/${first.id}`, {
      method: "DELETE",
      headers: ada.auth,
    });
    assert.equal(deleted.status, 200);
    await deleted.body?.cancel();

    const gone = await app.request(`${first.path}?expires=${first.expires}&sig=${first.sig}`, {
      headers: JSON_ACCEPT,
    });
    assert.equal(gone.status, 410);
    assert.match(gone.headers.get("content-type") ?? "", /^application\/json/);
    assert.equal((await gone.json() as { error: { code: string } }).error.code, "gone");
    const page = await app.request(`${first.path}?expires=${first.expires}&sig=${first.sig}`);
    assert.equal(page.status, 410, "a browser gets the 410 too");
    await page.body?.cancel();

    // The signature is checked first: a forged link learns nothing about the deleted file.
    await assertRefused(app, [{
      what: "flipped sig to the deleted file",
      url: `${first.path}?expires=${first.expires}&sig=${flipDigit(first.sig, 5)}`,
      status: 403,
    }]);
    const kept = await app.request(`${second.path}?expires=${second.expires}&sig=${second.sig}`);
    assert.equal(await kept.text(), second.text, "the other file is untouched");
  });
});

function hexToBase64Url(hex: string): string {
  const bytes = new Uint8Array(hex.match(/../g)!.map((pair) => parseInt(pair, 16)));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}
