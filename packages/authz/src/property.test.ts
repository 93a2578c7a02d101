import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ap, MESH } from "./helpers.testutil.js";
import { compilePolicies, type DecisionInput, type PolicyResource } from "./index.js";

const ns = fc.constantFrom("foo", "bar", "istio-system");
const principal = fc.constantFrom(
  "cluster.local/ns/bar/sa/sleep",
  "cluster.local/ns/foo/*",
  "*/sa/curl",
  "*",
);
const source = fc.record(
  {
    principals: fc.array(principal, { minLength: 1, maxLength: 2 }),
    notNamespaces: fc.array(fc.constantFrom("bar", "ba*", "*"), { minLength: 1, maxLength: 2 }),
    ipBlocks: fc.array(fc.constantFrom("10.0.2.0/24", "10.0.0.0/8", "fd00::/8"), {
      minLength: 1,
      maxLength: 2,
    }),
    requestPrincipals: fc.array(fc.constantFrom("*", "iss/sub"), { minLength: 1, maxLength: 1 }),
  },
  { requiredKeys: [] },
);
const operation = fc.record(
  {
    ports: fc.array(fc.constantFrom("8080", "8000", "9090"), { minLength: 1, maxLength: 2 }),
    methods: fc.array(fc.constantFrom("GET", "POST"), { minLength: 1, maxLength: 1 }),
    paths: fc.array(fc.constantFrom("/admin*", "/get", "/foo/{*}"), { minLength: 1, maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const condition = fc.oneof(
  fc.record({
    key: fc.constantFrom("source.ip", "destination.ip"),
    values: fc.constant(["10.0.0.0/8"]),
  }),
  fc.record({ key: fc.constant("source.namespace"), notValues: fc.constant(["bar"]) }),
  fc.record({ key: fc.constant("request.headers[x-a]"), values: fc.constant(["1"]) }),
);
const rule = fc.record(
  {
    from: fc.array(
      source.map((s) => ({ source: Object.keys(s).length ? s : { namespaces: ["bar"] } })),
      { minLength: 1, maxLength: 2 },
    ),
    to: fc.array(
      operation.map((o) => ({ operation: Object.keys(o).length ? o : { ports: ["8080"] } })),
      { minLength: 1, maxLength: 2 },
    ),
    when: fc.array(condition, { minLength: 1, maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const attach = fc.oneof(
  fc.constant({}),
  fc.constant({ selector: { matchLabels: { app: "httpbin" } } }),
  fc.constant({ targetRefs: [{ kind: "Service", group: "", name: "httpbin" }] }),
  fc.constant({
    targetRefs: [{ kind: "Gateway", group: "gateway.networking.k8s.io", name: "waypoint" }],
  }),
);
const action = fc.constantFrom("ALLOW", "DENY", "AUDIT", "CUSTOM");

function policyArb(prefix: string, actions = action) {
  return fc
    .tuple(
      fc.nat(1000),
      ns,
      attach,
      actions,
      fc.option(fc.array(rule, { maxLength: 3 }), { nil: undefined }),
    )
    .map(([n, namespace, a, act, rules]): PolicyResource => {
      const spec: Record<string, unknown> = { ...a, action: act };
      if (act === "CUSTOM") spec.provider = { name: "ext" };
      if (rules !== undefined || act === "DENY" || act === "CUSTOM") spec.rules = rules ?? [{}];
      return ap(`${prefix}${n}`, spec, { namespace });
    });
}

const policies = fc.uniqueArray(policyArb("p"), {
  maxLength: 8,
  selector: (p) => `${p.namespace}/${p.name}`,
});

const input = fc
  .tuple(
    fc.constantFrom<"ztunnel" | "waypoint">("ztunnel", "waypoint"),
    fc.constantFrom(
      "spiffe://cluster.local/ns/bar/sa/sleep",
      "spiffe://cluster.local/ns/foo/sa/curl",
      null,
    ),
    fc.constantFrom("10.0.2.20", "192.168.1.1", "fd00::1"),
    fc.constantFrom(8080, 8000),
    fc.constantFrom("GET", "POST"),
    fc.constantFrom("/admin/x", "/get", "/foo/bar"),
    fc.constantFrom("HTTP", "TCP"),
    fc.constantFrom<"allow" | "deny">("allow", "deny"),
    fc.boolean(),
  )
  .map(
    ([
      enforcement,
      sourcePrincipal,
      sourceIp,
      destinationPort,
      method,
      path,
      protocol,
      ext,
      header,
    ]): DecisionInput => ({
      enforcement,
      workload: { namespace: "foo", labels: { app: "httpbin" } },
      waypoint: { name: "waypoint", namespace: "foo" },
      service: { kind: "Service", name: "httpbin", namespace: "foo", protocol },
      connection: { sourcePrincipal, sourceIp, destinationIp: "10.0.1.10", destinationPort },
      request: {
        host: "httpbin.foo",
        method,
        path,
        headers: header ? { "x-a": "1" } : {},
        jwt: header ? { iss: "iss", sub: "sub" } : null,
      },
      customProviders: { ext },
    }),
  );

const decide = (ps: readonly PolicyResource[], i: DecisionInput) =>
  compilePolicies(ps, MESH).decide(i);
const RUNS = { numRuns: 400 };

describe("properties", () => {
  it("adding a DENY policy never turns deny into allow", () => {
    fc.assert(
      fc.property(policies, policyArb("added-deny-", fc.constant("DENY")), input, (ps, deny, i) => {
        const before = decide(ps, i);
        const after = decide([...ps, deny], i);
        if (before.decision === "deny") expect(after.decision).toBe("deny");
      }),
      RUNS,
    );
  });
  it("policy order never changes a decision (nor who decided)", () => {
    fc.assert(
      fc.property(
        policies.chain((ps) =>
          fc.tuple(
            fc.constant(ps),
            fc.shuffledSubarray(ps, { minLength: ps.length, maxLength: ps.length }),
          ),
        ),
        input,
        ([ps, shuffled], i) => {
          const a = decide(ps, i);
          const b = decide(shuffled, i);
          expect([b.decision, b.decidedBy, b.rule]).toEqual([a.decision, a.decidedBy, a.rule]);
        },
      ),
      RUNS,
    );
  });
  it("dry-run policies never change a decision", () => {
    const dry = policyArb("dry-").map(
      (p): PolicyResource =>
        p.kind === "AuthorizationPolicy"
          ? { ...p, annotations: { "istio.io/dry-run": "true" } }
          : p,
    );
    fc.assert(
      fc.property(
        policies,
        fc.array(dry, { maxLength: 4 }),
        input,
        fc.boolean(),
        (ps, dryRuns, i, flag) => {
          const seen = new Set(ps.map((p) => `${p.namespace}/${p.name}`));
          const extra = dryRuns.filter((p) => !seen.has(`${p.namespace}/${p.name}`));
          const mesh = { ...MESH, ambientEnableDryRun: flag };
          const a = compilePolicies(ps, mesh).decide(i);
          const b = compilePolicies([...ps, ...extra], mesh).decide(i);
          expect([b.decision, b.decidedBy, b.rule]).toEqual([a.decision, a.decidedBy, a.rule]);
        },
      ),
      RUNS,
    );
  });
});
