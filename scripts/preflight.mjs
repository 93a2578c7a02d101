#!/usr/bin/env node
// `npm test` runs this first: the tests use independent peers and checkers from Debian, and without
// them a test fails deep inside with an error that does not say what is missing. This names every
// missing tool with the Debian package that brings it, at once, and exits 1.
//
// PATH is searched as the tests search it; the Python peers run on Debian's /usr/bin/python3
// (AMBIENTKIT_PYTHON overrides it, as the preflight's own test does).
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { pathToFileURL } from "node:url";

/** Commands on PATH: [command, Debian package, what needs it]. */
export const COMMANDS = [
  ["openssl", "openssl", "identity and CA tests check against the openssl CLI"],
  ["curl", "curl", "HBONE and example tests use curl as a client"],
  ["git", "git", "the repository checks list tracked files"],
  ["nghttpx", "nghttp2-proxy", "HBONE interop tests against nghttpx"],
  ["ip", "iproute2", "in-pod tests build network namespaces"],
  ["iptables", "iptables", "in-pod tests redirect traffic"],
  ["dig", "dnsutils", "the reference ztunnel's DNS proxy tests query it with dig"],
  ["chromium", "chromium", "the browser-bundle test runs headless Chromium"],
];

/** Python modules of /usr/bin/python3: [module, Debian package, what needs it]. */
export const PYTHON_MODULES = [
  ["h2", "python3-h2", "HBONE interop tests against a python-h2 peer"],
  ["prometheus_client", "python3-prometheus-client", "metrics are parsed by Prometheus' parser"],
  ["grpc", "python3-grpcio", "xDS client tests against an independent control plane"],
];

// Also the sbin folders, which are not on a non-root user's PATH on Debian (iptables lives there)
// while the tests that need them find them by absolute path or run as root.
const SBIN = ["/usr/sbin", "/sbin"];

function onPath(command) {
  // The browser test takes its binary from CHROMIUM when that is set.
  if (command === "chromium" && process.env.CHROMIUM) return isExecutable(process.env.CHROMIUM);
  const path = process.env.PATH ?? "";
  // An empty PATH searches nothing at all: the preflight's test uses it for "a bare machine".
  const dirs = path === "" ? [] : [...path.split(delimiter), ...SBIN];
  return dirs.some((dir) => dir !== "" && isExecutable(join(dir, command)));
}

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Every missing tool as { what, debian, why }. */
export function missing() {
  const out = [];
  for (const [command, debian, why] of COMMANDS)
    if (!onPath(command)) out.push({ what: command, debian, why });
  const python = process.env.AMBIENTKIT_PYTHON ?? "/usr/bin/python3";
  // find_spec looks a module up without importing it: one fast process for all of them.
  const probe = spawnSync(
    python,
    [
      "-c",
      "import importlib.util, sys\nfor m in sys.argv[1:]:\n    if importlib.util.find_spec(m) is None: print(m)",
      ...PYTHON_MODULES.map(([m]) => m),
    ],
    { encoding: "utf8" },
  );
  if (probe.status !== 0) {
    out.push({ what: python, debian: "python3", why: "the Python peers run on it" });
    for (const [module, debian, why] of PYTHON_MODULES)
      out.push({ what: `python module ${module}`, debian, why });
  } else {
    const absent = new Set(probe.stdout.split("\n").filter((l) => l !== ""));
    for (const [module, debian, why] of PYTHON_MODULES)
      if (absent.has(module)) out.push({ what: `python module ${module}`, debian, why });
  }
  return out;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const gaps = missing();
  if (gaps.length > 0) {
    const width = Math.max(...gaps.map((g) => g.what.length));
    process.stderr.write(
      `npm test needs tools that this machine lacks:\n${gaps
        .map((g) => `  ${g.what.padEnd(width)}  (Debian: ${g.debian}) ${g.why}`)
        .join("\n")}\n\nInstall them:\n  apt-get install -y ${[
        ...new Set(gaps.map((g) => g.debian)),
      ].join(
        " ",
      )}\nor run \`bash .ci/run\` (as root), which installs them and runs the tests in a fresh clone.\n`,
    );
    process.exit(1);
  }
}
