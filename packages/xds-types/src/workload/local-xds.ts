// ztunnel's LOCAL_XDS YAML (`LOCAL_XDS_PATH` / `LOCAL_XDS`): parse to a typed LocalConfig and
// serialize back. The shape is ztunnel's serde shape (`LocalConfig` in src/xds.rs, `Workload` in
// src/state/workload.rs, `Service` in src/state/service.rs, `Authorization` in src/rbac.rs):
// camelCase keys, enums by their Rust names, IPs as text, the same required fields and the same
// defaults. Unknown fields are rejected everywhere — also inside a match, a locality and a CIDR VIP,
// where ztunnel itself silently ignores them (a misspelt `notDestinationPort` would otherwise
// become an empty match that matches everything). Problems come back as issues, never thrown.
// Serialization writes ztunnel's field order and omits what ztunnel omits, so
// parse → serialize → parse gives an equal config.

import {
  Composer,
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  Parser,
  stringify,
  type YAMLMap,
  YAMLParseError,
} from "yaml";
import type { Issue, Result } from "../issue.js";
import { checkTree } from "../yaml-stream.js";
import {
  type Authorization,
  RBAC_ACTIONS,
  RBAC_MATCH_FIELDS,
  RBAC_SCOPES,
  type RbacAction,
  type RbacMatch,
  type RbacScope,
  type StringMatch,
} from "./authorization.js";
import { formatCidr, formatIp, parseCidr, parseIp } from "./ip.js";
import {
  type ApplicationTunnel,
  type ApplicationTunnelProtocol,
  type Endpoint,
  type GatewayAddress,
  type HealthStatus,
  type InboundProtocol,
  type IpFamily,
  isNetworkAddress,
  type LoadBalancer,
  type LoadBalancerHealthPolicy,
  type LoadBalancerMode,
  type LoadBalancerScope,
  type LocalConfig,
  type Locality,
  type NamespacedHostname,
  type NetworkAddress,
  type NetworkCidr,
  type NetworkMode,
  type PortMap,
  type Service,
  type ServiceVisibility,
  type WeightedWaypoint,
  type Workload,
} from "./types.js";

/** Stable codes of LOCAL_XDS problems. */
export type LocalXdsIssueCode =
  | "yaml/syntax"
  | "unknown-field"
  | "local-xds/missing-field"
  | "local-xds/type"
  | "local-xds/enum"
  | "local-xds/ip"
  | "local-xds/range"
  | "local-xds/format";

/** One problem in a LOCAL_XDS file: the shared {@link Issue} shape (always an error here). */
export type LocalXdsIssue = Issue<LocalXdsIssueCode>;

/** The result of {@link parseLocalXds}: the shared `Result` (`value` is the config when there is no issue). */
export type LocalXdsParseResult = Result<LocalConfig, LocalXdsIssueCode>;

// ---------------------------------------------------------------- reading

/** Returned by readers when the value was bad; an issue has been recorded. */
const BAD: unique symbol = Symbol("bad");
type Bad = typeof BAD;

class Reader {
  readonly issues: LocalXdsIssue[] = [];
  constructor(private readonly lc: LineCounter) {}

  issue(code: LocalXdsIssueCode, path: string, message: string, node?: Node | null): Bad {
    const issue: LocalXdsIssue = { code, severity: "error", path, message };
    const offset = node?.range?.[0];
    if (offset !== undefined) {
      const p = this.lc.linePos(offset);
      issue.line = p.line;
      issue.column = p.col;
    }
    this.issues.push(issue);
    return BAD;
  }
}

type N = Node | null | undefined;

// The document being read, for resolving aliases (parsing is synchronous, so one slot suffices).
let currentDoc: Document | undefined;
// Aliases may multiply the work ("billion laughs"): every node visit is counted against a budget
// proportional to the text (a file without aliases needs a few visits per node, far below it).
let visitsLeft = 0;
const visitBudget = (textLength: number): number => 200_000 + 4 * textLength;

function deref(node: N): N {
  if (--visitsLeft < 0) return null;
  if (!isAlias(node)) return node;
  if (currentDoc === undefined) return null;
  // Alias.resolve searches the document; remember each alias's target.
  let target = resolved.get(node);
  if (target === undefined) {
    target = node.resolve(currentDoc) ?? null;
    resolved.set(node, target);
  }
  return target;
}
let resolved = new Map<object, N>();

function isNull(node: N): boolean {
  const n = deref(node);
  return n == null || (isScalar(n) && n.value === null);
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

function describe(node: N): string {
  const n = deref(node);
  if (n == null) return "nothing";
  if (isMap(n)) return "a map";
  if (isSeq(n)) return "a list";
  if (isScalar(n)) {
    const v = n.value;
    if (v === null) return "null";
    if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
    return `${typeof v} ${String(v)}`;
  }
  return "an unsupported YAML node";
}

interface Fields {
  readonly map: YAMLMap<Node, Node>;
  readonly path: string;
  readonly get: (key: string) => N;
  readonly has: (key: string) => boolean;
}

/** Reads a map, rejecting keys outside `allowed`. */
function readObject(r: Reader, node: N, path: string, allowed: readonly string[]): Fields | Bad {
  const n = deref(node);
  if (!isMap(n))
    return r.issue(
      "local-xds/type",
      path,
      `${path || "the file"}: expected a map, got ${describe(n)}`,
      n,
    );
  const map = n as YAMLMap<Node, Node>;
  const values = new Map<string, N>();
  for (const pair of map.items) {
    const k = deref(pair.key as N);
    const key = isScalar(k) ? String(k.value) : undefined;
    if (key === undefined) {
      r.issue("local-xds/type", path, `${path || "the file"}: map keys must be strings`, k);
      continue;
    }
    if (!allowed.includes(key)) {
      r.issue(
        "unknown-field",
        join(path, key),
        `${join(path, key)}: unknown field \`${key}\`, expected one of ${allowed.map((a) => `\`${a}\``).join(", ")}`,
        k,
      );
      continue;
    }
    values.set(key, pair.value as N);
  }
  return {
    map,
    path,
    get: (key) => values.get(key),
    has: (key) => values.has(key),
  };
}

function missing(r: Reader, f: Fields, key: string): Bad {
  return r.issue(
    "local-xds/missing-field",
    join(f.path, key),
    `${join(f.path, key)}: missing field \`${key}\``,
    f.map,
  );
}

function readString(r: Reader, node: N, path: string): string | Bad {
  const n = deref(node);
  if (isScalar(n) && typeof n.value === "string") return n.value;
  return r.issue("local-xds/type", path, `${path}: expected a string, got ${describe(n)}`, n);
}

function readBool(r: Reader, node: N, path: string): boolean | Bad {
  const n = deref(node);
  if (isScalar(n) && typeof n.value === "boolean") return n.value;
  return r.issue("local-xds/type", path, `${path}: expected true or false, got ${describe(n)}`, n);
}

function readUint(
  r: Reader,
  node: N,
  path: string,
  max: number,
  allowNumericString = false,
): number | Bad {
  const n = deref(node);
  let v: unknown = isScalar(n) ? n.value : undefined;
  // Map keys may be quoted ("80": 8080, as JSON writes them); values must be YAML integers.
  if (allowNumericString && typeof v === "string" && /^(?:0|[1-9][0-9]*)$/.test(v)) v = Number(v);
  if (typeof v === "number" && Number.isInteger(v)) {
    if (v < 0 || v > max) {
      return r.issue("local-xds/range", path, `${path}: ${v} is out of range 0..${max}`, n);
    }
    return v;
  }
  return r.issue(
    "local-xds/type",
    path,
    `${path}: expected an integer 0..${max}, got ${describe(n)}`,
    n,
  );
}

function readEnum<T extends string>(
  r: Reader,
  node: N,
  path: string,
  values: readonly T[],
): T | Bad {
  const n = deref(node);
  if (
    isScalar(n) &&
    typeof n.value === "string" &&
    (values as readonly string[]).includes(n.value)
  ) {
    return n.value as T;
  }
  return r.issue(
    "local-xds/enum",
    path,
    `${path}: unknown variant ${describe(n)}, expected one of ${values.map((v) => `\`${v}\``).join(", ")}`,
    n,
  );
}

function readList<T>(
  r: Reader,
  node: N,
  path: string,
  item: (n: N, path: string) => T | Bad,
): T[] | Bad {
  const n = deref(node);
  if (!isSeq(n))
    return r.issue("local-xds/type", path, `${path}: expected a list, got ${describe(n)}`, n);
  const out: T[] = [];
  let bad = false;
  n.items.forEach((it, i) => {
    const v = item(it as N, `${path}[${i}]`);
    if (v === BAD) bad = true;
    else out.push(v);
  });
  return bad ? BAD : out;
}

function readIp(r: Reader, node: N, path: string): string | Bad {
  const s = readString(r, node, path);
  if (s === BAD) return BAD;
  const b = parseIp(s);
  if (b === undefined) {
    return r.issue(
      "local-xds/ip",
      path,
      `${path}: ${JSON.stringify(s)} is not an IPv4 or IPv6 address`,
      deref(node),
    );
  }
  return formatIp(b) as string;
}

function readCidr(r: Reader, node: N, path: string): string | Bad {
  const s = readString(r, node, path);
  if (s === BAD) return BAD;
  const p = parseCidr(s);
  if (p === undefined) {
    return r.issue(
      "local-xds/ip",
      path,
      `${path}: ${JSON.stringify(s)} is not an IP prefix like "10.0.0.0/8" or "2001:db8::/32" (a prefix length is required)`,
      deref(node),
    );
  }
  return formatCidr(p) as string;
}

function readNetworkAddress(r: Reader, node: N, path: string): NetworkAddress | Bad {
  const s = readString(r, node, path);
  if (s === BAD) return BAD;
  const slash = s.indexOf("/");
  const b = slash < 0 ? undefined : parseIp(s.slice(slash + 1));
  if (b === undefined) {
    return r.issue(
      "local-xds/ip",
      path,
      `${path}: ${JSON.stringify(s)} is not "<network>/<ip>" (the network may be empty: "/10.0.0.1")`,
      deref(node),
    );
  }
  return { network: s.slice(0, slash), address: formatIp(b) as string };
}

function readPortMap(r: Reader, node: N, path: string): PortMap | Bad {
  const n = deref(node);
  if (!isMap(n))
    return r.issue(
      "local-xds/type",
      path,
      `${path}: expected a map of port: port, got ${describe(n)}`,
      n,
    );
  const out: Record<number, number> = {};
  let bad = false;
  for (const pair of n.items) {
    const k = readUint(r, pair.key as N, `${path} key`, 0xffff, true);
    const v = readUint(r, pair.value as N, k === BAD ? path : `${path}.${k}`, 0xffff);
    if (k === BAD || v === BAD) bad = true;
    else out[k] = v;
  }
  return bad ? BAD : out;
}

/** A map with free-form string keys (services by "ns/host", endpoints by uid). */
function readKeyedMap<T>(
  r: Reader,
  node: N,
  path: string,
  item: (n: N, path: string, key: string) => T | Bad,
): Record<string, T> | Bad {
  const n = deref(node);
  if (!isMap(n))
    return r.issue("local-xds/type", path, `${path}: expected a map, got ${describe(n)}`, n);
  const out: Record<string, T> = {};
  let bad = false;
  for (const pair of n.items) {
    const k = deref(pair.key as N);
    if (!isScalar(k) || typeof k.value !== "string") {
      r.issue("local-xds/type", path, `${path}: keys must be strings, got ${describe(k)}`, k);
      bad = true;
      continue;
    }
    const v = item(pair.value as N, `${path}[${JSON.stringify(k.value)}]`, k.value);
    if (v === BAD) bad = true;
    else out[k.value] = v;
  }
  return bad ? BAD : out;
}

/**
 * Reads the fields of a map with a spec: `[key, required, reader]`. Returns the collected values,
 * or BAD if anything was wrong (all problems are recorded, not just the first).
 */
function readFields(
  r: Reader,
  f: Fields,
  spec: readonly (readonly [string, boolean, (n: N, path: string) => unknown])[],
): Record<string, unknown> | Bad {
  const out: Record<string, unknown> = {};
  let bad = false;
  for (const [key, required, read] of spec) {
    if (!f.has(key)) {
      if (required) {
        missing(r, f, key);
        bad = true;
      }
      continue;
    }
    const v = read(f.get(key), join(f.path, key));
    if (v === BAD) bad = true;
    else if (v !== undefined) out[key] = v;
  }
  return bad ? BAD : out;
}

function optional<T>(read: (r: Reader, n: N, p: string) => T | Bad, r: Reader) {
  // serde's Option<T>: null means absent.
  return (n: N, p: string): T | Bad | undefined => (isNull(n) ? undefined : read(r, n, p));
}

const GATEWAY_FIELDS = ["destination", "hboneMtlsPort"] as const;

function readGateway(r: Reader, node: N, path: string): GatewayAddress | Bad {
  const f = readObject(r, node, path, GATEWAY_FIELDS);
  if (f === BAD) return BAD;
  const v = readFields(r, f, [
    [
      "destination",
      true,
      (n, p) => {
        const s = readString(r, n, p);
        if (s === BAD) return BAD;
        // Untagged, as ztunnel: a network address first, then namespace/hostname.
        const slash = s.indexOf("/");
        if (slash < 0) {
          return r.issue(
            "local-xds/format",
            p,
            `${p}: ${JSON.stringify(s)} is neither "<network>/<ip>" nor "<namespace>/<hostname>"`,
            deref(n),
          );
        }
        const ip = parseIp(s.slice(slash + 1));
        return ip !== undefined
          ? ({
              network: s.slice(0, slash),
              address: formatIp(ip) as string,
            } satisfies NetworkAddress)
          : ({
              namespace: s.slice(0, slash),
              hostname: s.slice(slash + 1),
            } satisfies NamespacedHostname);
      },
    ],
    ["hboneMtlsPort", true, (n, p) => readUint(r, n, p, 0xffff)],
  ]);
  return v === BAD ? BAD : (v as unknown as GatewayAddress);
}

const WORKLOAD_FIELDS = [
  "workloadIps",
  "waypoint",
  "networkGateway",
  "protocol",
  "networkMode",
  "uid",
  "name",
  "namespace",
  "trustDomain",
  "serviceAccount",
  "network",
  "workloadName",
  "workloadType",
  "canonicalName",
  "canonicalRevision",
  "hostname",
  "node",
  "nativeTunnel",
  "applicationTunnel",
  "authorizationPolicies",
  "status",
  "clusterId",
  "locality",
  "services",
  "capacity",
] as const;

const INBOUND_PROTOCOLS: readonly InboundProtocol[] = ["TCP", "HBONE"];
const NETWORK_MODES: readonly NetworkMode[] = ["Standard", "HostNetwork"];
const HEALTH: readonly HealthStatus[] = ["Healthy", "Unhealthy"];
const TUNNEL_PROTOCOLS: readonly ApplicationTunnelProtocol[] = ["NONE", "PROXY"];

function readWorkload(r: Reader, node: N, path: string): Workload | Bad {
  const f = readObject(r, node, path, WORKLOAD_FIELDS);
  if (f === BAD) return BAD;
  const str = (n: N, p: string) => readString(r, n, p);
  const v = readFields(r, f, [
    ["workloadIps", true, (n, p) => readList(r, n, p, (m, q) => readIp(r, m, q))],
    ["waypoint", false, optional(readGateway, r)],
    ["networkGateway", false, optional(readGateway, r)],
    ["protocol", false, (n, p) => readEnum(r, n, p, INBOUND_PROTOCOLS)],
    ["networkMode", false, (n, p) => readEnum(r, n, p, NETWORK_MODES)],
    ["uid", false, str],
    ["name", false, str],
    ["namespace", true, str],
    ["trustDomain", false, str],
    ["serviceAccount", false, str],
    ["network", false, str],
    ["workloadName", false, str],
    ["workloadType", false, str],
    ["canonicalName", false, str],
    ["canonicalRevision", false, str],
    ["hostname", false, str],
    ["node", false, str],
    ["nativeTunnel", false, (n, p) => readBool(r, n, p)],
    [
      "applicationTunnel",
      false,
      optional((rr, n, p): ApplicationTunnel | Bad => {
        const g = readObject(rr, n, p, ["protocol", "port"]);
        if (g === BAD) return BAD;
        const t = readFields(rr, g, [
          ["protocol", true, (m, q) => readEnum(rr, m, q, TUNNEL_PROTOCOLS)],
          ["port", false, optional((r3, m, q) => readUint(r3, m, q, 0xffff), rr)],
        ]);
        return t === BAD ? BAD : (t as unknown as ApplicationTunnel);
      }, r),
    ],
    ["authorizationPolicies", false, (n, p) => readList(r, n, p, str)],
    ["status", false, (n, p) => readEnum(r, n, p, HEALTH)],
    ["clusterId", false, str],
    [
      "locality",
      false,
      (n, p): Locality | Bad => {
        const g = readObject(r, n, p, ["region", "zone", "subzone"]);
        if (g === BAD) return BAD;
        const t = readFields(r, g, [
          ["region", true, str],
          ["zone", true, str],
          ["subzone", true, str],
        ]);
        return t === BAD ? BAD : (t as unknown as Locality);
      },
    ],
    [
      "services",
      true,
      (n, p) =>
        readKeyedMap(r, n, p, (m, q, key) => {
          if (!key.includes("/")) {
            return r.issue(
              "local-xds/format",
              q,
              `${q}: the key must be "<namespace>/<hostname>"`,
              deref(m),
            );
          }
          return readPortMap(r, m, q);
        }),
    ],
    ["capacity", false, (n, p) => readUint(r, n, p, 0xffffffff)],
  ]);
  if (v === BAD) return BAD;
  return {
    workloadIps: v.workloadIps as string[],
    ...(v.waypoint ? { waypoint: v.waypoint as GatewayAddress } : {}),
    ...(v.networkGateway ? { networkGateway: v.networkGateway as GatewayAddress } : {}),
    protocol: (v.protocol as InboundProtocol | undefined) ?? "TCP",
    networkMode: (v.networkMode as NetworkMode | undefined) ?? "Standard",
    uid: (v.uid as string | undefined) ?? "",
    name: (v.name as string | undefined) ?? "",
    namespace: v.namespace as string,
    trustDomain: (v.trustDomain as string | undefined) ?? "",
    serviceAccount: (v.serviceAccount as string | undefined) ?? "",
    network: (v.network as string | undefined) ?? "",
    workloadName: (v.workloadName as string | undefined) ?? "",
    workloadType: (v.workloadType as string | undefined) ?? "",
    canonicalName: (v.canonicalName as string | undefined) ?? "",
    canonicalRevision: (v.canonicalRevision as string | undefined) ?? "",
    hostname: (v.hostname as string | undefined) ?? "",
    node: (v.node as string | undefined) ?? "",
    nativeTunnel: (v.nativeTunnel as boolean | undefined) ?? false,
    ...(v.applicationTunnel ? { applicationTunnel: v.applicationTunnel as ApplicationTunnel } : {}),
    authorizationPolicies: (v.authorizationPolicies as string[] | undefined) ?? [],
    status: (v.status as HealthStatus | undefined) ?? "Healthy",
    clusterId: (v.clusterId as string | undefined) ?? "",
    ...(v.locality ? { locality: v.locality as Locality } : {}),
    services: v.services as Record<string, PortMap>,
    capacity: (v.capacity as number | undefined) ?? 1,
  };
}

const SERVICE_FIELDS = [
  "name",
  "namespace",
  "hostname",
  "vips",
  "cidrVips",
  "ports",
  "endpoints",
  "subjectAltNames",
  "waypoint",
  "weightedWaypoints",
  "loadBalancer",
  "ipFamilies",
  "canonical",
  "visibility",
] as const;

const LB_SCOPES: readonly LoadBalancerScope[] = [
  "Region",
  "Zone",
  "Subzone",
  "Node",
  "Cluster",
  "Network",
];
const LB_MODES: readonly LoadBalancerMode[] = ["Standard", "Strict", "Failover", "Passthrough"];
const LB_HEALTH: readonly LoadBalancerHealthPolicy[] = ["OnlyHealthy", "AllowAll"];
const IP_FAMILIES: readonly IpFamily[] = ["Dual", "IPv4", "IPv6"];
const VISIBILITY: readonly ServiceVisibility[] = ["Public", "Namespace"];

function readService(r: Reader, node: N, path: string): Service | Bad {
  const f = readObject(r, node, path, SERVICE_FIELDS);
  if (f === BAD) return BAD;
  const str = (n: N, p: string) => readString(r, n, p);
  const v = readFields(r, f, [
    ["name", true, str],
    ["namespace", true, str],
    ["hostname", true, str],
    ["vips", true, (n, p) => readList(r, n, p, (m, q) => readNetworkAddress(r, m, q))],
    [
      "cidrVips",
      false,
      (n, p) =>
        readList(r, n, p, (m, q): NetworkCidr | Bad => {
          const g = readObject(r, m, q, ["network", "cidr"]);
          if (g === BAD) return BAD;
          const t = readFields(r, g, [
            ["network", true, str],
            ["cidr", true, (x, y) => readCidr(r, x, y)],
          ]);
          return t === BAD ? BAD : (t as unknown as NetworkCidr);
        }),
    ],
    ["ports", true, (n, p) => readPortMap(r, n, p)],
    [
      "endpoints",
      false,
      (n, p) =>
        readKeyedMap(r, n, p, (m, q): Endpoint | Bad => {
          const g = readObject(r, m, q, ["workloadUid", "port", "status"]);
          if (g === BAD) return BAD;
          const t = readFields(r, g, [
            ["workloadUid", true, str],
            ["port", true, (x, y) => readPortMap(r, x, y)],
            ["status", true, (x, y) => readEnum(r, x, y, HEALTH)],
          ]);
          return t === BAD ? BAD : (t as unknown as Endpoint);
        }),
    ],
    ["subjectAltNames", false, (n, p) => readList(r, n, p, str)],
    ["waypoint", false, optional(readGateway, r)],
    [
      "weightedWaypoints",
      false,
      (n, p) =>
        readList(r, n, p, (m, q): WeightedWaypoint | Bad => {
          const g = readObject(r, m, q, ["destination", "weight"]);
          if (g === BAD) return BAD;
          const t = readFields(r, g, [
            ["destination", true, (x, y) => readGateway(r, x, y)],
            ["weight", true, (x, y) => readUint(r, x, y, 0xffffffff)],
          ]);
          return t === BAD ? BAD : (t as unknown as WeightedWaypoint);
        }),
    ],
    [
      "loadBalancer",
      false,
      optional((rr, n, p): LoadBalancer | Bad => {
        const g = readObject(rr, n, p, ["routingPreferences", "mode", "healthPolicy"]);
        if (g === BAD) return BAD;
        const t = readFields(rr, g, [
          [
            "routingPreferences",
            true,
            (x, y) => readList(rr, x, y, (a, b) => readEnum(rr, a, b, LB_SCOPES)),
          ],
          ["mode", true, (x, y) => readEnum(rr, x, y, LB_MODES)],
          ["healthPolicy", true, (x, y) => readEnum(rr, x, y, LB_HEALTH)],
        ]);
        return t === BAD ? BAD : (t as unknown as LoadBalancer);
      }, r),
    ],
    ["ipFamilies", false, optional((rr, n, p) => readEnum(rr, n, p, IP_FAMILIES), r)],
    ["canonical", false, (n, p) => readBool(r, n, p)],
    ["visibility", false, (n, p) => readEnum(r, n, p, VISIBILITY)],
  ]);
  if (v === BAD) return BAD;
  return {
    name: v.name as string,
    namespace: v.namespace as string,
    hostname: v.hostname as string,
    vips: v.vips as NetworkAddress[],
    cidrVips: (v.cidrVips as NetworkCidr[] | undefined) ?? [],
    ports: v.ports as PortMap,
    endpoints: (v.endpoints as Record<string, Endpoint> | undefined) ?? {},
    subjectAltNames: (v.subjectAltNames as string[] | undefined) ?? [],
    ...(v.waypoint ? { waypoint: v.waypoint as GatewayAddress } : {}),
    weightedWaypoints: (v.weightedWaypoints as WeightedWaypoint[] | undefined) ?? [],
    ...(v.loadBalancer ? { loadBalancer: v.loadBalancer as LoadBalancer } : {}),
    ...(v.ipFamilies ? { ipFamilies: v.ipFamilies as IpFamily } : {}),
    canonical: (v.canonical as boolean | undefined) ?? false,
    visibility: (v.visibility as ServiceVisibility | undefined) ?? "Public",
  };
}

const STRING_MATCH_TAGS = ["Exact", "Prefix", "Suffix", "Presence"] as const;

function readStringMatch(r: Reader, node: N, path: string): StringMatch | Bad {
  const n = deref(node);
  if (!isMap(n) || n.items.length !== 1) {
    return r.issue(
      "local-xds/type",
      path,
      `${path}: expected one of {Exact: s}, {Prefix: s}, {Suffix: s}, {Presence: []}, got ${describe(n)}`,
      n,
    );
  }
  const f = readObject(r, n, path, STRING_MATCH_TAGS);
  if (f === BAD) return BAD;
  for (const tag of ["Exact", "Prefix", "Suffix"] as const) {
    if (f.has(tag)) {
      const s = readString(r, f.get(tag), join(path, tag));
      if (s === BAD) return BAD;
      return tag === "Exact" ? { exact: s } : tag === "Prefix" ? { prefix: s } : { suffix: s };
    }
  }
  const p = deref(f.get("Presence"));
  if (isSeq(p) && p.items.length === 0) return { presence: true };
  return r.issue(
    "local-xds/type",
    join(path, "Presence"),
    `${join(path, "Presence")}: expected [], got ${describe(p)}`,
    p,
  );
}

function readRbacMatch(r: Reader, node: N, path: string): RbacMatch | Bad {
  const f = readObject(r, node, path, RBAC_MATCH_FIELDS);
  if (f === BAD) return BAD;
  const sm = (n: N, p: string) => readList(r, n, p, (m, q) => readStringMatch(r, m, q));
  const ips = (n: N, p: string) => readList(r, n, p, (m, q) => readCidr(r, m, q));
  const ports = (n: N, p: string) => readList(r, n, p, (m, q) => readUint(r, m, q, 0xffff));
  const sa = (n: N, p: string) =>
    readList(r, n, p, (m, q) => {
      const g = readObject(r, m, q, ["namespace", "serviceAccount"]);
      if (g === BAD) return BAD;
      return readFields(r, g, [
        ["namespace", true, (x, y) => readString(r, x, y)],
        ["serviceAccount", true, (x, y) => readString(r, x, y)],
      ]);
    });
  const readers: Record<keyof RbacMatch, (n: N, p: string) => unknown> = {
    namespaces: sm,
    notNamespaces: sm,
    serviceAccounts: sa,
    notServiceAccounts: sa,
    principals: sm,
    notPrincipals: sm,
    sourceIps: ips,
    notSourceIps: ips,
    destinationIps: ips,
    notDestinationIps: ips,
    destinationPorts: ports,
    notDestinationPorts: ports,
  };
  const v = readFields(
    r,
    f,
    RBAC_MATCH_FIELDS.map((k) => [k, false, readers[k]] as const),
  );
  if (v === BAD) return BAD;
  // Canonical form: empty lists are omitted (ztunnel skips them when serializing).
  for (const k of Object.keys(v)) if ((v[k] as unknown[]).length === 0) delete v[k];
  return v as RbacMatch;
}

const POLICY_FIELDS = ["name", "namespace", "scope", "action", "rules", "dryRun"] as const;

function readPolicy(r: Reader, node: N, path: string): Authorization | Bad {
  const f = readObject(r, node, path, POLICY_FIELDS);
  if (f === BAD) return BAD;
  const v = readFields(r, f, [
    ["name", true, (n, p) => readString(r, n, p)],
    ["namespace", true, (n, p) => readString(r, n, p)],
    ["scope", true, (n, p) => readEnum<RbacScope>(r, n, p, RBAC_SCOPES)],
    ["action", true, (n, p) => readEnum<RbacAction>(r, n, p, RBAC_ACTIONS)],
    [
      "rules",
      true,
      (n, p) =>
        readList(r, n, p, (rule, rp) =>
          readList(r, rule, rp, (clause, cp) =>
            readList(r, clause, cp, (m, mp) => readRbacMatch(r, m, mp)),
          ),
        ),
    ],
    ["dryRun", true, (n, p) => readBool(r, n, p)],
  ]);
  return v === BAD ? BAD : (v as unknown as Authorization);
}

/**
 * Parses a LOCAL_XDS YAML text into a typed config. Never throws: YAML syntax errors, unknown
 * fields, missing required fields, wrong types, bad enum values and bad IPs all come back as
 * issues with a path, line and column. IPs and CIDRs are normalized to Rust's text form.
 */
export function parseLocalXds(text: string): LocalXdsParseResult {
  const lc = new LineCounter();
  const r = new Reader(lc);
  let doc: Document.Parsed | undefined;
  try {
    const tokens = Array.from(new Parser(lc.addNewLine).parse(text));
    // The composer recurses once per level: nesting deeper than serde_yaml's (ztunnel's) limit
    // is reported here, before it could exhaust the stack.
    for (const token of tokens) {
      const problem = token.type === "document" ? checkTree(token).problem : undefined;
      if (problem === undefined) continue;
      const p = lc.linePos(problem.offset);
      r.issues.push({
        code: "yaml/syntax",
        severity: "error",
        path: "",
        message: problem.message,
        line: p.line,
        column: p.col,
      });
      return { ok: false, issues: r.issues };
    }
    const composer = new Composer({ prettyErrors: false, uniqueKeys: true });
    for (const d of composer.compose(tokens, true, text.length)) {
      if (doc === undefined) doc = d;
      else {
        doc.errors.push(
          new YAMLParseError(
            [d.range[0], d.range[1]],
            "MULTIPLE_DOCS",
            "Source contains multiple documents; LOCAL_XDS is one document",
          ),
        );
        break;
      }
    }
  } catch (cause) {
    r.issue("yaml/syntax", "", `the file is not YAML: ${(cause as Error).message}`);
    return { ok: false, issues: r.issues };
  }
  if (doc === undefined) {
    return okConfig({ workloads: [], policies: [], services: [] });
  }
  for (const e of doc.errors) {
    const p = lc.linePos(e.pos[0]);
    r.issues.push({
      code: "yaml/syntax",
      severity: "error",
      path: "",
      message: e.message.split("\n")[0] as string,
      line: p.line,
      column: p.col,
    });
  }
  if (r.issues.length > 0) return { ok: false, issues: r.issues };
  currentDoc = doc;
  visitsLeft = visitBudget(text.length);
  resolved = new Map();
  try {
    const result = readConfig(r, doc.contents as N);
    if (visitsLeft < 0) {
      return {
        ok: false,
        issues: [
          {
            code: "yaml/syntax",
            severity: "error",
            path: "",
            message:
              "the file's YAML aliases expand to far more nodes than the file has; write the values out instead",
          },
          ...result.issues,
        ],
      };
    }
    return result;
  } finally {
    currentDoc = undefined;
    resolved = new Map();
  }
}

function readConfig(r: Reader, root: N): LocalXdsParseResult {
  if (isNull(root)) return okConfig({ workloads: [], policies: [], services: [] });
  const f = readObject(r, root, "", ["workloads", "policies", "services"]);
  if (f === BAD) return { ok: false, issues: r.issues };
  const v = readFields(r, f, [
    ["workloads", false, (n, p) => readList(r, n, p, (m, q) => readWorkload(r, m, q))],
    ["policies", false, (n, p) => readList(r, n, p, (m, q) => readPolicy(r, m, q))],
    ["services", false, (n, p) => readList(r, n, p, (m, q) => readService(r, m, q))],
  ]);
  if (v === BAD || r.issues.length > 0) return { ok: false, issues: r.issues };
  return okConfig({
    workloads: (v.workloads as Workload[] | undefined) ?? [],
    policies: (v.policies as Authorization[] | undefined) ?? [],
    services: (v.services as Service[] | undefined) ?? [],
  });
}

function okConfig(config: LocalConfig): LocalXdsParseResult {
  return { ok: true, value: config, issues: [] };
}

// ---------------------------------------------------------------- writing

// Port maps are written as YAML maps with integer keys (`80: 8080`), as serde does.
function portMapOut(m: PortMap): Map<number, number> {
  return new Map(Object.entries(m).map(([k, v]) => [Number(k), v]));
}

function gatewayOut(g: GatewayAddress): Record<string, unknown> {
  const d = g.destination;
  return {
    destination: isNetworkAddress(d) ? `${d.network}/${d.address}` : `${d.namespace}/${d.hostname}`,
    hboneMtlsPort: g.hboneMtlsPort,
  };
}

function workloadOut(w: Workload): Record<string, unknown> {
  const o: Record<string, unknown> = { workloadIps: [...w.workloadIps] };
  if (w.waypoint) o.waypoint = gatewayOut(w.waypoint);
  if (w.networkGateway) o.networkGateway = gatewayOut(w.networkGateway);
  o.protocol = w.protocol;
  o.networkMode = w.networkMode;
  if (w.uid !== "") o.uid = w.uid;
  o.name = w.name;
  o.namespace = w.namespace;
  const optionalStrings = [
    "trustDomain",
    "serviceAccount",
    "network",
    "workloadName",
    "workloadType",
    "canonicalName",
    "canonicalRevision",
    "hostname",
    "node",
  ] as const;
  for (const k of optionalStrings) if (w[k] !== "") o[k] = w[k];
  if (w.nativeTunnel) o.nativeTunnel = true;
  if (w.applicationTunnel) {
    o.applicationTunnel = {
      protocol: w.applicationTunnel.protocol,
      ...(w.applicationTunnel.port !== undefined ? { port: w.applicationTunnel.port } : {}),
    };
  }
  if (w.authorizationPolicies.length > 0) o.authorizationPolicies = [...w.authorizationPolicies];
  o.status = w.status;
  o.clusterId = w.clusterId;
  if (w.locality)
    o.locality = { region: w.locality.region, zone: w.locality.zone, subzone: w.locality.subzone };
  o.capacity = w.capacity;
  // LocalWorkload's own `services` follows the flattened Workload fields.
  o.services = new Map(Object.entries(w.services).map(([k, v]) => [k, portMapOut(v)]));
  return o;
}

function serviceOut(s: Service): Record<string, unknown> {
  const o: Record<string, unknown> = {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    vips: s.vips.map((v) => `${v.network}/${v.address}`),
  };
  if (s.cidrVips.length > 0)
    o.cidrVips = s.cidrVips.map((c) => ({ network: c.network, cidr: c.cidr }));
  o.ports = portMapOut(s.ports);
  o.endpoints = new Map(
    Object.entries(s.endpoints).map(([uid, e]) => [
      uid,
      { workloadUid: e.workloadUid, port: portMapOut(e.port), status: e.status },
    ]),
  );
  o.subjectAltNames = [...s.subjectAltNames];
  if (s.waypoint) o.waypoint = gatewayOut(s.waypoint);
  if (s.weightedWaypoints.length > 0) {
    o.weightedWaypoints = s.weightedWaypoints.map((w) => ({
      destination: gatewayOut(w.destination),
      weight: w.weight,
    }));
  }
  if (s.loadBalancer) {
    o.loadBalancer = {
      routingPreferences: [...s.loadBalancer.routingPreferences],
      mode: s.loadBalancer.mode,
      healthPolicy: s.loadBalancer.healthPolicy,
    };
  }
  if (s.ipFamilies) o.ipFamilies = s.ipFamilies;
  o.canonical = s.canonical;
  o.visibility = s.visibility;
  return o;
}

function stringMatchOut(m: StringMatch): Record<string, unknown> {
  if ("exact" in m) return { Exact: m.exact };
  if ("prefix" in m) return { Prefix: m.prefix };
  if ("suffix" in m) return { Suffix: m.suffix };
  return { Presence: [] };
}

function matchOut(m: RbacMatch): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const k of RBAC_MATCH_FIELDS) {
    const list = m[k] as readonly unknown[] | undefined;
    if (!list || list.length === 0) continue;
    if (
      k === "namespaces" ||
      k === "notNamespaces" ||
      k === "principals" ||
      k === "notPrincipals"
    ) {
      o[k] = (list as StringMatch[]).map(stringMatchOut);
    } else if (k === "serviceAccounts" || k === "notServiceAccounts") {
      o[k] = (list as { namespace: string; serviceAccount: string }[]).map((s) => ({
        namespace: s.namespace,
        serviceAccount: s.serviceAccount,
      }));
    } else {
      o[k] = [...list];
    }
  }
  return o;
}

function policyOut(p: Authorization): Record<string, unknown> {
  return {
    name: p.name,
    namespace: p.namespace,
    scope: p.scope,
    action: p.action,
    rules: p.rules.map((rule) => rule.map((clause) => clause.map(matchOut))),
    dryRun: p.dryRun,
  };
}

/**
 * Serializes a config as LOCAL_XDS YAML that ztunnel loads: its field order, its omissions, port
 * maps with integer keys. `parseLocalXds(serializeLocalXds(c))` gives back an equal config.
 */
export function serializeLocalXds(config: LocalConfig): string {
  return stringify(
    {
      workloads: config.workloads.map(workloadOut),
      policies: config.policies.map(policyOut),
      services: config.services.map(serviceOut),
    },
    { lineWidth: 0, aliasDuplicateObjects: false },
  );
}
