// scripts/preflight.mjs runs first in `npm test` and names every missing tool with its Debian
// package. Checked here: it passes on this machine (which has what the tests need), it names all
// of them on a machine that has none, and every package it names is one that .ci/run installs and
// the README's apt-get line lists, so the three lists cannot drift apart.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const script = join(root, "scripts", "preflight.mjs");

function run(env: Record<string, string>) {
  return spawnSync(process.execPath, [script], {
    encoding: "utf8",
    env: { ...process.env, ...env },
  });
}

describe("preflight", () => {
  it("passes where every tool is installed", () => {
    const r = run({});
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  // Nothing on PATH and no Python: every requirement is reported, in one go.
  const none = run({ PATH: "", AMBIENTKIT_PYTHON: join(root, "no-such-python") });
  const packages = (/apt-get install -y (.*)/.exec(none.stderr)?.[1] ?? "").split(" ");

  it("names every missing tool with its Debian package, and how to run .ci/run", () => {
    expect(none.status).toBe(1);
    expect(packages).toEqual(
      expect.arrayContaining([
        "openssl",
        "nghttp2-proxy",
        "python3-h2",
        "iproute2",
        "dnsutils",
        "chromium",
      ]),
    );
    expect(new Set(packages).size).toBe(12);
    expect(none.stderr).toMatch(/nghttpx +\(Debian: nghttp2-proxy\)/);
    expect(none.stderr).toMatch(/python module h2 +\(Debian: python3-h2\)/);
    expect(none.stderr).toContain("bash .ci/run");
  });

  it(".ci/run installs every package the preflight asks for", () => {
    const ci = readFileSync(join(root, ".ci", "run"), "utf8");
    const installed = [...ci.matchAll(/need_apt\+=\(([\w.-]+)\)/g)].map((m) => m[1]);
    expect(installed.sort()).toEqual([...packages].sort());
  });

  it("the README's apt-get line lists every package the preflight asks for", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const line = /^apt-get install -y (.*)$/m.exec(readme)?.[1]?.split(" ") ?? [];
    // python3 comes with the python3-* packages (they depend on it), git with the clone itself.
    expect(line.sort()).toEqual(packages.filter((p) => p !== "python3" && p !== "git").sort());
  });
});
