import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
// README example (kept byte-identical to the README's code block by the test below)
// --- example start
import { compilePolicies, parsePolicyResource } from "@ambientkit/authz";
import { expect, it } from "vitest";

const parsed = parsePolicyResource({
  apiVersion: "security.istio.io/v1",
  kind: "AuthorizationPolicy",
  metadata: { name: "allow-get", namespace: "foo" },
  spec: {
    rules: [
      { from: [{ source: { namespaces: ["bar"] } }], to: [{ operation: { methods: ["GET"] } }] },
    ],
  },
});
if (!parsed.ok) throw new Error(parsed.issues.map((i) => i.message).join("\n"));

const policies = compilePolicies([parsed.value], {
  rootNamespace: "istio-system",
  trustDomain: "cluster.local",
  trustDomainAliases: [],
});
const decision = policies.decide({
  enforcement: "ztunnel",
  workload: { namespace: "foo", labels: { app: "httpbin" } },
  connection: {
    sourcePrincipal: "spiffe://cluster.local/ns/bar/sa/sleep",
    sourceIp: "10.0.2.20",
    destinationIp: "10.0.1.10",
    destinationPort: 8080,
  },
});
console.log(decision.decision, decision.decidedBy); // deny implicit:no-allow-match
console.log(decision.ignored[0]?.attribute); // to.operation.methods: ztunnel dropped the rule
// --- example end

it("README example runs and says what it prints", () => {
  expect([decision.decision, decision.decidedBy]).toEqual(["deny", "implicit:no-allow-match"]);
  expect(decision.ignored[0]?.attribute).toBe("to.operation.methods");
  const here = dirname(fileURLToPath(import.meta.url));
  const self = readFileSync(fileURLToPath(import.meta.url), "utf8");
  const example = self.slice(
    self.indexOf("// --- example start\n") + 21,
    self.indexOf("// --- example end"),
  );
  const readme = readFileSync(join(here, "..", "README.md"), "utf8");
  expect(readme).toContain(example);
});
