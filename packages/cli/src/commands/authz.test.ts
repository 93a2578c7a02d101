import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runCli } from "../testing.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");
const sample = join(repoRoot, "packages", "authz", "testdata", "authz-sample-cases.yaml");
const dir = mkdtempSync(join(tmpdir(), "ambientkit-authz-cli-"));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const policies = file(
  "policies.yaml",
  `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  rules:
  - from: [{source: {namespaces: [bar]}}]
    to: [{operation: {methods: [GET]}}]
  - from: [{source: {namespaces: [baz]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: foo}
spec:
  action: DENY
  rules:
  - to: [{operation: {ports: ["8080"], paths: ["/admin*"]}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored, namespace: foo}
`,
);

describe("ambientkit authz test", () => {
  it("runs the conformance sample cases: all pass, exit 0", async () => {
    const r = await runCli(["authz", "test", sample]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^35 passed, 0 failed/m);
  });

  it("--output json gives passed/failed/results", async () => {
    const r = await runCli(["authz", "test", sample, "--output", "json"]);
    const out = JSON.parse(r.stdout) as {
      passed: number;
      failed: number;
      results: { id: string; passed: boolean; expected: unknown; got: unknown }[];
    };
    expect(out.failed).toBe(0);
    expect(out.passed).toBe(out.results.length);
    expect(out.results.find((x) => x.id === "zt-046-deny-l7-plus-port-broadened")).toMatchObject({
      passed: true,
      expected: { decision: "deny", decidedBy: "foo/deny-post-8080" },
      got: { decision: "deny", decidedBy: "foo/deny-post-8080" },
    });
  });

  it("a failing case prints expected vs got with the explanation and exits 1", async () => {
    const f = file(
      "fail.yaml",
      `cases:
- id: wrong-expectation
  enforcement: ztunnel
  mesh: {rootNamespace: istio-system, trustDomain: cluster.local, trustDomainAliases: []}
  policies:
  - apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: allow-get, namespace: foo}
    spec:
      rules:
      - to: [{operation: {methods: [GET]}}]
  workload: {namespace: foo, labels: {app: x}}
  connection: {sourcePrincipal: "spiffe://cluster.local/ns/bar/sa/sleep", sourceIp: 10.0.0.2, destinationIp: 10.0.0.3, destinationPort: 80}
  expect: {decision: allow, decidedBy: foo/allow-get}
`,
    );
    const r = await runCli(["authz", "test", f]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("FAIL wrong-expectation");
    expect(r.stdout).toContain(
      "expected allow by foo/allow-get, got deny by implicit:no-allow-match",
    );
    expect(r.stdout).toContain("to.operation.methods");
    expect(r.stdout).toMatch(/0 passed, 1 failed/);
  });

  it("bad input exits 2 naming the file and line", async () => {
    const f = file(
      "bad.yaml",
      `cases:
- id: bad
  enforcement: ztunnel
  workload: {namespace: foo}
  connection:
    sourcePrincipal: null
    sourceIp: 10.0.0.2
    destinationIp: 10.0.0.3
    destinationPort: http
  expect: {decision: allow}
`,
    );
    const r = await runCli(["authz", "test", f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${f}:9:22: destinationPort must be a port number`);
  });

  it("invalid YAML exits 2 with file and line", async () => {
    const f = file("broken.yaml", "cases:\n  - id: [unclosed\n");
    const r = await runCli(["authz", "test", f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`${f.replace(/[.]/g, "\\.")}:\\d+:\\d+: invalid YAML`));
  });

  it("reads - from stdin; a failing validation case is reported", async () => {
    const stdin = `validationCases:
- id: wrong
  policy:
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: x, namespace: foo}
    spec: {action: DENY}
  expect: {valid: true}
`;
    const r = await runCli(["authz", "test", "-", "-o", "json"], { stdin });
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as {
      failed: number;
      results: { id: string; got: { valid: boolean; messages: string[] } }[];
    };
    expect(out.failed).toBe(1);
    expect(out.results[0]?.got.valid).toBe(false);
    expect(out.results[0]?.got.messages[0]).toContain("DENY action without `rules` is meaningless");
  });

  it("a missing file exits 2", async () => {
    const r = await runCli(["authz", "test", join(dir, "nope.yaml")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("cannot read");
  });
});

describe("ambientkit authz check", () => {
  const common = [
    "--namespace",
    "foo",
    "--labels",
    "app=httpbin",
    "--source-principal",
    "spiffe://cluster.local/ns/bar/sa/sleep",
    "--source-ip",
    "10.0.2.20",
    "--destination-ip",
    "10.0.1.10",
    "--destination-port",
    "8080",
  ];
  it("ztunnel: the ALLOW rule with methods is dropped; the DENY with paths denies all of 8080", async () => {
    const r = await runCli([
      "authz",
      "check",
      "--policies",
      policies,
      "--enforcement",
      "ztunnel",
      ...common,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^deny \(decidedBy foo\/deny-admin, rule 0\) at ztunnel/);
    expect(r.stdout).toContain("ignored: foo/allow-get rule 0 to.operation.methods");
  });
  it("--output json prints the Decision value", async () => {
    const r = await runCli([
      "authz",
      "check",
      "--policies",
      policies,
      "--enforcement",
      "ztunnel",
      ...common.slice(0, -1),
      "9090",
      "-o",
      "json",
    ]);
    const d = JSON.parse(r.stdout) as { decision: string; decidedBy: string; ignored: unknown[] };
    expect(d).toMatchObject({ decision: "deny", decidedBy: "implicit:no-allow-match" });
    expect(d.ignored.length).toBeGreaterThan(0);
  });
  it("--case takes everything from a case file", async () => {
    const r = await runCli([
      "authz",
      "check",
      "--case",
      sample,
      "--case-id",
      "wp-048-custom-deny",
      "-o",
      "json",
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      decision: "deny",
      decidedBy: "custom:my-ext-authz",
    });
  });
  it("missing flags are a usage error (exit 2)", async () => {
    const r = await runCli(["authz", "check", "--policies", policies, "--enforcement", "ztunnel"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--namespace is required");
  });
});

describe("ambientkit authz convert", () => {
  it("prints what istiod sends to ztunnel, with the HTTP status notes", async () => {
    const r = await runCli(["authz", "convert", "--policies", policies]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "# foo/allow-get: ztunnel does not support HTTP attributes (found: methods)",
    );
    expect(r.stdout).toContain("name: deny-admin");
    expect(r.stdout).toContain("- Exact: baz");
  });
  it("--output json", async () => {
    const r = await runCli(["authz", "convert", "--policies", policies, "-o", "json"]);
    const out = JSON.parse(r.stdout) as {
      policies: { name: string; scope: string; action: string; rules: unknown[] }[];
    };
    expect(out.policies.map((p) => [p.name, p.scope, p.action, p.rules.length])).toEqual([
      ["allow-get", "WorkloadSelector", "Allow", 1],
      ["deny-admin", "Namespace", "Deny", 1],
    ]);
    expect(out.policies[1]?.rules).toEqual([[[{ destinationPorts: [8080] }]]]);
  });
});
