import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { type LocalXdsIssue, parseLocalXds, serializeLocalXds } from "./local-xds.js";
import type { LocalConfig } from "./types.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const fixture = (name: string): string => readFileSync(join(here, "testdata", name), "utf8");

function mustParse(text: string): LocalConfig {
  const r = parseLocalXds(text);
  if (!r.ok) throw new Error(`unexpected issues: ${JSON.stringify(r.issues, null, 2)}`);
  return r.value;
}

function issuesOf(text: string): readonly LocalXdsIssue[] {
  const r = parseLocalXds(text);
  expect(r.ok).toBe(false);
  expect(r.value).toBeUndefined();
  return r.issues;
}

describe("parseLocalXds: ztunnel's examples/localhost.yaml shape", () => {
  const config = mustParse(fixture("localhost.yaml"));

  it("reads both workloads with ztunnel's serde defaults", () => {
    expect(config.workloads).toHaveLength(2);
    const [hbone, tcp] = config.workloads;
    expect(hbone).toEqual({
      workloadIps: ["127.0.0.1"],
      protocol: "HBONE",
      networkMode: "Standard",
      uid: "cluster1//v1/Pod/default/local",
      name: "local",
      namespace: "default",
      trustDomain: "",
      serviceAccount: "default",
      network: "",
      workloadName: "",
      workloadType: "",
      canonicalName: "",
      canonicalRevision: "",
      hostname: "",
      node: "local",
      nativeTunnel: false,
      authorizationPolicies: [],
      status: "Healthy",
      clusterId: "",
      services: {
        "default/example.com": { 80: 8080 },
        "default/example2.com": { 80: 8080 },
      },
      capacity: 1,
    });
    expect(tcp?.protocol).toBe("TCP");
    expect(tcp?.workloadIps).toEqual(["127.0.0.2"]);
  });

  it("reads the policy as rules → clauses → matches", () => {
    expect(config.policies).toEqual([
      {
        name: "deny-9999",
        namespace: "default",
        scope: "Namespace",
        action: "Allow",
        rules: [[[{ notDestinationPorts: [9999] }]]],
        dryRun: false,
      },
    ]);
  });

  it("reads services with network-prefixed VIPs (empty network and 'remote/')", () => {
    expect(config.services.map((s) => s.vips)).toEqual([
      [{ network: "", address: "127.10.0.1" }],
      [{ network: "remote", address: "127.10.0.2" }],
    ]);
    const [local] = config.services;
    expect(local?.ports).toEqual({ 80: 8080 });
    expect(local?.subjectAltNames).toEqual(["spiffe://cluster.local/ns/default/sa/local"]);
    expect(local?.canonical).toBe(true);
    expect(local?.visibility).toBe("Public");
    expect(local?.endpoints).toEqual({});
  });

  it("round-trips: parse → serialize → parse is equal, and serialize is stable", () => {
    const text = serializeLocalXds(config);
    expect(mustParse(text)).toEqual(config);
    expect(serializeLocalXds(mustParse(text))).toBe(text);
    // Port maps keep integer keys, as ztunnel's HashMap<u16, u16> serializes them.
    expect(text).toMatch(/^ {6}80: 8080$/m);
  });
});

describe("parseLocalXds: every field", () => {
  const config = mustParse(fixture("full.yaml"));

  it("keeps every non-default value", () => {
    const w = config.workloads[0];
    expect(w?.workloadIps).toEqual(["10.0.0.5", "2001:db8::5"]);
    expect(w?.waypoint).toEqual({
      destination: { namespace: "default", hostname: "waypoint.default.svc.cluster.local" },
      hboneMtlsPort: 15008,
    });
    expect(w?.networkGateway).toEqual({
      destination: { network: "east", address: "192.0.2.10" },
      hboneMtlsPort: 15009,
    });
    expect(w?.applicationTunnel).toEqual({ protocol: "PROXY", port: 15088 });
    expect(w?.locality).toEqual({ region: "eu-west1", zone: "eu-west1-b", subzone: "rack7" });
    expect(w?.services).toEqual({ "prod/api.prod.svc.cluster.local": { 80: 8080, 443: 8443 } });
    expect(w?.capacity).toBe(3);
    expect(w?.status).toBe("Unhealthy");
    expect(w?.networkMode).toBe("HostNetwork");
    const p = config.policies[0];
    expect(p?.rules[0]?.[0]?.[0]?.principals).toEqual([
      { exact: "example.org/ns/prod/sa/web" },
      { prefix: "example.org/ns/prod/" },
    ]);
    expect(p?.rules[0]?.[0]?.[0]?.notNamespaces).toEqual([{ presence: true }]);
    expect(p?.rules[0]?.[0]?.[1]?.sourceIps).toEqual(["10.0.0.0/8", "2001:db8::/32"]);
    expect(p?.rules[1]).toEqual([]);
    const s = config.services[0];
    expect(s?.vips).toEqual([
      { network: "west", address: "10.96.0.10" },
      { network: "east", address: "fd00::10" },
    ]);
    expect(s?.cidrVips).toEqual([{ network: "west", cidr: "10.97.0.0/16" }]);
    expect(s?.loadBalancer?.mode).toBe("Failover");
    expect(s?.weightedWaypoints.map((x) => x.weight)).toEqual([90, 10]);
    expect(s?.endpoints["cluster1//v1/Pod/prod/api-7d9f"]?.port).toEqual({ 80: 8080 });
  });

  it("applies the defaults to a minimal workload", () => {
    const w = config.workloads[1];
    expect(w?.workloadIps).toEqual([]);
    expect(w?.capacity).toBe(1);
    expect(w?.protocol).toBe("TCP");
    expect(w?.waypoint).toBeUndefined();
    expect(w?.locality).toBeUndefined();
  });

  it("round-trips losslessly", () => {
    const text = serializeLocalXds(config);
    expect(mustParse(text)).toEqual(config);
    expect(serializeLocalXds(mustParse(text))).toBe(text);
  });

  it("follows YAML anchors and aliases", () => {
    const c = mustParse(
      [
        "workloads:",
        "  - &w {workloadIps: ['10.0.0.1'], namespace: ns, services: &svcs {'ns/a': {80: 8080}}}",
        "  - {workloadIps: ['10.0.0.2'], namespace: ns, services: *svcs}",
      ].join("\n"),
    );
    expect(c.workloads[1]?.services).toEqual({ "ns/a": { 80: 8080 } });
  });

  it("parses a large file written in dense flow style (the alias budget does not trip)", () => {
    const ws = Array.from(
      { length: 1500 },
      (_, i) =>
        `{workloadIps: [10.0.${i >> 8}.${i & 255}], namespace: n, services: {n/s: {1: 1, 2: 2, 3: 3}}}`,
    );
    const policy = `{name: p, namespace: n, scope: Global, action: Deny, dryRun: false, rules: [[[{destinationPorts: [${Array(2000).fill(1).join(",")}]}]]]}`;
    const c = mustParse(`workloads: [${ws.join(",")}]\npolicies: [${policy}]\n`);
    expect(c.workloads).toHaveLength(1500);
    expect(c.policies[0]?.rules[0]?.[0]?.[0]?.destinationPorts).toHaveLength(2000);
  });

  it("stops following aliases that multiply the work", () => {
    const lines = [
      "m: &m {notDestinationPorts: [1]}",
      `c: &c [${Array(200).fill("*m").join(", ")}]`,
    ];
    lines.push(`r: &r [${Array(200).fill("*c").join(", ")}]`);
    lines.push(
      `policies: [{name: p, namespace: n, scope: Global, action: Deny, dryRun: false, rules: [${Array(200).fill("*r").join(", ")}]}]`,
    );
    const issues = issuesOf(lines.join("\n"));
    expect(issues[0]?.message).toContain("aliases");
  });

  it("accepts JSON (a YAML subset) with quoted port keys", () => {
    const c = mustParse(
      JSON.stringify({
        services: [
          { name: "s", namespace: "n", hostname: "h", vips: ["/10.0.0.1"], ports: { "80": 8080 } },
        ],
      }),
    );
    expect(c.services[0]?.ports).toEqual({ 80: 8080 });
  });

  it("accepts an empty file and a file with only some sections", () => {
    expect(mustParse("")).toEqual({ workloads: [], policies: [], services: [] });
    expect(mustParse("services: []\n")).toEqual({ workloads: [], policies: [], services: [] });
  });

  it("normalizes IP text as ztunnel's IpAddr/IpNet do", () => {
    const c = mustParse(
      [
        "workloads:",
        "  - workloadIps: ['2001:DB8:0:0:0:0:0:1', '::ffff:10.0.0.1']",
        "    namespace: ns",
        "    services: {}",
        "policies:",
        "  - {name: p, namespace: ns, scope: Global, action: Deny, dryRun: false,",
        "     rules: [[[{sourceIps: ['2001:0DB8::/32']}]]]}",
      ].join("\n"),
    );
    expect(c.workloads[0]?.workloadIps).toEqual(["2001:db8::1", "::ffff:10.0.0.1"]);
    expect(c.policies[0]?.rules[0]?.[0]?.[0]?.sourceIps).toEqual(["2001:db8::/32"]);
  });
});

describe("parseLocalXds: rejections", () => {
  it("rejects an unknown top-level field with its path and line", () => {
    const issues = issuesOf("workloads: []\nendpoints: []\n");
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({
      code: "unknown-field",
      severity: "error",
      path: "endpoints",
      line: 2,
      column: 1,
    });
    expect(issues[0]?.message).toContain("unknown field `endpoints`");
  });

  it("rejects an unknown field inside a workload, a match and a locality", () => {
    const text = [
      "workloads:",
      "  - workloadIps: ['10.0.0.1']",
      "    namespace: ns",
      "    services: {}",
      "    serviceaccount: typo",
      "    locality: {region: r, zone: z, subzone: s, rack: 1}",
      "policies:",
      "  - name: p",
      "    namespace: ns",
      "    scope: Namespace",
      "    action: Allow",
      "    dryRun: false",
      "    rules: [[[{notDestinationPort: [9999]}]]]",
    ].join("\n");
    const issues = issuesOf(text);
    expect(issues.map((i) => [i.code, i.path, i.line])).toEqual([
      ["unknown-field", "workloads[0].serviceaccount", 5],
      ["unknown-field", "workloads[0].locality.rack", 6],
      ["unknown-field", "policies[0].rules[0][0][0].notDestinationPort", 13],
    ]);
  });

  it("rejects bad IPs in workloadIps, VIPs, gateway addresses and policy CIDRs", () => {
    const text = [
      "workloads:",
      "  - workloadIps: ['10.0.0.256', '01.2.3.4', '1::2::3', 'fe80::1%eth0']",
      "    namespace: ns",
      "    services: {}",
      "policies:",
      "  - {name: p, namespace: ns, scope: Global, action: Deny, dryRun: false,",
      "     rules: [[[{sourceIps: ['10.0.0.0/33', '10.0.0.1']}]]]}",
      "services:",
      "  - name: s",
      "    namespace: ns",
      "    hostname: s.ns",
      "    vips: ['10.0.0.1', 'net/not-an-ip']",
      "    ports: {}",
    ].join("\n");
    const issues = issuesOf(text);
    expect(issues.every((i) => i.code === "local-xds/ip")).toBe(true);
    expect(issues.map((i) => i.path)).toEqual([
      "workloads[0].workloadIps[0]",
      "workloads[0].workloadIps[1]",
      "workloads[0].workloadIps[2]",
      "workloads[0].workloadIps[3]",
      "policies[0].rules[0][0][0].sourceIps[0]",
      "policies[0].rules[0][0][0].sourceIps[1]",
      "services[0].vips[0]",
      "services[0].vips[1]",
    ]);
    expect(issues[0]?.line).toBe(2);
  });

  it("rejects missing required fields, wrong types, unknown enum variants and out-of-range ports", () => {
    const text = [
      "workloads:",
      "  - workloadIps: ['10.0.0.1']",
      "    protocol: HTTP",
      "    capacity: -1",
      "    services: {'ns/svc': {80: 70000}}",
      "policies:",
      "  - {name: p, namespace: ns, scope: Cluster, action: Allow, rules: []}",
      "services:",
      "  - {name: s, namespace: ns, hostname: h, vips: [], ports: {'80': '8080'}, canonical: 'yes'}",
    ].join("\n");
    const got = issuesOf(text).map((i) => [i.code, i.path]);
    expect(got).toEqual([
      ["local-xds/enum", "workloads[0].protocol"],
      ["local-xds/missing-field", "workloads[0].namespace"],
      ["local-xds/range", 'workloads[0].services["ns/svc"].80'],
      ["local-xds/range", "workloads[0].capacity"],
      ["local-xds/enum", "policies[0].scope"],
      ["local-xds/missing-field", "policies[0].dryRun"],
      ["local-xds/type", "services[0].ports.80"],
      ["local-xds/type", "services[0].canonical"],
    ]);
  });

  it("requires every Authorization field and a well-formed StringMatch", () => {
    const issues = issuesOf(
      [
        "policies:",
        "  - name: p",
        "    namespace: ns",
        "    scope: Global",
        "    action: Deny",
        "    dryRun: false",
        "    rules: [[[{principals: [{Exact: a, Prefix: b}], notPrincipals: [{Presence: true}]}]]]",
      ].join("\n"),
    );
    expect(issues.map((i) => i.path)).toEqual([
      "policies[0].rules[0][0][0].principals[0]",
      "policies[0].rules[0][0][0].notPrincipals[0].Presence",
    ]);
  });

  it("rejects a gateway destination that is neither network/ip nor namespace/hostname", () => {
    const issues = issuesOf(
      [
        "workloads:",
        "  - workloadIps: []",
        "    namespace: ns",
        "    services: {}",
        "    waypoint: {destination: just-a-name, hboneMtlsPort: 15008}",
      ].join("\n"),
    );
    expect(issues.map((i) => [i.code, i.path])).toEqual([
      ["local-xds/format", "workloads[0].waypoint.destination"],
    ]);
  });

  it("reports YAML syntax errors and duplicate keys with their position, never throws", () => {
    const bad = issuesOf("workloads:\n  - namespace: [unclosed\n");
    expect(bad[0]?.code).toBe("yaml/syntax");
    expect(bad[0]?.line).toBeGreaterThan(0);
    // The line and column the YAML parser reports (issue #13): where the nested value starts.
    expect(issuesOf("workloads:\n  - name: a: b\n")[0]).toMatchObject({
      code: "yaml/syntax",
      line: 2,
      column: 11,
    });
    const dup = issuesOf("workloads: []\nworkloads: []\n");
    expect(dup[0]).toMatchObject({ code: "yaml/syntax", line: 2 });
    expect(issuesOf("- a\n- b\n")[0]?.code).toBe("local-xds/type");
    expect(issuesOf("workloads: 3\n")[0]).toMatchObject({
      code: "local-xds/type",
      path: "workloads",
    });
  });

  it("reports nesting deeper than 128 levels with its position instead of overflowing the stack", () => {
    const deep = `workloads:\n- uid: x\n  extra: ${"[".repeat(10_000)}${"]".repeat(10_000)}\n`;
    const issues = issuesOf(deep);
    expect(issues).toHaveLength(1);
    // root map, workloads, the workload: the 126th bracket is level 129.
    expect(issues[0]).toMatchObject({ code: "yaml/syntax", line: 3, column: 10 + 125 });
    expect(issues[0]?.message).toMatch(/^nesting deeper than 128 levels/);
    // Within the limit the document is read as usual (here: an unknown field, missing fields).
    const ok = issuesOf(`workloads:\n- uid: x\n  extra: ${"[".repeat(125)}${"]".repeat(125)}\n`);
    expect(ok[0]).toMatchObject({ code: "unknown-field", path: "workloads[0].extra" });
    expect(ok.map((i) => i.code)).not.toContain("yaml/syntax");
  });

  it("reports a second document as an error, as before", () => {
    expect(issuesOf("workloads: []\n---\nservices: []\n")[0]).toMatchObject({
      code: "yaml/syntax",
      line: 2,
    });
  });
});
