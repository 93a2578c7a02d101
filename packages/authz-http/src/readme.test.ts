import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

it("README example runs, answers what it says, and is the README's code verbatim", async () => {
  const { results } = await import("./readme-example.testutil.js");
  expect(results).toEqual({ writer: 200, reader: 403 });
  const here = dirname(fileURLToPath(import.meta.url));
  const src = readFileSync(join(here, "readme-example.testutil.ts"), "utf8");
  const example = src.slice(
    src.indexOf("// --- example start\n") + 21,
    src.indexOf("// --- example end"),
  );
  const readme = readFileSync(join(here, "..", "README.md"), "utf8");
  expect(readme).toContain(`\`\`\`ts\n${example.trimEnd()}\n\`\`\``);
});
