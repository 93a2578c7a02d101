// Test-only builders (excluded from the package build by tsconfig: see tsconfig.json exclude).
import { compilePolicies } from "./engine.js";
import { parsePolicyResource } from "./parse.js";
import type {
  ConnectionAttributes,
  Decision,
  DecisionInput,
  HttpRequestAttributes,
  MeshSettings,
  PolicyResource,
  ServiceTarget,
} from "./types.js";

export const MESH: MeshSettings = {
  rootNamespace: "istio-system",
  trustDomain: "cluster.local",
  trustDomainAliases: [],
};

/** Builds an AuthorizationPolicy through the real parser (throws if the parser rejects it). */
export function ap(
  name: string,
  spec: Record<string, unknown>,
  opts: { namespace?: string; annotations?: Record<string, string> } = {},
): PolicyResource {
  const res = parsePolicyResource({
    apiVersion: "security.istio.io/v1",
    kind: "AuthorizationPolicy",
    metadata: { name, namespace: opts.namespace ?? "foo", annotations: opts.annotations ?? {} },
    spec,
  });
  if (!res.ok) throw new Error(res.issues.map((i) => i.message).join("; "));
  return res.value;
}

export function pa(
  name: string,
  namespace: string,
  spec: Record<string, unknown>,
  ts?: string,
): PolicyResource {
  const res = parsePolicyResource({
    apiVersion: "security.istio.io/v1",
    kind: "PeerAuthentication",
    metadata: { name, namespace, ...(ts ? { creationTimestamp: ts } : {}) },
    spec,
  });
  if (!res.ok) throw new Error(res.issues.map((i) => i.message).join("; "));
  return res.value;
}

export const SVC_REF = [{ kind: "Service", group: "", name: "httpbin" }];

export const ZT_CONN: ConnectionAttributes = {
  sourcePrincipal: "spiffe://cluster.local/ns/bar/sa/sleep",
  sourceIp: "10.0.2.20",
  destinationIp: "10.0.1.10",
  destinationPort: 8080,
};

export const WP_CONN: ConnectionAttributes = {
  sourcePrincipal: "spiffe://cluster.local/ns/bar/sa/sleep",
  sourceIp: "10.0.2.20",
  destinationIp: "10.96.0.50",
  destinationPort: 8000,
};

export const REQ: HttpRequestAttributes = {
  host: "httpbin.foo:8000",
  method: "GET",
  path: "/get",
  headers: {},
  jwt: null,
};

export function ztunnelDecide(
  policies: PolicyResource[],
  conn: Partial<ConnectionAttributes> = {},
  opts: { mesh?: Partial<MeshSettings>; labels?: Record<string, string>; namespace?: string } = {},
): Decision {
  return compilePolicies(policies, { ...MESH, ...opts.mesh }).decide({
    enforcement: "ztunnel",
    workload: {
      namespace: opts.namespace ?? "foo",
      labels: opts.labels ?? { app: "httpbin", version: "v1" },
    },
    connection: { ...ZT_CONN, ...conn },
  });
}

export function waypointDecide(
  policies: PolicyResource[],
  req: Partial<HttpRequestAttributes> | null = {},
  conn: Partial<ConnectionAttributes> = {},
  opts: {
    mesh?: Partial<MeshSettings>;
    service?: Partial<ServiceTarget>;
    custom?: DecisionInput["customProviders"];
  } = {},
): Decision {
  const input: DecisionInput = {
    enforcement: "waypoint",
    workload: { namespace: "foo", labels: { app: "httpbin" } },
    waypoint: { name: "waypoint", namespace: "foo" },
    service: {
      kind: "Service",
      name: "httpbin",
      namespace: "foo",
      protocol: "HTTP",
      ...opts.service,
    },
    connection: { ...WP_CONN, ...conn },
    request: req === null ? null : { ...REQ, ...req },
  };
  if (opts.custom) input.customProviders = opts.custom;
  return compilePolicies(policies, { ...MESH, ...opts.mesh }).decide(input);
}

/** ALLOW policy at the waypoint (targetRefs httpbin) with one rule. */
export function wpAllow(rule: Record<string, unknown>, name = "allow"): PolicyResource {
  return ap(name, { targetRefs: SVC_REF, rules: [rule] });
}

/** ALLOW policy at ztunnel (namespace-wide) with one rule. */
export function ztAllow(rule: Record<string, unknown>, name = "allow"): PolicyResource {
  return ap(name, { rules: [rule] });
}
