import { readdirSync } from "node:fs";
import { defineConfig } from "vitest/config";

const dirs = [...readdirSync("packages").map((name) => `packages/${name}`), "examples", "bench"];

// Tests import sibling packages through the "@ambientkit/source" export condition, so they run
// against src/ without a build; `tsc -b` still type-checks them through project references.
export default defineConfig({
  resolve: { conditions: ["@ambientkit/source"] },
  // Node-environment tests resolve through the SSR resolver, which needs the condition too.
  ssr: {
    resolve: { conditions: ["@ambientkit/source"], externalConditions: ["@ambientkit/source"] },
  },
  test: {
    projects: dirs
      .map((dir) => ({
        extends: true as const,
        test: { name: dir.split("/").at(-1) ?? dir, dir, include: ["src/**/*.test.ts"] },
      }))
      .concat([
        // Checks of the repository as a whole (paths, layout), not of one package.
        { extends: true as const, test: { name: "repo", dir: "scripts", include: ["*.test.ts"] } },
      ]),
    passWithNoTests: true,
    // .ci/run asks for a JSON report next to the normal console output.
    ...(process.env.VITEST_JSON_REPORT
      ? { reporters: ["default", "json"], outputFile: { json: process.env.VITEST_JSON_REPORT } }
      : {}),
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
});
