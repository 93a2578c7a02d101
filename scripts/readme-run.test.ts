// Runs each package README's first ```ts example as a user would run it — types stripped (oxc,
// through vite), every import resolved as the user's would be (the workspace packages through
// their source condition), the body evaluated as an async function with console.log captured —
// and compares what it prints with the example's `// → …` comments, in order.
// (readme-examples.test.ts type-checks the same blocks against the built packages.)
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Packages whose README example is run here (the others are verbatim copies of a test file). */
const RUN = ["identity", "hbone", "xds", "xds-types"] as const;
/** Needs root for network namespaces; runs where the inpod package's own tests run. */
const PRIVILEGED = ["inpod"] as const;

/** An example's code and the outputs its `// →` comments promise, in order. */
function readmeExampleOf(code: string): { code: string; expected: string[] } {
  return { code, expected: [...code.matchAll(/\/\/ → (.*)$/gm)].map((m) => m[1] ?? "") };
}

/** A package README's first ```ts block. */
function readmeExample(pkg: string): { code: string; expected: string[] } {
  const readme = readFileSync(join(root, "packages", pkg, "README.md"), "utf8");
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (code === undefined) throw new Error(`packages/${pkg}/README.md has no \`\`\`ts example`);
  return readmeExampleOf(code);
}

/** Evaluates an example; returns the lines it logged. */
async function runExample(code: string): Promise<string[]> {
  const { transformWithOxc } = await import("vite");
  const js = (await transformWithOxc(code, "readme.ts", { lang: "ts" })).code;
  const names: string[] = [];
  const loads: Array<Promise<Record<string, unknown>>> = [];
  const bind = (binding: string, from: string): string => {
    const slot = `__m${loads.length}`;
    names.push(slot);
    loads.push(import(from));
    return `const ${binding} = ${slot};\n`;
  };
  const body = js
    .replace(/^import \{([^}]+)\} from "([^"]+)";\n/gm, (_m, list: string, from: string) =>
      bind(`{${list.replace(/\bas\b/g, ":")}}`, from),
    )
    .replace(/^import (\w+) from "([^"]+)";\n/gm, (_m, name: string, from: string) =>
      bind(`{ default: ${name} }`, from),
    );
  if (/^import /m.test(body)) throw new Error(`an import form this runner does not bind:\n${body}`);
  const modules = await Promise.all(loads);
  const lines: string[] = [];
  const console = { log: (...a: unknown[]) => lines.push(a.join(" ")) };
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
    ...args: string[]
  ) => (...a: unknown[]) => Promise<void>;
  await new AsyncFunction(...names, "console", body)(...modules, console);
  return lines;
}

async function check(pkg: string): Promise<void> {
  const { code, expected } = readmeExample(pkg);
  expect(
    expected.length,
    `packages/${pkg}/README.md: the example promises no output`,
  ).toBeGreaterThan(0);
  expect(await runExample(code)).toEqual(expected);
}

describe("package README examples run and print what they claim", () => {
  for (const pkg of RUN) it(pkg, () => check(pkg), 30_000);
  // As the inpod package's own tests: only an explicit opt-out (a machine without root) skips it.
  const privileged = process.env.AMBIENTKIT_INPOD_NO_NETNS_PRIVILEGE !== "1";
  for (const pkg of PRIVILEGED) it.runIf(privileged)(pkg, () => check(pkg), 30_000);
});

describe("the runner itself", () => {
  it("fails an example whose output differs from its promise", async () => {
    const code = 'console.log("a"); // → b\n';
    expect(readmeExampleOf(code).expected).toEqual(["b"]);
    expect(await runExample(code)).toEqual(["a"]);
  });
  it("binds named, renamed and default imports", async () => {
    const code = [
      'import { join as j } from "node:path";',
      'import assert from "node:assert";',
      'assert.ok(true); console.log(j("a", "b"));',
      "",
    ].join("\n");
    expect(await runExample(code)).toEqual(["a/b"]);
  });
});
