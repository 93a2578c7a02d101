// The one shape of "problems as values" in ambientkit: every parser and validator (LOCAL_XDS here,
// AuthorizationPolicy in @ambientkit/authz, CRDs in @ambientkit/crds) reports `Issue`s and returns a
// `Result`. Types only: it lives in the lowest package so the others share it without a dependency
// on anything heavier.

/** How bad an issue is: an error makes the input invalid, a warning does not. */
export type IssueSeverity = "error" | "warning";

/** One problem found in input, as a value. */
export interface Issue<Code extends string = string> {
  /** Stable machine-readable code (e.g. `yaml/syntax`, `schema/required`, Istio's `IST0106`). */
  code: Code;
  severity: IssueSeverity;
  /** Field path in API-server style, e.g. `spec.rules[0].from[0].source`; "" for the whole input. */
  path: string;
  /** Human-readable text, in the wording of the tool being reproduced (API server, istiod). */
  message: string;
  /** 1-based line in the source text, when the input was text. */
  line?: number;
  /** 1-based column in the source text, when the input was text. */
  column?: number;
}

/**
 * The result of a fallible parse or check: `ok` is false when any issue is an error; `value` (the
 * parsed or checked input) is present exactly when `ok`. Warnings may come with `ok: true`.
 */
export type Result<T, Code extends string = string> =
  | { ok: true; value: T; issues: Issue<Code>[] }
  | { ok: false; value?: undefined; issues: Issue<Code>[] };
