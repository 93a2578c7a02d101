// The CEL environment for x-kubernetes-validations: @bufbuild/cel with its string extensions plus
// the Kubernetes library functions these CRDs use (isIP, isURL, url().getScheme(),
// format.dns1123Label().validate()). Programs are compiled once per rule text and cached.
import {
  type CelResult,
  CelScalar,
  celEnv,
  celFunc,
  celMethod,
  isCelError,
  parse,
  plan,
} from "@bufbuild/cel";
import { strings } from "@bufbuild/cel/ext";
import { RE2JS } from "@bufbuild/re2";
import { isIP, parseRequestURI } from "./net.js";

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const URL_MARK = "\u0000url:";

const k8sFuncs = [
  celFunc("isIP", [CelScalar.STRING], CelScalar.BOOL, (s) => isIP(s)),
  celFunc("isURL", [CelScalar.STRING], CelScalar.BOOL, (s) => parseRequestURI(s) !== undefined),
  // url() values are carried as marked strings; getScheme() is only defined on them.
  celFunc("url", [CelScalar.STRING], CelScalar.STRING, (s) => {
    if (parseRequestURI(s) === undefined)
      throw new Error(`URL parse error during conversion from string: ${s}`);
    return URL_MARK + s;
  }),
  celMethod("getScheme", CelScalar.STRING, [], CelScalar.STRING, function (this: string) {
    if (!this.startsWith(URL_MARK)) throw new Error("getScheme() is only defined on url values");
    return parseRequestURI(this.slice(URL_MARK.length))?.scheme ?? "";
  }),
  celFunc("format.dns1123Label", [], CelScalar.STRING, () => "format:dns1123Label"),
  celMethod(
    "validate",
    CelScalar.STRING,
    [CelScalar.STRING],
    CelScalar.DYN,
    function (this: string, value: string) {
      if (this !== "format:dns1123Label") throw new Error(`unknown format ${this}`);
      if (value.length <= 63 && DNS1123_LABEL.test(value)) return null;
      return [
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
      ];
    },
  ),
];

// `matches()` compiles its RE2 pattern on every call by default; the patterns in CRDs are
// constants, so compile each once.
const regexCache = new Map<string, { test(text: string): boolean }>();
const re2 = {
  compile(pattern: string): { test(text: string): boolean } {
    let m = regexCache.get(pattern);
    if (m === undefined) {
      const compiled = RE2JS.compile(pattern);
      m = { test: (text: string) => compiled.test(text) };
      regexCache.set(pattern, m);
    }
    return m;
  },
};

const env = celEnv({ funcs: [...strings, ...k8sFuncs], re2 });

type Program = (bindings: { self: unknown }) => CelResult;
const cache = new Map<string, Program | string>();

const transition = new Map<string, boolean>();

/** True when a rule compares with the old object (a transition rule): it cannot apply offline. */
export function isTransitionRule(rule: string): boolean {
  // Asked for every rule on every document: remember the answer per rule text.
  let t = transition.get(rule);
  if (t === undefined) {
    t = /\boldSelf\b/.test(rule);
    if (transition.size < 10_000) transition.set(rule, t);
  }
  return t;
}

/**
 * Evaluates `rule` with `self` bound: true/false, or a string describing a compile or runtime error.
 * Integers in `self` must be bigint (the validator converts them by schema type).
 */
export function evalRule(rule: string, self: unknown): boolean | string {
  let program = cache.get(rule);
  if (program === undefined) {
    try {
      program = plan(env, parse(rule)) as unknown as Program;
    } catch (error) {
      program = `compilation failed: ${error instanceof Error ? error.message : String(error)}`;
    }
    cache.set(rule, program);
  }
  if (typeof program === "string") return program;
  let result: CelResult;
  try {
    result = program({ self });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  if (isCelError(result)) return result.message;
  if (typeof result === "boolean") return result;
  return `rule did not evaluate to a bool`;
}
