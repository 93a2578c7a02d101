// YAML text → policy resources, with `file:line:col` for every problem, so an operator sees where a
// broken file is broken. Kinds other than AuthorizationPolicy / PeerAuthentication (Services,
// HTTPRoutes in the same manifest) are skipped, not errors.
import {
  type Issue,
  issuePathSegments,
  type PolicyResource,
  parsePolicyResource,
  validateAuthorizationPolicy,
} from "@ambientkit/authz";
import { isMap, isNode, LineCounter, parseAllDocuments } from "yaml";

/** A problem in a policy source, located when possible. */
export interface SourceIssue {
  /** File name or source name. */
  readonly file: string;
  /** 1-based; absent when the problem is the whole source. */
  readonly line?: number;
  readonly column?: number;
  readonly message: string;
}

/** `file:line:col message`, the form editors and CI logs link. */
export function formatSourceIssue(i: SourceIssue): string {
  const at =
    i.line !== undefined ? `:${i.line}${i.column !== undefined ? `:${i.column}` : ""}` : "";
  return `${i.file}${at} ${i.message}`;
}

export interface ParsedPolicyText {
  readonly resources: PolicyResource[];
  readonly issues: SourceIssue[];
}

const POLICY_KINDS = new Set(["AuthorizationPolicy", "PeerAuthentication"]);

/**
 * Parses a multi-document YAML text. Every resource is parsed and validated with Istio's admission
 * rules: a policy the API server would have refused is an issue, not a silently ignored rule.
 */
export function parsePolicyYaml(
  text: string,
  file: string,
  options: { rootNamespace?: string } = {},
): ParsedPolicyText {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, uniqueKeys: true });
  const resources: PolicyResource[] = [];
  const issues: SourceIssue[] = [];
  const at = (offset: number | undefined, message: string): SourceIssue => {
    if (offset === undefined) return { file, message };
    const p = lc.linePos(offset);
    return { file, line: p.line, column: p.col, message };
  };
  if (!Array.isArray(docs)) {
    issues.push({ file, message: "not a YAML stream" });
    return { resources, issues };
  }
  for (const doc of docs) {
    for (const e of doc.errors) issues.push(at(e.pos[0], e.message.split("\n")[0] ?? e.message));
    if (doc.errors.length > 0) continue;
    let obj: unknown;
    try {
      obj = doc.toJS();
    } catch (e) {
      // e.g. more alias expansions than yaml's maxAliasCount: refuse, never half-read.
      issues.push(at(doc.contents?.range?.[0], (e as Error).message));
      continue;
    }
    if (obj === null || obj === undefined) continue;
    const kind = typeof obj === "object" ? (obj as { kind?: unknown }).kind : undefined;
    if (typeof kind === "string" && !POLICY_KINDS.has(kind)) continue;
    const nodeAt = (path: readonly (string | number)[]): number | undefined => {
      for (let n = path.length; n >= 0; n--) {
        const node = doc.getIn(path.slice(0, n), true);
        if (isNode(node) && node.range) return node.range[0];
      }
      return isMap(doc.contents) ? doc.contents.range?.[0] : undefined;
    };
    const parsed = parsePolicyResource(obj);
    if (!parsed.ok) {
      for (const i of parsed.issues as readonly Issue[])
        issues.push(at(nodeAt(issuePathSegments(i.path)), i.message));
      continue;
    }
    const r = parsed.value;
    if (r.kind === "AuthorizationPolicy") {
      const v = validateAuthorizationPolicy(r, {
        rootNamespace: options.rootNamespace ?? "istio-system",
      });
      const errors = v.issues.filter((i) => i.severity === "error");
      if (errors.length > 0) {
        for (const i of errors) issues.push(at(nodeAt(issuePathSegments(i.path)), i.message));
        continue;
      }
    }
    resources.push(r);
  }
  return { resources, issues };
}
