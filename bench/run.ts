/**
 * `deno task bench`: runs every benchmark in its own process, one after the other (so they do not
 * compete for the CPU), and prints their figures. `deno task bench delivery` runs only the named
 * ones. A benchmark is a `bench/<name>.ts` module that prints its report when run directly.
 */

/** The benchmarks, in the order they run. */
const BENCHMARKS = ["upload", "delivery", "first_start"];

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function main(names: string[]): Promise<number> {
  const selected = names.length > 0 ? names : BENCHMARKS;
  let failed = 0;
  for (const name of selected) {
    const path = new URL(`./${name}.ts`, import.meta.url).pathname;
    if (!(await exists(path))) {
      console.error(`Skipping benchmark "${name}": ${path} does not exist`);
      continue;
    }
    console.log(`\n== ${name} ==`);
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `--lock=${new URL("../tests/deno.lock", import.meta.url).pathname}`,
        path,
      ],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (code !== 0) {
      console.error(`Benchmark "${name}" failed: exit code ${code}`);
      failed++;
    }
  }
  return failed === 0 ? 0 : 1;
}

Deno.exit(await main(Deno.args));
