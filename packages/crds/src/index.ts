// @ambientkit/crds — typed Istio and Gateway API CRDs, and offline validation as the Kubernetes API
// server and istiod's webhook would. Universal: nothing here imports from node:.
import * as gatewayApi from "./gen/gateway-api-types.js";
import * as istioMaster from "./gen/istio-master-types.js";
import * as istio from "./gen/istio-types.js";

export type { CrdKindData, CrdSetData, CrdVersionData } from "./crd-model.js";
export { type ObjectMeta, ObjectMetaSchema } from "./object-meta.js";
export { familyOf, schemaSetIds } from "./registry.js";
export type {
  DocumentResult,
  GatewayApiChannel,
  IssueCode,
  IstioVersion,
  Severity,
  ValidateOptions,
  ValidationIssue,
  ValidationResult,
} from "./types.js";
export { validate } from "./validate.js";
export {
  decodeYamlBytes,
  loadYamlDocuments,
  validateYaml,
  validateYamlDocuments,
  type YamlValidationResult,
} from "./yaml.js";
/**
 * Generated TS types and zod schemas: Istio (stable release 1.30, and master) and Gateway API
 * (experimental channel, a superset of standard).
 */
export { gatewayApi, istio, istioMaster };
