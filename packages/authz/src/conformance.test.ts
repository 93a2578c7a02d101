import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { runCaseFile } from "./index.js";

// The sample conformance cases, copied into the package (origin in testdata/SOURCE.md).
const samplePath = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "testdata",
  "authz-sample-cases.yaml",
);

describe("conformance sample cases", () => {
  const doc: unknown = parse(readFileSync(samplePath, "utf8"));
  const report = runCaseFile(doc);
  it("parses every case without input issues", () => {
    expect(report.issues).toEqual([]);
    expect(report.results.length).toBeGreaterThan(20);
  });
  for (const r of report.results) {
    it(`${r.kind} ${r.id}`, () => {
      expect(
        r.passed,
        `${r.id}: expected ${JSON.stringify(r.expected)} got ${JSON.stringify(r.got)}\n${r.explanation.join("\n")}`,
      ).toBe(true);
    });
  }
});
