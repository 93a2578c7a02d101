// Issue #14 "Fail closed, everywhere" at the CLI: bad input is exit 2 (never a decision), an empty
// case file is an error, and user-keyed maps take any key.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../testing.js";

const dir = mkdtempSync(join(tmpdir(), "ambientkit-authz-fail-closed-"));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const deny10 = file(
  "deny-10.yaml",
  `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-10, namespace: foo}
spec:
  action: DENY
  rules:
  - from: [{source: {ipBlocks: [10.0.0.0/8]}}]
`,
);

function check(...extra: string[]) {
  const args = new Map<string, string>([
    ["--enforcement", "ztunnel"],
    ["--namespace", "foo"],
    ["--source-ip", "10.0.2.20"],
    ["--destination-ip", "10.0.1.10"],
    ["--destination-port", "8080"],
  ]);
  for (let i = 0; i < extra.length; i += 2) args.set(extra[i] as string, extra[i + 1] as string);
  return runCli(["authz", "check", ...[...args].flat()]);
}

describe("ambientkit authz check: an address that does not parse is exit 2, not a decision", () => {
  it.each(["not-an-ip", "010.0.0.1", " 10.0.0.1", "10.0.0.1%eth0", "10.0.0.1/8", ""])(
    "--source-ip %j with DENY 10.0.0.0/8",
    async (ip) => {
      const r = await check("--policies", deny10, "--source-ip", ip);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain("--source-ip must be an IP address");
    },
  );
  it("--destination-ip junk is exit 2 too", async () => {
    const r = await check("--policies", deny10, "--destination-ip", "junk");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--destination-ip must be an IP address");
  });
  it("--destination-port that is not a port number is exit 2", async () => {
    for (const port of ["", "-1", "65536", "80.5", "http"]) {
      const r = await check("--policies", deny10, "--destination-port", port);
      expect(r.code).toBe(2);
    }
  });
  it("the valid address is still denied, and ::ffff:10.0.2.20 is the same address", async () => {
    for (const ip of ["10.0.2.20", "::ffff:10.0.2.20"]) {
      const r = await check("--policies", deny10, "--source-ip", ip);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^deny \(decidedBy foo\/deny-10, rule 0\) at ztunnel/);
    }
  });
  it("a case whose sourceIp does not parse is exit 2 naming file:line:col", async () => {
    const f = file(
      "bad-ip-case.yaml",
      `cases:
- id: bad-ip
  enforcement: ztunnel
  workload: {namespace: foo}
  connection: {sourcePrincipal: null, sourceIp: not-an-ip, destinationIp: 10.0.1.10, destinationPort: 80}
`,
    );
    const r = await runCli(["authz", "check", "--case", f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${f}:5:`);
    expect(r.stderr).toContain('sourceIp must be an IP address, got "not-an-ip"');
  });
  it("a non-object --jwt is exit 2 with the library's reason", async () => {
    const r = await check(
      "--enforcement",
      "waypoint",
      "--service",
      "foo/httpbin",
      "--path",
      "/",
      "--jwt",
      "5",
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("request.jwt must be an object");
  });
});

describe("ambientkit authz check: a waypoint path Envoy rejects is denied", () => {
  it.each(["admin", "%2Fadmin"])("--path %s is deny implicit:invalid-request", async (path) => {
    const r = await check(
      "--enforcement",
      "waypoint",
      "--service",
      "foo/httpbin",
      "--destination-ip",
      "10.96.0.50",
      "--path",
      path,
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^deny \(decidedBy implicit:invalid-request\) at waypoint/);
    expect(r.stdout).toContain('does not start with "/"');
  });
});

describe("ambientkit authz check: labels, headers and providers take any key", () => {
  const selected = file(
    "deny-selected.yaml",
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-selected, namespace: foo}
spec:
  action: DENY
  selector: {matchLabels: {__proto__: x}}
  rules: [{}]
`,
  );
  it("a __proto__ selector label from YAML selects only workloads with that label", async () => {
    const other = await check("--policies", selected, "--labels", "app=httpbin");
    expect(other.code).toBe(0);
    expect(other.stdout).toMatch(/^allow \(decidedBy implicit:no-allow-policies\)/);
    const same = await check("--policies", selected, "--labels", "__proto__=x");
    expect(same.code).toBe(0);
    expect(same.stdout).toMatch(/^deny \(decidedBy foo\/deny-selected, rule 0\)/);
  });
  it.each(["__proto__", "constructor", "toString", "hasOwnProperty"])(
    "%s as a --header name and a --custom-provider name is plain data",
    async (key) => {
      const policy = file(
        `header-${key}.yaml`,
        `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-header, namespace: foo}
spec:
  targetRefs: [{kind: Service, group: "", name: httpbin}]
  action: DENY
  rules:
  - when: [{key: "request.headers[${key}]", values: ["x"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo}
spec:
  targetRefs: [{kind: Service, group: "", name: httpbin}]
  action: CUSTOM
  provider: {name: "${key}"}
  rules: [{}]
`,
      );
      const wp = [
        "--enforcement",
        "waypoint",
        "--service",
        "foo/httpbin",
        "--destination-ip",
        "10.96.0.50",
        "--policies",
        policy,
        "--path",
        "/",
        "--host",
        "httpbin",
      ];
      const withHeader = await runCli([
        "authz",
        "check",
        "--namespace",
        "foo",
        "--source-ip",
        "10.0.2.20",
        "--destination-port",
        "8000",
        ...wp,
        "--header",
        `${key}:x`,
        "--custom-provider",
        `${key}=allow`,
      ]);
      expect(withHeader.stderr).toBe("");
      expect(withHeader.stdout).toMatch(/^deny \(decidedBy foo\/deny-header, rule 0\)/);
      const without = await runCli([
        "authz",
        "check",
        "--namespace",
        "foo",
        "--source-ip",
        "10.0.2.20",
        "--destination-port",
        "8000",
        ...wp,
        "--custom-provider",
        `${key}=allow`,
      ]);
      expect(without.stdout).toMatch(/^allow \(decidedBy implicit:no-allow-policies\)/);
    },
  );
});

describe("ambientkit authz convert: unparsable values are named, and the DENY still denies", () => {
  it("a DENY with ipBlocks 10.0.0.0/33 becomes a match-everything entry with a note", async () => {
    const f = file(
      "deny-bad-cidr.yaml",
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-bad, namespace: foo}
spec:
  action: DENY
  rules:
  - from: [{source: {ipBlocks: [10.0.0.0/33]}}]
`,
    );
    const r = await runCli(["authz", "convert", "--policies", f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      '# foo/deny-bad: rule 0 from.source.ipBlocks "10.0.0.0/33" does not parse: read as matching every connection (fail closed)',
    );
    expect(r.stdout).toContain("0.0.0.0/0");
  });
});

describe("ambientkit authz test: a case file that tests nothing is an error", () => {
  it.each([
    ["an empty file", ""],
    ["cases: []", "cases: []\n"],
    ["cases: null", "cases:\n"],
    ["validationCases: []", "validationCases: []\n"],
  ])("%s exits 2 instead of 0 passed, 0 failed", async (name, text) => {
    const f = file(`empty-${name.replace(/\W+/g, "-")}.yaml`, text);
    const r = await runCli(["authz", "test", f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no cases/);
  });
});
