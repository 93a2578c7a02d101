// The universal packages (authz, xds-types, crds) and the cores of identity, telemetry and authz-http must run in
// browsers and edge workers: their projects compile with `types: []`, so a `node:` import (or
// Buffer, process) fails the build. This proves it with a probe file compiled under each project's
// settings, next to a control probe that must compile.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(root, "node_modules", ".bin", "tsc");
const work = mkdtempSync(join(tmpdir(), "universal-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const UNIVERSAL = [
  "packages/authz/tsconfig.json",
  "packages/xds-types/tsconfig.json",
  "packages/crds/tsconfig.json",
  "packages/identity/tsconfig.json",
  "packages/telemetry/tsconfig.json",
  "packages/authz-http/tsconfig.json",
];

/** Compiles `source` under the settings of `project`; returns tsc's exit status and output. */
function compile(project: string, name: string, source: string): { status: number; out: string } {
  const dir = join(work, name);
  execFileSync("mkdir", ["-p", dir]);
  writeFileSync(join(dir, "probe.ts"), source);
  // ESM, as every package here is (nodenext reads the nearest package.json).
  writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      extends: join(root, project),
      compilerOptions: {
        rootDir: dir,
        noEmit: true,
        composite: false,
        declaration: false,
        declarationMap: false,
        isolatedDeclarations: false,
      },
      include: [join(dir, "probe.ts")],
      exclude: [],
      references: [],
    }),
  );
  try {
    return { status: 0, out: execFileSync(tsc, ["-p", dir], { encoding: "utf8", stdio: "pipe" }) };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { status: err.status, out: `${err.stdout}${err.stderr}` };
  }
}

describe("universal projects cannot import node:", () => {
  for (const project of UNIVERSAL) {
    it(project, () => {
      const config = JSON.parse(readFileSync(join(root, project), "utf8")) as {
        compilerOptions: { types?: string[] };
      };
      expect(config.compilerOptions.types).toEqual([]);
      const name = project.split("/")[1] ?? "x";
      const ok = compile(project, `${name}-ok`, "export const answer: number = [1, 2].length;\n");
      expect(ok.out).toBe("");
      expect(ok.status).toBe(0);
      const bad = compile(
        project,
        `${name}-bad`,
        'import { readFileSync } from "node:fs";\nexport const read: unknown = readFileSync;\n',
      );
      expect(bad.status).not.toBe(0);
      expect(bad.out).toMatch(/node:fs/);
      const buffer = compile(
        project,
        `${name}-buffer`,
        "export const b: unknown = Buffer.from([1]);\n",
      );
      expect(buffer.status).not.toBe(0);
      expect(buffer.out).toMatch(/Buffer/);
    });
  }
});
