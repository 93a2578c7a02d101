import { describe, expect, it } from "vitest";
import { ap, MESH, pa, ztunnelDecide as zd, ztAllow } from "./helpers.testutil.js";
import {
  type AuthorizationPolicy,
  convertAuthorizationPolicy,
  convertPeerAuthentications,
  evaluateZtunnelAuthorizations,
  toLocalXdsAuthorization,
  type ZtunnelAuthorization,
  ztunnelAuthorizationMatches,
} from "./index.js";

const allowed = (rule: Record<string, unknown>, conn: Parameters<typeof zd>[1] = {}) =>
  zd([ztAllow(rule)], conn).decision;

describe("ztunnel: L4 fields", () => {
  it("principals compare the identity without spiffe://, exact/prefix/suffix/presence", () => {
    expect(allowed({ from: [{ source: { principals: ["cluster.local/ns/bar/sa/sleep"] } }] })).toBe(
      "allow",
    );
    expect(allowed({ from: [{ source: { principals: ["cluster.local/ns/bar/*"] } }] })).toBe(
      "allow",
    );
    expect(allowed({ from: [{ source: { principals: ["*/sa/sleep"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { principals: ["*"] } }] }, { sourcePrincipal: null })).toBe(
      "deny",
    );
    expect(
      allowed({ from: [{ source: { principals: ["spiffe://cluster.local/ns/bar/sa/sleep"] } }] }),
    ).toBe("deny");
  });
  it("negative lists match when there is no identity", () => {
    expect(
      allowed({ from: [{ source: { notPrincipals: ["*"] } }] }, { sourcePrincipal: null }),
    ).toBe("allow");
    expect(
      allowed({ from: [{ source: { notNamespaces: ["bar"] } }] }, { sourcePrincipal: null }),
    ).toBe("allow");
    expect(
      allowed(
        { from: [{ source: { notServiceAccounts: ["bar/sleep"] } }] },
        { sourcePrincipal: null },
      ),
    ).toBe("allow");
  });
  it("namespaces: prefix/suffix/presence, `a*b` is exact", () => {
    expect(allowed({ from: [{ source: { namespaces: ["ba*"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { namespaces: ["*ar"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { namespaces: ["*"] } }] }, { sourcePrincipal: null })).toBe(
      "deny",
    );
    expect(allowed({ from: [{ source: { namespaces: ["b*r"] } }] })).toBe("deny");
  });
  it("serviceAccounts ignore the trust domain; bare names use the policy namespace", () => {
    expect(
      allowed(
        { from: [{ source: { serviceAccounts: ["bar/sleep"] } }] },
        { sourcePrincipal: "spiffe://other.td/ns/bar/sa/sleep" },
      ),
    ).toBe("allow");
    expect(allowed({ from: [{ source: { serviceAccounts: ["sleep"] } }] })).toBe("deny");
    expect(
      allowed(
        { from: [{ source: { serviceAccounts: ["sleep"] } }] },
        { sourcePrincipal: "spiffe://cluster.local/ns/foo/sa/sleep" },
      ),
    ).toBe("allow");
  });
  it("ipBlocks / destination ip / ports; families never cross", () => {
    expect(allowed({ from: [{ source: { ipBlocks: ["10.0.2.0/24"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { ipBlocks: ["10.0.2.1/24"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { notIpBlocks: ["10.0.2.20"] } }] })).toBe("deny");
    expect(allowed({ from: [{ source: { ipBlocks: ["::/0"] } }] })).toBe("deny");
    expect(
      allowed(
        { from: [{ source: { ipBlocks: ["fd00:10:2::/64"] } }] },
        { sourceIp: "fd00:10:2::20" },
      ),
    ).toBe("allow");
    expect(
      allowed(
        { from: [{ source: { ipBlocks: ["fd00:10:3::/64"] } }] },
        { sourceIp: "fd00:10:2::20" },
      ),
    ).toBe("deny");
    expect(allowed({ to: [{ operation: { ports: ["8080"] } }] })).toBe("allow");
    expect(allowed({ to: [{ operation: { notPorts: ["8080"] } }] })).toBe("deny");
    expect(allowed({ when: [{ key: "destination.ip", values: ["10.0.1.0/24"] }] })).toBe("allow");
    expect(allowed({ when: [{ key: "destination.port", notValues: ["8080"] }] })).toBe("deny");
  });
  it("L4 when keys: source.ip, source.namespace, source.principal", () => {
    expect(allowed({ when: [{ key: "source.ip", values: ["10.0.2.0/24"] }] })).toBe("allow");
    expect(allowed({ when: [{ key: "source.namespace", values: ["bar"] }] })).toBe("allow");
    expect(allowed({ when: [{ key: "source.namespace", notValues: ["bar"] }] })).toBe("deny");
    expect(
      allowed({ when: [{ key: "source.principal", values: ["cluster.local/ns/bar/*"] }] }),
    ).toBe("allow");
  });
});

describe("ztunnel: conversion (istiod convertAuthorizationPolicy)", () => {
  const full = ap(
    "allow",
    {
      rules: [
        { from: [{ source: { principals: ["p", "p-*", "*-p", "*"], notPrincipals: ["n"] } }] },
        { from: [{ source: { serviceAccounts: ["ns/sa", "sa-only"] } }] },
        { from: [{ source: { requestPrincipals: ["*"] } }] },
        {
          from: [
            {
              source: {
                ipBlocks: ["1.2.3.4", "5.6.0.0/16", "bogus"],
                notIpBlocks: ["2001:db8::/32"],
              },
            },
          ],
        },
        { to: [{ operation: { methods: ["GET"] } }] },
        { to: [{ operation: { ports: ["80", "090", "http"] } }] },
        { when: [{ key: "request.headers[x]", values: ["a"] }] },
        { when: [{ key: "source.ip", values: ["10.10.10.10"], notValues: ["90.0.0.0/8"] }] },
        { when: [{ key: "remote.ip", values: ["10.10.10.10"] }] },
        { when: [{ key: "destination.port", values: ["91"] }] },
        { from: [{ source: { trustDomains: ["td"] } }] },
      ],
    },
    { namespace: "cfg" },
  ) as AuthorizationPolicy;
  const c = convertAuthorizationPolicy(full, "istio-system");
  it("keeps L4 rules in order, drops ALLOW rules with any L7 attribute or an unparsable value", () => {
    expect(c.authorization).toEqual({
      name: "allow",
      namespace: "cfg",
      scope: "Namespace",
      action: "Allow",
      dryRun: false,
      rules: [
        [
          [
            {
              principals: [{ exact: "p" }, { prefix: "p-" }, { suffix: "-p" }, { presence: true }],
              notPrincipals: [{ exact: "n" }],
            },
          ],
        ],
        [
          [
            {
              serviceAccounts: [
                { namespace: "ns", serviceAccount: "sa" },
                { namespace: "cfg", serviceAccount: "sa-only" },
              ],
            },
          ],
        ],
        [[{ sourceIps: ["10.10.10.10/32"], notSourceIps: ["90.0.0.0/8"] }]],
        [[{ destinationPorts: [91] }]],
        [[{}]],
      ],
    });
    expect(c.ruleIndex).toEqual([0, 1, 7, 9, 10]);
    // istiod would keep rules 3 and 5 without "bogus" and "http": a wider ALLOW than written.
    expect(c.unparsable).toEqual([
      { rule: 3, attribute: "from.source.ipBlocks", value: "bogus" },
      { rule: 5, attribute: "to.operation.ports", value: "http" },
    ]);
    expect(c.status?.message).toBe(
      "ztunnel does not support HTTP attributes (found: methods, remote.ip, request.headers[x], requestPrincipals). In ambient mode you must use a waypoint proxy to enforce HTTP rules. Within an ALLOW policy, rules matching HTTP attributes are omitted. This will be more restrictive than requested.",
    );
  });
  it("a rule with only trustDomains becomes an empty match that never matches at ztunnel", () => {
    const only = convertAuthorizationPolicy(
      ap("x", { rules: [{ from: [{ source: { trustDomains: ["td"] } }] }] }) as AuthorizationPolicy,
      "istio-system",
    );
    expect(only.authorization?.rules).toEqual([[[{}]]]);
    expect(only.ignored.map((i) => i.attribute)).toEqual(["from.source.trustDomains"]);
  });
  it("scope: Global in the root namespace, WorkloadSelector with a selector", () => {
    expect(
      convertAuthorizationPolicy(
        ap("g", {}, { namespace: "istio-system" }) as AuthorizationPolicy,
        "istio-system",
      ).authorization?.scope,
    ).toBe("Global");
    expect(
      convertAuthorizationPolicy(
        ap("g", {}, { namespace: "istio-system" }) as AuthorizationPolicy,
        "mesh-root",
      ).authorization?.scope,
    ).toBe("Namespace");
    const sel = convertAuthorizationPolicy(
      ap("s", { selector: { matchLabels: { app: "a" } } }) as AuthorizationPolicy,
      "istio-system",
    );
    expect(sel.authorization?.scope).toBe("WorkloadSelector");
    expect(sel.selector).toEqual({ app: "a" });
  });
  it("targetRefs, AUDIT, CUSTOM and dry-run policies are not sent", () => {
    expect(
      convertAuthorizationPolicy(
        ap("t", { targetRefs: [{ kind: "Service", name: "s" }] }) as AuthorizationPolicy,
        "istio-system",
      ).authorization,
    ).toBeNull();
    const audit = convertAuthorizationPolicy(
      ap("a", { action: "AUDIT", rules: [{}] }) as AuthorizationPolicy,
      "istio-system",
    );
    expect(audit).toMatchObject({
      authorization: null,
      status: { reason: "UnsupportedValue", message: "ztunnel does not support the AUDIT action" },
    });
    const dry = ap(
      "d",
      { action: "DENY", rules: [{}] },
      { annotations: { "istio.io/dry-run": "t" } },
    ) as AuthorizationPolicy;
    expect(convertAuthorizationPolicy(dry, "istio-system").authorization).toBeNull();
    expect(
      convertAuthorizationPolicy(dry, "istio-system", { ambientEnableDryRun: true }).authorization
        ?.dryRun,
    ).toBe(true);
  });
  it("LOCAL_XDS spelling tags StringMatch externally", () => {
    expect(toLocalXdsAuthorization(c.authorization as ZtunnelAuthorization).rules).toContainEqual([
      [
        {
          principals: [{ Exact: "p" }, { Prefix: "p-" }, { Suffix: "-p" }, { Presence: [] }],
          notPrincipals: [{ Exact: "n" }],
        },
      ],
    ]);
  });
});

describe("ztunnel: evaluating the Authorization form directly", () => {
  const conn = {
    sourceIp: "10.0.2.20",
    destinationIp: "10.0.1.10",
    destinationPort: 8080,
    sourceIdentity: "spiffe://cluster.local/ns/bar/sa/sleep",
  };
  const base = { name: "p", namespace: "foo", scope: "Namespace" as const, dryRun: false };
  it("empty rules never match; an empty clause matches; empty matches are skipped", () => {
    expect(ztunnelAuthorizationMatches({ ...base, action: "Allow", rules: [] }, conn)).toBe(false);
    expect(ztunnelAuthorizationMatches({ ...base, action: "Allow", rules: [[]] }, conn)).toBe(true);
    expect(ztunnelAuthorizationMatches({ ...base, action: "Allow", rules: [[[]]] }, conn)).toBe(
      true,
    );
    expect(ztunnelAuthorizationMatches({ ...base, action: "Allow", rules: [[[{}]]] }, conn)).toBe(
      false,
    );
    expect(
      ztunnelAuthorizationMatches(
        { ...base, action: "Allow", rules: [[[{}, { namespaces: [{ exact: "bar" }] }]]] },
        conn,
      ),
    ).toBe(true);
  });
  it("assert_rbac order: deny, no allow → allow, allow match, else deny; dry-run only logged", () => {
    const deny: ZtunnelAuthorization = {
      ...base,
      name: "d",
      action: "Deny",
      rules: [[[{ destinationPorts: [8080] }]]],
    };
    const allow: ZtunnelAuthorization = {
      ...base,
      name: "a",
      action: "Allow",
      rules: [[[{ namespaces: [{ exact: "baz" }] }]]],
    };
    expect(evaluateZtunnelAuthorizations([allow, deny], conn)).toMatchObject({
      allowed: false,
      policy: "foo/d",
      reason: "denied",
    });
    expect(evaluateZtunnelAuthorizations([allow], conn)).toMatchObject({
      allowed: false,
      reason: "not-allowed",
    });
    expect(evaluateZtunnelAuthorizations([], conn)).toMatchObject({
      allowed: true,
      reason: "no-allow-policies",
    });
    expect(evaluateZtunnelAuthorizations([{ ...deny, dryRun: true }], conn)).toMatchObject({
      allowed: true,
      dryRunMatches: ["foo/d"],
    });
  });
});

describe("ztunnel: attachment", () => {
  const rule = { rules: [{}] };
  it("namespace-wide applies in its namespace only; root namespace applies mesh-wide", () => {
    expect(zd([ap("n", rule, { namespace: "other" })]).decidedBy).toBe(
      "implicit:no-allow-policies",
    );
    expect(zd([ap("n", rule)]).decidedBy).toBe("foo/n");
    expect(zd([ap("g", rule, { namespace: "istio-system" })]).decidedBy).toBe("istio-system/g");
    expect(
      zd(
        [ap("g", rule, { namespace: "custom-root" })],
        {},
        { mesh: { rootNamespace: "custom-root" } },
      ).decidedBy,
    ).toBe("custom-root/g");
  });
  it("selector: labels must be a subset; root-namespace selectors select in every namespace", () => {
    expect(
      zd([ap("s", { selector: { matchLabels: { app: "httpbin" } }, ...rule })]).decidedBy,
    ).toBe("foo/s");
    expect(
      zd([ap("s", { selector: { matchLabels: { app: "httpbin", version: "v2" } }, ...rule })])
        .decidedBy,
    ).toBe("implicit:no-allow-policies");
    expect(
      zd([
        ap(
          "s",
          { selector: { matchLabels: { app: "httpbin" } }, ...rule },
          { namespace: "istio-system" },
        ),
      ]).decidedBy,
    ).toBe("istio-system/s");
    expect(
      zd([
        ap("s", { selector: { matchLabels: { app: "httpbin" } }, ...rule }, { namespace: "other" }),
      ]).decidedBy,
    ).toBe("implicit:no-allow-policies");
  });
  it("targetRefs policies never apply at ztunnel", () => {
    expect(
      zd([ap("t", { targetRefs: [{ kind: "Service", group: "", name: "httpbin" }] })]).decidedBy,
    ).toBe("implicit:no-allow-policies");
  });
});

describe("ztunnel: PeerAuthentication", () => {
  it("STRICT (mesh, namespace or workload) attaches the static DENY for plaintext", () => {
    for (const p of [
      pa("m", "istio-system", { mtls: { mode: "STRICT" } }),
      pa("n", "foo", { mtls: { mode: "STRICT" } }),
      pa("w", "foo", { selector: { matchLabels: { app: "httpbin" } }, mtls: { mode: "STRICT" } }),
    ]) {
      expect(zd([p], { sourcePrincipal: null })).toMatchObject({
        decision: "deny",
        decidedBy: "istio-system/istio_converted_static_strict",
      });
      expect(zd([p]).decision).toBe("allow");
    }
  });
  it("PERMISSIVE namespace overrides a STRICT mesh; workload PERMISSIVE overrides STRICT namespace", () => {
    expect(
      zd(
        [
          pa("m", "istio-system", { mtls: { mode: "STRICT" } }),
          pa("n", "foo", { mtls: { mode: "PERMISSIVE" } }),
        ],
        { sourcePrincipal: null },
      ).decision,
    ).toBe("allow");
    expect(
      zd(
        [
          pa("n", "foo", { mtls: { mode: "STRICT" } }),
          pa("w", "foo", {
            selector: { matchLabels: { app: "httpbin" } },
            mtls: { mode: "PERMISSIVE" },
          }),
        ],
        { sourcePrincipal: null },
      ).decision,
    ).toBe("allow");
    expect(
      zd(
        [
          pa("n", "foo", { mtls: { mode: "UNSET" } }),
          pa("m", "istio-system", { mtls: { mode: "STRICT" } }),
        ],
        { sourcePrincipal: null },
      ).decision,
    ).toBe("deny");
  });
  it("port-level PERMISSIVE under STRICT exempts that port (converted_peer_authentication_<name>)", () => {
    const w = pa("w", "foo", {
      selector: { matchLabels: { app: "httpbin" } },
      mtls: { mode: "STRICT" },
      portLevelMtls: { "9090": { mode: "PERMISSIVE" } },
    });
    expect(zd([w], { sourcePrincipal: null, destinationPort: 9090 }).decision).toBe("allow");
    expect(zd([w], { sourcePrincipal: null, destinationPort: 8080 })).toMatchObject({
      decision: "deny",
      decidedBy: "foo/converted_peer_authentication_w",
    });
    expect(zd([w]).decision).toBe("allow");
  });
  it("port-level STRICT under PERMISSIVE denies plaintext on that port only", () => {
    const w = pa("w", "foo", {
      selector: { matchLabels: { app: "httpbin" } },
      mtls: { mode: "PERMISSIVE" },
      portLevelMtls: { "8080": { mode: "STRICT" } },
    });
    expect(zd([w], { sourcePrincipal: null }).decision).toBe("deny");
    expect(zd([w], { sourcePrincipal: null, destinationPort: 9090 }).decision).toBe("allow");
  });
  it("the oldest namespace policy wins", () => {
    const a = pa("a", "foo", { mtls: { mode: "STRICT" } }, "2024-01-02T00:00:00Z");
    const b = pa("b", "foo", { mtls: { mode: "PERMISSIVE" } }, "2024-01-01T00:00:00Z");
    expect(zd([a, b], { sourcePrincipal: null }).decision).toBe("allow");
  });
  it("convert lists the static STRICT policy whenever any PeerAuthentication exists", () => {
    const out = convertPeerAuthentications(
      [pa("n", "foo", { mtls: { mode: "PERMISSIVE" } }) as never],
      MESH.rootNamespace,
    );
    expect(out.map((a) => `${a.namespace}/${a.name}`)).toEqual([
      "istio-system/istio_converted_static_strict",
    ]);
  });
});

describe("ztunnel: decisions report what was ignored", () => {
  it("ALLOW rule with an L7 attribute: the rule is dropped and the decision says so", () => {
    const d = zd([ztAllow({ to: [{ operation: { methods: ["GET"], ports: ["8080"] } }] })]);
    expect(d).toMatchObject({ decision: "deny", decidedBy: "implicit:no-allow-match" });
    expect(d.ignored).toEqual([
      expect.objectContaining({ policy: "foo/allow", rule: 0, attribute: "to.operation.methods" }),
    ]);
  });
  it("dry-run at ztunnel: not sent by default; with the flag, logged only", () => {
    const dry = ap(
      "d",
      { action: "DENY", rules: [{}] },
      { annotations: { "istio.io/dry-run": "true" } },
    );
    expect(zd([dry])).toMatchObject({ decision: "allow", dryRun: [] });
    expect(zd([dry]).ignored[0]?.attribute).toBe("metadata.annotations[istio.io/dry-run]");
    expect(zd([dry], {}, { mesh: { ambientEnableDryRun: true } })).toMatchObject({
      decision: "allow",
      dryRun: [{ policy: "foo/d", matched: true, rule: 0 }],
    });
  });
  it("rule index refers to the original spec.rules even after dropped rules", () => {
    const p = ap("a", {
      rules: [
        { to: [{ operation: { paths: ["/x"] } }] },
        { from: [{ source: { namespaces: ["bar"] } }] },
      ],
    });
    expect(zd([p])).toMatchObject({ decision: "allow", decidedBy: "foo/a", rule: 1 });
  });
});

describe("ztunnel: DENY status says whether anything is left to enforce", () => {
  it("only-L7 DENY has no effect; mixed DENY is enforced without the HTTP rules", () => {
    const none = convertAuthorizationPolicy(
      ap("d", {
        action: "DENY",
        rules: [{ from: [{ source: { notRequestPrincipals: ["*"] } }] }],
      }) as AuthorizationPolicy,
      "istio-system",
    );
    expect(none.status?.message).toContain(
      "has no enforceable rules at ztunnel and will have no effect",
    );
    const mixed = convertAuthorizationPolicy(
      ap("d", {
        action: "DENY",
        rules: [{ to: [{ operation: { ports: ["80"], methods: ["GET"] } }] }],
      }) as AuthorizationPolicy,
      "istio-system",
    );
    expect(mixed.status?.message).toContain(
      "DENY policy with HTTP attributes is enforced without the HTTP rules",
    );
  });
});

describe("bad input is a typed error, not a decision", () => {
  it("decide rejects malformed input with AuthzError", async () => {
    const { AuthzError, compilePolicies } = await import("./index.js");
    const c = compilePolicies([], MESH);
    const input = {
      enforcement: "sidecar",
      workload: { namespace: "foo", labels: {} },
      connection: {
        sourcePrincipal: null,
        sourceIp: "1.1.1.1",
        destinationIp: "1.1.1.2",
        destinationPort: 80,
      },
    };
    expect(() => c.decide(input as never)).toThrow(AuthzError);
    expect(() =>
      c.decide({
        ...input,
        enforcement: "ztunnel",
        connection: { ...input.connection, destinationPort: 70000 },
      } as never),
    ).toThrow(/destinationPort must be an integer 0-65535/);
    expect(new AuthzError("ERR_AUTHZ_INVALID_INPUT", "x").code).toBe("ERR_AUTHZ_INVALID_INPUT");
    expect(() => compilePolicies([{ kind: "Pod" } as never], MESH)).toThrow(/parsePolicyResource/);
  });
});

describe("the index", () => {
  it("applicable() lists only the policies attached to the target, in key order", async () => {
    const { compilePolicies } = await import("./index.js");
    const c = compilePolicies(
      [
        ap("z", {}),
        ap("a", { selector: { matchLabels: { app: "httpbin" } } }),
        ap("g", {}, { namespace: "istio-system" }),
        ap("o", {}, { namespace: "other" }),
        ap("w", { targetRefs: [{ kind: "Service", group: "", name: "httpbin" }] }),
      ],
      MESH,
    );
    const workload = { namespace: "foo", labels: { app: "httpbin" } };
    expect(c.applicable({ enforcement: "ztunnel", workload })).toEqual([
      "foo/a",
      "foo/z",
      "istio-system/g",
    ]);
    expect(
      c.applicable({
        enforcement: "waypoint",
        workload,
        service: { kind: "Service", name: "httpbin", namespace: "foo", protocol: "HTTP" },
      }),
    ).toEqual(["foo/w"]);
    expect(
      c
        .ztunnelAuthorizations()
        .map((x) => `${x.authorization?.namespace}/${x.authorization?.name}`),
    ).toEqual(["foo/a", "foo/z", "istio-system/g", "other/o"]);
    expect(c.size).toBe(5);
  });
});

describe("ztunnel: PILOT_AUTO_ALLOW_WAYPOINT_POLICY", () => {
  it("adds an ALLOW for the workload's waypoint identity only when the flag is on", async () => {
    const { compilePolicies } = await import("./index.js");
    const policies = [
      ap("allow-bar", { rules: [{ from: [{ source: { namespaces: ["bar"] } }] }] }),
    ];
    const input = {
      enforcement: "ztunnel" as const,
      workload: { namespace: "foo", labels: {} },
      waypoint: { name: "waypoint", namespace: "foo", serviceAccount: "waypoint" },
      connection: {
        sourcePrincipal: "spiffe://cluster.local/ns/foo/sa/waypoint",
        sourceIp: "10.0.1.99",
        destinationIp: "10.0.1.10",
        destinationPort: 8080,
      },
    };
    expect(compilePolicies(policies, MESH).decide(input).decision).toBe("deny");
    expect(
      compilePolicies(policies, { ...MESH, autoAllowWaypointPolicy: true }).decide(input),
    ).toMatchObject({
      decision: "allow",
      decidedBy: "foo/istio_allow_waypoint_foo_waypoint",
    });
  });
});
