// AuthorizationPolicy decisions: ambientkit's compiled index vs node-casbin on an equivalent RBAC
// model (deny-override: any matching deny wins, else any matching allow, else deny) and the same
// request mix; decision cost with 10,000 unrelated policies vs 10; compile time for 10,000 policies.
import {
  type CompiledPolicies,
  compilePolicies,
  type DecisionInput,
  type MeshSettings,
  type PolicyResource,
  parsePolicyResource,
} from "@ambientkit/authz";
import { type Enforcer, newEnforcer, newModelFromString } from "casbin";
import type { BenchGroup, BenchSuite } from "../harness.js";

const mesh: MeshSettings = {
  rootNamespace: "istio-system",
  trustDomain: "cluster.local",
  trustDomainAliases: [],
};

function policy(name: string, namespace: string, spec: Record<string, unknown>): PolicyResource {
  const r = parsePolicyResource({
    apiVersion: "security.istio.io/v1",
    kind: "AuthorizationPolicy",
    metadata: { name, namespace },
    spec,
  });
  if (!r.ok) throw new Error(r.issues.map((i) => i.message).join("; "));
  return r.value;
}

/**
 * Per namespace n (the target service `svc` in ns-n): ALLOW from namespaces [client-n] to ports
 * [8000] methods [GET, POST] paths [/api/*]; DENY to paths [/api/admin*]. The casbin rows say the
 * same: (sub-namespace, target namespace, port, method, path pattern, effect).
 */
function istioPolicies(namespaces: number, kind: "waypoint" | "ztunnel"): PolicyResource[] {
  const out: PolicyResource[] = [];
  for (let n = 0; n < namespaces; n++) {
    const ns = `ns-${n}`;
    const attach =
      kind === "waypoint"
        ? { targetRefs: [{ kind: "Service", group: "", name: "svc" }] }
        : { selector: { matchLabels: { app: "svc" } } };
    const to =
      kind === "waypoint"
        ? { ports: ["8000"], methods: ["GET", "POST"], paths: ["/api/*"] }
        : { ports: ["8000"] };
    out.push(
      policy("allow-clients", ns, {
        ...attach,
        rules: [{ from: [{ source: { namespaces: [`client-${n}`] } }], to: [{ operation: to }] }],
      }),
    );
    out.push(
      policy("deny-admin", ns, {
        ...attach,
        action: "DENY",
        rules: [
          {
            to: [
              { operation: kind === "waypoint" ? { paths: ["/api/admin*"] } : { ports: ["9000"] } },
            ],
          },
        ],
      }),
    );
  }
  return out;
}

/** `k` filler policies in each of `namespaces` other namespaces (never attach to the target). */
function filler(namespaces: number, k: number, kind: "waypoint" | "ztunnel"): PolicyResource[] {
  const out: PolicyResource[] = [];
  for (let n = 0; n < namespaces; n++)
    for (let i = 0; i < k; i++) {
      const attach =
        kind === "waypoint"
          ? { targetRefs: [{ kind: "Service", group: "", name: `svc-${i}` }] }
          : i % 2
            ? { selector: { matchLabels: { app: `a${i}` } } }
            : {};
      out.push(
        policy(`${kind}-p-${i}`, `other-${n}`, {
          ...attach,
          action: i % 3 === 0 ? "DENY" : "ALLOW",
          rules: [
            {
              from: [{ source: { principals: [`cluster.local/ns/x-${i}/sa/y`] } }],
              to: [{ operation: { ports: [String(8000 + i)] } }],
            },
          ],
        }),
      );
    }
  return out;
}

const paths = ["/api/users", "/api/admin/keys", "/api/orders/17", "/healthz"];
const methods = ["GET", "POST", "DELETE"];

function requestMix(
  namespaces: number,
  count: number,
): { ns: number; client: number; method: string; path: string }[] {
  const out = [];
  for (let i = 0; i < count; i++)
    out.push({
      ns: i % namespaces,
      client: (i * 7) % namespaces,
      method: methods[i % methods.length] ?? "GET",
      path: paths[(i * 3) % paths.length] ?? "/",
    });
  return out;
}

function waypointInput(ns: number, client: number, method: string, path: string): DecisionInput {
  return {
    enforcement: "waypoint",
    workload: { namespace: `ns-${ns}`, labels: { app: "svc" } },
    waypoint: { name: "waypoint", namespace: `ns-${ns}` },
    service: { kind: "Service", name: "svc", namespace: `ns-${ns}`, protocol: "HTTP" },
    connection: {
      sourcePrincipal: `spiffe://cluster.local/ns/client-${client}/sa/app`,
      sourceIp: "10.0.2.20",
      destinationIp: "10.96.0.50",
      destinationPort: 8000,
    },
    request: { host: "svc", method, path, headers: {}, jwt: null },
  };
}

function ztunnelInput(ns: number, client: number, port: number): DecisionInput {
  return {
    enforcement: "ztunnel",
    workload: { namespace: `ns-${ns}`, labels: { app: "svc" } },
    connection: {
      sourcePrincipal: `spiffe://cluster.local/ns/client-${client}/sa/app`,
      sourceIp: "10.0.2.20",
      destinationIp: "10.0.1.10",
      destinationPort: port,
    },
  };
}

const CASBIN_MODEL = `
[request_definition]
r = srcns, ns, port, method, path

[policy_definition]
p = srcns, ns, port, method, path, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = (p.srcns == "*" || r.srcns == p.srcns) && r.ns == p.ns && (p.port == "*" || r.port == p.port) && (p.method == "*" || r.method == p.method) && keyMatch(r.path, p.path)
`;

async function casbinEnforcer(namespaces: number): Promise<Enforcer> {
  const e = await newEnforcer(newModelFromString(CASBIN_MODEL));
  for (let n = 0; n < namespaces; n++) {
    for (const m of ["GET", "POST"])
      await e.addPolicy(`client-${n}`, `ns-${n}`, "8000", m, "/api/*", "allow");
    await e.addPolicy("*", `ns-${n}`, "*", "*", "/api/admin*", "deny");
  }
  return e;
}

function cycle<T>(items: readonly T[]): () => T {
  let i = 0;
  return () => {
    const v = items[i] as T;
    i = (i + 1) % items.length;
    return v;
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

const suite: BenchSuite = {
  package: "authz",
  async groups(): Promise<BenchGroup[]> {
    const NS = 10;
    const mix = requestMix(NS, 240);
    const compiled = compilePolicies(istioPolicies(NS, "waypoint"), mesh);
    const enforcer = await casbinEnforcer(NS);
    // Both engines must agree on every request of the mix, or the comparison is meaningless.
    for (const r of mix) {
      const ours =
        compiled.decide(waypointInput(r.ns, r.client, r.method, r.path)).decision === "allow";
      const theirs = enforcer.enforceSync(
        `client-${r.client}`,
        `ns-${r.ns}`,
        "8000",
        r.method,
        r.path,
      );
      if (ours !== theirs) throw new Error(`authz bench: engines disagree on ${JSON.stringify(r)}`);
    }
    const inputs = cycle(mix.map((r) => waypointInput(r.ns, r.client, r.method, r.path)));
    const casbinRequests = cycle(
      mix.map((r) => [`client-${r.client}`, `ns-${r.ns}`, "8000", r.method, r.path] as const),
    );

    const scaleMix = requestMix(5, 240);
    const scale = (
      kind: "waypoint" | "ztunnel",
    ): { small: CompiledPolicies; big: CompiledPolicies; inputs: () => DecisionInput } => {
      const target = istioPolicies(5, kind);
      const small = compilePolicies(target, mesh);
      const big = compilePolicies([...target, ...filler(1000, 10, kind)], mesh);
      const list =
        kind === "waypoint"
          ? scaleMix.map((r) => waypointInput(r.ns, r.client, r.method, r.path))
          : scaleMix.map((r, i) => ztunnelInput(r.ns, r.client, i % 5 === 0 ? 9000 : 8000));
      for (const i of list)
        if (small.decide(i).decision !== big.decide(i).decision)
          throw new Error("authz bench: filler policies changed a decision");
      return { small, big, inputs: cycle(list) };
    };
    const zt = scale("ztunnel");
    const wp = scale("waypoint");
    const tenK = [
      ...istioPolicies(NS, "waypoint"),
      ...filler(500, 10, "waypoint"),
      ...filler(500, 10, "ztunnel"),
    ].slice(0, 10_000);

    return [
      {
        name: "authz/decide-vs-casbin",
        target: "decisions/s ≥ 10× node-casbin on an equivalent RBAC model and request mix",
        ratio: { ours: "ambientkit waypoint decide (compiled)", peer: "node-casbin enforceSync" },
        cases: [
          { name: "ambientkit waypoint decide (compiled)", fn: () => compiled.decide(inputs()) },
          {
            name: "node-casbin enforceSync",
            peer: true,
            fn: () => enforcer.enforceSync(...casbinRequests()),
          },
        ],
      },
      {
        name: "authz/scale-ztunnel",
        target:
          "decision cost with 10,000 policies over 1,000 other namespaces ≤ 1.5× the cost with 10 (ratio = ops/s with 10 ÷ ops/s with 10,000)",
        ratio: {
          ours: "ztunnel decide, 10 policies",
          peer: "ztunnel decide, 10 + 10,000 policies",
        },
        cases: [
          { name: "ztunnel decide, 10 policies", fn: () => zt.small.decide(zt.inputs()) },
          { name: "ztunnel decide, 10 + 10,000 policies", fn: () => zt.big.decide(zt.inputs()) },
        ],
      },
      {
        name: "authz/scale-waypoint",
        target:
          "decision cost with 10,000 policies over 1,000 other namespaces ≤ 1.5× the cost with 10 (ratio = ops/s with 10 ÷ ops/s with 10,000)",
        ratio: {
          ours: "waypoint decide, 10 policies",
          peer: "waypoint decide, 10 + 10,000 policies",
        },
        cases: [
          { name: "waypoint decide, 10 policies", fn: () => wp.small.decide(wp.inputs()) },
          { name: "waypoint decide, 10 + 10,000 policies", fn: () => wp.big.decide(wp.inputs()) },
        ],
      },
      {
        name: "authz/compile",
        target: "compile time for 10,000 policies (a measurement)",
        cases: [],
        async measure() {
          const times: number[] = [];
          for (let i = 0; i < 5; i++) {
            const t0 = performance.now();
            const c = compilePolicies(tenK, mesh);
            times.push(performance.now() - t0);
            if (c.size !== 10_000) throw new Error(`authz bench: compiled ${c.size} policies`);
          }
          return [
            { name: "compile 10,000 policies (median of 5)", value: median(times), unit: "ms" },
          ];
        },
      },
    ];
  },
};

export default suite;
