// EnvoyFilter: istio/istio pkg/config/validation/envoyfilter ValidateEnvoyFilter. The patch value
// is not decoded into Envoy's protos here (see docs/crds.md, "Istio webhook checks").
import { alphaSelector, isSet, list, type Obj, obj, re2Problem, str } from "./common.js";
import type { PathSeg, Report } from "./report.js";

const LISTENER_CLASS = new Set(["LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER"]);
const ROUTE_CLASS = new Set(["ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE"]);
const HCM = "envoy.filters.network.http_connection_manager";
/** xds.ReverseDeprecatedFilterNames: deprecated filter names and their canonical ones. */
const DEPRECATED_FILTER_NAMES: Record<string, string> = {
  "envoy.buffer": "envoy.filters.http.buffer",
  "envoy.cors": "envoy.filters.http.cors",
  "envoy.csrf": "envoy.filters.http.csrf",
  "envoy.http_dynamo_filter": "envoy.filters.http.dynamo",
  // Istio's reverse map holds one of the two ext_authz filters, whichever its map iteration kept.
  "envoy.ext_authz": "envoy.filters.http.ext_authz",
  "envoy.fault": "envoy.filters.http.fault",
  "envoy.grpc_http1_bridge": "envoy.filters.http.grpc_http1_bridge",
  "envoy.grpc_json_transcoder": "envoy.filters.http.grpc_json_transcoder",
  "envoy.grpc_web": "envoy.filters.http.grpc_web",
  "envoy.gzip": "envoy.filters.http.gzip",
  "envoy.health_check": "envoy.filters.http.health_check",
  "envoy.ip_tagging": "envoy.filters.http.ip_tagging",
  "envoy.lua": "envoy.filters.http.lua",
  "envoy.rate_limit": "envoy.filters.http.ratelimit",
  "envoy.router": "envoy.filters.http.router",
  "envoy.squash": "envoy.filters.http.squash",
  "envoy.listener.http_inspector": "envoy.filters.listener.http_inspector",
  "envoy.listener.original_dst": "envoy.filters.listener.original_dst",
  "envoy.listener.original_src": "envoy.filters.listener.original_src",
  "envoy.listener.proxy_protocol": "envoy.filters.listener.proxy_protocol",
  "envoy.listener.tls_inspector": "envoy.filters.listener.tls_inspector",
  "envoy.client_ssl_auth": "envoy.filters.network.client_ssl_auth",
  "envoy.http_connection_manager": "envoy.filters.network.http_connection_manager",
  "envoy.mongo_proxy": "envoy.filters.network.mongo_proxy",
  "envoy.ratelimit": "envoy.filters.network.ratelimit",
  "envoy.redis_proxy": "envoy.filters.network.redis_proxy",
  "envoy.tcp_proxy": "envoy.filters.network.tcp_proxy",
};

export function checkEnvoyFilter(r: Report, spec: Obj): void {
  r.warn(
    [],
    "EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.",
  );
  const sel = alphaSelector(r, ["spec", "workloadSelector"], spec.workloadSelector);
  if (sel.errors) return;
  if (sel.noLabels) {
    r.warn(
      ["spec", "workloadSelector"],
      "Envoy filter: workload selector specified without labels, will be applied to all services in namespace",
    );
  }
  list(spec.configPatches).forEach((c, i) => {
    const at: PathSeg[] = ["spec", "configPatches", i];
    const cp = obj(c);
    if (cp === undefined) {
      r.error(at, "Envoy filter: null config patch");
      return;
    }
    const match = obj(cp.match);
    // Waypoint patches are not validated by Istio yet.
    if (match?.context === "WAYPOINT") return;
    const applyTo = str(cp.applyTo);
    if (applyTo === "" || applyTo === "INVALID") {
      r.error(at, "Envoy filter: missing applyTo");
      return;
    }
    const patch = obj(cp.patch);
    if (patch === undefined) {
      r.error(at, "Envoy filter: missing patch");
      return;
    }
    const op = str(patch.operation);
    if (op === "" || op === "INVALID") {
      r.error([...at, "patch"], "Envoy filter: missing patch operation");
      return;
    }
    if (op !== "REMOVE" && !isSet(patch.value)) {
      r.error([...at, "patch"], "Envoy filter: missing patch value for non-remove operation");
      return;
    }
    const version = str(obj(match?.proxy)?.proxyVersion);
    if (version !== "") {
      const vat: PathSeg[] = [...at, "match", "proxy", "proxyVersion"];
      if (version.length > 1024) {
        r.warn(vat, "Envoy filter: proxyVersion match exceeds 1024 characters and will be ignored");
      } else {
        const err = re2Problem(version);
        if (err !== undefined) {
          r.error(vat, `Envoy filter: invalid regex for proxy version, [${err}]`);
          return;
        }
      }
    }
    const objectTypes =
      match !== undefined &&
      (isSet(match.listener) || isSet(match.routeConfiguration) || isSet(match.cluster));
    if (LISTENER_CLASS.has(applyTo) && objectTypes) {
      const listener = obj(match?.listener);
      if (listener === undefined) {
        r.error(
          [...at, "match"],
          "Envoy filter: applyTo for listener class objects cannot have non listener match",
        );
        return;
      }
      const filter = obj(obj(listener.filterChain)?.filter);
      if (filter !== undefined) {
        const fat: PathSeg[] = [...at, "match", "listener", "filterChain", "filter"];
        if (applyTo === "LISTENER" || applyTo === "FILTER_CHAIN") {
          r.warn(fat, `Envoy filter: filter match has no effect when used with ${applyTo}`);
        }
        const name = str(filter.name);
        if (name === "") {
          r.error(fat, "Envoy filter: filter match has no name to match on");
          return;
        }
        const sub = obj(filter.subFilter);
        if (sub !== undefined) {
          if (applyTo !== "HTTP_FILTER") {
            r.error(fat, "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only");
            return;
          }
          if (name !== HCM && name !== "envoy.http_connection_manager") {
            r.error(fat, `Envoy filter: subfilter match requires filter match with ${HCM}`);
            return;
          }
          if (str(sub.name) === "") {
            r.error([...fat, "subFilter"], "Envoy filter: subfilter match has no name to match on");
            return;
          }
        }
        for (const [n, nat] of [
          [name, [...fat, "name"]],
          [str(sub?.name), [...fat, "subFilter", "name"]],
        ] as const) {
          const replacement = DEPRECATED_FILTER_NAMES[n];
          if (replacement !== undefined)
            r.warn(
              nat,
              `using deprecated filter name ${JSON.stringify(n)}; use ${JSON.stringify(replacement)} instead`,
            );
        }
      }
    } else if (ROUTE_CLASS.has(applyTo) && objectTypes && !isSet(match?.routeConfiguration)) {
      r.error(
        [...at, "match"],
        "Envoy filter: applyTo for http route class objects cannot have non route configuration match",
      );
    } else if (applyTo === "CLUSTER" && objectTypes && !isSet(match?.cluster)) {
      r.error(
        [...at, "match"],
        "Envoy filter: applyTo for cluster class objects cannot have non cluster match",
      );
    }
    checkTypeUrls(r, [...at, "patch", "value"], patch.value);
  });
}

/**
 * What can be told of xds.BuildXDSObjectFromStruct without Envoy's descriptors: an Any naming a
 * v2 API type cannot resolve (Istio no longer links the v2 protos).
 */
function checkTypeUrls(r: Report, at: readonly PathSeg[], value: unknown): void {
  const walk = (v: unknown, path: PathSeg[]): boolean => {
    if (Array.isArray(v)) return v.every((x, i) => walk(x, [...path, i]));
    const o = obj(v);
    if (o === undefined) return true;
    for (const [k, x] of Object.entries(o)) {
      if (
        k === "@type" &&
        typeof x === "string" &&
        /\.v2(alpha)?\./.test(x) &&
        /^type\.googleapis\.com\/envoy\./.test(x)
      ) {
        r.error(
          [...path, k],
          `referenced type unknown (hint: try using the v3 XDS API): could not resolve Any message type: ${x}`,
        );
        return false;
      }
      if (!walk(x, [...path, k])) return false;
    }
    return true;
  };
  walk(value, [...at]);
}
