// Runs the README's example as a user's TypeScript: types stripped (oxc, through vite), imports
// replaced by this package's modules, the rest evaluated as an async function body capturing
// console.log.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));

it("the README example runs and prints what it claims", async () => {
  const readme = readFileSync(join(here, "..", "README.md"), "utf8");
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  expect(code).toContain("encodeAuthorization");
  const modules: Record<string, Record<string, unknown>> = {
    "@ambientkit/xds-types": await import("./index.js"),
    "@ambientkit/xds-types/local-xds": await import("./local-xds-entry.js"),
  };
  const { transformWithOxc } = await import("vite");
  const js = (await transformWithOxc(code, "readme.ts", { lang: "ts" })).code;
  const scope: Record<string, unknown> = {};
  const body = js.replace(
    /^import \{([^}]+)\} from "([^"]+)";\n/gm,
    (_m, list: string, from: string) => {
      for (const n of list.split(",").map((x) => x.trim())) scope[n] = modules[from]?.[n];
      return "";
    },
  );
  const logs: string[] = [];
  scope.console = { log: (...a: unknown[]) => logs.push(a.join(" ")) };
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
    ...args: string[]
  ) => (...a: unknown[]) => Promise<void>;
  await new AsyncFunction(...Object.keys(scope), body)(...Object.values(scope));
  const expected = /^\/\/ → (.*)/m.exec(code)?.[1];
  expect(logs).toEqual([expected]);
});
