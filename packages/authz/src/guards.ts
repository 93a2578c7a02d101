/**
 * Shape checks for every public entry point. Callers may hand in anything (JSON.parse output, a
 * hand-built object, a JS caller without types); what is not the documented shape becomes an
 * AuthzError with a code and a path, never an untyped TypeError from deep inside a matcher.
 */
import { AuthzError, type AuthzErrorCode } from "./errors.js";
import { OPERATION_FIELDS, SOURCE_FIELDS } from "./fields.js";
import { canonicalIp, type IpAddress, parseIp } from "./ip.js";

type Path = readonly (string | number)[];

/** An object usable as a string-keyed map (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Own-property read: user-keyed maps must never see Object.prototype (`constructor`, `__proto__`). */
export function own(o: object | null | undefined, key: string): unknown {
  return o !== null && o !== undefined && Object.hasOwn(o, key)
    ? (o as Record<string, unknown>)[key]
    : undefined;
}

/** A copy of a string map with no prototype, so any key (`__proto__` included) is plain data. */
export function nullProtoCopy<V>(o: Readonly<Record<string, V>>): Record<string, V> {
  const out = Object.create(null) as Record<string, V>;
  for (const [k, v] of Object.entries(o)) out[k] = v;
  return out;
}

/** A value for an error message; never throws (BigInt, cycles, null-prototype objects). */
export function show(v: unknown): string {
  try {
    const s = JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? `${x}n` : x));
    if (s !== undefined) return s;
  } catch {
    // fall through: a cycle or a throwing toJSON
  }
  return typeof v === "object" && v !== null ? Object.prototype.toString.call(v) : String(v);
}

/** Every index of a list, holes included (`forEach` would skip a hole the caller then reads). */
function each(l: readonly unknown[], f: (v: unknown, i: number) => void): void {
  for (let i = 0; i < l.length; i++) f(l[i], i);
}

function where(path: Path): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s === "" ? p : `.${p}`;
  return s === "" ? "the value" : s;
}

/** Collects the first problem and throws it as an AuthzError. */
export class Guard {
  readonly code: AuthzErrorCode;
  readonly subject: string;
  constructor(code: AuthzErrorCode, subject: string) {
    this.code = code;
    this.subject = subject;
  }
  fail(path: Path, message: string): never {
    throw new AuthzError(this.code, `invalid ${this.subject}: ${where(path)} ${message}`);
  }
  record(v: unknown, path: Path): Record<string, unknown> {
    if (!isRecord(v)) this.fail(path, "must be an object");
    return v;
  }
  string(v: unknown, path: Path): string {
    if (typeof v !== "string") this.fail(path, "must be a string");
    return v;
  }
  optString(v: unknown, path: Path): void {
    if (v !== undefined) this.string(v, path);
  }
  optBoolean(v: unknown, path: Path): void {
    if (v !== undefined && typeof v !== "boolean") this.fail(path, "must be a boolean");
  }
  strings(v: unknown, path: Path): void {
    if (v === undefined) return;
    if (!Array.isArray(v)) this.fail(path, "must be a list of strings");
    each(v, (s, i) => {
      this.string(s, [...path, i]);
    });
  }
  stringMap(v: unknown, path: Path): void {
    const o = this.record(v, path);
    for (const [k, s] of Object.entries(o)) this.string(s, [...path, k]);
  }
  list(v: unknown, path: Path): unknown[] {
    if (!Array.isArray(v)) this.fail(path, "must be a list");
    return v;
  }
  oneOf<T extends string>(v: unknown, values: readonly T[], path: Path): T {
    if (typeof v !== "string" || !(values as readonly string[]).includes(v))
      this.fail(path, `must be one of ${values.join(", ")}`);
    return v as T;
  }
  port(v: unknown, path: Path): number {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 65535)
      this.fail(path, "must be an integer 0-65535");
    return v;
  }
  /**
   * A socket address as an enforcement point sees it. Anything else is refused: an address that
   * parses differently here and in the proxy would let a DENY on a range be stepped around.
   */
  ip(v: unknown, path: Path): IpAddress {
    const s = this.string(v, path);
    const a = parseIp(s);
    if (!a) this.fail(path, `is not an IP address: ${JSON.stringify(s)}`);
    return canonicalIp(a);
  }
}

/** Throws ERR_AUTHZ_INVALID_INPUT unless `path` is a list of strings and numbers. */
export function checkPath(path: unknown): void {
  if (
    !Array.isArray(path) ||
    !Array.from(path).every((p) => typeof p === "string" || typeof p === "number")
  )
    throw new AuthzError(
      "ERR_AUTHZ_INVALID_INPUT",
      "path must be a list of keys (strings and numbers)",
    );
}

const ACTIONS = ["ALLOW", "DENY", "AUDIT", "CUSTOM"] as const;
const MODES = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"] as const;
function checkSelector(g: Guard, v: unknown, path: Path): void {
  if (v === undefined) return;
  const s = g.record(v, path);
  g.stringMap(s.matchLabels, [...path, "matchLabels"]);
}

function checkRule(g: Guard, v: unknown, path: Path): void {
  if (v === null) return;
  const r = g.record(v, path);
  if (r.from !== undefined)
    each(g.list(r.from, [...path, "from"]), (f, i) => {
      const p = [...path, "from", i];
      const e = g.record(f, p);
      if (e.source === undefined) return;
      const s = g.record(e.source, [...p, "source"]);
      for (const k of SOURCE_FIELDS) g.strings(s[k], [...p, "source", k]);
    });
  if (r.to !== undefined)
    each(g.list(r.to, [...path, "to"]), (t, i) => {
      const p = [...path, "to", i];
      const e = g.record(t, p);
      if (e.operation === undefined) return;
      const o = g.record(e.operation, [...p, "operation"]);
      for (const k of OPERATION_FIELDS) g.strings(o[k], [...p, "operation", k]);
    });
  if (r.when !== undefined)
    each(g.list(r.when, [...path, "when"]), (w, i) => {
      const p = [...path, "when", i];
      const c = g.record(w, p);
      g.string(c.key, [...p, "key"]);
      g.strings(c.values, [...p, "values"]);
      g.strings(c.notValues, [...p, "notValues"]);
    });
}

function checkTargetRef(g: Guard, v: unknown, path: Path): void {
  const r = g.record(v, path);
  g.string(r.kind, [...path, "kind"]);
  g.string(r.name, [...path, "name"]);
  g.optString(r.group, [...path, "group"]);
  g.optString(r.namespace, [...path, "namespace"]);
}

/** An AuthorizationPolicy or PeerAuthentication as `parsePolicyResource` returns them. */
export function checkPolicyResource(v: unknown, path: Path, g: Guard): void {
  const r = g.record(v, path);
  const kind = g.oneOf(r.kind, ["AuthorizationPolicy", "PeerAuthentication"], [...path, "kind"]);
  g.string(r.name, [...path, "name"]);
  g.string(r.namespace, [...path, "namespace"]);
  g.optString(r.creationTimestamp, [...path, "creationTimestamp"]);
  const spec = g.record(r.spec, [...path, "spec"]);
  const sp = [...path, "spec"];
  checkSelector(g, spec.selector, [...sp, "selector"]);
  if (kind === "PeerAuthentication") {
    if (spec.mtls !== undefined)
      g.oneOf(g.record(spec.mtls, [...sp, "mtls"]).mode, MODES, [...sp, "mtls", "mode"]);
    if (spec.portLevelMtls !== undefined)
      for (const [k, m] of Object.entries(g.record(spec.portLevelMtls, [...sp, "portLevelMtls"])))
        g.oneOf(g.record(m, [...sp, "portLevelMtls", k]).mode, MODES, [
          ...sp,
          "portLevelMtls",
          k,
          "mode",
        ]);
    return;
  }
  g.stringMap(r.annotations, [...path, "annotations"]);
  g.oneOf(spec.action, ACTIONS, [...sp, "action"]);
  if (spec.targetRef !== undefined) checkTargetRef(g, spec.targetRef, [...sp, "targetRef"]);
  if (spec.targetRefs !== undefined)
    each(g.list(spec.targetRefs, [...sp, "targetRefs"]), (t, i) => {
      checkTargetRef(g, t, [...sp, "targetRefs", i]);
    });
  if (spec.provider !== undefined)
    g.string(g.record(spec.provider, [...sp, "provider"]).name, [...sp, "provider", "name"]);
  if (spec.rules !== undefined)
    each(g.list(spec.rules, [...sp, "rules"]), (rule, i) => {
      checkRule(g, rule, [...sp, "rules", i]);
    });
}

/** Throws ERR_AUTHZ_INVALID_RESOURCE unless `v` is a parsed AuthorizationPolicy. */
export function assertAuthorizationPolicy(v: unknown): void {
  const g = new Guard(
    "ERR_AUTHZ_INVALID_RESOURCE",
    "policy (run the object through parsePolicyResource first)",
  );
  checkPolicyResource(v, [], g);
  if ((v as { kind: string }).kind !== "AuthorizationPolicy")
    g.fail(["kind"], "must be AuthorizationPolicy");
}

/** Throws ERR_AUTHZ_INVALID_RESOURCE unless every element is a parsed PeerAuthentication. */
export function assertPeerAuthentications(v: unknown): void {
  const g = new Guard(
    "ERR_AUTHZ_INVALID_RESOURCE",
    "PeerAuthentication list (run each object through parsePolicyResource first)",
  );
  each(g.list(v, []), (p, i) => {
    checkPolicyResource(p, [i], g);
    if ((p as { kind: string }).kind !== "PeerAuthentication")
      g.fail([i, "kind"], "must be PeerAuthentication");
  });
}

/** Throws ERR_AUTHZ_INVALID_INPUT unless `v` is MeshSettings. */
export function assertMesh(v: unknown): void {
  const g = new Guard("ERR_AUTHZ_INVALID_INPUT", "mesh settings");
  const m = g.record(v, []);
  g.string(m.rootNamespace, ["rootNamespace"]);
  g.string(m.trustDomain, ["trustDomain"]);
  g.strings(g.list(m.trustDomainAliases, ["trustDomainAliases"]), ["trustDomainAliases"]);
  if (m.pathNormalization !== undefined)
    g.oneOf(
      m.pathNormalization,
      ["BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES", "NONE"],
      ["pathNormalization"],
    );
  g.optBoolean(m.ambientEnableDryRun, ["ambientEnableDryRun"]);
  g.optBoolean(m.enableMultipleCustomAuthzProviders, ["enableMultipleCustomAuthzProviders"]);
  g.optBoolean(m.autoAllowWaypointPolicy, ["autoAllowWaypointPolicy"]);
}

/** The connection's addresses, canonical (IPv4-mapped IPv6 → IPv4, as ztunnel's `to_canonical`). */
export interface CheckedAddresses {
  sourceIp: IpAddress;
  destinationIp: IpAddress;
}

function isStringMap(v: unknown): boolean {
  if (!isRecord(v)) return false;
  for (const k in v) if (Object.hasOwn(v, k) && typeof v[k] !== "string") return false;
  return true;
}

function isOptString(v: unknown): boolean {
  return v === undefined || typeof v === "string";
}

function isPort(v: unknown): boolean {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 65535;
}

function address(v: unknown): IpAddress | undefined {
  if (typeof v !== "string") return undefined;
  const a = parseIp(v);
  return a ? canonicalIp(a) : undefined;
}

/**
 * The allocation-free accept path of `assertDecisionInput`: the addresses when `v` is a valid
 * input, else undefined (then the full check runs to say what is wrong). Never laxer than it.
 */
export function quickDecisionInput(v: unknown): CheckedAddresses | undefined {
  if (!isRecord(v)) return undefined;
  if (v.enforcement !== "ztunnel" && v.enforcement !== "waypoint") return undefined;
  const w = v.workload;
  if (!isRecord(w) || typeof w.namespace !== "string" || !isStringMap(w.labels)) return undefined;
  if (!isOptString(w.serviceAccount) || !isOptString(w.ip) || !isOptString(w.name))
    return undefined;
  const p = v.waypoint;
  if (p !== undefined) {
    if (!isRecord(p) || typeof p.name !== "string" || typeof p.namespace !== "string")
      return undefined;
    if (!isOptString(p.serviceAccount) || !isOptString(p.ip)) return undefined;
  }
  const s = v.service;
  if (s !== undefined) {
    if (!isRecord(s) || (s.kind !== "Service" && s.kind !== "ServiceEntry")) return undefined;
    if (typeof s.name !== "string" || typeof s.namespace !== "string") return undefined;
    if (typeof s.protocol !== "string" || !isOptString(s.vip)) return undefined;
    if (
      (s.port !== undefined && !isPort(s.port)) ||
      (s.targetPort !== undefined && !isPort(s.targetPort))
    )
      return undefined;
  }
  const c = v.connection;
  if (!isRecord(c) || (c.sourcePrincipal !== null && typeof c.sourcePrincipal !== "string"))
    return undefined;
  if (!isPort(c.destinationPort) || !isOptString(c.sni)) return undefined;
  const sourceIp = address(c.sourceIp);
  const destinationIp = address(c.destinationIp);
  if (!sourceIp || !destinationIp) return undefined;
  const r = v.request;
  if (r !== undefined && r !== null) {
    if (!isRecord(r) || typeof r.host !== "string" || typeof r.method !== "string")
      return undefined;
    if (typeof r.path !== "string" || !isRecord(r.headers)) return undefined;
    const h = r.headers;
    for (const k in h) {
      if (!Object.hasOwn(h, k)) continue;
      const x = h[k];
      if (typeof x === "string") continue;
      if (!Array.isArray(x)) return undefined;
      for (let i = 0; i < x.length; i++) if (typeof x[i] !== "string") return undefined;
    }
    if (r.jwt !== null && !isRecord(r.jwt)) return undefined;
    const m = r.filterMetadata;
    if (m !== undefined) {
      if (!isRecord(m)) return undefined;
      for (const k in m) if (Object.hasOwn(m, k) && !isRecord(m[k])) return undefined;
    }
  }
  const cp = v.customProviders;
  if (cp !== undefined && typeof cp !== "function") {
    if (!isRecord(cp)) return undefined;
    for (const k in cp)
      if (Object.hasOwn(cp, k) && cp[k] !== "allow" && cp[k] !== "deny") return undefined;
  }
  return { sourceIp, destinationIp };
}

/**
 * Throws ERR_AUTHZ_INVALID_INPUT unless `v` is a DecisionInput. Only types and socket addresses are
 * checked here; what a proxy would reject in an HTTP request is a deny (`implicit:invalid-request`).
 */
export function assertDecisionInput(v: unknown): CheckedAddresses {
  return quickDecisionInput(v) ?? fullDecisionInputCheck(v);
}

/** `assertDecisionInput` without the quick accept path: what it checks, with a path in the error. */
export function fullDecisionInputCheck(v: unknown): CheckedAddresses {
  const g = new Guard("ERR_AUTHZ_INVALID_INPUT", "decision input (see DecisionInput)");
  const i = g.record(v, []);
  g.oneOf(i.enforcement, ["ztunnel", "waypoint"], ["enforcement"]);
  const w = g.record(i.workload, ["workload"]);
  g.string(w.namespace, ["workload", "namespace"]);
  g.stringMap(w.labels, ["workload", "labels"]);
  g.optString(w.serviceAccount, ["workload", "serviceAccount"]);
  g.optString(w.ip, ["workload", "ip"]);
  g.optString(w.name, ["workload", "name"]);
  if (i.waypoint !== undefined) {
    const p = g.record(i.waypoint, ["waypoint"]);
    g.string(p.name, ["waypoint", "name"]);
    g.string(p.namespace, ["waypoint", "namespace"]);
    g.optString(p.serviceAccount, ["waypoint", "serviceAccount"]);
    g.optString(p.ip, ["waypoint", "ip"]);
  }
  if (i.service !== undefined) {
    const s = g.record(i.service, ["service"]);
    g.oneOf(s.kind, ["Service", "ServiceEntry"], ["service", "kind"]);
    g.string(s.name, ["service", "name"]);
    g.string(s.namespace, ["service", "namespace"]);
    g.string(s.protocol, ["service", "protocol"]);
    g.optString(s.vip, ["service", "vip"]);
    if (s.port !== undefined) g.port(s.port, ["service", "port"]);
    if (s.targetPort !== undefined) g.port(s.targetPort, ["service", "targetPort"]);
  }
  const c = g.record(i.connection, ["connection"]);
  if (c.sourcePrincipal !== null) g.string(c.sourcePrincipal, ["connection", "sourcePrincipal"]);
  const sourceIp = g.ip(c.sourceIp, ["connection", "sourceIp"]);
  const destinationIp = g.ip(c.destinationIp, ["connection", "destinationIp"]);
  g.port(c.destinationPort, ["connection", "destinationPort"]);
  g.optString(c.sni, ["connection", "sni"]);
  if (i.request !== undefined && i.request !== null) {
    const r = g.record(i.request, ["request"]);
    g.string(r.host, ["request", "host"]);
    g.string(r.method, ["request", "method"]);
    g.string(r.path, ["request", "path"]);
    for (const [k, h] of Object.entries(g.record(r.headers, ["request", "headers"]))) {
      if (Array.isArray(h)) g.strings(h, ["request", "headers", k]);
      else if (typeof h !== "string")
        g.fail(["request", "headers", k], "must be a string or a list of strings");
    }
    if (r.jwt !== null) g.record(r.jwt, ["request", "jwt"]);
    if (r.filterMetadata !== undefined)
      for (const [k, m] of Object.entries(
        g.record(r.filterMetadata, ["request", "filterMetadata"]),
      ))
        g.record(m, ["request", "filterMetadata", k]);
  }
  const cp = i.customProviders;
  if (cp !== undefined && typeof cp !== "function")
    for (const [k, a] of Object.entries(g.record(cp, ["customProviders"])))
      g.oneOf(a, ["allow", "deny"], ["customProviders", k]);
  return { sourceIp, destinationIp };
}

/** Throws ERR_AUTHZ_INVALID_INPUT unless `v` is a ZtunnelConnection; returns canonical addresses. */
export function assertZtunnelConnection(v: unknown): CheckedAddresses {
  const g = new Guard("ERR_AUTHZ_INVALID_INPUT", "ztunnel connection (see ZtunnelConnection)");
  const c = g.record(v, []);
  if (c.sourceIdentity !== null) g.string(c.sourceIdentity, ["sourceIdentity"]);
  const sourceIp = g.ip(c.sourceIp, ["sourceIp"]);
  const destinationIp = g.ip(c.destinationIp, ["destinationIp"]);
  g.port(c.destinationPort, ["destinationPort"]);
  return { sourceIp, destinationIp };
}

/**
 * Throws ERR_AUTHZ_INVALID_RESOURCE unless `v` has the ztunnel Authorization structure. Values
 * inside (CIDR strings, port numbers, string matches) are not judged here: the matcher reads an
 * unusable one the way that denies.
 */
export function assertZtunnelAuthorization(v: unknown, path: Path = []): void {
  const g = new Guard("ERR_AUTHZ_INVALID_RESOURCE", "ztunnel Authorization");
  const a = g.record(v, path);
  g.string(a.name, [...path, "name"]);
  g.string(a.namespace, [...path, "namespace"]);
  g.oneOf(a.action, ["Allow", "Deny"], [...path, "action"]);
  g.optBoolean(a.dryRun, [...path, "dryRun"]);
  each(g.list(a.rules, [...path, "rules"]), (rule, r) => {
    each(g.list(rule, [...path, "rules", r]), (clause, c) => {
      each(g.list(clause, [...path, "rules", r, c]), (m, i) => {
        const p = [...path, "rules", r, c, i];
        const match = g.record(m, p);
        for (const [k, l] of Object.entries(match)) if (l !== undefined) g.list(l, [...p, k]);
      });
    });
  });
}
