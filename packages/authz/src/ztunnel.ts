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
import { AuthzError } from "./errors.js";
import {
  assertAuthorizationPolicy,
  assertPeerAuthentications,
  assertZtunnelAuthorization,
  assertZtunnelConnection,
  Guard,
  isRecord,
  nullProtoCopy,
  own,
  show,
} from "./guards.js";
import { contains, type IpAddress, ipv4Equivalent, parsePrefix } from "./ip.js";
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
  /**
   * Values istiod cannot parse (CIDRs, ports), by original rule. ALLOW rules holding one were
   * dropped; in DENY rules they were read as matching (see {@link MATCH_EVERY_CONNECTION}).
   */
  unparsable?: (UnparsableValue & { rule: number })[];
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
  assertAuthorizationPolicy(policy);
  return dryRunAnnotation(policy);
}

/** `isDryRun` for a policy already checked. */
export function dryRunAnnotation(policy: AuthorizationPolicy): boolean {
  const v = own(policy.annotations, "istio.io/dry-run");
  if (typeof v !== "string") return false;
  if (v === "") return false;
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
  if (typeof s !== "string" || !/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

/** A policy value istiod could not parse (it would drop it silently), with where it was. */
export interface UnparsableValue {
  attribute: string;
  value: string;
}

function ipString(s: string): string | undefined {
  const p = parsePrefix(s);
  if (!p) return undefined;
  // istiod sends address + length; the address keeps its host bits.
  const addr = s.includes("/") ? s.slice(0, s.indexOf("/")) : s;
  return `${addr}/${p.bits}`;
}

/**
 * A match every connection satisfies (ztunnel skips an empty match, so "no constraint" needs a
 * field): what a DENY entry becomes when unparsable values left it with no usable field.
 */
export const MATCH_EVERY_CONNECTION: ZtunnelMatch = Object.freeze({
  sourceIps: Object.freeze(["0.0.0.0/0", "::/0"]),
});

/** Converts the L4 fields of one rule, collecting the values istiod could not parse. */
class L4 {
  readonly bad: UnparsableValue[] = [];
  readonly deny: boolean;
  constructor(deny: boolean) {
    this.deny = deny;
  }
  /**
   * In a DENY rule an unparsable value in a positive list stands for "any value" (the field is left
   * out), in a negative list it excludes nothing. ALLOW rules with one are dropped by the caller.
   */
  list<T>(
    values: readonly string[] | undefined,
    attribute: string,
    parse: (s: string) => T | undefined,
    negative: boolean,
  ): T[] {
    const out: T[] = [];
    let unparsable = false;
    for (const s of values ?? []) {
      const v = parse(s);
      if (v === undefined) {
        this.bad.push({ attribute, value: s });
        unparsable = true;
      } else out.push(v);
    }
    return unparsable && this.deny && !negative ? [] : out;
  }
  ports(values: readonly string[] | undefined, attribute: string, negative: boolean): number[] {
    return this.list(values, attribute, parsePortString, negative);
  }
  ips(values: readonly string[] | undefined, attribute: string, negative: boolean): string[] {
    return this.list(values, attribute, ipString, negative);
  }
  /** The entry's match; one that unparsable values emptied matches every connection. */
  entry(before: number, m: ZtunnelMatch): ZtunnelMatch {
    const c = compact(m);
    return this.bad.length > before && Object.keys(c).length === 0 ? MATCH_EVERY_CONNECTION : c;
  }
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
  l4: L4,
  key: string,
  values: readonly string[] | undefined,
  negate: boolean,
): ZtunnelMatch {
  const m: Mutable<ZtunnelMatch> = {};
  const attr = `when.${key}.${negate ? "notValues" : "values"}`;
  switch (key) {
    case "source.namespace":
      m[negate ? "notNamespaces" : "namespaces"] = strs(values);
      break;
    case "source.principal":
      m[negate ? "notPrincipals" : "principals"] = strs(values);
      break;
    case "source.ip":
      m[negate ? "notSourceIps" : "sourceIps"] = l4.ips(values, attr, negate);
      break;
    case "destination.port":
      m[negate ? "notDestinationPorts" : "destinationPorts"] = l4.ports(values, attr, negate);
      break;
    case "destination.ip":
      m[negate ? "notDestinationIps" : "destinationIps"] = l4.ips(values, attr, negate);
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
 * L4 fields with the L7 ones removed. Unparsable IPs/ports, which istiod drops silently, fail
 * closed instead: the ALLOW rule holding one is dropped, in a DENY rule it matches (see
 * `unparsable`).
 */
export function convertAuthorizationPolicy(
  policy: AuthorizationPolicy,
  rootNamespace: string,
  options: { ambientEnableDryRun?: boolean } = {},
): ZtunnelConversion {
  assertAuthorizationPolicy(policy);
  if (typeof rootNamespace !== "string")
    throw new AuthzError("ERR_AUTHZ_INVALID_INPUT", "rootNamespace must be a string");
  return convertChecked(policy, rootNamespace, options?.ambientEnableDryRun === true);
}

/** `convertAuthorizationPolicy` for a policy already checked (the compiled index checks once). */
export function convertChecked(
  policy: AuthorizationPolicy,
  rootNamespace: string,
  ambientEnableDryRun: boolean,
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
  if (dryRun && !ambientEnableDryRun) {
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
  const unparsable: (UnparsableValue & { rule: number })[] = [];
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
    const l4 = new L4(action === "Deny");
    if (rule.to && rule.to.length > 0) {
      clauses.push(
        rule.to.map((t) => {
          const before = l4.bad.length;
          const o = t.operation;
          return l4.entry(before, {
            destinationPorts: l4.ports(o?.ports, "to.operation.ports", false),
            notDestinationPorts: l4.ports(o?.notPorts, "to.operation.notPorts", true),
          });
        }),
      );
    }
    if (rule.from && rule.from.length > 0) {
      clauses.push(
        rule.from.map((f) => {
          const s: Source = f.source ?? {};
          const before = l4.bad.length;
          return l4.entry(before, {
            sourceIps: l4.ips(s.ipBlocks, "from.source.ipBlocks", false),
            notSourceIps: l4.ips(s.notIpBlocks, "from.source.notIpBlocks", true),
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
      const before = l4.bad.length;
      const pos = whenMatch(l4, w.key, w.values, false);
      const neg = whenMatch(l4, w.key, w.notValues, true);
      clauses.push([l4.entry(before, { ...pos, ...neg })]);
    }
    for (const b of l4.bad) {
      unparsable.push({ rule: index, ...b });
      ignored.push({
        policy: key,
        rule: index,
        attribute: b.attribute,
        reason:
          action === "Allow"
            ? `unparsable value ${JSON.stringify(b.value)}: the ALLOW rule can never match (fail closed; istiod would drop the value silently and keep the rest of the rule)`
            : `unparsable value ${JSON.stringify(b.value)}: read as matching every connection in this DENY rule (fail closed; istiod would drop it silently)`,
      });
    }
    if (action === "Allow" && l4.bad.length > 0) return;
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
  if (unparsable.length > 0) result.unparsable = unparsable;
  if (spec.selector) result.selector = nullProtoCopy(spec.selector.matchLabels);
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
  new Guard("ERR_AUTHZ_INVALID_INPUT", "argument").string(rootNamespace, ["rootNamespace"]);
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

/** matchLabels ⊆ labels; own keys only, so `__proto__` or `constructor` are labels like any other. */
export function selects(
  selector: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  for (const [k, v] of Object.entries(selector)) if (own(labels, k) !== v) return false;
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
  assertPeerAuthentications(peerAuthentications);
  const g = new Guard("ERR_AUTHZ_INVALID_INPUT", "argument");
  g.string(rootNamespace, ["rootNamespace"]);
  const w = g.record(workload, ["workload"]);
  g.string(w.namespace, ["workload", "namespace"]);
  g.stringMap(w.labels, ["workload", "labels"]);
  return peerAuthorizationsChecked(peerAuthentications, rootNamespace, workload);
}

/** `peerAuthenticationAuthorizations` for arguments already checked. */
export function peerAuthorizationsChecked(
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
  if (typeof uri !== "string" || !uri.startsWith("spiffe://")) return undefined;
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
  /** Canonical (IPv4-mapped IPv6 folded to IPv4, as ztunnel's `to_canonical`). */
  src: IpAddress;
  dst: IpAddress;
  port: number;
  /** identity with `spiffe://` (or "" when none). */
  id: string;
  ns: string;
  sa: { namespace: string; serviceAccount: string } | undefined;
}

const identityCache = new Map<string, ReturnType<typeof parseIstioIdentity> | null>();

function cachedIdentity(uri: string): ReturnType<typeof parseIstioIdentity> {
  const hit = identityCache.get(uri);
  if (hit !== undefined) return hit ?? undefined;
  const parsed = parseIstioIdentity(uri);
  if (identityCache.size >= 4096) identityCache.clear();
  identityCache.set(uri, parsed ? Object.freeze(parsed) : null);
  return parsed;
}

// Connections this module prepared; anything else handed in as "prepared" is re-checked.
const preparedConnections = new WeakSet<object>();

/** Builds a PreparedConnection from addresses that were already checked and canonicalised. */
export function preparedConnection(
  src: IpAddress,
  dst: IpAddress,
  port: number,
  identity: string | null,
): PreparedConnection {
  const parsed = identity ? cachedIdentity(identity) : undefined;
  const c: PreparedConnection = {
    src,
    dst,
    port,
    id: identity ?? "",
    ns: parsed?.namespace ?? "",
    sa: parsed ? { namespace: parsed.namespace, serviceAccount: parsed.serviceAccount } : undefined,
  };
  return c;
}

/** Checks and pre-parses a connection for repeated matching (AuthzError if it is not one). */
export function prepareZtunnelConnection(conn: ZtunnelConnection): PreparedConnection {
  const { sourceIp, destinationIp } = assertZtunnelConnection(conn);
  const c = preparedConnection(sourceIp, destinationIp, conn.destinationPort, conn.sourceIdentity);
  preparedConnections.add(c);
  return c;
}

function isPreparedShape(c: unknown): c is PreparedConnection {
  const p = c as PreparedConnection | null;
  return (
    typeof p === "object" &&
    p !== null &&
    typeof p.src?.value === "bigint" &&
    typeof p.dst?.value === "bigint" &&
    typeof p.port === "number" &&
    typeof p.id === "string" &&
    typeof p.ns === "string"
  );
}

const ALWAYS: Pred<PreparedConnection> = () => true;
const NEVER: Pred<PreparedConnection> = () => false;

function isStringMatch(m: unknown): m is ZtunnelStringMatch {
  if (!isRecord(m)) return false;
  const keys = Object.keys(m);
  if (keys.length !== 1) return false;
  const k = keys[0];
  if (k === "presence") return m.presence === true;
  return (k === "exact" || k === "prefix" || k === "suffix") && typeof m[k] === "string";
}

function strPred(m: ZtunnelStringMatch): Pred<string> {
  if ("exact" in m) return (s) => s === m.exact;
  if ("prefix" in m) return (s) => s.startsWith(m.prefix);
  if ("suffix" in m) return (s) => s.endsWith(m.suffix);
  return (s) => s !== "";
}

/**
 * Compiles one match of an ALLOW or DENY Authorization. A value the matcher cannot use (a CIDR
 * that does not parse, a port outside 0-65535, a malformed string match) is read the way that
 * denies: in a DENY's positive list and an ALLOW's negative list it matches every connection, in
 * the other two it matches none. Real ztunnel drops such values (`filter_map(.. .ok())`), which
 * can widen an ALLOW or empty a DENY. An IPv4-mapped prefix (`::ffff:10.0.0.0/104`) is read the
 * same way: where matching more denies, it also covers the IPv4 addresses it maps.
 */
function compileMatch(m: ZtunnelMatch, deny: boolean): CompiledMatch {
  const tests: Pred<PreparedConnection>[] = [];
  const add = (
    pos: readonly unknown[] | undefined,
    neg: readonly unknown[] | undefined,
    make: (v: unknown, broad: boolean) => Pred<PreparedConnection>,
  ): void => {
    // Array.from, not map: a hole is an unusable value too, not a value to skip.
    const p = Array.from(pos ?? [], (v) => make(v, deny));
    const n = Array.from(neg ?? [], (v) => make(v, !deny));
    if (p.length === 0 && n.length === 0) return;
    tests.push((c) => (p.length === 0 || p.some((t) => t(c))) && !n.some((t) => t(c)));
  };
  const ip =
    (get: (c: PreparedConnection) => IpAddress) =>
    (v: unknown, broad: boolean): Pred<PreparedConnection> => {
      const p = typeof v === "string" ? parsePrefix(v) : undefined;
      if (!p) return broad ? ALWAYS : NEVER;
      const alt = broad ? ipv4Equivalent(p) : undefined;
      if (alt) return (c) => contains(p, get(c)) || contains(alt, get(c));
      return (c) => contains(p, get(c));
    };
  add(
    m.destinationIps,
    m.notDestinationIps,
    ip((c) => c.dst),
  );
  add(
    m.sourceIps,
    m.notSourceIps,
    ip((c) => c.src),
  );
  add(m.destinationPorts, m.notDestinationPorts, (v, broad) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 65535)
      return broad ? ALWAYS : NEVER;
    return (c) => c.port === v;
  });
  add(m.serviceAccounts, m.notServiceAccounts, (v, broad) => {
    if (!isRecord(v) || typeof v.namespace !== "string" || typeof v.serviceAccount !== "string")
      return broad ? ALWAYS : NEVER;
    const { namespace, serviceAccount } = v;
    return (c) =>
      c.sa ? c.sa.namespace === namespace && c.sa.serviceAccount === serviceAccount : false;
  });
  const str =
    (get: (c: PreparedConnection) => string | undefined) =>
    (v: unknown, broad: boolean): Pred<PreparedConnection> => {
      if (!isStringMatch(v)) return broad ? ALWAYS : NEVER;
      const p = strPred(v);
      return (c) => {
        const s = get(c);
        return s !== undefined && p(s);
      };
    };
  add(
    m.principals,
    m.notPrincipals,
    str((c) => (c.id.startsWith("spiffe://") ? c.id.slice(9) : undefined)),
  );
  add(
    m.namespaces,
    m.notNamespaces,
    str((c) => c.ns),
  );
  return { empty: tests.length === 0, test: (c) => tests.every((t) => t(c)) };
}

/** A ztunnel Authorization compiled for fast matching. */
export interface CompiledZtunnelAuthorization {
  readonly authorization: ZtunnelAuthorization;
  /** Index of the first matching rule, or -1. Takes a prepared or a plain ZtunnelConnection. */
  firstMatch(conn: PreparedConnection | ZtunnelConnection): number;
}

const compiledAuthorizations = new WeakSet<object>();

/**
 * Compiles a ztunnel Authorization (parse CIDRs once). AuthzError (ERR_AUTHZ_INVALID_RESOURCE) if
 * it does not have the Authorization structure; unusable values inside fail closed.
 */
export function compileZtunnelAuthorization(a: ZtunnelAuthorization): CompiledZtunnelAuthorization {
  assertZtunnelAuthorization(a);
  return compileChecked(a);
}

/** `compileZtunnelAuthorization` for an Authorization this package built. */
export function compileChecked(a: ZtunnelAuthorization): CompiledZtunnelAuthorization {
  const deny = a.action === "Deny";
  const rules = a.rules.map((clauses) =>
    clauses.map((clause) => clause.map((m) => compileMatch(m, deny))),
  );
  const compiled: CompiledZtunnelAuthorization = {
    authorization: a,
    firstMatch(input) {
      // A public method: anything but a prepared connection is checked (and prepared) first.
      const conn = isPreparedShape(input)
        ? input
        : prepareZtunnelConnection(input as unknown as ZtunnelConnection);
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
  compiledAuthorizations.add(compiled);
  return compiled;
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
 * AuthzError if a policy or the connection is not of the documented shape.
 */
export function evaluateZtunnelAuthorizations(
  policies: readonly (ZtunnelAuthorization | CompiledZtunnelAuthorization)[],
  conn: ZtunnelConnection | PreparedConnection,
): ZtunnelRbacResult {
  const c = preparedConnections.has(conn as object)
    ? (conn as PreparedConnection)
    : prepareZtunnelConnection(conn as ZtunnelConnection);
  if (!Array.isArray(policies))
    throw new AuthzError("ERR_AUTHZ_INVALID_INPUT", "policies must be a list of Authorizations");
  const compiled = policies.map((p: unknown, i) => {
    if (compiledAuthorizations.has(p as object)) return p as CompiledZtunnelAuthorization;
    assertZtunnelAuthorization(p, [i]);
    return compileChecked(p as ZtunnelAuthorization);
  });
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
  assertPeerAuthentications(peerAuthentications);
  new Guard("ERR_AUTHZ_INVALID_INPUT", "argument").string(rootNamespace, ["rootNamespace"]);
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
  assertZtunnelAuthorization(a);
  const sm = (m: ZtunnelStringMatch): Record<string, unknown> => {
    // Printing a malformed matcher would hand ztunnel something it silently drops.
    if (!isStringMatch(m))
      throw new AuthzError(
        "ERR_AUTHZ_INVALID_RESOURCE",
        `invalid ztunnel Authorization ${String(a.namespace)}/${String(a.name)}: ${show(m)} is not a StringMatch`,
      );
    return "exact" in m
      ? { Exact: m.exact }
      : "prefix" in m
        ? { Prefix: m.prefix }
        : "suffix" in m
          ? { Suffix: m.suffix }
          : { Presence: [] };
  };
  const match = (m: ZtunnelMatch): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(m) as [string, readonly unknown[] | undefined][]) {
      if (v === undefined || v.length === 0) continue;
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
