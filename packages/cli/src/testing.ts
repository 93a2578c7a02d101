import { Readable, Writable } from "node:stream";
import type { CliIo } from "./io.js";
import { run } from "./main.js";

/** Result of running the CLI in-process with captured output. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process, capturing stdout/stderr; `stdin` feeds `-` arguments. */
export async function runCli(
  argv: readonly string[],
  options: { stdin?: string; cwd?: string } = {},
): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    readStdin: async () => options.stdin ?? "",
    stdinStream: () => Readable.from([Buffer.from(options.stdin ?? "")]),
    stdoutStream: () =>
      new Writable({
        write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void) {
          stdout += chunk.toString("utf8");
          callback();
        },
      }),
    cwd: options.cwd ?? process.cwd(),
  };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}
