#!/usr/bin/env node
// Issue #14 soak: runs the fail-closed properties (src/fail-closed-property.test.ts) with far more
// runs than `npm test` does. Usage: npm run soak:authz [-- RUNS]  (default 100000 per property).
// Prints the run count per property and, on failure, fast-check's counterexample and seed; exits
// non-zero when any property fails.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const runs = Number(process.argv[2] ?? 100_000);
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`usage: fail-closed-soak.mjs [RUNS]  (a positive integer, got ${process.argv[2]})`);
  process.exit(2);
}
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const started = Date.now();
console.log(`fail-closed soak: ${runs} runs per property, 7 properties`);
const child = spawn(
  process.execPath,
  [
    join(root, "node_modules", "vitest", "vitest.mjs"),
    "run",
    "--project",
    "authz",
    "packages/authz/src/fail-closed-property.test.ts",
  ],
  { cwd: root, stdio: "inherit", env: { ...process.env, AUTHZ_FAIL_CLOSED_RUNS: String(runs) } },
);
child.on("exit", (code, signal) => {
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const ok = code === 0;
  console.log(
    ok
      ? `fail-closed soak: ${runs * 7} runs in ${seconds} s, no counterexample`
      : `fail-closed soak: FAILED after ${seconds} s (${signal ?? `exit ${code}`}): counterexample above`,
  );
  process.exit(ok ? 0 : 1);
});
