// validate(): the API server's custom-resource pipeline, offline, plus Istio's webhook checks.
//   1. apiVersion/kind → CRD in the chosen schema set; unknown or unserved version → issue
//   2. structural defaults            (structuraldefaulting.Default)
//   3. OpenAPI schema with ajv, unknown fields rejected (validation + pruning)
//   4. x-kubernetes-list-type set/map uniqueness (listtype.ValidateListSetsAndMaps)
//   5. every x-kubernetes-validations CEL rule with `self` bound to its node (transition rules skipped)
//   6. metadata: name/generateName (DNS-1123 subdomain), namespace, labels, annotations
//   7. Istio webhook checks (security kinds in istio-semantics.ts, every other Istio kind in
//      webhook/), only when 1-6 found no error: the API server never calls the webhook for a
//      rejected object.

import { SECURITY_KINDS } from "@ambientkit/authz";
import type { ValidateFunction } from "ajv";
import { checkIstioSemantics } from "./istio-semantics.js";
import { checkMetadata } from "./metadata.js";
import type { InternalIssue } from "./model.js";
import { ajvValidator, familyOf, lookupKind, schemaSetIds, structuralSchema } from "./registry.js";
import { schemaIssues } from "./schema-errors.js";
import { applyDefaults, checkRules, resetCelMemo } from "./structural.js";
import type {
  DocumentIdentity,
  GatewayApiChannel,
  IstioVersion,
  ValidateOptions,
  ValidationIssue,
  ValidationResult,
} from "./types.js";
import { checkWebhook, WEBHOOK_KINDS } from "./webhook/index.js";

/** A {@link ValidationResult} whose issues keep their path segments. */
export type InternalResult = (
  | { ok: true; value: unknown; issues: InternalIssue[] }
  | { ok: false; value?: undefined; issues: InternalIssue[] }
) &
  DocumentIdentity;

/** What an apiVersion/kind resolves to in one pair of schema sets (cached: the same few repeat). */
interface Target {
  family: "istio" | "gateway-api";
  namespaced: boolean;
  /** Schema index, or undefined when the kind/version cannot be validated (see issues). */
  schema: number | undefined;
  /** Issues every document of this apiVersion/kind gets (unknown kind, deprecated version…). */
  issues: readonly InternalIssue[];
  fast?: ValidateFunction;
}

const SKIP = 0;
type Targets = Map<string, Map<string, Target | typeof SKIP>>;
const targets: Record<IstioVersion, Record<GatewayApiChannel, Targets>> = {
  "1.30": { standard: new Map(), experimental: new Map() },
  master: { standard: new Map(), experimental: new Map() },
};

/** Step 1 of the pipeline, memoised per (schema sets, apiVersion, kind). */
function resolve(
  apiVersion: string,
  kind: string,
  istio: IstioVersion,
  gatewayApi: GatewayApiChannel,
): Target | typeof SKIP {
  // Options arrive from JavaScript callers unchecked: an unknown set is resolved, not cached
  // (and never looked up on Object.prototype).
  const bySet = Object.hasOwn(targets, istio) ? targets[istio] : undefined;
  const byVersion = bySet && Object.hasOwn(bySet, gatewayApi) ? bySet[gatewayApi] : undefined;
  if (byVersion === undefined) return resolveUncached(apiVersion, kind, istio, gatewayApi);
  let byKind = byVersion.get(apiVersion);
  if (byKind === undefined) {
    byKind = new Map();
    if (byVersion.size < 256) byVersion.set(apiVersion, byKind);
  }
  let target = byKind.get(kind);
  if (target === undefined) {
    target = resolveUncached(apiVersion, kind, istio, gatewayApi);
    // Bounded: arbitrary input must not grow the cache without limit.
    if (byKind.size < 64) byKind.set(kind, target);
  }
  return target;
}

function resolveUncached(
  apiVersion: string,
  kind: string,
  istio: IstioVersion,
  gatewayApi: GatewayApiChannel,
): Target | typeof SKIP {
  const slash = apiVersion.lastIndexOf("/");
  const group = slash >= 0 ? apiVersion.slice(0, slash) : "";
  const version = slash >= 0 ? apiVersion.slice(slash + 1) : apiVersion;
  const family = familyOf(group);
  if (family === undefined) return SKIP;
  const set = family === "istio" ? `Istio ${istio}` : `Gateway API ${gatewayApi}`;
  const fail = (issue: InternalIssue): Target => ({
    family,
    namespaced: true,
    schema: undefined,
    issues: [issue],
  });
  if (
    !schemaSetIds().includes(family === "istio" ? `istio/${istio}` : `gateway-api/${gatewayApi}`)
  ) {
    return fail({
      code: "kind/unknown",
      severity: "error",
      path: "",
      message: `no ${set} CRDs in this build of @ambientkit/crds (available: ${schemaSetIds().join(", ")})`,
      segs: [],
    });
  }
  const crd = lookupKind(family, group, kind, istio, gatewayApi);
  if (crd === undefined) {
    return fail({
      code: "kind/unknown",
      severity: "error",
      path: "kind",
      message: `no matches for kind "${kind}" in group "${group}" (${set} CRDs)`,
      segs: ["kind"],
    });
  }
  const ver = crd.versions.find((v) => v.name === version);
  if (ver === undefined || !ver.served) {
    const served = crd.versions.filter((v) => v.served).map((v) => `${group}/${v.name}`);
    return fail({
      code: ver === undefined ? "version/unknown" : "version/unserved",
      severity: "error",
      path: "apiVersion",
      message: `no matches for kind "${kind}" in version "${apiVersion}" (${ver === undefined ? "unknown" : "not served"} in the ${set} CRDs; served: ${served.join(", ")})`,
      segs: ["apiVersion"],
    });
  }
  const issues: InternalIssue[] = [];
  if (ver.deprecated === true) {
    issues.push({
      code: "version/deprecated",
      severity: "warning",
      path: "apiVersion",
      message: ver.deprecationWarning ?? `${apiVersion} ${kind} is deprecated`,
      segs: ["apiVersion"],
    });
  }
  return { family, namespaced: crd.namespaced, schema: ver.schema, issues };
}

/** The result, identified by apiVersion, kind, name and namespace where they are strings. */
function result(
  apiVersion: unknown,
  kind: unknown,
  meta: unknown,
  issues: InternalIssue[],
  value?: unknown,
  skipped = false,
): InternalResult {
  let ok = true;
  for (const i of issues) if (i.severity === "error") ok = false;
  const r: InternalResult = ok ? { ok, value, skipped, issues } : { ok, skipped, issues };
  if (typeof apiVersion === "string") r.apiVersion = apiVersion;
  if (typeof kind === "string") r.kind = kind;
  if (typeof meta === "object" && meta !== null) {
    const { name, namespace } = meta as Record<string, unknown>;
    if (typeof name === "string") r.name = name;
    if (typeof namespace === "string") r.namespace = namespace;
  }
  return r;
}

const NO_OPTIONS: ValidateOptions = {};

/** Same as {@link validate}, but issues keep their path segments (for positions). */
export function validateInternal(
  doc: unknown,
  options: ValidateOptions = NO_OPTIONS,
): InternalResult {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return result(undefined, undefined, undefined, [
      {
        code: "document/not-object",
        severity: "error",
        path: "",
        message: `document must be a mapping with apiVersion and kind, found ${doc === null ? "null" : Array.isArray(doc) ? "a sequence" : typeof doc}`,
        segs: [],
      },
    ]);
  }
  // Read once: documents come in many shapes, so every property read here is a slow lookup.
  const d = doc as Record<string, unknown>;
  const { apiVersion, kind, metadata } = d;
  if (
    typeof apiVersion !== "string" ||
    apiVersion === "" ||
    typeof kind !== "string" ||
    kind === ""
  ) {
    const missing = typeof apiVersion !== "string" || apiVersion === "" ? "apiVersion" : "kind";
    return result(apiVersion, kind, metadata, [
      {
        code: "document/missing-type",
        severity: "error",
        path: missing,
        message: `${missing}: Required value: every document needs apiVersion and kind`,
        segs: [missing],
      },
    ]);
  }
  const target = resolve(
    apiVersion,
    kind,
    options.istio ?? "1.30",
    options.gatewayApi ?? "experimental",
  );
  if (target === SKIP) {
    if (options.strict === true) {
      return result(apiVersion, kind, metadata, [
        {
          code: "kind/unknown",
          severity: "error",
          path: "kind",
          message: `kind ${kind} (${apiVersion}) is not an Istio or Gateway API kind; --strict rejects kinds it cannot validate`,
          segs: ["kind"],
        },
      ]);
    }
    return result(apiVersion, kind, metadata, [], doc, true);
  }
  const issues: InternalIssue[] =
    target.issues.length === 0
      ? []
      : target.issues.map((issue) => ({ ...issue, segs: [...(issue.segs ?? [])] }));
  if (target.schema === undefined) return result(apiVersion, kind, metadata, issues);
  const schema = structuralSchema(target.schema);
  const defaulted = applyDefaults(schema, d);
  let schemaFailed = false;
  target.fast ??= ajvValidator(target.schema, "fast");
  const fastPassed = target.fast(defaulted);
  if (!fastPassed) {
    // The first-error validator may be stricter than the schema; the reporting one decides.
    const full = ajvValidator(target.schema, "full");
    schemaFailed = !full(defaulted);
    if (schemaFailed) issues.push(...schemaIssues(full.errors ?? [], defaulted));
  }
  const evalCel = options.cel !== false;
  if (evalCel || !fastPassed) {
    resetCelMemo();
    // List uniqueness was part of the fast path: walk for it only when that path failed.
    checkRules(schema, defaulted, [], issues, schemaFailed, evalCel, !fastPassed);
  }
  checkMetadata(metadata, target.namespaced, issues);
  if (
    target.family === "istio" &&
    options.semantic !== false &&
    !issues.some((i) => i.severity === "error")
  ) {
    if (SECURITY_KINDS.has(kind)) checkIstioSemantics(kind, d, issues);
    else if (WEBHOOK_KINDS.has(kind)) checkWebhook(kind, d, issues);
  }
  return result(apiVersion, kind, metadata, issues, defaulted);
}

/**
 * Validates one parsed manifest (a plain object from YAML or JSON) as the Kubernetes API server
 * plus Istio's webhook would on create. Never throws: every problem is an issue.
 */
export function validate(doc: unknown, options: ValidateOptions = NO_OPTIONS): ValidationResult {
  const r = validateInternal(doc, options);
  if (r.issues.length === 0) return r;
  const issues: ValidationIssue[] = [];
  for (const i of r.issues) {
    const out: ValidationIssue = {
      code: i.code,
      severity: i.severity,
      path: i.path,
      message: i.message,
    };
    if (i.line !== undefined) out.line = i.line;
    if (i.column !== undefined) out.column = i.column;
    issues.push(out);
  }
  r.issues = issues;
  return r;
}
