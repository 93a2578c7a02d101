import { formatIssuePath } from "@ambientkit/xds-types";
// The steps of the API server's custom-resource validation that walk the schema and the object
// together: structural defaulting, list-type (set/map) uniqueness and CEL rules.
import { evalRule, isTransitionRule } from "./cel.js";
import type { InternalIssue, PathSeg, StructuralSchema } from "./model.js";

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

interface NodeInfo {
  /** Some node in this subtree declares a default. */
  defaults: boolean;
  /** Some node in this subtree has CEL rules. */
  cel: boolean;
  /** Some node in this subtree has a set/map list type. */
  lists: boolean;
}

const infoCache = new WeakMap<StructuralSchema, NodeInfo>();

function childSchemas(s: StructuralSchema): StructuralSchema[] {
  const out: StructuralSchema[] = [];
  if (s.properties !== undefined) out.push(...Object.values(s.properties));
  if (s.items !== undefined) out.push(s.items);
  if (typeof s.additionalProperties === "object") out.push(s.additionalProperties);
  return out;
}

/** What a schema subtree needs (computed once per schema node, cached). */
function info(s: StructuralSchema): NodeInfo {
  let i = infoCache.get(s);
  if (i === undefined) {
    const listType = s["x-kubernetes-list-type"];
    const lists = listType === "set" || listType === "map";
    i = { defaults: false, cel: s["x-kubernetes-validations"] !== undefined, lists };
    for (const c of childSchemas(s)) {
      if (c.default !== undefined) i.defaults = true;
      const ci = info(c);
      i.defaults ||= ci.defaults;
      i.cel ||= ci.cel;
      i.lists ||= ci.lists;
    }
    infoCache.set(s, i);
  }
  return i;
}

function cloneJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(cloneJson);
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[k] = cloneJson(v[k]);
    return out;
  }
  return v;
}

/**
 * Applies structural defaults (a missing property whose schema has a `default` gets it,
 * recursively), as the API server does before validation. Copy on write: `value` is never
 * modified, and subtrees without defaults are shared with it.
 */
export function applyDefaults(s: StructuralSchema | undefined, value: unknown): unknown {
  if (s === undefined || !info(s).defaults) return value;
  if (Array.isArray(value)) {
    const items = s.items;
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const d = applyDefaults(items, value[i]);
      if (d !== value[i]) {
        out ??= value.slice();
        out[i] = d;
      }
    }
    return out ?? value;
  }
  if (isObject(value)) {
    let out: Record<string, unknown> | undefined;
    const props = s.properties;
    const extra = typeof s.additionalProperties === "object" ? s.additionalProperties : undefined;
    for (const k of Object.keys(value)) {
      const d = applyDefaults(props?.[k] ?? extra, value[k]);
      if (d !== value[k]) {
        out ??= { ...value };
        out[k] = d;
      }
    }
    if (props !== undefined) {
      for (const k of Object.keys(props)) {
        const child = props[k];
        if (child?.default !== undefined && value[k] === undefined) {
          out ??= { ...value };
          out[k] = applyDefaults(child, cloneJson(child.default));
        }
      }
    }
    return out ?? value;
  }
  return value;
}

// Created on first use per document (most documents of most kinds never reach a rule).
let celMemo: Map<object, unknown> | undefined;

/** Forgets converted values: called per document, since callers may mutate and re-validate. */
export function resetCelMemo(): void {
  celMemo = undefined;
}

/**
 * The value CEL sees for `value`: integers (by schema type, or integral numbers where the schema
 * does not say) become bigint, as CEL's int type needs. Converted objects are memoised, so
 * nested rules share one conversion.
 */
export function toCel(s: StructuralSchema | undefined, value: unknown): unknown {
  if (typeof value === "number") {
    if (s?.type === "number") return value;
    return Number.isInteger(value) ? BigInt(value) : value;
  }
  if (typeof value !== "object" || value === null) return value;
  celMemo ??= new Map();
  const memo = celMemo.get(value);
  if (memo !== undefined) return memo;
  let out: unknown;
  if (Array.isArray(value)) {
    out = value.map((v) => toCel(s?.items, v));
  } else {
    const o: Record<string, unknown> = {};
    const props = s?.properties;
    const extra = typeof s?.additionalProperties === "object" ? s.additionalProperties : undefined;
    const v = value as Record<string, unknown>;
    for (const k of Object.keys(v)) o[k] = toCel(props?.[k] ?? extra, v[k]);
    out = o;
  }
  celMemo.set(value, out);
  return out;
}

function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function canonical(v: unknown): string {
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(",")}}`;
  }
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  return JSON.stringify(v) ?? "null";
}

/** Go-ish rendering of a duplicate value, like the API server's `Duplicate value: …`. */
function renderDuplicate(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : canonical(v);
}

/** Normalises @bufbuild/cel runtime errors towards the Kubernetes CEL wording. */
function celErrorText(err: string): string {
  if (/convert .* to a BigInt|cannot convert|SyntaxError/i.test(err)) {
    return `type conversion error from 'string' to 'int' (${err})`;
  }
  return err;
}

/**
 * Walks schema and (defaulted) value together: list-type uniqueness and every CEL rule, with
 * `self` bound to the node the rule sits on (converted by {@link toCel}).
 * `schemaFailed` suppresses CEL evaluation errors that are consequences of schema errors;
 * `checkLists: false` skips uniqueness when the first-error validator already checked it.
 */
// Per value (object or array) of the document being checked: does it, or anything under it, hold
// more than its schema allows? Weak, so nothing outlives the document.
const oversized = new WeakMap<object, boolean>();

const limit = (s: StructuralSchema, key: string): number =>
  typeof s[key] === "number" ? (s[key] as number) : Number.POSITIVE_INFINITY;

/**
 * Whether `value` or anything under it is larger than its schema allows (maxItems, maxProperties,
 * maxLength). The API server accepts a CRD's CEL rules only if their cost, estimated from these
 * bounds, fits its budget; on data beyond them a rule can cost far more (a uniqueness rule over
 * a 4,000-item list is 16 million comparisons), and the API server's runtime budget would stop
 * it. The schema step has already reported the excess, so such rules are not evaluated.
 */
function exceedsBounds(s: StructuralSchema | undefined, value: unknown): boolean {
  if (s === undefined) return false;
  if (typeof value === "string") return value.length > limit(s, "maxLength");
  if (typeof value !== "object" || value === null) return false;
  const known = oversized.get(value);
  if (known !== undefined) return known;
  let over = false;
  if (Array.isArray(value)) {
    over = value.length > limit(s, "maxItems");
    for (let i = 0; !over && i < value.length; i++) over = exceedsBounds(s.items, value[i]);
  } else {
    const keys = Object.keys(value);
    over = keys.length > limit(s, "maxProperties");
    const extra = typeof s.additionalProperties === "object" ? s.additionalProperties : undefined;
    for (let i = 0; !over && i < keys.length; i++) {
      const k = keys[i] as string;
      over = exceedsBounds(s.properties?.[k] ?? extra, (value as Record<string, unknown>)[k]);
    }
  }
  oversized.set(value, over);
  return over;
}

export function checkRules(
  s: StructuralSchema,
  value: unknown,
  path: PathSeg[],
  issues: InternalIssue[],
  schemaFailed: boolean,
  evalCel = true,
  checkLists = true,
): void {
  if (value === undefined) return;
  const needs = info(s);
  if (!((evalCel && needs.cel) || (checkLists && needs.lists))) return;
  const rules = s["x-kubernetes-validations"];
  if (
    evalCel &&
    rules !== undefined &&
    value !== null &&
    !(schemaFailed && exceedsBounds(s, value))
  ) {
    for (const r of rules) {
      if (isTransitionRule(r.rule)) continue; // needs the old object: cannot apply offline (CREATE)
      const result = evalRule(r.rule, toCel(s, value));
      if (result === true) continue;
      const p = formatIssuePath(path);
      const prefix = `${p === "" ? "" : `${p}: `}Invalid value: "${jsonType(value)}": `;
      const message = r.message ?? `failed rule: ${r.rule}`;
      if (result === false) {
        issues.push({
          code: "cel/rule",
          severity: "error",
          path: p,
          message: prefix + message,
          segs: [...path],
        });
      } else if (!schemaFailed) {
        issues.push({
          code: "cel/error",
          severity: "error",
          path: p,
          message: `${prefix}${message}: ${celErrorText(result)}`,
          segs: [...path],
        });
      }
    }
  }
  if (Array.isArray(value)) {
    const listType = s["x-kubernetes-list-type"];
    if (checkLists && (listType === "set" || listType === "map")) {
      checkListType(s, value, path, issues);
    }
    const items = s.items;
    if (items !== undefined) {
      for (let i = 0; i < value.length; i++) {
        path.push(i);
        checkRules(items, value[i], path, issues, schemaFailed, evalCel, checkLists);
        path.pop();
      }
    }
    return;
  }
  if (isObject(value)) {
    const props = s.properties;
    const extra = typeof s.additionalProperties === "object" ? s.additionalProperties : undefined;
    for (const k of Object.keys(value)) {
      const child = props?.[k] ?? extra;
      if (child === undefined) continue;
      path.push(k);
      checkRules(child, value[k], path, issues, schemaFailed, evalCel, checkLists);
      path.pop();
    }
  }
}

/**
 * The identity of a list item for set/map uniqueness: the whole item (set) or its map keys, a
 * missing key taking its schema default (map). Undefined for a map item that is not an object.
 */
function listItemKey(
  item: unknown,
  mapKeys: readonly string[] | undefined,
  keyDefaults: Readonly<Record<string, unknown>> | undefined,
): { key: string; shown: unknown } | undefined {
  if (mapKeys === undefined) return { key: canonical(item), shown: item };
  if (!isObject(item)) return undefined;
  const parts: Record<string, unknown> = {};
  for (const k of mapKeys) parts[k] = item[k] ?? keyDefaults?.[k];
  return {
    key: canonical(parts),
    shown: mapKeys.length === 1 ? parts[mapKeys[0] as string] : parts,
  };
}

/** What a list node's uniqueness check needs: its map keys (none for a set) and their defaults. */
export interface ListSpec {
  mapKeys?: string[];
  keyDefaults?: Record<string, unknown>;
}

/** The {@link ListSpec} of a set/map list schema node, or undefined for atomic/untyped lists. */
export function listSpec(s: StructuralSchema): ListSpec | undefined {
  const listType = s["x-kubernetes-list-type"];
  if (listType === "set") return {};
  if (listType !== "map") return undefined;
  const keys = s["x-kubernetes-list-map-keys"];
  if (keys === undefined) return {};
  const keyDefaults: Record<string, unknown> = {};
  for (const k of keys) {
    const d = s.items?.properties?.[k]?.default;
    if (d !== undefined) keyDefaults[k] = d;
  }
  return { mapKeys: keys, keyDefaults };
}

/** True when two items of `list` share a set value / map key (the first-error validator's check). */
export function hasDuplicateItem(list: readonly unknown[], spec: ListSpec): boolean {
  if (list.length < 2) return false;
  const seen = new Set<string>();
  for (const item of list) {
    const k = listItemKey(item, spec.mapKeys, spec.keyDefaults);
    if (k === undefined) continue;
    if (seen.has(k.key)) return true;
    seen.add(k.key);
  }
  return false;
}

function checkListType(
  s: StructuralSchema,
  list: unknown[],
  path: PathSeg[],
  issues: InternalIssue[],
): void {
  const spec = listSpec(s);
  if (spec === undefined) return;
  const seen = new Set<string>();
  for (let i = 0; i < list.length; i++) {
    const k = listItemKey(list[i], spec.mapKeys, spec.keyDefaults);
    if (k === undefined) continue;
    if (seen.has(k.key)) {
      const p = formatIssuePath([...path, i]);
      issues.push({
        code: "list-type/duplicate",
        severity: "error",
        path: p,
        message: `${p}: Duplicate value: ${renderDuplicate(k.shown)}`,
        segs: [...path, i],
      });
    } else {
      seen.add(k.key);
    }
  }
}
