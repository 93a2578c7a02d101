// @ambientkit/crds/validate — the validator alone (no generated zod types), for tools such as the
// CLI that should start fast.

export type { Issue, IssueSeverity, Result } from "@ambientkit/xds-types";
export { familyOf, schemaSetIds } from "./registry.js";
export type {
  DocumentIdentity,
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
