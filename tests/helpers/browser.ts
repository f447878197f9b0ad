/**
 * Real headless Chromium for page tests: Debian's binary driven by playwright-core (no
 * downloaded browser, no network beyond loopback), and the steps every page test repeats.
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "npm:playwright-core@1.65.1";
import { CHROMIUM_ARGS, CHROMIUM_PATH, ensureChromium } from "./chromium.ts";

/**
 * Launches headless Chromium; throws with what to install when it is missing.
 *
 * @example
 * const browser = await launchChromium();
 * try { ... } finally { await browser.close(); }
 */
export async function launchChromium(): Promise<Browser> {
  const found = await ensureChromium();
  if (!found.ok) throw new Error(`Cannot launch Chromium: ${found.message}`);
  return await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}

/** Signs in through the login form of the app at `baseUrl`, landing on `next`. */
export async function signInThroughForm(
  page: Page,
  baseUrl: string,
  credentials: { email: string; password: string; next?: string },
): Promise<void> {
  const next = credentials.next ?? "/";
  await page.goto(`${baseUrl}/login?next=${encodeURIComponent(next)}`);
  await page.fill('input[name="email"]', credentials.email);
  await page.fill('input[name="password"]', credentials.password);
  await Promise.all([
    page.waitForURL((url) => url.pathname === next),
    page.click('form[action="/login"] button[type="submit"]'),
  ]);
  assert.equal(new URL(page.url()).pathname, next, "signing in lands on the page asked for");
}

/**
 * Collects the page's uncaught exceptions and `console.error` calls, to assert none happened.
 * Chromium's own "Failed to load resource" lines are left out: a 4xx the page expects (a
 * refused upload, the missing favicon) is not a script error.
 */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error" || message.text().startsWith("Failed to load resource")) return;
    errors.push(`console: ${message.text()}`);
  });
  return errors;
}

/**
 * Slows the page's uploads to `bytesPerSecond` with the DevTools Protocol's network emulation
 * (downloads and latency untouched), so a test can watch a request body while it is sent.
 * Returns a function that lifts the limit and detaches the session.
 *
 * @example
 * const unthrottle = await throttleUploads(page, 256 * 1024);
 * try { ... } finally { await unthrottle(); }
 */
export async function throttleUploads(
  page: Page,
  bytesPerSecond: number,
): Promise<() => Promise<void>> {
  const session = await page.context().newCDPSession(page);
  await session.send("Network.enable");
  await session.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond,
  });
  return async function unthrottle() {
    await session.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    await session.detach();
  };
}
