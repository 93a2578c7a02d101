// The one shape of "problems as values" in ambientkit: every parser and validator (LOCAL_XDS here,
// AuthorizationPolicy in @ambientkit/authz, CRDs in @ambientkit/crds) reports `Issue`s and returns a
// `Result`, and writes issue paths one way (formatIssuePath / issuePathSegments). It lives in the
// lowest package so the others share it without a dependency on anything heavier.

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

/** One step of a path: a field or map key, or a list index. */
export type IssuePathSegment = string | number;

/** A key that dots would split (`app.kubernetes.io/name`) is written `["…"]`, so the path parses back. */
const PLAIN_KEY = /^[^.[\]"]+$/;

/**
 * Writes a path as `Issue.path` carries it: `spec.rules[0].from`, with a key that is not a plain
 * name quoted (`metadata.labels["app.kubernetes.io/name"]`) so that `issuePathSegments` gives the
 * same segments back.
 */
export function formatIssuePath(segments: readonly IssuePathSegment[]): string {
  let s = "";
  for (const p of segments) {
    if (typeof p === "number") s += `[${p}]`;
    else if (!PLAIN_KEY.test(p)) s += `[${JSON.stringify(p)}]`;
    else s += s === "" ? p : `.${p}`;
  }
  return s;
}

/**
 * The segments of an issue path (`spec.rules[0].from` → `["spec", "rules", 0, "from"]`), to find
 * the node an issue is about; a quoted key (`labels["app.kubernetes.io/name"]`) stays whole.
 */
export function issuePathSegments(path: string): IssuePathSegment[] {
  const out: IssuePathSegment[] = [];
  for (const m of path.matchAll(/([^.[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g)) {
    if (m[2] !== undefined) out.push(Number(m[2]));
    else if (m[3] !== undefined) out.push(JSON.parse(m[3]) as string);
    else if (m[1] !== undefined) out.push(m[1]);
  }
  return out;
}
