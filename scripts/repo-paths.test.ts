// The repository must stand alone: a clone on a user's machine has nothing beside it, so no code,
// test, script or config may read a path above the repository root (the team's shared folder that
// sits beside our own checkouts in particular). Data such tests need is copied in, with a SOURCE note, under a package's testdata/.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// Built, not written out, so that this file does not itself name the folder it forbids.
const UP = "..";
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Files that run or configure something; prose (Markdown) and data (YAML, JSONL) are not read. */
const CODE = /(\.(ts|mts|cts|js|mjs|cjs|json|sh|py)|^\.ci\/run|Makefile)$/;

/** Every place in `text` that names a path outside `root`, read as if it sat in `file`. */
function outsidePaths(file: string, text: string): string[] {
  const found: string[] = [];
  // The team folder, however it is spelled: a relative "shared" one level up, or join(x, "..", shared).
  for (const m of text.matchAll(/\.\.\/+shared\b|["']\.\.["']\s*,\s*["']shared["']/g))
    found.push(m[0]);
  // Relative path literals: resolved against the file's folder, they must stay inside the root.
  for (const m of text.matchAll(/["'`]((?:\.\.\/)+[^"'`\s]*)["'`]/g)) {
    const target = resolve(dirname(join(root, file)), m[1] ?? "");
    if (relative(root, target).startsWith(`..${sep}`) || relative(root, target) === "..")
      found.push(m[0]);
  }
  // join(repoRoot, <up>, …): one step above a variable that names the repository root.
  for (const m of text.matchAll(/\b(repoRoot|repo|root|rootDir)\s*,\s*["']\.\.["']/g))
    found.push(m[0]);
  return found;
}

describe("the repository stands alone", () => {
  const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], {
    cwd: root,
    encoding: "utf8",
  })
    .split("\n")
    .filter((f) => f !== "" && CODE.test(f) && !f.includes("/testdata/") && !f.includes("/gen/"));

  it("reads the tracked code and config files", () => {
    // A guard against a check that silently reads nothing.
    expect(files.length).toBeGreaterThan(100);
    expect(files).toContain(".ci/run");
  });

  it("no code, test, script or config refers to a path above the repository root", () => {
    const offenders: string[] = [];
    for (const f of files) {
      let text: string;
      try {
        text = readFileSync(join(root, f), "utf8");
      } catch {
        continue; // deleted in the work tree but still in the index
      }
      for (const hit of outsidePaths(f, text)) offenders.push(`${f}: ${hit}`);
    }
    expect(offenders).toEqual([]);
  });

  it("the check itself catches each spelling", () => {
    expect(
      outsidePaths("packages/a/src/x.ts", `join(repoRoot, "${UP}", "shared", "x")`),
    ).not.toEqual([]);
    expect(
      outsidePaths("packages/a/src/x.ts", `const p = "${UP}/${UP}/${UP}/${UP}/etc/x";`),
    ).not.toEqual([]);
    expect(outsidePaths("bench/src/x.ts", `readFileSync('${UP}/shared/data/corpus')`)).not.toEqual(
      [],
    );
    expect(outsidePaths("packages/a/src/x.ts", 'import { y } from "../y.js";')).toEqual([]);
    expect(outsidePaths("packages/a/src/x.ts", 'join(here, "..", "testdata")')).toEqual([]);
  });
});
