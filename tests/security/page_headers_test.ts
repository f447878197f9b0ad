/**
 * Finding 1 of the security review: pages could be framed and sniffed. Every HTML page (the
 * error pages too) now carries a CSP without inline script, X-Frame-Options DENY, nosniff and
 * Referrer-Policy; API answers carry nosniff; HSTS only when Portal is served on https; and in
 * real Chromium another origin cannot frame the console while Portal's own pages (the upload
 * island included) run under the policy without a single violation.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createApp } from "../../app.ts";
import { PAGE_CSP } from "../../src/http/security_headers.ts";
import { Browser, login, startTestServer } from "../helpers/app.ts";
import { collectPageErrors, launchChromium, signInThroughForm } from "../helpers/browser.ts";
import { createTestUser, createUploadFixture } from "../helpers/uploads.ts";

const PASSWORD = "correct horse battery";

/** The pages a signed-in admin reaches, and ones anybody reaches. */
const ADMIN_PAGES = ["/", "/upload", "/admin", "/admin/events", "/admin/webhooks", "/admin/files"];
const PUBLIC_PAGES = ["/login", "/no-such-page"];

function assertPageHeaders(response: Response, path: string): void {
  const h = response.headers;
  assert.match(h.get("content-type") ?? "", /^text\/html/, `${path} is a page`);
  assert.equal(h.get("content-security-policy"), PAGE_CSP, `${path}: CSP`);
  assert.equal(h.get("x-frame-options"), "DENY", `${path}: X-Frame-Options`);
  assert.equal(h.get("x-content-type-options"), "nosniff", `${path}: nosniff`);
  assert.equal(h.get("referrer-policy"), "same-origin", `${path}: Referrer-Policy`);
}

Deno.test("every page, signed in or not, error pages included, carries the page headers", async () => {
  const fx = await createUploadFixture("sec_headers");
  try {
    await createTestUser(fx.db, "admin@example.test", { admin: true });
    const app = createApp(fx.deps);
    const anonymous = new Browser(app);
    for (const path of PUBLIC_PAGES) {
      const response = await anonymous.get(path, { accept: "text/html" });
      await response.body?.cancel();
      assertPageHeaders(response, path);
    }
    const admin = await login(app, "admin@example.test", PASSWORD);
    for (const path of ADMIN_PAGES) {
      const response = await admin.get(path, { accept: "text/html" });
      await response.body?.cancel();
      assert.equal(response.status, 200, path);
      assertPageHeaders(response, path);
    }
    // A 403 page (a non-admin in the console) and a CSRF refusal are pages too.
    await createTestUser(fx.db, "user@example.test");
    const user = await login(app, "user@example.test", PASSWORD);
    const forbidden = await user.get("/admin", { accept: "text/html" });
    await forbidden.body?.cancel();
    assert.equal(forbidden.status, 403);
    assertPageHeaders(forbidden, "/admin as a user");
    const page = await user.get("/upload", { accept: "text/html" });
    assert.equal(page.status, 200);
    assert.doesNotMatch(await page.text(), /<script(?![^>]*\bsrc=)/, "no inline script");
  } finally {
    await fx.close();
  }
});

Deno.test("API answers, health and static files are nosniff and frame-free; no HSTS on http", async () => {
  const fx = await createUploadFixture("sec_headers_api");
  try {
    const ada = await createTestUser(fx.db, "ada@example.test");
    const app = createApp(fx.deps);
    for (
      const [path, headers] of [
        ["/api/v1/me", ada.auth],
        ["/api/v1/me", {}],
        ["/healthz", {}],
        ["/static/portal.css", {}],
      ] as const
    ) {
      const response = await app.request(path, { headers });
      await response.body?.cancel();
      assert.equal(response.headers.get("x-content-type-options"), "nosniff", path);
      assert.equal(response.headers.get("referrer-policy"), "same-origin", path);
      assert.equal(response.headers.get("strict-transport-security"), null, path);
      if (path.startsWith("/api/")) {
        assert.equal(response.headers.get("cache-control"), "no-store", `${path}: not cached`);
      }
    }
  } finally {
    await fx.close();
  }
});

Deno.test("HSTS is sent once PORTAL_PUBLIC_URL is https; a download keeps its sandbox CSP", async () => {
  const fx = await createUploadFixture("sec_headers_https", {
    env: { PORTAL_PUBLIC_URL: "https://files.example.test" },
  });
  try {
    const ada = await createTestUser(fx.db, "ada@example.test");
    const app = createApp(fx.deps);
    const login = await app.request("/login");
    await login.body?.cancel();
    assert.match(login.headers.get("strict-transport-security") ?? "", /^max-age=\d{7,}/);

    const stored = await app.request("/api/v1/files?filename=note.txt", {
      method: "POST",
      headers: ada.auth,
      body: "plain text\n",
    });
    assert.equal(stored.status, 201, await stored.clone().text());
    const file = await stored.json() as { id: string };
    const download = await app.request(`/files/${file.id}/download`, { headers: ada.auth });
    assert.equal(await download.text(), "plain text\n");
    assert.equal(download.headers.get("content-security-policy"), "sandbox");
    assert.equal(download.headers.get("x-content-type-options"), "nosniff");
  } finally {
    await fx.close();
  }
});

Deno.test("in Chromium another origin cannot frame Portal, and Portal's pages run under the CSP without a violation", async () => {
  const fx = await createUploadFixture("sec_headers_browser");
  const server = await startTestServer(fx.deps);
  // Another origin (another port) that frames the console, as a clickjacking page would.
  const evil = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response(
        `<!doctype html><iframe id="f" src="${server.url}/admin/webhooks"></iframe>`,
        { headers: { "content-type": "text/html" } },
      ),
  );
  const browser = await launchChromium();
  try {
    await createTestUser(fx.db, "admin@example.test", { admin: true });
    const page = await browser.newPage();
    const errors = collectPageErrors(page);
    await signInThroughForm(page, server.url, {
      email: "admin@example.test",
      password: PASSWORD,
      next: "/upload",
    });
    // The island works under script-src 'self': it hydrates and sends a file.
    await page.waitForSelector("label.button.secondary", { timeout: 5_000 });
    await page.setInputFiles('input[name="files"]', {
      name: "hello.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("hello under a CSP\n"),
    });
    await page.click('form.upload button[type="submit"]');
    await page.waitForSelector('li.file[data-name="hello.txt"][data-state="stored"]', {
      timeout: 15_000,
    });
    for (const path of ADMIN_PAGES) await page.goto(`${server.url}${path}`);
    assert.deepEqual(errors, [], "no CSP violation or script error on Portal's pages");

    const evilPage = await browser.newPage();
    await evilPage.goto(`http://127.0.0.1:${evil.addr.port}/`);
    await evilPage.waitForTimeout(500);
    const frame = evilPage.frames().find((f) => f !== evilPage.mainFrame());
    const framed = frame ? await frame.evaluate(() => document.body?.innerText ?? "") : "";
    assert.doesNotMatch(
      framed,
      /Webhook|Endpoint|Portal/,
      "the console did not render inside another origin",
    );
  } finally {
    await browser.close();
    await evil.shutdown();
    await server.stop();
    await fx.close();
  }
});
