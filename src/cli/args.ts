/** Argument parsing on node:util parseArgs, turning its errors into UsageError. */
import { parseArgs as nodeParseArgs } from "node:util";
import { UsageError } from "./cli_types.ts";

type OptionSpec = Record<
  string,
  { type: "string" | "boolean"; multiple?: boolean; short?: string }
>;

/** Parses `args` strictly; unknown flags and missing values become UsageError. */
export function parseArgs<T extends OptionSpec>(
  args: string[],
  options: T,
  { positionals = 0 } = {},
) {
  try {
    const parsed = nodeParseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    if (parsed.positionals.length > positionals) {
      throw new UsageError(`unexpected argument "${parsed.positionals[positionals]}"`);
    }
    return parsed;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError((error as Error).message.replace(/\. To specify.*$/s, ""));
  }
}
