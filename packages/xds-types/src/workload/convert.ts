// Conversion between the protobuf messages (./gen) and the domain form (./types.ts,
// ./authorization.ts), following ztunnel's `TryFrom<Xds…>` impls: the same defaults, the same
// rejections (bad address bytes, LEGACY_ISTIO_MTLS, unknown enum numbers, a gateway without a
// destination) and the same leniency (a StringMatch without a value and an unparsable policy IP are
// dropped). From-proto failures throw XdsTypesError `ERR_XDS_CONVERT`; a domain value holding a bad
// IP string throws `ERR_XDS_BAD_IP` on the way to proto.

import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { XdsTypesError } from "../errors.js";
import type {
  Authorization,
  RbacAction,
  RbacMatch,
  RbacScope,
  ServiceAccountMatch,
  StringMatch,
} from "./authorization.js";
import {
  Action,
  ClauseSchema,
  type Match,
  MatchSchema,
  RuleSchema,
  Scope,
  type Address as SecAddress,
  AddressSchema as SecAddressSchema,
  ServiceAccountMatchSchema,
  StringMatchSchema,
  type Authorization as XdsAuthorization,
  AuthorizationSchema as XdsAuthorizationSchema,
  type StringMatch as XdsStringMatch,
} from "./gen/authorization_pb.js";
import {
  ApplicationTunnel_Protocol,
  ApplicationTunnelSchema,
  GatewayAddressSchema,
  IPFamilies,
  LoadBalancing_HealthPolicy,
  LoadBalancing_Mode,
  type LoadBalancing_Scope,
  LoadBalancingSchema,
  LocalitySchema,
  NamespacedHostnameSchema,
  NetworkAddressSchema,
  PortListSchema,
  PortSchema,
  Service_Visibility,
  TunnelProtocol,
  WeightedWaypointSchema,
  WorkloadStatus,
  WorkloadType,
  type Address as XdsAddress,
  AddressSchema as XdsAddressSchema,
  type GatewayAddress as XdsGatewayAddress,
  NetworkMode as XdsNetworkMode,
  type PortList as XdsPortList,
  type Service as XdsService,
  ServiceSchema as XdsServiceSchema,
  type Workload as XdsWorkload,
  WorkloadSchema as XdsWorkloadSchema,
} from "./gen/workload_pb.js";
import { formatCidr, formatIp, parseCidr, parseIp } from "./ip.js";
import {
  type GatewayAddress,
  type IpFamily,
  isNetworkAddress,
  type LoadBalancerHealthPolicy,
  type LoadBalancerMode,
  type LoadBalancerScope,
  type LocalConfig,
  type PortMap,
  type Service,
  type Workload,
} from "./types.js";

function convertError(what: string, detail: string): XdsTypesError {
  return new XdsTypesError(
    "ERR_XDS_CONVERT",
    `cannot convert ${what}: ${detail}; ztunnel would reject this resource too — fix it at the control plane`,
  );
}

function badIp(what: string, value: string, expected: string): XdsTypesError {
  return new XdsTypesError(
    "ERR_XDS_BAD_IP",
    `${what}: ${JSON.stringify(value)} is not ${expected}; write e.g. "10.0.0.1" or "2001:db8::1"`,
  );
}

function ipFromBytes(what: string, bytes: Uint8Array): string {
  const ip = formatIp(bytes);
  if (ip === undefined) {
    throw convertError(what, `an IP address must be 4 or 16 bytes, got ${bytes.length}`);
  }
  return ip;
}

function ipToBytes(what: string, ip: string): Uint8Array {
  const b = parseIp(ip);
  if (b === undefined) throw badIp(what, ip, "an IPv4 or IPv6 address");
  return b;
}

function knownEnum<T extends number>(what: string, value: T, max: number): T {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw convertError(what, `unknown enum value ${value}`);
  }
  return value;
}

// ---------- small shared pieces ----------

function portMapFromProto(list: XdsPortList | undefined): PortMap {
  const out: Record<number, number> = {};
  for (const p of list?.ports ?? []) out[p.servicePort & 0xffff] = p.targetPort & 0xffff;
  return out;
}

function portMapToProto(ports: PortMap): XdsPortList {
  return create(PortListSchema, {
    ports: Object.entries(ports).map(([svc, target]) =>
      create(PortSchema, { servicePort: Number(svc), targetPort: target }),
    ),
  });
}

function gatewayFromProto(what: string, g: XdsGatewayAddress): GatewayAddress {
  const d = g.destination;
  const hboneMtlsPort = g.hboneMtlsPort & 0xffff;
  switch (d.case) {
    case "address":
      return {
        destination: {
          network: d.value.network,
          address: ipFromBytes(`${what}.destination.address`, d.value.address),
        },
        hboneMtlsPort,
      };
    case "hostname":
      return {
        destination: { namespace: d.value.namespace, hostname: d.value.hostname },
        hboneMtlsPort,
      };
    default:
      throw convertError(what, "the gateway address has no destination (hostname or address)");
  }
}

function gatewayToProto(what: string, g: GatewayAddress): XdsGatewayAddress {
  const d = g.destination;
  return create(GatewayAddressSchema, {
    destination: isNetworkAddress(d)
      ? {
          case: "address",
          value: create(NetworkAddressSchema, {
            network: d.network,
            address: ipToBytes(`${what}.destination`, d.address),
          }),
        }
      : {
          case: "hostname",
          value: create(NamespacedHostnameSchema, {
            namespace: d.namespace,
            hostname: d.hostname,
          }),
        },
    hboneMtlsPort: g.hboneMtlsPort,
  });
}

// ---------- Workload ----------

const WORKLOAD_TYPE_NAMES = ["deployment", "cronjob", "pod", "job"] as const;

/**
 * Converts an `istio.workload.Workload` to the domain form, applying ztunnel's defaults
 * (trustDomain `cluster.local`, serviceAccount `default`, clusterId `Kubernetes`, capacity 1).
 * Throws XdsTypesError `ERR_XDS_CONVERT` where ztunnel rejects the resource.
 */
export function workloadFromProto(w: XdsWorkload): Workload {
  const what = `workload ${JSON.stringify(w.uid || w.name)}`;
  const tunnel = knownEnum(
    `${what} tunnelProtocol`,
    w.tunnelProtocol,
    TunnelProtocol.LEGACY_ISTIO_MTLS,
  );
  if (tunnel === TunnelProtocol.LEGACY_ISTIO_MTLS) {
    throw convertError(what, "unsupported tunnel protocol LEGACY_ISTIO_MTLS");
  }
  const networkMode = knownEnum(`${what} networkMode`, w.networkMode, XdsNetworkMode.HOST_NETWORK);
  const status = knownEnum(`${what} status`, w.status, WorkloadStatus.UNHEALTHY);
  const workloadType = knownEnum(`${what} workloadType`, w.workloadType, WorkloadType.JOB);
  const services: Record<string, PortMap> = {};
  for (const [key, list] of Object.entries(w.services)) {
    if (!key.includes("/")) {
      throw convertError(what, `services key ${JSON.stringify(key)} is not "namespace/hostname"`);
    }
    services[key] = portMapFromProto(list);
  }
  let applicationTunnel: Workload["applicationTunnel"];
  if (w.applicationTunnel !== undefined) {
    const p = knownEnum(
      `${what} applicationTunnel.protocol`,
      w.applicationTunnel.protocol,
      ApplicationTunnel_Protocol.PROXY,
    );
    const port = w.applicationTunnel.port & 0xffff;
    applicationTunnel = {
      protocol: p === ApplicationTunnel_Protocol.PROXY ? "PROXY" : "NONE",
      ...(port === 0 ? {} : { port }),
    };
  }
  return {
    workloadIps: w.addresses.map((a, i) => ipFromBytes(`${what} addresses[${i}]`, a)),
    ...(w.waypoint ? { waypoint: gatewayFromProto(`${what} waypoint`, w.waypoint) } : {}),
    ...(w.networkGateway
      ? { networkGateway: gatewayFromProto(`${what} networkGateway`, w.networkGateway) }
      : {}),
    protocol: tunnel === TunnelProtocol.HBONE ? "HBONE" : "TCP",
    networkMode: networkMode === XdsNetworkMode.HOST_NETWORK ? "HostNetwork" : "Standard",
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    trustDomain: w.trustDomain === "" ? "cluster.local" : w.trustDomain,
    serviceAccount: w.serviceAccount === "" ? "default" : w.serviceAccount,
    network: w.network,
    workloadName: w.workloadName,
    workloadType: WORKLOAD_TYPE_NAMES[workloadType] as string,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    hostname: w.hostname,
    node: w.node,
    nativeTunnel: w.nativeTunnel,
    ...(applicationTunnel ? { applicationTunnel } : {}),
    authorizationPolicies: [...w.authorizationPolicies],
    status: status === WorkloadStatus.UNHEALTHY ? "Unhealthy" : "Healthy",
    clusterId: w.clusterId === "" ? "Kubernetes" : w.clusterId,
    ...(w.locality
      ? {
          locality: {
            region: w.locality.region,
            zone: w.locality.zone,
            subzone: w.locality.subzone,
          },
        }
      : {}),
    services,
    capacity: w.capacity ?? 1,
  };
}

/**
 * Converts a domain workload to an `istio.workload.Workload`. `workloadType` is matched
 * case-insensitively against DEPLOYMENT/CRONJOB/POD/JOB ("" = DEPLOYMENT). Throws XdsTypesError
 * `ERR_XDS_BAD_IP` for an unparsable IP and `ERR_XDS_CONVERT` for an unknown workload type.
 */
export function workloadToProto(w: Workload): XdsWorkload {
  const what = `workload ${JSON.stringify(w.uid || w.name)}`;
  const typeIndex =
    w.workloadType === ""
      ? 0
      : WORKLOAD_TYPE_NAMES.indexOf(
          w.workloadType.toLowerCase() as (typeof WORKLOAD_TYPE_NAMES)[number],
        );
  if (typeIndex < 0) {
    throw convertError(
      what,
      `workloadType ${JSON.stringify(w.workloadType)} is none of ${WORKLOAD_TYPE_NAMES.join(", ")}`,
    );
  }
  const services: Record<string, XdsPortList> = {};
  for (const [key, ports] of Object.entries(w.services)) services[key] = portMapToProto(ports);
  return create(XdsWorkloadSchema, {
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    addresses: w.workloadIps.map((ip, i) => ipToBytes(`${what} workloadIps[${i}]`, ip)),
    hostname: w.hostname,
    network: w.network,
    tunnelProtocol: w.protocol === "HBONE" ? TunnelProtocol.HBONE : TunnelProtocol.NONE,
    trustDomain: w.trustDomain,
    serviceAccount: w.serviceAccount,
    ...(w.waypoint ? { waypoint: gatewayToProto(`${what} waypoint`, w.waypoint) } : {}),
    ...(w.networkGateway
      ? { networkGateway: gatewayToProto(`${what} networkGateway`, w.networkGateway) }
      : {}),
    node: w.node,
    canonicalName: w.canonicalName,
    canonicalRevision: w.canonicalRevision,
    workloadType: typeIndex as WorkloadType,
    workloadName: w.workloadName,
    nativeTunnel: w.nativeTunnel,
    ...(w.applicationTunnel
      ? {
          applicationTunnel: create(ApplicationTunnelSchema, {
            protocol:
              w.applicationTunnel.protocol === "PROXY"
                ? ApplicationTunnel_Protocol.PROXY
                : ApplicationTunnel_Protocol.NONE,
            port: w.applicationTunnel.port ?? 0,
          }),
        }
      : {}),
    services,
    authorizationPolicies: [...w.authorizationPolicies],
    status: w.status === "Unhealthy" ? WorkloadStatus.UNHEALTHY : WorkloadStatus.HEALTHY,
    clusterId: w.clusterId,
    ...(w.locality ? { locality: create(LocalitySchema, { ...w.locality }) } : {}),
    networkMode:
      w.networkMode === "HostNetwork" ? XdsNetworkMode.HOST_NETWORK : XdsNetworkMode.STANDARD,
    capacity: w.capacity,
  });
}

// ---------- Service ----------

const LB_SCOPES: readonly (LoadBalancerScope | undefined)[] = [
  undefined,
  "Region",
  "Zone",
  "Subzone",
  "Node",
  "Cluster",
  "Network",
];
const LB_MODES: readonly LoadBalancerMode[] = ["Standard", "Strict", "Failover", "Passthrough"];
const LB_HEALTH: readonly LoadBalancerHealthPolicy[] = ["OnlyHealthy", "AllowAll"];
const IP_FAMILIES: readonly (IpFamily | undefined)[] = [undefined, "IPv4", "IPv6", "Dual"];

/**
 * Converts an `istio.workload.Service` to the domain form as ztunnel does: addresses with a prefix
 * length narrower than the address become `cidrVips`, AUTOMATIC ip families is absent, an unknown
 * visibility falls back to Public (fail open), and endpoints start empty (they come from workloads).
 */
export function serviceFromProto(s: XdsService): Service {
  const what = `service ${JSON.stringify(`${s.namespace}/${s.hostname}`)}`;
  const vips: { network: string; address: string }[] = [];
  const cidrVips: { network: string; cidr: string }[] = [];
  s.addresses.forEach((a, i) => {
    const ip = ipFromBytes(`${what} addresses[${i}]`, a.address);
    const max = a.address.length * 8;
    if (a.length !== undefined && a.length !== max) {
      const cidr = formatCidr({ address: a.address, length: a.length });
      if (cidr === undefined) {
        throw convertError(what, `addresses[${i}] has prefix length ${a.length} > ${max}`);
      }
      cidrVips.push({ network: a.network, cidr });
    } else {
      vips.push({ network: a.network, address: ip });
    }
  });
  let loadBalancer: Service["loadBalancer"];
  if (s.loadBalancing !== undefined) {
    const lb = s.loadBalancing;
    const routingPreferences = lb.routingPreference.map((r) => {
      const scope = LB_SCOPES[r];
      if (scope === undefined) throw convertError(what, `invalid load balancing scope ${r}`);
      return scope;
    });
    knownEnum(`${what} loadBalancing.mode`, lb.mode, LoadBalancing_Mode.PASSTHROUGH);
    knownEnum(
      `${what} loadBalancing.healthPolicy`,
      lb.healthPolicy,
      LoadBalancing_HealthPolicy.ALLOW_ALL,
    );
    loadBalancer = {
      routingPreferences,
      mode: LB_MODES[lb.mode] as LoadBalancerMode,
      healthPolicy: LB_HEALTH[lb.healthPolicy] as LoadBalancerHealthPolicy,
    };
  }
  knownEnum(`${what} ipFamilies`, s.ipFamilies, IPFamilies.DUAL);
  const ipFamilies = IP_FAMILIES[s.ipFamilies];
  const ports: Record<number, number> = {};
  for (const p of s.ports) ports[p.servicePort & 0xffff] = p.targetPort & 0xffff;
  return {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    vips,
    cidrVips,
    ports,
    endpoints: {},
    subjectAltNames: [...s.subjectAltNames],
    ...(s.waypoint ? { waypoint: gatewayFromProto(`${what} waypoint`, s.waypoint) } : {}),
    weightedWaypoints: s.weightedWaypoints.map((ww, i) => {
      if (ww.destination === undefined) {
        throw convertError(what, `weightedWaypoints[${i}] has no destination`);
      }
      return {
        destination: gatewayFromProto(`${what} weightedWaypoints[${i}]`, ww.destination),
        weight: ww.weight,
      };
    }),
    ...(loadBalancer ? { loadBalancer } : {}),
    ...(ipFamilies ? { ipFamilies } : {}),
    canonical: s.canonical,
    visibility: s.visibility === Service_Visibility.NAMESPACE ? "Namespace" : "Public",
  };
}

/** Converts a domain Service to an `istio.workload.Service` (endpoints are not part of the message). */
export function serviceToProto(s: Service): XdsService {
  const what = `service ${JSON.stringify(`${s.namespace}/${s.hostname}`)}`;
  const addresses = [
    ...s.vips.map((v, i) =>
      create(NetworkAddressSchema, {
        network: v.network,
        address: ipToBytes(`${what} vips[${i}]`, v.address),
      }),
    ),
    ...s.cidrVips.map((c, i) => {
      const p = parseCidr(c.cidr);
      if (p === undefined) throw badIp(`${what} cidrVips[${i}]`, c.cidr, "a CIDR like 10.0.0.0/16");
      return create(NetworkAddressSchema, {
        network: c.network,
        address: p.address,
        length: p.length,
      });
    }),
  ];
  const lb = s.loadBalancer;
  return create(XdsServiceSchema, {
    name: s.name,
    namespace: s.namespace,
    hostname: s.hostname,
    addresses,
    ports: Object.entries(s.ports).map(([svc, target]) =>
      create(PortSchema, { servicePort: Number(svc), targetPort: target }),
    ),
    subjectAltNames: [...s.subjectAltNames],
    ...(s.waypoint ? { waypoint: gatewayToProto(`${what} waypoint`, s.waypoint) } : {}),
    ...(lb
      ? {
          loadBalancing: create(LoadBalancingSchema, {
            routingPreference: lb.routingPreferences.map(
              (r) => LB_SCOPES.indexOf(r) as LoadBalancing_Scope,
            ),
            mode: LB_MODES.indexOf(lb.mode) as LoadBalancing_Mode,
            healthPolicy: LB_HEALTH.indexOf(lb.healthPolicy) as LoadBalancing_HealthPolicy,
          }),
        }
      : {}),
    ipFamilies: (s.ipFamilies ? IP_FAMILIES.indexOf(s.ipFamilies) : 0) as IPFamilies,
    canonical: s.canonical,
    weightedWaypoints: s.weightedWaypoints.map((ww, i) =>
      create(WeightedWaypointSchema, {
        destination: gatewayToProto(`${what} weightedWaypoints[${i}]`, ww.destination),
        weight: ww.weight,
      }),
    ),
    visibility:
      s.visibility === "Namespace" ? Service_Visibility.NAMESPACE : Service_Visibility.PUBLIC,
  });
}

// ---------- Address ----------

/** A decoded `istio.workload.Address` in domain form. */
export type AddressResource =
  | { readonly kind: "workload"; readonly workload: Workload }
  | { readonly kind: "service"; readonly service: Service };

/** Converts an `istio.workload.Address` (throws `ERR_XDS_CONVERT` if it holds neither). */
export function addressFromProto(a: XdsAddress): AddressResource {
  switch (a.type.case) {
    case "workload":
      return { kind: "workload", workload: workloadFromProto(a.type.value) };
    case "service":
      return { kind: "service", service: serviceFromProto(a.type.value) };
    default:
      throw convertError("address", "it holds neither a workload nor a service");
  }
}

/** Wraps a domain Workload or Service into an `istio.workload.Address`. */
export function addressToProto(a: AddressResource): XdsAddress {
  return create(XdsAddressSchema, {
    type:
      a.kind === "workload"
        ? { case: "workload", value: workloadToProto(a.workload) }
        : { case: "service", value: serviceToProto(a.service) },
  });
}

// ---------- Authorization ----------

const SCOPES: readonly RbacScope[] = ["Global", "Namespace", "WorkloadSelector"];
const ACTIONS: readonly RbacAction[] = ["Allow", "Deny"];

function stringMatchFromProto(m: XdsStringMatch): StringMatch | undefined {
  const t = m.matchType;
  switch (t.case) {
    case "exact":
      return { exact: t.value };
    case "prefix":
      return { prefix: t.value };
    case "suffix":
      return { suffix: t.value };
    case "presence":
      return { presence: true };
    default:
      return undefined; // ztunnel drops a StringMatch without a value
  }
}

function stringMatchToProto(m: StringMatch): XdsStringMatch {
  if ("exact" in m)
    return create(StringMatchSchema, { matchType: { case: "exact", value: m.exact } });
  if ("prefix" in m) {
    return create(StringMatchSchema, { matchType: { case: "prefix", value: m.prefix } });
  }
  if ("suffix" in m) {
    return create(StringMatchSchema, { matchType: { case: "suffix", value: m.suffix } });
  }
  return create(StringMatchSchema, {
    matchType: { case: "presence", value: create(EmptySchema) },
  });
}

function cidrsFromProto(list: readonly SecAddress[]): string[] {
  const out: string[] = [];
  for (const a of list) {
    const c = formatCidr({ address: a.address, length: a.length });
    if (c !== undefined) out.push(c); // ztunnel drops unparsable prefixes
  }
  return out;
}

function cidrsToProto(what: string, list: readonly string[] | undefined): SecAddress[] {
  return (list ?? []).map((c, i) => {
    const p = parseCidr(c);
    if (p === undefined) throw badIp(`${what}[${i}]`, c, "a CIDR like 10.0.0.0/8 or 10.1.2.3/32");
    return create(SecAddressSchema, { address: p.address, length: p.length });
  });
}

function matchFromProto(m: Match): RbacMatch {
  const sm = (l: readonly XdsStringMatch[]): StringMatch[] =>
    l.map(stringMatchFromProto).filter((x): x is StringMatch => x !== undefined);
  const sa = (l: readonly { namespace: string; serviceAccount: string }[]): ServiceAccountMatch[] =>
    l.map((x) => ({ namespace: x.namespace, serviceAccount: x.serviceAccount }));
  const ports = (l: readonly number[]): number[] => l.map((p) => p & 0xffff);
  const out: Record<string, unknown[]> = {
    namespaces: sm(m.namespaces),
    notNamespaces: sm(m.notNamespaces),
    serviceAccounts: sa(m.serviceAccounts),
    notServiceAccounts: sa(m.notServiceAccounts),
    principals: sm(m.principals),
    notPrincipals: sm(m.notPrincipals),
    sourceIps: cidrsFromProto(m.sourceIps),
    notSourceIps: cidrsFromProto(m.notSourceIps),
    destinationIps: cidrsFromProto(m.destinationIps),
    notDestinationIps: cidrsFromProto(m.notDestinationIps),
    destinationPorts: ports(m.destinationPorts),
    notDestinationPorts: ports(m.notDestinationPorts),
  };
  for (const k of Object.keys(out)) if (out[k]?.length === 0) delete out[k];
  return out as RbacMatch;
}

function matchToProto(what: string, m: RbacMatch): Match {
  const sm = (l: readonly StringMatch[] | undefined) => (l ?? []).map(stringMatchToProto);
  const sa = (l: readonly ServiceAccountMatch[] | undefined) =>
    (l ?? []).map((x) => create(ServiceAccountMatchSchema, { ...x }));
  return create(MatchSchema, {
    namespaces: sm(m.namespaces),
    notNamespaces: sm(m.notNamespaces),
    serviceAccounts: sa(m.serviceAccounts),
    notServiceAccounts: sa(m.notServiceAccounts),
    principals: sm(m.principals),
    notPrincipals: sm(m.notPrincipals),
    sourceIps: cidrsToProto(`${what}.sourceIps`, m.sourceIps),
    notSourceIps: cidrsToProto(`${what}.notSourceIps`, m.notSourceIps),
    destinationIps: cidrsToProto(`${what}.destinationIps`, m.destinationIps),
    notDestinationIps: cidrsToProto(`${what}.notDestinationIps`, m.notDestinationIps),
    destinationPorts: [...(m.destinationPorts ?? [])],
    notDestinationPorts: [...(m.notDestinationPorts ?? [])],
  });
}

/**
 * Converts an `istio.security.Authorization` to the domain form (ztunnel `rbac::Authorization`).
 * Throws `ERR_XDS_CONVERT` on an unknown scope or action number.
 */
export function authorizationFromProto(a: XdsAuthorization): Authorization {
  const what = `authorization ${JSON.stringify(`${a.namespace}/${a.name}`)}`;
  knownEnum(`${what} scope`, a.scope, Scope.WORKLOAD_SELECTOR);
  knownEnum(`${what} action`, a.action, Action.DENY);
  return {
    name: a.name,
    namespace: a.namespace,
    scope: SCOPES[a.scope] as RbacScope,
    action: ACTIONS[a.action] as RbacAction,
    rules: a.rules.map((r) => r.clauses.map((c) => c.matches.map(matchFromProto))),
    dryRun: a.dryRun,
  };
}

/** Converts a domain policy to an `istio.security.Authorization`; throws `ERR_XDS_BAD_IP` on a bad CIDR. */
export function authorizationToProto(a: Authorization): XdsAuthorization {
  const what = `authorization ${JSON.stringify(`${a.namespace}/${a.name}`)}`;
  return create(XdsAuthorizationSchema, {
    name: a.name,
    namespace: a.namespace,
    scope: SCOPES.indexOf(a.scope) as Scope,
    action: ACTIONS.indexOf(a.action) as Action,
    rules: a.rules.map((rule, ri) =>
      create(RuleSchema, {
        clauses: rule.map((clause, ci) =>
          create(ClauseSchema, {
            matches: clause.map((m, mi) => matchToProto(`${what} rules[${ri}][${ci}][${mi}]`, m)),
          }),
        ),
      }),
    ),
    dryRun: a.dryRun,
  });
}

// ---------- whole configs ----------

/** The xDS resources a LOCAL_XDS config stands for (what istiod would push to ztunnel). */
export interface XdsResources {
  /** `type.googleapis.com/istio.workload.Address`: workloads first, then services. */
  readonly addresses: XdsAddress[];
  /** `type.googleapis.com/istio.security.Authorization`. */
  readonly authorizations: XdsAuthorization[];
}

/** Converts a LOCAL_XDS config to workload-API messages (throws `ERR_XDS_BAD_IP` on a bad IP). */
export function localConfigToProto(config: LocalConfig): XdsResources {
  return {
    addresses: [
      ...config.workloads.map((workload) => addressToProto({ kind: "workload", workload })),
      ...config.services.map((service) => addressToProto({ kind: "service", service })),
    ],
    authorizations: config.policies.map(authorizationToProto),
  };
}

/** Converts workload-API messages to a config (throws `ERR_XDS_CONVERT` where ztunnel would). */
export function localConfigFromProto(resources: {
  readonly addresses?: readonly XdsAddress[];
  readonly authorizations?: readonly XdsAuthorization[];
}): LocalConfig {
  const workloads: Workload[] = [];
  const services: Service[] = [];
  for (const a of resources.addresses ?? []) {
    const r = addressFromProto(a);
    if (r.kind === "workload") workloads.push(r.workload);
    else services.push(r.service);
  }
  return {
    workloads,
    policies: (resources.authorizations ?? []).map(authorizationFromProto),
    services,
  };
}
