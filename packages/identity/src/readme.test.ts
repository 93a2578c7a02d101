// Runs the README's example verbatim as a user's TypeScript would run: types stripped (oxc, through
// vite), its imports resolved to this package's modules and the rest evaluated as an async function
// body. (scripts/readme-examples.test.ts type-checks it.)
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));

it("the README example runs and prints what it claims", async () => {
  const readme = readFileSync(join(here, "..", "README.md"), "utf8");
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeDefined();
  const modules: Record<string, () => Promise<Record<string, unknown>>> = {
    "@ambientkit/identity": () => import("./index.js"),
    "@ambientkit/identity/node": () => import("./node.js"),
    "node:tls": () => import("node:tls"),
  };
  const names: string[] = [];
  const values: unknown[] = [];
  const { transformWithOxc } = await import("vite");
  const js = (await transformWithOxc(code as string, "readme.ts", { lang: "ts" })).code;
  const body = js.replace(
    /^import \{([^}]+)\} from "([^"]+)";\n/gm,
    (_m, list: string, from: string) => {
      names.push(`__${names.length}`);
      values.push(from);
      return `const {${list}} = __${names.length - 1};\n`;
    },
  );
  const resolved = await Promise.all(
    values.map((from) => {
      const load = modules[from as string];
      if (!load) throw new Error(`README imports ${String(from)}, which this test does not map`);
      return load();
    }),
  );
  const lines: string[] = [];
  const fakeConsole = { log: (...args: unknown[]) => lines.push(args.join(" ")) };
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
    ...args: string[]
  ) => (...values: unknown[]) => Promise<void>;
  await new AsyncFunction(...names, "console", body)(...resolved, fakeConsole);
  expect(lines).toEqual([
    "verified spiffe://cluster.local/ns/default/sa/client",
    "hello spiffe://cluster.local/ns/default/sa/client",
  ]);
});
