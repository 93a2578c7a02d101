/**
 * Waypoint (Envoy RBAC) semantics: how istiod's authz model/generators turn an AuthorizationPolicy
 * into Envoy RBAC principals/permissions (pilot/pkg/security/authz/{model,matcher}), evaluated
 * directly. HTTP services get the HTTP RBAC filter; other services the network RBAC filter, where
 * HTTP-only attributes drop ALLOW rules and are ignored (treated as absent) in DENY/AUDIT/CUSTOM.
 */
import { type IpAddress, type IpPrefix, parsePrefix, prefixContains } from "./ip.js";
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
import { parsePortString } from "./ztunnel.js";

/** Attributes of one request/connection at a waypoint, pre-computed once per decision. */
export interface EnvoyContext {
  /** Peer principal URI (`spiffe://...`), or null. */
  principal: string | null;
  sourceIp: IpAddress | undefined;
  remoteIp: IpAddress | undefined;
  destinationIp: IpAddress | undefined;
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

function cidrTest(
  values: readonly string[],
  get: (c: EnvoyContext) => IpAddress | undefined,
): Test {
  const prefixes = values.map(parsePrefix).filter((p): p is IpPrefix => p !== undefined);
  return (c) => {
    const ip = get(c);
    return ip !== undefined && prefixes.some((p) => prefixContains(p, ip));
  };
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
  const v = jwt?.[name];
  return typeof v === "string" ? v : undefined;
}

function claimValue(jwt: JwtClaims | null, path: readonly string[]): unknown {
  let cur: unknown = jwt;
  for (const p of path) {
    if (typeof cur !== "object" || cur === null || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[p];
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
      const val = c.http?.filterMetadata[filter]?.[k];
      return Array.isArray(val) && val.some((x) => typeof x === "string" && t(x));
    };
  }
  const t = stringTest(v);
  return (c) => {
    const val = c.http?.filterMetadata[filter]?.[k];
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
}

function whenValueTest(key: string, v: string, env: Env): Test | undefined {
  switch (key) {
    case "source.ip":
      return cidrTest([v], (c) => c.sourceIp);
    case "remote.ip":
      return cidrTest([v], (c) => c.remoteIp);
    case "destination.ip":
      return cidrTest([v], (c) => c.destinationIp);
    case "destination.port": {
      const p = parsePortString(v);
      return (c) => p !== undefined && c.destinationPort === p;
    }
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
  if (key.startsWith("experimental.envoy.filters.")) return metadataTest(key, v);
  return undefined;
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
  make: (v: string, env: Env) => Test;
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
  { pos: "ipBlocks", neg: "notIpBlocks", make: (v) => cidrTest([v], (c) => c.sourceIp) },
  {
    pos: "remoteIpBlocks",
    neg: "notRemoteIpBlocks",
    make: (v) => cidrTest([v], (c) => c.remoteIp),
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
    make: (v) => {
      const p = parsePortString(v);
      return (c) => p !== undefined && c.destinationPort === p;
    },
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
  const env: Env = { td, policyNs: policy.namespace };
  const action: PolicyAction = policy.spec.action;
  const ignored: IgnoredAttribute[] = [];
  const rules: EnvoyRule[] = [];
  (policy.spec.rules ?? []).forEach((rule: Rule | null, index) => {
    if (rule === null) return;
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
        const pos =
          pv.length > 0
            ? anyOf(expandValues(String(s.pos), pv, env), (v) => s.make(v, env))
            : undefined;
        const neg =
          nv.length > 0
            ? anyOf(expandValues(String(s.neg), nv, env), (v) => s.make(v, env))
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
      const mk = (v: string) => whenValueTest(cond.key, v, env);
      const known = mk("x") !== undefined;
      if (!known) {
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
      const direct = (v: string): Test =>
        cond.key === "source.principal"
          ? principalTest(v)
          : cond.key === "source.trustDomain"
            ? trustDomainTest(v)
            : (whenValueTest(cond.key, v, env) as Test);
      const pos = pv.length > 0 ? anyOf(expand(pv), direct) : undefined;
      const neg = nv.length > 0 ? anyOf(expand(nv), direct) : undefined;
      const t = posNeg(pos, neg);
      if (t) parts.push(t);
    }
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
  return { rules, ignored };
}

export { HTTP_OPERATION_FIELDS };
