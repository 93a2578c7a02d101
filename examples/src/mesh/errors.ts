/** Stable codes of the reference mesh's errors. */
export type ExampleErrorCode =
  | "ERR_EXAMPLES_CONFIG"
  | "ERR_EXAMPLES_LISTEN"
  | "ERR_EXAMPLES_CLOSED"
  | "ERR_EXAMPLES_ROUTE";

const BRAND = Symbol.for("ambientkit.examples.error");

/**
 * The error class of the reference ztunnel, waypoint and demo. Config errors name the file and line
 * (`file`, `line`) so the operator can fix the YAML.
 */
export class ExampleError extends Error {
  readonly code: ExampleErrorCode;
  readonly file: string | undefined;
  readonly line: number | undefined;
  constructor(
    code: ExampleErrorCode,
    message: string,
    options?: ErrorOptions & { file?: string; line?: number },
  ) {
    super(message, options);
    this.name = "ExampleError";
    this.code = code;
    this.file = options?.file;
    this.line = options?.line;
    (this as unknown as Record<symbol, boolean>)[BRAND] = true;
  }
  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === "object" && v !== null && (v as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** A config problem at `file:line`: `"<file>:<line>: <message>"`. */
export function configError(file: string, line: number | undefined, message: string): ExampleError {
  const where = line === undefined ? file : `${file}:${line}`;
  return new ExampleError("ERR_EXAMPLES_CONFIG", `${where}: ${message}`, {
    file,
    ...(line !== undefined ? { line } : {}),
  });
}

/**
 * A `true`/`false` environment setting (ztunnel's style); unset or empty → `fallback`, anything else
 * is a config error naming the variable, never a silent default.
 */
export function envFlag(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  if (v === "true" || v === "false") return v === "true";
  throw new ExampleError("ERR_EXAMPLES_CONFIG", `${name}=${v}: expected true or false`);
}
