// DestinationRule: istio/istio pkg/config/validation ValidateDestinationRule, validateTrafficPolicy
// and its parts (validation.go), agent.ValidateTLS and agent.ValidateLocalityLbSetting.
import {
  checkBetaSelector,
  checkDuration,
  checkLabels,
  entries,
  exportToProblems,
  fqdnProblem,
  ipProblem,
  isSet,
  len,
  list,
  num,
  type Obj,
  obj,
  percentProblem,
  portProblem,
  str,
  wildcardDomainProblem,
  wrapped,
} from "./common.js";
import type { PathSeg, Report } from "./report.js";
import { subsetNameProblem } from "./virtual-service.js";

type At = readonly PathSeg[];

export function checkDestinationRule(r: Report, spec: Obj, namespace: string): void {
  const host = wildcardDomainProblem(str(spec.host));
  if (host !== undefined) r.error(["spec", "host"], host);
  checkTrafficPolicy(r, ["spec", "trafficPolicy"], spec.trafficPolicy, namespace);
  const names = new Set<string>();
  list(spec.subsets).forEach((s, i) => {
    const at: PathSeg[] = ["spec", "subsets", i];
    const subset = obj(s);
    if (subset === undefined) {
      r.error(at, "subset may not be null");
      return;
    }
    const name = str(subset.name);
    if (names.has(name)) r.error([...at, "name"], `duplicate subset names: ${name}`);
    names.add(name);
    const p = subsetNameProblem(name);
    if (p !== undefined) r.error([...at, "name"], p);
    checkLabels(r, [...at, "labels"], subset.labels);
    // validateSubset joins with appendErrors: a subset policy's warnings are dropped.
    checkTrafficPolicy(r.errorsOnly(), [...at, "trafficPolicy"], subset.trafficPolicy, namespace);
  });
  for (const p of exportToProblems(namespace, spec.exportTo, false, isSet(spec.workloadSelector))) {
    r.error(["spec", "exportTo"], p);
  }
  checkBetaSelector(r, ["spec", "workloadSelector"], spec.workloadSelector);
}

/** validateTrafficPolicy */
export function checkTrafficPolicy(r: Report, at: At, policy: unknown, namespace: string): void {
  const p = obj(policy);
  if (p === undefined) return;
  const fields = [
    "outlierDetection",
    "connectionPool",
    "loadBalancer",
    "tls",
    "portLevelSettings",
    "tunnel",
    "proxyProtocol",
    "retryBudget",
  ];
  if (!fields.some((f) => isSet(p[f]))) {
    r.error(at, "traffic policy must have at least one field");
    return;
  }
  if (isSet(p.tunnel) && isSet(p.proxyProtocol)) {
    r.error(at, "tunnel and proxyProtocol must not be set together");
    return;
  }
  checkOutlierDetection(r, [...at, "outlierDetection"], p.outlierDetection);
  checkConnectionPool(r, [...at, "connectionPool"], p.connectionPool);
  checkLoadBalancer(r, [...at, "loadBalancer"], p.loadBalancer, p.outlierDetection);
  checkClientTLS(r, [...at, "tls"], p.tls, namespace);
  // validatePortTrafficPolicies joins with appendErrors: port-level warnings are dropped.
  const er = r.errorsOnly();
  list(p.portLevelSettings).forEach((s, i) => {
    const pat: PathSeg[] = [...at, "portLevelSettings", i];
    const t = obj(s);
    if (t === undefined) {
      r.error(pat, "traffic policy may not be null");
      return;
    }
    if (!isSet(t.port)) r.error(pat, "portTrafficPolicy must have valid port");
    if (
      !isSet(t.outlierDetection) &&
      !isSet(t.connectionPool) &&
      !isSet(t.loadBalancer) &&
      !isSet(t.tls)
    ) {
      r.error(pat, "port traffic policy must have at least one field");
    } else {
      checkOutlierDetection(er, [...pat, "outlierDetection"], t.outlierDetection);
      checkConnectionPool(er, [...pat, "connectionPool"], t.connectionPool);
      checkLoadBalancer(er, [...pat, "loadBalancer"], t.loadBalancer, t.outlierDetection);
      checkClientTLS(r, [...pat, "tls"], t.tls, namespace);
    }
  });
  const tunnel = obj(p.tunnel);
  if (tunnel !== undefined) {
    const proto = str(tunnel.protocol);
    if (proto !== "" && proto !== "CONNECT" && proto !== "POST") {
      r.error([...at, "tunnel", "protocol"], 'tunnel protocol must be "CONNECT" or "POST"');
    }
    const target = str(tunnel.targetHost);
    const fq = fqdnProblem(target);
    const ip = ipProblem(target);
    if (fq !== undefined && ip !== undefined) {
      r.error(
        [...at, "tunnel", "targetHost"],
        `tunnel target host must be valid FQDN or IP address: ${fq}; ${ip}`,
      );
    }
    const port = portProblem(num(tunnel.targetPort));
    if (port !== undefined)
      r.error([...at, "tunnel", "targetPort"], `tunnel target port is invalid: ${port}`);
  }
  const pp = obj(p.proxyProtocol);
  if (pp !== undefined) {
    const v =
      pp.version === "V1"
        ? 0
        : pp.version === "V2"
          ? 1
          : typeof pp.version === "number"
            ? pp.version
            : 0;
    if (v !== 0 && v !== 1)
      r.error([...at, "proxyProtocol", "version"], `proxy protocol version is invalid: ${v}`);
  }
}

/** validateOutlierDetection */
export function checkOutlierDetection(r: Report, at: At, outlier: unknown): void {
  const o = obj(outlier);
  if (o === undefined) return;
  checkDuration(r, [...at, "baseEjectionTime"], o.baseEjectionTime);
  if (num(o.consecutiveErrors) !== 0) {
    r.warn(
      [...at, "consecutiveErrors"],
      "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
    );
  }
  if (
    o.splitExternalLocalOriginErrors !== true &&
    (wrapped(o.consecutiveLocalOriginFailures) ?? 0) > 0
  ) {
    r.error(
      [...at, "consecutiveLocalOriginFailures"],
      "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
    );
  }
  checkDuration(r, [...at, "interval"], o.interval);
  for (const f of ["maxEjectionPercent", "minHealthPercent"]) {
    const p = percentProblem(num(o[f]));
    if (p !== undefined) r.error([...at, f], p);
  }
}

/** validateConnectionPool */
export function checkConnectionPool(r: Report, at: At, settings: unknown): void {
  const s = obj(settings);
  if (s === undefined) return;
  if (!isSet(s.http) && !isSet(s.tcp)) {
    r.error(at, "connection pool must have at least one field");
    return;
  }
  const http = obj(s.http);
  if (http !== undefined) {
    const h = (f: string, msg: string): void => {
      if (num(http[f]) < 0) r.error([...at, "http", f], msg);
    };
    h("http1MaxPendingRequests", "http1 max pending requests must be non-negative");
    h("http2MaxRequests", "http2 max requests must be non-negative");
    h("maxRequestsPerConnection", "max requests per connection must be non-negative");
    h("maxRetries", "max retries must be non-negative");
    checkDuration(r, [...at, "http", "idleTimeout"], http.idleTimeout);
    if (http.h2UpgradePolicy === "UPGRADE" && http.useClientProtocol === true) {
      r.error(
        [...at, "http"],
        "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
      );
    }
    h("maxConcurrentStreams", "max concurrent streams must be non-negative");
    const ka = obj(http.http2KeepAlive);
    if (ka !== undefined) {
      if (!isSet(ka.interval))
        r.error([...at, "http", "http2KeepAlive"], "http2 keepalive interval is required");
      else checkDuration(r, [...at, "http", "http2KeepAlive", "interval"], ka.interval);
      if (!isSet(ka.timeout))
        r.error([...at, "http", "http2KeepAlive"], "http2 keepalive timeout is required");
      else checkDuration(r, [...at, "http", "http2KeepAlive", "timeout"], ka.timeout);
    }
  }
  const tcp = obj(s.tcp);
  if (tcp !== undefined) {
    if (num(tcp.maxConnections) < 0)
      r.error([...at, "tcp", "maxConnections"], "max connections must be non-negative");
    checkDuration(r, [...at, "tcp", "connectTimeout"], tcp.connectTimeout);
    checkDuration(r, [...at, "tcp", "maxConnectionDuration"], tcp.maxConnectionDuration);
    // 0s disables the idle timeout, so it is not checked.
    if (isSet(tcp.idleTimeout) && !/^[+-]?0+(\.0*)?[a-zµμ]*$/.test(str(tcp.idleTimeout))) {
      checkDuration(r, [...at, "tcp", "idleTimeout"], tcp.idleTimeout);
    }
    const ka = obj(tcp.tcpKeepalive);
    if (ka !== undefined) {
      checkDuration(r, [...at, "tcp", "tcpKeepalive", "time"], ka.time);
      checkDuration(r, [...at, "tcp", "tcpKeepalive", "interval"], ka.interval);
    }
  }
}

/** Envoy's isPrime (Istio copies it so its answer matches Envoy's). */
function isPrime(x: number): boolean {
  if (x !== 0 && x < 4) return true;
  if (x % 2 === 0) return false;
  const limit = Math.floor(Math.sqrt(x));
  for (let f = 3; f <= limit; f += 2) if (x % f === 0) return false;
  return true;
}

const TOPOLOGY = new Set([
  "topology.kubernetes.io/region",
  "topology.kubernetes.io/zone",
  "topology.istio.io/subzone",
]);

/** validateLoadBalancer */
export function checkLoadBalancer(r: Report, at: At, settings: unknown, outlier: unknown): void {
  const s = obj(settings);
  if (s === undefined) return;
  const ch = obj(s.consistentHash);
  if (ch !== undefined) {
    const cat: PathSeg[] = [...at, "consistentHash"];
    const cookie = obj(ch.httpCookie);
    if (cookie !== undefined && str(cookie.name) === "")
      r.error([...cat, "httpCookie"], "name required for HttpCookie");
    if (cookie !== undefined) {
      const seen = new Set<string>();
      list(cookie.attributes).forEach((a, i) => {
        const name = str(obj(a)?.name);
        const aat: PathSeg[] = [...cat, "httpCookie", "attributes", i];
        if (name === "") {
          r.error(aat, "cookie attribute name cannot be empty");
          return;
        }
        if (seen.has(name)) r.error(aat, `duplicate cookie attribute name: ${name}`);
        else seen.add(name);
      });
    }
    const ring = num(ch.minimumRingSize);
    if (ring !== 0) {
      r.warn(
        [...cat, "minimumRingSize"],
        "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
      );
      if (isSet(ch.ringHash) || isSet(ch.maglev)) {
        r.error(cat, "only one of MinimumRingSize or Maglev/Ringhash can be specified");
      }
    }
    const ml = obj(ch.maglev);
    if (ml !== undefined) {
      const size = num(ml.tableSize);
      if (size === 0) r.error([...cat, "maglev", "tableSize"], "tableSize must be set for maglev");
      if (size >= 5000011)
        r.error([...cat, "maglev", "tableSize"], "tableSize must be less than 5000011 for maglev");
      if (!isPrime(size))
        r.error([...cat, "maglev", "tableSize"], "tableSize must be a prime number for maglev");
    }
  }
  if (isSet(s.localityLbSetting) && isSet(s.zoneAwareLbSetting)) {
    r.error(at, "only one of localityLbSetting and zoneAwareLbSetting can be set");
  }
  checkLocalityLb(r, [...at, "localityLbSetting"], s.localityLbSetting, outlier);
  checkZoneAwareLb(r, [...at, "zoneAwareLbSetting"], s.zoneAwareLbSetting, outlier);
  const warm = obj(s.warmup);
  if (warm !== undefined) {
    if (!isSet(warm.duration)) r.error([...at, "warmup"], "duration is required");
    else checkDuration(r, [...at, "warmup", "duration"], warm.duration);
    if ((wrapped(warm.minimumPercent) ?? 0) > 100) {
      r.error(
        [...at, "warmup", "minimumPercent"],
        "minimumPercent value should be less than or equal to 100",
      );
    }
    if (isSet(warm.aggression) && (wrapped(warm.aggression) ?? 0) <= 0) {
      r.error([...at, "warmup", "aggression"], "aggression should be greater than 0");
    }
  }
}

/** agent.ValidateLocalityLbSetting (returns at its first hard error, as Istio does) */
export function checkLocalityLb(r: Report, at: At, setting: unknown, outlier: unknown): void {
  const lb = obj(setting);
  if (lb === undefined) return;
  const distribute = list(lb.distribute);
  const failover = list(lb.failover);
  const priority = list(lb.failoverPriority).map(str);
  if (distribute.length > 0 && failover.length > 0) {
    r.error(at, "can not simultaneously specify 'distribute' and 'failover'");
    return;
  }
  if (failover.length > 0) {
    const label = priority.find((p) => TOPOLOGY.has(p));
    if (label !== undefined) {
      r.error(
        at,
        `can not simultaneously set 'failover' and topology label '${label}' in 'failover_priority'`,
      );
      return;
    }
  }
  const src: string[] = [];
  for (let i = 0; i < distribute.length; i++) {
    const d = obj(distribute[i]) ?? {};
    src.push(str(d.from));
    let total = 0;
    const dest: string[] = [];
    for (const [loc, w] of entries(d.to)) {
      dest.push(loc);
      const weight = num(w);
      if (weight <= 0 || weight > 100) {
        r.error([...at, "distribute", i, "to", loc], "locality weight must be in range [1, 100]");
        return;
      }
      total += weight;
    }
    if (total !== 100) {
      r.error([...at, "distribute", i, "to"], `total locality weight ${total} != 100`);
      return;
    }
    const p = localitiesProblem(dest);
    if (p !== undefined) r.error([...at, "distribute", i, "to"], p);
  }
  const p = localitiesProblem(src);
  if (p !== undefined) r.error([...at, "distribute"], p);
  if ((failover.length !== 0 || priority.length !== 0) && !isSet(outlier)) {
    r.warn(at, "outlier detection policy must be provided for failover");
  }
  failover.forEach((f, i) => {
    const from = str(obj(f)?.from);
    const to = str(obj(f)?.to);
    const fat: PathSeg[] = [...at, "failover", i];
    if (from === to) r.error(fat, "locality lb failover settings must specify different regions");
    if (from.includes("/") || to.includes("/"))
      r.error(fat, "locality lb failover only specify region");
    if (from.includes("*") || to.includes("*"))
      r.error(fat, "locality lb failover region should not contain '*' wildcard");
  });
}

/** agent.ValidateZoneAwareLbSetting */
export function checkZoneAwareLb(r: Report, at: At, setting: unknown, outlier: unknown): void {
  const lb = obj(setting);
  if (lb === undefined) return;
  const priority = list(lb.failoverPriority).map(str);
  priority.forEach((label, i) => {
    if (TOPOLOGY.has(label)) {
      r.error(
        [...at, "failoverPriority", i],
        `'failover_priority' for zone aware lb must not use topology label '${label}'; region- and zone-level routing are handled automatically`,
      );
    }
  });
  const failover = list(lb.failover);
  if ((failover.length !== 0 || priority.length !== 0) && !isSet(outlier)) {
    r.warn(at, "outlier detection policy must be provided for failover");
  }
  failover.forEach((f, i) => {
    const from = str(obj(f)?.from);
    const to = str(obj(f)?.to);
    const fat: PathSeg[] = [...at, "failover", i];
    if (from === to) r.error(fat, "zone aware lb failover settings must specify different regions");
    if (from.includes("/") || to.includes("/")) {
      r.error(
        fat,
        "zone aware lb failover only specifies region; zone and subzone failover are handled automatically",
      );
    }
    if (from.includes("*") || to.includes("*"))
      r.error(fat, "zone aware lb failover region should not contain '*' wildcard");
  });
}

/** agent.validateLocalities: no empty parts, one trailing wildcard, no overlaps. */
export function localitiesProblem(localities: string[]): string | undefined {
  const tree = new Map<string, Map<string, Map<string, boolean>>>();
  const overlap = (l: string): string => `locality ${l} overlap with previous specified ones`;
  for (const l of localities) {
    const stars = l.split("*").length - 1;
    if (stars > 0 && (stars > 1 || !l.endsWith("*"))) {
      return `locality ${l} wildcard '*' number can not exceed 1 and must be in the end`;
    }
    if (tree.has("*")) return overlap(l);
    const parts = splitN(l, "/", 3);
    if (parts.some((p) => p === ""))
      return `locality ${l} must not contain empty region/zone/subzone info`;
    const [region = "", zone = "", sub = ""] = parts;
    const zones = tree.get(region);
    if (parts.length === 1) {
      if (zones !== undefined) return overlap(l);
      tree.set(region, new Map([["*", new Map([["*", true]])]]));
    } else if (parts.length === 2) {
      if (zones !== undefined) {
        if (zones.has("*") || zones.has(zone)) return overlap(l);
        zones.set(zone, new Map([["*", true]]));
      } else tree.set(region, new Map([[zone, new Map([["*", true]])]]));
    } else if (zones !== undefined) {
      if (zones.has("*")) return overlap(l);
      const subs = zones.get(zone);
      if (subs !== undefined) {
        if (subs.get("*") === true || subs.get(sub) === true) return overlap(l);
        subs.set(sub, true);
      } else zones.set(zone, new Map([[sub, true]]));
    } else tree.set(region, new Map([[zone, new Map([[sub, true]])]]));
  }
  return undefined;
}

function splitN(s: string, sep: string, n: number): string[] {
  const parts = s.split(sep);
  if (parts.length <= n) return parts;
  return [...parts.slice(0, n - 1), parts.slice(n - 1).join(sep)];
}

/** agent.ValidateTLS (client side) */
export function checkClientTLS(r: Report, at: At, settings: unknown, namespace: string): void {
  const t = obj(settings);
  if (t === undefined) return;
  const mode = str(t.mode);
  const cred = str(t.credentialName);
  if (cred.startsWith("configmap://")) {
    const rest = cred.slice("configmap://".length);
    const slash = rest.indexOf("/");
    const ns = slash >= 0 ? rest.slice(0, slash) : namespace;
    const name = slash >= 0 ? rest.slice(slash + 1) : rest;
    if (name === "" || ns === "" || name.includes("/")) {
      r.error(
        [...at, "credentialName"],
        `invalid configmap:// credentialName: invalid resource name ${JSON.stringify(cred)}`,
      );
    } else if (ns !== namespace || namespace === "") {
      r.error(
        [...at, "credentialName"],
        `invalid configmap:// credentialName: namespace must match the configuration namespace ${JSON.stringify(namespace)}`,
      );
    }
  }
  const insecure = t.insecureSkipVerify === true || obj(t.insecureSkipVerify)?.value === true;
  const hasSans = isSet(t.subjectAltNames) && len(t.subjectAltNames) > 0;
  if (insecure) {
    if (mode === "SIMPLE" && (str(t.caCertificates) !== "" || cred !== "" || hasSans)) {
      r.error(
        at,
        "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
      );
    }
    if (mode === "MUTUAL" && (str(t.caCertificates) !== "" || hasSans)) {
      r.error(
        at,
        "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
      );
    }
  }
  if ((mode === "SIMPLE" || mode === "MUTUAL") && cred !== "") {
    if (
      str(t.clientCertificate) !== "" ||
      str(t.caCertificates) !== "" ||
      str(t.privateKey) !== "" ||
      str(t.caCrl) !== ""
    ) {
      r.error(
        at,
        "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
      );
    }
    return;
  }
  if (mode === "MUTUAL") {
    if (str(t.clientCertificate) === "") r.error(at, "client certificate required for mutual tls");
    if (str(t.privateKey) === "") r.error(at, "private key required for mutual tls");
  }
}
