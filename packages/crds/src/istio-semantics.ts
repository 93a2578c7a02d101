// The checks Istio's validating webhook (and `istioctl validate`) runs for AuthorizationPolicy,
// PeerAuthentication and RequestAuthentication (istio/istio pkg/config/validation/validation.go and
// pkg/config/security/security.go), with Istio's wording. Errors are IST0106, warnings IST0133.
import type { InternalIssue } from "./model.js";
import { formatPath, type PathSeg } from "./model.js";
import { isCIDR, isIP, parseRequestURI } from "./net.js";

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}
function list(v: unknown): unknown[] | undefined {
  return Array.isArray(v) ? v : undefined;
}
function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}
function len(v: unknown): number {
  return Array.isArray(v) ? v.length : 0;
}

class Collector {
  constructor(
    readonly out: InternalIssue[],
    readonly prefix: string,
  ) {}
  error(segs: PathSeg[], message: string): void {
    this.out.push({
      code: "IST0106",
      severity: "error",
      path: formatPath(segs),
      message: `${this.prefix}${message}`,
      segs,
    });
  }
  warn(segs: PathSeg[], message: string): void {
    this.out.push({ code: "IST0133", severity: "warning", path: formatPath(segs), message, segs });
  }
}

function checkEmptyValues(c: Collector, segs: PathSeg[], key: string, values: unknown): boolean {
  const i = strings(values).indexOf("");
  if (i >= 0) {
    c.error([...segs, i], `empty value not allowed, found in ${key}`);
    return false;
  }
  return true;
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

function ipsProblem(values: string[]): string | undefined {
  const problems: string[] = [];
  for (const v of values) {
    if (v.includes("/")) {
      if (!isCIDR(v))
        problems.push(
          `bad CIDR range (${v}): netip.ParsePrefix(${JSON.stringify(v)}): invalid prefix`,
        );
    } else if (!isIP(v)) {
      problems.push(`bad IP address (${v})`);
    }
  }
  return problems.length === 0 ? undefined : problems.join("; ");
}

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

const VALID_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

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
  if (key === "source.trustDomain") return wildcardProblem(key, values);
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
        `empty key is not supported in selector: ${JSON.stringify(`${k}=${v}`)}`,
      );
    if (k.includes("*") || String(v).includes("*")) {
      c.error(
        ["spec", "selector", "matchLabels", k],
        `wildcard is not supported in selector: ${JSON.stringify(`${k}=${v}`)}`,
      );
    }
  }
  if (Object.keys(labels).length === 0)
    c.warn(["spec", "selector"], "workload selector specified without labels");
}

function checkSelectorAndTargets(c: Collector, spec: Obj): void {
  const selector = obj(spec.selector);
  let set = 0;
  if (spec.selector !== undefined && spec.selector !== null) set++;
  if (spec.targetRef !== undefined && spec.targetRef !== null) set++;
  if (len(spec.targetRefs) > 0) set++;
  if (set > 1) c.error(["spec"], "only one of targetRefs or workloadSelector can be set");
  if (selector !== undefined) checkSelectorLabels(c, selector);
  const refs: Array<[unknown, PathSeg[]]> = [];
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
        `targetRef must be to one of [core/v1/Service networking.istio.io/v1/ServiceEntry gateway.networking.k8s.io/v1/Gateway gateway.networking.k8s.io/v1/GatewayClass] but was ${String(ref.group ?? "")}/${String(kind ?? "")}`,
      );
    }
  }
}

const SOURCE_FIELDS = [
  "principals",
  "notPrincipals",
  "requestPrincipals",
  "notRequestPrincipals",
  "namespaces",
  "notNamespaces",
  "ipBlocks",
  "notIpBlocks",
  "remoteIpBlocks",
  "notRemoteIpBlocks",
  "serviceAccounts",
  "notServiceAccounts",
  "trustDomains",
  "notTrustDomains",
] as const;
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
const OPERATION_FIELDS = [
  "ports",
  "notPorts",
  "methods",
  "notMethods",
  "paths",
  "notPaths",
  "hosts",
  "notHosts",
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

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function checkAuthorizationPolicy(c: Collector, spec: Obj): void {
  checkSelectorAndTargets(c, spec);
  const action = typeof spec.action === "string" ? spec.action : "ALLOW";
  const rules = list(spec.rules);
  const rulesNil = spec.rules === undefined || spec.rules === null;
  const provider = obj(spec.provider);
  if (action === "CUSTOM") {
    if (rulesNil) {
      c.error(
        ["spec"],
        "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request",
      );
    } else if (
      provider === undefined ||
      typeof provider.name !== "string" ||
      provider.name === ""
    ) {
      c.error(["spec", "provider"], "`provider.name` must not be empty");
    }
    (rules ?? []).forEach((rule, i) => {
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
  (rules ?? []).forEach((rule, i) => {
    const at: PathSeg[] = ["spec", "rules", i];
    const r = obj(rule);
    if (r === undefined) {
      c.error(at, `\`rule\` must not be nil, found at rule ${i}`);
      return;
    }
    let tcpInFrom = false;
    let tcpInTo = false;
    let fromExist = false;
    let toExist = false;
    if (Array.isArray(r.from) && r.from.length === 0)
      c.error([...at, "from"], `\`from\` must not be empty, found at rule ${i}`);
    (list(r.from) ?? []).forEach((from, j) => {
      const f = obj(from);
      if (f === undefined) {
        c.error([...at, "from", j], `\`from\` must not be nil, found at rule ${i}`);
        return;
      }
      const src = obj(f.source);
      const srcAt: PathSeg[] = [...at, "from", j, "source"];
      if (src === undefined) {
        c.error([...at, "from", j], `\`from.source\` must not be nil, found at rule ${i}`);
        return;
      }
      fromExist = true;
      if (
        len(src.principals) +
          len(src.notPrincipals) +
          len(src.namespaces) +
          len(src.notNamespaces) >
          0 &&
        len(src.serviceAccounts) + len(src.notServiceAccounts) > 0
      ) {
        c.error(
          srcAt,
          `cannot set serviceAccounts with namespaces or principals, found at rule ${i}`,
        );
      }
      if (SOURCE_FIELDS.every((k) => len(src[k]) === 0))
        c.error(srcAt, `\`from.source\` must not be empty, found at rule ${i}`);
      for (const k of ["ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"]) {
        const p = ipsProblem(strings(src[k]).filter((v) => v !== ""));
        if (p !== undefined) c.error([...srcAt, k], p);
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
        checkEmptyValues(c, [...srcAt, k], capitalize(k), src[k]);
      }
      for (const k of ["serviceAccounts", "notServiceAccounts"]) {
        const p = serviceAccountProblem(capitalize(k), strings(src[k]));
        if (p !== undefined) c.error([...srcAt, k], p);
      }
      for (const k of ["trustDomains", "notTrustDomains"]) {
        const p = trustDomainProblem(capitalize(k), strings(src[k]));
        if (p !== undefined) c.error([...srcAt, k], p);
      }
      if (TCP_SOURCE_FIELDS.some((k) => src[k] !== undefined && src[k] !== null)) tcpInFrom = true;
    });
    if (Array.isArray(r.to) && r.to.length === 0)
      c.error([...at, "to"], `\`to\` must not be empty, found at rule ${i}`);
    (list(r.to) ?? []).forEach((to, j) => {
      const t = obj(to);
      if (t === undefined) {
        c.error([...at, "to", j], `\`to\` must not be nil, found at rule ${i}`);
        return;
      }
      const op = obj(t.operation);
      const opAt: PathSeg[] = [...at, "to", j, "operation"];
      if (op === undefined) {
        c.error([...at, "to", j], `\`to.operation\` must not be nil, found at rule ${i}`);
        return;
      }
      toExist = true;
      if (OPERATION_FIELDS.every((k) => len(op[k]) === 0))
        c.error(opAt, `\`to.operation\` must not be empty, found at rule ${i}`);
      for (const k of ["ports", "notPorts"]) {
        const p = portsProblem(strings(op[k]).filter((v) => v !== ""));
        if (p !== undefined) c.error([...opAt, k], p);
      }
      for (const k of OPERATION_FIELDS) checkEmptyValues(c, [...opAt, k], capitalize(k), op[k]);
      for (const k of ["paths", "notPaths"]) {
        const p = pathTemplateProblem(capitalize(k), strings(op[k]));
        if (p !== undefined) c.error([...opAt, k], p);
      }
      if (
        (op.ports !== undefined && op.ports !== null) ||
        (op.notPorts !== undefined && op.notPorts !== null)
      )
        tcpInTo = true;
    });
    (list(r.when) ?? []).forEach((when, j) => {
      const w = obj(when);
      const wAt: PathSeg[] = [...at, "when", j];
      if (w === undefined) {
        c.error(wAt, "when field cannot be nil");
        return;
      }
      const key = typeof w.key === "string" ? w.key : "";
      if (key === "") {
        c.error([...wAt, "key"], "`key` must not be empty");
        return;
      }
      if (len(w.values) === 0 && len(w.notValues) === 0) {
        c.error(wAt, `at least one of \`values\` or \`notValues\` must be set for key ${key}`);
        return;
      }
      const pv =
        len(w.values) === 0 && len(w.notValues) > 0
          ? undefined
          : attributeProblem(key, strings(w.values));
      if (pv !== undefined)
        c.error([...wAt, "values"], `invalid \`value\` for \`key\` ${key}: ${pv}`);
      const pn =
        len(w.notValues) === 0 && len(w.values) > 0
          ? undefined
          : attributeProblem(key, strings(w.notValues));
      if (pn !== undefined)
        c.error([...wAt, "notValues"], `invalid \`notValue\` for \`key\` ${key}: ${pn}`);
    });
    if (action === "DENY" && ((fromExist && !toExist && !tcpInFrom) || (toExist && !tcpInTo))) {
      c.warn(
        at,
        "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
      );
    }
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

function checkRequestAuthentication(c: Collector, spec: Obj): void {
  checkSelectorAndTargets(c, spec);
  (list(spec.jwtRules) ?? []).forEach((rule, i) => {
    const r = obj(rule);
    const at: PathSeg[] = ["spec", "jwtRules", i];
    if (r === undefined) return;
    strings(r.audiences).forEach((a, j) => {
      if (a === "") c.error([...at, "audiences", j], "audience must be non-empty string");
    });
    const issuer = typeof r.issuer === "string" ? r.issuer : "";
    const jwksUri = typeof r.jwksUri === "string" ? r.jwksUri : "";
    if (issuer === "" && jwksUri === "") c.error(at, "issuer or jwksUri must be non-empty string");
    if (jwksUri !== "") {
      const u = parseRequestURI(jwksUri);
      const scheme = u?.scheme ?? /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(jwksUri)?.[1] ?? "";
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
      const oAt: PathSeg[] = [...at, "outputClaimToHeaders", j];
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

function checkIstioMetadata(c: Collector, kind: string, doc: Obj, spec: Obj): void {
  const annotations = obj(obj(doc.metadata)?.annotations) ?? {};
  const m = obj(doc.metadata) ?? {};
  const id = `${String(m.namespace ?? "default")}/${String(m.name ?? "")}`;
  const dryRun = annotations["istio.io/dry-run"];
  if (dryRun !== undefined) {
    const at: PathSeg[] = ["metadata", "annotations", "istio.io/dry-run"];
    if (kind !== "AuthorizationPolicy") {
      c.error(
        at,
        `${id} has unsupported annotation istio.io/dry-run, please remove the annotation`,
      );
    } else {
      const action = typeof spec.action === "string" ? spec.action : "ALLOW";
      if (action !== "ALLOW" && action !== "DENY") {
        c.error(
          at,
          `the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action ${action} in ${id}`,
        );
      } else if (
        !["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"].includes(
          String(dryRun),
        )
      ) {
        c.error(
          at,
          `${id} has annotation istio.io/dry-run with invalid value (${String(dryRun)}): strconv.ParseBool: parsing ${JSON.stringify(String(dryRun))}: invalid syntax`,
        );
      }
    }
  }
  for (const a of ["internal.istio.io/webhook-always-reject"]) {
    if (a in annotations)
      c.error(["metadata", "annotations", a], `${JSON.stringify(a)} annotation found, rejecting`);
  }
  for (const a of ["internal.istio.io/parent-namespace", "internal.istio.io/parents"]) {
    if (a in annotations)
      c.error(
        ["metadata", "annotations", a],
        `${JSON.stringify(a)} annotation found, this may not be set by users`,
      );
  }
}

/** Kinds with Istio semantic checks. */
export const SEMANTIC_KINDS: ReadonlySet<string> = new Set([
  "AuthorizationPolicy",
  "PeerAuthentication",
  "RequestAuthentication",
]);

/** Runs Istio's webhook checks for `doc` (an Istio security kind) and appends IST0106/IST0133 issues. */
export function checkIstioSemantics(
  kind: string,
  doc: Record<string, unknown>,
  out: InternalIssue[],
): void {
  const spec = obj(doc.spec) ?? {};
  const m = obj(doc.metadata) ?? {};
  const prefix =
    kind === "AuthorizationPolicy"
      ? `invalid policy ${String(m.name ?? "")}.${String(m.namespace ?? "default")}: `
      : "";
  const c = new Collector(out, prefix);
  checkIstioMetadata(new Collector(out, ""), kind, doc, spec);
  if (kind === "AuthorizationPolicy") checkAuthorizationPolicy(c, spec);
  else if (kind === "PeerAuthentication") checkPeerAuthentication(c, spec);
  else if (kind === "RequestAuthentication") checkRequestAuthentication(c, spec);
}
