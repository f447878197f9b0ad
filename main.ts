/**
 * `portal`: the entry point. Finds the command in the table (`src/cli/commands.ts`), runs it,
 * and turns its outcome into the exit code: 0 ok, 1 runtime error, 2 usage or configuration
 * error. It hands the commands the route table (app.ts), so src/ never imports routes/. The
 * only module with process side effects beyond the commands it runs.
 */
import { createApp, createMetricsApp, createWorkerApp } from "./app.ts";
import { commandContext, ConfigError, findCommand, mainUsage } from "./src/cli/commands.ts";
import { type CommandIo, UsageError } from "./src/cli/cli_types.ts";
import { COMMAND_USAGE } from "./src/cli/usage.ts";
import { DataDirError } from "./src/db/embedded/legacy_data_dir.ts";
import { NoEmbeddedPostgresError } from "./src/db/embedded/postgres_binaries.ts";
import { VERSION } from "./src/version.ts";

async function main(argv: string[]): Promise<number> {
  const [first, second] = argv;
  if (first === "--version" || first === "-V") {
    console.log(`portal ${VERSION}`);
    return 0;
  }
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    console.log(mainUsage());
    return first === undefined ? 2 : 0;
  }
  // The help of the command, or of its group ("portal webhook --help").
  const twoWord = second !== undefined && !second.startsWith("-") ? `${first} ${second}` : null;
  const helpPath = twoWord && COMMAND_USAGE[twoWord] !== undefined ? twoWord : first;
  const usage = COMMAND_USAGE[helpPath];
  const rest = argv.slice(helpPath.split(" ").length);
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(usage ?? mainUsage());
    return usage ? 0 : 2;
  }
  const io: CommandIo = {
    args: rest,
    env: Deno.env.toObject(),
    stdout: (line) => console.log(line),
    stderr: (line) => console.error(line),
    readStdin: async () =>
      new TextDecoder().decode(await new Response(Deno.stdin.readable).arrayBuffer()),
  };
  try {
    const found = findCommand(argv);
    if (found === null) throw new UsageError(`unknown command "${argv.join(" ")}"`);
    return await found.command.run(commandContext({ ...io, args: found.rest }, {
      web: createApp,
      worker: createWorkerApp,
      metrics: createMetricsApp,
    }));
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error("Cannot start: invalid configuration:");
      for (const problem of error.problems) console.error(`  ${problem}`);
      return 2;
    }
    if (error instanceof DataDirError || error instanceof NoEmbeddedPostgresError) {
      console.error(`portal: ${error.message}`);
      return 2;
    }
    if (error instanceof UsageError) {
      console.error(`portal: ${error.message}`);
      console.error(usage ? `\n${usage}` : `Run "portal --help" for the commands.`);
      return 2;
    }
    console.error(`portal: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
