// What the parts of the reference ztunnel (inbound, outbound, passthrough, admin, listeners) share:
// the options, the current config state and the telemetry sinks. `Ztunnel` implements it.
import type { Duplex } from "node:stream";
import type { ZtunnelConnection, ZtunnelRbacResult } from "@ambientkit/authz";
import type { IstioMetrics } from "@ambientkit/telemetry";
import type { LocalConfig, Workload } from "@ambientkit/xds-types";
import { type ConnectionEnd, HboneError } from "../hbone.js";
import type { MemoryLog } from "../mesh/access-log.js";
import type { WorkloadCertificates } from "../mesh/certs.js";
import type { MeshState } from "../mesh/state.js";

/** ztunnel's ports; `null` disables a listener. */
export interface ZtunnelPorts {
  /** HBONE inbound on each local workload IP, and the port dialled on peers (15008). */
  hbone: number;
  /** Admin, `/config_dump` (15000). */
  admin: number | null;
  /** Prometheus `/metrics` and `/stats/prometheus` (15020). */
  metrics: number | null;
  /** `/healthz/ready` (15021). */
  readiness: number | null;
  /** SOCKS5 outbound (15080). */
  socks5: number | null;
  /**
   * Inbound plaintext passthrough (15006) on each local workload IP. Node cannot read
   * SO_ORIGINAL_DST, so the capture point prefixes each connection with a PROXY v2 header whose
   * destination is the original destination.
   */
  passthrough: number | null;
}

export interface ZtunnelOptions {
  /** Node name: this ztunnel serves the workloads whose `node` equals it. */
  node: string;
  config: LocalConfig;
  certificates: WorkloadCertificates;
  /** Default: HBONE 15008, everything else disabled. */
  ports?: Partial<ZtunnelPorts>;
  /** Where admin/metrics/readiness/SOCKS5 listen (default 127.0.0.1). */
  adminHost?: string;
  /** Bind a listener on every service VIP:port as the outbound capture point (default true). */
  captureServices?: boolean;
  /**
   * The source workload (`namespace/name`) for captured connections whose source IP is not a local
   * workload (e.g. curl over SOCKS5 from 127.0.0.1). Default: the first local HBONE workload.
   */
  defaultSource?: string;
  /** Load-balancing randomness (default Math.random). */
  random?: () => number;
  /** Each access-log line (JSON) is passed here. */
  log?: (line: string) => void;
  /** HBONE connection timeouts etc. (tests shorten them). */
  connectTimeoutMs?: number;
  /** SOCKS5 greeting + request deadline (default 15 s, Envoy's `listener_filters_timeout`). */
  socks5HandshakeTimeoutMs?: number;
  /**
   * Close a proxied connection on which no byte moved either way for this long (default 1 h,
   * Envoy tcp_proxy `idle_timeout`; ztunnel has none).
   */
  idleTimeoutMs?: number;
  /**
   * Downstream connections (SOCKS5 + captured) this node accepts at once; beyond it new ones are
   * refused and readiness reports 503 (default 10,000; Envoy's overload manager
   * `global_downstream_max_connections` plays this role).
   */
  maxDownstreamConnections?: number;
}

/** Envoy tcp_proxy `idle_timeout` default. */
export const IDLE_TIMEOUT_MS = 3_600_000;
/** Default cap on downstream connections. */
export const MAX_DOWNSTREAM_CONNECTIONS = 10_000;

/** The ztunnel as its parts see it. */
export interface ZtunnelContext {
  readonly node: string;
  readonly opts: ZtunnelOptions;
  readonly ports: ZtunnelPorts;
  readonly certs: WorkloadCertificates;
  readonly metrics: IstioMetrics;
  readonly log: MemoryLog;
  readonly random: () => number;
  /** The current config (replaced by `setConfig`). */
  readonly state: MeshState;
  readonly closed: boolean;
  readonly localWorkloads: Workload[];
  /** Logs and counts a connection-level HBONE end. */
  readonly connectionEnd: (end: ConnectionEnd) => void;
}

/** ztunnel's wording of an RBAC outcome. */
export function rbacReason(r: ZtunnelRbacResult): string {
  if (r.reason === "denied") return `explicitly denied by: ${r.policy ?? "?"}`;
  if (r.reason === "not-allowed") return "allow policies exist, but none allowed";
  return r.policy ? `allowed by ${r.policy}` : "allowed: no allow policies";
}

/** The access log's `error` for a failure (a non-200 CONNECT is `http status: N`, as ztunnel). */
export function describeError(e: unknown): string {
  if (e instanceof HboneError && e.status !== undefined) return `http status: ${e.status}`;
  return e instanceof Error ? e.message : String(e);
}

/** An open connection a policy re-check may close: its L4 attributes and its two sides. */
export interface InboundConn {
  workload: Workload;
  conn: ZtunnelConnection;
  /** The HBONE stream, or the plaintext downstream socket of a passthrough connection. */
  tunnel: Duplex;
  upstream: Duplex;
}
