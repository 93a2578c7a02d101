// Runs the README example (the same code) and checks what its comments say.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { istio, validate, validateYaml } from "./index.js";

describe("README example", () => {
  it("runs and prints what the README says", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
    expect(code).toContain("validateYaml(text).documents");
    const text = /const text = `([\s\S]*?)`;/.exec(code)?.[1] ?? "";
    const printed: string[] = [];
    for (const doc of validateYaml(text).documents) {
      for (const i of doc.issues)
        printed.push(`${i.line}:${i.column} ${i.severity} ${i.code} ${i.message}`);
    }
    expect(printed).toHaveLength(1);
    expect(printed[0]).toMatch(
      /^11:9 error unknown-field spec\.rules\[0\]\.to\[0\]\.operation\.pahts: unknown field "pahts" /,
    );
    const policy = {
      apiVersion: "security.istio.io/v1",
      kind: "AuthorizationPolicy",
      metadata: { name: "deny-get" },
      spec: { action: "DENY", rules: [{ to: [{ operation: { methods: ["GET"] } }] }] },
    };
    expect(code).toContain(
      'spec: { action: "DENY", rules: [{ to: [{ operation: { methods: ["GET"] } }] }] } };',
    );
    expect(validate(policy).issues[0]?.message).toContain("will deny all traffic to TCP ports");
    const typed: istio.AuthorizationPolicy = istio.AuthorizationPolicySchema.parse(policy);
    expect(typed.spec?.action).toBe("DENY");
  });
});
