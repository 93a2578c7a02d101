// validateYaml(): multi-document YAML or JSON text in, one result per document out, every issue
// with the line and column of the field it is about (via the yaml package's source ranges).
import {
  type Document,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseAllDocuments,
  Scalar,
  visit,
} from "yaml";
import type { InternalIssue } from "./metadata.js";
import type { PathSeg } from "./structural.js";
import type { DocumentResult, ValidateOptions, ValidationIssue } from "./types.js";
import { validateInternal } from "./validate.js";

/** The result of validating a YAML/JSON text. */
export interface YamlValidationResult {
  /** True when no document has an error. */
  valid: boolean;
  /** Every non-empty document, in order. */
  documents: DocumentResult[];
}

/** Offset of the node (or map key) at `segs`; falls back to the deepest node that exists. */
function locate(root: Node | null | undefined, segs: readonly PathSeg[]): number | undefined {
  let node: unknown = root;
  let best: number | undefined = (root as Node | null | undefined)?.range?.[0];
  for (const seg of segs) {
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
      );
      if (pair === undefined) return best;
      const keyStart = (pair.key as Node | null)?.range?.[0];
      if (keyStart !== undefined) best = keyStart;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg] as Node | undefined;
      if (item === undefined) return best;
      if (item.range) best = item.range[0];
      node = item;
    } else {
      return best;
    }
  }
  return best;
}

const FLOW_COLON = /\S:[\],]/;

/**
 * go-yaml (what kubectl uses) reads a flow-sequence item like `001:db8::` as one string; YAML 1.2
 * reads it as a one-key map `{"001:db8:": null}` because of the trailing `:`. Istio's own examples rely
 * on go-yaml here, so such items (a single key with no value and no whitespace) become strings.
 */
function goYamlFlowScalars(doc: Document, text: string): void {
  if (!FLOW_COLON.test(text)) return; // no `x:]` or `x:,` anywhere: nothing to fix
  visit(doc, {
    Seq(_key, seq) {
      if (!seq.flow) return;
      seq.items.forEach((item, i) => {
        if (!isMap(item) || item.items.length !== 1 || item.range == null) return;
        const pair = item.items[0];
        const value = pair?.value;
        if (!isScalar(pair?.key) || pair.key.type !== "PLAIN") return;
        if (value != null && !(isScalar(value) && value.value === null && value.source === ""))
          return;
        const source = text.slice(item.range[0], item.range[1]);
        if (!/^[^\s,[\]{}]+:$/.test(source) && !/^[^\s,[\]{}]+$/.test(source)) return;
        const scalar = new Scalar(source);
        scalar.range = item.range;
        seq.items[i] = scalar;
      });
    },
  });
}

/**
 * Every document of a YAML/JSON stream as plain values, read the way {@link validateYaml} reads them
 * (empty documents included as null, so indexes match the stream). Throws on syntax errors.
 */
export function loadYamlDocuments(text: string): unknown[] {
  return parseAllDocuments(text, { uniqueKeys: true, merge: true }).map((doc) => {
    if (doc.errors.length > 0) throw doc.errors[0];
    goYamlFlowScalars(doc, text);
    return doc.toJS({ maxAliasCount: 1000 });
  });
}

/**
 * Validates every document of a YAML (1.2) or JSON text. Never throws: syntax errors become a
 * `yaml/syntax` issue at their position, and the document they are in is reported invalid.
 */
export function validateYaml(text: string, options: ValidateOptions = {}): YamlValidationResult {
  const lineCounter = new LineCounter();
  const documents: DocumentResult[] = [];
  let parsed: ReturnType<typeof parseAllDocuments>;
  try {
    // merge: `<<` merge keys, which go-yaml (kubectl) honours; uniqueKeys: duplicate keys are errors.
    parsed = parseAllDocuments(text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: true,
      merge: true,
    });
  } catch (error) {
    const issue: ValidationIssue = {
      code: "yaml/syntax",
      severity: "error",
      path: "",
      message: `cannot parse YAML: ${error instanceof Error ? error.message : String(error)}`,
      line: 1,
      column: 1,
    };
    return {
      valid: false,
      documents: [{ index: 0, line: 1, valid: false, skipped: false, issues: [issue] }],
    };
  }
  const docs = Array.isArray(parsed) ? parsed : [];
  let index = 0;
  for (const doc of docs) {
    const start = doc.contents?.range?.[0] ?? doc.range?.[0] ?? 0;
    const startPos = lineCounter.linePos(start);
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const pos = e?.linePos?.[0] ?? lineCounter.linePos(e?.pos[0] ?? start);
      const message = (e?.message ?? "syntax error").split("\n")[0] ?? "syntax error";
      documents.push({
        index: index++,
        line: startPos.line,
        valid: false,
        skipped: false,
        issues: [
          {
            code: "yaml/syntax",
            severity: "error",
            path: "",
            message: `YAML syntax error: ${message}`,
            line: pos.line,
            column: pos.col,
          },
        ],
      });
      continue;
    }
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
    let value: unknown;
    try {
      goYamlFlowScalars(doc, text);
      value = doc.toJS({ maxAliasCount: 1000 });
    } catch (error) {
      documents.push({
        index: index++,
        line: startPos.line,
        valid: false,
        skipped: false,
        issues: [
          {
            code: "yaml/syntax",
            severity: "error",
            path: "",
            message: `YAML error: ${error instanceof Error ? error.message : String(error)}`,
            line: startPos.line,
            column: startPos.col,
          },
        ],
      });
      continue;
    }
    // A `kind: List` (as `kubectl get -o yaml` prints) is validated item by item.
    const v = value as { apiVersion?: unknown; kind?: unknown; items?: unknown } | null;
    const isList =
      typeof v === "object" &&
      v !== null &&
      v.apiVersion === "v1" &&
      v.kind === "List" &&
      Array.isArray(v.items);
    const items: Array<[unknown, PathSeg[]]> = isList
      ? (v.items as unknown[]).map((item, i) => [item, ["items", i]])
      : [[value, []]];
    for (const [item, prefix] of items) {
      const r = validateInternal(item, options);
      const issues = r.issues.map(({ segs, ...issue }: InternalIssue) => {
        const offset = locate(doc.contents, [...prefix, ...(segs ?? [])]) ?? start;
        const pos = lineCounter.linePos(offset);
        return { ...issue, line: pos.line, column: pos.col };
      });
      const itemLine = lineCounter.linePos(locate(doc.contents, prefix) ?? start).line;
      documents.push({ ...r, index: index++, line: itemLine, issues });
    }
  }
  return { valid: documents.every((d) => d.valid), documents };
}
