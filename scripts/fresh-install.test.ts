// `npx ambientkit` in a fresh clone right after `npm install` must run our CLI, never ask the public
// registry for a package called `ambientkit` (issue 13): npm links a workspace's bin at install
// time, before `tsc -b` has built anything, so the bin must be a committed file. This repeats what
// npm does on a fresh clone with the CLI workspace alone (its dependencies left out, so the install
// is offline and instant): install, run the command before the build, then with the build in place.
import { execFileSync, spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "packages", "cli");
const work = mkdtempSync(join(tmpdir(), "fresh-install-"));

// npm run (as in `npm test`) exports npm_config_local_prefix and the like; a child npm that
// inherited them would act on this repository instead of the folder it runs in.
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== "INIT_CWD"),
);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const pkg = JSON.parse(readFileSync(join(cli, "package.json"), "utf8")) as {
  version: string;
  bin: Record<string, string>;
  dependencies?: unknown;
  devDependencies?: unknown;
  peerDependencies?: unknown;
  optionalDependencies?: unknown;
};

/**
 * `npx ambientkit …` in the fresh project, as the issue ran it; offline, so that a command npm did
 * not link locally fails here instead of being fetched from the registry.
 */
function npx(...args: string[]) {
  return spawnSync("npx", ["ambientkit", ...args], {
    cwd: work,
    encoding: "utf8",
    env: { ...cleanEnv, npm_config_offline: "true" },
  });
}

describe("a fresh clone's `npx ambientkit` after `npm install`", () => {
  it("the bin target is committed, so it exists before any build", () => {
    const tracked = execFileSync("git", ["ls-files", "packages/cli/bin"], {
      cwd: root,
      encoding: "utf8",
    });
    expect(pkg.bin.ambientkit).toBe("./bin/ambientkit.js");
    expect(tracked.split("\n")).toContain("packages/cli/bin/ambientkit.js");
  });

  it("npm install links it; before the build it says to build, it does not go to the registry", () => {
    mkdirSync(join(work, "packages", "cli", "bin"), { recursive: true });
    writeFileSync(
      join(work, "package.json"),
      JSON.stringify({ name: "fresh", private: true, workspaces: ["packages/cli"] }),
    );
    const {
      dependencies: _d,
      devDependencies: _dev,
      peerDependencies: _peer,
      optionalDependencies: _opt,
      ...alone
    } = pkg;
    writeFileSync(join(work, "packages", "cli", "package.json"), JSON.stringify(alone));
    writeFileSync(
      join(work, "packages", "cli", "bin", "ambientkit.js"),
      readFileSync(join(cli, "bin", "ambientkit.js")),
    );
    execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts"], {
      cwd: work,
      stdio: "pipe",
      env: cleanEnv,
    });
    expect(realpathSync(join(work, "node_modules", ".bin", "ambientkit"))).toBe(
      join(realpathSync(work), "packages", "cli", "bin", "ambientkit.js"),
    );
    const before = npx("--help");
    expect(before.stderr).toContain("the CLI is not built yet; run `npm run build`");
    expect(before.status).toBe(2);
  });

  it("once built, `npx ambientkit --help` and `--version` answer", () => {
    // The build, as `tsc -b` leaves it (npm test runs it before vitest); its imports resolve from
    // the real folder, where the dependencies are installed.
    symlinkSync(join(cli, "dist"), join(work, "packages", "cli", "dist"), "dir");
    const help = npx("--help");
    expect(help.stderr).toBe("");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Usage: ambientkit/);
    expect(help.stdout).toMatch(/validate/);
    const version = npx("--version");
    expect(version.stdout.trim()).toBe(pkg.version);
  });
});
