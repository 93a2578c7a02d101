// The AuthorizationPolicy rule fields, in the API's order: one list for parsing (parse.ts), input
// checks (guards.ts) and validation (validate.ts, which also serves @ambientkit/crds).
import type { Operation, Source } from "./types.js";

/** Every `from.source` field, in the API's order. */
export const SOURCE_FIELDS: readonly (keyof Source)[] = [
  "principals",
  "notPrincipals",
  "requestPrincipals",
  "notRequestPrincipals",
  "namespaces",
  "notNamespaces",
  "serviceAccounts",
  "notServiceAccounts",
  "ipBlocks",
  "notIpBlocks",
  "remoteIpBlocks",
  "notRemoteIpBlocks",
  "trustDomains",
  "notTrustDomains",
];

/** Every `to.operation` field, in the API's order. */
export const OPERATION_FIELDS: readonly (keyof Operation)[] = [
  "hosts",
  "notHosts",
  "ports",
  "notPorts",
  "methods",
  "notMethods",
  "paths",
  "notPaths",
];
