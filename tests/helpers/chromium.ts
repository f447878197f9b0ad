/**
 * Finds Debian's Chromium for browser tests, installing it with apt-get when missing and we
 * run as root (CI and fresh machines); otherwise explains what to install.
 */

/** Where Debian installs Chromium. */
export const CHROMIUM_PATH = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Makes sure Chromium is installed; returns why not when it cannot be. */
export async function ensureChromium(): Promise<{ ok: true } | { ok: false; message: string }> {
  if (exists(CHROMIUM_PATH)) return { ok: true };
  const isRoot = Deno.uid?.() === 0;
  if (!isRoot) {
    return {
      ok: false,
      message: `not found at ${CHROMIUM_PATH}: install it (Debian: sudo apt-get install chromium)`,
    };
  }
  console.error(`Chromium not found at ${CHROMIUM_PATH}: installing Debian's chromium package...`);
  const run = (args: string[]) =>
    new Deno.Command("apt-get", {
      args,
      stdout: "null",
      stderr: "inherit",
      env: { DEBIAN_FRONTEND: "noninteractive" },
    })
      .output();
  await run(["update", "-qq"]);
  const result = await run([
    "install",
    "-y",
    "-qq",
    "--no-install-recommends",
    "chromium",
    "fonts-dejavu-core",
  ]);
  if (!result.success || !exists(CHROMIUM_PATH)) {
    return {
      ok: false,
      message: `apt-get install chromium failed: install it by hand (apt-get install chromium)`,
    };
  }
  return { ok: true };
}

/** Launch arguments that keep Chromium off the network in this sandbox. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];
