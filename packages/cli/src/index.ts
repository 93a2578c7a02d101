export {
  type CommandContext,
  type CommandResult,
  EXIT_FAILURE_FOUND,
  EXIT_OK,
  EXIT_USAGE,
  outputOption,
} from "./command.js";
export { CliError, type CliErrorCode } from "./errors.js";
export { type CliIo, readInput } from "./io.js";
export { run } from "./main.js";
