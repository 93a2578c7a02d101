/**
 * ztunnel's L4 authorization: istiod's conversion of AuthorizationPolicy / PeerAuthentication into
 * ztunnel's `Authorization` (pilot ambient `authorization.go`), and ztunnel's matching of that form
 * (`src/rbac.rs` `Authorization::matches`). The object shape is ztunnel's LOCAL_XDS / config-dump
 * form (serde, camelCase; StringMatch as `{Exact: "x"}`), so a bespoke ztunnel can evaluate what it
 * receives over xDS once decoded into it.
 */
import type {
  Authorization,
  RbacMatch,
  ServiceAccountMatch,
  StringMatch,
} from "@ambientkit/xds-types";
import { type IpAddress, type IpPrefix, parseIp, parsePrefix, prefixContains } from "./ip.js";
import type {
  AuthorizationPolicy,
  IgnoredAttribute,
  MtlsMode,
  PeerAuthentication,
  Rule,
  Source,
} from "./types.js";

/** ztunnel `StringMatch` (xds-types domain form; LOCAL_XDS writes it as `{Exact: s}` etc.). */
export type ZtunnelStringMatch = StringMatch;
/** ztunnel `ServiceAccountMatch`. */
export type ZtunnelServiceAccountMatch = ServiceAccountMatch;
/** ztunnel `RbacMatch`: every set field must match (AND); values of one field are ORed. */
export type ZtunnelMatch = RbacMatch;
/**
 * ztunnel `Authorization` (xds-types domain form): `rules` (proto `groups`) are ORed, each rule's
 * clauses (proto `rules`) ANDed, each clause's matches ORed (empty matches skipped, an empty clause
 * matches).
 */
export type ZtunnelAuthorization = Authorization;

/** istiod's status message when it converts with a warning or refuses a policy. */
export interface ConversionStatus {
  reason: string;
  message: string;
}

/** Result of converting one AuthorizationPolicy for ztunnel. */
export interface ZtunnelConversion {
  /** null: istiod sends nothing to ztunnel for this policy. */
  authorization: ZtunnelAuthorization | null;
  status?: ConversionStatus;
  /** What ztunnel will not enforce, per original rule. */
  ignored: IgnoredAttribute[];
  /** For each converted rule, the index of the original `spec.rules` entry. */
  ruleIndex: number[];
  /** The selector labels when scope is WorkloadSelector (istiod attaches by these). */
  selector?: Record<string, string>;
}

/** `when` keys istiod treats as L4 for ztunnel (`l4WhenAttributes`). */
export const ZTUNNEL_L4_WHEN_KEYS: ReadonlySet<string> = new Set([
  "source.ip",
  "source.namespace",
  "source.principal",
  "destination.ip",
  "destination.port",
]);

/** Go `strconv.ParseBool`. */
export function parseGoBool(s: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(s)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(s)) return false;
  return undefined;
}

/** `istio.io/dry-run` as istiod reads it: unparsable → not dry-run (enforced). */
export function isDryRun(policy: AuthorizationPolicy): boolean {
  const v = policy.annotations["istio.io/dry-run"];
  if (v === undefined || v === "") return false;
  return parseGoBool(v) ?? false;
}

/** `stringToMatch`: `*` presence, `*x` suffix, `x*` prefix, else exact. */
export function toZtunnelStringMatch(v: string): ZtunnelStringMatch {
  if (v === "*") return { presence: true };
  if (v.startsWith("*")) return { suffix: v.slice(1) };
  if (v.endsWith("*")) return { prefix: v.slice(0, -1) };
  return { exact: v };
}

/** Go `strconv.ParseUint(s, 10, 32)` && <= 65535. */
export function parsePortString(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

function ports(list: readonly string[] | undefined): number[] {
  const out: number[] = [];
  for (const s of list ?? []) {
    const p = parsePortString(s);
    if (p !== undefined) out.push(p);
  }
  return out;
}

function ips(list: readonly string[] | undefined): string[] {
  const out: string[] = [];
  for (const s of list ?? []) {
    if (s === "") continue;
    const p = parsePrefix(s);
    if (!p) continue;
    // istiod sends address + length; the address keeps its host bits.
    const addr = s.includes("/") ? s.slice(0, s.indexOf("/")) : s;
    out.push(`${addr}/${p.bits}`);
  }
  return out;
}

function strs(list: readonly string[] | undefined): ZtunnelStringMatch[] {
  return (list ?? []).map(toZtunnelStringMatch);
}

function sas(list: readonly string[] | undefined, ns: string): ZtunnelServiceAccountMatch[] {
  return (list ?? []).map((v) => {
    const i = v.indexOf("/");
    return i >= 0
      ? { namespace: v.slice(0, i), serviceAccount: v.slice(i + 1) }
      : { namespace: ns, serviceAccount: v };
  });
}

function compact(m: ZtunnelMatch): ZtunnelMatch {
  const out: ZtunnelMatch = {};
  for (const [k, v] of Object.entries(m) as [keyof ZtunnelMatch, unknown[]][]) {
    if (v.length > 0) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

const OP_L7 = ["hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"] as const;
const SRC_L7 = [
  "remoteIpBlocks",
  "notRemoteIpBlocks",
  "requestPrincipals",
  "notRequestPrincipals",
] as const;

/** A rule's L7 attributes (what istiod's `handleRule` flags), plus trustDomains (silently ignored). */
function ruleAttributes(rule: Rule): { l7: string[]; silent: string[] } {
  const l7: string[] = [];
  const silent: string[] = [];
  for (const t of rule.to ?? []) {
    for (const k of OP_L7) if ((t.operation?.[k]?.length ?? 0) > 0) l7.push(`to.operation.${k}`);
  }
  for (const f of rule.from ?? []) {
    const s: Source = f.source ?? {};
    for (const k of SRC_L7) if ((s[k]?.length ?? 0) > 0) l7.push(`from.source.${k}`);
    if ((s.trustDomains?.length ?? 0) > 0) silent.push("from.source.trustDomains");
    if ((s.notTrustDomains?.length ?? 0) > 0) silent.push("from.source.notTrustDomains");
  }
  for (const w of rule.when ?? []) if (!ZTUNNEL_L4_WHEN_KEYS.has(w.key)) l7.push(`when.${w.key}`);
  return { l7: [...new Set(l7)], silent: [...new Set(silent)] };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function whenMatch(
  key: string,
  values: readonly string[] | undefined,
  negate: boolean,
): ZtunnelMatch {
  const m: Mutable<ZtunnelMatch> = {};
  switch (key) {
    case "source.namespace":
      m[negate ? "notNamespaces" : "namespaces"] = strs(values);
      break;
    case "source.principal":
      m[negate ? "notPrincipals" : "principals"] = strs(values);
      break;
    case "source.ip":
      m[negate ? "notSourceIps" : "sourceIps"] = ips(values);
      break;
    case "destination.port":
      m[negate ? "notDestinationPorts" : "destinationPorts"] = ports(values);
      break;
    case "destination.ip":
      m[negate ? "notDestinationIps" : "destinationIps"] = ips(values);
      break;
  }
  return m;
}

const HTTP_ALLOW =
  "Within an ALLOW policy, rules matching HTTP attributes are omitted. This will be more restrictive than requested.";
const HTTP_DENY =
  "DENY policy with HTTP attributes is enforced without the HTTP rules. This will be more restrictive than requested.";

const HTTP_DENY_NO_EFFECT =
  "After removing the HTTP rules, this DENY policy has no enforceable rules at ztunnel and will have no effect.";

/** Whether some converted rule can still match (a clause of only empty matches never does). */
function hasEffectiveRules(rules: readonly (readonly (readonly ZtunnelMatch[])[])[]): boolean {
  return rules.some((clauses) =>
    clauses.every((clause) => clause.length === 0 || clause.some((m) => Object.keys(m).length > 0)),
  );
}

/**
 * Converts an AuthorizationPolicy exactly as istiod does for ztunnel (`convertAuthorizationPolicy`
 * + `handleRule`): targetRef(s) → not sent; AUDIT/CUSTOM → not sent; dry-run → not sent unless
 * `ambientEnableDryRun`; ALLOW rules with any L7 attribute are dropped whole; DENY rules keep their
 * L4 fields with the L7 ones removed; unparsable IPs/ports are dropped silently.
 */
export function convertAuthorizationPolicy(
  policy: AuthorizationPolicy,
  rootNamespace: string,
  options: { ambientEnableDryRun?: boolean } = {},
): ZtunnelConversion {
  const key = `${policy.namespace}/${policy.name}`;
  const spec = policy.spec;
  if ((spec.targetRefs?.length ?? 0) > 0 || spec.targetRef) {
    return {
      authorization: null,
      ignored: [
        {
          policy: key,
          attribute: "spec.targetRefs",
          reason: "policies with targetRefs bind to waypoints; istiod never sends them to ztunnel",
        },
      ],
      ruleIndex: [],
    };
  }
  if (spec.action === "AUDIT" || spec.action === "CUSTOM") {
    const message = `ztunnel does not support the ${spec.action} action`;
    return {
      authorization: null,
      status: { reason: "UnsupportedValue", message },
      ignored: [{ policy: key, attribute: `spec.action: ${spec.action}`, reason: message }],
      ruleIndex: [],
    };
  }
  const dryRun = isDryRun(policy);
  if (dryRun && !options.ambientEnableDryRun) {
    const message =
      "dry-run policies are not sent to ztunnel (AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY is off): no effect at L4";
    return {
      authorization: null,
      status: { reason: "UnsupportedValue", message },
      ignored: [
        { policy: key, attribute: "metadata.annotations[istio.io/dry-run]", reason: message },
      ],
      ruleIndex: [],
    };
  }
  const action = spec.action === "DENY" ? "Deny" : "Allow";
  const scope =
    spec.selector === undefined
      ? policy.namespace === rootNamespace
        ? "Global"
        : "Namespace"
      : "WorkloadSelector";
  const outRules: ZtunnelMatch[][][] = [];
  const ignored: IgnoredAttribute[] = [];
  const ruleIndex: number[] = [];
  const found = new Set<string>();
  (spec.rules ?? []).forEach((rule, index) => {
    if (rule === null) return;
    const { l7, silent } = ruleAttributes(rule);
    for (const a of silent)
      ignored.push({
        policy: key,
        rule: index,
        attribute: a,
        reason:
          "istiod does not convert trustDomains for ztunnel: the field is silently ignored (no constraint)",
      });
    const clauses: ZtunnelMatch[][] = [];
    if (rule.to && rule.to.length > 0) {
      clauses.push(
        rule.to.map((t) =>
          compact({
            destinationPorts: ports(t.operation?.ports),
            notDestinationPorts: ports(t.operation?.notPorts),
          }),
        ),
      );
    }
    if (rule.from && rule.from.length > 0) {
      clauses.push(
        rule.from.map((f) => {
          const s: Source = f.source ?? {};
          return compact({
            sourceIps: ips(s.ipBlocks),
            notSourceIps: ips(s.notIpBlocks),
            namespaces: strs(s.namespaces),
            notNamespaces: strs(s.notNamespaces),
            serviceAccounts: sas(s.serviceAccounts, policy.namespace),
            notServiceAccounts: sas(s.notServiceAccounts, policy.namespace),
            principals: strs(s.principals),
            notPrincipals: strs(s.notPrincipals),
          });
        }),
      );
    }
    for (const w of rule.when ?? []) {
      const pos = whenMatch(w.key, w.values, false);
      const neg = whenMatch(w.key, w.notValues, true);
      clauses.push([compact({ ...pos, ...neg })]);
    }
    for (const a of l7) found.add(a.replace(/^(to\.operation|from\.source|when)\./, ""));
    if (action === "Allow" && l7.length > 0) {
      for (const a of l7)
        ignored.push({
          policy: key,
          rule: index,
          attribute: a,
          reason:
            "ztunnel cannot evaluate HTTP attributes: istiod drops the whole ALLOW rule (more restrictive; use a waypoint)",
        });
      return;
    }
    for (const a of l7)
      ignored.push({
        policy: key,
        rule: index,
        attribute: a,
        reason:
          "ztunnel cannot evaluate HTTP attributes: istiod removes it from the DENY rule; an entry left empty never matches, an entry with L4 fields left denies more broadly",
      });
    outRules.push(clauses);
    ruleIndex.push(index);
  });
  const out: ZtunnelAuthorization = {
    name: policy.name,
    namespace: policy.namespace,
    scope,
    action,
    rules: outRules,
    dryRun,
  };
  const result: ZtunnelConversion = { authorization: out, ignored, ruleIndex };
  if (spec.selector) result.selector = { ...spec.selector.matchLabels };
  if (found.size > 0) {
    result.status = {
      reason: "UnsupportedValue",
      message: `ztunnel does not support HTTP attributes (found: ${[...found].sort().join(", ")}). In ambient mode you must use a waypoint proxy to enforce HTTP rules. ${action === "Allow" ? HTTP_ALLOW : hasEffectiveRules(outRules) ? HTTP_DENY : HTTP_DENY_NO_EFFECT}`,
    };
  }
  return result;
}

/** Name istiod gives the static STRICT policy (root namespace). */
export const STATIC_STRICT_POLICY_NAME = "istio_converted_static_strict";

/** The static STRICT DENY policy: deny any connection without a peer identity. */
export function staticStrictAuthorization(rootNamespace: string): ZtunnelAuthorization {
  return {
    name: STATIC_STRICT_POLICY_NAME,
    namespace: rootNamespace,
    scope: "WorkloadSelector",
    action: "Deny",
    rules: [[[{ notPrincipals: [{ presence: true }] }]]],
    dryRun: false,
  };
}

function modeOf(pa: PeerAuthentication | undefined): MtlsMode {
  return pa?.spec.mtls?.mode ?? "UNSET";
}

function older(a: PeerAuthentication, b: PeerAuthentication | undefined): boolean {
  if (!b) return true;
  const ta = a.creationTimestamp ? Date.parse(a.creationTimestamp) : Number.NaN;
  const tb = b.creationTimestamp ? Date.parse(b.creationTimestamp) : Number.NaN;
  // Without timestamps the first listed wins, as the oldest would.
  return !Number.isNaN(ta) && !Number.isNaN(tb) && ta < tb;
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

/**
 * The ztunnel Authorization objects istiod attaches to a workload because of PeerAuthentication
 * (`convertedSelectorPeerAuthentications` + `convertPeerAuthentication`): the static STRICT DENY when
 * the effective mode is STRICT, and/or a per-workload policy for port-level mTLS.
 */
export function peerAuthenticationAuthorizations(
  peerAuthentications: readonly PeerAuthentication[],
  rootNamespace: string,
  workload: { namespace: string; labels: Record<string, string> },
): ZtunnelAuthorization[] {
  let mesh: PeerAuthentication | undefined;
  let ns: PeerAuthentication | undefined;
  let wl: PeerAuthentication | undefined;
  for (const pa of peerAuthentications) {
    const labels = pa.spec.selector?.matchLabels;
    const hasSelector = labels !== undefined && Object.keys(labels).length > 0;
    if (!hasSelector) {
      if (pa.namespace === rootNamespace) {
        if (older(pa, mesh)) mesh = pa;
      } else if (pa.namespace === workload.namespace) {
        if (older(pa, ns)) ns = pa;
      }
    } else if (
      pa.namespace !== rootNamespace &&
      pa.namespace === workload.namespace &&
      selects(labels, workload.labels)
    ) {
      if (older(pa, wl)) wl = pa;
    }
  }
  let strict = false;
  let portPolicy: PeerAuthentication | undefined;
  if (mesh) strict = modeOf(mesh) === "STRICT";
  if (ns && modeOf(ns) !== "UNSET") strict = modeOf(ns) === "STRICT";
  if (wl) {
    const m = modeOf(wl);
    if (m === "STRICT") strict = true;
    if (m === "PERMISSIVE" || m === "DISABLE") strict = false;
    const portModes = Object.values(wl.spec.portLevelMtls ?? {}).map((p) => p.mode);
    if (wl.spec.portLevelMtls) {
      if (m === "STRICT") {
        if (portModes.some((p) => p === "PERMISSIVE" || p === "DISABLE")) {
          portPolicy = wl;
          strict = false;
        }
      } else if (m === "PERMISSIVE" || m === "DISABLE") {
        if (portModes.includes("STRICT")) portPolicy = wl;
      } else if (strict) {
        if (portModes.includes("PERMISSIVE")) {
          portPolicy = wl;
          strict = false;
        }
      } else if (portModes.includes("STRICT")) portPolicy = wl;
    }
  }
  const out: ZtunnelAuthorization[] = [];
  if (strict) out.push(staticStrictAuthorization(rootNamespace));
  if (portPolicy) {
    const converted = convertPeerAuthentication(portPolicy, ns, mesh, rootNamespace);
    if (converted) out.push(converted);
  }
  return out;
}

function convertPeerAuthentication(
  pa: PeerAuthentication,
  nsCfg: PeerAuthentication | undefined,
  rootCfg: PeerAuthentication | undefined,
  rootNamespace: string,
): ZtunnelAuthorization | null {
  const portLevel = pa.spec.portLevelMtls ?? {};
  if (pa.namespace === rootNamespace || !pa.spec.selector || Object.keys(portLevel).length === 0)
    return null;
  const mode = modeOf(pa);
  const nsMode = nsCfg ? modeOf(nsCfg) : undefined;
  const rootMode = rootCfg ? modeOf(rootCfg) : undefined;
  const rules: ZtunnelMatch[][] = [];
  const groups: ZtunnelMatch[][][] = [];
  if (mode === "STRICT") rules.push([{ notPrincipals: [{ presence: true }] }]);
  let foundNonStrict = false;
  const sorted = Object.entries(portLevel).sort(([a], [b]) => Number(a) - Number(b));
  for (const [portStr, { mode: pm }] of sorted) {
    const port = Number(portStr);
    if (pm === "STRICT") {
      const inherited =
        mode === "STRICT" ||
        (mode === "UNSET" && nsMode === "STRICT") ||
        ((nsMode === undefined || nsMode === "UNSET") && rootMode === "STRICT");
      if (inherited) continue;
      groups.push([[{ notPrincipals: [{ presence: true }], destinationPorts: [port] }]]);
    } else if (pm === "PERMISSIVE" || pm === "DISABLE") {
      if (mode === "PERMISSIVE" || mode === "DISABLE") continue;
      if (
        mode === "UNSET" &&
        ((nsMode !== undefined && nsMode !== "STRICT") ||
          (nsMode === undefined && rootMode !== undefined && rootMode !== "STRICT") ||
          (nsMode === undefined && rootMode === undefined))
      )
        continue;
      foundNonStrict = true;
      rules.push([{ notDestinationPorts: [port] }]);
    }
  }
  if (mode === "STRICT" && !foundNonStrict) return null;
  if (rules.length === 0 && groups.length === 0) return null;
  const mergeStrict =
    (rootMode === "STRICT" &&
      (nsMode === undefined || nsMode === "UNSET" || nsMode === "STRICT")) ||
    nsMode === "STRICT";
  if (mergeStrict && foundNonStrict) rules.push([{ notPrincipals: [{ presence: true }] }]);
  if (rules.length > 0) groups.push(rules);
  return {
    name: `converted_peer_authentication_${pa.name}`,
    namespace: pa.namespace,
    scope: "WorkloadSelector",
    action: "Deny",
    rules: groups,
    dryRun: false,
  };
}

// ---------------------------------------------------------------------------------------------
// Matching (ztunnel rbac.rs)

/** A connection as ztunnel's RBAC sees it. */
export interface ZtunnelConnection {
  sourceIp: string;
  destinationIp: string;
  destinationPort: number;
  /** Full SPIFFE URI of the peer, or null (plaintext). */
  sourceIdentity: string | null;
}

/** An Istio SPIFFE identity split into parts; undefined if not `spiffe://td/ns/N/sa/S`. */
export function parseIstioIdentity(
  uri: string,
): { trustDomain: string; namespace: string; serviceAccount: string } | undefined {
  if (!uri.startsWith("spiffe://")) return undefined;
  const parts = uri.slice("spiffe://".length).split("/");
  if (parts.length !== 5 || parts[1] !== "ns" || parts[3] !== "sa") return undefined;
  const [td, , ns, , sa] = parts as [string, string, string, string, string];
  if (!td || !ns || !sa) return undefined;
  return { trustDomain: td, namespace: ns, serviceAccount: sa };
}

type Pred<T> = (v: T) => boolean;

interface CompiledMatch {
  empty: boolean;
  test: (c: PreparedConnection) => boolean;
}

/** A connection with its attributes pre-parsed once per decision. */
export interface PreparedConnection {
  src: IpAddress | undefined;
  dst: IpAddress | undefined;
  port: number;
  /** identity with `spiffe://` (or "" when none). */
  id: string;
  ns: string;
  sa: { namespace: string; serviceAccount: string } | undefined;
}

/** Pre-parses a connection for repeated matching. */
const identityCache = new Map<string, ReturnType<typeof parseIstioIdentity> | null>();

function cachedIdentity(uri: string): ReturnType<typeof parseIstioIdentity> {
  const hit = identityCache.get(uri);
  if (hit !== undefined) return hit ?? undefined;
  const parsed = parseIstioIdentity(uri);
  if (identityCache.size >= 4096) identityCache.clear();
  identityCache.set(uri, parsed ? Object.freeze(parsed) : null);
  return parsed;
}

export function prepareZtunnelConnection(conn: ZtunnelConnection): PreparedConnection {
  const parsed = conn.sourceIdentity ? cachedIdentity(conn.sourceIdentity) : undefined;
  return {
    src: parseIp(conn.sourceIp),
    dst: parseIp(conn.destinationIp),
    port: conn.destinationPort,
    id: conn.sourceIdentity ?? "",
    ns: parsed?.namespace ?? "",
    sa: parsed ? { namespace: parsed.namespace, serviceAccount: parsed.serviceAccount } : undefined,
  };
}

function strPred(m: ZtunnelStringMatch): Pred<string> {
  if ("exact" in m) return (s) => s === m.exact;
  if ("prefix" in m) return (s) => s.startsWith(m.prefix);
  if ("suffix" in m) return (s) => s.endsWith(m.suffix);
  return (s) => s !== "";
}

function field<T>(
  pos: readonly T[] | undefined,
  neg: readonly T[] | undefined,
  get: (c: PreparedConnection, v: T) => boolean,
): ((c: PreparedConnection) => boolean) | undefined {
  const p = pos ?? [];
  const n = neg ?? [];
  if (p.length === 0 && n.length === 0) return undefined;
  return (c) => (p.length === 0 || p.some((v) => get(c, v))) && !n.some((v) => get(c, v));
}

function compileMatch(m: ZtunnelMatch): CompiledMatch {
  const tests: ((c: PreparedConnection) => boolean)[] = [];
  const prefixes = (l: readonly string[] | undefined): IpPrefix[] =>
    (l ?? []).map(parsePrefix).filter((p): p is IpPrefix => p !== undefined);
  const add = (t: ((c: PreparedConnection) => boolean) | undefined): void => {
    if (t) tests.push(t);
  };
  add(
    field(prefixes(m.destinationIps), prefixes(m.notDestinationIps), (c, p) =>
      c.dst ? prefixContains(p, c.dst) : false,
    ),
  );
  add(
    field(prefixes(m.sourceIps), prefixes(m.notSourceIps), (c, p) =>
      c.src ? prefixContains(p, c.src) : false,
    ),
  );
  add(field(m.destinationPorts, m.notDestinationPorts, (c, p) => c.port === p));
  add(
    field(m.serviceAccounts, m.notServiceAccounts, (c, s) =>
      c.sa ? c.sa.namespace === s.namespace && c.sa.serviceAccount === s.serviceAccount : false,
    ),
  );
  const princ = (l: readonly ZtunnelStringMatch[] | undefined) => (l ?? []).map(strPred);
  add(
    field(princ(m.principals), princ(m.notPrincipals), (c, p) =>
      c.id.startsWith("spiffe://") ? p(c.id.slice(9)) : false,
    ),
  );
  add(field(princ(m.namespaces), princ(m.notNamespaces), (c, p) => p(c.ns)));
  return { empty: tests.length === 0, test: (c) => tests.every((t) => t(c)) };
}

/** A ztunnel Authorization compiled for fast matching. */
export interface CompiledZtunnelAuthorization {
  readonly authorization: ZtunnelAuthorization;
  /** Index of the first matching rule, or -1. */
  firstMatch(conn: PreparedConnection): number;
}

/** Compiles a ztunnel Authorization (parse CIDRs once). */
export function compileZtunnelAuthorization(a: ZtunnelAuthorization): CompiledZtunnelAuthorization {
  const rules = a.rules.map((clauses) => clauses.map((clause) => clause.map(compileMatch)));
  return {
    authorization: a,
    firstMatch(conn) {
      for (let r = 0; r < rules.length; r++) {
        const clauses = rules[r] ?? [];
        let ok = true;
        for (const clause of clauses) {
          if (clause.length === 0) continue;
          let any = false;
          for (const m of clause) {
            if (m.empty) continue;
            if (m.test(conn)) {
              any = true;
              break;
            }
          }
          if (!any) {
            ok = false;
            break;
          }
        }
        if (ok) return r;
      }
      return -1;
    },
  };
}

/** ztunnel `Authorization::matches` for one connection. */
export function ztunnelAuthorizationMatches(
  a: ZtunnelAuthorization,
  conn: ZtunnelConnection,
): boolean {
  return compileZtunnelAuthorization(a).firstMatch(prepareZtunnelConnection(conn)) >= 0;
}

/** Outcome of ztunnel's `assert_rbac` over a set of Authorization objects. */
export interface ZtunnelRbacResult {
  allowed: boolean;
  /** `ns/name` of the DENY that matched or the ALLOW that allowed; absent for implicit outcomes. */
  policy?: string;
  rule?: number;
  reason: "denied" | "no-allow-policies" | "allowed" | "not-allowed";
  /** dry-run policies that would have matched (ztunnel only logs them). */
  dryRunMatches: string[];
}

/**
 * ztunnel `assert_rbac`: dry-run policies are logged only; any matching DENY denies; with no ALLOW
 * policy, allow; any matching ALLOW allows; else deny. Evaluates the Authorization form directly.
 */
export function evaluateZtunnelAuthorizations(
  policies: readonly (ZtunnelAuthorization | CompiledZtunnelAuthorization)[],
  conn: ZtunnelConnection | PreparedConnection,
): ZtunnelRbacResult {
  const c = "sourceIdentity" in conn ? prepareZtunnelConnection(conn) : conn;
  const compiled = policies.map((p) => ("firstMatch" in p ? p : compileZtunnelAuthorization(p)));
  const dryRunMatches: string[] = [];
  const enforced = compiled.filter((p) => {
    if (!p.authorization.dryRun) return true;
    if (p.firstMatch(c) >= 0)
      dryRunMatches.push(`${p.authorization.namespace}/${p.authorization.name}`);
    return false;
  });
  for (const p of enforced) {
    if (p.authorization.action !== "Deny") continue;
    const r = p.firstMatch(c);
    if (r >= 0)
      return {
        allowed: false,
        policy: `${p.authorization.namespace}/${p.authorization.name}`,
        rule: r,
        reason: "denied",
        dryRunMatches,
      };
  }
  const allows = enforced.filter((p) => p.authorization.action === "Allow");
  if (allows.length === 0) return { allowed: true, reason: "no-allow-policies", dryRunMatches };
  for (const p of allows) {
    const r = p.firstMatch(c);
    if (r >= 0)
      return {
        allowed: true,
        policy: `${p.authorization.namespace}/${p.authorization.name}`,
        rule: r,
        reason: "allowed",
        dryRunMatches,
      };
  }
  return { allowed: false, reason: "not-allowed", dryRunMatches };
}

/**
 * Every PeerAuthentication-derived Authorization istiod sends to ztunnels (independent of any one
 * workload): the static STRICT policy when any PeerAuthentication exists, and one converted policy
 * per workload-selector PeerAuthentication with port-level mTLS.
 */
export function convertPeerAuthentications(
  peerAuthentications: readonly PeerAuthentication[],
  rootNamespace: string,
): ZtunnelAuthorization[] {
  if (peerAuthentications.length === 0) return [];
  const out: ZtunnelAuthorization[] = [];
  const oldest = (ns: string): PeerAuthentication | undefined => {
    let o: PeerAuthentication | undefined;
    for (const pa of peerAuthentications) {
      const labels = pa.spec.selector?.matchLabels;
      if (
        pa.namespace === ns &&
        (labels === undefined || Object.keys(labels).length === 0) &&
        older(pa, o)
      )
        o = pa;
    }
    return o;
  };
  const root = oldest(rootNamespace);
  for (const pa of peerAuthentications) {
    const c = convertPeerAuthentication(pa, oldest(pa.namespace), root, rootNamespace);
    if (c) out.push(c);
  }
  out.push(staticStrictAuthorization(rootNamespace));
  return out;
}

/**
 * The LOCAL_XDS (ztunnel config-dump / local config YAML) spelling of an Authorization: StringMatch
 * externally tagged (`{Exact: s}`, `{Presence: []}`), empty lists omitted.
 */
export function toLocalXdsAuthorization(a: ZtunnelAuthorization): Record<string, unknown> {
  const sm = (m: ZtunnelStringMatch): Record<string, unknown> =>
    "exact" in m
      ? { Exact: m.exact }
      : "prefix" in m
        ? { Prefix: m.prefix }
        : "suffix" in m
          ? { Suffix: m.suffix }
          : { Presence: [] };
  const match = (m: ZtunnelMatch): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(m) as [string, readonly unknown[]][]) {
      if (v.length === 0) continue;
      o[k] =
        k.endsWith("amespaces") || k.endsWith("rincipals")
          ? (v as ZtunnelStringMatch[]).map(sm)
          : [...v];
    }
    return o;
  };
  return {
    name: a.name,
    namespace: a.namespace,
    scope: a.scope,
    action: a.action,
    rules: a.rules.map((r) => r.map((c) => c.map(match))),
    dryRun: a.dryRun,
  };
}
