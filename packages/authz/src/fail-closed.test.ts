// Regression tests for issue #14 "Fail closed, everywhere" (authz part), one block per defect.
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  ap,
  MESH,
  REQ,
  SVC_REF,
  waypointDecide,
  ZT_CONN,
  ztunnelDecide,
} from "./helpers.testutil.js";
import {
  AuthzError,
  compilePolicies,
  convertAuthorizationPolicy,
  type DecisionInput,
  evaluate,
  evaluateZtunnelAuthorizations,
  normalizeRequestPath,
  type PolicyResource,
  parsePolicyResource,
  runCaseFile,
  toLocalXdsAuthorization,
  type ZtunnelAuthorization,
  ztunnelAuthorizationMatches,
} from "./index.js";
import type { AuthorizationPolicy } from "./types.js";

const PROTO_KEYS = ["__proto__", "constructor", "toString", "hasOwnProperty"] as const;

/** A one-key object built the way JSON.parse and YAML loaders build it: the key is own data. */
function keyed<V>(key: string, value: V): Record<string, V> {
  return JSON.parse(JSON.stringify({ k: value }).replace('"k"', JSON.stringify(key)));
}

function fromJson(text: string): PolicyResource {
  const r = parsePolicyResource(JSON.parse(text));
  if (!r.ok) throw new Error(r.issues.map((i) => i.message).join("; "));
  return r.value;
}

const denyAllFor = (key: string) =>
  fromJson(
    JSON.stringify({
      apiVersion: "security.istio.io/v1",
      kind: "AuthorizationPolicy",
      metadata: { name: "deny-selected", namespace: "foo" },
      spec: { action: "DENY", selector: { matchLabels: { k: "x" } }, rules: [{}] },
    }).replace('"k"', JSON.stringify(key)),
  );

function expectInvalidInput(f: () => unknown, code = "ERR_AUTHZ_INVALID_INPUT"): void {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(AuthzError);
  expect((thrown as AuthzError).code).toBe(code);
}

describe("#14.1 user-keyed maps are safe for any key", () => {
  it("a __proto__ selector label from JSON.parse is kept: the DENY no longer hits every workload", () => {
    const p = denyAllFor("__proto__");
    if (p.kind !== "AuthorizationPolicy") throw new Error("unreachable");
    expect(Object.keys(p.spec.selector?.matchLabels ?? {})).toEqual(["__proto__"]);
    expect(ztunnelDecide([p], {}, { labels: { app: "httpbin" } }).decision).toBe("allow");
    expect(ztunnelDecide([p], {}, { labels: keyed("__proto__", "x") }).decision).toBe("deny");
  });

  it.each(PROTO_KEYS)("selector label %s selects exactly the workloads that carry it", (key) => {
    const p = denyAllFor(key);
    expect(ztunnelDecide([p], {}, { labels: { app: "httpbin" } }).decidedBy).toBe(
      "implicit:no-allow-policies",
    );
    expect(ztunnelDecide([p], {}, { labels: keyed(key, "x") }).decidedBy).toBe("foo/deny-selected");
    expect(ztunnelDecide([p], {}, { labels: keyed(key, "y") }).decision).toBe("allow");
  });

  it("a case file (YAML) with a __proto__ selector label and label does what it says", () => {
    const doc = parseYaml(`
cases:
- id: not-selected
  enforcement: ztunnel
  policies:
  - apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: deny-selected, namespace: foo}
    spec: {action: DENY, selector: {matchLabels: {__proto__: x}}, rules: [{}]}
  workload: {namespace: foo, labels: {app: httpbin}}
  connection: {sourcePrincipal: null, sourceIp: 10.0.2.20, destinationIp: 10.0.1.10, destinationPort: 80}
  expect: {decision: allow, decidedBy: "implicit:no-allow-policies"}
- id: selected
  enforcement: ztunnel
  policies:
  - apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: deny-selected, namespace: foo}
    spec: {action: DENY, selector: {matchLabels: {__proto__: x}}, rules: [{}]}
  workload: {namespace: foo, labels: {__proto__: x}}
  connection: {sourcePrincipal: null, sourceIp: 10.0.2.20, destinationIp: 10.0.1.10, destinationPort: 80}
  expect: {decision: deny, decidedBy: foo/deny-selected}
`);
    const report = runCaseFile(doc);
    expect(report.issues).toEqual([]);
    expect(report.results.map((r) => [r.id, r.passed, r.got])).toEqual([
      ["not-selected", true, { decision: "allow", decidedBy: "implicit:no-allow-policies" }],
      ["selected", true, { decision: "deny", decidedBy: "foo/deny-selected", rule: 0 }],
    ]);
  });

  it.each(PROTO_KEYS)("header %s is matched as a request header only", (key) => {
    const deny = ap("deny-h", {
      targetRefs: SVC_REF,
      action: "DENY",
      rules: [{ when: [{ key: `request.headers[${key}]`, values: ["x"] }] }],
    });
    expect(waypointDecide([deny], { headers: {} }).decision).toBe("allow");
    expect(waypointDecide([deny], { headers: keyed(key, "x") }).decision).toBe("deny");
    const present = ap("allow-h", {
      targetRefs: SVC_REF,
      rules: [{ when: [{ key: `request.headers[${key}]`, values: ["*"] }] }],
    });
    expect(waypointDecide([present], { headers: {} }).decision).toBe("deny");
    expect(waypointDecide([present], { headers: keyed(key, "") }).decision).toBe("allow");
  });

  it.each(PROTO_KEYS)("claim %s reads only the token's own claims", (key) => {
    const allow = ap("allow-c", {
      targetRefs: SVC_REF,
      rules: [{ when: [{ key: `request.auth.claims[${key}]`, values: ["*"] }] }],
    });
    expect(waypointDecide([allow], { jwt: {} }).decision).toBe("deny");
    expect(waypointDecide([allow], { jwt: keyed(key, "v") }).decision).toBe("allow");
    const nested = ap("allow-n", {
      targetRefs: SVC_REF,
      rules: [{ when: [{ key: `request.auth.claims[${key}][name]`, values: ["*"] }] }],
    });
    expect(waypointDecide([nested], { jwt: {} }).decision).toBe("deny");
  });

  it.each([
    ["constructor", "Object"],
    ["toString", "toString"],
    ["hasOwnProperty", "hasOwnProperty"],
    ["__proto__", "*"],
  ])("filter metadata %s never reads Object.prototype (%s)", (filter, value) => {
    const allow = ap("allow-m", {
      targetRefs: SVC_REF,
      rules: [{ when: [{ key: `experimental.envoy.filters.${filter}[name]`, values: [value] }] }],
    });
    expect(waypointDecide([allow], { filterMetadata: {} }).decision).toBe("deny");
    expect(
      waypointDecide([allow], { filterMetadata: keyed(filter, { name: value }) }).decision,
    ).toBe("allow");
  });

  it.each(PROTO_KEYS)("a CUSTOM provider named %s gets only the answer it was given", (name) => {
    const custom = ap("ext", {
      targetRefs: SVC_REF,
      action: "CUSTOM",
      provider: { name },
      rules: [{}],
    });
    expect(waypointDecide([custom], {}, {}, { custom: {} }).decidedBy).toBe(`custom:${name}`);
    expect(waypointDecide([custom], {}, {}, { custom: keyed(name, "allow") }).decision).toBe(
      "allow",
    );
  });
});

const BAD_IPS = [
  "not-an-ip",
  "010.0.0.1",
  " 10.0.0.1",
  "10.0.0.1 ",
  "10.0.0.1%eth0",
  "10.0.0.1/8",
  "",
  "[::1]",
  "10.0.0.256",
  "fe80::1%eth0",
];
const DENY_10_8 = ap("deny-10", {
  action: "DENY",
  rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/8"] } }] }],
});
const WP_DENY_10_8 = ap("deny-10", {
  targetRefs: SVC_REF,
  action: "DENY",
  rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/8"] } }] }],
});

describe("#14.2 a request address that does not parse is an error, never an allow", () => {
  it.each(BAD_IPS)("ztunnel decide refuses source IP %j (DENY 10.0.0.0/8)", (ip) => {
    expectInvalidInput(() => ztunnelDecide([DENY_10_8], { sourceIp: ip }));
  });
  it.each(BAD_IPS)("waypoint decide refuses source IP %j (DENY 10.0.0.0/8)", (ip) => {
    expectInvalidInput(() => waypointDecide([WP_DENY_10_8], {}, { sourceIp: ip }));
  });
  it.each(BAD_IPS)("both enforcement points refuse destination IP %j", (ip) => {
    expectInvalidInput(() => ztunnelDecide([], { destinationIp: ip }));
    expectInvalidInput(() => waypointDecide([], {}, { destinationIp: ip }));
  });
  it.each(BAD_IPS)("the Authorization form refuses source IP %j", (ip) => {
    const a = convertAuthorizationPolicy(DENY_10_8 as AuthorizationPolicy, "istio-system")
      .authorization as ZtunnelAuthorization;
    const conn = {
      sourceIp: ip,
      destinationIp: "10.0.1.10",
      destinationPort: 80,
      sourceIdentity: null,
    };
    expectInvalidInput(() => evaluateZtunnelAuthorizations([a], conn));
    expectInvalidInput(() => ztunnelAuthorizationMatches(a, conn));
  });

  it("IPv4-mapped IPv6 is the IPv4 address it carries (ztunnel's to_canonical), at both points", () => {
    expect(ztunnelDecide([DENY_10_8], { sourceIp: "::ffff:10.0.0.1" }).decidedBy).toBe(
      "foo/deny-10",
    );
    expect(ztunnelDecide([DENY_10_8], { sourceIp: "::ffff:a00:1" }).decidedBy).toBe("foo/deny-10");
    expect(waypointDecide([WP_DENY_10_8], {}, { sourceIp: "::ffff:10.0.0.1" }).decidedBy).toBe(
      "foo/deny-10",
    );
    const allow = ap("allow-10", { rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/8"] } }] }] });
    expect(ztunnelDecide([allow], { sourceIp: "::ffff:10.0.0.1" }).decision).toBe("allow");
    expect(ztunnelDecide([allow], { sourceIp: "::ffff:11.0.0.1" }).decision).toBe("deny");
    const dst = ap("deny-dst", {
      action: "DENY",
      rules: [{ when: [{ key: "destination.ip", values: ["10.0.1.0/24"] }] }],
    });
    expect(ztunnelDecide([dst], { destinationIp: "::ffff:10.0.1.10" }).decision).toBe("deny");
  });

  it("an IPv4-mapped prefix in a DENY also covers the IPv4 addresses it maps", () => {
    const mapped = ap("deny-mapped", {
      action: "DENY",
      rules: [{ from: [{ source: { ipBlocks: ["::ffff:10.0.0.0/104"] } }] }],
    });
    expect(ztunnelDecide([mapped], { sourceIp: "10.0.0.1" }).decision).toBe("deny");
    expect(ztunnelDecide([mapped], { sourceIp: "11.0.0.1" }).decision).toBe("allow");
    const wp = ap("deny-mapped", {
      targetRefs: SVC_REF,
      action: "DENY",
      rules: [{ from: [{ source: { ipBlocks: ["::ffff:10.0.0.0/104"] } }] }],
    });
    expect(waypointDecide([wp], {}, { sourceIp: "10.0.0.1" }).decision).toBe("deny");
    // In an ALLOW the prefix keeps its IPv6 meaning, as real ztunnel matches it: no wider allow.
    const allow = ap("allow-mapped", {
      rules: [{ from: [{ source: { ipBlocks: ["::ffff:10.0.0.0/104"] } }] }],
    });
    expect(ztunnelDecide([allow], { sourceIp: "10.0.0.1" }).decision).toBe("deny");
  });

  it("a case file with sourceIp not-an-ip is an input issue at its path, not a result", () => {
    const report = runCaseFile({
      cases: [
        {
          id: "bad-ip",
          enforcement: "ztunnel",
          workload: { namespace: "foo" },
          connection: { sourceIp: "not-an-ip", destinationIp: "10.0.1.10", destinationPort: 80 },
          expect: { decision: "allow" },
        },
      ],
    });
    expect(report.passed).toBe(0);
    expect(report.issues.map((i) => [i.path, i.message])).toEqual([
      ["cases[0].connection.sourceIp", 'sourceIp must be an IP address, got "not-an-ip"'],
    ]);
  });
});

describe("#14.3 an unparsable CIDR or port in a policy fails closed", () => {
  const denyRules: [string, Record<string, unknown>, string][] = [
    ["ipBlocks /33", { from: [{ source: { ipBlocks: ["10.0.0.0/33"] } }] }, "10.0.0.0/33"],
    ["ipBlocks junk", { from: [{ source: { ipBlocks: ["bogus"] } }] }, "bogus"],
    ["ports 65536", { to: [{ operation: { ports: ["65536"] } }] }, "65536"],
    ["ports -1", { to: [{ operation: { ports: ["-1"] } }] }, "-1"],
    ["notPorts 65536", { to: [{ operation: { notPorts: ["65536"] } }] }, "65536"],
    ["notIpBlocks junk", { from: [{ source: { notIpBlocks: ["10.0.0.0/33"] } }] }, "10.0.0.0/33"],
    ["when destination.port", { when: [{ key: "destination.port", values: ["65536"] }] }, "65536"],
    ["when source.ip", { when: [{ key: "source.ip", values: ["10.0.0.0/33"] }] }, "10.0.0.0/33"],
    ["when destination.ip notValues", { when: [{ key: "destination.ip", notValues: ["x"] }] }, "x"],
    [
      "mixed with a valid range that does not match",
      { from: [{ source: { ipBlocks: ["10.0.0.0/33", "192.168.0.0/16"] } }] },
      "10.0.0.0/33",
    ],
  ];

  it.each(denyRules)("DENY rule with %s denies at ztunnel, naming the value", (_, rule, value) => {
    const d = ztunnelDecide([ap("deny-bad", { action: "DENY", rules: [rule] })]);
    expect([d.decision, d.decidedBy]).toEqual(["deny", "foo/deny-bad"]);
    expect(d.ignored.some((i) => i.reason.includes(JSON.stringify(value)))).toBe(true);
    expect(d.explanation.join("\n")).toContain(JSON.stringify(value));
  });

  it.each(denyRules)(
    "DENY rule with %s denies at the waypoint, naming the value",
    (_, rule, value) => {
      const d = waypointDecide([
        ap("deny-bad", { targetRefs: SVC_REF, action: "DENY", rules: [rule] }),
      ]);
      expect([d.decision, d.decidedBy]).toEqual(["deny", "foo/deny-bad"]);
      expect(d.ignored.some((i) => i.reason.includes(JSON.stringify(value)))).toBe(true);
      expect(d.explanation.join("\n")).toContain(JSON.stringify(value));
    },
  );

  it("an unparsable value keeps the rest of a DENY entry: ports 8080 + bad CIDR denies all of 8080", () => {
    const p = ap("deny-8080", {
      action: "DENY",
      rules: [
        { from: [{ source: { ipBlocks: ["bogus"] } }], to: [{ operation: { ports: ["8080"] } }] },
      ],
    });
    expect(ztunnelDecide([p], { destinationPort: 8080 }).decision).toBe("deny");
    expect(ztunnelDecide([p], { destinationPort: 9090 }).decision).toBe("allow");
  });

  it("an ALLOW rule with an unparsable value never matches, whatever else it holds", () => {
    const rules = [
      { from: [{ source: { ipBlocks: ["10.0.0.0/33"], namespaces: ["bar"] } }] },
      { from: [{ source: { namespaces: ["bar"] } }], to: [{ operation: { ports: ["65536"] } }] },
      { from: [{ source: { namespaces: ["bar"], notIpBlocks: ["junk"] } }] },
      { when: [{ key: "destination.port", values: ["8080", "-1"] }] },
    ];
    for (const rule of rules) {
      const zt = ztunnelDecide([ap("allow-bad", { rules: [rule] })]);
      expect([zt.decision, zt.decidedBy]).toEqual(["deny", "implicit:no-allow-match"]);
      const wp = waypointDecide(
        [ap("allow-bad", { targetRefs: SVC_REF, rules: [rule] })],
        {},
        {
          destinationPort: 8080,
        },
      );
      expect([wp.decision, wp.decidedBy]).toEqual(["deny", "implicit:no-allow-match"]);
    }
  });

  it("the compiled index, reused across decisions, keeps failing closed", () => {
    const index = compilePolicies(
      [
        ap("deny-bad", { action: "DENY", rules: [{ to: [{ operation: { ports: ["65536"] } }] }] }),
        ap(
          "deny-bad",
          {
            targetRefs: SVC_REF,
            action: "DENY",
            rules: [{ to: [{ operation: { ports: ["-1"] } }] }],
          },
          { namespace: "bar" },
        ),
      ],
      MESH,
    );
    const zt: DecisionInput = {
      enforcement: "ztunnel",
      workload: { namespace: "foo", labels: {} },
      connection: ZT_CONN,
    };
    for (const port of [80, 8080, 65535]) {
      expect(
        index.decide({ ...zt, connection: { ...ZT_CONN, destinationPort: port } }).decision,
      ).toBe("deny");
    }
    const convert = index.ztunnelAuthorizations()[0];
    expect(convert?.unparsable).toEqual([
      { rule: 0, attribute: "to.operation.ports", value: "65536" },
    ]);
  });

  it("the LOCAL_XDS form of such a DENY denies in a real ztunnel too (a match-everything entry)", () => {
    const c = convertAuthorizationPolicy(
      ap("deny-bad", {
        action: "DENY",
        rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/33"] } }] }],
      }) as AuthorizationPolicy,
      "istio-system",
    );
    expect(toLocalXdsAuthorization(c.authorization as ZtunnelAuthorization).rules).toEqual([
      [[{ sourceIps: ["0.0.0.0/0", "::/0"] }]],
    ]);
  });

  it("evaluating the Authorization form: unusable values deny in a Deny and never allow in an Allow", () => {
    const conn = {
      sourceIp: "10.0.2.20",
      destinationIp: "10.0.1.10",
      destinationPort: 80,
      sourceIdentity: null,
    };
    const deny = (m: Record<string, unknown>): ZtunnelAuthorization =>
      ({
        name: "d",
        namespace: "foo",
        scope: "Namespace",
        action: "Deny",
        dryRun: false,
        rules: [[[m]]],
      }) as never;
    const allow = (m: Record<string, unknown>): ZtunnelAuthorization => ({
      ...deny(m),
      name: "a",
      action: "Allow",
    });
    const unusable: Record<string, unknown>[] = [
      { sourceIps: ["10.0.0.0/33"] },
      { destinationIps: ["bogus"] },
      { destinationPorts: [65536] },
      { destinationPorts: [-1] },
      { destinationPorts: [80.5] },
      { principals: [{}] },
      { namespaces: [{ exact: 1 }] },
      { serviceAccounts: [{ namespace: "foo" }] },
    ];
    for (const m of unusable) {
      expect(evaluateZtunnelAuthorizations([deny(m)], conn).allowed).toBe(false);
      expect(evaluateZtunnelAuthorizations([allow(m)], conn).allowed).toBe(false);
    }
    // Negative lists mirror it: an unusable exclusion excludes nothing in a Deny, everything in an Allow.
    expect(evaluateZtunnelAuthorizations([deny({ notSourceIps: ["bogus"] })], conn).allowed).toBe(
      false,
    );
    expect(
      evaluateZtunnelAuthorizations([allow({ notDestinationPorts: [70000] })], conn).allowed,
    ).toBe(false);
  });
});

describe("#14.4 a waypoint request Envoy rejects with 400 is denied as invalid-request", () => {
  const denyAdmin = ap("deny-admin", {
    targetRefs: SVC_REF,
    action: "DENY",
    rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }],
  });
  it.each(["admin", "", "%2Fadmin", "?x=/admin", "admin/../x", "*"])(
    "path %j is implicit:invalid-request, with or without policies",
    (path) => {
      for (const policies of [[denyAdmin], []]) {
        const d = waypointDecide(policies, { path });
        expect([d.decision, d.decidedBy]).toEqual(["deny", "implicit:invalid-request"]);
      }
      expect(normalizeRequestPath(path)).toBeNull();
    },
  );
  it.each([
    ["method get", { method: "get" }],
    ["empty method", { method: "" }],
    ["empty :authority", { host: "" }],
    ["space in path", { path: "/a dmin" }],
    ["CRLF in a header value", { headers: { "x-a": "1\r\nx-b: 2" } }],
    ["a header name that is not a token", { headers: { "x a": "1" } }],
  ])("%s is implicit:invalid-request", (_, req) => {
    const d = waypointDecide([], req);
    expect([d.decision, d.decidedBy]).toEqual(["deny", "implicit:invalid-request"]);
  });
  it("an X-Forwarded-For hop that does not parse is unknown: a remoteIpBlocks DENY still denies", () => {
    const p = ap("deny-remote", {
      targetRefs: SVC_REF,
      action: "DENY",
      rules: [{ from: [{ source: { remoteIpBlocks: ["10.0.0.0/8"] } }] }],
    });
    expect(waypointDecide([p], { headers: { "x-forwarded-for": "192.168.0.1" } }).decision).toBe(
      "allow",
    );
    expect(waypointDecide([p], { headers: { "x-forwarded-for": "junk" } }).decision).toBe("deny");
    const allow = ap("allow-remote", {
      targetRefs: SVC_REF,
      rules: [{ from: [{ source: { remoteIpBlocks: ["10.0.0.0/8"] } }] }],
    });
    expect(waypointDecide([allow], { headers: { "x-forwarded-for": "junk" } }).decision).toBe(
      "deny",
    );
  });
  it("a path that starts with / still works: the valid request is unaffected", () => {
    expect(waypointDecide([denyAdmin], { path: "/admin/x" }).decision).toBe("deny");
    expect(waypointDecide([denyAdmin], { path: "/get" }).decision).toBe("allow");
  });
});

describe("#14.5 public entry points return a decision or a typed AuthzError", () => {
  it("decide with a non-string header value throws AuthzError, not TypeError", () => {
    expectInvalidInput(() => waypointDecide([], { headers: { "x-a": 1 as never } }));
    expectInvalidInput(() => waypointDecide([], { headers: { "x-a": ["a", 2] as never } }));
    expectInvalidInput(() => waypointDecide([], { headers: null as never }));
  });
  it("decide with a wrong-typed request, labels, jwt or provider answer throws AuthzError", () => {
    expectInvalidInput(() => waypointDecide([], { path: 5 as never }));
    expectInvalidInput(() => waypointDecide([], { jwt: "x" as never }));
    expectInvalidInput(() => ztunnelDecide([], {}, { labels: { app: 1 as never } }));
    expectInvalidInput(() => waypointDecide([], {}, {}, { custom: { ext: "yes" as never } }));
    expectInvalidInput(() =>
      evaluate([], MESH, {
        enforcement: "waypoint",
        workload: { namespace: "foo", labels: {} },
        connection: { ...ZT_CONN, sni: 5 as never },
      }),
    );
  });
  it("compilePolicies and evaluate refuse malformed policies and mesh settings with codes", () => {
    const bad = {
      ...DENY_10_8,
      spec: { action: "DENY", rules: [{ from: [{ source: { ipBlocks: "10.0.0.0/8" } }] }] },
    };
    expectInvalidInput(() => compilePolicies([bad as never], MESH), "ERR_AUTHZ_INVALID_RESOURCE");
    expectInvalidInput(() => compilePolicies([], { ...MESH, trustDomainAliases: "x" as never }));
    expectInvalidInput(() => compilePolicies("nope" as never, MESH), "ERR_AUTHZ_INVALID_RESOURCE");
  });
});

describe("#14.6 a case file with no cases is an error", () => {
  it.each([
    ["cases: []", { cases: [] }],
    ["cases: null", { cases: null }],
    ["validationCases: []", { validationCases: [] }],
    ["both empty", { cases: [], validationCases: null }],
  ])("%s is reported as an issue, not 0 passed / 0 failed", (_, doc) => {
    const report = runCaseFile(doc);
    expect([report.passed, report.failed]).toEqual([0, 0]);
    expect(report.issues.map((i) => i.message)).toEqual([
      "this case file has no cases: `cases:` and `validationCases:` are empty",
    ]);
  });
  it("a file with one case is not affected", () => {
    const report = runCaseFile({
      cases: [
        {
          id: "one",
          enforcement: "waypoint",
          workload: { namespace: "foo" },
          service: { name: "httpbin", namespace: "foo", protocol: "HTTP" },
          connection: { sourceIp: "10.0.2.20", destinationIp: "10.96.0.50", destinationPort: 8000 },
          request: { ...REQ },
          expect: { decision: "allow" },
        },
      ],
    });
    expect([report.passed, report.failed, report.issues]).toEqual([1, 0, []]);
  });
});
