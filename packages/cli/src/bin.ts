#!/usr/bin/env node
import { text } from "node:stream/consumers";
import { run } from "./main.js";

const code = await run(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  readStdin: () => text(process.stdin),
  stdinStream: () => process.stdin,
  stdoutStream: () => process.stdout,
  cwd: process.cwd(),
});
process.exitCode = code;
