/**
 * Domain model of @ambientkit/authz: Istio AuthorizationPolicy / PeerAuthentication (security.istio.io
 * v1 == v1beta1 spec), the enforcement point and its inputs, and the decision value.
 */

/** `matchLabels` selector (istio.type.v1beta1.WorkloadSelector). */
export interface WorkloadSelector {
  matchLabels: Record<string, string>;
}

/** istio.type.v1beta1.PolicyTargetReference. */
export interface PolicyTargetReference {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
}

/** Source of a rule's `from` entry; every field is optional, lists of strings. */
export interface Source {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
  trustDomains?: string[];
  notTrustDomains?: string[];
}

/** Operation of a rule's `to` entry. */
export interface Operation {
  hosts?: string[];
  notHosts?: string[];
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

/** A `when` condition. */
export interface Condition {
  key: string;
  values?: string[];
  notValues?: string[];
}

/** One rule. `source`/`operation` are undefined when the YAML had `from: [{}]` (invalid). */
export interface Rule {
  from?: { source?: Source }[];
  to?: { operation?: Operation }[];
  when?: Condition[];
}

export type PolicyAction = "ALLOW" | "DENY" | "AUDIT" | "CUSTOM";

export interface AuthorizationPolicySpec {
  selector?: WorkloadSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  action: PolicyAction;
  provider?: { name: string };
  /** undefined = `rules` absent (Go nil); `[]` = present and empty. A `null` entry is kept as null. */
  rules?: (Rule | null)[];
}

/** A parsed AuthorizationPolicy. */
export interface AuthorizationPolicy {
  kind: "AuthorizationPolicy";
  name: string;
  namespace: string;
  annotations: Record<string, string>;
  creationTimestamp?: string;
  spec: AuthorizationPolicySpec;
}

export type MtlsMode = "UNSET" | "DISABLE" | "PERMISSIVE" | "STRICT";

/** A parsed PeerAuthentication (only what ambient authorization uses). */
export interface PeerAuthentication {
  kind: "PeerAuthentication";
  name: string;
  namespace: string;
  creationTimestamp?: string;
  spec: {
    selector?: WorkloadSelector;
    mtls?: { mode: MtlsMode };
    portLevelMtls?: Record<string, { mode: MtlsMode }>;
  };
}

export type PolicyResource = AuthorizationPolicy | PeerAuthentication;

/** Where the decision is taken. */
export type Enforcement = "ztunnel" | "waypoint";

/** Envoy path normalisation (meshConfig.pathNormalization.normalization). Default `BASE`. */
export type PathNormalization = "BASE" | "MERGE_SLASHES" | "DECODE_AND_MERGE_SLASHES" | "NONE";

/** Mesh-wide settings that change decisions. */
export interface MeshSettings {
  /** meshConfig.rootNamespace (default `istio-system`). */
  rootNamespace: string;
  /** meshConfig.trustDomain (default `cluster.local`). */
  trustDomain: string;
  /** meshConfig.trustDomainAliases. */
  trustDomainAliases: readonly string[];
  /** Waypoint path normalisation; default `BASE`. */
  pathNormalization?: PathNormalization;
  /** istiod `AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY` (default false: dry-run policies are not sent to ztunnel). */
  ambientEnableDryRun?: boolean;
  /**
   * istiod `PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS` (default false: CUSTOM policies naming
   * different providers for one target make istiod install a deny-all RBAC filter instead).
   */
  enableMultipleCustomAuthzProviders?: boolean;
  /**
   * istiod `PILOT_AUTO_ALLOW_WAYPOINT_POLICY` (default false): at ztunnel, a workload that uses a
   * waypoint (`DecisionInput.waypoint` with a `serviceAccount`) also gets the ALLOW policy
   * `<waypoint ns>/istio_allow_waypoint_<ns>_<name>` for the waypoint's identity.
   */
  autoAllowWaypointPolicy?: boolean;
}

/** The destination workload (pod). */
export interface WorkloadTarget {
  namespace: string;
  labels: Record<string, string>;
  serviceAccount?: string;
  ip?: string;
  name?: string;
}

/** The waypoint (a Gateway of class istio-waypoint). */
export interface WaypointTarget {
  name: string;
  namespace: string;
  serviceAccount?: string;
  ip?: string;
}

/** The destination service at a waypoint. `protocol` picks Envoy's HTTP or TCP filter chain. */
export interface ServiceTarget {
  kind: "Service" | "ServiceEntry";
  name: string;
  namespace: string;
  vip?: string;
  port?: number;
  targetPort?: number;
  /** Anything but HTTP-family protocols (HTTP, HTTP2, GRPC, ...) gets the TCP chain. */
  protocol: string;
}

/** The connection as the enforcement point observes it. */
export interface ConnectionAttributes {
  /** Full SPIFFE URI of the mTLS peer, or null for plaintext. */
  sourcePrincipal: string | null;
  sourceIp: string;
  /** ztunnel: pod IP; waypoint: service VIP. */
  destinationIp: string;
  /** ztunnel: container (target) port; waypoint: service port. */
  destinationPort: number;
  /** TLS SNI of the connection (`connection.sni`); absent for HBONE-tunnelled HTTP at waypoints. */
  sni?: string;
}

/** Validated JWT payload (RequestAuthentication already checked the signature). */
export type JwtClaims = Record<string, unknown>;

/** The HTTP request (waypoint, HTTP services). */
export interface HttpRequestAttributes {
  /** `:authority` as sent, port included if the client sent it. */
  host: string;
  method: string;
  /** Raw request path, before normalisation, query allowed. */
  path: string;
  /** Header map; a list value is duplicates (joined with "," for matching). Names case-insensitive. */
  headers: Record<string, string | readonly string[]>;
  jwt: JwtClaims | null;
  /** Dynamic metadata for `experimental.envoy.filters.*` keys: `{ "<filter>": { "<key>": value } }`. */
  filterMetadata?: Record<string, Record<string, unknown>>;
}

/** What a CUSTOM provider answers when consulted. */
export type CustomProviderDecision = "allow" | "deny";

/** Everything one decision needs (policies come from the compiled set). */
export interface DecisionInput {
  enforcement: Enforcement;
  workload: WorkloadTarget;
  /** At a waypoint: the waypoint deciding. At ztunnel: the waypoint the workload uses, if any. */
  waypoint?: WaypointTarget;
  service?: ServiceTarget;
  connection: ConnectionAttributes;
  request?: HttpRequestAttributes | null;
  /** Provider name → answer; or a function. A provider with no answer denies (ext_authz failure). */
  customProviders?:
    | Record<string, CustomProviderDecision>
    | ((provider: string, policy: string) => CustomProviderDecision | undefined);
}

/** How a decision was reached. */
export type DecidedBy =
  | `${string}/${string}`
  | `custom:${string}`
  | "implicit:no-allow-policies"
  | "implicit:no-allow-match"
  | "implicit:invalid-request";

/** A dry-run policy's would-be outcome. It never changes the decision. */
export interface DryRunResult {
  policy: string;
  action: "ALLOW" | "DENY" | "AUDIT" | "CUSTOM";
  matched: boolean;
  rule?: number;
}

/** An AUDIT policy that matched (Envoy RBAC LOG action). */
export interface AuditResult {
  policy: string;
  rule: number;
}

/** An attribute or policy that the enforcement point did not enforce, and why. */
export interface IgnoredAttribute {
  policy: string;
  rule?: number;
  attribute: string;
  reason: string;
}

/** The decision, as a value. */
export interface Decision {
  decision: "allow" | "deny";
  decidedBy: DecidedBy;
  /** Index (0-based) of the rule in the deciding policy's `spec.rules` that matched. */
  rule?: number;
  enforcement: Enforcement;
  dryRun: DryRunResult[];
  audit: AuditResult[];
  ignored: IgnoredAttribute[];
  /** Keys (`ns/name`) of the policies that applied, in evaluation order. */
  applied: string[];
  /** One human-readable sentence per step. */
  explanation: string[];
}
