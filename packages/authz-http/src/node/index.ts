export {
  type NodeAdapterOptions,
  nodeRequestFacts,
  type PeerVerifier,
  peerChain,
  tlsPeerIdentity,
} from "./facts.js";
export {
  type ConnectAuthz,
  connectAuthz,
  GRPC_DECISION_METADATA,
  type GrpcDecisionSummary,
  grpcAuthzInterceptor,
  grpcDecision,
} from "./grpc.js";
export {
  authorizeNodeRequest,
  authzOf,
  decideNodeRequest,
  expressAuthz,
  type FastifyAuthzOptions,
  fastifyAuthz,
  sendDeny,
  type WithAuthz,
  withAuthz,
} from "./http.js";
export {
  directoryPolicySource,
  type LocalXdsSource,
  localXdsFileSource,
  type WatchOptions,
} from "./sources.js";
