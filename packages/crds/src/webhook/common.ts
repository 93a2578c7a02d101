// Shared pieces of istiod's webhook checks (istio/istio pkg/config/validation and
// pkg/config/validation/agent): value readers, hosts, ports, IPs, durations, labels, protocols,
// regexes, string matches, header names/values, exportTo and selectors. Each `…Problem` function
// returns Istio's message (or undefined) so a caller reports it at its field's path.
import { RE2JS } from "@bufbuild/re2";
import { isCIDR, isIP } from "../net.js";
import type { PathSeg, Report } from "./report.js";

export type Obj = Record<string, unknown>;

export function obj(v: unknown): Obj | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}
export function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
export function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}
/** Numbers as proto3 reads them: absent is 0; int64 values may arrive as strings. */
export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "string" && v.trim() !== "" && !Number.isNaN(Number(v))) return Number(v);
  return 0;
}
/** A wrapper type (google.protobuf.UInt32Value…) read as its value; undefined when unset. */
export function wrapped(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const o = obj(v);
  return o !== undefined ? num(o.value) : num(v);
}
export function isSet(v: unknown): boolean {
  return v !== undefined && v !== null;
}
export function len(v: unknown): number {
  if (Array.isArray(v)) return v.length;
  const o = obj(v);
  return o === undefined ? 0 : Object.keys(o).length;
}
export function entries(v: unknown): Array<[string, unknown]> {
  const o = obj(v);
  return o === undefined ? [] : Object.entries(o);
}
/** Go's %q for the strings these messages quote. */
export function q(s: string): string {
  return JSON.stringify(s);
}
/** Go's %f. */
export function f6(n: number): string {
  return n.toFixed(6);
}

// ---- DNS names (labels.IsDNS1123Label: Istio's label regex accepts upper case) ----

const DNS1123_LABEL = /^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const WILDCARD_LABEL = /^(?:\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$/;

export function isDNS1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}
export function isWildcardDNS1123Label(s: string): boolean {
  return s.length <= 63 && WILDCARD_LABEL.test(s);
}

/** agent.CheckDNS1123Preconditions (length counted in bytes, as Go does). */
function dnsPreconditionProblem(name: string): string | undefined {
  if (utf8Length(name) > 255) return `domain name ${q(name)} too long (max 255)`;
  if (name === "") return "empty domain name not allowed";
  return undefined;
}

export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** agent.ValidateDNS1123Labels */
function dnsLabelsProblem(domain: string): string | undefined {
  const parts = domain.split(".");
  const tld = parts[parts.length - 1] ?? "";
  if (/^[+-]?[0-9]+$/.test(tld)) {
    return `domain name ${q(domain)} invalid (top level domain ${q(tld)} cannot be all-numeric)`;
  }
  for (let i = 0; i < parts.length; i++) {
    const label = parts[i] ?? "";
    if (i === parts.length - 1 && label === "") return undefined;
    if (!isDNS1123Label(label))
      return `domain name ${q(domain)} invalid (label ${q(label)} invalid)`;
  }
  return undefined;
}

/**
 * The same few host names recur across documents: their verdicts are kept in a bounded memo
 * (cleared when full, so arbitrary input cannot grow it).
 */
export function memo(f: (s: string) => string | undefined): (s: string) => string | undefined {
  const cache = new Map<string, string | null>();
  return (s) => {
    const hit = cache.get(s);
    if (hit !== undefined) return hit ?? undefined;
    const v = f(s);
    if (cache.size >= 4096) cache.clear();
    cache.set(s, v ?? null);
    return v;
  };
}

/** agent.ValidateFQDN */
export const fqdnProblem: (fqdn: string) => string | undefined = memo(
  (fqdn) => dnsPreconditionProblem(fqdn) ?? dnsLabelsProblem(fqdn),
);

/** agent.ValidateWildcardDomain: an FQDN whose first label may be a wildcard. */
export const wildcardDomainProblem: (domain: string) => string | undefined = memo(wildcardDomain);

function wildcardDomain(domain: string): string | undefined {
  const pre = dnsPreconditionProblem(domain);
  if (pre !== undefined) return pre;
  const dot = domain.indexOf(".");
  const first = dot < 0 ? domain : domain.slice(0, dot);
  if (!isWildcardDNS1123Label(first))
    return `domain name ${q(domain)} invalid (label ${q(first)} invalid)`;
  return dot < 0 ? undefined : dnsLabelsProblem(domain.slice(dot + 1));
}

/** agent.ValidateWildcardDomainForVirtualServiceBoundToGateway (outbound_.<PORT>_._.<HOST> SNI). */
export function gatewayWildcardDomainProblem(sni: boolean, domain: string): string | undefined {
  const pre = dnsPreconditionProblem(domain);
  if (pre !== undefined) return pre;
  if (sni && domain.startsWith("outbound_")) {
    const parts = domain.split("_");
    if (parts.length < 4) {
      return `domain name ${domain} invalid, should follow 'outbound_.<PORT>_._.<HOSTNAME>' format`;
    }
    const port = trimDots(parts[1] ?? "");
    const hostname = trimDots(parts[3] ?? "");
    if (parts[0] !== "outbound")
      return `domain name ${q(domain)} invalid (label ${q(parts[0] ?? "")} invalid)`;
    if (!/[0-9]/.test(port)) {
      return `domain name ${q(domain)} invalid (label ${q(port)} invalid). should follow outbound_.<PORT>_._.<HOSTNAME> format`;
    }
    if (!/[a-zA-Z]/.test(hostname)) {
      return `domain name ${q(domain)} invalid (label ${q(hostname)} invalid). should follow outbound_.<PORT>_._.<HOSTNAME> format`;
    }
    return undefined;
  }
  return wildcardDomainProblem(domain);
}

function trimDots(s: string): string {
  return s.replace(/^\.+|\.+$/g, "");
}

/** agent.ValidatePartialWildCard */
export function partialWildcardProblem(host: string): string | undefined {
  if (host.includes("*") && host.length !== 1 && !host.startsWith("*.")) {
    return `partial wildcard ${q(host)} not allowed`;
  }
  return undefined;
}

/** agent.validateSidecarOrGatewayHostnamePart */
function hostnamePartProblems(hostname: string, isGateway: boolean): string[] {
  const out: string[] = [];
  if (hostname !== "*" && !hostname.includes("."))
    out.push("short names (non FQDN) are not allowed");
  const err = wildcardDomainProblem(hostname);
  if (err !== undefined) {
    if (!isGateway) out.push(err);
    if (!isIP(hostname)) out.push(err);
  }
  const partial = partialWildcardProblem(hostname);
  if (partial !== undefined) out.push(partial);
  return out;
}

/** agent.ValidateNamespaceSlashWildcardHostname: `ns/host` in Gateway servers and Sidecar egress. */
export function namespaceHostProblems(
  hostname: string,
  isGateway: boolean,
  gatewaySemantics: boolean,
): string[] {
  const slash = hostname.indexOf("/");
  if (slash < 0) {
    if (isGateway) return hostnamePartProblems(hostname, true);
    return ["host must be of form namespace/dnsName"];
  }
  const ns = hostname.slice(0, slash);
  const name = hostname.slice(slash + 1);
  const out: string[] = [];
  if (ns === "" || name === "")
    out.push("config namespace and dnsName in host entry cannot be empty");
  if (!isGateway) {
    const n = ns.startsWith("~") ? ns.slice(1) : ns;
    if (n !== "" && n !== "*" && n !== "." && !isDNS1123Label(n)) {
      out.push(`invalid namespace value ${q(ns)} in sidecar`);
    }
  } else if (ns !== "*" && ns !== "." && (ns !== "~" || !gatewaySemantics)) {
    if (!isDNS1123Label(ns)) out.push(`invalid namespace value ${q(ns)} in gateway`);
  }
  out.push(...hostnamePartProblems(name, isGateway));
  return out;
}

/** host.Name.Matches */
export function hostMatches(a: string, b: string): boolean {
  const aw = a.startsWith("*");
  const bw = b.startsWith("*");
  if (aw) {
    if (bw)
      return a.length < b.length
        ? b.slice(1).endsWith(a.slice(1))
        : a.slice(1).endsWith(b.slice(1));
    return b.endsWith(a.slice(1));
  }
  if (bw) return a.endsWith(b.slice(1));
  return a === b;
}

/** host.Name.SubsetOf: `a` is covered by `b`. */
export function hostSubsetOf(a: string, b: string): boolean {
  const aw = a.startsWith("*");
  const bw = b.startsWith("*");
  if (aw) return bw && a.length >= b.length && a.slice(1).endsWith(b.slice(1));
  if (bw) return a.endsWith(b.slice(1));
  return a === b;
}

// ---- ports, addresses ----

/** agent.ValidatePort */
export function portProblem(port: number): string | undefined {
  return port >= 1 && port <= 65535
    ? undefined
    : `port number ${port} must be in the range 1..65535`;
}

/** ValidatePortName */
export function portNameProblem(name: string): string | undefined {
  return isDNS1123Label(name) ? undefined : `invalid port name: ${name}`;
}

/** agent.ValidateIPAddress (netip.ParseAddr) */
export function ipProblem(addr: string): string | undefined {
  return isIP(addr) ? undefined : `${addr} is not a valid IP`;
}

/** agent.ValidateIPSubnet: a CIDR block or an address. */
export function ipSubnetProblem(subnet: string): string | undefined {
  if (subnet.split("/").length - 1 === 1)
    return isCIDR(subnet) ? undefined : `${subnet} is not a valid CIDR block`;
  return ipProblem(subnet);
}

/** ValidateUnixAddress (the part after unix://) */
export function unixAddressProblem(addr: string): string | undefined {
  if (addr === "") return "unix address must not be empty";
  if (addr.startsWith("@")) return undefined;
  if (!addr.startsWith("/") || addr.endsWith("/"))
    return `${addr} is not an absolute path to a file`;
  return undefined;
}

// ---- protocols (protocol.Parse) ----

const PROTOCOLS: Record<string, string> = {
  tcp: "TCP",
  udp: "UDP",
  grpc: "GRPC",
  "grpc-web": "GRPC-Web",
  http: "HTTP",
  http_proxy: "HTTP_PROXY",
  http2: "HTTP2",
  https: "HTTPS",
  tls: "TLS",
  mongo: "Mongo",
  redis: "Redis",
  mysql: "MySQL",
};
export function parseProtocol(s: string): string {
  return PROTOCOLS[s.toLowerCase()] ?? "UnsupportedProtocol";
}
export function isHTTPProtocol(p: string): boolean {
  return p === "HTTP" || p === "HTTP2" || p === "HTTP_PROXY" || p === "GRPC" || p === "GRPC-Web";
}
export function isTLSProtocol(p: string): boolean {
  return p === "HTTPS" || p === "TLS";
}
export function isTCPProtocol(p: string): boolean {
  return (
    p === "TCP" || p === "HTTPS" || p === "TLS" || p === "Mongo" || p === "Redis" || p === "MySQL"
  );
}
/** ValidateProtocol: "" means sniffing. */
export function protocolProblem(p: string): string | undefined {
  return p !== "" && parseProtocol(p) === "UnsupportedProtocol"
    ? `unsupported protocol: ${p}`
    : undefined;
}

// ---- durations (agent.ValidateDuration on Go-style duration strings) ----

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1000n,
  µs: 1000n,
  μs: 1000n,
  ms: 1000000n,
  s: 1000000000n,
  m: 60000000000n,
  h: 3600000000000n,
};

/** time.ParseDuration in nanoseconds; undefined when it does not parse (the schema's CEL reports that). */
export function parseDuration(s: string): bigint | undefined {
  let rest = s;
  let neg = false;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    neg = rest.startsWith("-");
    rest = rest.slice(1);
  }
  if (rest === "0") return 0n;
  if (rest === "") return undefined;
  let total = 0n;
  const re = /^([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)/;
  while (rest !== "") {
    const m = re.exec(rest);
    if (m === null) return undefined;
    const whole = m[1] ?? "";
    const frac = m[2] ?? "";
    if (whole === "" && frac === "") return undefined;
    const unit = UNIT_NS[m[3] ?? ""] ?? 1n;
    let v = BigInt(whole === "" ? "0" : whole) * unit;
    if (frac !== "") {
      const scale = 10n ** BigInt(frac.length);
      v += (BigInt(frac) * unit) / scale;
    }
    total += v;
    rest = rest.slice(m[0].length);
  }
  return neg ? -total : total;
}

/** agent.ValidateDuration */
export function durationProblem(v: unknown): string | undefined {
  if (typeof v !== "string") return undefined;
  const ns = parseDuration(v);
  if (ns === undefined) return undefined;
  if (ns < 1000000n) return "duration must be greater than 1ms";
  if (ns % 1000000n !== 0n) return "only durations to ms precision are supported";
  return undefined;
}

export function checkDuration(r: Report, at: readonly PathSeg[], v: unknown): void {
  if (v === undefined || v === null) return;
  const p = durationProblem(v);
  if (p !== undefined) r.error(at, p);
}

// ---- labels (labels.Instance.Validate) ----

const TAG_KEY =
  /^((?:[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)*\/))?((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
const LABEL_VALUE = /^((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function labelsProblems(labels: unknown): string[] {
  const out: string[] = [];
  for (const [k, v] of entries(labels)) {
    const m = TAG_KEY.exec(k);
    if (m === null) out.push(`invalid tag key: ${q(k)}`);
    else if ((m[1] ?? "").length - 1 > 253)
      out.push(`invalid tag key: ${q(k)} (DNS prefix is too long)`);
    else if ((m[2] ?? "").length > 63) out.push(`invalid tag key: ${q(k)} (name is too long)`);
    if (!LABEL_VALUE.test(str(v))) out.push(`invalid tag value: ${q(str(v))}`);
  }
  return out;
}

export function checkLabels(r: Report, at: readonly PathSeg[], labels: unknown): void {
  for (const p of labelsProblems(labels)) r.error(at, p);
}

// ---- regexes and string matches ----

/** RE2's compile error for a pattern, or undefined (memoised: compiling is the costly part). */
export const re2Problem: (re: string) => string | undefined = memo((re) => {
  try {
    RE2JS.compile(re);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
});

/** validateStringRegexp: RE2 syntax, at most 1024 characters. */
export function regexProblem(re: string, where: string): string | undefined {
  if (utf8Length(re) > 1024) return `${q(where)}: regex is too large, max length allowed is 1024`;
  const msg = re2Problem(re);
  return msg === undefined
    ? undefined
    : `${q(where)}: ${msg}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)`;
}

/** validateStringMatchRegexp: only the regex form is checked (an empty uri prefix is allowed). */
export function stringMatchRegexpProblem(sm: unknown, where: string): string | undefined {
  const o = obj(sm);
  if (o === undefined || !("regex" in o)) return undefined;
  const re = str(o.regex);
  if (re === "") return `${q(where)}: regex string match should not be empty`;
  return regexProblem(re, where);
}

/** validateStringMatch */
export function stringMatchProblem(sm: unknown, where: string): string | undefined {
  const o = obj(sm);
  if (o === undefined) return undefined;
  if ("prefix" in o)
    return str(o.prefix) === ""
      ? `${q(where)}: prefix string match should not be empty`
      : undefined;
  return stringMatchRegexpProblem(o, where);
}

// ---- headers ----

const TOKEN_HEADER = /^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$/;
const STRICT_HEADER = /^[-_A-Za-z0-9]+$/;
const PROBE_HEADER = /^[-A-Za-z0-9]+$/;
const PSEUDO_HEADERS = new Set([":method", ":scheme", ":authority", ":path", ":status"]);

function isJwtClaimRoute(name: string): boolean {
  if (!name.toLowerCase().startsWith("@request.auth.claims")) return false;
  const rest = name.slice("@request.auth.claims".length);
  return (
    (rest.startsWith(".") && rest.length > 1) ||
    (rest.startsWith("[") && rest.endsWith("]") && rest.length > 2)
  );
}

export { isJwtClaimRoute };

export function strictHeaderNameProblem(name: string): string | undefined {
  if (name === "") return "header name cannot be empty";
  return STRICT_HEADER.test(name) ? undefined : `header name ${name} is not a valid header name`;
}
export function probeHeaderNameProblem(name: string): string | undefined {
  if (name === "") return "header name cannot be empty";
  return PROBE_HEADER.test(name) ? undefined : `header name ${name} is not a valid header name`;
}
export function corsHeaderNameProblem(name: string): string | undefined {
  if (name === "") return "header name cannot be empty";
  if (name === "*") return undefined;
  return TOKEN_HEADER.test(name) ? undefined : `header name ${name} is not a valid header name`;
}
/** ValidateHTTPHeaderNameOrJwtClaimRoute */
export function matchHeaderNameProblem(name: string): string | undefined {
  if (name === "") return "header name cannot be empty";
  if (isJwtClaimRoute(name) || PSEUDO_HEADERS.has(name)) return undefined;
  return TOKEN_HEADER.test(name) ? undefined : `header name ${name} is not a valid header name`;
}
function isInternalHeader(k: string): boolean {
  return k.startsWith(":") || k.toLowerCase() === "host";
}
export function isAuthorityHeader(k: string): boolean {
  const l = k.toLowerCase();
  return l === ":authority" || l === "host";
}
/** ValidateHTTPHeaderWithAuthorityOperationName (request add/set) */
export function headerSetNameProblem(name: string): string | undefined {
  if (name === "") return "header name cannot be empty";
  if (isInternalHeader(name) && !isAuthorityHeader(name))
    return `invalid header ${q(name)}: header cannot have ":" prefix`;
  return undefined;
}
/** ValidateHTTPHeaderOperationName (request remove, response add/set/remove) */
export function headerOpNameProblem(name: string): string | undefined {
  if (name === "") return "header name cannot be empty";
  if (name.toLowerCase() === "host") return `invalid header ${q(name)}: cannot set Host header`;
  if (isInternalHeader(name)) return `invalid header ${q(name)}: header cannot have ":" prefix`;
  return undefined;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters Envoy rejects
const HEADER_VALUE = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;

/** ValidateHTTPHeaderValue with header_value_validator.go's %VAR% parser. */
export function headerValueProblem(value: string): string | undefined {
  if (!HEADER_VALUE.test(value)) return `header value configuration ${value} is invalid`;
  const p = headerVariableProblem(value);
  return p === undefined ? undefined : `header value configuration: ${p}`;
}

function headerVariableProblem(v: string): string | undefined {
  enum S {
    Literal,
    VarName,
    ExpectArray,
    ExpectString,
    String,
    ExpectDelimOrEnd,
    ExpectArgsEnd,
    ExpectVarEnd,
  }
  let state = S.Literal;
  for (let pos = 0; pos < v.length; pos++) {
    const ch = v[pos];
    const hasNext = pos + 1 < v.length;
    switch (state) {
      case S.Literal:
        if (ch !== "%") break;
        if (!hasNext) return "invalid header configuration. Un-escaped %";
        if (v[pos + 1] === "%") {
          pos++;
          break;
        }
        state = S.VarName;
        break;
      case S.VarName:
        if (ch === "%") state = S.Literal;
        else if (ch === "(") state = S.ExpectArray;
        break;
      case S.ExpectArray:
        if (ch === "[") state = S.ExpectString;
        else if (ch !== " ") state = S.String;
        break;
      case S.ExpectDelimOrEnd:
        if (ch === ",") state = S.ExpectString;
        else if (ch === "]") state = S.ExpectArgsEnd;
        else if (ch !== " ")
          return "invalid header configuration. Expecting ',', ']', or whitespace";
        break;
      case S.ExpectString:
        if (ch === '"') state = S.String;
        else if (ch !== " ") return "invalid header configuration. Expecting '\"'";
        break;
      case S.String:
        if (ch === "\\") {
          if (!hasNext)
            return "invalid header configuration. Un-terminated backslash in JSON string";
          pos++;
        } else if (ch === ")") state = S.ExpectVarEnd;
        else if (ch === '"') state = S.ExpectDelimOrEnd;
        break;
      case S.ExpectArgsEnd:
        if (ch === ")") state = S.ExpectVarEnd;
        else if (ch !== " ")
          return "invalid header configuration. Expecting ')' or whitespace after '{}', but found '{}'";
        break;
      case S.ExpectVarEnd:
        if (ch === "%") state = S.Literal;
        else if (ch !== " ")
          return "invalid header configuration. Expecting '%' or whitespace after";
        break;
    }
  }
  return state === S.Literal
    ? undefined
    : `invalid header configuration. Un-terminated variable expression '${v}'`;
}

// ---- exportTo (validateExportTo) and selectors ----

export function exportToProblems(
  namespace: string,
  exportTo: unknown,
  isServiceEntry: boolean,
  isDRWithSelector: boolean,
): string[] {
  const values = list(exportTo).map(str);
  if (values.length === 0) return [];
  const out: string[] = [];
  const set = new Set<string>();
  for (const e of values) {
    const key = e === "." ? namespace : e;
    if (set.has(key)) {
      out.push(
        key !== e
          ? `duplicate entries in exportTo: . and current namespace ${namespace}`
          : `duplicate entries in exportTo for entry ${e}`,
      );
    } else if (isServiceEntry && e === "~") {
      set.add(key);
    } else {
      const p =
        key === "." || key === "*"
          ? undefined
          : key === "~"
            ? "exportTo ~ (none) is not allowed for Istio configuration objects"
            : isDNS1123Label(key)
              ? undefined
              : "only .,*, or a valid DNS 1123 label is allowed as exportTo entry";
      if (p !== undefined) out.push(p);
      else set.add(key);
    }
  }
  if (isDRWithSelector && set.size > 0) {
    if (set.has(namespace)) {
      if (set.size > 1)
        out.push(
          "destination rule with workload selector cannot have multiple entries in exportTo",
        );
    } else {
      out.push(
        "destination rule with workload selector cannot have exportTo beyond current namespace",
      );
    }
  }
  if (set.has("*") && values.length > 1) {
    out.push("cannot have both public (*) and non-public exportTo values for a resource");
  }
  if (set.has("~") && values.length > 1)
    out.push("cannot export service entry to no one (~) and someone");
  return out;
}

/**
 * ValidateAlphaWorkloadSelector (networking `workloadSelector.labels`): errors for empty keys and
 * wildcards; the "without labels" warning is returned for the caller to word.
 */
export function alphaSelector(
  r: Report,
  at: readonly PathSeg[],
  selector: unknown,
): { errors: boolean; noLabels: boolean } {
  const s = obj(selector);
  if (s === undefined) return { errors: false, noLabels: false };
  let errors = false;
  for (const [k, v] of entries(s.labels)) {
    if (k === "") {
      r.error([...at, "labels"], `empty key is not supported in selector: ${q(`${k}=${str(v)}`)}`);
      errors = true;
    }
    if (k.includes("*") || str(v).includes("*")) {
      r.error(
        [...at, "labels", k],
        `wildcard is not supported in selector: ${q(`${k}=${str(v)}`)}`,
      );
      errors = true;
    }
  }
  return { errors, noLabels: len(s.labels) === 0 };
}

/** validateWorkloadSelector (type.v1beta1 `selector.matchLabels`) */
export function checkBetaSelector(r: Report, at: readonly PathSeg[], selector: unknown): void {
  const s = obj(selector);
  if (s === undefined) return;
  for (const [k, v] of entries(s.matchLabels)) {
    if (k === "")
      r.error(
        [...at, "matchLabels"],
        `empty key is not supported in selector: ${q(`${k}=${str(v)}`)}`,
      );
    if (k.includes("*") || str(v).includes("*")) {
      r.error(
        [...at, "matchLabels", k],
        `wildcard is not supported in selector: ${q(`${k}=${str(v)}`)}`,
      );
    }
  }
  if (len(s.matchLabels) === 0) r.warn(at, "workload selector specified without labels");
}

const TARGET_KINDS =
  "[core/v1/Service networking.istio.io/v1/ServiceEntry gateway.networking.k8s.io/v1/Gateway gateway.networking.k8s.io/v1/GatewayClass]";

/** validateOneOfSelectorType + validatePolicyTargetReference(s) */
export function checkSelectorAndTargets(r: Report, spec: Obj, targetRef = true): void {
  let set = 0;
  if (isSet(spec.selector)) set++;
  if (targetRef && isSet(spec.targetRef)) set++;
  if (len(spec.targetRefs) > 0) set++;
  if (set > 1) r.error(["spec"], "only one of targetRefs or workloadSelector can be set");
  checkBetaSelector(r, ["spec", "selector"], spec.selector);
  const refs: Array<[unknown, PathSeg[]]> = [];
  if (targetRef && isSet(spec.targetRef)) refs.push([spec.targetRef, ["spec", "targetRef"]]);
  list(spec.targetRefs).forEach((t, i) => {
    refs.push([t, ["spec", "targetRefs", i]]);
  });
  for (const [t, at] of refs) {
    const ref = obj(t);
    if (ref === undefined) continue;
    if (str(ref.name) === "") r.error(at, "targetRef name must be set");
    if (str(ref.namespace) !== "") {
      r.error(
        at,
        "targetRef namespace must not be set; cross namespace referencing is not supported",
      );
    }
    const group = str(ref.group) === "" ? "core" : str(ref.group);
    const kind = str(ref.kind);
    const ok =
      (group === "core" && kind === "Service") ||
      (group === "networking.istio.io" && kind === "ServiceEntry") ||
      (group === "gateway.networking.k8s.io" && (kind === "Gateway" || kind === "GatewayClass"));
    if (!ok)
      r.error(at, `targetRef must be to one of ${TARGET_KINDS} but was ${str(ref.group)}/${kind}`);
  }
}

/** ValidatePercent */
export function percentProblem(v: number): string | undefined {
  return v < 0 || v > 100 ? `percentage ${v} is not in range 0..100` : undefined;
}
