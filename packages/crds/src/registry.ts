// Looks up kinds and versions in the generated schema sets, and turns a structural schema into the
// ajv schema used for validation (compiled once per schema, lazily, cached).
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { CrdKindData, CrdSetData } from "./crd-model.js";
import { addFastKeywords, toFastSchema } from "./fast-path.js";
import { CRD_SETS, SCHEMA_TEXTS } from "./gen/crd-data.js";
import type { StructuralSchema } from "./model.js";
import { isIPv4, isIPv6 } from "./net.js";
import type { GatewayApiChannel, IstioVersion } from "./types.js";

export type { StructuralSchema };

const ISTIO_GROUP = /(^|\.)istio\.io$/;
const GATEWAY_GROUPS = new Set(["gateway.networking.k8s.io", "gateway.networking.x-k8s.io"]);

/** Which family an API group belongs to, or undefined for groups ambientkit does not validate. */
export function familyOf(group: string): "istio" | "gateway-api" | undefined {
  if (GATEWAY_GROUPS.has(group)) return "gateway-api";
  if (group.endsWith("istio.io") && ISTIO_GROUP.test(group)) return "istio";
  return undefined;
}

const setIndex = new Map<string, Map<string, CrdKindData>>();

function kindsOf(setId: string): Map<string, CrdKindData> | undefined {
  let kinds = setIndex.get(setId);
  if (kinds === undefined) {
    const set: CrdSetData | undefined = CRD_SETS.find((s) => s.id === setId);
    if (set === undefined) return undefined;
    kinds = new Map(set.kinds.map((k) => [`${k.group}/${k.kind}`, k]));
    setIndex.set(setId, kinds);
  }
  return kinds;
}

/** The CRD for `group`/`kind` in the chosen set, or undefined. */
export function lookupKind(
  family: "istio" | "gateway-api",
  group: string,
  kind: string,
  istio: IstioVersion,
  gatewayApi: GatewayApiChannel,
): CrdKindData | undefined {
  const setId = family === "istio" ? `istio/${istio}` : `gateway-api/${gatewayApi}`;
  return kindsOf(setId)?.get(`${group}/${kind}`);
}

const SET_IDS: readonly string[] = CRD_SETS.map((s) => s.id);

/** Schema set ids available, e.g. ["gateway-api/experimental", "gateway-api/standard", "istio/1.30", "istio/master"]. */
export function schemaSetIds(): readonly string[] {
  return SET_IDS;
}

const parsed = new Map<number, StructuralSchema>();

/** The structural schema with index `i`, parsed on first use. */
export function structuralSchema(i: number): StructuralSchema {
  let s = parsed.get(i);
  if (s === undefined) {
    s = JSON.parse(SCHEMA_TEXTS[i] ?? '{"type":"object"}') as StructuralSchema;
    parsed.set(i, s);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// ajv

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

const NUMERIC_FORMATS = new Set(["int32", "int64", "double", "float"]);

const ajvInstances: { fast?: Ajv; full?: Ajv } = {};

function ajv(allErrors: boolean): Ajv {
  const key = allErrors ? "full" : "fast";
  let instance = ajvInstances[key];
  if (instance === undefined) {
    instance = new Ajv({
      allErrors,
      strict: false,
      validateFormats: true,
      // ajv's code optimiser doubles compile time (≈12 → 24 ms a schema) but makes the
      // first-error validator every document runs ≈1.4× faster; the reporting one runs only
      // for failing documents, so it keeps the faster compile.
      code: { optimize: !allErrors },
    });
    // Formats as the API server (kube-openapi strfmt) checks them; numeric ones are width hints.
    instance.addFormat("int32", { type: "number", validate: () => true });
    instance.addFormat("int64", { type: "number", validate: () => true });
    instance.addFormat("double", { type: "number", validate: () => true });
    instance.addFormat("float", { type: "number", validate: () => true });
    instance.addFormat("byte", (s: string) => BASE64.test(s));
    instance.addFormat("date-time", (s: string) => DATE_TIME.test(s));
    instance.addFormat("ipv4", (s: string) => isIPv4(s));
    instance.addFormat("ipv6", (s: string) => isIPv6(s));
    if (!allErrors) addFastKeywords(instance);
    ajvInstances[key] = instance;
  }
  return instance;
}

/**
 * Converts a structural schema into what ajv validates: unknown fields rejected
 * (additionalProperties: false, as pruning would) unless x-kubernetes-preserve-unknown-fields,
 * int-or-string as anyOf, x-kubernetes-* removed.
 */
export function toAjvSchema(
  s: StructuralSchema,
  root = false,
  inCombinator = false,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(s)) {
    if (key.startsWith("x-kubernetes-") || key === "default") continue;
    // int32/int64/double/float are width hints the API server does not check: no format call.
    if (key === "format" && NUMERIC_FORMATS.has(value as string)) continue;
    if (key === "properties") {
      const props: Record<string, unknown> = {};
      for (const [name, child] of Object.entries(value as Record<string, StructuralSchema>)) {
        props[name] = toAjvSchema(child, false, inCombinator);
      }
      out.properties = props;
    } else if (key === "items" || (key === "additionalProperties" && typeof value === "object")) {
      out[key] = toAjvSchema(value as StructuralSchema, false, inCombinator);
    } else if (key === "allOf" || key === "anyOf" || key === "oneOf") {
      out[key] = (value as StructuralSchema[]).map((v) => toAjvSchema(v, false, true));
    } else if (key === "not") {
      out[key] = toAjvSchema(value as StructuralSchema, false, true);
    } else {
      out[key] = value;
    }
  }
  if (s["x-kubernetes-int-or-string"] === true) {
    delete out.type;
    if (out.anyOf === undefined) out.anyOf = [{ type: "integer" }, { type: "string" }];
  }
  if (root) {
    const props = (out.properties ?? {}) as Record<string, unknown>;
    props.apiVersion ??= { type: "string" };
    props.kind ??= { type: "string" };
    props.metadata = { type: "object" };
    out.properties = props;
  }
  // Value validations inside oneOf/anyOf/allOf/not never declare fields: pruning ignores them.
  if (
    !inCombinator &&
    out.properties !== undefined &&
    s["x-kubernetes-preserve-unknown-fields"] !== true &&
    out.additionalProperties === undefined
  ) {
    out.additionalProperties = false;
  }
  return out;
}

const compiledFast = new Map<number, ValidateFunction>();
const compiledFull = new Map<number, ValidateFunction>();

/**
 * The compiled ajv validator for schema `i` (compiled on first use, then cached). `fast` stops at
 * the first error and also checks list-type uniqueness (see fast-path.ts): the common, valid case.
 * `full` collects every schema error, for reports, and is compiled only when a document fails the
 * fast one; it alone decides validity then.
 */
export function ajvValidator(i: number, mode: "fast" | "full" = "full"): ValidateFunction {
  const cache = mode === "fast" ? compiledFast : compiledFull;
  let fn = cache.get(i);
  if (fn === undefined) {
    const structural = structuralSchema(i);
    const reporting = toAjvSchema(structural, true);
    fn = ajv(mode === "full").compile(
      mode === "fast" ? toFastSchema(reporting, structural) : reporting,
    );
    cache.set(i, fn);
  }
  return fn;
}

export type { ErrorObject };
