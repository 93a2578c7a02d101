import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../testing.js";

const GOOD_AP = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-get
  namespace: demo
spec:
  action: ALLOW
  rules:
  - to:
    - operation:
        methods: ["GET"]
`;
const BAD_AP = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: typo
spec:
  action: ALLOW
  rules:
  - form:
    - source:
        principals: ["cluster.local/ns/a/sa/b"]
`;
const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
`;
const ROUTE_JSON = JSON.stringify({
  apiVersion: "gateway.networking.k8s.io/v1alpha2",
  kind: "TLSRoute",
  metadata: { name: "tls" },
  spec: { hostnames: ["a.example.com"], rules: [{ backendRefs: [{ name: "s", port: 443 }] }] },
});

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ambientkit-validate-"));
  await mkdir(join(dir, "good", "nested"), { recursive: true });
  await mkdir(join(dir, "bad"), { recursive: true });
  await writeFile(join(dir, "good", "ap.yaml"), `${GOOD_AP}---\n${DEPLOYMENT}`);
  await writeFile(join(dir, "good", "nested", "route.json"), ROUTE_JSON);
  await writeFile(join(dir, "good", "notes.txt"), "not a manifest");
  await writeFile(join(dir, "bad", "ap.yml"), BAD_AP);
  await writeFile(join(dir, "bad", "garbage.yaml"), "kind: [unclosed\n");
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("ambientkit validate", () => {
  it("exits 0 on a directory of valid manifests, counting skipped kinds", async () => {
    const r = await runCli(["validate", "good"], { cwd: dir });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // Warnings (here: a deprecated apiVersion) are printed but do not fail the run.
    expect(r.stdout.split("\n")).toEqual([
      "good/nested/route.json:1:2: warning version/deprecated The v1alpha2 version of TLSRoute has been deprecated and will be removed in a future release of the API. Please upgrade to v1. (TLSRoute/tls)",
      "2 file(s), 3 document(s): 2 valid, 0 invalid, 1 skipped",
      "",
    ]);
  });

  it("--strict makes unknown kinds an error", async () => {
    const r = await runCli(["validate", "--strict", "good/ap.yaml"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("good/ap.yaml:14:1: error kind/unknown");
    expect(r.stdout).toContain("(Deployment/app)");
  });

  it("prints file:line:column: severity code message (kind/name) and exits 1", async () => {
    const r = await runCli(["validate", "bad"], { cwd: dir });
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toContain(
      'bad/ap.yml:8:5: error unknown-field spec.rules[0].form: unknown field "form" (not declared in the schema; the API server would prune or reject it) (AuthorizationPolicy/typo)',
    );
    expect(lines.find((l) => l.startsWith("bad/garbage.yaml:"))).toMatch(
      /^bad\/garbage.yaml:2:1: error yaml\/syntax YAML syntax error: Flow sequence/,
    );
  });

  it("--gateway-api standard rejects alpha versions served only in experimental", async () => {
    const std = await runCli(["validate", "--gateway-api", "standard", "good/nested/route.json"], {
      cwd: dir,
    });
    expect(std.code).toBe(1);
    expect(std.stdout).toContain("error version/unserved");
    const exp = await runCli(["validate", "good/nested/route.json"], { cwd: dir });
    expect(exp.code).toBe(0);
  });

  it("reads stdin for - and prints the JSON report", async () => {
    const r = await runCli(["validate", "-o", "json", "-"], {
      stdin: `${BAD_AP}---\n${DEPLOYMENT}`,
      cwd: dir,
    });
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ files: 1, documents: 2, skipped: 1, valid: 0, invalid: 1 });
    expect(report.results[0]).toMatchObject({
      file: "<stdin>",
      line: 1,
      apiVersion: "security.istio.io/v1",
      kind: "AuthorizationPolicy",
      name: "typo",
      namespace: null,
      valid: false,
    });
    expect(report.results[0].issues[0]).toMatchObject({
      code: "unknown-field",
      severity: "error",
      path: "spec.rules[0].form",
      line: 8,
      column: 5,
    });
  });

  it("prints SARIF 2.1.0", async () => {
    const r = await runCli(["validate", "--output", "sarif", "bad/ap.yml"], { cwd: dir });
    expect(r.code).toBe(1);
    const log = JSON.parse(r.stdout);
    expect(log.version).toBe("2.1.0");
    const result = log.runs[0].results[0];
    expect(result).toMatchObject({ ruleId: "unknown-field", level: "error" });
    expect(result.locations[0].physicalLocation).toEqual({
      artifactLocation: { uri: "bad/ap.yml" },
      region: { startLine: 8, startColumn: 5 },
    });
    expect(log.runs[0].tool.driver.rules.map((x: { id: string }) => x.id)).toContain(
      "unknown-field",
    );
  });

  it("exits 2 on missing input and bad flags", async () => {
    expect((await runCli(["validate", "nope.yaml"], { cwd: dir })).code).toBe(2);
    expect((await runCli(["validate"], { cwd: dir })).code).toBe(2);
    expect((await runCli(["validate", "--istio", "1.2", "good"], { cwd: dir })).code).toBe(2);
  });
});
