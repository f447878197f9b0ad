/**
 * The upload page in real headless Chromium against the real app (loopback HTTP, a fresh
 * Postgres database, local storage in a temp folder): the island's drop zone and per-file
 * progress, the no-JavaScript form post, and uploaded HTML/SVG never running in Portal's origin.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Browser, Page } from "npm:playwright-core@1.65.1";
import { renderToString } from "preact-render-to-string";
import { h } from "preact";
import { createUser } from "../src/auth/account_service.ts";
import { createApp } from "../app.ts";
import type { AppDeps } from "../src/http/app_env.ts";
import { Island } from "../components/Island.tsx";
import { startServer } from "../src/http/server.ts";
import { DEFAULT_ALLOWED_TYPES } from "../src/config/settings.ts";
import { createMigratedDatabase } from "./helpers/db.ts";
import { login, testDeps } from "./helpers/app.ts";
import {
  collectPageErrors,
  launchChromium,
  signInThroughForm,
  throttleUploads,
} from "./helpers/browser.ts";

const EMAIL = "uploader@example.test";
const PASSWORD = "correct horse battery";
/** Upload speed while the progress bars are watched: 1.5 MB takes about 4 s. */
const UPLOAD_BYTES_PER_SECOND = 400 * 1024;
/** The upload form's button (the top bar's "Log out" is a submit button too). */
const SUBMIT = 'form.upload button[type="submit"]';

/** A 1×1 PNG. */
const PNG = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwAE/gJ+N3Cl2QAAAABJRU5ErkJggg==",
  ),
  (char) => char.charCodeAt(0),
);

/** The start of an ELF executable: refused by the default allow-list ("never executables"). */
function elfBytes(): Uint8Array {
  const bytes = new Uint8Array(256);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  bytes.set([2, 0, 0x3e, 0], 16); // ET_EXEC, x86-64
  return bytes;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A file Playwright hands to `setInputFiles`. */
interface TestFile {
  name: string;
  mimeType: string;
  buffer: Uint8Array;
}

function textFile(name: string, size: number, seed: string): TestFile {
  const line = `${seed}: the quick brown fox jumps over the lazy dog\n`;
  const text = line.repeat(Math.ceil(size / line.length)).slice(0, size);
  return { name, mimeType: "text/plain", buffer: new TextEncoder().encode(text) };
}

/** Playwright's file payload (it base64-encodes a Node Buffer to pass it to the page). */
function payload(files: TestFile[]) {
  return files.map((file) => ({
    name: file.name,
    mimeType: file.mimeType,
    buffer: Buffer.from(file.buffer),
  }));
}

/** A loopback server that records every request: the beacon an escaped script would call. */
function startBeacon() {
  const hits: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    hits.push(`${request.method} ${new URL(request.url).pathname}${new URL(request.url).search}`);
    return new Response("ok", { headers: { "Access-Control-Allow-Origin": "*" } });
  });
  return { hits, url: `http://127.0.0.1:${server.addr.port}`, stop: () => server.shutdown() };
}

/**
 * The app on 127.0.0.1 and a free port. The handler is bound after listening so the config's
 * public URL (used in download links) names the real port.
 */
async function startApp(deps: (publicUrl: string) => AppDeps) {
  let handler: ReturnType<typeof createApp>["fetch"] | null = null;
  const server = await startServer((request, info) => handler!(request, info), {
    hostname: "127.0.0.1",
    port: 0,
  });
  const url = `http://127.0.0.1:${server.port}`;
  const built = deps(url);
  handler = createApp(built).fetch;
  return { url, deps: built, stop: () => server.shutdown(5_000) };
}

/** Waits until no file in the list is queued or sending, then returns each row's state. */
async function settledRows(page: Page, count: number): Promise<Record<string, string>> {
  await page.waitForFunction(
    (n) => {
      const rows = [...document.querySelectorAll("li.file")];
      return rows.length === n &&
        rows.every((row) => ["stored", "failed"].includes(row.getAttribute("data-state") ?? ""));
    },
    count,
    { timeout: 15_000 },
  );
  return await page.$$eval("li.file", (rows) =>
    Object.fromEntries(
      rows.map((
        row,
      ) => [row.getAttribute("data-name") ?? "", row.getAttribute("data-state") ?? ""]),
    ));
}

/**
 * Waits until file `name` is still sending and its bar shows a value strictly between `above`
 * and 100, and returns that value: progress reported by `xhr.upload.onprogress`, since the
 * island sets the bar to 0 when a request starts and to 100 only once the server answered.
 */
async function progressWhileSending(page: Page, name: string, above: number): Promise<number> {
  const handle = await page.waitForFunction(
    ({ name, above }) => {
      const row = document.querySelector(`li.file[data-name="${name}"]`);
      const bar = row?.querySelector("progress");
      if (!row || !bar || row.getAttribute("data-state") !== "sending") return false;
      return bar.value > above && bar.value < 100 ? bar.value : false;
    },
    { name, above },
    { polling: 50, timeout: 10_000 },
  ).catch((error: Error) => {
    throw new Error(
      `"${name}" never showed progress between ${above}% and 100% while sending: ${error.message}`,
    );
  });
  return await handle.jsonValue() as number;
}

/** The text of the row for file `name`. */
async function rowText(page: Page, name: string): Promise<string> {
  return await page.locator(`li.file[data-name="${name}"]`).innerText();
}

Deno.test("Island renders the component inside a marker with its props escaped", () => {
  const tricky = `"></div><script>alert(1)</script>&amp;'`;
  const html = renderToString(
    h(Island, {
      name: "UploadZone",
      props: { csrfToken: tricky, maxFiles: 3, maxSize: 1024, allowedTypes: ["text/plain"] },
    }),
  );
  assert.match(html, /^<div data-island="UploadZone" data-props="[^"<]*"><form /);
  assert.ok(!html.includes("<script>"), "no tag can be injected through a prop");
  const attribute = /data-props="([^"]*)"/.exec(html)![1]!;
  const decoded = attribute.replaceAll("&quot;", '"').replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">").replaceAll("&amp;", "&");
  assert.deepEqual(JSON.parse(decoded).csrfToken, tricky);
  assert.match(
    html,
    /<input type="hidden" name="csrf_token" value="[^"]*"\/><div class="dropzone"/,
  );
});

Deno.test("POST /upload checks the CSRF field before storing any file", async (t) => {
  const tempDir = await Deno.makeTempDir({ prefix: "portal_upload_form_" });
  const { testDb, db } = await createMigratedDatabase("upload_form");
  try {
    const app = createApp(testDeps(db, { env: { PORTAL_DATA_DIR: tempDir } }));
    await createUser({ db }, { email: EMAIL, password: PASSWORD });
    const client = await login(app, EMAIL, PASSWORD);
    const token = await client.sessionCsrfToken();
    const note = new File(["hello, portal\n"], "note.txt", { type: "text/plain" });
    const post = (fields: Array<[string, string | File]>, accept = "application/json") => {
      const form = new FormData();
      for (const [name, value] of fields) form.append(name, value);
      return client.request("/upload", { method: "POST", body: form, headers: { accept } });
    };
    const rows = async () => {
      const [counts] = await db.sql<{ files: number; batches: number }[]>`
        SELECT (SELECT count(*)::int FROM upload_file) AS files,
               (SELECT count(*)::int FROM upload_batch) AS batches`;
      return counts;
    };

    await t.step("a wrong token is refused with nothing recorded", async () => {
      const response = await post([["csrf_token", "not-the-token"], ["files", note]]);
      assert.equal(response.status, 403);
      assert.match(response.headers.get("content-type") ?? "", /application\/json/);
      assert.equal((await response.json()).error.code, "csrf");
      assert.deepEqual(await rows(), { files: 0, batches: 0 });
    });

    await t.step("a token sent after the file is too late", async () => {
      const response = await post([["files", note], ["csrf_token", token]]);
      assert.equal(response.status, 403);
      await response.body?.cancel();
      assert.deepEqual(await rows(), { files: 0, batches: 0 });
    });

    await t.step("the right token first stores the file and answers JSON", async () => {
      const response = await post([["csrf_token", token], ["files", note]]);
      assert.equal(response.status, 201);
      assert.match(response.headers.get("content-type") ?? "", /application\/json/);
      const body = await response.json();
      assert.equal(body.batch.status, "complete");
      assert.equal(body.files.length, 1);
      assert.equal(body.files[0].status, "stored");
      assert.equal(body.files[0].sha256, sha256Hex(new TextEncoder().encode("hello, portal\n")));
    });

    await t.step("a plain form post gets the HTML results page", async () => {
      const response = await post([["csrf_token", token], ["files", note]], "text/html");
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /text\/html/);
      const html = await response.text();
      assert.match(html, /<h1>Upload complete<\/h1>/);
      assert.match(html, /data-name="note\.txt"/);
    });
  } finally {
    await testDb.drop();
    await Deno.remove(tempDir, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name: "GET /upload in Chromium: the island uploads with progress, the form works without JS, " +
    "uploaded scripts never run",
  async fn(t) {
    const tempDir = await Deno.makeTempDir({ prefix: "portal_upload_page_" });
    const dataDir = join(tempDir, "data");
    const { testDb, db } = await createMigratedDatabase("upload_page");
    const beacon = startBeacon();
    const app = await startApp((publicUrl) =>
      testDeps(db, {
        env: {
          PORTAL_DATA_DIR: dataDir,
          PORTAL_PUBLIC_URL: publicUrl,
          FILE_UPLOAD_MAX_SIZE: String(8 * 1024 * 1024),
          // An operator who allows markup: even then an uploaded page never runs in Portal.
          FILE_UPLOAD_ALLOWED_TYPES: `${DEFAULT_ALLOWED_TYPES},text/html,image/svg+xml`,
        },
      })
    );
    let browser: Browser | null = null;
    try {
      await createUser({ db }, { email: EMAIL, password: PASSWORD });
      browser = await launchChromium();
      const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
      // Fail a step in seconds, not Playwright's 30 s, so the file stays well under a minute.
      context.setDefaultTimeout(10_000);
      const page = await context.newPage();
      const pageErrors = collectPageErrors(page);

      await t.step("signs in through the login form and opens /upload", async () => {
        await signInThroughForm(page, app.url, {
          email: EMAIL,
          password: PASSWORD,
          next: "/upload",
        });
        assert.equal(await page.title(), "Upload · Portal");
        // Hydrated: the island swaps the bare file input for its drop zone label.
        await page.waitForSelector("label.button.secondary", { timeout: 5_000 });
        assert.equal(await page.textContent(".dropzone-title"), "Drop files here");
        const scripts = await page.$$eval("script", (all) => all.map((s) => s.getAttribute("src")));
        assert.deepEqual(scripts, ["/static/islands.js"], "the page loads only our own bundle");
      });

      const files = [
        { name: "photo.png", mimeType: "image/png", buffer: PNG },
        textFile("notes.txt", 1_500_000, "notes"),
        textFile("report.csv", 40_000, "a,b,c"),
      ];

      await t.step(
        "sends three chosen files with a progress bar each that moves while sending, then " +
          "shows their SHA-256",
        async () => {
          await page.setInputFiles('input[name="files"]', payload(files));
          assert.equal(await page.locator("li.file").count(), 3);
          assert.match(await rowText(page, "notes.txt"), /1\.4 MB/);
          // Loopback sends 1.5 MB in milliseconds; at this rate the files take about 4 s, so
          // the bars can be watched moving before the server answers.
          const unthrottle = await throttleUploads(page, UPLOAD_BYTES_PER_SECOND);
          let states: Record<string, string>;
          try {
            await page.click(SUBMIT);
            const early = await progressWhileSending(page, "notes.txt", 0);
            const sending = join(tempDir, "upload_page_sending.png");
            await page.screenshot({ path: sending, fullPage: true });
            console.log(`screenshot: ${sending} (notes.txt at ${early}%)`);
            const later = await progressWhileSending(page, "notes.txt", early);
            console.log(`notes.txt progress while sending: ${early}% then ${later}%`);
            states = await settledRows(page, 3);
          } finally {
            await unthrottle();
          }
          assert.deepEqual(states, {
            "photo.png": "stored",
            "notes.txt": "stored",
            "report.csv": "stored",
          });
          const bars = await page.$$eval(
            "li.file progress",
            (all) => all.map((bar) => (bar as HTMLProgressElement).value),
          );
          assert.deepEqual(bars, [100, 100, 100], "three progress bars, all finished");
          for (const file of files) {
            const digest = await page.locator(`li.file[data-name="${file.name}"] code.sha256`)
              .innerText();
            assert.equal(
              digest,
              sha256Hex(file.buffer),
              `${file.name}: the SHA-256 the server computed`,
            );
          }
          await page.waitForSelector('.actions [role="status"]');
          assert.match(
            await page.innerText('.actions [role="status"]'),
            /Upload complete: 3 stored/,
          );
          const screenshot = join(tempDir, "upload_page_three_files.png");
          await page.screenshot({ path: screenshot, fullPage: true });
          console.log(`screenshot: ${screenshot}`);
        },
      );

      await t.step(
        "takes a dropped file, and shows why a disallowed file was not stored",
        async () => {
          await page.setInputFiles(
            'input[name="files"]',
            payload([textFile("readme.txt", 2_000, "readme")]),
          );
          // A drop as the browser delivers it: a DataTransfer carrying a File.
          const dropped = await page.evaluateHandle((bytes) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "tool.exe"));
            return transfer;
          }, [...elfBytes()]);
          await page.dispatchEvent(".dropzone", "dragenter", { dataTransfer: dropped });
          assert.equal(await page.getAttribute(".dropzone", "class"), "dropzone active");
          await page.dispatchEvent(".dropzone", "drop", { dataTransfer: dropped });
          assert.equal(
            await page.locator("li.file").count(),
            2,
            "the dropped file joined the list",
          );
          await page.click(SUBMIT);
          const states = await settledRows(page, 2);
          assert.deepEqual(states, { "readme.txt": "stored", "tool.exe": "failed" });
          assert.match(await rowText(page, "tool.exe"), /Not stored: .*(not allowed|type)/i);
          assert.match(await page.innerText('.actions [role="status"]'), /Upload partial/);
          const screenshot = join(tempDir, "upload_page_refused_file.png");
          await page.screenshot({ path: screenshot, fullPage: true });
          console.log(`screenshot: ${screenshot}`);
        },
      );

      await t.step("without JavaScript the form posts and answers a results page", async () => {
        const noJs = await browser!.newContext({
          javaScriptEnabled: false,
          viewport: { width: 1100, height: 800 },
        });
        try {
          const plain = await noJs.newPage();
          await signInThroughForm(plain, app.url, {
            email: EMAIL,
            password: PASSWORD,
            next: "/upload",
          });
          assert.equal(await plain.textContent(".dropzone-title"), "Choose the files to upload");
          const formShot = join(tempDir, "upload_form_nojs.png");
          await plain.screenshot({ path: formShot, fullPage: true });
          console.log(`screenshot: ${formShot}`);
          const form = [files[0]!, files[2]!];
          await plain.setInputFiles('input[name="files"]', payload(form));
          await Promise.all([
            plain.waitForURL((url) => url.pathname === "/upload"),
            plain.waitForLoadState("load"),
            plain.click(SUBMIT),
          ]);
          await plain.waitForSelector("h1:text('Upload complete')");
          for (const file of form) {
            const digest = await plain.locator(`li.file[data-name="${file.name}"] code.sha256`)
              .innerText();
            assert.equal(digest, sha256Hex(file.buffer));
          }
          const screenshot = join(tempDir, "upload_results_nojs.png");
          await plain.screenshot({ path: screenshot, fullPage: true });
          console.log(`screenshot: ${screenshot}`);
        } finally {
          await noJs.close();
        }
      });

      await t.step("an uploaded HTML page or SVG opened from Portal runs no script", async () => {
        const script = (label: string) =>
          `document.title = "pwned ${label}";` +
          `localStorage.setItem("pwned", "${label}");` +
          `fetch("${beacon.url}/fetch?${label}", { mode: "no-cors" });` +
          `new Image().src = "${beacon.url}/image?${label}";`;
        const html = new TextEncoder().encode(
          `<!doctype html><html><head><title>page</title></head><body><h1>hello</h1>` +
            `<script>${script("html")}</script></body></html>`,
        );
        const svg = new TextEncoder().encode(
          `<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20">` +
            `<script>${script("svg")}</script><rect width="20" height="20"/></svg>`,
        );
        await page.setInputFiles(
          'input[name="files"]',
          payload([
            { name: "page.html", mimeType: "text/html", buffer: html },
            { name: "image.svg", mimeType: "image/svg+xml", buffer: svg },
          ]),
        );
        await page.click(SUBMIT);
        assert.deepEqual(await settledRows(page, 2), {
          "page.html": "stored",
          "image.svg": "stored",
        });
        // The links the page shows: signed `/files/<id>/download?expires=…&sig=…` URLs.
        const links = await page.$$eval(
          "li.file a",
          (all) => all.map((a) => (a as HTMLAnchorElement).href),
        );
        assert.equal(links.length, 2);
        const titleBefore = await page.title();
        for (const link of links) {
          assert.match(new URL(link).pathname, /^\/files\/[0-9a-f-]{36}\/download$/);
          const [download] = await Promise.all([
            page.waitForEvent("download", { timeout: 10_000 }),
            page.evaluate((href) => {
              location.href = href;
            }, link),
          ]);
          await download.path(); // the whole body arrived: had it been rendered, it ran by now
          assert.equal(
            new URL(page.url()).pathname,
            "/upload",
            "the page stays; the file downloads",
          );
        }
        // A new tab straight on the URL: still a download, never a document.
        const tab = await context.newPage();
        for (const link of links) {
          const tabDownload = tab.waitForEvent("download", { timeout: 10_000 });
          // goto() rejects with "Download is starting": the navigation never made a document.
          await tab.goto(link).catch(() => {});
          await (await tabDownload).path();
          assert.equal(tab.url(), "about:blank", "the tab never showed the file");
          const response = await fetch(link);
          await response.body?.cancel();
          assert.equal(response.status, 200);
          assert.match(response.headers.get("content-disposition") ?? "", /^attachment/);
          assert.match(response.headers.get("content-security-policy") ?? "", /sandbox/);
          assert.equal(response.headers.get("x-content-type-options"), "nosniff");
        }
        await tab.close();
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(await page.title(), titleBefore, "no uploaded script changed the title");
        assert.equal(await page.evaluate(() => localStorage.getItem("pwned")), null);
        assert.deepEqual(beacon.hits, [], "no uploaded script reached the beacon");
      });

      assert.deepEqual(pageErrors, [], "the page logged no errors");
    } finally {
      await browser?.close();
      await app.stop();
      await beacon.stop();
      await testDb.drop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
