export {
  type AppDecision,
  Authorizer,
  type AuthorizerOptions,
  type AuthzLogger,
  createAuthorizer,
} from "./authorizer.js";
export {
  AuthzHttpMetrics,
  type DecisionLogEntry,
  type DecisionLogOptions,
  type DecisionSink,
  logDecision,
} from "./decision-log.js";
export { AuthzHttpError, type AuthzHttpErrorCode } from "./errors.js";
export {
  type CallerIdentity,
  createIdentityResolver,
  type IdentityOptions,
  type IdentityResolver,
  type IdentitySource,
  type TrustedProxies,
} from "./identity.js";
export {
  type MeshStateLike,
  type MeshWorkload,
  meshStatePolicySource,
  meshWorkloadIdentity,
  type WorkloadLookup,
} from "./mesh-state.js";
export {
  type AppTarget,
  type Attachment,
  checkAppTarget,
  compilePolicySet,
  type PolicyContent,
  PolicyHolder,
  type PolicySet,
  type PolicySetEvent,
  type PolicySink,
  type PolicySource,
  staticPolicySource,
} from "./policy-set.js";
export {
  formatSourceIssue,
  type ParsedPolicyText,
  parsePolicyYaml,
  type SourceIssue,
} from "./policy-yaml.js";
export {
  type ConnectionInfo,
  DENY_BODY,
  DENY_STATUS,
  GRPC_PERMISSION_DENIED,
  GRPC_UNAUTHENTICATED,
  INVALID_JWT_BODY,
  INVALID_JWT_STATUS,
  type RequestFacts,
  requestFactsFromWeb,
} from "./request.js";
export { authorizeRequest, denyResponse, type HonoLikeContext, honoAuthz } from "./web.js";
export { parseXfcc, type XfccElement, xfccPrincipal } from "./xfcc.js";
