/** Shared types for the `portal` command line. */

/** A mistake in how the command was called: exit code 2 with usage. */
export class UsageError extends Error {}

/** What a subcommand receives: its arguments and where to write. */
export interface CommandIo {
  args: string[];
  env: Record<string, string | undefined>;
  stdout: (line: string) => void;
  stderr: (line: string) => void;
  /** Reads standard input fully (only used for `--password-stdin`). */
  readStdin: () => Promise<string>;
}
