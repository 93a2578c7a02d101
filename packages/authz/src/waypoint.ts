/**
 * Waypoint (Envoy RBAC) semantics: how istiod's authz model/generators turn an AuthorizationPolicy
 * into Envoy RBAC principals/permissions (pilot/pkg/security/authz/{model,matcher}), evaluated
 * directly. HTTP services get the HTTP RBAC filter; other services the network RBAC filter, where
 * HTTP-only attributes drop ALLOW rules and are ignored (treated as absent) in DENY/AUDIT/CUSTOM.
 */
import { own } from "./guards.js";
import { contains, type IpAddress, ipv4Equivalent, parsePrefix } from "./ip.js";
import { compilePathTemplate, isPathTemplate } from "./path.js";
import type {
  AuthorizationPolicy,
  Condition,
  IgnoredAttribute,
  JwtClaims,
  Operation,
  PolicyAction,
  Rule,
  Source,
} from "./types.js";
import { parsePortString, type UnparsableValue } from "./ztunnel.js";

/** Attributes of one request/connection at a waypoint, pre-computed once per decision. */
export interface EnvoyContext {
  /** Peer principal URI (`spiffe://...`), or null. */
  principal: string | null;
  /** Canonical addresses (IPv4-mapped IPv6 folded to IPv4). */
  sourceIp: IpAddress;
  /** undefined: the last X-Forwarded-For hop is not an address (matched the way that denies). */
  remoteIp: IpAddress | undefined;
  destinationIp: IpAddress;
  destinationPort: number;
  sni: string | undefined;
  http: {
    host: string;
    method: string;
    /** Normalised path without query. */
    path: string;
    headers: Map<string, string>;
    jwt: JwtClaims | null;
    filterMetadata: Record<string, Record<string, unknown>>;
  } | null;
}

type Test = (c: EnvoyContext) => boolean;

/** Trust domain bundle: mesh trust domain first, then aliases (istio `trustdomain.Bundle`). */
export class TrustDomainBundle {
  readonly trustDomains: readonly string[];
  constructor(trustDomain: string, aliases: readonly string[]) {
    this.trustDomains = [trustDomain, ...aliases];
  }
  /** `ReplaceTrustDomainAliases`: rewrite 5-segment principals naming a known TD or `cluster.local`. */
  replaceAliases(principals: readonly string[]): string[] {
    const out: string[] = [];
    for (const p of principals) {
      const parts = p.split("/");
      if (parts.length !== 5 || parts[0] === "*") {
        out.push(p);
        continue;
      }
      const td = parts[0] ?? "";
      if (tdListMatch(td, this.trustDomains) || td === "cluster.local") {
        const forAliases: string[] = [];
        for (const t of this.trustDomains) {
          const np = suffixMatch(t, td) ? p : `${t}/${parts.slice(1).join("/")}`;
          if (!forAliases.includes(np)) forAliases.push(np);
        }
        out.push(...forAliases);
      } else out.push(p);
    }
    return out;
  }
  /** `ExpandTrustDomainAliases` for trustDomains values. */
  expand(values: readonly string[]): string[] {
    const out: string[] = [];
    for (const v of values) {
      for (const x of this.trustDomains.includes(v) ? this.trustDomains : [v])
        if (!out.includes(x)) out.push(x);
    }
    return out;
  }
}

function prefixMatch(a: string, pattern: string): boolean {
  return pattern.endsWith("*") && a.startsWith(pattern.slice(0, -1));
}
function suffixMatch(a: string, pattern: string): boolean {
  return pattern.startsWith("*") && a.endsWith(pattern.slice(1));
}
function tdListMatch(a: string, list: readonly string[]): boolean {
  return list.some(
    (s) =>
      a === s ||
      s === "*" ||
      prefixMatch(a, s) ||
      prefixMatch(s, a) ||
      suffixMatch(a, s) ||
      suffixMatch(s, a),
  );
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** Istio `StringMatcherWithPrefix(v, prefix)`; `ignoreCase` for hosts. */
function stringTest(
  v: string,
  prefix = "",
  ignoreCase = false,
): (s: string | undefined) => boolean {
  const norm = (s: string) => (ignoreCase ? s.toLowerCase() : s);
  if (v === "*") return (s) => s !== undefined && s.length > 0;
  if (v.startsWith("*")) {
    const suf = norm(v.slice(1));
    if (prefix === "") return (s) => s !== undefined && norm(s).endsWith(suf);
    const min = prefix.length + suf.length;
    return (s) => s?.startsWith(prefix) === true && s.length >= min && norm(s).endsWith(suf);
  }
  if (v.endsWith("*")) {
    const pre = norm(prefix + v.slice(0, -1));
    return (s) => s !== undefined && norm(s).startsWith(pre);
  }
  const exact = norm(prefix + v);
  return (s) => s !== undefined && norm(s) === exact;
}

function anyOf<T>(values: readonly T[], make: (v: T) => Test): Test {
  const tests = values.map(make);
  return (c) => tests.some((t) => t(c));
}

const ALWAYS: Test = () => true;
const NEVER: Test = () => false;

/**
 * One CIDR value. `broad` says which reading denies: true in a DENY/AUDIT/CUSTOM positive list and
 * an ALLOW negative list. There an unparsable value or an unknown address matches, and an
 * IPv4-mapped prefix also covers the IPv4 addresses it maps; elsewhere they match nothing.
 */
function cidrTest(
  v: string,
  get: (c: EnvoyContext) => IpAddress | undefined,
  broad: boolean,
  env: Env,
  attribute: string,
): Test {
  const p = parsePrefix(v);
  if (!p) {
    env.bad.push({ attribute, value: v });
    return broad ? ALWAYS : NEVER;
  }
  const alt = broad ? ipv4Equivalent(p) : undefined;
  return (c) => {
    const ip = get(c);
    if (ip === undefined) return broad;
    return contains(p, ip) || (alt !== undefined && contains(alt, ip));
  };
}

function portTest(v: string, broad: boolean, env: Env, attribute: string): Test {
  const p = parsePortString(v);
  if (p === undefined) {
    env.bad.push({ attribute, value: v });
    return broad ? ALWAYS : NEVER;
  }
  return (c) => c.destinationPort === p;
}

function regexTest(re: RegExp, get: (c: EnvoyContext) => string | null | undefined): Test {
  return (c) => {
    const s = get(c);
    return typeof s === "string" && re.test(s);
  };
}

function namespaceTest(v: string): Test {
  const body = v.split("*").map(escapeRegex).join(".*");
  return regexTest(new RegExp(`^.*/ns/${body}/.*$`), (c) => c.principal);
}

function serviceAccountTest(v: string, policyNs: string): Test {
  const i = v.indexOf("/");
  const ns = i >= 0 ? v.slice(0, i) : policyNs;
  const sa = i >= 0 ? v.slice(i + 1) : v;
  return regexTest(
    new RegExp(`^spiffe://.+/ns/${escapeRegex(ns)}/(.+/|)sa/${escapeRegex(sa)}(/.+)?$`),
    (c) => c.principal,
  );
}

function trustDomainTest(v: string): Test {
  if (v === "*") return (c) => c.principal?.startsWith("spiffe://") === true;
  if (v.startsWith("*") || v.endsWith("*")) {
    const pre = v.endsWith("*") ? v.slice(0, -1) : "";
    const suf = v.startsWith("*") ? v.slice(1) : "";
    return regexTest(
      new RegExp(`^spiffe://${escapeRegex(pre)}[^/]*${escapeRegex(suf)}/.*$`),
      (c) => c.principal,
    );
  }
  return (c) => c.principal?.startsWith(`spiffe://${v}/`) === true;
}

function principalTest(v: string): Test {
  const t = stringTest(v, "spiffe://");
  return (c) => c.principal !== null && t(c.principal);
}

/**
 * JWT request principal (istiod `requestPrincipalGenerator`): the value is split at its LAST `/` into
 * issuer and subject (issuers are URLs), each matched against the `iss` / `sub` claims.
 */
function requestPrincipalTest(v: string): Test {
  type M = (s: string | undefined) => boolean;
  const any: M = (s) => s !== undefined && s.length > 0;
  const exact =
    (x: string): M =>
    (s) =>
      s === x;
  const idx = v.lastIndexOf("/");
  const found = idx >= 0;
  const iss = found ? v.slice(0, idx) : v;
  const sub = found ? v.slice(idx + 1) : "";
  let mi: M;
  let ms: M;
  if (v === "*") {
    mi = any;
    ms = any;
  } else if (v.startsWith("*")) {
    if (found) {
      const suf = iss.slice(1);
      mi = iss === "*" ? any : (s) => s?.endsWith(suf) === true;
      ms = exact(sub);
    } else {
      const suf = v.slice(1);
      mi = any;
      ms = (s) => s?.endsWith(suf) === true;
    }
  } else if (v.endsWith("*")) {
    if (found) {
      const pre = sub.slice(0, -1);
      mi = exact(iss);
      ms = sub === "*" ? any : (s) => s?.startsWith(pre) === true;
    } else {
      const pre = v.slice(0, -1);
      mi = (s) => s?.startsWith(pre) === true;
      ms = any;
    }
  } else {
    mi = exact(iss);
    ms = exact(sub);
  }
  return (c) => {
    const jwt = c.http?.jwt ?? null;
    return mi(claimString(jwt, "iss")) && ms(claimString(jwt, "sub"));
  };
}

function claimString(jwt: JwtClaims | null, name: string): string | undefined {
  const v = own(jwt, name);
  return typeof v === "string" ? v : undefined;
}

function claimValue(jwt: JwtClaims | null, path: readonly string[]): unknown {
  let cur: unknown = jwt;
  for (const p of path) {
    if (typeof cur !== "object" || cur === null || Array.isArray(cur)) return undefined;
    // Own keys only: a claim named `constructor` must not find Object.prototype's.
    cur = own(cur, p);
  }
  return cur;
}

function claimTest(path: readonly string[], v: string): Test {
  const t = stringTest(v);
  return (c) => {
    const val = claimValue(c.http?.jwt ?? null, path);
    if (typeof val === "string") return t(val);
    if (Array.isArray(val)) return val.some((x) => typeof x === "string" && t(x));
    return false;
  };
}

function headerTest(name: string, v: string): Test {
  const lname = name.toLowerCase();
  if (v === "*") return (c) => c.http?.headers.has(lname) ?? false;
  const t = stringTest(v);
  return (c) => {
    const h = c.http?.headers.get(lname);
    return h !== undefined && t(h);
  };
}

function pathTest(v: string): Test {
  if (isPathTemplate(v)) return regexTest(compilePathTemplate(v), (c) => c.http?.path);
  const t = v === "*" ? (s: string | undefined) => s !== undefined && s.length > 0 : stringTest(v);
  return (c) => c.http !== null && t(c.http.path);
}

function metadataTest(key: string, v: string): Test {
  // experimental.envoy.filters.<filter>[<key>]
  const m = /^experimental\.envoy\.filters\.(.+)\[(.+)\]$/.exec(key);
  const filter = m?.[1] ?? "";
  const k = m?.[2] ?? "";
  if (v.startsWith("[") && v.endsWith("]")) {
    const t = stringTest(v.slice(1, -1));
    return (c) => {
      const val = own(own(c.http?.filterMetadata, filter) as object | undefined, k);
      return Array.isArray(val) && val.some((x) => typeof x === "string" && t(x));
    };
  }
  const t = stringTest(v);
  return (c) => {
    const val = own(own(c.http?.filterMetadata, filter) as object | undefined, k);
    return typeof val === "string" && t(val);
  };
}

/** Splits `a[b][c]` map keys into ["b", "c"]. */
function mapKeys(key: string, prefix: string): string[] {
  const rest = key.slice(prefix.length);
  const out: string[] = [];
  const re = /\[([^\]]*)\]/g;
  let m: RegExpExecArray | null = re.exec(rest);
  while (m) {
    out.push(m[1] ?? "");
    m = re.exec(rest);
  }
  return out;
}

/** Whether a `when` key needs HTTP (fails on the TCP chain). */
export function isHttpOnlyWhenKey(key: string): boolean {
  return key.startsWith("request.headers") || key.startsWith("request.auth.");
}

interface Env {
  td: TrustDomainBundle;
  policyNs: string;
  /** Unparsable values met while compiling the current rule. */
  bad: UnparsableValue[];
}

const WHEN_KEYS: ReadonlySet<string> = new Set([
  "source.ip",
  "remote.ip",
  "destination.ip",
  "destination.port",
  "source.namespace",
  "source.principal",
  "source.serviceAccount",
  "source.trustDomain",
  "request.auth.principal",
  "request.auth.audiences",
  "request.auth.presenter",
  "connection.sni",
]);

/** Whether istiod's `model.New` knows a `when` key (an unknown one makes it skip the rule). */
function knownWhenKey(key: string): boolean {
  return (
    WHEN_KEYS.has(key) ||
    key.startsWith("request.headers[") ||
    key.startsWith("request.auth.claims[") ||
    key.startsWith("experimental.envoy.filters.")
  );
}

function whenValueTest(key: string, v: string, env: Env, broad: boolean, attr: string): Test {
  switch (key) {
    case "source.ip":
      return cidrTest(v, (c) => c.sourceIp, broad, env, attr);
    case "remote.ip":
      return cidrTest(v, (c) => c.remoteIp, broad, env, attr);
    case "destination.ip":
      return cidrTest(v, (c) => c.destinationIp, broad, env, attr);
    case "destination.port":
      return portTest(v, broad, env, attr);
    case "source.namespace":
      return namespaceTest(v);
    case "source.principal":
      return anyOf(env.td.replaceAliases([v]), principalTest);
    case "source.serviceAccount":
      return serviceAccountTest(v, env.policyNs);
    case "source.trustDomain":
      return anyOf(env.td.expand([v]), trustDomainTest);
    case "request.auth.principal":
      return requestPrincipalTest(v);
    case "request.auth.audiences":
      return claimTest(["aud"], v);
    case "request.auth.presenter":
      return claimTest(["azp"], v);
    case "connection.sni": {
      const t = stringTest(v);
      return (c) => t(c.sni);
    }
  }
  if (key.startsWith("request.headers["))
    return headerTest(mapKeys(key, "request.headers").join(""), v);
  if (key.startsWith("request.auth.claims["))
    return claimTest(mapKeys(key, "request.auth.claims"), v);
  return metadataTest(key, v);
}

/** A compiled rule: its index in `spec.rules` and its test. */
export interface EnvoyRule {
  index: number;
  test: Test;
}

/** Result of compiling a policy for one filter chain. */
export interface EnvoyCompiled {
  rules: EnvoyRule[];
  ignored: IgnoredAttribute[];
  /** Unparsable values by rule (ALLOW rules holding one are not in `rules`). */
  unparsable?: (UnparsableValue & { rule: number })[];
}

const HTTP_OPERATION_FIELDS = [
  "hosts",
  "notHosts",
  "methods",
  "notMethods",
  "paths",
  "notPaths",
] as const;

type FieldSpec<T> = {
  pos: keyof T;
  neg: keyof T;
  make: (v: string, env: Env, broad: boolean, attribute: string) => Test;
  http?: boolean;
};

const SOURCE_SPECS: FieldSpec<Source>[] = [
  { pos: "principals", neg: "notPrincipals", make: principalTest },
  { pos: "requestPrincipals", neg: "notRequestPrincipals", make: requestPrincipalTest, http: true },
  { pos: "namespaces", neg: "notNamespaces", make: namespaceTest },
  {
    pos: "serviceAccounts",
    neg: "notServiceAccounts",
    make: (v, env) => serviceAccountTest(v, env.policyNs),
  },
  {
    pos: "ipBlocks",
    neg: "notIpBlocks",
    make: (v, env, broad, attr) => cidrTest(v, (c) => c.sourceIp, broad, env, attr),
  },
  {
    pos: "remoteIpBlocks",
    neg: "notRemoteIpBlocks",
    make: (v, env, broad, attr) => cidrTest(v, (c) => c.remoteIp, broad, env, attr),
  },
  { pos: "trustDomains", neg: "notTrustDomains", make: trustDomainTest },
];

const OPERATION_SPECS: FieldSpec<Operation>[] = [
  {
    pos: "hosts",
    neg: "notHosts",
    make: (v) => {
      const t = v === "*" ? (s: string | undefined) => s !== undefined : stringTest(v, "", true);
      return (c) => c.http !== null && t(c.http.host);
    },
    http: true,
  },
  {
    pos: "ports",
    neg: "notPorts",
    make: (v, env, broad, attr) => portTest(v, broad, env, attr),
  },
  {
    pos: "methods",
    neg: "notMethods",
    make: (v) => {
      const t = stringTest(v);
      return (c) => c.http !== null && t(c.http.method);
    },
    http: true,
  },
  { pos: "paths", neg: "notPaths", make: pathTest, http: true },
];

function posNeg(pos: Test | undefined, neg: Test | undefined): Test | undefined {
  if (pos && neg) return (c) => pos(c) && !neg(c);
  if (pos) return pos;
  if (neg) return (c) => !neg(c);
  return undefined;
}

function allOf(tests: Test[]): Test {
  if (tests.length === 0) return () => true;
  if (tests.length === 1) return tests[0] as Test;
  return (c) => tests.every((t) => t(c));
}

function expandValues(field: string, values: readonly string[], env: Env): string[] {
  if (field === "principals" || field === "notPrincipals") return env.td.replaceAliases(values);
  if (field === "trustDomains" || field === "notTrustDomains") return env.td.expand(values);
  return [...values];
}

/**
 * Compiles an AuthorizationPolicy's rules for a waypoint filter chain (`tcp` = network RBAC
 * filter). Returns the rules that exist in Envoy config and what was ignored on TCP.
 */
export function compileEnvoyRules(
  policy: AuthorizationPolicy,
  td: TrustDomainBundle,
  tcp: boolean,
): EnvoyCompiled {
  const key = `${policy.namespace}/${policy.name}`;
  const env: Env = { td, policyNs: policy.namespace, bad: [] };
  const action: PolicyAction = policy.spec.action;
  // Which reading of an unusable value denies: matching, in a DENY-like positive list.
  const allow = action === "ALLOW";
  const ignored: IgnoredAttribute[] = [];
  const rules: EnvoyRule[] = [];
  const unparsable: (UnparsableValue & { rule: number })[] = [];
  (policy.spec.rules ?? []).forEach((rule: Rule | null, index) => {
    if (rule === null) return;
    env.bad = [];
    const httpOnly: string[] = [];
    const group = <T>(obj: T, specs: FieldSpec<T>[], where: string): Test => {
      const tests: Test[] = [];
      for (const s of specs) {
        const pv = (obj[s.pos] as string[] | undefined) ?? [];
        const nv = (obj[s.neg] as string[] | undefined) ?? [];
        if (pv.length === 0 && nv.length === 0) continue;
        if (tcp && s.http) {
          if (pv.length > 0) httpOnly.push(`${where}.${String(s.pos)}`);
          if (nv.length > 0) httpOnly.push(`${where}.${String(s.neg)}`);
          continue;
        }
        const pa = `${where}.${String(s.pos)}`;
        const na = `${where}.${String(s.neg)}`;
        const pos =
          pv.length > 0
            ? anyOf(expandValues(String(s.pos), pv, env), (v) => s.make(v, env, !allow, pa))
            : undefined;
        const neg =
          nv.length > 0
            ? anyOf(expandValues(String(s.neg), nv, env), (v) => s.make(v, env, allow, na))
            : undefined;
        const t = posNeg(pos, neg);
        if (t) tests.push(t);
      }
      return allOf(tests);
    };
    const parts: Test[] = [];
    if (rule.from && rule.from.length > 0) {
      const alts = rule.from.map((f) => group(f.source ?? {}, SOURCE_SPECS, "from.source"));
      parts.push((c) => alts.some((t) => t(c)));
    }
    if (rule.to && rule.to.length > 0) {
      const alts = rule.to.map((t) => group(t.operation ?? {}, OPERATION_SPECS, "to.operation"));
      parts.push((c) => alts.some((t) => t(c)));
    }
    for (const w of rule.when ?? []) {
      const cond: Condition = w;
      if (tcp && isHttpOnlyWhenKey(cond.key)) {
        httpOnly.push(`when.${cond.key}`);
        continue;
      }
      if (!knownWhenKey(cond.key)) {
        // model.New fails on an unknown key: the rule is skipped for every action.
        ignored.push({
          policy: key,
          rule: index,
          attribute: `when.${cond.key}`,
          reason: "unknown condition key: istiod cannot generate this rule, so Envoy never has it",
        });
        return;
      }
      const expand = (vals: readonly string[]) =>
        cond.key === "source.principal"
          ? td.replaceAliases(vals)
          : cond.key === "source.trustDomain"
            ? td.expand(vals)
            : [...vals];
      const pv = cond.values ?? [];
      const nv = cond.notValues ?? [];
      const direct = (v: string, broad: boolean, attr: string): Test =>
        cond.key === "source.principal"
          ? principalTest(v)
          : cond.key === "source.trustDomain"
            ? trustDomainTest(v)
            : whenValueTest(cond.key, v, env, broad, attr);
      const pa = `when.${cond.key}.values`;
      const na = `when.${cond.key}.notValues`;
      const pos = pv.length > 0 ? anyOf(expand(pv), (v) => direct(v, !allow, pa)) : undefined;
      const neg = nv.length > 0 ? anyOf(expand(nv), (v) => direct(v, allow, na)) : undefined;
      const t = posNeg(pos, neg);
      if (t) parts.push(t);
    }
    for (const b of env.bad) {
      unparsable.push({ rule: index, ...b });
      ignored.push({
        policy: key,
        rule: index,
        attribute: b.attribute,
        reason: allow
          ? `unparsable value ${JSON.stringify(b.value)}: istiod cannot generate this ALLOW rule, so Envoy never has it (it can never match)`
          : `unparsable value ${JSON.stringify(b.value)}: read as matching every request in this ${action} rule (fail closed; istiod's generator ignores the value)`,
      });
    }
    if (allow && env.bad.length > 0) return;
    const uniq = [...new Set(httpOnly)];
    if (uniq.length > 0) {
      if (action === "ALLOW") {
        for (const a of uniq)
          ignored.push({
            policy: key,
            rule: index,
            attribute: a,
            reason:
              "HTTP-only attribute on a TCP service: Envoy's network RBAC filter cannot evaluate it, so istiod drops the whole ALLOW rule",
          });
        return;
      }
      for (const a of uniq)
        ignored.push({
          policy: key,
          rule: index,
          attribute: a,
          reason: `HTTP-only attribute on a TCP service: ignored in the ${action} rule (treated as matching), so the rule applies more broadly`,
        });
    }
    rules.push({ index, test: allOf(parts) });
  });
  const out: EnvoyCompiled = { rules, ignored };
  if (unparsable.length > 0) out.unparsable = unparsable;
  return out;
}

export { HTTP_OPERATION_FIELDS };
