// @ambientkit/xds-types — ztunnel's workload API: Address, Workload, Service and Authorization as
// domain types and protobuf codecs. Universal (no node:) and light: @bufbuild/protobuf only. The
// LOCAL_XDS YAML format is the `./local-xds` subpath; typed CRDs and validation are @ambientkit/crds.

export { XdsTypesError, type XdsTypesErrorCode } from "./errors.js";
export type { Issue, IssuePathSegment, IssueSeverity, Result } from "./issue.js";
export { formatIssuePath, issuePathSegments } from "./issue.js";
export {
  type Authorization,
  authorizationKey,
  RBAC_ACTIONS,
  RBAC_MATCH_FIELDS,
  RBAC_SCOPES,
  type RbacAction,
  type RbacClause,
  type RbacMatch,
  type RbacRule,
  type RbacScope,
  type ServiceAccountMatch,
  type StringMatch,
} from "./workload/authorization.js";
export {
  ADDRESS_TYPE_URL,
  AUTHORIZATION_TYPE_URL,
  type AuthorizationJsonNaming,
  authorizationFromJson,
  authorizationToJson,
  createMessage,
  decodeAddress,
  decodeAuthorization,
  decodeMessage,
  decodeService,
  decodeWorkload,
  encodeAddress,
  encodeAuthorization,
  encodeMessage,
  encodeService,
  encodeWorkload,
  messageFromJson,
  messageToJson,
} from "./workload/codec.js";
export {
  type AddressResource,
  addressFromProto,
  addressToProto,
  authorizationFromProto,
  authorizationToProto,
  localConfigFromProto,
  localConfigToProto,
  serviceFromProto,
  serviceToProto,
  workloadFromProto,
  workloadToProto,
  type XdsResources,
} from "./workload/convert.js";
export type { Authorization as XdsAuthorization } from "./workload/gen/authorization_pb.js";
export type {
  Address as XdsAddress,
  Service as XdsService,
  Workload as XdsWorkload,
} from "./workload/gen/workload_pb.js";
// The whole IP module (numeric form too) is the `./ip` subpath.
export {
  canonicalIpText,
  cidrContains,
  type FormatIpOptions,
  formatCidr,
  formatIp,
  type IpPrefix,
  parseCidr,
  parseIp,
  toCanonical,
} from "./workload/ip.js";
export { securityProto, workloadProto } from "./workload/proto.js";
export {
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
  networkAddressKey,
  type PortMap,
  type Service,
  type ServiceVisibility,
  serviceKey,
  type WeightedWaypoint,
  type Workload,
  workloadIdentity,
} from "./workload/types.js";
