// VirtualService: istio/istio pkg/config/validation ValidateVirtualService (validation.go) and
// validateHTTPRoute (virtualservice.go), with agent.ValidateHTTPRetry.

import { isIP } from "../net.js";
import {
  checkDuration,
  checkLabels,
  corsHeaderNameProblem,
  entries,
  exportToProblems,
  f6,
  fqdnProblem,
  gatewayWildcardDomainProblem,
  headerOpNameProblem,
  headerSetNameProblem,
  headerValueProblem,
  hostMatches,
  hostSubsetOf,
  ipSubnetProblem,
  isAuthorityHeader,
  isDNS1123Label,
  isJwtClaimRoute,
  isSet,
  len,
  list,
  matchHeaderNameProblem,
  num,
  type Obj,
  obj,
  parseDuration,
  portProblem,
  q,
  regexProblem,
  str,
  stringMatchProblem,
  stringMatchRegexpProblem,
  utf8Length,
  wildcardDomainProblem,
  wrapped,
} from "./common.js";
import type { PathSeg, Report } from "./report.js";

type At = readonly PathSeg[];

export function checkVirtualService(
  r: Report,
  spec: Obj,
  namespace: string,
  annotations: Obj,
): void {
  const hosts = list(spec.hosts).map(str);
  const gateways = list(spec.gateways).map(str);
  if (hosts.length === 0) {
    if (gateways.length !== 0)
      r.error(["spec", "gateways"], "delegate virtual service must have no gateways specified");
    if (len(spec.tls) !== 0)
      r.error(["spec", "tls"], "delegate virtual service must have no tls route specified");
    if (len(spec.tcp) !== 0)
      r.error(["spec", "tcp"], "delegate virtual service must have no tcp route specified");
  }
  const gatewaySemantics = annotations["internal.istio.io/route-semantics"] === "gateway";
  const boundToGateway = !gateways.includes("mesh");
  let appliesToGateway = false;
  let appliesToMesh = true;
  if (gateways.length !== 0) {
    checkGatewayNames(r, ["spec", "gateways"], gateways, gatewaySemantics);
    appliesToGateway = boundToGateway;
    appliesToMesh = !appliesToGateway;
  }
  if (!appliesToGateway) {
    list(spec.http).forEach((h, i) => {
      list(obj(h)?.match).forEach((m, j) => {
        for (const field of ["headers", "withoutHeaders"]) {
          for (const [key] of entries(obj(m)?.[field])) {
            if (isJwtClaimRoute(key)) {
              r.error(
                ["spec", "http", i, "match", j, field, key],
                `JWT claim based routing (key: ${key}) is only supported for gateway, found no gateways: [${gateways.join(" ")}]`,
              );
            }
          }
        }
      });
    });
  }
  const sni = list(spec.tls).some((t) =>
    list(obj(t)?.match).some((m) => len(obj(m)?.sniHosts) > 0),
  );
  let allHostsValid = true;
  hosts.forEach((h, i) => {
    const err = appliesToGateway ? gatewayWildcardDomainProblem(sni, h) : wildcardDomainProblem(h);
    if (err !== undefined) {
      if (!isIP(h)) {
        r.error(["spec", "hosts", i], err);
        allHostsValid = false;
      }
    } else if (appliesToMesh && h === "*") {
      r.error(
        ["spec", "hosts", i],
        "wildcard host * is not allowed for virtual services bound to the mesh gateway",
      );
      allHostsValid = false;
    }
  });
  if (allHostsValid) {
    for (let i = 0; i < hosts.length; i++) {
      for (let j = i + 1; j < hosts.length; j++) {
        const a = hosts[i] ?? "";
        const b = hosts[j] ?? "";
        if (hostMatches(a, b))
          r.error(["spec", "hosts", j], `duplicate hosts in virtual service: ${a} & ${b}`);
      }
    }
  }
  if (len(spec.http) === 0 && len(spec.tcp) === 0 && len(spec.tls) === 0) {
    r.error(["spec"], "http, tcp or tls must be provided in virtual service");
  }
  list(spec.http).forEach((h, i) => {
    const at: PathSeg[] = ["spec", "http", i];
    const route = obj(h);
    if (route === undefined) r.error(at, "http route may not be null");
    else checkHTTPRoute(r, at, route, hosts.length === 0, gatewaySemantics);
  });
  list(spec.tls).forEach((t, i) => {
    const route = obj(t);
    if (route !== undefined)
      checkTLSRoute(r, ["spec", "tls", i], route, hosts, boundToGateway, gatewaySemantics);
  });
  list(spec.tcp).forEach((t, i) => {
    const route = obj(t);
    if (route !== undefined) checkTCPRoute(r, ["spec", "tcp", i], route, gatewaySemantics);
  });
  for (const p of exportToProblems(namespace, spec.exportTo, false, false))
    r.error(["spec", "exportTo"], p);
  analyzeUnreachable(r, "http", list(spec.http));
  analyzeUnreachable(r, "tcp", list(spec.tcp));
  analyzeUnreachable(r, "tls", list(spec.tls));
}

/** validateGatewayNames; like Istio it stops at the first name without a namespace. */
export function checkGatewayNames(
  r: Report,
  at: At,
  names: string[],
  gatewaySemantics: boolean,
): void {
  for (let i = 0; i < names.length; i++) {
    const name = names[i] ?? "";
    const slash = name.indexOf("/");
    if (slash < 0) {
      if (name.includes(".")) {
        const parts = name.split(".");
        r.warn(
          [...at, i],
          `using legacy gatewayName format ${q(name)}; prefer the <namespace>/<name> format: ${q(`${parts[1]}/${parts[0]}`)}`,
        );
      }
      const p = fqdnProblem(name);
      if (p !== undefined) r.error([...at, i], p);
      return;
    }
    const ns = name.slice(0, slash);
    const gw = name.slice(slash + 1);
    if (ns === "" || gw === "")
      r.error([...at, i], "config namespace and gateway name cannot be empty");
    if (!isDNS1123Label(ns)) r.error([...at, i], `invalid value for namespace: ${q(ns)}`);
    if (!isDNS1123Label(gw) && !gatewaySemantics)
      r.error([...at, i], `invalid value for gateway name: ${q(gw)}`);
  }
}

function checkHeaderOperations(r: Report, at: At, headers: unknown): void {
  const h = obj(headers);
  if (h === undefined) return;
  const req = obj(h.request);
  const resp = obj(h.response);
  for (const op of ["add", "set"]) {
    for (const [name, val] of entries(req?.[op])) {
      const p = headerSetNameProblem(name);
      if (p !== undefined) r.error([...at, "request", op, name], p);
      const v = headerValueProblem(str(val));
      if (v !== undefined) r.error([...at, "request", op, name], v);
    }
  }
  list(req?.remove).forEach((name, i) => {
    const p = headerOpNameProblem(str(name));
    if (p !== undefined) r.error([...at, "request", "remove", i], p);
  });
  for (const op of ["add", "set"]) {
    for (const [name, val] of entries(resp?.[op])) {
      const p = headerOpNameProblem(name);
      if (p !== undefined) r.error([...at, "response", op, name], p);
      const v = headerValueProblem(str(val));
      if (v !== undefined) r.error([...at, "response", op, name], v);
    }
  }
  list(resp?.remove).forEach((name, i) => {
    const p = headerOpNameProblem(str(name));
    if (p !== undefined) r.error([...at, "response", "remove", i], p);
  });
}

/** validateHTTPRoute */
export function checkHTTPRoute(
  r: Report,
  at: At,
  http: Obj,
  delegate: boolean,
  gatewaySemantics: boolean,
): void {
  // Each part is checked only when present: the happy path builds no paths.
  checkRouteConflict(r, at, http, delegate);
  if (isSet(http.match)) checkMatchRequests(r, at, http);
  if (isSet(http.headers)) checkHeaderOperations(r, [...at, "headers"], http.headers);
  if (isSet(http.corsPolicy)) checkCORS(r, [...at, "corsPolicy"], http.corsPolicy);
  if (isSet(http.fault)) checkFault(r, [...at, "fault"], http.fault);
  if (isSet(http.mirrorPercent)) {
    const v = wrapped(http.mirrorPercent) ?? 0;
    if (v > 100)
      r.error(
        [...at, "mirrorPercent"],
        `mirror_percent must have a max value of 100 (it has ${v})`,
      );
    r.warn(
      [...at, "mirrorPercent"],
      'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead',
    );
  }
  if (isSet(http.mirrorPercentage)) {
    const v = num(obj(http.mirrorPercentage)?.value);
    if (v > 100)
      r.error(
        [...at, "mirrorPercentage"],
        `mirror_percentage must have a max value of 100 (it has ${f6(v)})`,
      );
    if (v < 0)
      r.error(
        [...at, "mirrorPercentage"],
        `mirror_percentage must have a min value of 0 (it has ${f6(v)})`,
      );
  }
  if (isSet(http.mirror)) checkDestination(r, [...at, "mirror"], http.mirror);
  list(http.mirrors).forEach((m, i) => {
    const mat: PathSeg[] = [...at, "mirrors", i];
    const mirror = obj(m);
    if (mirror === undefined) {
      r.error(mat, "mirror cannot be null");
      return;
    }
    if (!isSet(mirror.destination)) {
      r.error(mat, "destination is required for mirrors");
      return;
    }
    checkDestination(r, [...mat, "destination"], mirror.destination);
    if (isSet(mirror.percentage)) {
      const v = num(obj(mirror.percentage)?.value);
      if (v > 100)
        r.error(
          [...mat, "percentage"],
          `mirror percentage must have a max value of 100 (it has ${f6(v)})`,
        );
      if (v < 0)
        r.error(
          [...mat, "percentage"],
          `mirror percentage must have a min value of 0 (it has ${f6(v)})`,
        );
    }
  });
  if (isSet(http.redirect)) checkRedirect(r, [...at, "redirect"], http.redirect, list(http.match));
  if (isSet(http.directResponse))
    checkDirectResponse(r, [...at, "directResponse"], http.directResponse);
  if (isSet(http.retries)) checkRetry(r, [...at, "retries"], http.retries);
  if (isSet(http.rewrite)) checkRewrite(r, [...at, "rewrite"], http.rewrite);
  checkAuthorityRewrite(r, at, http);
  checkRouteDestinations(r, [...at, "route"], list(http.route), gatewaySemantics, true);
  if (isSet(http.timeout)) checkDuration(r, [...at, "timeout"], http.timeout);
}

/** validateHTTPRouteConflict */
function checkRouteConflict(r: Report, at: At, http: Obj, delegate: boolean): void {
  const name = str(http.name);
  const routes = len(http.route);
  if (!delegate && isSet(http.delegate)) {
    if (isSet(http.redirect))
      r.error([...at, "redirect"], `root HTTP route ${name} must not specify redirect`);
    if (routes > 0) r.error([...at, "route"], `root HTTP route ${name} must not specify route`);
    return;
  }
  if (delegate && isSet(http.delegate))
    r.error([...at, "delegate"], "delegate HTTP route cannot contain delegate");
  if (isSet(http.redirect)) {
    if (routes > 0) r.error(at, "HTTP route cannot contain both route and redirect");
    if (isSet(http.fault)) r.error(at, "HTTP route cannot contain both fault and redirect");
    if (isSet(http.rewrite))
      r.error(at, "HTTP route rule cannot contain both rewrite and redirect");
    if (isSet(http.directResponse))
      r.error(at, "HTTP route rule cannot contain both direct_response and redirect");
  } else if (isSet(http.directResponse)) {
    if (routes > 0) r.error(at, "HTTP route cannot contain both route and direct_response");
    if (isSet(http.fault)) r.error(at, "HTTP route cannot contain both fault and direct_response");
    if (isSet(http.rewrite))
      r.error(at, "HTTP route rule cannot contain both rewrite and direct_response");
  } else if (routes === 0) {
    r.error(at, "HTTP route, redirect or direct_response is required");
  }
  if (isSet(http.mirror) && len(http.mirrors) > 0)
    r.error(at, "HTTP route cannot contain both mirror and mirrors");
}

/** validateHTTPRouteMatchRequest */
function checkMatchRequests(r: Report, at: At, http: Obj): void {
  list(http.match).forEach((m, i) => {
    const match = obj(m);
    if (match === undefined) return;
    const mat: PathSeg[] = [...at, "match", i];
    for (const [name, header] of entries(match.headers)) {
      const hat = [...mat, "headers", name];
      if (header === null) r.error(hat, `header match ${name} cannot be null`);
      const p = matchHeaderNameProblem(name) ?? undefined;
      if (p !== undefined) r.error(hat, p);
      const s = stringMatchProblem(header, "headers");
      if (s !== undefined) r.error(hat, s);
    }
    for (const [name, header] of entries(match.withoutHeaders)) {
      const hat = [...mat, "withoutHeaders", name];
      const p = matchHeaderNameProblem(name);
      if (p !== undefined) r.error(hat, p);
      // `*` is not a regex here: it is translated to a present match.
      if (header !== null && obj(header)?.regex !== "*") {
        const s = stringMatchProblem(header, "withoutHeaders");
        if (s !== undefined) r.error(hat, s);
      }
    }
    const uri = stringMatchRegexpProblem(match.uri, "uri");
    if (uri !== undefined) r.error([...mat, "uri"], uri);
    for (const field of ["scheme", "method", "authority"]) {
      const p = stringMatchProblem(match[field], field);
      if (p !== undefined) r.error([...mat, field], p);
    }
    for (const [name, qp] of entries(match.queryParams)) {
      const p = stringMatchProblem(qp, "queryParams");
      if (p !== undefined) r.error([...mat, "queryParams", name], p);
    }
  });
  list(http.match).forEach((m, i) => {
    const match = obj(m);
    if (match === undefined) return;
    const mat: PathSeg[] = [...at, "match", i];
    // validateHTTPRouteMatchRequest joins with appendErrors: gateway-name warnings are dropped.
    checkMatchCommon(r.errorsOnly(), mat, match);
    const sns = str(match.sourceNamespace);
    if (sns !== "" && !isDNS1123Label(sns))
      r.error([...mat, "sourceNamespace"], `sourceNamespace match ${sns} is invalid`);
  });
}

/** The port, sourceLabels and gateways every match kind checks. */
function checkMatchCommon(r: Report, at: At, match: Obj): void {
  if (num(match.port) !== 0) {
    const p = portProblem(num(match.port));
    if (p !== undefined) r.error([...at, "port"], p);
  }
  checkLabels(r, [...at, "sourceLabels"], match.sourceLabels);
  checkGatewayNames(r, [...at, "gateways"], list(match.gateways).map(str), false);
}

const CORS_METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "PATCH",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "*",
]);

/** validateCORSPolicy */
export function checkCORS(r: Report, at: At, policy: unknown): void {
  const p = obj(policy);
  if (p === undefined) return;
  list(p.allowOrigins).forEach((o, i) => {
    const origin = obj(o) ?? {};
    const match = str(origin.exact ?? origin.prefix ?? origin.regex);
    if (match === "") {
      r.error(
        [...at, "allowOrigins", i],
        `'${match}' is not a valid match type for CORS allow origins`,
      );
      return;
    }
    const e = stringMatchRegexpProblem(origin, "corsPolicy.allowOrigins");
    if (e !== undefined) r.error([...at, "allowOrigins", i], e);
  });
  list(p.allowMethods).forEach((m, i) => {
    if (!CORS_METHODS.has(str(m)))
      r.error([...at, "allowMethods", i], `${q(str(m))} is not a supported HTTP method`);
  });
  for (const field of ["allowHeaders", "exposeHeaders"]) {
    list(p[field]).forEach((h, i) => {
      const e = corsHeaderNameProblem(str(h));
      if (e !== undefined) r.error([...at, field, i], e);
    });
  }
  if (isSet(p.maxAge)) {
    checkDuration(r, [...at, "maxAge"], p.maxAge);
    const ns = parseDuration(str(p.maxAge));
    if (ns !== undefined && ns > 0n && ns % 1000000000n !== 0n) {
      r.error([...at, "maxAge"], "max_age duration is accurate only to seconds precision");
    }
  }
}

const GRPC_STATUS = new Set([
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
]);

/** validatePercentage */
function percentageProblem(p: unknown): string | undefined {
  if (!isSet(p)) return undefined;
  const v = num(obj(p)?.value);
  if (v < 0 || v > 100 || (v > 0 && v < 0.0001))
    return `percentage ${v} is neither 0.0, nor in range [0.0001, 100.0]`;
  return undefined;
}

export function httpStatusProblem(status: number): string | undefined {
  return status < 200 || status > 600 ? `HTTP status ${status} is not in range 200-599` : undefined;
}

/** validateHTTPFaultInjection */
export function checkFault(r: Report, at: At, fault: unknown): void {
  const f = obj(fault);
  if (f === undefined) return;
  if (!isSet(f.abort) && !isSet(f.delay))
    r.error(at, "HTTP fault injection must have an abort and/or a delay");
  const abort = obj(f.abort);
  if (abort !== undefined) {
    const p = percentageProblem(abort.percentage);
    if (p !== undefined) r.error([...at, "abort", "percentage"], p);
    if (isSet(abort.grpcStatus)) {
      const s = str(abort.grpcStatus);
      if (!GRPC_STATUS.has(s)) {
        r.error(
          [...at, "abort", "grpcStatus"],
          `gRPC status ${q(s)} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'`,
        );
      }
    } else if (isSet(abort.http2Error)) {
      r.error([...at, "abort", "http2Error"], "HTTP/2 abort fault injection not supported yet");
    } else if (isSet(abort.httpStatus)) {
      const s = httpStatusProblem(num(abort.httpStatus));
      if (s !== undefined) r.error([...at, "abort", "httpStatus"], s);
    }
    // An abort without an error type is only a warning in validateHTTPFaultInjectionAbort, and
    // validateHTTPFaultInjection joins it with appendErrors, which drops warnings: none is shown.
  }
  const delay = obj(f.delay);
  if (delay !== undefined) {
    const p = percentageProblem(delay.percentage);
    if (p !== undefined) r.error([...at, "delay", "percentage"], p);
    if (isSet(delay.fixedDelay)) checkDuration(r, [...at, "delay", "fixedDelay"], delay.fixedDelay);
    else if (isSet(delay.exponentialDelay)) {
      checkDuration(r, [...at, "delay", "exponentialDelay"], delay.exponentialDelay);
      r.error([...at, "delay", "exponentialDelay"], "exponentialDelay not supported yet");
    }
  }
}

/** validateDestination */
export function checkDestination(r: Report, at: At, destination: unknown): void {
  const d = obj(destination);
  if (d === undefined) return;
  const host = str(d.host);
  if (host === "*") r.error([...at, "host"], `invalid destination host ${host}`);
  else {
    const p = wildcardDomainProblem(host);
    if (p !== undefined) r.error([...at, "host"], p);
  }
  if (str(d.subset) !== "") {
    const p = subsetNameProblem(str(d.subset));
    if (p !== undefined) r.error([...at, "subset"], p);
  }
  const port = obj(d.port);
  if (port !== undefined) {
    const p = portProblem(num(port.number));
    if (p !== undefined) r.error([...at, "port", "number"], p);
  }
}

/** validateSubsetName */
export function subsetNameProblem(name: string): string | undefined {
  if (name === "") return "subset name cannot be empty";
  return isDNS1123Label(name) ? undefined : `subset name is invalid: ${name}`;
}

/** validateHTTPRedirect: the first problem only, as Istio returns. */
export function checkRedirect(r: Report, at: At, redirect: unknown, matches: unknown[]): void {
  const rd = obj(redirect);
  if (rd === undefined) return;
  const p = redirectProblem(rd, matches);
  if (p !== undefined) r.error(at, p);
}

function redirectProblem(rd: Obj, matches: unknown[]): string | undefined {
  const uri = str(rd.uri);
  const prefix = str(rd.prefixRewrite);
  if (uri !== "" && prefix !== "") return "redirect may only specify one of uri or prefix_rewrite";
  if (prefix !== "") {
    for (const m of matches) {
      const u = obj(obj(m)?.uri);
      if (u !== undefined && !("prefix" in u))
        return "redirect prefix_rewrite requires all URI matches to use prefix match type";
    }
  }
  if (
    uri === "" &&
    prefix === "" &&
    str(rd.authority) === "" &&
    !isSet(rd.port) &&
    !isSet(rd.derivePort) &&
    str(rd.scheme) === ""
  ) {
    return "redirect must specify URI, authority, scheme, or port";
  }
  const code = num(rd.redirectCode);
  if (code !== 0 && (code < 300 || code > 399))
    return `${code} is not a valid redirect code, must be 3xx`;
  const scheme = str(rd.scheme);
  if (scheme !== "" && scheme !== "http" && scheme !== "https")
    return 'invalid redirect scheme, must be "http" or "https"';
  if (num(rd.port) > 0) return portProblem(num(rd.port));
  return undefined;
}

/** validateHTTPDirectResponse */
export function checkDirectResponse(r: Report, at: At, directResponse: unknown): void {
  const d = obj(directResponse);
  if (d === undefined) return;
  const body = obj(d.body);
  if (body !== undefined) {
    const size =
      typeof body.string === "string"
        ? utf8Length(body.string)
        : typeof body.bytes === "string"
          ? Math.floor((body.bytes.replace(/=+$/, "").length * 3) / 4)
          : 0;
    if (size > 1024 * 1024) {
      r.error(
        [...at, "body"],
        "large direct_responses may impact control plane performance, must be less than 1MB",
      );
    } else if (size > 100 * 1024) {
      r.warn([...at, "body"], "large direct_responses may impact control plane performance");
    }
  }
  const s = httpStatusProblem(num(d.status));
  if (s !== undefined) r.error([...at, "status"], s);
}

const RETRY_ON = new Set([
  "5xx",
  "gateway-error",
  "reset",
  "reset-before-request",
  "connect-failure",
  "retriable-4xx",
  "refused-stream",
  "retriable-status-codes",
  "retriable-headers",
  "envoy-ratelimited",
  "http3-post-connect-failure",
  "cancelled",
  "deadline-exceeded",
  "internal",
  "resource-exhausted",
  "unavailable",
]);
/** The codes Go's net/http.StatusText knows. */
const HTTP_STATUS = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
  305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
  416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
  506, 507, 508, 510, 511,
]);

/** agent.ValidateHTTPRetry */
export function checkRetry(r: Report, at: At, retries: unknown): void {
  const rt = obj(retries);
  if (rt === undefined) return;
  const attempts = num(rt.attempts);
  if (attempts < 0) r.error([...at, "attempts"], "attempts cannot be negative");
  if (
    attempts === 0 &&
    (isSet(rt.perTryTimeout) || str(rt.retryOn) !== "" || isSet(rt.retryRemoteLocalities))
  ) {
    r.error(at, "http retry policy configured when attempts are set to 0 (disabled)");
  }
  checkDuration(r, [...at, "perTryTimeout"], rt.perTryTimeout);
  const retryOn = str(rt.retryOn);
  if (retryOn !== "") {
    for (const policy of retryOn.split(",")) {
      const code = /^[+-]?[0-9]+$/.test(policy) ? Number(policy) : 0;
      if (!HTTP_STATUS.has(code) && !RETRY_ON.has(policy)) {
        r.error([...at, "retryOn"], `${q(policy)} is not a valid retryOn policy`);
      }
    }
  }
  checkDuration(r, [...at, "backoff"], rt.backoff);
}

/** validateHTTPRewrite */
export function checkRewrite(r: Report, at: At, rewrite: unknown): void {
  const rw = obj(rewrite);
  if (rw === undefined) return;
  const uri = str(rw.uri);
  const regex = obj(rw.uriRegexRewrite);
  if (uri !== "" && regex !== undefined) {
    r.error(at, "rewrite may only contain one of URI or UriRegexRewrite");
    return;
  }
  if (uri === "" && regex === undefined && str(rw.authority) === "") {
    r.error(
      at,
      "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
    );
    return;
  }
  if (regex !== undefined) {
    let p: string | undefined;
    if (str(regex.match) === "" || str(regex.rewrite) === "") {
      p = "UriRegexRewrite requires both Rewrite and Match fields to be specified";
    } else {
      p = regexProblem(str(regex.match), "HTTPRewrite.UriRegexRewrite.Match");
    }
    if (p !== undefined) r.error([...at, "uriRegexRewrite"], `UriRegexRewrite has errors\n${p}`);
  }
}

/** validateAuthorityRewrite: the authority may be rewritten in one place only. */
function checkAuthorityRewrite(r: Report, at: At, http: Obj): void {
  let current = str(obj(http.rewrite)?.authority);
  const req = obj(obj(http.headers)?.request);
  for (const op of ["set", "add"]) {
    for (const [k, v] of entries(req?.[op])) {
      if (!isAuthorityHeader(k)) continue;
      if (current !== "") {
        r.error(
          [...at, "headers", "request", op, k],
          `authority header cannot be set multiple times: have ${q(current)}, attempting to set ${q(str(v))}`,
        );
        return;
      }
      current = str(v);
    }
  }
}

/** validateRouteDestinations (TCP and TLS) or, with `http`, validateHTTPRouteDestinations (which also checks each destination's header operations). */
export function checkRouteDestinations(
  r: Report,
  at: At,
  routes: unknown[],
  gatewaySemantics: boolean,
  http = false,
): void {
  let total = 0;
  routes.forEach((w, i) => {
    const wat: PathSeg[] = [...at, i];
    const weight = obj(w);
    if (weight === undefined) {
      r.error(wat, "weight may not be nil");
      return;
    }
    if (!isSet(weight.destination)) r.error(wat, "destination is required");
    if (http) checkHeaderOperations(r, [...wat, "headers"], weight.headers);
    if (!gatewaySemantics) checkDestination(r, [...wat, "destination"], weight.destination);
    const n = num(weight.weight);
    if (n < 0) r.error([...wat, "weight"], `weight ${n} < 0`);
    total += n;
  });
  if (routes.length > 1 && total === 0) r.error(at, "total destination weight = 0");
}

/** validateTLSRoute with validateTLSMatch and validateSniHost */
function checkTLSRoute(
  r: Report,
  at: At,
  tls: Obj,
  hosts: string[],
  boundToGateway: boolean,
  gatewaySemantics: boolean,
): void {
  if (len(tls.match) === 0) r.error(at, "TLS route must have at least one match condition");
  list(tls.match).forEach((m, i) => {
    const mat: PathSeg[] = [...at, "match", i];
    const match = obj(m);
    if (match === undefined) {
      r.error(mat, "TLS match may not be null");
      return;
    }
    const snis = list(match.sniHosts).map(str);
    if (snis.length === 0) r.error(mat, "TLS match must have at least one SNI host");
    snis.forEach((sni, j) => {
      const sat: PathSeg[] = [...mat, "sniHosts", j];
      const err = boundToGateway
        ? gatewayWildcardDomainProblem(true, sni)
        : wildcardDomainProblem(sni);
      if (err !== undefined) {
        if (isIP(sni)) {
          r.warn(
            sat,
            `using an IP address (${q(sni)}) goes against SNI spec and most clients do not support this`,
          );
        } else r.error(sat, err);
        return;
      }
      if (!hosts.some((h) => hostSubsetOf(sni, h))) {
        r.error(
          sat,
          `SNI host ${q(sni)} is not a compatible subset of any of the virtual service hosts: [${hosts.join(", ")}]`,
        );
      }
    });
    checkSubnets(r, [...mat, "destinationSubnets"], match.destinationSubnets);
    checkMatchCommon(r, mat, match);
  });
  if (len(tls.route) === 0) r.error(at, "TLS route is required");
  checkRouteDestinations(r, [...at, "route"], list(tls.route), gatewaySemantics);
}

function checkSubnets(r: Report, at: At, subnets: unknown): void {
  list(subnets).forEach((s, i) => {
    const p = ipSubnetProblem(str(s));
    if (p !== undefined) r.error([...at, i], p);
  });
}

/** validateTCPRoute */
function checkTCPRoute(r: Report, at: At, tcp: Obj, gatewaySemantics: boolean): void {
  list(tcp.match).forEach((m, i) => {
    const mat: PathSeg[] = [...at, "match", i];
    const match = obj(m);
    if (match === undefined) {
      r.error(mat, "tcp match may not be nil");
      return;
    }
    checkSubnets(r, [...mat, "destinationSubnets"], match.destinationSubnets);
    checkMatchCommon(r.errorsOnly(), mat, match);
  });
  if (len(tcp.route) === 0) r.error(at, "TCP route is required");
  checkRouteDestinations(r, [...at, "route"], list(tcp.route), gatewaySemantics);
}

// ---- analyzeUnreachable{HTTP,TCP,TLS}Rules: warnings only ----

/** A match as Go's json.Marshal of the proto sees it: unset and zero fields left out, keys sorted. */
function canonical(v: unknown, dropName: boolean): string {
  const walk = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.length === 0 ? undefined : x.map(walk);
    const o = obj(x);
    if (o === undefined) return x === null || x === "" || x === 0 || x === false ? undefined : x;
    const out: Obj = {};
    for (const k of Object.keys(o).sort()) {
      const w = walk(o[k]);
      if (w !== undefined) out[k] = w;
    }
    return Object.keys(out).length === 0 ? undefined : out;
  };
  const o = obj(v);
  if (dropName && o !== undefined && "name" in o) {
    const { name: _name, ...rest } = o;
    return JSON.stringify(walk(rest) ?? null);
  }
  return JSON.stringify(walk(v) ?? null);
}

interface PrefixMatch {
  route: string;
  match: string;
  prefix: string;
  port: number;
  method: string;
  authority: string;
  headers: Map<string, string>;
  query: Map<string, string>;
  without: Map<string, string>;
  at: PathSeg[];
}

function exactOrPrefix(sm: unknown): string {
  const o = obj(sm);
  if (str(o?.exact) !== "") return `exact:${str(o?.exact)}`;
  if (str(o?.prefix) !== "") return `prefix:${str(o?.prefix)}`;
  return "";
}

function stringMap(v: unknown): Map<string, string> {
  return new Map(entries(v).map(([k, sm]) => [k, exactOrPrefix(sm)]));
}

function covers(a: PrefixMatch, b: PrefixMatch): boolean {
  if (!b.prefix.startsWith(a.prefix)) return false;
  if (b.port !== a.port) return false;
  if (a.method !== b.method && !a.method.startsWith(b.method)) return false;
  if (a.authority !== b.authority && !a.authority.startsWith(b.authority)) return false;
  for (const [ma, mb] of [
    [a.headers, b.headers],
    [a.query, b.query],
    [a.without, b.without],
  ] as const) {
    if (ma.size !== mb.size) return false;
    for (const [k, v] of ma) {
      const w = mb.get(k);
      if (w === undefined) return false;
      if (v !== w && !v.startsWith(w)) return false;
    }
  }
  return true;
}

function analyzeUnreachable(r: Report, kind: "http" | "tcp" | "tls", routes: unknown[]): void {
  const routeName = (route: Obj | undefined, n: number): string =>
    kind === "http" && str(route?.name) !== "" ? q(str(route?.name)) : `#${n}`;
  const requestName = (match: Obj | undefined, n: number): string =>
    kind === "http" && str(match?.name) !== "" ? q(str(match?.name)) : `#${n}`;
  const unused = (at: At, rule: string, reason: string): void =>
    r.warn(at, `virtualService rule ${rule} not used (${reason})`);
  const ineffective = (at: At, rule: string, match: string, dup: string): void =>
    r.warn(
      at,
      `virtualService rule ${rule} match ${match} is not used (duplicate/overlapping match in rule ${dup})`,
    );
  // Nothing can be unreachable with one rule of at most one match.
  if (routes.length < 2 && list(obj(routes[0])?.match).length < 2) return;
  const seen = new Map<string, number>();
  let emptyMatch = -1;
  const prefixes: PrefixMatch[] = [];
  routes.forEach((rt, rulen) => {
    const route = obj(rt);
    if (route === undefined) return;
    const at: PathSeg[] = ["spec", kind, rulen];
    const matches = list(route.match);
    if (matches.length === 0) {
      if (emptyMatch >= 0)
        unused(at, routeName(route, rulen), "only the last rule can have no matches");
      emptyMatch = rulen;
      return;
    }
    let duplicates = 0;
    matches.forEach((m, matchn) => {
      if (emptyMatch >= 0) {
        unused(at, routeName(route, rulen), "route without matches defined before");
        return;
      }
      const match = obj(m);
      const key = canonical(m, kind === "http");
      const dup = seen.get(key);
      if (dup !== undefined) {
        ineffective(
          [...at, "match", matchn],
          routeName(route, rulen),
          requestName(match, matchn),
          routeName(obj(routes[dup]), dup),
        );
        duplicates++;
        return;
      }
      seen.set(key, rulen);
      const prefix = str(obj(match?.uri)?.prefix);
      if (kind === "http" && match !== undefined && prefix !== "") {
        prefixes.push({
          route: routeName(route, rulen),
          match: requestName(match, matchn),
          prefix,
          port: num(match.port),
          method: exactOrPrefix(match.method) || "exact:GET",
          authority: exactOrPrefix(match.authority),
          headers: stringMap(match.headers),
          query: stringMap(match.queryParams),
          without: stringMap(match.withoutHeaders),
          at: [...at, "match", matchn],
        });
      }
    });
    if (duplicates === matches.length)
      unused(at, routeName(route, rulen), "all matches used by prior rules");
  });
  for (let i = 0; i < prefixes.length; i++) {
    const a = prefixes[i] as PrefixMatch;
    for (let j = i + 1; j < prefixes.length; j++) {
      const b = prefixes[j] as PrefixMatch;
      if (b.prefix === a.prefix) continue;
      if (covers(a, b)) {
        ineffective(
          b.at,
          b.route,
          `${b.match} of prefix ${b.prefix}`,
          `${a.match} of prefix ${a.prefix} on ${a.route}`,
        );
      }
    }
  }
}
