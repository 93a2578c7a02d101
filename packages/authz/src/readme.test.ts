import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { decision } from "./readme-example.testutil.js";

it("README example runs, prints what it says, and is the README's code verbatim", () => {
  expect([decision.decision, decision.decidedBy]).toEqual(["deny", "implicit:no-allow-match"]);
  expect(decision.ignored[0]?.attribute).toBe("to.operation.methods");
  const here = dirname(fileURLToPath(import.meta.url));
  const src = readFileSync(join(here, "readme-example.testutil.ts"), "utf8");
  const example = src.slice(
    src.indexOf("// --- example start\n") + 21,
    src.indexOf("// --- example end"),
  );
  const readme = readFileSync(join(here, "..", "README.md"), "utf8");
  expect(readme).toContain(`\`\`\`ts\n${example.trimEnd()}\n\`\`\``);
});
