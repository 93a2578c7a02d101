import { describe, expect, it } from "vitest";
import {
  type AuthorizationPolicy,
  issuePathSegments,
  parsePolicyResource,
  validateAuthorizationPolicy,
} from "./index.js";
import { formatIssuePath } from "./parse.js";

function check(spec: Record<string, unknown>, namespace = "foo") {
  const res = parsePolicyResource({
    apiVersion: "security.istio.io/v1",
    kind: "AuthorizationPolicy",
    metadata: { name: "x", namespace },
    spec,
  });
  if (!res.ok) throw new Error(res.issues.map((i) => i.message).join("; "));
  return validateAuthorizationPolicy(res.value as AuthorizationPolicy, {
    rootNamespace: "istio-system",
  });
}
const errors = (spec: Record<string, unknown>, ns?: string) =>
  check(spec, ns)
    .issues.filter((i) => i.severity === "error")
    .map((i) => i.message);
const warnings = (spec: Record<string, unknown>) =>
  check(spec)
    .issues.filter((i) => i.severity === "warning")
    .map((i) => i.message);
const expectError = (spec: Record<string, unknown>, fragment: string, ns?: string) => {
  const e = errors(spec, ns);
  expect(
    e.some((m) => m.includes(fragment)),
    `${fragment} in ${JSON.stringify(e)}`,
  ).toBe(true);
};
const svc = [{ kind: "Service", group: "", name: "s" }];

describe("validateAuthorizationPolicy (§1.1)", () => {
  it("valid policies have no errors; messages carry Istio's prefix", () => {
    expect(
      check({
        rules: [
          {
            from: [{ source: { principals: ["a/ns/b/sa/c"] } }],
            to: [{ operation: { ports: ["80"] } }],
          },
        ],
      }),
    ).toMatchObject({ ok: true, issues: [] });
    expect(check({})).toMatchObject({ ok: true, issues: [] });
    expect(errors({ action: "DENY" })[0]).toMatch(/^invalid policy x\.foo: /);
  });
  it("selector / targetRef / targetRefs are mutually exclusive", () => {
    expectError(
      { selector: { matchLabels: { a: "b" } }, targetRefs: svc },
      "only one of targetRefs or workloadSelector can be set",
    );
    expectError(
      { targetRef: svc[0], targetRefs: svc },
      "only one of targetRefs or workloadSelector can be set",
    );
  });
  it("targetRefs: name required, no namespace, only the 4 kinds, GatewayClass only in the root namespace, at most 16", () => {
    expectError(
      { targetRefs: [{ kind: "Service", group: "", name: "" }] },
      "targetRef name must be set",
    );
    expectError(
      { targetRefs: [{ kind: "Service", group: "", name: "s", namespace: "x" }] },
      "cross namespace referencing is not supported",
    );
    expectError(
      { targetRefs: [{ kind: "Deployment", group: "apps", name: "s" }] },
      "targetRef must be to one of",
    );
    expectError(
      {
        targetRefs: [
          { kind: "GatewayClass", group: "gateway.networking.k8s.io", name: "istio-waypoint" },
        ],
      },
      "only valid in the root namespace",
    );
    expect(
      errors(
        {
          targetRefs: [
            { kind: "GatewayClass", group: "gateway.networking.k8s.io", name: "istio-waypoint" },
          ],
        },
        "istio-system",
      ),
    ).toEqual([]);
    expectError(
      {
        targetRefs: Array.from({ length: 17 }, (_, i) => ({
          kind: "Service",
          group: "",
          name: `s${i}`,
        })),
      },
      "at most 16",
    );
  });
  it("selector: empty key and wildcards are errors; no labels is a warning", () => {
    expectError(
      { selector: { matchLabels: { a: "b*" } } },
      "wildcard is not supported in selector",
    );
    expectError(
      { selector: { matchLabels: { "": "b" } } },
      "empty key is not supported in selector",
    );
    expect(warnings({ selector: { matchLabels: {} } })).toHaveLength(1);
  });
  it("CUSTOM: needs rules and provider.name; identity fields and keys are not supported", () => {
    expectError(
      { action: "CUSTOM", provider: { name: "p" } },
      "CUSTOM action without `rules` is meaningless",
    );
    expectError({ action: "CUSTOM", rules: [{}] }, "`provider.name` must not be empty");
    expectError(
      {
        action: "CUSTOM",
        provider: { name: "p" },
        rules: [{ from: [{ source: { namespaces: ["a"] } }] }],
      },
      "From.Namespaces is currently not supported with CUSTOM action",
    );
    expectError(
      {
        action: "CUSTOM",
        provider: { name: "p" },
        rules: [{ when: [{ key: "request.auth.claims[x]", values: ["a"] }] }],
      },
      "request.auth.claims[x] is currently not supported with CUSTOM action",
    );
    expect(
      errors({
        action: "CUSTOM",
        provider: { name: "p" },
        rules: [{ from: [{ source: { ipBlocks: ["1.2.3.4"] } }] }],
      }),
    ).toEqual([]);
  });
  it("provider with a non-CUSTOM action; DENY without rules", () => {
    expectError(
      { action: "ALLOW", provider: { name: "p" }, rules: [{}] },
      "`provider` must not be with non CUSTOM action, found ALLOW",
    );
    expectError({ action: "DENY" }, "DENY action without `rules` is meaningless");
    expect(errors({ action: "AUDIT" })).toEqual([]);
  });
  it("nil rule, empty from/to, nil or empty source/operation", () => {
    expectError({ rules: [null] }, "`rule` must not be nil, found at rule 0");
    expectError({ rules: [{ from: [] }] }, "`from` must not be empty, found at rule 0");
    expectError({ rules: [{ to: [] }] }, "`to` must not be empty, found at rule 0");
    expectError({ rules: [{ from: [{}] }] }, "`from.source` must not be nil, found at rule 0");
    expectError(
      { rules: [{ from: [{ source: {} }] }] },
      "`from.source` must not be empty, found at rule 0",
    );
    expectError({ rules: [{ to: [{}] }] }, "`to.operation` must not be nil, found at rule 0");
    expectError(
      { rules: [{ to: [{ operation: {} }] }] },
      "`to.operation` must not be empty, found at rule 0",
    );
  });
  it("serviceAccounts: not with principals/namespaces; values well-formed", () => {
    expectError(
      { rules: [{ from: [{ source: { serviceAccounts: ["a/b"], namespaces: ["a"] } }] }] },
      "cannot set serviceAccounts with namespaces or principals",
    );
    expectError(
      { rules: [{ from: [{ source: { serviceAccounts: ["a/*"] } }] }] },
      "wildcard not allowed, found in ServiceAccounts",
    );
    expectError(
      { rules: [{ from: [{ source: { serviceAccounts: ["a/b/c"] } }] }] },
      `expected format 'serviceAccount' or 'namespace/serviceAccount', found "a/b/c" in ServiceAccounts`,
    );
    expectError(
      { rules: [{ from: [{ source: { notServiceAccounts: ["/b"] } }] }] },
      `found empty namespace "/b" in NotServiceAccounts`,
    );
  });
  it("trustDomains wildcard rules", () => {
    expectError(
      { rules: [{ from: [{ source: { trustDomains: ["a*b"] } }] }] },
      "wildcard is only allowed at the start or end",
    );
    expectError(
      { rules: [{ from: [{ source: { trustDomains: ["*a*"] } }] }] },
      "at most one wildcard is allowed",
    );
    expectError(
      { rules: [{ from: [{ source: { trustDomains: ["a/b"] } }] }] },
      "must not contain '/'",
    );
    expect(errors({ rules: [{ from: [{ source: { trustDomains: ["*.local"] } }] }] })).toEqual([]);
  });
  it("empty strings in any list", () => {
    expectError(
      { rules: [{ from: [{ source: { principals: [""] } }] }] },
      "empty value not allowed, found in Principals",
    );
    expectError(
      { rules: [{ to: [{ operation: { methods: [""] } }] }] },
      "empty value not allowed, found in Methods",
    );
  });
  it("ipBlocks must be IPs or CIDRs (host bits allowed)", () => {
    expectError(
      { rules: [{ from: [{ source: { ipBlocks: ["10.0.0.256"] } }] }] },
      "bad IP address (10.0.0.256)",
    );
    expectError(
      { rules: [{ from: [{ source: { notRemoteIpBlocks: ["10.0.0.0/33"] } }] }] },
      "bad CIDR range (10.0.0.0/33)",
    );
    expect(
      errors({ rules: [{ from: [{ source: { ipBlocks: ["10.0.0.1/24", "fd00::/8"] } }] }] }),
    ).toEqual([]);
  });
  it("ports: unsigned decimal <= 65535 (leading zeros fine, names not)", () => {
    expectError({ rules: [{ to: [{ operation: { ports: ["http"] } }] }] }, "bad port (http)");
    expectError({ rules: [{ to: [{ operation: { notPorts: ["65536"] } }] }] }, "bad port (65536)");
    expect(errors({ rules: [{ to: [{ operation: { ports: ["08080"] } }] }] })).toEqual([]);
  });
  it("YAML integers for ports are rejected by the schema (parse issue)", () => {
    const res = parsePolicyResource({
      kind: "AuthorizationPolicy",
      metadata: { name: "x", namespace: "foo" },
      spec: { rules: [{ to: [{ operation: { ports: [8080] } }] }] },
    });
    expect(res.ok).toBe(false);
    expect(res.issues[0]?.path).toBe("spec.rules[0].to[0].operation.ports[0]");
  });
  it("path templates", () => {
    expectError(
      { rules: [{ to: [{ operation: { paths: ["/{**}/foo/{*}"] } }] }] },
      "{**} is not the last operator",
    );
    expectError(
      { rules: [{ to: [{ operation: { paths: ["/foo/{bar}"] } }] }] },
      "Contains '{' or '}' beyond a supported path template",
    );
    expectError(
      { rules: [{ to: [{ operation: { notPaths: ["/a b/{*}"] } }] }] },
      "with invalid string literal",
    );
    expect(errors({ rules: [{ to: [{ operation: { paths: ["/foo/{*}/bar/{**}"] } }] }] })).toEqual(
      [],
    );
  });
  it("when: key and values required, known keys only, typed values", () => {
    expectError({ rules: [{ when: [{ key: "", values: ["a"] }] }] }, "`key` must not be empty");
    expectError(
      { rules: [{ when: [{ key: "source.ip" }] }] },
      "at least one of `values` or `notValues` must be set for key source.ip",
    );
    expectError(
      { rules: [{ when: [{ key: "source.foo", values: ["a"] }] }] },
      "unknown attribute: source.foo",
    );
    expectError(
      { rules: [{ when: [{ key: "destination.namespace", values: ["a"] }] }] },
      "replaced by the metadata.namespace",
    );
    expectError(
      { rules: [{ when: [{ key: "destination.labels[app]", values: ["a"] }] }] },
      "replaced by the workload selector",
    );
    expectError(
      { rules: [{ when: [{ key: "destination.name", values: ["a"] }] }] },
      "only supported in v1alpha1",
    );
    expectError(
      { rules: [{ when: [{ key: "destination.user", values: ["a"] }] }] },
      "only supported in v1alpha1",
    );
    expectError(
      { rules: [{ when: [{ key: "request.headers", values: ["a"] }] }] },
      "should have format a[b]",
    );
    expectError(
      { rules: [{ when: [{ key: "request.auth.claims[]", values: ["a"] }] }] },
      "should have format a[b]",
    );
    expectError(
      { rules: [{ when: [{ key: "source.ip", values: ["x"] }] }] },
      "invalid `value` for `key` source.ip: bad IP address (x)",
    );
    expectError(
      { rules: [{ when: [{ key: "destination.port", notValues: ["x"] }] }] },
      "invalid `notValue` for `key` destination.port: bad port (x)",
    );
    expectError(
      { rules: [{ when: [{ key: "source.serviceAccount", values: ["a/*"] }] }] },
      "wildcard not allowed",
    );
    expectError(
      { rules: [{ when: [{ key: "source.trustDomain", values: ["a*b"] }] }] },
      "wildcard is only allowed at the start or end",
    );
    expect(
      errors({
        rules: [
          {
            when: [
              { key: "experimental.envoy.filters.a.b[c]", values: ["[v]"] },
              { key: "connection.sni", values: ["*.x"] },
            ],
          },
        ],
      }),
    ).toEqual([]);
  });
  it("warning: a DENY rule with only HTTP attributes denies all TCP traffic in scope", () => {
    expect(
      warnings({ action: "DENY", rules: [{ to: [{ operation: { methods: ["GET"] } }] }] })[0],
    ).toContain("will deny all traffic to TCP ports under its scope");
    expect(
      warnings({
        action: "DENY",
        rules: [{ to: [{ operation: { methods: ["GET"], ports: ["80"] } }] }],
      }),
    ).toEqual([]);
    expect(
      check({ action: "DENY", rules: [{ from: [{ source: { requestPrincipals: ["*"] } }] }] }).ok,
    ).toBe(true);
  });
});

describe("issue paths parse back to the node they name", () => {
  it("formatting and parsing are inverse; a key with dots is quoted and stays one segment", () => {
    for (const segs of [
      ["spec", "rules", 0, "to", 1, "operation", "paths", 2],
      ["metadata", "labels", "app.kubernetes.io/name"],
      ["metadata", "annotations", 'odd[key]"x'],
    ]) {
      const path = formatIssuePath(segs);
      expect(issuePathSegments(path)).toEqual(segs);
    }
    expect(formatIssuePath(["metadata", "labels", "app.kubernetes.io/name"])).toBe(
      'metadata.labels["app.kubernetes.io/name"]',
    );
    expect(formatIssuePath(["spec", "rules", 0, "from"])).toBe("spec.rules[0].from");
  });
});
