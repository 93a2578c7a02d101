// The installed command is bin/ambientkit.js, a shim that exists before dist/ is built (so npm links
// it at install time); it runs the compiled CLI.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..");

it("package.json's bin is the shim, and the shim runs the CLI", () => {
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as {
    version: string;
    bin: Record<string, string>;
    files: string[];
  };
  expect(pkg.bin).toEqual({ ambientkit: "./bin/ambientkit.js" });
  expect(pkg.files).toContain("bin");
  const out = execFileSync(process.execPath, [join(pkgDir, "bin", "ambientkit.js"), "--version"], {
    encoding: "utf8",
  });
  expect(out.trim()).toBe(pkg.version);
});
