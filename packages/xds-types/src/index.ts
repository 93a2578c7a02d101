// biome-ignore-all assist/source/organizeImports: the blocks below are owned by different teams; keep them apart
// @ambientkit/xds-types — typed Istio + Gateway API resources, offline validation, ztunnel's workload API.
// Universal: nothing here imports from node:.

// --- CRD types and validation (xds-validate) ---
import * as gatewayApi from "./gen/gateway-api-types.js";
import * as istioMaster from "./gen/istio-master-types.js";
import * as istio from "./gen/istio-types.js";

export type { CrdKindData, CrdSetData, CrdVersionData } from "./crd-model.js";
export { type ObjectMeta, ObjectMetaSchema } from "./object-meta.js";
export { familyOf, schemaSetIds } from "./validate/registry.js";
export type {
  DocumentResult,
  GatewayApiChannel,
  IssueCode,
  IstioVersion,
  Severity,
  ValidateOptions,
  ValidationIssue,
  ValidationResult,
} from "./validate/types.js";
export { validate } from "./validate/validate.js";
export {
  decodeYamlBytes,
  loadYamlDocuments,
  validateYaml,
  validateYamlDocuments,
  type YamlValidationResult,
} from "./validate/yaml.js";
/**
 * Generated TS types and zod schemas: Istio (stable release 1.30, and master) and Gateway API
 * (experimental channel, a superset of standard).
 */
export { gatewayApi, istio, istioMaster };

// --- ztunnel workload API (xds-workload) ---
export { XdsTypesError, type XdsTypesErrorCode } from "./errors.js";
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
export {
  cidrContains,
  formatCidr,
  formatIp,
  type IpPrefix,
  parseCidr,
  parseIp,
} from "./workload/ip.js";
export {
  type LocalXdsIssue,
  type LocalXdsIssueCode,
  type LocalXdsParseResult,
  parseLocalXds,
  serializeLocalXds,
} from "./workload/local-xds.js";
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
  serviceKey,
  type ServiceVisibility,
  type WeightedWaypoint,
  type Workload,
  workloadIdentity,
} from "./workload/types.js";
