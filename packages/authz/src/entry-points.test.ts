// Every public entry point answers with a value or a typed AuthzError, whatever it is handed:
// fully random arguments, and valid arguments with one part (at any depth) replaced by anything.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ap, MESH, pa, SVC_REF, WP_CONN, ZT_CONN } from "./helpers.testutil.js";
import * as authz from "./index.js";
import {
  AuthzError,
  type CompiledPolicies,
  compilePolicies,
  convertAuthorizationPolicy,
  type DecisionInput,
  type PolicyResource,
  type ZtunnelAuthorization,
} from "./index.js";

const RUNS = { numRuns: 2000 };

/** Runs f; only an AuthzError may escape (a TypeError or RangeError fails the property). */
function typed(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof AuthzError)) throw e;
    expect(e.code).toMatch(/^ERR_AUTHZ_[A-Z_]+$/);
  }
}

/** Every container path of a JSON-ish value, the root excluded. */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof v !== "object" || v === null) return [];
  const out: (string | number)[][] = [];
  for (const [k, x] of Object.entries(v)) {
    const p = [...prefix, Array.isArray(v) ? Number(k) : k];
    out.push(p, ...paths(x, p));
  }
  return out;
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** `v` with the part at `path` replaced by `value` (or removed when `value` is undefined). */
function mutate<T>(v: T, path: readonly (string | number)[], value: unknown): T {
  const copy = clone(v);
  let cur = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = path.at(-1) as string | number;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
  return copy;
}

const anything = fc.anything({ withNullPrototype: true, withBigInt: true, withDate: true });

describe("public entry points with random arguments", () => {
  const calls: [string, (args: unknown[]) => unknown][] = [
    ["parseDecisionCase", (a) => authz.parseDecisionCase(a[0], a[1] as never)],
    ["runCaseFile", (a) => authz.runCaseFile(a[0])],
    ["runDecisionCase", (a) => authz.runDecisionCase(a[0] as never)],
    ["compilePolicies", (a) => authz.compilePolicies(a[0] as never, a[1] as never)],
    ["CompiledPolicies", (a) => new authz.CompiledPolicies(a[0] as never, a[1] as never)],
    ["evaluate", (a) => authz.evaluate(a[0] as never, a[1] as never, a[2] as never)],
    ["isHttpProtocol", (a) => authz.isHttpProtocol(a[0] as never)],
    ["parseIp", (a) => authz.parseIp(a[0] as never)],
    ["parsePrefix", (a) => authz.parsePrefix(a[0] as never)],
    ["prefixContains", (a) => authz.prefixContains(a[0] as never, a[1] as never)],
    ["parsePolicyResource", (a) => authz.parsePolicyResource(a[0], a[1] as never)],
    ["issuePathSegments", (a) => authz.issuePathSegments(a[0] as never)],
    [
      "checkSecurityResource",
      (a) => authz.checkSecurityResource(a[0] as never, () => undefined, a[1] as never),
    ],
    ["normalizeRequestPath", (a) => authz.normalizeRequestPath(a[0] as never, a[1] as never)],
    [
      "validateAuthorizationPolicy",
      (a) => authz.validateAuthorizationPolicy(a[0] as never, a[1] as never),
    ],
    ["compileZtunnelAuthorization", (a) => authz.compileZtunnelAuthorization(a[0] as never)],
    [
      "convertAuthorizationPolicy",
      (a) => authz.convertAuthorizationPolicy(a[0] as never, a[1] as never, a[2] as never),
    ],
    [
      "convertPeerAuthentications",
      (a) => authz.convertPeerAuthentications(a[0] as never, a[1] as never),
    ],
    [
      "evaluateZtunnelAuthorizations",
      (a) => authz.evaluateZtunnelAuthorizations(a[0] as never, a[1] as never),
    ],
    ["isDryRun", (a) => authz.isDryRun(a[0] as never)],
    [
      "peerAuthenticationAuthorizations",
      (a) => authz.peerAuthenticationAuthorizations(a[0] as never, a[1] as never, a[2] as never),
    ],
    ["staticStrictAuthorization", (a) => authz.staticStrictAuthorization(a[0] as never)],
    ["toLocalXdsAuthorization", (a) => authz.toLocalXdsAuthorization(a[0] as never)],
    [
      "ztunnelAuthorizationMatches",
      (a) => authz.ztunnelAuthorizationMatches(a[0] as never, a[1] as never),
    ],
    ["CompiledPolicies#decide", (a) => compilePolicies([], MESH).decide(a[0] as never)],
    [
      "CompiledZtunnelAuthorization#firstMatch",
      (a) =>
        authz
          .compileZtunnelAuthorization(authz.staticStrictAuthorization("istio-system"))
          .firstMatch(a[0] as never),
    ],
    ["CompiledPolicies#applicable", (a) => compilePolicies([], MESH).applicable(a[0] as never)],
  ];

  it("the list covers every function index.ts exports", () => {
    const exported = Object.entries(authz)
      .filter(([, v]) => typeof v === "function")
      .map(([k]) => k)
      .filter((k) => k !== "AuthzError")
      .sort();
    expect(exported).toEqual(
      calls
        .map(([n]) => n)
        .filter((n) => !n.includes("#"))
        .sort(),
    );
  });

  it.each(calls)("%s: a value or an AuthzError (2,000 random argument lists)", (_, call) => {
    fc.assert(
      fc.property(fc.array(anything, { maxLength: 3 }), (args) => {
        typed(() => call(args));
      }),
      RUNS,
    );
  });
});

const POLICIES: PolicyResource[] = [
  ap("deny-10", {
    action: "DENY",
    rules: [
      {
        from: [{ source: { ipBlocks: ["10.0.0.0/8"], principals: ["cluster.local/ns/bar/*"] } }],
        to: [{ operation: { ports: ["8080"] } }],
        when: [{ key: "destination.port", values: ["8080"] }],
      },
    ],
  }),
  ap("allow", { selector: { matchLabels: { app: "httpbin" } }, rules: [{}] }),
  ap("wp", {
    targetRefs: SVC_REF,
    action: "DENY",
    rules: [
      {
        to: [{ operation: { paths: ["/admin*"], methods: ["POST"] } }],
        when: [
          { key: "request.headers[x-a]", values: ["1"] },
          { key: "request.auth.claims[groups]", values: ["admin"] },
          { key: "experimental.envoy.filters.f[k]", values: ["[v]"] },
          { key: "remote.ip", notValues: ["10.0.0.0/8"] },
        ],
      },
    ],
  }),
  ap(
    "ext",
    { targetRefs: SVC_REF, action: "CUSTOM", provider: { name: "ext" }, rules: [{}] },
    { annotations: { "istio.io/dry-run": "false" } },
  ),
  pa("strict", "foo", {
    mtls: { mode: "STRICT" },
    portLevelMtls: { "8080": { mode: "PERMISSIVE" } },
  }),
];

const INPUTS: DecisionInput[] = [
  {
    enforcement: "ztunnel",
    workload: { namespace: "foo", labels: { app: "httpbin" }, serviceAccount: "httpbin" },
    waypoint: { name: "waypoint", namespace: "foo", serviceAccount: "waypoint" },
    connection: ZT_CONN,
  },
  {
    enforcement: "waypoint",
    workload: { namespace: "foo", labels: { app: "httpbin" } },
    waypoint: { name: "waypoint", namespace: "foo" },
    service: { kind: "Service", name: "httpbin", namespace: "foo", protocol: "HTTP", port: 8000 },
    connection: { ...WP_CONN, sni: "x" },
    request: {
      host: "httpbin.foo",
      method: "POST",
      path: "/admin",
      headers: { "x-a": ["1", "2"], "x-forwarded-for": "10.0.0.1" },
      jwt: { iss: "i", sub: "s", groups: ["admin"] },
      filterMetadata: { f: { k: ["v"] } },
    },
    customProviders: { ext: "allow" },
  },
];

describe("valid arguments with one part replaced by anything", () => {
  it("compilePolicies + decide + applicable with a mutated parsed policy: 2,000 runs", () => {
    const policyPaths = POLICIES.flatMap((p, i) => paths(p).map((x) => [i, ...x]));
    fc.assert(
      fc.property(fc.nat(), fc.option(anything, { nil: undefined }), (pick, value) => {
        const path = policyPaths[pick % policyPaths.length] as (string | number)[];
        const ps = mutate(POLICIES, path, value);
        let index: CompiledPolicies | undefined;
        typed(() => {
          index = compilePolicies(ps, MESH);
        });
        for (const input of INPUTS) {
          typed(() => index?.decide(input));
          typed(() => index?.applicable(input));
        }
        typed(() => index?.ztunnelAuthorizations());
        const p = ps[path[0] as number];
        typed(() => authz.validateAuthorizationPolicy(p as never));
        typed(() => authz.convertAuthorizationPolicy(p as never, "istio-system"));
        typed(() => authz.isDryRun(p as never));
        typed(() => authz.convertPeerAuthentications([p] as never, "istio-system"));
      }),
      RUNS,
    );
  });

  it("decide with a mutated DecisionInput: 2,000 runs", () => {
    const index = compilePolicies(POLICIES, MESH);
    const inputPaths = INPUTS.flatMap((p, i) => paths(p).map((x) => [i, ...x]));
    fc.assert(
      fc.property(fc.nat(), fc.option(anything, { nil: undefined }), (pick, value) => {
        const path = inputPaths[pick % inputPaths.length] as (string | number)[];
        const input = mutate(INPUTS, path, value)[path[0] as number];
        typed(() => {
          const d = index.decide(input as DecisionInput);
          expect(["allow", "deny"]).toContain(d.decision);
        });
      }),
      RUNS,
    );
  });

  it("the Authorization form mutated anywhere: compile, evaluate, match, print: 2,000 runs", () => {
    const auth = convertAuthorizationPolicy(POLICIES[0] as never, "istio-system")
      .authorization as ZtunnelAuthorization;
    const conn = { ...ZT_CONN, sourceIdentity: ZT_CONN.sourcePrincipal };
    const both = { auth, conn };
    const all = paths(both);
    fc.assert(
      fc.property(fc.nat(), fc.option(anything, { nil: undefined }), (pick, value) => {
        const m = mutate(both, all[pick % all.length] as (string | number)[], value);
        typed(() => authz.evaluateZtunnelAuthorizations([m.auth], m.conn as never));
        typed(() => authz.ztunnelAuthorizationMatches(m.auth, m.conn as never));
        typed(() => authz.compileZtunnelAuthorization(m.auth));
        typed(() => authz.toLocalXdsAuthorization(m.auth));
      }),
      RUNS,
    );
  });

  it("a mutated case file runs or reports issues: 2,000 runs", () => {
    const doc = {
      mesh: { rootNamespace: "istio-system" },
      cases: [
        {
          id: "c",
          enforcement: "waypoint",
          mesh: { trustDomainAliases: ["td"], pathNormalization: "MERGE_SLASHES" },
          policies: [
            {
              apiVersion: "security.istio.io/v1",
              kind: "AuthorizationPolicy",
              metadata: { name: "deny", namespace: "foo" },
              spec: {
                targetRefs: SVC_REF,
                action: "DENY",
                rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }],
              },
            },
          ],
          workload: { namespace: "foo", labels: { app: "httpbin" } },
          service: { name: "httpbin", namespace: "foo", protocol: "HTTP", port: 8000 },
          connection: {
            sourcePrincipal: null,
            sourceIp: "10.0.2.20",
            destinationIp: "10.96.0.50",
            destinationPort: 8000,
          },
          request: {
            host: "h",
            method: "GET",
            path: "/admin",
            headers: { a: "b" },
            jwt: { iss: "i" },
          },
          customProviderDecisions: { ext: "deny" },
          expect: { decision: "deny", decidedBy: "foo/deny", rule: 0 },
        },
      ],
      validationCases: [
        {
          id: "v",
          policy: { kind: "AuthorizationPolicy", metadata: { name: "x", namespace: "foo" } },
          expect: { valid: true },
        },
      ],
    };
    const all = paths(doc);
    fc.assert(
      fc.property(fc.nat(), fc.option(anything, { nil: undefined }), (pick, value) => {
        const m = mutate(doc, all[pick % all.length] as (string | number)[], value);
        const report = authz.runCaseFile(m);
        expect(report.passed + report.failed + report.issues.length).toBeGreaterThan(0);
        const first = authz.parseDecisionCase((m.cases as unknown[] | undefined)?.[0]);
        if (first.value) typed(() => authz.runDecisionCase(first.value as never));
      }),
      RUNS,
    );
  });
});
