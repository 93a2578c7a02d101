// Every package README's ```ts example (and the root README's) must type-check as a consumer's code would: written into a
// project outside the repository whose `@ambientkit/*` resolve to the built packages' `dist` types
// through their package.json `exports` (no source condition, as an installed package resolves; `tsc
// -b` runs before vitest in `npm test`), checked with `strict` under `module: nodenext` and under
// `moduleResolution: bundler`. The README tests run the examples, but as untyped JavaScript, so a
// type error would never show there.
//
// Also: every package an example imports is in one of its README's `npm install` lines, so a
// reader who copies the install line and the example has everything.
import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";
import { afterAll, describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(root, "node_modules", ".bin", "tsc");

interface Example {
  readme: string; // packages/<name>/README.md
  line: number; // README line of the block's first code line
  file: string; // name in the consumer project
  code: string;
}

function examples(): Example[] {
  const out: Example[] = [];
  const readmes = readdirSync(join(root, "packages"))
    .sort()
    .map((name) => [name, `packages/${name}/README.md`]);
  for (const [name, readme] of [["root", "README.md"], ...readmes] as [string, string][]) {
    let text: string;
    try {
      text = readFileSync(join(root, readme), "utf8");
    } catch {
      continue;
    }
    let n = 0;
    for (const m of text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
      const line = text.slice(0, m.index).split("\n").length + 1;
      out.push({ readme, line, file: `${name}-${n++}.ts`, code: m[1] ?? "" });
    }
  }
  return out;
}

const all = examples();

/** Packages named by `npm install …` lines of a README (flags and versions dropped). */
function installed(readme: string): Set<string> {
  const text = readFileSync(join(root, readme), "utf8");
  const names = new Set<string>();
  for (const m of text.matchAll(/^npm install (.*)$/gm))
    for (const word of (m[1] ?? "").split(/\s+/)) {
      if (word.startsWith("#")) break; // a comment
      if (word === "" || word.startsWith("-")) continue;
      names.add(word.replace(/(.)@[^/]*$/, "$1"));
    }
  return names;
}

/** The package part of a bare specifier: `@scope/name` or `name`. */
function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier);
}

// The consumer project: its own folder, node_modules being the repository's (where npm linked the
// workspaces and installed every dependency the examples use, with their types).
const work = mkdtempSync(join(tmpdir(), "readme-examples-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
symlinkSync(join(root, "node_modules"), join(work, "node_modules"), "dir");
writeFileSync(
  join(work, "package.json"),
  '{ "name": "consumer", "private": true, "type": "module" }\n',
);
mkdirSync(join(work, "src"));
for (const ex of all) writeFileSync(join(work, "src", ex.file), ex.code);
// Controls: a plain type error, and one that only shows if @ambientkit types really resolve (a
// missing or `any` module would not report TS2322 here). Each must be reported, or the check
// checks nothing.
writeFileSync(join(work, "src", "control-plain.ts"), 'export const n: number = "x";\n');
writeFileSync(
  join(work, "src", "control-types.ts"),
  'import { parseSpiffeId } from "@ambientkit/identity";\nexport const n: number = parseSpiffeId("spiffe://cluster.local/ns/a/sa/b");\n',
);

const COMMON = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  target: "es2022",
  lib: ["es2023"],
  types: ["node"],
};
const MODES: Record<string, Record<string, unknown>> = {
  nodenext: { module: "nodenext", moduleResolution: "nodenext" },
  bundler: { module: "esnext", moduleResolution: "bundler" },
};

/** tsc's diagnostics for the consumer project under `mode`, README files mapped to README lines. */
function check(mode: string): string[] {
  const config = join(work, `tsconfig.${mode}.json`);
  writeFileSync(
    config,
    JSON.stringify({ compilerOptions: { ...COMMON, ...MODES[mode] }, include: ["src"] }),
  );
  let out: string;
  try {
    out = execFileSync(tsc, ["-p", config, "--pretty", "false"], { cwd: work, encoding: "utf8" });
  } catch (e) {
    const err = e as { stdout: string; stderr: string };
    out = `${err.stdout}${err.stderr}`;
  }
  return out
    .split("\n")
    .filter((l) => /^src\//.test(l))
    .map((l) => {
      const m = /^src\/([^(]+)\((\d+),(\d+)\): (.*)$/.exec(l);
      const ex = all.find((x) => x.file === m?.[1]);
      return ex && m ? `${ex.readme}:${ex.line + Number(m[2]) - 1}:${m[3]} ${m[4]}` : l;
    });
}

describe("README examples", () => {
  it("every package with a TypeScript example is found", () => {
    const withExamples = new Set(all.map((e) => e.readme.split("/")[1]));
    for (const p of ["identity", "hbone", "authz", "authz-http", "crds", "telemetry", "xds"])
      expect(withExamples).toContain(p);
  });

  for (const mode of Object.keys(MODES)) {
    it(`type-check with strict, ${mode}`, () => {
      const diagnostics = check(mode);
      const controls = diagnostics.filter((d) => d.startsWith("src/control-"));
      expect(controls).toEqual([
        expect.stringMatching(/^src\/control-plain\.ts\(1,14\): error TS2322/),
        expect.stringMatching(/^src\/control-types\.ts\(2,14\): error TS2322.*SpiffeId/),
      ]);
      expect(diagnostics.filter((d) => !d.startsWith("src/control-"))).toEqual([]);
    }, 60_000);
  }

  it("the root README's example runs, as a consumer's program, and prints what it claims", async () => {
    const ex = all.find((e) => e.readme === "README.md");
    const { code } = await transform(ex?.code ?? "", { loader: "ts", format: "esm" });
    writeFileSync(join(work, "root-example.mjs"), code);
    const out = execFileSync(process.execPath, [join(work, "root-example.mjs")], {
      cwd: work,
      encoding: "utf8",
    });
    expect(out.trim()).toBe(/^\/\/ → (.*)$/m.exec(ex?.code ?? "")?.[1]);
  });

  it("every package an example imports is in its README's npm install line", () => {
    const builtins = new Set(builtinModules);
    const missing: string[] = [];
    for (const ex of all) {
      const names = installed(ex.readme);
      for (const m of ex.code.matchAll(/^import [^"]*? from "([^"]+)";$/gm)) {
        const spec = m[1] ?? "";
        if (spec.startsWith("node:") || builtins.has(spec) || spec.startsWith(".")) continue;
        if (!names.has(packageOf(spec))) missing.push(`${ex.readme}: ${spec}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
