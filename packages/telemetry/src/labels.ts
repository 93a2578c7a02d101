/**
 * Istio's standard metric label set, and how ztunnel and Envoy (waypoints, sidecars) derive it from
 * what they know about the source and destination workloads. Universal: imports nothing from `node:`.
 *
 * Sources: istio/ztunnel `src/proxy/metrics.rs` (`CommonTrafficLabels`, `with_source`,
 * `with_derived_source`, `with_destination`, `with_destination_service`), `src/metrics.rs`
 * (`DefaultedUnknown`); istio/proxy `source/extensions/filters/http/istio_stats/istio_stats.cc`
 * (`populatePeerInfo`, `populateFlagsAndConnectionSecurity`); istio/istio `pkg/kube/labels`
 * (`CanonicalService`).
 */
import { TelemetryError } from "./errors.js";

/** Which proxy reports: client side (`source`), server side (`destination`) or a waypoint. */
export type Reporter = "source" | "destination" | "waypoint";
/** `request_protocol` values. */
export type RequestProtocol = "tcp" | "http" | "grpc";
/**
 * `connection_security_policy` values. ztunnel reports `mutual_tls` or `unknown` (never `none`);
 * Envoy server-side reporters report `mutual_tls` or `none`, client-side reporters `unknown`.
 */
export type ConnectionSecurityPolicy = "mutual_tls" | "none" | "unknown";
/**
 * ztunnel's `response_flags` values (`-` when none). Envoy uses its `%RESPONSE_FLAGS%` short
 * strings (e.g. `UH`, `UF`, `DC`), which are accepted as plain strings.
 */
export type ZtunnelResponseFlag =
  | "-"
  | "DENY"
  | "CONNECT"
  | "TLS_FAILURE"
  | "H2_HANDSHAKE_FAILURE"
  | "NETWORK_POLICY"
  | "IDENTITY_ERROR"
  | "CERT_REVOKED";
/** A response flag: one of ztunnel's or any Envoy short string. */
export type ResponseFlag = ZtunnelResponseFlag | (string & {});

/** The value Istio reports for any label it cannot fill. */
export const UNKNOWN = "unknown";
/** Envoy's and istiod's default canonical revision. */
export const LATEST = "latest";
/** `response_flags` when nothing went wrong. */
export const NO_FLAGS = "-";

/** ztunnel's flags that also count in `istio_tcp_connections_failed_total`. */
export const FAILURE_FLAGS: ReadonlySet<string> = new Set([
  "DENY",
  "CONNECT",
  "TLS_FAILURE",
  "H2_HANDSHAKE_FAILURE",
  "NETWORK_POLICY",
  "IDENTITY_ERROR",
  "CERT_REVOKED",
]);

/** Envoy's default histogram buckets, used by every Istio histogram (ms and bytes). */
export const ENVOY_BUCKETS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
  1800000, 3600000,
]);

/** Metric names, exactly as Istio exposes them in Prometheus text. */
export const METRIC_NAMES = {
  requestsTotal: "istio_requests_total",
  requestDuration: "istio_request_duration_milliseconds",
  requestBytes: "istio_request_bytes",
  responseBytes: "istio_response_bytes",
  requestMessages: "istio_request_messages_total",
  responseMessages: "istio_response_messages_total",
  tcpOpened: "istio_tcp_connections_opened_total",
  tcpClosed: "istio_tcp_connections_closed_total",
  tcpFailed: "istio_tcp_connections_failed_total",
  tcpSentBytes: "istio_tcp_sent_bytes_total",
  tcpReceivedBytes: "istio_tcp_received_bytes_total",
  build: "istio_build",
} as const;

/** Istio's peer label names in Envoy's emission order (reporter + 19 workload/service labels). */
export const ENVOY_PEER_LABEL_NAMES: readonly string[] = Object.freeze([
  "reporter",
  "source_workload",
  "source_canonical_service",
  "source_canonical_revision",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_cluster",
  "destination_workload",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_service",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_service_name",
  "destination_service_namespace",
  "destination_cluster",
]);

/** Envoy's TCP metric labels, in emission order. */
export const ENVOY_TCP_LABEL_NAMES: readonly string[] = Object.freeze([
  ...ENVOY_PEER_LABEL_NAMES,
  "request_protocol",
  "response_flags",
  "connection_security_policy",
]);

/** Envoy's HTTP/gRPC request metric labels, in emission order. */
export const ENVOY_HTTP_LABEL_NAMES: readonly string[] = Object.freeze([
  ...ENVOY_PEER_LABEL_NAMES,
  "request_protocol",
  "response_code",
  "grpc_response_status",
  "response_flags",
  "connection_security_policy",
]);

/** ztunnel's `CommonTrafficLabels`, in its field (= emission) order, without locality. */
export const ZTUNNEL_LABEL_NAMES: readonly string[] = Object.freeze([
  "reporter",
  "source_workload",
  "source_canonical_service",
  "source_canonical_revision",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_cluster",
  "destination_service",
  "destination_service_namespace",
  "destination_service_name",
  "destination_workload",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_cluster",
  "request_protocol",
  "response_flags",
  "connection_security_policy",
]);

/** ztunnel's optional locality labels, emitted after the others once any workload is known. */
export const ZTUNNEL_LOCALITY_LABEL_NAMES: readonly string[] = Object.freeze([
  "source_region",
  "source_zone",
  "destination_region",
  "destination_zone",
]);

/** Every label name any TCP series may carry (for registries that declare label names up front). */
export const ALL_TCP_LABEL_NAMES: readonly string[] = Object.freeze([
  ...ENVOY_TCP_LABEL_NAMES,
  ...ZTUNNEL_LOCALITY_LABEL_NAMES,
]);

/** Kubernetes workload kinds Istio names in baggage (`k8s.<type>.name`). */
export type WorkloadType = "deployment" | "cronjob" | "job" | "pod";

/**
 * What the mesh knows about one workload: ztunnel's `Workload` (from xDS), Envoy's peer metadata,
 * or what a peer announced in baggage. Every field is optional; missing ones become `unknown`.
 */
export interface WorkloadInfo {
  /** Pod (instance) name; used by the access log's `src.workload`/`dst.workload`. */
  name?: string;
  /** Workload name, e.g. the Deployment's name (`source_workload`). */
  workloadName?: string;
  workloadType?: WorkloadType;
  namespace?: string;
  /** `service.istio.io/canonical-name` (see {@link canonicalService}). */
  canonicalService?: string;
  /** `service.istio.io/canonical-revision` (see {@link canonicalService}). */
  canonicalRevision?: string;
  /** The `app` label (Envoy's `source_app`/`destination_app`; ztunnel uses the canonical name). */
  app?: string;
  /** The `version` label (Envoy's `*_version`; ztunnel uses the canonical revision). */
  version?: string;
  /** SPIFFE ID, e.g. `spiffe://cluster.local/ns/default/sa/default`. */
  identity?: string;
  /** Cluster ID (ztunnel's default is `Kubernetes`). */
  clusterId?: string;
  region?: string;
  zone?: string;
}

/** The destination Service (ztunnel's `ServiceDescription`). */
export interface ServiceInfo {
  /** e.g. `echo.default.svc.cluster.local` (`destination_service`). */
  hostname: string;
  /** e.g. `echo` (`destination_service_name`). */
  name?: string;
  /** `destination_service_namespace`. */
  namespace?: string;
}

/** Everything label derivation needs about one connection or request. */
export interface TrafficContext {
  reporter: Reporter;
  /** The source workload as the reporter knows it (xDS or peer metadata). */
  source?: WorkloadInfo;
  /**
   * ztunnel only: the source as derived from the connection itself (baggage + TLS identity),
   * applied before `source` (ztunnel's `with_derived_source`: `source_app` = its workload name).
   */
  derivedSource?: WorkloadInfo;
  destination?: WorkloadInfo;
  /** ztunnel only: the destination learnt from the peer's response baggage (applied last). */
  derivedDestination?: WorkloadInfo;
  destinationService?: ServiceInfo;
  /** The source identity proven by mTLS; the only source of `source_principal` on server sides. */
  sourcePrincipal?: string;
  /** The destination identity proven by mTLS; defaults to `destination.identity`. */
  destinationPrincipal?: string;
  /**
   * Defaults: ztunnel `unknown`; Envoy server sides `mutual_tls` when both principals are known,
   * else `none`; Envoy client side `unknown`. ztunnel never reports `none` (mapped to `unknown`).
   */
  securityPolicy?: ConnectionSecurityPolicy;
}

/** Which proxy's rules to apply. */
export type LabelFlavor = "ztunnel" | "envoy";

// Each distinct list of label names gets a small id, so series keys never mix layouts (ztunnel's
// and Envoy's TCP sets have the same length but a different order).
const layoutsByArray = new WeakMap<readonly string[], number>();
const layoutsByText = new Map<string, number>();
function layoutId(names: readonly string[]): number {
  let id = layoutsByArray.get(names);
  if (id === undefined) {
    const text = names.join(",");
    id = layoutsByText.get(text);
    if (id === undefined) {
      id = layoutsByText.size;
      layoutsByText.set(text, id);
    }
    layoutsByArray.set(names, id);
  }
  return id;
}

/**
 * An immutable, interned label set: names in emission order and their values. Create it once per
 * connection (or per source/destination pair) and hand it to the recorder; the recorder keys its
 * series on {@link LabelSet.key}, so a cached LabelSet makes recording a Map lookup.
 */
export class LabelSet {
  readonly names: readonly string[];
  readonly values: readonly string[];
  /** Stable identity of names + values, used as the series key. */
  readonly key: string;
  #record: Readonly<Record<string, string>> | undefined;
  #variants: Map<string, LabelSet> | undefined;

  constructor(names: readonly string[], values: readonly string[]) {
    if (names.length !== values.length) {
      throw new TelemetryError(
        "ERR_TELEMETRY_LABEL",
        `label set has ${names.length} names but ${values.length} values; pass one value per name`,
      );
    }
    this.names = names;
    this.values = values;
    this.key = `${layoutId(names)}\u0001${values.join("\u0000")}`;
  }

  /** The labels as a plain object whose key order is the emission order. */
  get record(): Readonly<Record<string, string>> {
    if (this.#record === undefined) {
      const out: Record<string, string> = {};
      for (let i = 0; i < this.names.length; i++) {
        out[this.names[i] as string] = this.values[i] as string;
      }
      this.#record = Object.freeze(out);
    }
    return this.#record;
  }

  /** The value of one label, or undefined. */
  get(name: string): string | undefined {
    const i = this.names.indexOf(name);
    return i < 0 ? undefined : this.values[i];
  }

  /** A copy with one label replaced (cached per name/value, so repeated calls are cheap). */
  with(name: string, value: string): LabelSet {
    const k = `${name}\u0000${value}`;
    this.#variants ??= new Map();
    let v = this.#variants.get(k);
    if (v === undefined) {
      const i = this.names.indexOf(name);
      if (i < 0) {
        throw new TelemetryError(
          "ERR_TELEMETRY_LABEL",
          `label "${name}" is not in this label set; use one of: ${this.names.join(", ")}`,
        );
      }
      if (this.values[i] === value) return this;
      const values = this.values.slice();
      values[i] = value;
      v = new LabelSet(this.names, values);
      this.#variants.set(k, v);
    }
    return v;
  }
}

/** Labels of one L4 connection (the TCP metrics). */
export interface TcpLabels {
  readonly kind: "tcp";
  readonly flavor: LabelFlavor;
  readonly reporter: Reporter;
  readonly labels: LabelSet;
  /** Access-log facts resolved together with the labels (absent values stay undefined). */
  readonly log: AccessLogContext;
}

/** Labels shared by every request on one HTTP/gRPC connection or route (the L7 metrics). */
export interface HttpLabels {
  readonly kind: "http";
  readonly reporter: Reporter;
  readonly protocol: "http" | "grpc";
  /** reporter + 19 peer labels (the labels of the gRPC message counters). */
  readonly peer: LabelSet;
  readonly securityPolicy: ConnectionSecurityPolicy;
}

/** Access-log fields that come from workload metadata (ztunnel omits absent ones). */
export interface AccessLogContext {
  readonly direction: "outbound" | "inbound";
  readonly srcWorkload: string | undefined;
  readonly srcNamespace: string | undefined;
  readonly srcIdentity: string | undefined;
  readonly srcCluster: string | undefined;
  readonly dstService: string | undefined;
  readonly dstWorkload: string | undefined;
  readonly dstNamespace: string | undefined;
  readonly dstIdentity: string | undefined;
  readonly dstCluster: string | undefined;
}

/** Kubernetes labels Istio reads the canonical service name from, in priority order. */
export const CANONICAL_NAME_LABELS: readonly string[] = Object.freeze([
  "service.istio.io/canonical-name",
  "app.kubernetes.io/name",
  "app",
]);
/** Kubernetes labels Istio reads the canonical revision from, in priority order. */
export const CANONICAL_REVISION_LABELS: readonly string[] = Object.freeze([
  "service.istio.io/canonical-revision",
  "app.kubernetes.io/version",
  "version",
]);

function lookup(
  labels: Readonly<Record<string, string>>,
  keys: readonly string[],
): string | undefined {
  for (const k of keys) {
    if (Object.hasOwn(labels, k)) return labels[k];
  }
  return undefined;
}

/**
 * istiod's canonical service rule: the name is the first present label of
 * `service.istio.io/canonical-name`, `app.kubernetes.io/name`, `app`, else the workload name; the
 * revision is the first present of `service.istio.io/canonical-revision`,
 * `app.kubernetes.io/version`, `version`, else `latest`. A label that is present but empty counts.
 */
export function canonicalService(
  labels: Readonly<Record<string, string>>,
  workloadName: string,
): { name: string; revision: string } {
  return {
    name: lookup(labels, CANONICAL_NAME_LABELS) ?? workloadName,
    revision: lookup(labels, CANONICAL_REVISION_LABELS) ?? LATEST,
  };
}

/** Input for {@link workloadFromKubernetes}. */
export interface KubernetesWorkload {
  /** Pod name. */
  name?: string;
  /** Workload (e.g. Deployment) name; `service.istio.io/workload-name` overrides it. */
  workloadName: string;
  workloadType?: WorkloadType;
  namespace: string;
  labels?: Readonly<Record<string, string>>;
  serviceAccount?: string;
  /** Default `cluster.local`. */
  trustDomain?: string;
  clusterId?: string;
  region?: string;
  zone?: string;
}

/**
 * Builds {@link WorkloadInfo} from Kubernetes metadata the way istiod does: canonical service and
 * revision by {@link canonicalService}, `app`/`version` from those labels, the identity
 * `spiffe://<trust domain>/ns/<namespace>/sa/<service account>` when a service account is given.
 */
export function workloadFromKubernetes(w: KubernetesWorkload): WorkloadInfo {
  const labels = w.labels ?? {};
  const workloadName = labels["service.istio.io/workload-name"] ?? w.workloadName;
  const canon = canonicalService(labels, workloadName);
  const out: WorkloadInfo = {
    workloadName,
    namespace: w.namespace,
    canonicalService: canon.name,
    canonicalRevision: canon.revision,
  };
  if (w.name !== undefined) out.name = w.name;
  if (w.workloadType !== undefined) out.workloadType = w.workloadType;
  const app = labels.app;
  if (app !== undefined) out.app = app;
  const version = labels.version;
  if (version !== undefined) out.version = version;
  if (w.serviceAccount !== undefined) {
    out.identity = `spiffe://${w.trustDomain ?? "cluster.local"}/ns/${w.namespace}/sa/${w.serviceAccount}`;
  }
  if (w.clusterId !== undefined) out.clusterId = w.clusterId;
  if (w.region !== undefined) out.region = w.region;
  if (w.zone !== undefined) out.zone = w.zone;
  return out;
}

/** `v` unless empty/undefined, then `unknown` (ztunnel's `DefaultedUnknown`, Envoy's checks). */
function d(v: string | undefined, fallback: string = UNKNOWN): string {
  return v === undefined || v === "" ? fallback : v;
}
function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === "" ? undefined : v;
}

/** The namespace in an Istio SPIFFE ID (`spiffe://td/ns/<ns>/sa/<sa>`), as Envoy's getNamespace. */
export function namespaceFromPrincipal(principal: string): string | undefined {
  const i = principal.indexOf("/ns/");
  if (i < 0) return undefined;
  const rest = principal.slice(i + 4);
  const j = rest.indexOf("/");
  const ns = j < 0 ? rest : rest.slice(0, j);
  return ns === "" ? undefined : ns;
}

interface Side {
  workload?: string | undefined;
  canonicalService?: string | undefined;
  canonicalRevision?: string | undefined;
  namespace?: string | undefined;
  principal?: string | undefined;
  app?: string | undefined;
  version?: string | undefined;
  cluster?: string | undefined;
  region?: string | undefined;
  zone?: string | undefined;
}

// ztunnel's with_source / with_destination: app/version are the canonical name/revision, every
// field (present or not) overwrites; principal is handled by the caller.
function ztunnelFromWorkload(side: Side, w: WorkloadInfo): void {
  side.workload = nonEmpty(w.workloadName);
  side.canonicalService = nonEmpty(w.canonicalService);
  side.canonicalRevision = nonEmpty(w.canonicalRevision);
  side.namespace = nonEmpty(w.namespace);
  side.app = nonEmpty(w.canonicalService);
  side.version = nonEmpty(w.canonicalRevision);
  side.cluster = nonEmpty(w.clusterId);
  side.region = nonEmpty(w.region);
  side.zone = nonEmpty(w.zone);
}

// ztunnel's with_derived_*: app is the workload name (sic), principal from the TLS identity.
function ztunnelFromDerived(side: Side, w: WorkloadInfo): void {
  side.workload = nonEmpty(w.workloadName);
  side.canonicalService = nonEmpty(w.canonicalService);
  side.canonicalRevision = nonEmpty(w.canonicalRevision);
  side.namespace = nonEmpty(w.namespace);
  side.app = nonEmpty(w.workloadName);
  side.version = nonEmpty(w.canonicalRevision);
  side.cluster = nonEmpty(w.clusterId);
  side.principal = nonEmpty(w.identity);
  side.region = nonEmpty(w.region);
  side.zone = nonEmpty(w.zone);
}

function direction(reporter: Reporter): "outbound" | "inbound" {
  return reporter === "source" ? "outbound" : "inbound";
}

/**
 * ztunnel's L4 labels (`CommonTrafficLabels`) for reporter `source` (outbound) or `destination`
 * (inbound): missing values are `unknown` (no `latest` default), `source_app`/`source_version`
 * are the canonical name/revision, `source_principal` only comes from the mTLS identity
 * (`sourcePrincipal` or `derivedSource.identity`), `destination_principal` from the destination
 * workload; locality labels follow when any workload is known.
 */
export function ztunnelTcpLabels(ctx: TrafficContext): TcpLabels {
  if (ctx.reporter === "waypoint") {
    throw new TelemetryError(
      "ERR_TELEMETRY_LABEL",
      'ztunnel reports only "source" or "destination"; use envoyTcpLabels() for a waypoint',
    );
  }
  const src: Side = {};
  const dst: Side = {};
  let locality = false;
  if (ctx.derivedSource !== undefined) {
    ztunnelFromDerived(src, ctx.derivedSource);
    locality = true;
  }
  if (ctx.source !== undefined) {
    ztunnelFromWorkload(src, ctx.source);
    locality = true;
  }
  if (ctx.sourcePrincipal !== undefined) src.principal = nonEmpty(ctx.sourcePrincipal);
  if (ctx.destination !== undefined) {
    ztunnelFromWorkload(dst, ctx.destination);
    dst.principal = nonEmpty(ctx.destination.identity);
    locality = true;
  }
  const svc = ctx.destinationService;
  if (ctx.derivedDestination !== undefined) {
    ztunnelFromDerived(dst, ctx.derivedDestination);
    locality = true;
  }
  if (ctx.destinationPrincipal !== undefined) dst.principal = nonEmpty(ctx.destinationPrincipal);
  const policy = ctx.securityPolicy === "mutual_tls" ? "mutual_tls" : UNKNOWN;
  const values = [
    ctx.reporter,
    d(src.workload),
    d(src.canonicalService),
    d(src.canonicalRevision),
    d(src.namespace),
    d(src.principal),
    d(src.app),
    d(src.version),
    d(src.cluster),
    d(svc?.hostname),
    d(svc?.namespace),
    d(svc?.name),
    d(dst.workload),
    d(dst.canonicalService),
    d(dst.canonicalRevision),
    d(dst.namespace),
    d(dst.principal),
    d(dst.app),
    d(dst.version),
    d(dst.cluster),
    "tcp",
    NO_FLAGS,
    policy,
  ];
  let names = ZTUNNEL_LABEL_NAMES;
  if (locality) {
    names = ZTUNNEL_WITH_LOCALITY;
    values.push(d(src.region), d(src.zone), d(dst.region), d(dst.zone));
  }
  const mtls = policy === "mutual_tls";
  // Access log: pod name first, falling back to the canonical service (ztunnel's builder).
  const srcName = nonEmpty(ctx.source?.name) ?? src.canonicalService;
  const dstName =
    ctx.derivedDestination !== undefined
      ? nonEmpty(ctx.derivedDestination.workloadName)
      : (nonEmpty(ctx.destination?.name) ?? dst.canonicalService);
  return {
    kind: "tcp",
    flavor: "ztunnel",
    reporter: ctx.reporter,
    labels: new LabelSet(names, values),
    log: {
      direction: direction(ctx.reporter),
      srcWorkload: srcName,
      srcNamespace: src.namespace,
      srcIdentity: mtls ? src.principal : undefined,
      srcCluster: src.cluster,
      dstService: nonEmpty(svc?.hostname),
      dstWorkload: dstName,
      dstNamespace: dst.namespace,
      dstIdentity: mtls ? dst.principal : undefined,
      dstCluster: dst.cluster,
    },
  };
}

const ZTUNNEL_WITH_LOCALITY: readonly string[] = Object.freeze([
  ...ZTUNNEL_LABEL_NAMES,
  ...ZTUNNEL_LOCALITY_LABEL_NAMES,
]);

interface EnvoyPeer {
  values: string[];
  policy: ConnectionSecurityPolicy;
}

// Envoy istio_stats populatePeerInfo + the connection security rule.
function envoyPeer(ctx: TrafficContext): EnvoyPeer {
  const r = ctx.reporter;
  const s = ctx.source ?? {};
  const t = ctx.destination ?? {};
  const svc = ctx.destinationService;
  const server = r !== "source";
  // Server sides only trust the TLS-proven peer identity for the source; the client knows its own.
  const srcPrincipal = nonEmpty(ctx.sourcePrincipal) ?? (server ? undefined : nonEmpty(s.identity));
  const dstPrincipal = nonEmpty(ctx.destinationPrincipal) ?? nonEmpty(t.identity);
  // Namespace of the peer: from its SAN first, then its metadata.
  const srcNamespace =
    (server && srcPrincipal !== undefined ? namespaceFromPrincipal(srcPrincipal) : undefined) ??
    nonEmpty(s.namespace);
  const dstNamespace =
    (!server && dstPrincipal !== undefined ? namespaceFromPrincipal(dstPrincipal) : undefined) ??
    nonEmpty(t.namespace);
  // Envoy defaults the peer's (and the injected local proxy's) canonical revision to `latest`;
  // a waypoint's destination comes from upstream endpoint metadata and defaults to `unknown`.
  const dstRevisionDefault = r === "waypoint" ? UNKNOWN : LATEST;
  const host = nonEmpty(svc?.hostname);
  let svcName = nonEmpty(svc?.name);
  if (svcName === undefined && host !== undefined) svcName = host.split(".")[0];
  // A sidecar server reports its own namespace; a client falls back to the peer's namespace.
  let svcNamespace = r === "destination" ? nonEmpty(t.namespace) : nonEmpty(svc?.namespace);
  if (svcNamespace === undefined && r === "source") svcNamespace = dstNamespace;
  const values = [
    r,
    d(s.workloadName),
    d(s.canonicalService),
    d(s.canonicalRevision, LATEST),
    d(srcNamespace),
    d(srcPrincipal),
    d(s.app),
    d(s.version),
    d(s.clusterId),
    d(t.workloadName),
    d(dstNamespace),
    d(dstPrincipal),
    d(t.app),
    d(t.version),
    d(host ?? (r === "destination" ? t.canonicalService : undefined)),
    d(t.canonicalService),
    d(t.canonicalRevision, dstRevisionDefault),
    d(svcName ?? (r === "destination" ? t.canonicalService : undefined)),
    d(svcNamespace),
    d(t.clusterId),
  ];
  let policy: ConnectionSecurityPolicy;
  if (ctx.securityPolicy !== undefined) policy = ctx.securityPolicy;
  else if (!server) policy = UNKNOWN;
  else policy = srcPrincipal !== undefined && dstPrincipal !== undefined ? "mutual_tls" : "none";
  return { values, policy };
}

/**
 * Envoy's (waypoint or sidecar) TCP labels: Envoy's emission order, `latest` for a missing
 * canonical revision (except a waypoint's destination), `source_app`/`*_version` from the `app`
 * and `version` labels, peer namespace from the peer's SPIFFE ID first.
 */
export function envoyTcpLabels(ctx: TrafficContext): TcpLabels {
  const p = envoyPeer(ctx);
  const values = [...p.values, "tcp", NO_FLAGS, p.policy];
  const s = ctx.source;
  const t = ctx.destination;
  const mtls = p.policy === "mutual_tls";
  return {
    kind: "tcp",
    flavor: "envoy",
    reporter: ctx.reporter,
    labels: new LabelSet(ENVOY_TCP_LABEL_NAMES, values),
    log: {
      direction: direction(ctx.reporter),
      srcWorkload: nonEmpty(s?.name) ?? nonEmpty(s?.canonicalService),
      srcNamespace: nonEmpty(p.values[4] === UNKNOWN ? undefined : p.values[4]),
      srcIdentity: mtls ? nonEmpty(p.values[5] === UNKNOWN ? undefined : p.values[5]) : undefined,
      srcCluster: nonEmpty(s?.clusterId),
      dstService: nonEmpty(ctx.destinationService?.hostname),
      dstWorkload: nonEmpty(t?.name) ?? nonEmpty(t?.canonicalService),
      dstNamespace: nonEmpty(p.values[10] === UNKNOWN ? undefined : p.values[10]),
      dstIdentity: mtls ? nonEmpty(p.values[11] === UNKNOWN ? undefined : p.values[11]) : undefined,
      dstCluster: nonEmpty(t?.clusterId),
    },
  };
}

/** The flavour a reporter uses by default: ztunnel for `source`/`destination`, Envoy for `waypoint`. */
export function tcpLabels(ctx: TrafficContext, flavor?: LabelFlavor): TcpLabels {
  const f = flavor ?? (ctx.reporter === "waypoint" ? "envoy" : "ztunnel");
  return f === "ztunnel" ? ztunnelTcpLabels(ctx) : envoyTcpLabels(ctx);
}

/**
 * Envoy's L7 labels shared by every request on a connection/route (`istio_requests_total` and the
 * request histograms add `response_code`, `grpc_response_status` and `response_flags` per request).
 */
export function httpLabels(ctx: TrafficContext, protocol: "http" | "grpc" = "http"): HttpLabels {
  const p = envoyPeer(ctx);
  return {
    kind: "http",
    reporter: ctx.reporter,
    protocol,
    peer: new LabelSet(ENVOY_PEER_LABEL_NAMES, p.values),
    securityPolicy: p.policy,
  };
}

const NONE: object = Object.freeze({});
type Level = WeakMap<object, unknown>;

/**
 * Memoises {@link tcpLabels} by the identity of the context's workload/service objects and the
 * value of its strings, so a proxy that keeps one `WorkloadInfo` object per workload (as ztunnel
 * keeps `Arc<Workload>`) resolves each peer pair once. Treat cached `WorkloadInfo` objects as
 * immutable: a changed workload must be a new object. Entries go away with their objects.
 */
export class TcpLabelCache {
  readonly #root: Level = new WeakMap();
  readonly #flavor: LabelFlavor | undefined;

  constructor(flavor?: LabelFlavor) {
    this.#flavor = flavor;
  }

  /** The labels for `ctx`, resolved on first use. */
  get(ctx: TrafficContext): TcpLabels {
    let level: Level = this.#root;
    for (const o of [
      ctx.source,
      ctx.derivedSource,
      ctx.destination,
      ctx.derivedDestination,
      ctx.destinationService,
    ]) {
      const k = o ?? NONE;
      let next = level.get(k) as Level | undefined;
      if (next === undefined) {
        next = new WeakMap();
        level.set(k, next);
      }
      level = next;
    }
    let leaf = level.get(NONE) as Map<string, TcpLabels> | undefined;
    if (leaf === undefined) {
      leaf = new Map();
      level.set(NONE, leaf);
    }
    const key = `${ctx.reporter}\u0000${ctx.sourcePrincipal ?? ""}\u0000${ctx.destinationPrincipal ?? ""}\u0000${ctx.securityPolicy ?? ""}`;
    let labels = leaf.get(key);
    if (labels === undefined) {
      labels = tcpLabels(ctx, this.#flavor);
      leaf.set(key, labels);
    }
    return labels;
  }
}
