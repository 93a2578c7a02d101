// ztunnel's L4 authorization policy (`istio.security.Authorization`) in its domain form: the shape
// ztunnel's LOCAL_XDS YAML uses (`src/rbac.rs` serde: camelCase, `rules: [[[match]]]`), with IPs as
// CIDR strings. The protobuf message form lives in ./gen and ./codec.ts; ./convert.ts maps between them.
//
// Semantics (ztunnel `Authorization::matches`): a policy is an OR of rules, a rule an AND of clauses,
// a clause an OR of matches (an empty clause matches), a match an AND over the fields that are set,
// and within one field an OR of the positives and none of the negatives. A policy with no rules
// never matches.

/** Who the policy applies to: every workload, a namespace, or workloads that list it by `ns/name`. */
export type RbacScope = "Global" | "Namespace" | "WorkloadSelector";

/** What a matching policy does. ztunnel's L4 policies only allow or deny. */
export type RbacAction = "Allow" | "Deny";

/** Every scope value, in protobuf enum order (GLOBAL=0, NAMESPACE=1, WORKLOAD_SELECTOR=2). */
export const RBAC_SCOPES: readonly RbacScope[] = ["Global", "Namespace", "WorkloadSelector"];
/** Every action value, in protobuf enum order (ALLOW=0, DENY=1). */
export const RBAC_ACTIONS: readonly RbacAction[] = ["Allow", "Deny"];

/**
 * A string matcher (`istio.security.StringMatch` oneof `match_type`). Exactly one key is present.
 * `presence` matches any non-empty value. For principals ztunnel strips `spiffe://` from the peer's
 * identity before matching, so patterns are written as `cluster.local/ns/x/sa/y`.
 * In LOCAL_XDS YAML these are written externally tagged: `{Exact: s}`, `{Prefix: s}`, `{Suffix: s}`,
 * `{Presence: []}`.
 */
export type StringMatch =
  | { readonly exact: string }
  | { readonly prefix: string }
  | { readonly suffix: string }
  | { readonly presence: true };

/** Matches a peer whose identity has exactly this namespace and service account. */
export interface ServiceAccountMatch {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/**
 * One match (`istio.security.Match`; ztunnel's `RbacMatch`). Every field is optional; an absent
 * field and an empty list mean the same thing ("no constraint"), and the canonical form omits them.
 * IPs are CIDR strings (`"10.0.0.0/8"`, `"2001:db8::/32"`, `"10.1.2.3/32"`), as ztunnel's `IpNet`
 * serializes them. Ports are 0..65535. `destinationPorts` is compared against the resolved target
 * port (after Service port mapping).
 */
export interface RbacMatch {
  readonly namespaces?: readonly StringMatch[];
  readonly notNamespaces?: readonly StringMatch[];
  readonly serviceAccounts?: readonly ServiceAccountMatch[];
  readonly notServiceAccounts?: readonly ServiceAccountMatch[];
  readonly principals?: readonly StringMatch[];
  readonly notPrincipals?: readonly StringMatch[];
  readonly sourceIps?: readonly string[];
  readonly notSourceIps?: readonly string[];
  readonly destinationIps?: readonly string[];
  readonly notDestinationIps?: readonly string[];
  readonly destinationPorts?: readonly number[];
  readonly notDestinationPorts?: readonly number[];
}

/** The list keys of {@link RbacMatch}, in the order ztunnel declares them (and serializes them). */
export const RBAC_MATCH_FIELDS: readonly (keyof RbacMatch)[] = [
  "namespaces",
  "notNamespaces",
  "serviceAccounts",
  "notServiceAccounts",
  "principals",
  "notPrincipals",
  "sourceIps",
  "notSourceIps",
  "destinationIps",
  "notDestinationIps",
  "destinationPorts",
  "notDestinationPorts",
];

/** A clause: an OR of matches (`istio.security.Clause`, istiod's `Rules`). Empty = matches. */
export type RbacClause = readonly RbacMatch[];

/** A rule: an AND of clauses (`istio.security.Rule`, istiod's `Group`). */
export type RbacRule = readonly RbacClause[];

/**
 * An L4 authorization policy as ztunnel holds it (`istio.security.Authorization`, ztunnel's
 * `rbac::Authorization`). Its key is `namespace/name`; global policies usually sit in the root
 * namespace (`istio-system`). `dryRun` policies are evaluated and logged but never enforced.
 */
export interface Authorization {
  readonly name: string;
  readonly namespace: string;
  readonly scope: RbacScope;
  readonly action: RbacAction;
  /** OR of rules → AND of clauses → OR of matches (LOCAL_XDS `rules: [[[match]]]`). */
  readonly rules: readonly RbacRule[];
  readonly dryRun: boolean;
}

/** `namespace/name`, the key ztunnel stores a policy under and `Workload.authorizationPolicies` uses. */
export function authorizationKey(policy: Pick<Authorization, "name" | "namespace">): string {
  return `${policy.namespace}/${policy.name}`;
}
