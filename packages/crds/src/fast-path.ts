// The first-error ajv validator every document goes through first. Same checks as the reporting
// (all-errors) schema plus list-type uniqueness, rewritten with three ajv keywords so the common,
// valid document costs less than raw ajv on the published CRD schema:
//   xFields     properties + additionalProperties: false in one pass over the keys the object
//               has, instead of a presence test per declared property and a second key loop
//   xAtMostOne  protoc-gen-crd's "oneOf: [not anyOf required…, required a, required b…]" (at
//               most one of a, b…) as a count, instead of building and discarding error objects
//   xList       x-kubernetes-list-type set/map uniqueness
// It may reject what the reporting validator accepts (the reporting one then decides), never the
// reverse; fast-path.test.ts checks both give the same verdict on the corpus and on mutations.
import { _, type Ajv, type KeywordCxt } from "ajv";
import type { StructuralSchema } from "./model.js";
import { hasDuplicateItem, type ListSpec, listSpec } from "./structural.js";

/** Registers the fast path's keywords on an ajv instance. */
export function addFastKeywords(ajv: Ajv): void {
  ajv.addKeyword({
    keyword: "xFields",
    type: "object",
    schemaType: "object",
    code(cxt: KeywordCxt) {
      const { gen, data, schema } = cxt;
      const props = Object.keys(schema as Record<string, unknown>);
      const valid = gen.name("valid");
      gen.forIn("key", data, (key) => {
        if (props.length === 0) {
          cxt.error();
          return;
        }
        props.forEach((p, i) => {
          if (i === 0) gen.if(_`${key} === ${p}`);
          else gen.elseIf(_`${key} === ${p}`);
          // An own key whose value is undefined fails the subschema's type check here but is
          // skipped by `properties`: a conservative rejection the reporting validator corrects.
          cxt.subschema({ keyword: "xFields", schemaProp: p, dataProp: p }, valid);
        });
        gen.else();
        cxt.error();
        gen.endIf();
      });
    },
  });
  ajv.addKeyword({
    keyword: "xAtMostOne",
    type: "object",
    schemaType: "array",
    code(cxt: KeywordCxt) {
      const { data, schema } = cxt;
      for (const group of schema as string[][]) {
        let count = _`0`;
        for (const name of group) count = _`${count} + (${data}[${name}] !== undefined ? 1 : 0)`;
        cxt.fail(_`${count} > 1`);
      }
    },
  });
  ajv.addKeyword({
    keyword: "xList",
    type: "array",
    schemaType: "object",
    code(cxt: KeywordCxt) {
      const { gen, data } = cxt;
      const fn = gen.scopeValue("func", { ref: hasDuplicateItem });
      const spec = gen.scopeValue("keyword", { ref: cxt.schema as ListSpec });
      cxt.fail(_`${fn}(${data}, ${spec})`);
    },
  });
}

/** The names in protoc-gen-crd's at-most-one-of pattern, or undefined for any other oneOf. */
function atMostOneGroup(oneOf: unknown): string[] | undefined {
  if (!Array.isArray(oneOf) || oneOf.length < 2) return undefined;
  const [first, ...rest] = oneOf as Array<Record<string, unknown>>;
  const not = first?.not as Record<string, unknown> | undefined;
  const any = not?.anyOf;
  if (
    first === undefined ||
    Object.keys(first).length !== 1 ||
    not === undefined ||
    Object.keys(not).length !== 1 ||
    !Array.isArray(any) ||
    any.length !== rest.length
  ) {
    return undefined;
  }
  const names: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = any[i] as Record<string, unknown>;
    const r = rest[i] as Record<string, unknown>;
    const req = a.required;
    if (
      Object.keys(a).length !== 1 ||
      Object.keys(r).length !== 1 ||
      !Array.isArray(req) ||
      req.length !== 1 ||
      !Array.isArray(r.required) ||
      r.required.length !== 1 ||
      req[0] !== r.required[0]
    ) {
      return undefined;
    }
    names.push(req[0] as string);
  }
  return names;
}

/**
 * The at-most-one-of groups a `oneOf` (one group) or an `allOf` made only of such `oneOf`s (one
 * group each) stands for; undefined for any other keyword or shape.
 */
function atMostOneGroups(key: string, value: unknown): string[][] | undefined {
  if (key === "oneOf") {
    const g = atMostOneGroup(value);
    return g === undefined ? undefined : [g];
  }
  if (key !== "allOf" || !Array.isArray(value)) return undefined;
  const out: string[][] = [];
  for (const v of value as Array<Record<string, unknown>>) {
    const g = Object.keys(v).length === 1 ? atMostOneGroup(v.oneOf) : undefined;
    if (g === undefined) return undefined;
    out.push(g);
  }
  return out;
}

/**
 * Rewrites a reporting ajv schema (from toAjvSchema) for the fast path; `structural` is the
 * structural node it came from (for list types), undefined inside combinators.
 */
export function toFastSchema(
  reporting: Record<string, unknown>,
  structural: StructuralSchema | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const groups: string[][] = [];
  const closed = reporting.additionalProperties === false && reporting.properties !== undefined;
  const isObjectType = reporting.type === "object";
  for (const [key, value] of Object.entries(reporting)) {
    const rewritten = isObjectType ? atMostOneGroups(key, value) : undefined;
    if (rewritten !== undefined) {
      groups.push(...rewritten);
    } else if (key === "properties") {
      const props: Record<string, unknown> = {};
      for (const [name, child] of Object.entries(
        value as Record<string, Record<string, unknown>>,
      )) {
        props[name] = toFastSchema(child, structural?.properties?.[name]);
      }
      out[closed ? "xFields" : "properties"] = props;
    } else if (key === "additionalProperties" && closed) {
      // folded into xFields
    } else if (key === "items" || (key === "additionalProperties" && typeof value === "object")) {
      const child = key === "items" ? structural?.items : structural?.additionalProperties;
      out[key] = toFastSchema(
        value as Record<string, unknown>,
        typeof child === "object" ? child : undefined,
      );
    } else if (key === "allOf" || key === "anyOf" || key === "oneOf") {
      out[key] = (value as Array<Record<string, unknown>>).map((v) => toFastSchema(v, undefined));
    } else if (key === "not") {
      out[key] = toFastSchema(value as Record<string, unknown>, undefined);
    } else {
      out[key] = value;
    }
  }
  if (groups.length > 0) out.xAtMostOne = groups;
  const list = structural === undefined ? undefined : listSpec(structural);
  if (list !== undefined) out.xList = list;
  return out;
}
