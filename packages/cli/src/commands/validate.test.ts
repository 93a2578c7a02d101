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

  it("a YAML syntax error: its line and column, and no (kind/name) for a document that has none", async () => {
    const r = await runCli(["validate", "bad/garbage.yaml"], { cwd: dir });
    expect(r.stdout.split("\n")[0]).toBe(
      "bad/garbage.yaml:2:1: error yaml/syntax YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]",
    );
  });

  it("-o github prints GitHub Actions workflow commands, warnings as ::warning", async () => {
    await writeFile(
      join(dir, "gh.yaml"),
      `${GOOD_AP.replace("ALLOW", "DENY")}---\n${GOOD_AP.replace('["GET"]', '["GET"]\n        ports: ["http"]')}`,
    );
    const r = await runCli(["validate", "-o", "github", "gh.yaml", "bad/garbage.yaml"], {
      cwd: dir,
    });
    expect(r.code).toBe(1);
    expect(r.stdout.split("\n")).toEqual([
      "::warning file=gh.yaml,line=9,col=5,title=IST0133 (AuthorizationPolicy/allow-get)::configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
      '::error file=gh.yaml,line=24,col=9,title=IST0106 (AuthorizationPolicy/allow-get)::invalid policy allow-get.demo: bad port (http): strconv.ParseUint: parsing "http": invalid syntax',
      "::error file=bad/garbage.yaml,line=2,col=1,title=yaml/syntax::YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]",
      "2 file(s), 3 document(s): 1 valid, 2 invalid, 0 skipped",
      "",
    ]);
    // Properties escape `:` and `,`, data escapes newlines, so a message cannot forge a command.
    const stdin = await runCli(["validate", "-o", "github", "-"], { stdin: "a: [\n" });
    expect(stdin.stdout.split("\n")[0]).toMatch(/^::error line=2,col=1,title=yaml\/syntax::/);
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

describe("ambientkit validate on hostile input (issue #14)", () => {
  const latin1 = Buffer.concat([
    Buffer.from(`${GOOD_AP}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caf`),
    Buffer.from([0xe9]), // "é" in Latin-1: not UTF-8
    Buffer.from("\n"),
  ]);

  it("reports invalid UTF-8 with its byte offset, line and column, and validates nothing of the file", async () => {
    await mkdir(join(dir, "enc"), { recursive: true });
    await writeFile(join(dir, "enc", "latin1.yaml"), latin1);
    const r = await runCli(["validate", "enc/latin1.yaml"], { cwd: dir });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(1);
    const at = latin1.indexOf(0xe9);
    expect(r.stdout.split("\n")).toEqual([
      `enc/latin1.yaml:16:12: error yaml/encoding invalid UTF-8 at byte ${at} (0xE9 0x0A…): YAML and JSON manifests must be UTF-8; the file was not validated`,
      "1 file(s), 1 document(s): 0 valid, 1 invalid, 0 skipped",
      "",
    ]);
    const json = JSON.parse((await runCli(["validate", "-o", "json", "enc"], { cwd: dir })).stdout);
    expect(json.results).toEqual([
      expect.objectContaining({
        file: "enc/latin1.yaml",
        line: 16,
        valid: false,
        issues: [expect.objectContaining({ code: "yaml/encoding", line: 16, column: 12 })],
      }),
    ]);
  });

  it("reports a 10,000-deep document as nesting deeper than 128, and goes on with the next", async () => {
    await mkdir(join(dir, "deep"), { recursive: true });
    const deep = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: ${"[".repeat(10_000)}${"]".repeat(10_000)}\n`;
    await writeFile(join(dir, "deep", "deep.yaml"), `${deep}---\n${BAD_AP}`);
    const r = await runCli(["validate", "deep/deep.yaml"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain("call stack");
    const lines = r.stdout.split("\n");
    // `data: ` then brackets; the root map is level 1, so the 128th bracket is level 129.
    expect(lines[0]).toBe(
      "deep/deep.yaml:4:134: error document/too-deep nesting deeper than 128 levels: no manifest needs this much, and deeper input would exhaust the parser's stack",
    );
    expect(lines[1]).toMatch(/^deep\/deep.yaml:13:5: error unknown-field spec.rules\[0\].form/);
    expect(lines.at(-2)).toBe("1 file(s), 2 document(s): 0 valid, 2 invalid, 0 skipped");
  });

  it("refuses a document longer than 3 MiB as an issue on that document only", async () => {
    await mkdir(join(dir, "big"), { recursive: true });
    const data = Array.from({ length: 120_000 }, (_, i) => `  k${i}: ${"v".repeat(20)}`);
    const big = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n${data.join("\n")}\n`;
    expect(big.length).toBeGreaterThan(3 * 1024 * 1024);
    await writeFile(join(dir, "big", "big.yaml"), `${GOOD_AP}---\n${big}---\n${GOOD_AP}`);
    const r = await runCli(["validate", "-o", "json", "big/big.yaml"], { cwd: dir });
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ documents: 3, valid: 2, invalid: 1 });
    expect(report.results[1]).toMatchObject({
      line: 13,
      kind: null,
      issues: [{ code: "document/too-large", line: 13, column: 1 }],
    });
    expect(report.results[2]).toMatchObject({ line: 13 + big.split("\n").length, valid: true });
  });
});
