// @ambientkit/xds — a delta-xDS client for Istio's ztunnel workload API and the mesh state store it
// (or a LOCAL_XDS file) feeds. Node-only: the transport is connect-node's gRPC over node:http2.
export { type ApplyResult, applyDeltaResponse } from "./apply.js";

export {
  DEFAULT_SECRET_TTL_SECONDS,
  type IssuedWorkloadCertificate,
  IstioCaClient,
  type IstioCaClientOptions,
} from "./ca-client.js";
export {
  ADDRESS_TYPE_URL,
  AUTHORIZATION_TYPE_URL,
  DEFAULT_XDS_BACKOFF,
  DeltaXdsClient,
  type XdsBackoff,
  type XdsClientEvents,
  type XdsClientOptions,
  type XdsLogger,
  type XdsLogLevel,
  type XdsRejection,
} from "./client.js";
export { XdsClientError, type XdsClientErrorCode } from "./errors.js";
export {
  AggregatedDiscoveryService,
  type DeltaDiscoveryRequest,
  DeltaDiscoveryRequestSchema,
  type DeltaDiscoveryResponse,
  DeltaDiscoveryResponseSchema,
  type Node as XdsNode,
  type Resource as XdsResource,
  ResourceSchema,
} from "./gen/discovery_pb.js";
export { LocalControlPlane, type LocalControlPlaneOptions } from "./local-control-plane.js";
export { XdsMetrics, type XdsTerminationReason } from "./metrics.js";
export { type ZtunnelNodeOptions, ztunnelNode, ztunnelNodeId } from "./node-info.js";
export {
  MeshStateStore,
  type Named,
  type ResourceKind,
  type StateEvent,
  type StateListener,
} from "./state.js";
