// Runs the README's first example as a user's TypeScript would run: types stripped (oxc, through
// vite), the package import bound to this package's modules, the body evaluated as an async
// function with console.log captured and compared with the `// →` line.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { privileged } from "./netns.testutil.js";

const here = dirname(fileURLToPath(import.meta.url));

describe.skipIf(!privileged())("README", () => {
  it("the example runs and prints what it claims", async () => {
    const readme = readFileSync(join(here, "..", "README.md"), "utf8");
    const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
    expect(code).toContain("listenInNetns");
    const pkg: Record<string, unknown> = await import("./index.js");
    const { transformWithOxc } = await import("vite");
    const js = (await transformWithOxc(code, "readme.ts", { lang: "ts" })).code;
    const scope: Record<string, unknown> = {};
    const body = js.replace(
      /^import \{([^}]+)\} from "([^"]+)";\n/gm,
      (_m, list: string, from: string) => {
        expect(from).toBe("@ambientkit/inpod");
        for (const n of list.split(",").map((x) => x.trim())) scope[n] = pkg[n];
        return "";
      },
    );
    const logs: string[] = [];
    scope.console = { log: (...a: unknown[]) => logs.push(a.join(" ")) };
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
      ...args: string[]
    ) => (...a: unknown[]) => Promise<void>;
    await new AsyncFunction(...Object.keys(scope), body)(...Object.values(scope));
    expect(logs).toEqual([/^\/\/ → (.*)/m.exec(code)?.[1]]);
  });
});
