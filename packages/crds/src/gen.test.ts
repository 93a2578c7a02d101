import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// biome-ignore lint/correctness/useImportExtensions: a plain .mjs script, not a TS module
import { generate, packageRoot } from "../scripts/generate.mjs";

describe("generated files", () => {
  it("src/gen matches what `npm run generate` produces from crds/ (run it and commit)", () => {
    const files = generate();
    expect([...files.keys()].sort()).toEqual([
      "src/gen/crd-data.ts",
      "src/gen/gateway-api-types.ts",
      "src/gen/istio-master-types.ts",
      "src/gen/istio-types.ts",
    ]);
    for (const [rel, content] of files) {
      const onDisk = readFileSync(join(packageRoot, rel), "utf8");
      expect(onDisk === content, `${rel} is stale: run npm run generate`).toBe(true);
    }
  });
});
