// Mutations of valid corpus documents: each must be rejected with a useful code, path and line.
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type CorpusDoc, loadCorpus } from "./testdata/corpus.js";
import { validateYaml } from "./yaml.js";

// biome-ignore lint/suspicious/noExplicitAny: mutations poke into arbitrary manifest shapes
type Loose = any;

const valid = loadCorpus().filter((d) => d.expect === "valid" && d.istio === "1.30");

function pick(kind: string, pred: (doc: Record<string, Loose>) => boolean, n = 5): CorpusDoc[] {
  const out = valid
    .filter((d) => d.kind === kind && pred(d.doc as Record<string, Loose>))
    .slice(0, n);
  expect(out.length, `corpus has valid ${kind} documents to mutate`).toBeGreaterThan(0);
  return out;
}

function mutate(d: CorpusDoc, change: (doc: Record<string, Loose>) => void) {
  const copy = structuredClone(d.doc) as Record<string, Loose>;
  change(copy);
  const text = stringify(copy);
  const result = validateYaml(text, { istio: d.istio });
  expect(result.documents).toHaveLength(1);
  const doc = result.documents[0];
  if (doc === undefined) throw new Error("no document");
  return { text: text.split("\n"), doc };
}

function lineOf(lines: string[], line: number | undefined): string {
  return lines[(line ?? 0) - 1] ?? "";
}

describe("mutations of valid documents", () => {
  it("an unknown field (typo `form` for `from`) is rejected at its key", () => {
    for (const d of pick(
      "AuthorizationPolicy",
      (doc) => Array.isArray(doc.spec?.rules) && doc.spec.rules.length > 0,
    )) {
      const { text, doc } = mutate(d, (o) => {
        o.spec.rules[0].form = [{ source: { principals: ["x"] } }];
      });
      expect(doc.ok).toBe(false);
      const issue = doc.issues.find((i) => i.code === "unknown-field");
      expect(issue?.path).toBe("spec.rules[0].form");
      expect(issue?.message).toContain('unknown field "form"');
      expect(lineOf(text, issue?.line)).toMatch(/^\s*(- )?form:/);
    }
  });

  it("a wrong enum value is rejected with the supported values", () => {
    for (const d of pick("AuthorizationPolicy", () => true)) {
      const { text, doc } = mutate(d, (o) => {
        o.spec = { ...(o.spec ?? {}), action: "ALOW" };
      });
      const issue = doc.issues.find((i) => i.code === "schema/enum");
      expect(issue?.path).toBe("spec.action");
      expect(issue?.message).toContain(
        'Unsupported value: "ALOW": supported values: "ALLOW", "DENY", "AUDIT", "CUSTOM"',
      );
      expect(lineOf(text, issue?.line)).toMatch(/^\s*action: ALOW/);
    }
  });

  it("a wrong type is rejected (listener port as a string)", () => {
    for (const d of pick(
      "Gateway",
      (doc) =>
        doc.apiVersion.startsWith("gateway.networking.k8s.io") &&
        Array.isArray(doc.spec?.listeners),
    )) {
      const { text, doc } = mutate(d, (o) => {
        o.spec.listeners[0].port = "eighty";
      });
      const issue = doc.issues.find((i) => i.code === "schema/type");
      expect(issue?.path).toBe("spec.listeners[0].port");
      expect(issue?.message).toBe(
        'spec.listeners[0].port in body must be of type integer: "string"',
      );
      expect(lineOf(text, issue?.line)).toMatch(/port: eighty/);
    }
  });

  it("a duplicate list-map key is rejected (two listeners with one name)", () => {
    for (const d of pick(
      "Gateway",
      (doc) =>
        doc.apiVersion.startsWith("gateway.networking.k8s.io") &&
        Array.isArray(doc.spec?.listeners),
    )) {
      const { text, doc } = mutate(d, (o) => {
        o.spec.listeners.push({ ...o.spec.listeners[0], port: 65000 });
      });
      const n = (d.doc as Loose).spec.listeners.length;
      const issue = doc.issues.find((i) => i.code === "list-type/duplicate");
      expect(issue?.path).toBe(`spec.listeners[${n}]`);
      expect(issue?.message).toContain("Duplicate value");
      expect(lineOf(text, issue?.line)).toMatch(/^\s*- /);
    }
  });

  it("a duplicate ServiceEntry port number is rejected", () => {
    for (const d of pick(
      "ServiceEntry",
      (doc) => Array.isArray(doc.spec?.ports) && doc.spec.ports.length > 0,
    )) {
      const { doc } = mutate(d, (o) => {
        o.spec.ports.push({ ...o.spec.ports[0], name: "other-name" });
      });
      expect(
        doc.issues.some((i) => i.code === "list-type/duplicate" || i.code === "cel/rule"),
      ).toBe(true);
      expect(doc.ok).toBe(false);
    }
  });

  it("both selector and targetRefs are rejected by the CRD's CEL rule", () => {
    for (const kind of ["AuthorizationPolicy", "RequestAuthentication"]) {
      for (const d of pick(kind, (doc) => doc.spec?.selector !== undefined)) {
        const { text, doc } = mutate(d, (o) => {
          o.spec.targetRefs = [{ kind: "Gateway", group: "gateway.networking.k8s.io", name: "gw" }];
        });
        const issue = doc.issues.find((i) => i.code === "cel/rule");
        expect(issue?.message).toBe(
          'spec: Invalid value: "object": only one of targetRefs or selector can be set',
        );
        expect(issue?.path).toBe("spec");
        expect(lineOf(text, issue?.line)).toMatch(/^spec:/);
      }
    }
  });
});
