/**
 * First start from a clean checkout: copies the tracked files into a temp folder, gives Deno an
 * empty cache (DENO_DIR), runs `deno task start` there and times the first `/readyz` 200. Then
 * stops it and times a restart on the warm cache and the existing data dir. Downloads count
 * (they are most of a first start), Deno itself does not (it is this process's `deno`).
 *
 *   deno run -A bench/first_start.ts            the working tree
 *   deno run -A bench/first_start.ts dc7da0b    also a commit, for a baseline in the same run
 */
import { join } from "node:path";

const REPO = new URL("../", import.meta.url).pathname;

/** Writes the tree of commit `ref` into `to`. */
async function exportCommit(ref: string, to: string): Promise<void> {
  const archive = new Deno.Command("git", {
    args: ["archive", "--format=tar", ref],
    cwd: REPO,
    stdout: "piped",
  }).spawn();
  const untar = new Deno.Command("tar", { args: ["-x", "-C", to], stdin: "piped" }).spawn();
  await archive.stdout.pipeTo(untar.stdin);
  if (!(await archive.status).success || !(await untar.status).success) {
    throw new Error(`git archive ${ref} failed`);
  }
}

/** Copies the files git tracks (and untracked, not ignored ones) into `to`. */
async function copyCheckout(to: string): Promise<void> {
  const list = await new Deno.Command("git", {
    args: ["ls-files", "-co", "--exclude-standard"],
    cwd: REPO,
    stdout: "piped",
  }).output();
  const files = new TextDecoder().decode(list.stdout).split("\n").filter((f) =>
    f !== "" && !f.startsWith("data/")
  );
  for (const file of files) {
    const target = join(to, file);
    await Deno.mkdir(join(target, ".."), { recursive: true });
    await Deno.copyFile(join(REPO, file), target).catch(() => {}); // deleted, not yet committed
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Runs `deno task start` in `dir` and resolves with the seconds to the first /readyz 200. */
async function timeToReady(
  dir: string,
  denoDir: string,
): Promise<{ seconds: number; child: Deno.ChildProcess; downloads: () => number }> {
  const port = freePort();
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "start"],
    cwd: dir,
    env: { DENO_DIR: denoDir, PORTAL_PORT: String(port), NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
  })();
  const downloads = () => (stderr.match(/^Download /gm) ?? []).length;
  let exited = false;
  child.status.then(() => exited = true);
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`);
      await response.body?.cancel();
      if (response.ok) break;
    } catch { /* not listening yet */ }
    if (exited) throw new Error(`deno task start exited:\n${stderr}`);
    if (performance.now() - started > 180_000) {
      child.kill("SIGKILL");
      throw new Error(`not ready after 180 s:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { seconds: (performance.now() - started) / 1000, child, downloads };
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  child.kill("SIGTERM");
  await child.status;
}

/** Measures one checkout: `ref` null for the working tree. */
async function measure(ref: string | null): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "portal-first-start-" });
  const denoDir = await Deno.makeTempDir({ prefix: "portal-deno-dir-" });
  await Deno.chmod(dir, 0o755); // as root, the embedded server's account must reach the data dir
  const name = ref ?? "working tree";
  try {
    if (ref === null) await copyCheckout(dir);
    else await exportCommit(ref, dir);
    const first = await timeToReady(dir, denoDir);
    const firstDownloads = first.downloads();
    await stop(first.child);
    const again = await timeToReady(dir, denoDir);
    await stop(again.child);
    let cacheBytes = 0;
    for await (const size of walk(denoDir)) cacheBytes += size;
    console.log(
      `${name}: first start, empty cache: ${first.seconds.toFixed(1)} s to /readyz ` +
        `(${firstDownloads} downloads, ${(cacheBytes / 2 ** 20).toFixed(0)} MiB in the cache); ` +
        `restart: ${again.seconds.toFixed(2)} s`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(denoDir, { recursive: true }).catch(() => {});
  }
}

async function main(refs: string[]): Promise<void> {
  for (const ref of refs) await measure(ref);
  await measure(null);
}

/** Sizes of the regular files under `dir`. */
async function* walk(dir: string): AsyncGenerator<number> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walk(path);
    else if (entry.isFile) yield (await Deno.stat(path)).size;
  }
}

if (import.meta.main) await main(Deno.args);
