import { describe, expect, it } from "vitest";
import { ap, SVC_REF, waypointDecide as wd, wpAllow } from "./helpers.testutil.js";

const allowed = (
  rule: Record<string, unknown>,
  ...args: Parameters<typeof wd> extends [unknown, ...infer R] ? R : never
) => wd([wpAllow(rule)], ...args).decision;

describe("waypoint: from.source fields (Envoy RBAC principals)", () => {
  it("principals exact / prefix / suffix / presence", () => {
    expect(allowed({ from: [{ source: { principals: ["cluster.local/ns/bar/sa/sleep"] } }] })).toBe(
      "allow",
    );
    expect(allowed({ from: [{ source: { principals: ["cluster.local/ns/bar/sa/other"] } }] })).toBe(
      "deny",
    );
    expect(allowed({ from: [{ source: { principals: ["cluster.local/ns/bar/*"] } }] })).toBe(
      "allow",
    );
    expect(allowed({ from: [{ source: { principals: ["*/sa/sleep"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { principals: ["*"] } }] })).toBe("allow");
    expect(
      allowed({ from: [{ source: { principals: ["*"] } }] }, {}, { sourcePrincipal: null }),
    ).toBe("deny");
  });
  it("spiffe:// in principals never matches (Envoy builds spiffe://spiffe://...)", () => {
    expect(
      allowed({ from: [{ source: { principals: ["spiffe://cluster.local/ns/bar/sa/sleep"] } }] }),
    ).toBe("deny");
  });
  it("notPrincipals ['*'] matches plaintext only", () => {
    expect(
      allowed({ from: [{ source: { notPrincipals: ["*"] } }] }, {}, { sourcePrincipal: null }),
    ).toBe("allow");
    expect(allowed({ from: [{ source: { notPrincipals: ["*"] } }] })).toBe("deny");
  });
  it("namespaces: exact, and `*` anywhere becomes a regex `.*`", () => {
    expect(allowed({ from: [{ source: { namespaces: ["bar"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { namespaces: ["ba"] } }] })).toBe("deny");
    expect(allowed({ from: [{ source: { namespaces: ["b*r"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { notNamespaces: ["bar"] } }] })).toBe("deny");
    expect(
      allowed({ from: [{ source: { notNamespaces: ["bar"] } }] }, {}, { sourcePrincipal: null }),
    ).toBe("allow");
  });
  it("serviceAccounts: ns/sa and bare sa (policy namespace)", () => {
    expect(allowed({ from: [{ source: { serviceAccounts: ["bar/sleep"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { serviceAccounts: ["sleep"] } }] })).toBe("deny");
    expect(
      allowed(
        { from: [{ source: { serviceAccounts: ["sleep"] } }] },
        {},
        { sourcePrincipal: "spiffe://cluster.local/ns/foo/sa/sleep" },
      ),
    ).toBe("allow");
    expect(allowed({ from: [{ source: { notServiceAccounts: ["bar/sleep"] } }] })).toBe("deny");
  });
  it("trustDomains: exact, wildcard, aliases expanded", () => {
    expect(allowed({ from: [{ source: { trustDomains: ["cluster.local"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { trustDomains: ["other.td"] } }] })).toBe("deny");
    expect(allowed({ from: [{ source: { trustDomains: ["*.local"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { trustDomains: ["*"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { notTrustDomains: ["cluster.local"] } }] })).toBe("deny");
    expect(
      wd(
        [wpAllow({ from: [{ source: { trustDomains: ["new-td"] } }] })],
        {},
        { sourcePrincipal: "spiffe://old-td/ns/bar/sa/sleep" },
        { mesh: { trustDomain: "new-td", trustDomainAliases: ["old-td"] } },
      ).decision,
    ).toBe("allow");
  });
  it("ipBlocks: IPv4/IPv6 CIDRs and bare IPs on the client address", () => {
    expect(allowed({ from: [{ source: { ipBlocks: ["10.0.2.0/24"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { ipBlocks: ["10.0.2.20"] } }] })).toBe("allow");
    expect(allowed({ from: [{ source: { ipBlocks: ["10.0.3.0/24"] } }] })).toBe("deny");
    expect(
      allowed({ from: [{ source: { ipBlocks: ["fd00::/8"] } }] }, {}, { sourceIp: "fd00::1" }),
    ).toBe("allow");
    expect(
      allowed({ from: [{ source: { ipBlocks: ["0.0.0.0/0"] } }] }, {}, { sourceIp: "fd00::1" }),
    ).toBe("deny");
    expect(allowed({ from: [{ source: { notIpBlocks: ["10.0.0.0/8"] } }] })).toBe("deny");
  });
  it("remoteIpBlocks: last X-Forwarded-For hop, else the peer", () => {
    expect(allowed({ from: [{ source: { remoteIpBlocks: ["10.0.2.0/24"] } }] })).toBe("allow");
    expect(
      allowed(
        { from: [{ source: { remoteIpBlocks: ["192.0.2.0/24"] } }] },
        { headers: { "X-Forwarded-For": "198.51.100.1, 192.0.2.7" } },
      ),
    ).toBe("allow");
    expect(
      allowed(
        { from: [{ source: { notRemoteIpBlocks: ["192.0.2.0/24"] } }] },
        { headers: { "x-forwarded-for": "192.0.2.7" } },
      ),
    ).toBe("deny");
  });
  it("requestPrincipals: iss/sub split at the last '/'", () => {
    const jwt = { iss: "https://issuer.example.com", sub: "user-1" };
    const rp = (v: string, j: Record<string, unknown> | null = jwt) =>
      allowed({ from: [{ source: { requestPrincipals: [v] } }] }, { jwt: j });
    expect(rp("https://issuer.example.com/user-1")).toBe("allow");
    expect(rp("https://issuer.example.com/user-2")).toBe("deny");
    expect(rp("https://issuer.example.com/*")).toBe("allow");
    expect(rp("*")).toBe("allow");
    expect(rp("*", null)).toBe("deny");
    expect(rp("*/user-1")).toBe("allow");
    expect(
      rp("https://issuer.example.com/*", { iss: "https://issuer.example.com/x", sub: "y" }),
    ).toBe("deny");
    expect(allowed({ from: [{ source: { notRequestPrincipals: ["*"] } }] }, { jwt: null })).toBe(
      "allow",
    );
  });
});

describe("waypoint: to.operation fields", () => {
  it("hosts are case-insensitive and include the port as sent", () => {
    expect(allowed({ to: [{ operation: { hosts: ["HTTPBIN.foo:8000"] } }] })).toBe("allow");
    expect(allowed({ to: [{ operation: { hosts: ["httpbin.foo"] } }] })).toBe("deny");
    expect(allowed({ to: [{ operation: { hosts: ["httpbin.foo*"] } }] })).toBe("allow");
    expect(allowed({ to: [{ operation: { hosts: ["*:8000"] } }] })).toBe("allow");
    expect(allowed({ to: [{ operation: { notHosts: ["httpbin.foo:8000"] } }] })).toBe("deny");
  });
  it("ports are strings compared with the service port; leading zeros parse", () => {
    expect(allowed({ to: [{ operation: { ports: ["8000"] } }] })).toBe("allow");
    expect(allowed({ to: [{ operation: { ports: ["08000"] } }] })).toBe("allow");
    expect(allowed({ to: [{ operation: { ports: ["8080"] } }] })).toBe("deny");
    expect(allowed({ to: [{ operation: { notPorts: ["8000"] } }] })).toBe("deny");
  });
  it("methods are case-sensitive", () => {
    expect(allowed({ to: [{ operation: { methods: ["GET"] } }] })).toBe("allow");
    expect(allowed({ to: [{ operation: { methods: ["get"] } }] })).toBe("deny");
    expect(allowed({ to: [{ operation: { notMethods: ["GET"] } }] })).toBe("deny");
  });
  it("paths: exact/prefix/suffix/presence, query ignored, case-sensitive", () => {
    expect(allowed({ to: [{ operation: { paths: ["/get"] } }] }, { path: "/get?x=1" })).toBe(
      "allow",
    );
    expect(allowed({ to: [{ operation: { paths: ["/api/*"] } }] }, { path: "/api/v1" })).toBe(
      "allow",
    );
    expect(allowed({ to: [{ operation: { paths: ["*.png"] } }] }, { path: "/img/a.png" })).toBe(
      "allow",
    );
    expect(allowed({ to: [{ operation: { paths: ["*"] } }] })).toBe("allow");
    expect(allowed({ to: [{ operation: { paths: ["/admin"] } }] }, { path: "/ADMIN" })).toBe(
      "deny",
    );
  });
  it("path templates {*} one segment, {**} the rest", () => {
    const t = (tpl: string, path: string) =>
      allowed({ to: [{ operation: { paths: [tpl] } }] }, { path });
    expect(t("/foo/{*}", "/foo/bar")).toBe("allow");
    expect(t("/foo/{*}", "/foo/bar/baz")).toBe("deny");
    expect(t("/foo/{**}", "/foo/bar/baz")).toBe("allow");
    expect(t("/foo/{*}/baz", "/foo/x/baz")).toBe("allow");
    expect(t("/foo/{*}/baz", "/foo/x/y/baz")).toBe("deny");
  });
  it("path normalisation: BASE decodes unreserved, removes dots, keeps %2F, does not merge //", () => {
    const deny = ap("deny-admin", {
      targetRefs: SVC_REF,
      action: "DENY",
      rules: [{ to: [{ operation: { paths: ["/admin"] } }] }],
    });
    const d = (
      path: string,
      pathNormalization?: "BASE" | "MERGE_SLASHES" | "DECODE_AND_MERGE_SLASHES" | "NONE",
    ) =>
      wd([deny], { path }, {}, pathNormalization ? { mesh: { pathNormalization } } : {}).decision;
    expect(d("/public/../admin")).toBe("deny");
    expect(d("/%61dmin")).toBe("deny");
    expect(d("/public\\..\\admin")).toBe("deny");
    expect(d("//admin")).toBe("allow");
    expect(d("//admin", "MERGE_SLASHES")).toBe("deny");
    expect(d("/%2Fadmin", "MERGE_SLASHES")).toBe("allow");
    expect(d("/%2Fadmin", "DECODE_AND_MERGE_SLASHES")).toBe("deny");
    expect(d("/public/../admin", "NONE")).toBe("allow");
    const bad = wd([deny], { path: "/a%00b" });
    expect(bad).toMatchObject({ decision: "deny", decidedBy: "implicit:invalid-request" });
  });
});

describe("waypoint: when conditions", () => {
  const when = (key: string, values: string[] | undefined, notValues?: string[]) => ({
    when: [{ key, ...(values ? { values } : {}), ...(notValues ? { notValues } : {}) }],
  });
  it("request.headers: presence, value, names case-insensitive, duplicates joined, absent", () => {
    expect(allowed(when("request.headers[X-Token]", ["*"]), { headers: { "x-token": "" } })).toBe(
      "allow",
    );
    expect(
      allowed(when("request.headers[x-token]", ["abc"]), { headers: { "X-Token": "abc" } }),
    ).toBe("allow");
    expect(
      allowed(when("request.headers[x-token]", ["ABC"]), { headers: { "x-token": "abc" } }),
    ).toBe("deny");
    expect(allowed(when("request.headers[x-a]", ["1,2"]), { headers: { "x-a": ["1", "2"] } })).toBe(
      "allow",
    );
    expect(allowed(when("request.headers[x-a]", ["1"]), {})).toBe("deny");
    expect(allowed(when("request.headers[x-a]", undefined, ["1"]), {})).toBe("allow");
  });
  it("source.ip, remote.ip, destination.ip, destination.port", () => {
    expect(allowed(when("source.ip", ["10.0.2.0/24"]))).toBe("allow");
    expect(allowed(when("source.ip", undefined, ["10.0.2.0/24"]))).toBe("deny");
    expect(
      allowed(when("remote.ip", ["203.0.113.9"]), {
        headers: { "x-forwarded-for": "203.0.113.9" },
      }),
    ).toBe("allow");
    expect(allowed(when("destination.ip", ["10.96.0.50"]))).toBe("allow");
    expect(allowed(when("destination.port", ["8000"]))).toBe("allow");
    expect(allowed(when("destination.port", ["8080"]))).toBe("deny");
  });
  it("source.namespace, source.principal, source.serviceAccount, source.trustDomain", () => {
    expect(allowed(when("source.namespace", ["bar"]))).toBe("allow");
    expect(allowed(when("source.principal", ["cluster.local/ns/bar/sa/sleep"]))).toBe("allow");
    expect(allowed(when("source.principal", ["*/sa/sleep"]))).toBe("allow");
    expect(allowed(when("source.serviceAccount", ["bar/sleep"]))).toBe("allow");
    expect(allowed(when("source.serviceAccount", ["sleep"]))).toBe("deny");
    expect(allowed(when("source.trustDomain", ["cluster.local"]))).toBe("allow");
    expect(allowed(when("source.trustDomain", ["other"]))).toBe("deny");
  });
  it("request.auth.principal / audiences / presenter / nested and list claims", () => {
    const jwt = {
      iss: "iss",
      sub: "sub",
      aud: ["api", "web"],
      azp: "client",
      groups: ["dev", "admin"],
      realm_access: { roles: ["reader"] },
      n: 5,
    };
    expect(allowed(when("request.auth.principal", ["iss/sub"]), { jwt })).toBe("allow");
    expect(allowed(when("request.auth.audiences", ["web"]), { jwt })).toBe("allow");
    expect(allowed(when("request.auth.presenter", ["client"]), { jwt })).toBe("allow");
    expect(allowed(when("request.auth.claims[groups]", ["admin"]), { jwt })).toBe("allow");
    expect(allowed(when("request.auth.claims[realm_access][roles]", ["reader"]), { jwt })).toBe(
      "allow",
    );
    expect(allowed(when("request.auth.claims[realm_access][roles]", ["writer"]), { jwt })).toBe(
      "deny",
    );
    expect(allowed(when("request.auth.claims[n]", ["5"]), { jwt })).toBe("deny");
    expect(allowed(when("request.auth.claims[groups]", ["admin"]), { jwt: null })).toBe("deny");
  });
  it("connection.sni and experimental.envoy.filters metadata", () => {
    expect(allowed(when("connection.sni", ["a.example.com"]), {}, { sni: "a.example.com" })).toBe(
      "allow",
    );
    expect(allowed(when("connection.sni", ["*"]))).toBe("deny");
    expect(
      allowed(when("experimental.envoy.filters.a.b[c]", ["[v]"]), {
        filterMetadata: { "a.b": { c: ["v", "w"] } },
      }),
    ).toBe("allow");
    expect(
      allowed(when("experimental.envoy.filters.a.b[c]", ["v"]), {
        filterMetadata: { "a.b": { c: "v" } },
      }),
    ).toBe("allow");
  });
  it("conditions AND together and with from/to; rules OR", () => {
    const rule = {
      from: [{ source: { namespaces: ["bar"] } }],
      to: [{ operation: { methods: ["GET"] } }],
      when: [{ key: "request.headers[x]", values: ["1"] }],
    };
    expect(allowed(rule, { headers: { x: "1" } })).toBe("allow");
    expect(allowed(rule, { headers: { x: "2" } })).toBe("deny");
    expect(allowed(rule, { method: "POST", headers: { x: "1" } })).toBe("deny");
  });
});

describe("waypoint: actions, dry-run, audit, custom", () => {
  const deny = (
    name: string,
    rule: Record<string, unknown>,
    extra: Record<string, unknown> = {},
    annotations?: Record<string, string>,
  ) =>
    ap(
      name,
      { targetRefs: SVC_REF, action: "DENY", rules: [rule], ...extra },
      annotations ? { annotations } : {},
    );
  it("ALLOW with no rules denies everything in scope; rules [{}] allows all", () => {
    expect(wd([ap("nothing", { targetRefs: SVC_REF })])).toMatchObject({
      decision: "deny",
      decidedBy: "implicit:no-allow-match",
    });
    expect(wd([ap("all", { targetRefs: SVC_REF, rules: [{}] })])).toMatchObject({
      decision: "allow",
      decidedBy: "foo/all",
      rule: 0,
    });
  });
  it("DENY beats ALLOW; decidedBy and rule index name the deny", () => {
    const d = wd([
      ap("all", { targetRefs: SVC_REF, rules: [{}] }),
      deny("d", { to: [{ operation: { methods: ["GET"] } }] }),
    ]);
    expect(d).toMatchObject({ decision: "deny", decidedBy: "foo/d", rule: 0 });
  });
  it("AUDIT never changes the decision and is reported", () => {
    const d = wd([ap("audit", { targetRefs: SVC_REF, action: "AUDIT", rules: [{}] })]);
    expect(d).toMatchObject({
      decision: "allow",
      decidedBy: "implicit:no-allow-policies",
      audit: [{ policy: "foo/audit", rule: 0 }],
    });
  });
  it("dry-run policies are shadow only, reported in dryRun", () => {
    const d = wd([deny("d", {}, {}, { "istio.io/dry-run": "true" })]);
    expect(d).toMatchObject({
      decision: "allow",
      decidedBy: "implicit:no-allow-policies",
      dryRun: [{ policy: "foo/d", action: "DENY", matched: true, rule: 0 }],
    });
    const a = wd([
      ap("a", { targetRefs: SVC_REF }, { annotations: { "istio.io/dry-run": "True" } }),
    ]);
    expect(a).toMatchObject({ decision: "allow", decidedBy: "implicit:no-allow-policies" });
    expect(wd([deny("d", {}, {}, { "istio.io/dry-run": "yes" })]).decision).toBe("deny");
  });
  it("CUSTOM: consulted only when its rules match; deny wins first, allow still needs DENY/ALLOW to pass", () => {
    const custom = ap("ext", {
      targetRefs: SVC_REF,
      action: "CUSTOM",
      provider: { name: "ext" },
      rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }],
    });
    expect(wd([custom], { path: "/admin" }, {}, { custom: { ext: "deny" } })).toMatchObject({
      decision: "deny",
      decidedBy: "custom:ext",
    });
    expect(wd([custom], { path: "/public" }, {}, { custom: { ext: "deny" } })).toMatchObject({
      decision: "allow",
      decidedBy: "implicit:no-allow-policies",
    });
    expect(
      wd(
        [custom, ap("none", { targetRefs: SVC_REF })],
        { path: "/admin" },
        {},
        { custom: { ext: "allow" } },
      ),
    ).toMatchObject({ decision: "deny", decidedBy: "implicit:no-allow-match" });
    expect(wd([custom], { path: "/admin" }, {}, { custom: () => undefined })).toMatchObject({
      decision: "deny",
      decidedBy: "custom:ext",
    });
    expect(
      wd([custom], { path: "/admin" }, {}, { custom: (p) => (p === "ext" ? "allow" : "deny") })
        .decision,
    ).toBe("allow");
  });
});

describe("waypoint: attachment", () => {
  const rule = { rules: [{}] };
  it("Service ref binds only that service's traffic", () => {
    expect(
      wd([ap("a", { targetRefs: [{ kind: "Service", group: "", name: "other" }] })]).decidedBy,
    ).toBe("implicit:no-allow-policies");
    expect(
      wd([ap("a", { targetRefs: [{ kind: "Service", group: "core", name: "httpbin" }], ...rule })])
        .decidedBy,
    ).toBe("foo/a");
    expect(wd([ap("a", { targetRefs: SVC_REF, ...rule }, { namespace: "other" })]).decidedBy).toBe(
      "implicit:no-allow-policies",
    );
  });
  it("ServiceEntry ref binds ServiceEntries, not Services of the same name", () => {
    const se = ap("a", {
      targetRefs: [{ kind: "ServiceEntry", group: "networking.istio.io", name: "httpbin" }],
      ...rule,
    });
    expect(wd([se]).decidedBy).toBe("implicit:no-allow-policies");
    expect(wd([se], {}, {}, { service: { kind: "ServiceEntry" } }).decidedBy).toBe("foo/a");
  });
  it("Gateway ref binds all traffic of that waypoint; GatewayClass istio-waypoint in the root namespace binds every waypoint", () => {
    expect(
      wd([
        ap("g", {
          targetRefs: [{ kind: "Gateway", group: "gateway.networking.k8s.io", name: "waypoint" }],
          ...rule,
        }),
      ]).decidedBy,
    ).toBe("foo/g");
    expect(
      wd([
        ap("g", {
          targetRefs: [{ kind: "Gateway", group: "gateway.networking.k8s.io", name: "other" }],
          ...rule,
        }),
      ]).decidedBy,
    ).toBe("implicit:no-allow-policies");
    const gc = (ns: string, name = "istio-waypoint") =>
      ap(
        "gc",
        {
          targetRefs: [{ kind: "GatewayClass", group: "gateway.networking.k8s.io", name }],
          ...rule,
        },
        { namespace: ns },
      );
    expect(wd([gc("istio-system")]).decidedBy).toBe("istio-system/gc");
    expect(wd([gc("foo")]).decidedBy).toBe("implicit:no-allow-policies");
    expect(wd([gc("istio-system", "istio")]).decidedBy).toBe("implicit:no-allow-policies");
  });
  it("selector and namespace-wide policies are ignored by waypoints", () => {
    expect(
      wd([ap("sel", { selector: { matchLabels: { app: "httpbin" } } }), ap("ns", {})]).decidedBy,
    ).toBe("implicit:no-allow-policies");
  });
});

describe("waypoint: several CUSTOM providers", () => {
  const c = (name: string, provider: string) =>
    ap(name, {
      targetRefs: SVC_REF,
      action: "CUSTOM",
      provider: { name: provider },
      rules: [{ to: [{ operation: { paths: ["/never"] } }] }],
    });
  it("different providers for one target deny everything unless the flag is on", () => {
    expect(wd([c("a", "p1"), c("b", "p2")])).toMatchObject({
      decision: "deny",
      decidedBy: "custom:p1,p2",
    });
    expect(wd([c("a", "p1"), c("b", "p1")]).decision).toBe("allow");
    expect(
      wd(
        [c("a", "p1"), c("b", "p2")],
        {},
        {},
        { mesh: { enableMultipleCustomAuthzProviders: true } },
      ).decision,
    ).toBe("allow");
  });
});
