// Symbol.for, not Symbol(): two installed copies of this package must recognise each other's errors.
const kBrand = Symbol.for("@ambientkit/cli.CliError");

/** Codes for problems the CLI reports itself (usage and input). Library errors keep their own codes. */
export type CliErrorCode =
  | "ERR_CLI_USAGE"
  | "ERR_CLI_INPUT_UNREADABLE"
  | "ERR_CLI_INPUT_INVALID"
  | "ERR_CLI_OUTPUT_UNWRITABLE";

/** An error the CLI turns into one line on stderr and exit code 2. */
export class CliError extends Error {
  override readonly name = "CliError";
  readonly code: CliErrorCode;
  constructor(code: CliErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, kBrand, { value: true });
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && kBrand in value;
  }
}
