// @ambientkit/hbone — HBONE (HTTP/2 CONNECT over mutual TLS 1.3) as ztunnel speaks it: client,
// connection pool, server, double HBONE, PROXY protocol v2. Node-only (node:http2, node:tls).

// --- wire formats ---
export {
  type Authority,
  formatAuthority,
  formatSocketAddress,
  parseAuthority,
} from "./authority.js";
export {
  buildConnectHeaders,
  type DialOptions,
  dialHbone,
  HboneConnection,
  type HboneSocketFactory,
  type HboneSocketTarget,
  openTunnel,
  type TunnelRequest,
} from "./client.js";
export { type DoubleTunnelOptions, gatewayHandler, openDoubleTunnel } from "./double.js";
export { HboneError, type HboneErrorCode } from "./errors.js";
export {
  type Forwarded,
  formatForwarded,
  HEADER_BAGGAGE,
  HEADER_FORWARDED,
  HEADER_TRACEPARENT,
  HEADER_X_FORWARDED_NETWORK,
  parseForwarded,
  randomTraceparentHeader,
} from "./headers.js";
export { HbonePool, type HbonePoolOptions, type PoolKey, type PoolRequest } from "./pool.js";
export {
  decodeProxyV2,
  encodeProxyV2,
  PROXY_TLV_PEER_IDENTITY,
  PROXY_TLV_SERVICE_HOST,
  PROXY_V2_SIGNATURE,
  type ProxyHeader,
} from "./proxy-protocol.js";
export {
  dialAuthority,
  type HboneDecision,
  type HboneHandler,
  HboneServer,
  type HboneServerOptions,
  type HboneServerRequest,
  pipeHalfClose,
  type ServerCredentials,
} from "./server.js";
export { HBONE_DEFAULTS, type HboneDefaults } from "./settings.js";

// --- integration hooks (telemetry recorders plug in here) ---
export type {
  ByteDirection,
  ConnectionEnd,
  ConnectionEndReason,
  HboneHooks,
  TunnelInfo,
  TunnelSummary,
} from "./stream.js";
export { HboneStream } from "./stream.js";
// --- TLS and settings ---
export {
  checkClientTrustDomain,
  clientTlsOptions,
  type HboneCredentials,
  identityOfCredentials,
  matchesExpected,
  serverTlsOptions,
  spiffeIdsOf,
  trustDomainOf,
} from "./tls.js";
