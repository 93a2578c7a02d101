import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { CliError } from "./errors.js";

/** Where a command writes. Tests pass buffers; the binary passes process streams. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Reads all of standard input (for `-` arguments). */
  readStdin(): Promise<string>;
  /** Standard input as bytes, for commands that pipe (`hbone dial`). */
  stdinStream(): Readable;
  /** Standard output as bytes, for commands that pipe (`hbone dial`). */
  stdoutStream(): Writable;
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
 * Writes a file atomically (temp file in the same directory, then rename) using identity's writer,
 * so a crash never leaves a half-written key or certificate; failures become a CliError (exit 2).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  try {
    // Loaded here, not at start: only `ca` writes files, and identity/node is slow to load.
    const { writeFileAtomic: writeFileAtomicNode } = await import("@ambientkit/identity/node");
    await writeFileAtomicNode(path, data, mode);
  } catch (cause) {
    // identity's error already names the path; report the underlying fs error once.
    const reason = cause instanceof Error && cause.cause !== undefined ? cause.cause : cause;
    throw new CliError("ERR_CLI_OUTPUT_UNWRITABLE", `cannot write ${path}: ${describe(reason)}`, {
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
