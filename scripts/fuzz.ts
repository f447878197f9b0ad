/**
 * `deno task fuzz [runs] [seed]`: the parser fuzz tests of `deno task test`
 * (tests/security/parsers_fuzz_test.ts) for longer, 200 000 cases per property by default, from
 * a fresh random seed printed first, so a failure reproduces with
 * `FUZZ_SEED=<seed> FUZZ_RUNS=<runs> deno task test tests/security/parsers_fuzz_test.ts`.
 */
const runs = Deno.args[0] ?? "200000";
const seed = Deno.args[1] ?? String(Math.floor(Math.random() * 2 ** 31));
if (!/^\d+$/.test(runs) || !/^\d+$/.test(seed)) {
  console.error("Usage: deno task fuzz [runs] [seed] (whole numbers)");
  Deno.exit(2);
}
console.log(`fuzz: FUZZ_RUNS=${runs} FUZZ_SEED=${seed}`);
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "test",
    "-A",
    `--lock=${new URL("../tests/deno.lock", import.meta.url).pathname}`,
    new URL("../tests/security/parsers_fuzz_test.ts", import.meta.url).pathname,
  ],
  env: { FUZZ_RUNS: runs, FUZZ_SEED: seed, FUZZ_CHECK_MEMORY: "1" },
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
const status = await child.status;
if (!status.success) console.log(`fuzz failed: rerun with FUZZ_SEED=${seed} FUZZ_RUNS=${runs}`);
Deno.exit(status.code);
