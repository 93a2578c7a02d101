// One test per row of authz-semantics.md §9: the same policy decided at ztunnel, at a waypoint on
// Envoy's HTTP chain, and at a waypoint on the TCP chain.
import { describe, expect, it } from "vitest";
import { ap, SVC_REF, waypointDecide, ztunnelDecide } from "./helpers.testutil.js";
import type { PolicyResource } from "./types.js";

/** The same spec as a ztunnel policy (no targetRefs) and a waypoint policy (targetRefs httpbin). */
function both(
  name: string,
  spec: Record<string, unknown>,
  annotations?: Record<string, string>,
): [PolicyResource, PolicyResource] {
  const opts = annotations ? { annotations } : {};
  return [ap(name, spec, opts), ap(name, { ...spec, targetRefs: SVC_REF }, opts)];
}

function three(
  spec: Record<string, unknown>,
  req: Parameters<typeof waypointDecide>[1] = {},
  annotations?: Record<string, string>,
) {
  const [z, w] = both("p", spec, annotations);
  return {
    ztunnel: ztunnelDecide([z]).decision,
    http: waypointDecide([w], req).decision,
    tcp: waypointDecide([w], null, {}, { service: { protocol: "TCP" } }).decision,
  };
}

describe("§9 ztunnel vs waypoint divergences", () => {
  it("ALLOW rule with an L7 attribute: dropped at ztunnel and on TCP, evaluated on HTTP", () => {
    expect(three({ rules: [{ to: [{ operation: { methods: ["GET"] } }] }] })).toEqual({
      ztunnel: "deny",
      http: "allow",
      tcp: "deny",
    });
  });
  it("DENY entry with only L7 attributes: never matches at ztunnel, evaluated on HTTP, matches everything on TCP", () => {
    expect(
      three({ action: "DENY", rules: [{ to: [{ operation: { methods: ["GET"] } }] }] }),
    ).toEqual({ ztunnel: "allow", http: "deny", tcp: "deny" });
    expect(
      three({ action: "DENY", rules: [{ from: [{ source: { notRequestPrincipals: ["*"] } }] }] }),
    ).toEqual({ ztunnel: "allow", http: "deny", tcp: "deny" });
  });
  it("DENY entry with L4+L7: broader deny at ztunnel and on TCP, exact on HTTP", () => {
    const spec = (port: string) => ({
      action: "DENY",
      rules: [{ to: [{ operation: { ports: [port], methods: ["POST"] } }] }],
    });
    const [z, w] = both("p", spec("8080"));
    expect(ztunnelDecide([z]).decision).toBe("deny");
    const [, w2] = both("p", spec("8000"));
    expect(waypointDecide([w2]).decision).toBe("allow");
    expect(waypointDecide([w2], { method: "POST" }).decision).toBe("deny");
    expect(waypointDecide([w2], null, {}, { service: { protocol: "TCP" } }).decision).toBe("deny");
    expect(waypointDecide([w], null, {}, { service: { protocol: "TCP" } }).decision).toBe("allow");
  });
  it("when remote.ip / connection.sni: no-op at ztunnel (DENY) / dropped (ALLOW); evaluated at waypoints", () => {
    expect(
      three({ action: "DENY", rules: [{ when: [{ key: "remote.ip", values: ["10.0.2.0/24"] }] }] }),
    ).toEqual({ ztunnel: "allow", http: "deny", tcp: "deny" });
    expect(three({ rules: [{ when: [{ key: "remote.ip", values: ["10.0.2.0/24"] }] }] })).toEqual({
      ztunnel: "deny",
      http: "allow",
      tcp: "allow",
    });
    const [z, w] = both("p", {
      rules: [{ when: [{ key: "connection.sni", values: ["x.example"] }] }],
    });
    expect(ztunnelDecide([z], { sni: "x.example" }).decision).toBe("deny");
    expect(
      waypointDecide([w], null, { sni: "x.example" }, { service: { protocol: "TCP" } }).decision,
    ).toBe("allow");
  });
  it("when source.serviceAccount / source.trustDomain: treated as L7 at ztunnel, evaluated at waypoints", () => {
    expect(
      three({ rules: [{ when: [{ key: "source.serviceAccount", values: ["bar/sleep"] }] }] }),
    ).toEqual({ ztunnel: "deny", http: "allow", tcp: "allow" });
    expect(
      three({
        action: "DENY",
        rules: [{ when: [{ key: "source.trustDomain", values: ["cluster.local"] }] }],
      }),
    ).toEqual({ ztunnel: "allow", http: "deny", tcp: "deny" });
  });
  it("source.trustDomains: silently ignored at ztunnel (an entry left empty never matches), evaluated at waypoints", () => {
    expect(three({ rules: [{ from: [{ source: { trustDomains: ["cluster.local"] } }] }] })).toEqual(
      { ztunnel: "deny", http: "allow", tcp: "allow" },
    );
    expect(
      three({
        rules: [{ from: [{ source: { namespaces: ["bar"], trustDomains: ["other.td"] } }] }],
      }),
    ).toEqual({ ztunnel: "allow", http: "deny", tcp: "deny" });
  });
  it("principals cluster.local/... in a custom trust domain: literal at ztunnel, rewritten at waypoints", () => {
    const [z, w] = both("p", {
      rules: [{ from: [{ source: { principals: ["cluster.local/ns/bar/sa/sleep"] } }] }],
    });
    const conn = { sourcePrincipal: "spiffe://example.org/ns/bar/sa/sleep" };
    const mesh = { mesh: { trustDomain: "example.org" } };
    expect(ztunnelDecide([z], conn, mesh).decision).toBe("deny");
    expect(waypointDecide([w], {}, conn, mesh).decision).toBe("allow");
    expect(
      waypointDecide([w], null, conn, { ...mesh, service: { protocol: "TCP" } }).decision,
    ).toBe("allow");
    // 4-segment principals are not rewritten (istio #47322)
    const [, w4] = both("p", {
      rules: [{ from: [{ source: { principals: ["cluster.local/ns/bar/*"] } }] }],
    });
    expect(waypointDecide([w4], {}, conn, mesh).decision).toBe("deny");
  });
  it("ports: container port at ztunnel, service port at waypoints", () => {
    const [z, w] = both("p", { rules: [{ to: [{ operation: { ports: ["8080"] } }] }] });
    expect(ztunnelDecide([z], { destinationPort: 8080 }).decision).toBe("allow");
    expect(waypointDecide([w], {}, { destinationPort: 8000 }).decision).toBe("deny");
    expect(waypointDecide([w], {}, { destinationPort: 8080 }).decision).toBe("allow");
  });
  it("namespaces wildcard a*b: exact at ztunnel, regex at waypoints", () => {
    expect(three({ rules: [{ from: [{ source: { namespaces: ["b*r"] } }] }] })).toEqual({
      ztunnel: "deny",
      http: "allow",
      tcp: "allow",
    });
  });
  it("AUDIT / CUSTOM: ignored at ztunnel, honoured at waypoints", () => {
    const [z, w] = both("c", { action: "CUSTOM", provider: { name: "ext" }, rules: [{}] });
    expect(ztunnelDecide([z]).decision).toBe("allow");
    expect(ztunnelDecide([z]).ignored[0]?.reason).toBe(
      "ztunnel does not support the CUSTOM action",
    );
    expect(waypointDecide([w], {}, {}, { custom: { ext: "deny" } })).toMatchObject({
      decision: "deny",
      decidedBy: "custom:ext",
    });
    expect(
      waypointDecide([w], null, {}, { custom: { ext: "deny" }, service: { protocol: "TCP" } })
        .decidedBy,
    ).toBe("custom:ext");
    const [za, wa] = both("a", { action: "AUDIT", rules: [{}] });
    expect(ztunnelDecide([za]).audit).toEqual([]);
    expect(waypointDecide([wa]).audit).toEqual([{ policy: "foo/a", rule: 0 }]);
  });
  it("selector / namespace-wide: applies at ztunnel, ignored at waypoints; targetRefs the other way round", () => {
    const sel = ap("s", { selector: { matchLabels: { app: "httpbin" } } });
    expect(ztunnelDecide([sel]).decision).toBe("deny");
    expect(waypointDecide([sel]).decision).toBe("allow");
    const ref = ap("r", { targetRefs: SVC_REF });
    expect(ztunnelDecide([ref]).decision).toBe("allow");
    expect(waypointDecide([ref]).decision).toBe("deny");
  });
  it("dry-run with default flags: no effect anywhere (not sent to ztunnel; shadow at waypoints)", () => {
    expect(three({ action: "DENY", rules: [{}] }, {}, { "istio.io/dry-run": "true" })).toEqual({
      ztunnel: "allow",
      http: "allow",
      tcp: "allow",
    });
  });
});
