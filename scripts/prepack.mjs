#!/usr/bin/env node
// A package's `prepack` / `postpack` (run by npm in the package's folder).
//
// 1. Refuses to pack a stale build: `tsc -b` never deletes the output of a source that was renamed or
//    removed, so a long-lived checkout's dist/ can hold modules (and maps into src/) that no longer
//    exist. Every source map in dist/ must name sources that exist.
// 2. The README's links to the
// guides must work on the npm page, where a relative link resolves to nothing; they point at the
// copy shipped inside the tarball instead (https://unpkg.com/<package>/docs/…, see
// docs/releasing.md). Before packing this copies each docs/… file the README links to that way from
// the repository's docs/ into the package folder; `--clean` (postpack) removes the copies again.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const pkgDir = process.cwd();
const { name } = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));

/** The docs/… paths that `readme` links to inside package `name`'s tarball. */
function shippedDocs(readme, name) {
  const prefix = `https://unpkg.com/${name}/`;
  const paths = new Set();
  for (const m of readme.matchAll(/\]\((https:\/\/unpkg\.com\/[^)\s#]+)/g)) {
    const url = m[1];
    if (url.startsWith(prefix) && url.slice(prefix.length).startsWith("docs/"))
      paths.add(url.slice(prefix.length));
  }
  return [...paths];
}

if (pkgDir === root || !existsSync(join(pkgDir, "README.md")))
  throw new Error("pack-docs: run it from a package folder (npm's prepack does)");
/** Every file under `dir`, relative to it. */
function walk(dir, prefix = "") {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

if (!process.argv.includes("--clean")) {
  const stale = walk(join(pkgDir, "dist"))
    .filter((f) => f.endsWith(".map"))
    .filter((f) => {
      const map = JSON.parse(readFileSync(join(pkgDir, "dist", f), "utf8"));
      const base = join(pkgDir, "dist", dirname(f), map.sourceRoot ?? "");
      return map.sources.some((s) => !existsSync(join(base, s)));
    });
  if (stale.length > 0)
    throw new Error(
      `${name}: dist/ holds output of sources that no longer exist (${stale.slice(0, 3).join(", ")}…): ` +
        "rebuild it from scratch (rm -rf dist && tsc -b) before packing",
    );
}

const docs = shippedDocs(readFileSync(join(pkgDir, "README.md"), "utf8"), name);
if (process.argv.includes("--clean")) {
  // Only the copies, then the folders they leave empty: nothing else in the package is touched.
  for (const path of docs) rmSync(join(pkgDir, path), { force: true });
  for (const dir of [...new Set(docs.map((p) => dirname(p)))].sort().reverse()) {
    for (let d = dir; d !== "."; d = dirname(d)) {
      const abs = join(pkgDir, d);
      if (existsSync(abs) && readdirSync(abs).length === 0) rmdirSync(abs);
    }
  }
} else {
  // every doc is checked before any is copied: a failing prepack leaves the package folder as it was
  // (npm runs no postpack then)
  const missing = docs.filter((path) => !existsSync(join(root, path)));
  if (missing.length > 0)
    throw new Error(`${name}: README.md links docs that do not exist: ${missing.join(", ")}`);
  for (const path of docs) {
    mkdirSync(dirname(join(pkgDir, path)), { recursive: true });
    copyFileSync(join(root, path), join(pkgDir, path));
  }
}
