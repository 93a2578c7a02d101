// Hostile YAML (issue #14): deep nesting, oversized documents, invalid UTF-8 and long streams
// come back as issues with positions, one document at a time, instead of crashing or stalling.

import { LinePositions, MAX_DOCUMENT_CHARS, MAX_NESTING_DEPTH } from "@ambientkit/xds-types/yaml";
import { describe, expect, it } from "vitest";
import type { IstioVersion, ValidateOptions } from "./types.js";
import {
  decodeYamlBytes,
  firstInvalidUtf8,
  loadYamlDocuments,
  validateYaml,
  validateYamlDocuments,
} from "./yaml.js";

const policy = (i: number): string => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: p-${i}
  namespace: demo
spec:
  action: ALLOW
  rules:
  - to:
    - operation:
        methods: ["GET"]
`;

/** An EnvoyFilter whose patch value (a preserve-unknown-fields subtree) holds `inner`. */
const envoyFilter = (inner: string): string => `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: deep
  namespace: demo
spec:
  configPatches:
  - applyTo: CLUSTER
    patch:
      operation: MERGE
      value: {v: ${inner}}
`;
// Collections above `inner`: root, spec, configPatches, the item, patch, value.
const ABOVE = 6;

describe("nesting depth", () => {
  it("reports a 10,000-deep flow document as nesting deeper than 128, at the first level too deep", () => {
    const deep = `${"[".repeat(10_000)}${"]".repeat(10_000)}`;
    const r = validateYaml(`${policy(0)}---\n${envoyFilter(deep)}---\n${policy(1)}`);
    expect(r.ok).toBe(false);
    expect(r.documents.map((d) => [d.index, d.line, d.ok])).toEqual([
      [0, 1, true],
      [1, 13, false],
      [2, 25, true],
    ]);
    const [issue, ...rest] = r.documents[1]?.issues ?? [];
    expect(rest).toEqual([]);
    expect(issue).toMatchObject({ code: "document/too-deep", severity: "error", line: 23 });
    expect(issue?.message).toMatch(/^nesting deeper than 128 levels/);
    expect(issue?.message).not.toContain("call stack");
    // The 129th collection: `value: {v: ` then the brackets.
    const line = envoyFilter(deep).split("\n")[10] as string;
    expect(issue?.column).toBe(line.indexOf("[") + 1 + (MAX_NESTING_DEPTH - ABOVE));
  });

  it("reports a 10,000-deep block sequence (`- - - …`) the same way", () => {
    const r = validateYaml(`a:\n${"- ".repeat(10_000)}x\n`);
    expect(r.documents[0]?.issues).toMatchObject([{ code: "document/too-deep", line: 2 }]);
  });

  it("accepts 128 levels and refuses 129", () => {
    const at = (n: number) =>
      validateYaml(envoyFilter(`${"[".repeat(n - ABOVE)}${"]".repeat(n - ABOVE)}`))
        .documents[0]?.issues.filter((i) => i.severity === "error")
        .map((i) => i.code) ?? [];
    // Errors only: Istio warns on every EnvoyFilter (IST0133), however shallow.
    expect(at(MAX_NESTING_DEPTH)).not.toContain("document/too-deep");
    expect(at(MAX_NESTING_DEPTH)).toEqual([]);
    expect(at(MAX_NESTING_DEPTH + 1)).toEqual(["document/too-deep"]);
  });

  it("counts the depth aliases add once expanded, and refuses a value that contains itself", () => {
    const half = (s: string) => `${"[".repeat(70)}${s}${"]".repeat(70)}`;
    const r = validateYaml(`a: &a ${half("1")}\nb: ${half("*a")}\n`);
    expect(r.documents[0]?.issues).toMatchObject([
      { code: "document/too-deep", line: 2, column: 74 },
    ]);
    expect(r.documents[0]?.issues[0]?.message).toContain("once alias *a is expanded");
    const self = validateYaml("apiVersion: v1\nkind: ConfigMap\ndata: &d [1, *d]\n");
    expect(self.documents[0]?.issues).toMatchObject([
      { code: "document/too-deep", line: 3, column: 14 },
    ]);
    expect(self.documents[0]?.issues[0]?.message).toContain("inside its own anchor");
  });

  it("loadYamlDocuments throws a clear error instead of overflowing the stack", () => {
    expect(() => loadYamlDocuments(`x: ${"[".repeat(5000)}${"]".repeat(5000)}`)).toThrow(
      /^nesting deeper than 128 levels.*\(line 1, column 131\)$/,
    );
  });
});

describe("document size cap", () => {
  it("refuses a document longer than 3 MiB without parsing it, and reads its neighbours", () => {
    // 28 characters a line, 100 kB over the cap.
    const lines = Array.from(
      { length: Math.ceil((MAX_DOCUMENT_CHARS + 100_000) / 28) },
      (_, i) => `  key-${String(i).padStart(7, "0")}: ${"v".repeat(12)}`,
    );
    const big = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n${lines.join("\n")}\n`;
    for (const end of ["", "...\n"]) {
      const text = `${policy(0)}---\n${big}${end}---\n${policy(1)}`;
      const r = validateYaml(text);
      expect(r.documents.map((d) => [d.index, d.line, d.ok, d.kind])).toEqual([
        [0, 1, true, "AuthorizationPolicy"],
        [1, 13, false, undefined],
        [2, 13 + big.split("\n").length + (end === "" ? 0 : 1), true, "AuthorizationPolicy"],
      ]);
      expect(r.documents[1]?.issues).toEqual([
        {
          code: "document/too-large",
          severity: "error",
          path: "",
          message:
            "document is longer than 3,145,728 characters (3 MiB, the API server's request size limit); not validated",
          line: 13,
          column: 1,
        },
      ]);
    }
  });

  it("a document just under the cap is validated as usual", () => {
    const value = "v".repeat(MAX_DOCUMENT_CHARS - 200);
    const r = validateYaml(
      `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: ${value}}\n`,
    );
    expect(r.documents).toMatchObject([{ ok: true, skipped: true, kind: "ConfigMap" }]);
  });
});

describe("duplicate keys", () => {
  it("are a syntax error at the repeated key, in block and flow maps of any size", () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => `  k${i}: v`);
    const block = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n${keys.join("\n")}\n  k7: again\n`;
    expect(validateYaml(block).documents[0]?.issues).toEqual([
      {
        code: "yaml/syntax",
        severity: "error",
        path: "",
        message: "YAML syntax error: Map keys must be unique",
        line: 5 + keys.length,
        column: 3,
      },
    ]);
    expect(validateYaml("a: {x: 1, y: 2, x: 3}\n").documents[0]?.issues[0]).toMatchObject({
      line: 1,
      column: 17,
    });
    // Equal values, not equal text, as the yaml package compares them: 1 and 0x1 are one key.
    expect(validateYaml("a: {1: x, 0x1: y}\n").documents[0]?.issues[0]?.code).toBe("yaml/syntax");
    expect(validateYaml('a: {1: x, "1": y}\n').documents[0]?.issues).toEqual([
      expect.objectContaining({ code: "document/missing-type" }),
    ]);
    // Merge keys may repeat.
    const merged = loadYamlDocuments("b: &b {x: 1}\nc: &c {y: 2}\nd:\n  <<: *b\n  <<: *c\n");
    expect(merged).toEqual([{ b: { x: 1 }, c: { y: 2 }, d: { x: 1, y: 2 } }]);
  });
});

describe("validateYamlDocuments", () => {
  it("validates one document per step: nothing ahead of what the caller asked for", () => {
    // Every validation reads options.istio once; counting the reads counts the documents validated.
    let validated = 0;
    const options: ValidateOptions = {
      get istio(): IstioVersion {
        validated++;
        return "1.30";
      },
    };
    const n = 500;
    const text = Array.from({ length: n }, (_, i) => policy(i)).join("---\n");
    const it = validateYamlDocuments(text, options);
    const first = it.next();
    expect(first.done).toBe(false);
    expect(first.value).toMatchObject({ index: 0, line: 1, ok: true, name: "p-0" });
    expect(validated).toBe(1);
    const second = it.next();
    expect(second.value).toMatchObject({ index: 1, line: 13, name: "p-1" });
    expect(validated).toBe(2);
    // The caller may stop at any point; the rest is never read.
    it.return(undefined);
    expect(validated).toBe(2);
    // And the whole stream gives what validateYaml gives.
    validated = 0;
    const all = [...validateYamlDocuments(text, options)];
    expect(validated).toBe(n);
    expect(all).toEqual(validateYaml(text).documents);
    expect(all.map((d) => d.line)).toEqual(Array.from({ length: n }, (_, i) => 1 + 12 * i));
  });

  it("keeps positions right across many documents with issues", () => {
    const bad = (i: number) => policy(i).replace("action: ALLOW", "action: ALOW");
    const text = Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? bad(i) : policy(i))).join(
      "---\n",
    );
    for (const d of validateYamlDocuments(text)) {
      if (d.index % 3 !== 0) {
        expect(d.issues).toEqual([]);
        continue;
      }
      expect(d.issues).toMatchObject([{ path: "spec.action", line: d.line + 6, column: 3 }]);
    }
  });
});

describe("UTF-8", () => {
  const bytes = (...parts: Array<string | number[]>): Uint8Array =>
    new Uint8Array(
      parts.flatMap((p) => (typeof p === "string" ? [...new TextEncoder().encode(p)] : p)),
    );

  it("reports the first invalid byte with its offset, line and column instead of U+FFFD", () => {
    // "é" is two bytes but one column; 0xE9 alone is Latin-1 "é", not UTF-8.
    const input = bytes("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: café-", [0xe9], "\n");
    const r = decodeYamlBytes(input);
    expect(r.text).toBeUndefined();
    expect(r.issue).toEqual({
      code: "yaml/encoding",
      severity: "error",
      path: "",
      message:
        "invalid UTF-8 at byte 55 (0xE9 0x0A…): YAML and JSON manifests must be UTF-8; the file was not validated",
      line: 4,
      column: 14,
    });
    expect(validateYaml(input)).toEqual({
      ok: false,
      documents: [{ index: 0, line: 4, ok: false, skipped: false, issues: [r.issue] }],
    });
  });

  it("finds overlong forms, surrogates, out-of-range and truncated sequences", () => {
    expect(firstInvalidUtf8(bytes("ok é € 😀"))).toBe(-1);
    expect(firstInvalidUtf8(bytes("a", [0xc0, 0xaf]))).toBe(1); // overlong "/"
    expect(firstInvalidUtf8(bytes("ab", [0xe0, 0x80, 0xaf]))).toBe(2); // overlong
    expect(firstInvalidUtf8(bytes([0xed, 0xa0, 0x80]))).toBe(0); // a UTF-16 surrogate
    expect(firstInvalidUtf8(bytes([0xf4, 0x90, 0x80, 0x80]))).toBe(0); // above U+10FFFF
    expect(firstInvalidUtf8(bytes("x", [0xe2, 0x82]))).toBe(1); // truncated at the end
    expect(firstInvalidUtf8(bytes("é", [0x80]))).toBe(2); // a lone continuation byte
  });

  it("keeps a byte order mark, so columns on line 1 are as before", () => {
    const r = decodeYamlBytes(bytes([0xef, 0xbb, 0xbf], "kind: x\n"));
    expect(r.text).toBe("\ufeffkind: x\n");
  });
});

describe("LinePositions", () => {
  it("agrees with a plain count, forwards and backwards", () => {
    const text = "\nab\n\ncdef\ng\n\n";
    const naive = (o: number) => {
      const before = text.slice(0, o);
      return { line: before.split("\n").length, col: o - (before.lastIndexOf("\n") + 1) + 1 };
    };
    const lines = new LinePositions(text);
    for (const o of [0, 1, 2, 3, 4, 5, 9, 10, 12, 3, 0, 11, 1, 7, 12, 2])
      expect(lines.at(o)).toEqual(naive(o));
  });
});
