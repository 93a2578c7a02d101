import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { CliError } from "./errors.js";

/** Where a command writes. Tests pass buffers; the binary passes process streams. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Reads all of standard input (for `-` arguments). */
  readStdin(): Promise<string>;
  /** Working directory that relative paths resolve against. */
  cwd: string;
}

/** Reads a file, or standard input for `-`, as UTF-8; unreadable input is a CliError (exit 2). */
export async function readInput(io: CliIo, path: string): Promise<string> {
  if (path === "-") return io.readStdin();
  try {
    return await readFile(resolvePath(io, path), "utf8");
  } catch (cause) {
    throw new CliError("ERR_CLI_INPUT_UNREADABLE", `cannot read ${path}: ${describe(cause)}`, {
      cause,
    });
  }
}

export function resolvePath(io: CliIo, path: string): string {
  return path.startsWith("/") ? path : join(io.cwd, path);
}

/**
 * Writes a file atomically: the bytes go to a temp file in the same directory, which is then
 * renamed over the target, so a crash never leaves a half-written key or certificate behind.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(tmp, data, { mode, flag: "wx" });
    await rename(tmp, path);
  } catch (cause) {
    await rm(tmp, { force: true });
    throw new CliError("ERR_CLI_OUTPUT_UNWRITABLE", `cannot write ${path}: ${describe(cause)}`, {
      cause,
    });
  }
}

export function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" && !error.message.includes(code)
      ? `${error.message} (${code})`
      : error.message;
  }
  return String(error);
}
