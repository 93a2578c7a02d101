import type { Issue, IssueSeverity, Result } from "@ambientkit/xds-types";

/** How bad an issue is: errors make a document invalid, warnings do not. */
export type Severity = IssueSeverity;

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

/**
 * One problem found in a document: the shared {@link Issue} shape. `path` is in API-server style
 * (`spec.rules[0].from[0].source.principals`, "" for the document); `message` is in the API
 * server's (or istioctl's) wording and starts with the path where theirs does; `line` and `column`
 * (1-based) are set by validateYaml.
 */
export type ValidationIssue = Issue<IssueCode>;

/** What a validated document is, where it says so (strings only). */
export interface DocumentIdentity {
  /** True when the document's kind is not one ambientkit validates (e.g. Deployment) and strict is off. */
  skipped: boolean;
  apiVersion?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}

/**
 * The result of validating one document: the shared {@link Result} — `ok` when no issue is an
 * error (a skipped document is ok), `value` the document as the API server would store it (with
 * the CRD's defaults applied) when ok — plus what the document is. Never thrown: problems are values.
 */
export type ValidationResult = Result<unknown, IssueCode> & DocumentIdentity;

/** One document of a multi-document YAML/JSON text. */
export type DocumentResult = ValidationResult & {
  /** 0-based position of the document in the stream. */
  index: number;
  /** 1-based line where the document starts. */
  line: number;
};

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
