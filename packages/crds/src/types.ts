/** How bad an issue is: errors make a document invalid, warnings do not. */
export type Severity = "error" | "warning";

/**
 * Stable issue codes. Schema problems carry the OpenAPI keyword (`schema/required`,
 * `schema/enum`…); Istio semantic checks use Istio's analyzer codes (IST0106 error, IST0133 warning).
 */
export type IssueCode =
  | "yaml/syntax"
  | "yaml/encoding"
  | "document/too-deep"
  | "document/too-large"
  | "document/not-object"
  | "document/missing-type"
  | "kind/unknown"
  | "version/unknown"
  | "version/unserved"
  | "version/deprecated"
  | "unknown-field"
  | "list-type/duplicate"
  | "cel/rule"
  | "cel/error"
  | "metadata/name"
  | "metadata/namespace"
  | "metadata/labels"
  | "metadata/annotations"
  | "IST0106"
  | "IST0133"
  | `schema/${string}`;

/** One problem found in a document. */
export interface ValidationIssue {
  code: IssueCode;
  severity: Severity;
  /** Field path in API-server style, e.g. `spec.rules[0].from[0].source.principals`; "" for the document. */
  path: string;
  /** Message in the API server's (or istioctl's) wording; starts with the path where they do. */
  message: string;
  /** 1-based line in the source text (validateYaml only). */
  line?: number;
  /** 1-based column in the source text (validateYaml only). */
  column?: number;
}

/** The result of validating one document. Never thrown: problems are values. */
export interface ValidationResult {
  /** True when no issue has severity "error" (a skipped document is valid). */
  valid: boolean;
  /** True when the document's kind is not one ambientkit validates (e.g. Deployment) and strict is off. */
  skipped: boolean;
  apiVersion?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  issues: ValidationIssue[];
}

/** One document of a multi-document YAML/JSON text. */
export interface DocumentResult extends ValidationResult {
  /** 0-based position of the document in the stream. */
  index: number;
  /** 1-based line where the document starts. */
  line: number;
}

/** Which Istio CRDs to validate against. */
export type IstioVersion = "1.30" | "master";
/** Which Gateway API channel to validate against. */
export type GatewayApiChannel = "standard" | "experimental";

export interface ValidateOptions {
  /** Istio CRD set (default "1.30", the newest stable release). */
  istio?: IstioVersion;
  /** Gateway API channel (default "experimental", so objects of both channels validate). */
  gatewayApi?: GatewayApiChannel;
  /** Report kinds ambientkit does not know as errors instead of skipping them (default false). */
  strict?: boolean;
  /**
   * Evaluate x-kubernetes-validations CEL rules (default true). With `cel: false` and
   * `semantic: false` only the OpenAPI schema step runs (defaults, schema, unknown fields, list types, metadata).
   */
  cel?: boolean;
  /** Run Istio's webhook checks for AuthorizationPolicy, PeerAuthentication, RequestAuthentication (default true). */
  semantic?: boolean;
}
