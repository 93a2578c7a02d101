// Reads a YAML stream one document at a time, with a cap on what one document may cost, so that
// memory does not grow with the input and hostile input becomes an issue instead of a crash.
// Used by validateYaml and by the LOCAL_XDS parser (for the nesting check).
import {
  Composer,
  CST,
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  type Node,
  Parser,
  YAMLParseError,
} from "yaml";

/**
 * Deepest nesting of collections accepted. The API server allows 10,000 (apimachinery's
 * util/json maxDepth), but the `yaml` composer and the validator recurse once per level and
 * overflow Node's default stack near 800 levels; ztunnel's serde_yaml stops at 128. No Istio or
 * Gateway API manifest comes near 128 (the deepest schemas are ~20 levels), so 128 it is.
 */
export const MAX_NESTING_DEPTH = 128;

/**
 * Largest document read, in characters of YAML text: 3 MiB, the API server's request size limit
 * (etcd stores at most 1.5 MiB), so nothing larger could be created anyway. Checked while the
 * document is being parsed: the parser's syntax tree is ~60× its source, so it must stop early.
 */
export const MAX_DOCUMENT_CHARS: number = 3 * 1024 * 1024;

/** Why a document was not read. */
export interface DocumentProblem {
  code: "document/too-deep" | "document/too-large";
  message: string;
  /** Where the problem is (the first collection too deep; the document start when too large). */
  offset: number;
}

/** One document of the stream: composed, or refused with a problem. */
export type StreamDocument =
  | { doc: Document.Parsed; start: number; problem?: undefined }
  | { doc?: undefined; start: number; problem: DocumentProblem };

const CONTROL_LEXEMES = new Set([CST.DOCUMENT, CST.FLOW_END, CST.SCALAR]);

/**
 * The documents of `text`, one at a time: each document's syntax tree and nodes can be dropped as
 * soon as the caller moves on. A document nested deeper than {@link MAX_NESTING_DEPTH} or longer
 * than `maxChars` comes back as a problem and is not composed.
 */
export function* readYamlStream(
  text: string,
  options: { maxChars?: number } = {},
): Generator<StreamDocument, void, undefined> {
  const maxChars = options.maxChars ?? MAX_DOCUMENT_CHARS;
  // merge: `<<` merge keys, which go-yaml (kubectl) honours. Duplicate keys are errors, but the
  // composer's own check compares each key with every earlier one (quadratic in a map's size):
  // checkDuplicateKeys does it with a set instead.
  const composer = new Composer({ prettyErrors: false, uniqueKeys: false, merge: true });
  const lexer = new Lexer();
  let parser = new Parser();
  // Offset of the next lexeme, counted as the parser counts (control lexemes are not source).
  let pos = 0;
  // Where the document being parsed began (just after the previous one).
  let docStart = 0;
  // After a refused document, its `...` end marker must not reach the composer alone.
  let dropDocEnd = false;
  // Skipping the rest of an over-long document until the next document marker.
  let skipping = false;
  // For each document handed to the composer and not yet out of it: does it use aliases?
  const usesAliases: boolean[] = [];
  const out = (doc: Document.Parsed): StreamDocument => {
    checkDuplicateKeys(doc);
    const start = rangeStart(doc);
    if (usesAliases.shift() !== true) return { doc, start };
    const problem = checkAliases(doc);
    return problem === undefined ? { doc, start } : { start, problem };
  };

  const take = function* (token: CST.Token): Generator<StreamDocument, void, undefined> {
    if (token.type === "document") {
      const start = docStart;
      docStart = pos;
      const { problem, aliases } = checkTree(token);
      if (problem !== undefined) {
        // Out of order otherwise: the composer still holds the previous document.
        for (const doc of composer.end()) yield out(doc);
        dropDocEnd = true;
        yield { start: Math.max(start, token.value?.offset ?? token.offset), problem };
        return;
      }
      usesAliases.push(aliases);
    } else if (token.type === "doc-end" && dropDocEnd) {
      dropDocEnd = false;
      return;
    }
    if (token.type !== "comment" && token.type !== "newline" && token.type !== "space")
      dropDocEnd = false;
    for (const doc of composer.next(token)) yield out(doc);
  };

  for (const lexeme of lexer.lex(text, false)) {
    if (skipping) {
      if (lexeme === "---" || lexeme === "...") {
        skipping = false;
        parser = new Parser();
        parser.offset = pos;
        docStart = pos;
        if (lexeme === "...") {
          pos += lexeme.length;
          parser.offset = pos;
          docStart = pos;
          continue;
        }
      } else {
        if (!CONTROL_LEXEMES.has(lexeme)) pos += lexeme.length;
        continue;
      }
    }
    for (const token of parser.next(lexeme)) yield* take(token);
    if (!CONTROL_LEXEMES.has(lexeme)) pos += lexeme.length;
    if (pos - docStart > maxChars) {
      for (const doc of composer.end()) yield out(doc);
      const at = firstContent(text, docStart);
      yield {
        start: at,
        problem: {
          code: "document/too-large",
          message: `document is longer than ${maxChars.toLocaleString("en-US")} characters (3 MiB, the API server's request size limit); not validated`,
          offset: at,
        },
      };
      skipping = true;
    }
  }
  if (!skipping) for (const token of parser.end()) yield* take(token);
  for (const doc of composer.end()) yield out(doc);
}

function rangeStart(doc: Document.Parsed): number {
  return doc.contents?.range[0] ?? doc.range[0];
}

/** Where a document's content starts: after blank space, comments and its `---` (for positions). */
function firstContent(text: string, from: number): number {
  const re = /(?:\s|#[^\n]*)*(?:---(?=\s|$))?(?:\s|#[^\n]*)*/y;
  re.lastIndex = from;
  re.exec(text);
  return Math.min(re.lastIndex, text.length);
}

function tooDeep(offset: number, detail = ""): DocumentProblem {
  return {
    code: "document/too-deep",
    message: `nesting deeper than ${MAX_NESTING_DEPTH} levels${detail}: no manifest needs this much, and deeper input would exhaust the parser's stack`,
    offset,
  };
}

/**
 * Adds a "Map keys must be unique" error for every scalar key that repeats an earlier one of its
 * map (what the composer's `uniqueKeys` reports), in one pass with a set per map.
 */
function checkDuplicateKeys(doc: Document.Parsed): void {
  const root = doc.contents;
  if (root === null) return;
  const found: YAMLParseError[] = [];
  const stack: unknown[] = [root];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    if (isMap(node)) {
      const seen = new Set<unknown>();
      for (const pair of node.items) {
        const key = pair.key;
        if (isScalar(key) && !Number.isNaN(key.value)) {
          if (seen.has(key.value)) {
            const at = key.range?.[0] ?? 0;
            found.push(
              new YAMLParseError([at, at + 1], "DUPLICATE_KEY", "Map keys must be unique"),
            );
          } else seen.add(key.value);
        }
        if (key !== null && typeof key === "object") stack.push(key);
        if (pair.value !== null && typeof pair.value === "object") stack.push(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items)
        if (item !== null && typeof item === "object") stack.push(item);
    }
  }
  if (found.length === 0) return;
  // In document order with the composer's own errors, as the composer would have reported them.
  doc.errors = [...doc.errors, ...found].sort((a, b) => a.pos[0] - b.pos[0]);
}

/**
 * Checks a document's syntax tree without recursion (it may be thousands of levels deep): the
 * first collection deeper than {@link MAX_NESTING_DEPTH} is a problem.
 */
export function checkTree(root: CST.Token): { problem?: DocumentProblem; aliases: boolean } {
  let aliases = false;
  const stack: Array<[CST.Token, number]> = [[root, 0]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [token, depth] = next;
    switch (token.type) {
      case "document":
        if (token.value !== undefined) stack.push([token.value, depth]);
        break;
      case "block-map":
      case "block-seq":
      case "flow-collection": {
        if (depth + 1 > MAX_NESTING_DEPTH) return { problem: tooDeep(token.offset), aliases };
        // Pushed in reverse so the first too-deep collection in document order is reported.
        for (let i = token.items.length - 1; i >= 0; i--) {
          const item = token.items[i];
          if (item?.value) stack.push([item.value, depth + 1]);
          if (item?.key) stack.push([item.key, depth + 1]);
        }
        break;
      }
      case "alias":
        aliases = true;
        break;
      default:
        break;
    }
  }
  return { aliases };
}

/**
 * Checks the nesting of a composed document with its aliases expanded, as `toJS` would build it:
 * an alias to a deep anchor placed deep again, or an anchor that contains an alias to itself
 * (a value that contains itself), is a problem. Iterative, and linear: each node's height is
 * computed once.
 */
export function checkAliases(doc: Document.Parsed): DocumentProblem | undefined {
  const root = doc.contents;
  if (root === null) return undefined;
  const height = new Map<Node, number>();
  const anchors = new Map<string, Node>();
  // [node, depth from the root, children, next child index, tallest child so far]
  type Frame = [Node, number, Node[], number, number];
  const children = (n: Node): Node[] => {
    if (isMap(n)) {
      const out: Node[] = [];
      for (const p of n.items) {
        if (!isPair(p)) continue;
        if (p.key && typeof p.key === "object") out.push(p.key as Node);
        if (p.value && typeof p.value === "object") out.push(p.value as Node);
      }
      return out;
    }
    if (isSeq(n)) return n.items.filter((i): i is Node => typeof i === "object" && i !== null);
    return [];
  };
  const enter = (n: Node, depth: number): Frame => {
    if (n.anchor) anchors.set(n.anchor, n);
    return [n, depth, children(n), 0, 0];
  };
  const stack: Frame[] = [enter(root, 0)];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1] as Frame;
    const [node, depth, kids, i] = frame;
    if (i < kids.length) {
      frame[3] = i + 1;
      const kid = kids[i] as Node;
      if (isAlias(kid)) {
        const target = anchors.get(kid.source);
        if (target === undefined) continue; // the composer already reported it
        const h = height.get(target);
        const at = kid.range?.[0] ?? 0;
        if (h === undefined)
          return {
            code: "document/too-deep",
            message: `alias *${kid.source} is inside its own anchor, so the value would contain itself; Kubernetes objects cannot`,
            offset: at,
          };
        if (depth + 1 + h > MAX_NESTING_DEPTH)
          return tooDeep(at, ` once alias *${kid.source} is expanded`);
        frame[4] = Math.max(frame[4], h);
      } else {
        stack.push(enter(kid, depth + 1));
      }
      continue;
    }
    stack.pop();
    const h = (isMap(node) || isSeq(node) ? 1 : 0) + frame[4];
    height.set(node, h);
    const parent = stack[stack.length - 1];
    if (parent !== undefined) parent[4] = Math.max(parent[4], h);
  }
  return undefined;
}

/**
 * 1-based line and column of offsets in one text, cheap for offsets that mostly increase: one pass
 * over the text for a whole stream, instead of a table of every line start.
 */
export class LinePositions {
  readonly #text: string;
  #line = 1;
  #lineStart = 0;
  #nextNewline: number;

  constructor(text: string) {
    this.#text = text;
    this.#nextNewline = this.#find(0);
  }

  #find(from: number): number {
    const nl = this.#text.indexOf("\n", from);
    return nl < 0 ? Number.POSITIVE_INFINITY : nl;
  }

  at(offset: number): { line: number; col: number } {
    // Backwards (rare, and never further back than the current document): line by line.
    while (offset < this.#lineStart) {
      this.#line--;
      this.#nextNewline = this.#lineStart - 1;
      this.#lineStart =
        this.#nextNewline === 0 ? 0 : this.#text.lastIndexOf("\n", this.#nextNewline - 1) + 1;
    }
    while (this.#nextNewline < offset) {
      this.#line++;
      this.#lineStart = this.#nextNewline + 1;
      this.#nextNewline = this.#find(this.#lineStart);
    }
    return { line: this.#line, col: offset - this.#lineStart + 1 };
  }
}
