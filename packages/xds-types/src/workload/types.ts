// ztunnel's workload and service model in its domain form: what ztunnel keeps after converting the
// protobuf messages (`src/state/workload.rs`, `src/state/service.rs`) and what LOCAL_XDS YAML spells
// (camelCase names, enums as ztunnel's serde names). IPs are strings ("10.0.0.1", "2001:db8::1").
// Every field is present after parsing or conversion (defaults applied), except the ones ztunnel
// itself keeps optional (waypoint, networkGateway, applicationTunnel, locality, loadBalancer,
// ipFamilies).

import type { Authorization } from "./authorization.js";

/** How a workload receives traffic: plain TCP (out of the mesh) or HBONE on 15008. */
export type InboundProtocol = "TCP" | "HBONE";
/** Pod networking: its own netns, or the node's (hostNetwork). */
export type NetworkMode = "Standard" | "HostNetwork";
/** Endpoint health as the control plane reports it. */
export type HealthStatus = "Healthy" | "Unhealthy";
/** Application tunnel protocol (`ApplicationTunnel.Protocol`). */
export type ApplicationTunnelProtocol = "NONE" | "PROXY";
/** Load-balancing locality scopes (`LoadBalancing.Scope`, without UNSPECIFIED). */
export type LoadBalancerScope = "Region" | "Zone" | "Subzone" | "Node" | "Cluster" | "Network";
/** Load-balancing mode (`LoadBalancing.Mode`; UNSPECIFIED_MODE is `Standard`). */
export type LoadBalancerMode = "Standard" | "Strict" | "Failover" | "Passthrough";
/** Whether unhealthy endpoints may be picked. */
export type LoadBalancerHealthPolicy = "OnlyHealthy" | "AllowAll";
/** IP families a Service accepts (`IPFamilies`; AUTOMATIC is "absent"). */
export type IpFamily = "Dual" | "IPv4" | "IPv6";
/** Who may resolve and route to a Service. */
export type ServiceVisibility = "Public" | "Namespace";

/** An IP on a network. LOCAL_XDS writes it `"<network>/<ip>"` (the network may be empty: `"/10.0.0.1"`). */
export interface NetworkAddress {
  readonly network: string;
  readonly address: string;
}

/** A Service by `namespace/hostname`. */
export interface NamespacedHostname {
  readonly namespace: string;
  readonly hostname: string;
}

/** A CIDR VIP on a network (`NetworkAddress` with a `length` other than the full width). */
export interface NetworkCidr {
  readonly network: string;
  /** `"10.96.0.0/16"`. */
  readonly cidr: string;
}

/**
 * A waypoint or east-west gateway: a network address or a Service, plus the HBONE port.
 * LOCAL_XDS writes `destination` as one string, read as `network/ip` first, else `namespace/hostname`.
 */
export interface GatewayAddress {
  readonly destination: NetworkAddress | NamespacedHostname;
  readonly hboneMtlsPort: number;
}

/** Where a workload's app accepts tunneled traffic (PROXY protocol on `port`). */
export interface ApplicationTunnel {
  readonly protocol: ApplicationTunnelProtocol;
  readonly port?: number;
}

/** Where a workload runs, for locality-aware load balancing and baggage. */
export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subzone: string;
}

/** Service port → target port. */
export type PortMap = Readonly<Record<number, number>>;

/**
 * One workload (ztunnel `Workload`, plus LOCAL_XDS's `services`, which registers it as an endpoint).
 * Proto conversion applies ztunnel's defaults: trustDomain `cluster.local`, serviceAccount `default`,
 * clusterId `Kubernetes`, capacity 1. LOCAL_XDS parsing applies ztunnel's serde defaults, which are
 * empty strings: set `trustDomain` and `serviceAccount` explicitly there.
 */
export interface Workload {
  readonly workloadIps: readonly string[];
  readonly waypoint?: GatewayAddress;
  readonly networkGateway?: GatewayAddress;
  readonly protocol: InboundProtocol;
  readonly networkMode: NetworkMode;
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly trustDomain: string;
  readonly serviceAccount: string;
  readonly network: string;
  readonly workloadName: string;
  /** Lowercased `WorkloadType` name: `deployment`, `cronjob`, `pod`, `job` (free text in LOCAL_XDS). */
  readonly workloadType: string;
  readonly canonicalName: string;
  readonly canonicalRevision: string;
  readonly hostname: string;
  readonly node: string;
  readonly nativeTunnel: boolean;
  readonly applicationTunnel?: ApplicationTunnel;
  /** Keys `namespace/name` of the WORKLOAD_SELECTOR policies that apply. */
  readonly authorizationPolicies: readonly string[];
  readonly status: HealthStatus;
  readonly clusterId: string;
  readonly locality?: Locality;
  /** `"namespace/hostname"` → port map: the Services this workload is an endpoint of. */
  readonly services: Readonly<Record<string, PortMap>>;
  /** Load-balancing weight. */
  readonly capacity: number;
}

/** A Service endpoint (normally derived from `Workload.services`). */
export interface Endpoint {
  readonly workloadUid: string;
  readonly port: PortMap;
  readonly status: HealthStatus;
}

/** A waypoint candidate and its selection weight. */
export interface WeightedWaypoint {
  readonly destination: GatewayAddress;
  readonly weight: number;
}

/** Locality-aware load balancing. */
export interface LoadBalancer {
  readonly routingPreferences: readonly LoadBalancerScope[];
  readonly mode: LoadBalancerMode;
  readonly healthPolicy: LoadBalancerHealthPolicy;
}

/** A Service (ztunnel `Service`). Key `namespace/hostname`. */
export interface Service {
  readonly name: string;
  readonly namespace: string;
  readonly hostname: string;
  readonly vips: readonly NetworkAddress[];
  readonly cidrVips: readonly NetworkCidr[];
  readonly ports: PortMap;
  /** Workload uid → endpoint. */
  readonly endpoints: Readonly<Record<string, Endpoint>>;
  readonly subjectAltNames: readonly string[];
  readonly waypoint?: GatewayAddress;
  readonly weightedWaypoints: readonly WeightedWaypoint[];
  readonly loadBalancer?: LoadBalancer;
  readonly ipFamilies?: IpFamily;
  readonly canonical: boolean;
  readonly visibility: ServiceVisibility;
}

/** A whole LOCAL_XDS file (ztunnel `LocalConfig`). */
export interface LocalConfig {
  readonly workloads: readonly Workload[];
  readonly policies: readonly Authorization[];
  readonly services: readonly Service[];
}

/** True when a gateway destination is a network address (else a namespaced hostname). */
export function isNetworkAddress(d: NetworkAddress | NamespacedHostname): d is NetworkAddress {
  return "address" in d;
}

/**
 * The workload's SPIFFE identity as ztunnel forms it (`Workload::identity`):
 * `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`.
 */
export function workloadIdentity(
  w: Pick<Workload, "trustDomain" | "namespace" | "serviceAccount">,
): string {
  return `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`;
}

/** A Service's primary key, `namespace/hostname` (also the key of `Workload.services`). */
export function serviceKey(s: Pick<Service, "namespace" | "hostname">): string {
  return `${s.namespace}/${s.hostname}`;
}

/** An address alias key, `network/ip`, as xDS names Workload and Service aliases. */
export function networkAddressKey(a: NetworkAddress): string {
  return `${a.network}/${a.address}`;
}
