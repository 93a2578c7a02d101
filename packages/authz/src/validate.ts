/**
 * The checks Istio's validating webhook (and `istioctl validate`) runs for the security kinds —
 * AuthorizationPolicy, PeerAuthentication, RequestAuthentication — with Istio's wording
 * (istio/istio pkg/config/validation/validation.go, pkg/config/security/security.go), plus the
 * AuthorizationPolicy CRD's size limits. The one implementation: @ambientkit/crds' validator calls
 * {@link checkSecurityResource} for these kinds. Errors are IST0106, warnings IST0133. Issues are values.
 */
import type { Issue, Result } from "@ambientkit/xds-types";
import { parseCidr, parseIp } from "@ambientkit/xds-types/ip";
import { AuthzError } from "./errors.js";
import { OPERATION_FIELDS, SOURCE_FIELDS } from "./fields.js";
import { assertAuthorizationPolicy } from "./guards.js";
import { formatIssuePath } from "./parse.js";
import type { AuthorizationPolicy } from "./types.js";

/** Istio's analyzer codes for webhook results: IST0106 an error, IST0133 a warning. */
export type SecurityIssueCode = "IST0106" | "IST0133";

/** A path as segments: field names and list indexes. */
export type IssueSegments = readonly (string | number)[];

/**
 * Receives every issue {@link checkSecurityResource} finds, with its path also as segments (for
 * callers that locate issues in source text: keys may contain dots, so the string path is lossy).
 */
export type SecurityIssueSink = (issue: Issue<SecurityIssueCode>, segments: IssueSegments) => void;

/** Options of the security checks. */
export interface SecurityCheckOptions {
  /** meshConfig.rootNamespace: enables the GatewayClass-targetRef-in-root-namespace check. */
  rootNamespace?: string;
}

type Obj = Record<string, unknown>;
type Segs = (string | number)[];

function obj(v: unknown): Obj | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}
function list(v: unknown): unknown[] | undefined {
  return Array.isArray(v) ? v : undefined;
}
function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}
/** Text of a scalar for a message; never throws (a value may be any data, even without a prototype). */
function text(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return `${v}`;
  return v === undefined || v === null ? "" : Array.isArray(v) ? "[...]" : "{...}";
}
function len(v: unknown): number {
  return Array.isArray(v) ? v.length : 0;
}

class Collector {
  constructor(
    readonly emit: SecurityIssueSink,
    readonly prefix: string,
  ) {}
  error(segs: Segs, message: string): void {
    this.emit(
      {
        code: "IST0106",
        severity: "error",
        path: formatIssuePath(segs),
        message: `${this.prefix}${message}`,
      },
      segs,
    );
  }
  warn(segs: Segs, message: string): void {
    this.emit({ code: "IST0133", severity: "warning", path: formatIssuePath(segs), message }, segs);
  }
}

function checkEmptyValues(c: Collector, segs: Segs, key: string, values: unknown): void {
  const i = strings(values).indexOf("");
  if (i >= 0) c.error([...segs, i], `empty value not allowed, found in ${key}`);
}

function wildcardProblem(key: string, values: string[]): string | undefined {
  for (const value of values) {
    if (value === "") return `empty value not allowed, found in ${key}`;
    const count = value.split("*").length - 1;
    if (count > 1)
      return `at most one wildcard is allowed, found in ${key}: ${JSON.stringify(value)}`;
    if (count === 1 && value !== "*" && !value.startsWith("*") && !value.endsWith("*")) {
      return `wildcard is only allowed at the start or end, found in ${key}: ${JSON.stringify(value)}`;
    }
  }
  return undefined;
}

function trustDomainProblem(key: string, values: string[]): string | undefined {
  const w = wildcardProblem(key, values);
  if (w !== undefined) return w;
  const bad = values.find((v) => v.includes("/"));
  return bad === undefined
    ? undefined
    : `trust domain must not contain '/', found in ${key}: ${JSON.stringify(bad)}`;
}

/** security.CheckServiceAccount. */
function serviceAccountProblem(key: string, values: string[]): string | undefined {
  if (values.length > 16) return "may not have more than 16 values";
  for (const value of values) {
    if (value === "") return `empty value not allowed, found in ${key}`;
    if (value.includes("*")) return `wildcard not allowed, found in ${key}`;
    const slashes = value.split("/").length - 1;
    const expected = "expected format 'serviceAccount' or 'namespace/serviceAccount'";
    if (slashes > 1) return `${expected}, found ${JSON.stringify(value)} in ${key}`;
    if (value.length > 320)
      return `value cannot exceed 320 characters, found ${JSON.stringify(value)} in ${key}`;
    if (slashes === 1) {
      const [ns, sa] = value.split("/");
      if (ns === "") return `${expected}, found empty namespace ${JSON.stringify(value)} in ${key}`;
      if (sa === "")
        return `${expected}, found empty serviceAccount ${JSON.stringify(value)} in ${key}`;
    }
  }
  return undefined;
}

/** security.ValidateIPs: Go's netip (host bits may be set in a prefix), errors joined as multierror. */
function ipsProblem(values: string[]): string | undefined {
  const problems: string[] = [];
  for (const v of values) {
    if (v.includes("/")) {
      if (parseCidr(v) === undefined)
        problems.push(
          `bad CIDR range (${v}): netip.ParsePrefix(${JSON.stringify(v)}): invalid prefix`,
        );
    } else if (parseIp(v) === undefined) {
      problems.push(`bad IP address (${v})`);
    }
  }
  return problems.length === 0 ? undefined : problems.join("; ");
}

/** security.ValidatePorts: strconv.ParseUint(port, 10, 32) and at most 65535. */
function portsProblem(values: string[]): string | undefined {
  const problems: string[] = [];
  for (const p of values) {
    if (!/^[0-9]+$/.test(p) || Number(p) > 65535) {
      problems.push(
        `bad port (${p}): strconv.ParseUint: parsing ${JSON.stringify(p)}: invalid syntax`,
      );
    }
  }
  return problems.length === 0 ? undefined : problems.join("; ");
}

// RFC 3986 pchar, as Envoy requires of a path template's literal segments.
const VALID_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

/** security.CheckValidPathTemplate. */
function pathTemplateProblem(key: string, paths: string[]): string | undefined {
  for (const raw of paths) {
    const hasTemplate = raw.includes("{*}") || raw.includes("{**}");
    const path = raw.replace(/^\/+|\/+$/g, "");
    let foundAny = false;
    for (const glob of path.split("/")) {
      if (glob === "{*}" && !foundAny) continue;
      if (glob === "{**}" && !foundAny) {
        foundAny = true;
        continue;
      }
      if ((glob === "{**}" || glob === "{*}") && foundAny) {
        return `invalid or unsupported path ${path}, found in ${key}. {**} is not the last operator`;
      }
      if (/[{}]/.test(glob)) {
        return `invalid or unsupported path ${path}, found in ${key}. Contains '{' or '}' beyond a supported path template`;
      }
      if (hasTemplate && !VALID_LITERAL.test(glob)) {
        return `invalid or unsupported path ${path}, found in ${key}. Contains segment ${glob} with invalid string literal`;
      }
    }
  }
  return undefined;
}

function mapKeyProblem(key: string): string | undefined {
  const open = key.indexOf("[");
  if (key.endsWith("]") && open > 0 && open < key.length - 2) return undefined;
  return `bad key (${key}): should have format a[b]`;
}

/** security.ValidateAttribute: the `when` keys Istio knows and the value format each needs. */
function attributeProblem(key: string, values: string[]): string | undefined {
  const empty = values.indexOf("");
  if (empty >= 0) return `empty value not allowed, found in ${key}`;
  if (key.startsWith("request.headers")) return mapKeyProblem(key);
  if (key === "source.ip" || key === "remote.ip" || key === "destination.ip")
    return ipsProblem(values);
  if (key === "source.namespace" || key === "source.principal") return undefined;
  if (key === "source.serviceAccount") return serviceAccountProblem(key, values);
  // The `/` check as for `from.source.trustDomains` (authz had it here too; the stricter one kept).
  if (key === "source.trustDomain") return trustDomainProblem(key, values);
  if (
    key === "request.auth.principal" ||
    key === "request.auth.audiences" ||
    key === "request.auth.presenter"
  ) {
    return undefined;
  }
  if (key.startsWith("request.auth.claims")) return mapKeyProblem(key);
  if (key === "destination.port") return portsProblem(values);
  if (key === "connection.sni") return undefined;
  if (key.startsWith("experimental.envoy.filters.")) return mapKeyProblem(key);
  if (key === "destination.namespace")
    return `attribute ${key} is replaced by the metadata.namespace`;
  if (key.startsWith("destination.labels"))
    return `attribute ${key} is replaced by the workload selector`;
  if (key === "destination.name" || key === "destination.user") {
    return `deprecated attribute ${key}: only supported in v1alpha1`;
  }
  return `unknown attribute: ${key}`;
}

/** Istio's `ValidateWorkloadSelector` label rules: no empty keys, no wildcards, warn on no labels. */
function checkSelectorLabels(c: Collector, selector: Obj): void {
  const labels = obj(selector.matchLabels) ?? {};
  for (const [k, v] of Object.entries(labels)) {
    if (k === "")
      c.error(
        ["spec", "selector", "matchLabels"],
        `empty key is not supported in selector: ${JSON.stringify(`${k}=${text(v)}`)}`,
      );
    if (k.includes("*") || text(v).includes("*")) {
      c.error(
        ["spec", "selector", "matchLabels", k],
        `wildcard is not supported in selector: ${JSON.stringify(`${k}=${text(v)}`)}`,
      );
    }
  }
  if (Object.keys(labels).length === 0)
    c.warn(["spec", "selector"], "workload selector specified without labels");
}

function checkSelectorAndTargets(
  c: Collector,
  spec: Obj,
  namespace: string,
  rootNamespace: string | undefined,
): void {
  const selector = obj(spec.selector);
  let set = 0;
  if (spec.selector !== undefined && spec.selector !== null) set++;
  if (spec.targetRef !== undefined && spec.targetRef !== null) set++;
  if (len(spec.targetRefs) > 0) set++;
  if (set > 1) c.error(["spec"], "only one of targetRefs or workloadSelector can be set");
  if (selector !== undefined) checkSelectorLabels(c, selector);
  // The CRD's maxItems, checked here too for policies that never met the CRD schema.
  if (len(spec.targetRefs) > 16)
    c.error(["spec", "targetRefs"], "targetRefs must have at most 16 items");
  const refs: Array<[unknown, Segs]> = [];
  if (spec.targetRef !== undefined) refs.push([spec.targetRef, ["spec", "targetRef"]]);
  (list(spec.targetRefs) ?? []).forEach((r, i) => {
    refs.push([r, ["spec", "targetRefs", i]]);
  });
  for (const [r, segs] of refs) {
    const ref = obj(r);
    if (ref === undefined) continue;
    if (ref.name === undefined || ref.name === "") c.error(segs, "targetRef name must be set");
    if (ref.namespace !== undefined && ref.namespace !== "") {
      c.error(
        segs,
        "targetRef namespace must not be set; cross namespace referencing is not supported",
      );
    }
    const group = typeof ref.group === "string" && ref.group !== "" ? ref.group : "core";
    const kind = ref.kind;
    const allowed =
      (group === "core" && kind === "Service") ||
      (group === "networking.istio.io" && kind === "ServiceEntry") ||
      (group === "gateway.networking.k8s.io" && (kind === "Gateway" || kind === "GatewayClass"));
    if (!allowed) {
      c.error(
        segs,
        `targetRef must be to one of [core/v1/Service networking.istio.io/v1/ServiceEntry gateway.networking.k8s.io/v1/Gateway gateway.networking.k8s.io/v1/GatewayClass] but was ${text(ref.group)}/${text(kind)}`,
      );
    } else if (
      kind === "GatewayClass" &&
      rootNamespace !== undefined &&
      namespace !== rootNamespace
    ) {
      c.error(segs, `GatewayClass targetRef is only valid in the root namespace ${rootNamespace}`);
    }
  }
}

// The source fields that count as TCP attributes for the DENY-with-only-HTTP warning.
const TCP_SOURCE_FIELDS = [
  "principals",
  "notPrincipals",
  "ipBlocks",
  "notIpBlocks",
  "namespaces",
  "notNamespaces",
  "remoteIpBlocks",
  "notRemoteIpBlocks",
  "serviceAccounts",
  "notServiceAccounts",
] as const;
const CUSTOM_FORBIDDEN_SOURCE: Array<[string, string]> = [
  ["namespaces", "From.Namespaces"],
  ["notNamespaces", "From.NotNamespaces"],
  ["serviceAccounts", "From.ServiceAccounts"],
  ["notServiceAccounts", "From.NotServiceAccounts"],
  ["trustDomains", "From.TrustDomains"],
  ["notTrustDomains", "From.NotTrustDomains"],
  ["principals", "From.Principals"],
  ["notPrincipals", "From.NotPrincipals"],
  ["requestPrincipals", "From.RequestPrincipals"],
  ["notRequestPrincipals", "From.NotRequestPrincipals"],
];
// The CRD's maxItems on these source lists (16), checked here for policies that never met it.
const LIMITED_SOURCE_FIELDS = ["principals", "notPrincipals", "namespaces", "notNamespaces"];

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function checkSource(c: Collector, src: Obj, at: Segs, i: number): void {
  if (
    len(src.principals) + len(src.notPrincipals) + len(src.namespaces) + len(src.notNamespaces) >
      0 &&
    len(src.serviceAccounts) + len(src.notServiceAccounts) > 0
  ) {
    c.error(at, `cannot set serviceAccounts with namespaces or principals, found at rule ${i}`);
  }
  if (SOURCE_FIELDS.every((k) => len(src[k]) === 0))
    c.error(at, `\`from.source\` must not be empty, found at rule ${i}`);
  for (const k of LIMITED_SOURCE_FIELDS)
    if (len(src[k]) > 16) c.error([...at, k], `${k} must have at most 16 items`);
  for (const k of ["ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"]) {
    const p = ipsProblem(strings(src[k]).filter((v) => v !== ""));
    if (p !== undefined) c.error([...at, k], p);
  }
  for (const k of [
    "principals",
    "requestPrincipals",
    "namespaces",
    "ipBlocks",
    "remoteIpBlocks",
    "notPrincipals",
    "notRequestPrincipals",
    "notNamespaces",
    "notIpBlocks",
    "notRemoteIpBlocks",
  ]) {
    checkEmptyValues(c, [...at, k], capitalize(k), src[k]);
  }
  for (const k of ["serviceAccounts", "notServiceAccounts"]) {
    const p = serviceAccountProblem(capitalize(k), strings(src[k]));
    if (p !== undefined) c.error([...at, k], p);
  }
  for (const k of ["trustDomains", "notTrustDomains"]) {
    const p = trustDomainProblem(capitalize(k), strings(src[k]));
    if (p !== undefined) c.error([...at, k], p);
  }
}

function checkOperation(c: Collector, op: Obj, at: Segs, i: number): void {
  if (OPERATION_FIELDS.every((k) => len(op[k]) === 0))
    c.error(at, `\`to.operation\` must not be empty, found at rule ${i}`);
  for (const k of ["ports", "notPorts"]) {
    const p = portsProblem(strings(op[k]).filter((v) => v !== ""));
    if (p !== undefined) c.error([...at, k], p);
  }
  for (const k of OPERATION_FIELDS) checkEmptyValues(c, [...at, k], capitalize(k), op[k]);
  for (const k of ["paths", "notPaths"]) {
    const p = pathTemplateProblem(capitalize(k), strings(op[k]));
    if (p !== undefined) c.error([...at, k], p);
  }
}

function checkCondition(c: Collector, w: Obj, at: Segs): void {
  const key = typeof w.key === "string" ? w.key : "";
  if (key === "") {
    c.error([...at, "key"], "`key` must not be empty");
    return;
  }
  if (len(w.values) === 0 && len(w.notValues) === 0) {
    c.error(at, `at least one of \`values\` or \`notValues\` must be set for key ${key}`);
    return;
  }
  // A list that is absent is not checked (an unknown key is reported once, not twice).
  const pv =
    len(w.values) === 0 && len(w.notValues) > 0
      ? undefined
      : attributeProblem(key, strings(w.values));
  if (pv !== undefined) c.error([...at, "values"], `invalid \`value\` for \`key\` ${key}: ${pv}`);
  const pn =
    len(w.notValues) === 0 && len(w.values) > 0
      ? undefined
      : attributeProblem(key, strings(w.notValues));
  if (pn !== undefined)
    c.error([...at, "notValues"], `invalid \`notValue\` for \`key\` ${key}: ${pn}`);
}

function checkCustomAction(c: Collector, spec: Obj, rulesNil: boolean): void {
  const provider = obj(spec.provider);
  if (rulesNil) {
    c.error(
      ["spec"],
      "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
    );
  } else if (provider === undefined || typeof provider.name !== "string" || provider.name === "") {
    c.error(["spec", "provider"], "`provider.name` must not be empty");
  }
  (list(spec.rules) ?? []).forEach((rule, i) => {
    const r = obj(rule) ?? {};
    (list(r.from) ?? []).forEach((from, j) => {
      const src = obj(obj(from)?.source);
      if (src === undefined) return;
      for (const [field, label] of CUSTOM_FORBIDDEN_SOURCE) {
        if (len(src[field]) !== 0) {
          c.error(
            ["spec", "rules", i, "from", j, "source", field],
            `${label} is currently not supported with CUSTOM action`,
          );
        }
      }
    });
    (list(r.when) ?? []).forEach((when, j) => {
      const key = obj(when)?.key;
      if (typeof key !== "string") return;
      if (
        [
          "source.namespace",
          "source.serviceAccount",
          "source.trustDomain",
          "source.principal",
        ].includes(key) ||
        key.startsWith("request.auth.")
      ) {
        c.error(
          ["spec", "rules", i, "when", j, "key"],
          `${key} is currently not supported with CUSTOM action`,
        );
      }
    });
  });
}

/**
 * The `source`s (or `operation`s) of a rule's `from` (or `to`) entries, with their index; Istio's
 * empty-list and nil-entry errors for the rest.
 */
function ruleEntries(
  c: Collector,
  r: Obj,
  at: Segs,
  field: "from" | "to",
  inner: "source" | "operation",
  i: number,
): Array<[Obj, number]> {
  const out: Array<[Obj, number]> = [];
  const entries = list(r[field]);
  if (entries?.length === 0)
    c.error([...at, field], `\`${field}\` must not be empty, found at rule ${i}`);
  (entries ?? []).forEach((e, j) => {
    const entry = obj(e);
    const value = obj(entry?.[inner]);
    if (entry === undefined)
      c.error([...at, field, j], `\`${field}\` must not be nil, found at rule ${i}`);
    else if (value === undefined)
      c.error([...at, field, j], `\`${field}.${inner}\` must not be nil, found at rule ${i}`);
    else out.push([value, j]);
  });
  return out;
}

function checkRule(c: Collector, rule: unknown, i: number, action: string): void {
  const at: Segs = ["spec", "rules", i];
  const r = obj(rule);
  if (r === undefined) {
    c.error(at, `\`rule\` must not be nil, found at rule ${i}`);
    return;
  }
  let tcpInFrom = false;
  let tcpInTo = false;
  const sources = ruleEntries(c, r, at, "from", "source", i);
  for (const [src, j] of sources) {
    checkSource(c, src, [...at, "from", j, "source"], i);
    if (TCP_SOURCE_FIELDS.some((k) => src[k] !== undefined && src[k] !== null)) tcpInFrom = true;
  }
  const operations = ruleEntries(c, r, at, "to", "operation", i);
  for (const [op, j] of operations) {
    checkOperation(c, op, [...at, "to", j, "operation"], i);
    if (
      (op.ports !== undefined && op.ports !== null) ||
      (op.notPorts !== undefined && op.notPorts !== null)
    )
      tcpInTo = true;
  }
  const fromExist = sources.length > 0;
  const toExist = operations.length > 0;
  (list(r.when) ?? []).forEach((when, j) => {
    const w = obj(when);
    if (w === undefined) c.error([...at, "when", j], "when field cannot be nil");
    else checkCondition(c, w, [...at, "when", j]);
  });
  if (action === "DENY" && ((fromExist && !toExist && !tcpInFrom) || (toExist && !tcpInTo))) {
    c.warn(
      at,
      "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
    );
  }
}

function checkAuthorizationPolicy(
  c: Collector,
  spec: Obj,
  namespace: string,
  options: SecurityCheckOptions,
): void {
  checkSelectorAndTargets(c, spec, namespace, options.rootNamespace);
  const action = typeof spec.action === "string" ? spec.action : "ALLOW";
  const rulesNil = spec.rules === undefined || spec.rules === null;
  if (action === "CUSTOM") checkCustomAction(c, spec, rulesNil);
  if (spec.provider !== undefined && spec.provider !== null && action !== "CUSTOM") {
    c.error(
      ["spec", "provider"],
      `\`provider\` must not be with non CUSTOM action, found ${action}`,
    );
  }
  if (action === "DENY" && rulesNil) {
    c.error(
      ["spec"],
      "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
    );
  }
  if (len(spec.rules) > 512) c.error(["spec", "rules"], "rules must have at most 512 items");
  (list(spec.rules) ?? []).forEach((rule, i) => {
    checkRule(c, rule, i, action);
  });
}

function checkPeerAuthentication(c: Collector, spec: Obj): void {
  const selector = obj(spec.selector);
  const emptySelector =
    selector === undefined || Object.keys(obj(selector.matchLabels) ?? {}).length === 0;
  const plm = obj(spec.portLevelMtls);
  const plmCount = plm === undefined ? 0 : Object.keys(plm).length;
  if (emptySelector && plmCount !== 0) {
    c.error(
      ["spec", "portLevelMtls"],
      "mesh/namespace peer authentication cannot have port level mTLS",
    );
  }
  if (spec.portLevelMtls !== undefined && spec.portLevelMtls !== null && plmCount === 0) {
    c.error(
      ["spec", "portLevelMtls"],
      "port level mTLS, if defined, must have at least one element",
    );
  }
  for (const port of Object.keys(plm ?? {})) {
    const n = Number(port);
    if (!/^[0-9]+$/.test(port) || n <= 0 || n > 65535) {
      c.error(["spec", "portLevelMtls", port], "port must be in range 1..65535");
    }
  }
  if (selector !== undefined) checkSelectorLabels(c, selector);
}

const STRICT_HEADER_NAME = /^[a-zA-Z0-9-]+$/;
const URI_SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/;

function parseJwks(text: string): { ok: boolean; privateKeys: number[] } {
  try {
    const parsed = JSON.parse(text) as unknown;
    const keys = obj(parsed)?.keys;
    const arr = Array.isArray(keys)
      ? keys
      : obj(parsed) !== undefined && obj(parsed)?.kty !== undefined
        ? [parsed]
        : undefined;
    if (arr === undefined) return { ok: false, privateKeys: [] };
    const privateKeys: number[] = [];
    arr.forEach((k, i) => {
      const key = obj(k);
      if (key === undefined || typeof key.kty !== "string") return;
      if (key.d !== undefined || key.kty === "oct") privateKeys.push(i);
    });
    return { ok: arr.every((k) => typeof obj(k)?.kty === "string"), privateKeys };
  } catch {
    return { ok: false, privateKeys: [] };
  }
}

function checkRequestAuthentication(
  c: Collector,
  spec: Obj,
  namespace: string,
  options: SecurityCheckOptions,
): void {
  checkSelectorAndTargets(c, spec, namespace, options.rootNamespace);
  (list(spec.jwtRules) ?? []).forEach((rule, i) => {
    const r = obj(rule);
    const at: Segs = ["spec", "jwtRules", i];
    if (r === undefined) return;
    strings(r.audiences).forEach((a, j) => {
      if (a === "") c.error([...at, "audiences", j], "audience must be non-empty string");
    });
    const issuer = typeof r.issuer === "string" ? r.issuer : "";
    const jwksUri = typeof r.jwksUri === "string" ? r.jwksUri : "";
    if (issuer === "" && jwksUri === "") c.error(at, "issuer or jwksUri must be non-empty string");
    if (jwksUri !== "") {
      // security.ParseJwksURI: Go's url package lower-cases the scheme.
      const scheme = URI_SCHEME.exec(jwksUri)?.[1]?.toLowerCase() ?? "";
      if (scheme !== "http" && scheme !== "https") {
        c.error([...at, "jwksUri"], `URI scheme ${JSON.stringify(scheme)} is not supported`);
      }
    }
    if (typeof r.jwks === "string" && r.jwks !== "") {
      const { ok, privateKeys } = parseJwks(r.jwks);
      if (!ok) c.error([...at, "jwks"], "jwks parse error: failed to parse JWK set");
      for (const k of privateKeys) {
        c.warn(
          [...at, "jwks"],
          `jwks key at index ${k} contains private key material; only public keys are used for verification`,
        );
      }
    }
    (list(r.fromHeaders) ?? []).forEach((h, j) => {
      const header = obj(h);
      if (header === undefined)
        c.error([...at, "fromHeaders", j], "location header name must be non-null");
      else if (typeof header.name !== "string" || header.name === "") {
        c.error([...at, "fromHeaders", j, "name"], "location header name must be non-empty string");
      }
    });
    strings(r.fromParams).forEach((p, j) => {
      if (p === "") c.error([...at, "fromParams", j], "location query must be non-empty string");
    });
    strings(r.fromCookies).forEach((p, j) => {
      if (p === "") c.error([...at, "fromCookies", j], "cookie name must be non-empty string");
    });
    (list(r.outputClaimToHeaders) ?? []).forEach((h, j) => {
      const o = obj(h);
      const oAt: Segs = [...at, "outputClaimToHeaders", j];
      if (o === undefined) {
        c.error(oAt, "outputClaimToHeaders must not be null");
        return;
      }
      if (
        typeof o.claim !== "string" ||
        o.claim === "" ||
        typeof o.header !== "string" ||
        o.header === ""
      ) {
        c.error(oAt, "outputClaimToHeaders header and claim value must be non-empty string");
        return;
      }
      if (!STRICT_HEADER_NAME.test(o.header))
        c.error([...oAt, "header"], `header name ${o.header} is not a valid header name`);
    });
  });
}

/** The kinds {@link checkSecurityResource} checks. */
export const SECURITY_KINDS: ReadonlySet<string> = new Set([
  "AuthorizationPolicy",
  "PeerAuthentication",
  "RequestAuthentication",
]);

/**
 * Runs Istio's webhook checks on one security.istio.io object given as plain data (`kind`,
 * `metadata`, `spec`, as read from YAML) and hands every issue to `emit`. Other kinds are ignored.
 * Never throws on malformed data: fields of the wrong type are skipped (the CRD schema reports them).
 */
export function checkSecurityResource(
  doc: Readonly<Record<string, unknown>>,
  emit: SecurityIssueSink,
  options: SecurityCheckOptions = {},
): void {
  if (obj(doc) === undefined)
    throw new AuthzError("ERR_AUTHZ_INVALID_INPUT", "the resource must be an object");
  if (typeof emit !== "function")
    throw new AuthzError("ERR_AUTHZ_INVALID_INPUT", "emit must be a function");
  if (
    obj(options) === undefined ||
    (options.rootNamespace !== undefined && typeof options.rootNamespace !== "string")
  )
    throw new AuthzError("ERR_AUTHZ_INVALID_INPUT", "options.rootNamespace must be a string");
  const kind = doc.kind;
  const spec = obj(doc.spec) ?? {};
  const m = obj(doc.metadata) ?? {};
  const namespace = typeof m.namespace === "string" ? m.namespace : "default";
  if (kind === "AuthorizationPolicy") {
    const c = new Collector(emit, `invalid policy ${text(m.name)}.${namespace}: `);
    checkAuthorizationPolicy(c, spec, namespace, options);
  } else if (kind === "PeerAuthentication") {
    checkPeerAuthentication(new Collector(emit, ""), spec);
  } else if (kind === "RequestAuthentication") {
    checkRequestAuthentication(new Collector(emit, ""), spec, namespace, options);
  }
}

/**
 * Validates a parsed AuthorizationPolicy as istiod's admission webhook and the CRD's limits do.
 * `ok` is false when any issue is an error; `value` is the policy when ok.
 */
export function validateAuthorizationPolicy(
  policy: AuthorizationPolicy,
  options: SecurityCheckOptions = {},
): Result<AuthorizationPolicy, SecurityIssueCode> {
  assertAuthorizationPolicy(policy);
  const issues: Issue<SecurityIssueCode>[] = [];
  checkSecurityResource(
    {
      kind: "AuthorizationPolicy",
      metadata: { name: policy.name, namespace: policy.namespace },
      spec: policy.spec,
    },
    (issue) => {
      issues.push(issue);
    },
    options,
  );
  return issues.some((i) => i.severity === "error")
    ? { ok: false, issues }
    : { ok: true, value: policy, issues };
}
