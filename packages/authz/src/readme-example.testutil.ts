// The README example, verbatim between the markers; readme.test.ts runs it and checks the README.
// --- example start
import { compilePolicies, parsePolicyResource } from "@ambientkit/authz";

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
export { decision };
