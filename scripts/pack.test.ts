// What each published package's tarball holds, as `npm pack` makes it (prepack included): the
// licence, the README, the build; no tests or test data; every path package.json promises (exports
// under every condition, the `@ambientkit/source` one included; bin; sideEffects) and every
// source-map `sources` entry resolves inside the tarball; README links work from the npm page
// (absolute, and those into the tarball name files that are in it); a prepack that fails leaves the
// package folder as it was. `tsc -b` runs first in `npm test`.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const run = promisify(execFile);

// npm run (as in `npm test`) exports npm_config_local_prefix and the like; a child npm that
// inherited them would act on this repository instead of the folder it runs in.
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== "INIT_CWD"),
);

interface PackageJson {
  name: string;
  private?: boolean;
  license?: string;
  exports?: unknown;
  bin?: Record<string, string>;
  sideEffects?: boolean | string[];
  files?: string[];
}

const packages = readdirSync(join(root, "packages"))
  .sort()
  .map((dir) => ({
    dir,
    pkg: JSON.parse(
      readFileSync(join(root, "packages", dir, "package.json"), "utf8"),
    ) as PackageJson,
  }))
  .filter(({ pkg }) => pkg.private !== true);

const tarballs = new Map<string, Set<string>>();

// A failed pack (prepack refusing a stale dist/, say) fails every test below with its message,
// rather than leaving them reported as skipped.
let setupError: unknown;

beforeAll(async () => {
  await packAll().catch((e: unknown) => {
    setupError = e;
  });
}, 120_000);

async function packAll(): Promise<void> {
  // Two at a time: the machine is shared.
  const queue = [...packages];
  const worker = async () => {
    for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
      const { stdout } = await run("npm", ["pack", "--dry-run", "--json"], {
        cwd: join(root, "packages", p.dir),
        env: cleanEnv,
        maxBuffer: 64 * 1024 * 1024,
      });
      const [report] = JSON.parse(stdout) as [{ files: { path: string }[] }];
      tarballs.set(p.dir, new Set(report.files.map((f) => f.path)));
    }
  };
  await Promise.all([worker(), worker()]);
}

/** Every string target in an `exports` value, whatever the nesting of conditions. */
function targets(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (value === null || typeof value !== "object") return [];
  return Object.values(value).flatMap(targets);
}

const inTarball = (files: Set<string>, path: string) => files.has(posix.normalize(path));

const LICENSE = readFileSync(join(root, "LICENSE"), "utf8");

it("the root LICENSE is the Apache License 2.0 that every package.json names", () => {
  expect(LICENSE).toContain("Apache License\n                           Version 2.0, January 2004");
  expect(LICENSE).toContain("END OF TERMS AND CONDITIONS");
  expect(packages.map((p) => p.pkg.license)).toEqual(packages.map(() => "Apache-2.0"));
  expect(packages.length).toBeGreaterThanOrEqual(10);
});

describe.each(packages)("$pkg.name tarball", ({ dir, pkg }) => {
  beforeEach(() => {
    if (setupError !== undefined) throw setupError;
  });
  const files = () => tarballs.get(dir) ?? new Set<string>();
  const pkgDir = join(root, "packages", dir);

  it("holds LICENSE (the root's text), README.md, package.json and the build", () => {
    for (const f of ["LICENSE", "README.md", "package.json", "dist/index.js", "dist/index.d.ts"])
      expect(files()).toContain(f);
    expect(pkg.files).toContain("LICENSE");
    expect(readFileSync(join(pkgDir, "LICENSE"), "utf8")).toBe(LICENSE);
  });

  it("holds no tests, test helpers, test data or build info", () => {
    const bad = [...files()].filter((f) =>
      /(\.test\.|\.testutil\.|(^|\/)testdata\/|\.tsbuildinfo$|corpus-known-failures)/.test(f),
    );
    expect(bad).toEqual([]);
  });

  it("every exports target (every condition), bin and sideEffects path is in it", () => {
    const promised = [
      ...targets(pkg.exports),
      ...Object.values(pkg.bin ?? {}),
      ...(Array.isArray(pkg.sideEffects) ? pkg.sideEffects : []),
    ];
    expect(promised.length).toBeGreaterThan(1);
    expect(promised.filter((p) => !inTarball(files(), p))).toEqual([]);
  });

  it("every source map's sources resolve inside it", () => {
    const maps = [...files()].filter((f) => f.endsWith(".map"));
    expect(maps.length).toBeGreaterThan(0);
    const unresolved: string[] = [];
    for (const map of maps) {
      const { sources, sourceRoot } = JSON.parse(readFileSync(join(pkgDir, map), "utf8")) as {
        sources: string[];
        sourceRoot?: string;
      };
      for (const s of sources) {
        const path = posix.join(posix.dirname(map), sourceRoot ?? "", s);
        if (!inTarball(files(), path)) unresolved.push(`${map} → ${s}`);
      }
    }
    expect(unresolved).toEqual([]);
  });

  it("README links work from the npm page: absolute, and those into the tarball resolve", () => {
    const readme = readFileSync(join(pkgDir, "README.md"), "utf8");
    const links = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] ?? "");
    expect(links.filter((l) => !/^(https?:\/\/|#)/.test(l))).toEqual([]);
    const self = `https://unpkg.com/${pkg.name}/`;
    const shipped = links.filter((l) => l.startsWith(self)).map((l) => l.slice(self.length));
    expect(shipped.filter((p) => !files().has(p.split("#")[0] ?? p))).toEqual([]);
    // Into another package's tarball: name it on npm instead.
    expect(links.filter((l) => l.startsWith("https://unpkg.com/") && !l.startsWith(self))).toEqual(
      [],
    );
  });
});

describe("prepack", () => {
  it("refuses a README that links a missing doc before copying any doc (npm runs no postpack then)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "prepack-"));
    try {
      writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "@ambientkit/x" }));
      writeFileSync(
        join(dir, "README.md"),
        "[a](https://unpkg.com/@ambientkit/x/docs/architecture.md) [b](https://unpkg.com/@ambientkit/x/docs/no-such-guide.md)\n",
      );
      await expect(
        run(process.execPath, [join(root, "scripts", "prepack.mjs")], { cwd: dir, env: cleanEnv }),
      ).rejects.toMatchObject({
        stderr: expect.stringContaining(
          "README.md links docs that do not exist: docs/no-such-guide.md",
        ),
      });
      expect(readdirSync(dir).sort()).toEqual(["README.md", "package.json"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
