// validateYaml(): multi-document YAML or JSON text in, one result per document out, every issue
// with the line and column of the field it is about (via the yaml package's source ranges).

import { LinePositions, readYamlStream, type StreamDocument } from "@ambientkit/xds-types/yaml";
import {
  type Document,
  isMap,
  isPair,
  isScalar,
  isSeq,
  type Node,
  type Pair,
  Scalar,
  visit,
  type YAMLMap,
} from "yaml";
import type { InternalIssue, PathSeg } from "./model.js";
import type { DocumentResult, ValidateOptions, ValidationIssue } from "./types.js";
import { validateInternal } from "./validate.js";

/**
 * The result of validating a YAML/JSON text: one {@link DocumentResult} (the shared result shape)
 * per document, and `ok` when none has an error.
 */
export interface YamlValidationResult {
  /** True when no document has an error. */
  ok: boolean;
  /** Every non-empty document, in order. */
  documents: DocumentResult[];
}

// Maps with many keys get an index, so that N issues in one map cost N lookups, not N².
const keyIndex = new WeakMap<YAMLMap, Map<string, Pair>>();

function findPair(map: YAMLMap, key: string): Pair | undefined {
  if (map.items.length <= 16) {
    return map.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
  }
  let index = keyIndex.get(map);
  if (index === undefined) {
    index = new Map();
    for (const p of map.items) {
      // The first pair with a key wins, as with find() above.
      if (isPair(p) && isScalar(p.key) && !index.has(String(p.key.value)))
        index.set(String(p.key.value), p);
    }
    keyIndex.set(map, index);
  }
  return index.get(key);
}

/** Offset of the node (or map key) at `segs`; falls back to the deepest node that exists. */
function locate(root: Node | null | undefined, segs: readonly PathSeg[]): number | undefined {
  let node: unknown = root;
  let best: number | undefined = (root as Node | null | undefined)?.range?.[0];
  for (const seg of segs) {
    if (isMap(node)) {
      const pair = findPair(node, String(seg));
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
function goYamlFlowScalars(doc: Document.Parsed, text: string): void {
  // Only this document's own text: testing the whole stream for every document was quadratic.
  const range = doc.range;
  if (!FLOW_COLON.test(text.slice(range[0], range[2]))) return; // no `x:]` or `x:,`: nothing to fix
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
 * (empty documents included as null, so indexes match the stream). Throws on syntax errors and on
 * documents {@link validateYaml} would refuse to read (too deep, too large).
 */
export function loadYamlDocuments(text: string): unknown[] {
  const out: unknown[] = [];
  for (const d of readYamlStream(text)) {
    if (d.problem !== undefined) {
      const pos = new LinePositions(text).at(d.problem.offset);
      throw new SyntaxError(`${d.problem.message} (line ${pos.line}, column ${pos.col})`);
    }
    if (d.doc.errors.length > 0) throw d.doc.errors[0];
    goYamlFlowScalars(d.doc, text);
    out.push(d.doc.toJS({ maxAliasCount: 1000 }));
  }
  return out;
}

/** Where a byte sequence stops being UTF-8: its offset, or -1 when it is all UTF-8. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    // Lead byte → sequence length and the allowed range of the second byte (Unicode table 3-7):
    // no overlong forms, no surrogates, nothing above U+10FFFF.
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    if (i + len > n) return i;
    const b1 = bytes[i + 1] as number;
    if (b1 < lo || b1 > hi) return i;
    for (let k = 2; k < len; k++) {
      const c = bytes[i + k] as number;
      if (c < 0x80 || c > 0xbf) return i;
    }
    i += len;
  }
  return -1;
}

// In every runtime this package targets (browsers, Node, Deno, workers), but not in the es2023 lib.
const { TextDecoder: Decoder } = globalThis as unknown as {
  TextDecoder: new (
    label?: string,
    options?: { fatal?: boolean; ignoreBOM?: boolean },
  ) => { decode(bytes: Uint8Array): string };
};
const utf8 = new Decoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes UTF-8 input strictly. Invalid bytes are not replaced by U+FFFD (which would validate
 * something other than the file): they come back as a `yaml/encoding` issue at the first bad byte.
 */
export function decodeYamlBytes(
  bytes: Uint8Array,
): { text: string; issue?: undefined } | { text?: undefined; issue: ValidationIssue } {
  try {
    return { text: utf8.decode(bytes) };
  } catch {
    const at = Math.max(0, firstInvalidUtf8(bytes));
    let lineStart = at;
    while (lineStart > 0 && bytes[lineStart - 1] !== 0x0a) lineStart--;
    let line = 1;
    for (let i = 0; i < lineStart; i++) if (bytes[i] === 0x0a) line++;
    // Columns count characters as the rest of the validator does (UTF-16 code units).
    const column = new Decoder().decode(bytes.subarray(lineStart, at)).length + 1;
    const shown = Array.from(
      bytes.subarray(at, Math.min(at + 4, bytes.length)),
      (b) => `0x${b.toString(16).toUpperCase().padStart(2, "0")}`,
    ).join(" ");
    return {
      issue: {
        code: "yaml/encoding",
        severity: "error",
        path: "",
        message: `invalid UTF-8 at byte ${at} (${shown}…): YAML and JSON manifests must be UTF-8; the file was not validated`,
        line,
        column,
      },
    };
  }
}

function syntaxResult(index: number, line: number, issue: ValidationIssue): DocumentResult {
  return { index, line, ok: false, skipped: false, issues: [issue] };
}

/**
 * Validates the documents of a YAML (1.2) or JSON stream one at a time, yielding each document's
 * result as soon as it is known: nothing of a document is kept once the caller moves on, so memory
 * does not grow with the stream. Never throws; see {@link validateYaml}. Bytes are decoded as
 * UTF-8 strictly (see {@link decodeYamlBytes}).
 */
export function* validateYamlDocuments(
  input: string | Uint8Array,
  options: ValidateOptions = {},
): Generator<DocumentResult, void, undefined> {
  let text: string;
  if (typeof input === "string") text = input;
  else {
    const decoded = decodeYamlBytes(input);
    if (decoded.issue !== undefined) {
      yield syntaxResult(0, decoded.issue.line ?? 1, decoded.issue);
      return;
    }
    text = decoded.text;
  }
  const lines = new LinePositions(text);
  let index = 0;
  const stream = readYamlStream(text);
  for (;;) {
    let next: IteratorResult<StreamDocument, void>;
    try {
      next = stream.next();
    } catch (error) {
      // Not expected (the parser reports errors as tokens); a bug must not look like "valid".
      yield syntaxResult(index, 1, {
        code: "yaml/syntax",
        severity: "error",
        path: "",
        message: `cannot parse YAML: ${error instanceof Error ? error.message : String(error)}`,
        line: 1,
        column: 1,
      });
      return;
    }
    if (next.done === true) return;
    const d = next.value;
    if (d.problem !== undefined) {
      const startLine = lines.at(d.start).line;
      const pos = lines.at(d.problem.offset);
      yield syntaxResult(index++, startLine, {
        code: d.problem.code,
        severity: "error",
        path: "",
        message: d.problem.message,
        line: pos.line,
        column: pos.col,
      });
      continue;
    }
    const doc = d.doc;
    const start = d.start;
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const pos = lines.at(e?.pos[0] ?? start);
      const startLine = lines.at(start).line;
      const message = (e?.message ?? "syntax error").split("\n")[0] ?? "syntax error";
      yield syntaxResult(index++, startLine, {
        code: "yaml/syntax",
        severity: "error",
        path: "",
        message: `YAML syntax error: ${message}`,
        line: pos.line,
        column: pos.col,
      });
      continue;
    }
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
    let value: unknown;
    try {
      goYamlFlowScalars(doc, text);
      value = doc.toJS({ maxAliasCount: 1000 });
    } catch (error) {
      const pos = lines.at(start);
      yield syntaxResult(index++, pos.line, {
        code: "yaml/syntax",
        severity: "error",
        path: "",
        message: `YAML error: ${error instanceof Error ? error.message : String(error)}`,
        line: pos.line,
        column: pos.col,
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
      // Offsets first, then positions in increasing order: one forward pass over the text.
      const offsets = r.issues.map(
        (i: InternalIssue) => locate(doc.contents, [...prefix, ...(i.segs ?? [])]) ?? start,
      );
      const itemOffset = locate(doc.contents, prefix) ?? start;
      const positions = new Map<number, { line: number; col: number }>();
      for (const o of [itemOffset, ...offsets].sort((a, b) => a - b))
        if (!positions.has(o)) positions.set(o, lines.at(o));
      const issues = r.issues.map(({ segs: _segs, ...issue }: InternalIssue, n) => {
        const pos = positions.get(offsets[n] as number) as { line: number; col: number };
        return { ...issue, line: pos.line, column: pos.col };
      });
      const itemLine = (positions.get(itemOffset) as { line: number }).line;
      yield { ...r, index: index++, line: itemLine, issues };
    }
  }
}

/**
 * Validates every document of a YAML (1.2) or JSON text. Never throws: syntax errors become a
 * `yaml/syntax` issue at their position, and the document they are in is reported invalid; a
 * document nested deeper than 128 levels (`document/too-deep`) or longer than 3 MiB
 * (`document/too-large`) is reported and not validated. Bytes are decoded as UTF-8 strictly
 * (`yaml/encoding`). For large streams, {@link validateYamlDocuments} yields results one at a time.
 */
export function validateYaml(
  input: string | Uint8Array,
  options: ValidateOptions = {},
): YamlValidationResult {
  const documents = Array.from(validateYamlDocuments(input, options));
  const ok = documents.every((d) => d.ok);
  return { ok, documents };
}
