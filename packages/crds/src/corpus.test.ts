// Every indexed corpus document (packages/crds/testdata/corpus) against its expectation:
// `expect: valid` must validate; every deliberately invalid one must be rejected, with
// `expectedError` (Istio's `_err`) contained in one of the messages. The exceptions are exactly
// the committed corpus-known-failures.txt.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadCorpus } from "./testdata/corpus.js";
import { validate } from "./validate.js";

const known = new Map(
  readFileSync(new URL("./corpus-known-failures.txt", import.meta.url), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("#"))
    .map((l) => {
      const space = l.indexOf(" ");
      return [l.slice(0, space), l.slice(space + 1)] as const;
    }),
);

describe("corpus", () => {
  const corpus = loadCorpus().filter((d) => d.expect !== "analyzer-input");

  it("has the documents the index lists", () => {
    expect(corpus.filter((d) => d.expect === "valid").length).toBe(1324);
    expect(corpus.filter((d) => d.expect === "invalid").length).toBe(235);
  });

  it("meets every expectation except the known failures, each with a reason", () => {
    const failures: string[] = [];
    const details: string[] = [];
    let rejectedWithMessage = 0;
    for (const d of corpus) {
      const r = validate(d.doc, { istio: d.istio, gatewayApi: "experimental" });
      const errors = r.issues.filter((i) => i.severity === "error").map((i) => i.message);
      let ok: boolean;
      if (d.expect === "valid") {
        ok = r.ok;
      } else {
        ok =
          !r.ok &&
          (d.expectedError === undefined ||
            errors.some((m) => m.includes(d.expectedError as string)));
        if (ok && d.expectedError !== undefined) rejectedWithMessage++;
      }
      if (!ok) {
        failures.push(d.key);
        details.push(
          `${d.key} (${d.kind} ${d.name ?? ""}, expect ${d.expect}): ${errors.join(" | ")}`,
        );
      }
    }
    expect(rejectedWithMessage).toBe(153);
    for (const reason of known.values()) expect(reason.length).toBeGreaterThan(10);
    expect(failures.sort(), details.join("\n")).toEqual([...known.keys()].sort());
  });

  it("agrees with the index's per-CRD-set verdicts (schema, list types, CEL, metadata, versions)", () => {
    // Where we deliberately differ from the research checker that produced the index:
    const differences = new Map([
      // status is dropped on create when the CRD has the status subresource, so it is not validated
      [
        "analyzer/istio-istio/pkg/config/analysis/analyzers/testdata/condition-analyzer.yaml#5",
        "status",
      ],
      [
        "analyzer/istio-istio/pkg/config/analysis/analyzers/testdata/condition-analyzer.yaml#6",
        "status",
      ],
      // go-yaml reads `[1.2.3.4, 001:db8::]` as two strings, as we do; the index used YAML 1.2 (a map)
      ["valid/istio-api/tests/testdata/serviceentry-valid.yaml#0", "yaml"],
      ["valid/istio-istio/pkg/config/validation/testdata/crds/serviceentry-valid.yaml#0", "yaml"],
      // the index did not check metadata.namespace (an upper-case namespace cannot exist)
      ["valid/istio-api-docs/networking/v1alpha3/virtual_service.examples.yaml#8", "namespace"],
      ["valid/istio-api-docs/networking/v1alpha3/virtual_service.examples.yaml#9", "namespace"],
    ]);
    const sets: Record<
      string,
      { istio?: "1.30" | "master"; gatewayApi?: "standard" | "experimental" }
    > = {
      "istio-1.30.3": { istio: "1.30" },
      "istio-master": { istio: "master" },
      "gw-v1.6.1-standard": { gatewayApi: "standard" },
      "gw-v1.6.1-experimental": { gatewayApi: "experimental" },
    };
    let compared = 0;
    const disagree = new Set<string>();
    for (const d of loadCorpus()) {
      for (const [set, verdict] of Object.entries(d.results ?? {})) {
        const options = sets[set];
        if (options === undefined) throw new Error(`unknown CRD set ${set}`);
        compared++;
        if (validate(d.doc, { ...options, semantic: false }).ok !== verdict.ok) disagree.add(d.key);
      }
    }
    expect(compared).toBeGreaterThan(3600);
    expect([...disagree].sort()).toEqual([...differences.keys()].sort());
  });

  it("rejects TLSRoute v1alpha2 with the standard channel (served only in experimental)", () => {
    const route = corpus.find(
      (d) => d.kind === "TLSRoute" && d.apiVersion.endsWith("v1alpha2") && d.expect === "valid",
    );
    expect(route).toBeDefined();
    const std = validate(route?.doc, { gatewayApi: "standard" });
    expect(std.ok).toBe(false);
    expect(std.issues[0]?.code).toBe("version/unserved");
    expect(validate(route?.doc, { gatewayApi: "experimental" }).ok).toBe(true);
  });
});
