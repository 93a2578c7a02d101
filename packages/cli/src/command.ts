// What every command module shares: exit codes, the context it is registered with, the --output
// option. Its own module (not main.ts) so that commands and main.ts do not import each other.
import { Option } from "commander";
import type { CliIo } from "./io.js";

/** Exit codes shared by every command. */
export const EXIT_OK = 0;
export const EXIT_FAILURE_FOUND = 1;
export const EXIT_USAGE = 2;

/** What a command action returns: its exit code. */
export type CommandResult = Promise<number>;

/** Context handed to command registrations. */
export interface CommandContext {
  io: CliIo;
  /** Sets the process exit code for the current run. */
  setExit(code: number): void;
}

/** `--output text|json` (and more formats where a command supports them). */
export function outputOption(formats: readonly string[] = ["text", "json"]): Option {
  return new Option("-o, --output <format>", "output format").choices(formats).default("text");
}
