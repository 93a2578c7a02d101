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

/**
 * Reads a file, or standard input for `-`, as bytes, for callers that decode strictly (`validate`
 * reports invalid UTF-8 instead of reading U+FFFD); unreadable input is a CliError (exit 2).
 */
export async function readInputBytes(io: CliIo, path: string): Promise<Uint8Array> {
  if (path === "-") {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdinStream())
      chunks.push(typeof chunk === "string" ? Buffer.from(chunk, "utf8") : (chunk as Buffer));
    return Buffer.concat(chunks);
  }
  try {
    return await readFile(resolvePath(io, path));
  } catch (cause) {
    throw new CliError("ERR_CLI_INPUT_UNREADABLE", `cannot read ${path}: ${describe(cause)}`, {
      cause,
    });
  }
}

export function resolvePath(io: CliIo, path: string): string {
  return path.startsWith("/") ? path : join(io.cwd, path);
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
