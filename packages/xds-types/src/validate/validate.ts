// validate(): the API server's custom-resource pipeline, offline, plus Istio's webhook checks.
//   1. apiVersion/kind → CRD in the chosen schema set; unknown or unserved version → issue
//   2. structural defaults            (structuraldefaulting.Default)
//   3. OpenAPI schema with ajv, unknown fields rejected (validation + pruning)
//   4. x-kubernetes-list-type set/map uniqueness (listtype.ValidateListSetsAndMaps)
//   5. every x-kubernetes-validations CEL rule with `self` bound to its node (transition rules skipped)
//   6. metadata: name/generateName (DNS-1123 subdomain), namespace, labels, annotations
//   7. Istio webhook checks (AuthorizationPolicy, PeerAuthentication, RequestAuthentication),
//      only when 1-6 found no error: the API server never calls the webhook for a rejected object.
import { checkIstioSemantics, SEMANTIC_KINDS } from "./istio-semantics.js";
import { checkMetadata, type InternalIssue } from "./metadata.js";
import { ajvValidator, familyOf, lookupKind, schemaSetIds, structuralSchema } from "./registry.js";
import { schemaIssues } from "./schema-errors.js";
import { applyDefaults, checkRules, resetCelMemo } from "./structural.js";
import type { ValidateOptions, ValidationResult } from "./types.js";

export interface InternalResult extends Omit<ValidationResult, "issues"> {
  issues: InternalIssue[];
}

/** Same as {@link validate}, but issues keep their path segments (for positions). */
export function validateInternal(doc: unknown, options: ValidateOptions = {}): InternalResult {
  const issues: InternalIssue[] = [];
  const done = (ident?: Partial<InternalResult>): InternalResult => {
    let valid = true;
    for (const i of issues) if (i.severity === "error") valid = false;
    const r: InternalResult = { valid, skipped: false, issues };
    if (ident?.apiVersion !== undefined) r.apiVersion = ident.apiVersion;
    if (ident?.kind !== undefined) r.kind = ident.kind;
    if (ident?.name !== undefined) r.name = ident.name;
    if (ident?.namespace !== undefined) r.namespace = ident.namespace;
    return r;
  };
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    issues.push({
      code: "document/not-object",
      severity: "error",
      path: "",
      message: `document must be a mapping with apiVersion and kind, found ${doc === null ? "null" : Array.isArray(doc) ? "a sequence" : typeof doc}`,
      segs: [],
    });
    return done();
  }
  const d = doc as Record<string, unknown>;
  const { apiVersion, kind } = d;
  const meta =
    typeof d.metadata === "object" && d.metadata !== null
      ? (d.metadata as Record<string, unknown>)
      : {};
  const ident: Partial<InternalResult> = {};
  if (typeof apiVersion === "string") ident.apiVersion = apiVersion;
  if (typeof kind === "string") ident.kind = kind;
  if (typeof meta.name === "string") ident.name = meta.name;
  if (typeof meta.namespace === "string") ident.namespace = meta.namespace;
  if (
    typeof apiVersion !== "string" ||
    apiVersion === "" ||
    typeof kind !== "string" ||
    kind === ""
  ) {
    const missing = typeof apiVersion !== "string" || apiVersion === "" ? "apiVersion" : "kind";
    issues.push({
      code: "document/missing-type",
      severity: "error",
      path: missing,
      message: `${missing}: Required value: every document needs apiVersion and kind`,
      segs: [missing],
    });
    return done(ident);
  }
  const slash = apiVersion.lastIndexOf("/");
  const group = slash >= 0 ? apiVersion.slice(0, slash) : "";
  const version = slash >= 0 ? apiVersion.slice(slash + 1) : apiVersion;
  const family = familyOf(group);
  const istio = options.istio ?? "1.30";
  const gatewayApi = options.gatewayApi ?? "experimental";
  if (family === undefined) {
    if (options.strict === true) {
      issues.push({
        code: "kind/unknown",
        severity: "error",
        path: "kind",
        message: `kind ${kind} (${apiVersion}) is not an Istio or Gateway API kind; --strict rejects kinds it cannot validate`,
        segs: ["kind"],
      });
      return done(ident);
    }
    return { valid: true, skipped: true, ...ident, issues };
  }
  const set = family === "istio" ? `Istio ${istio}` : `Gateway API ${gatewayApi}`;
  if (
    !schemaSetIds().includes(family === "istio" ? `istio/${istio}` : `gateway-api/${gatewayApi}`)
  ) {
    issues.push({
      code: "kind/unknown",
      severity: "error",
      path: "",
      message: `no ${set} CRDs in this build of @ambientkit/xds-types (available: ${schemaSetIds().join(", ")})`,
      segs: [],
    });
    return done(ident);
  }
  const crd = lookupKind(family, group, kind, istio, gatewayApi);
  if (crd === undefined) {
    issues.push({
      code: "kind/unknown",
      severity: "error",
      path: "kind",
      message: `no matches for kind "${kind}" in group "${group}" (${set} CRDs)`,
      segs: ["kind"],
    });
    return done(ident);
  }
  const ver = crd.versions.find((v) => v.name === version);
  if (ver === undefined || !ver.served) {
    const served = crd.versions.filter((v) => v.served).map((v) => `${group}/${v.name}`);
    issues.push({
      code: ver === undefined ? "version/unknown" : "version/unserved",
      severity: "error",
      path: "apiVersion",
      message: `no matches for kind "${kind}" in version "${apiVersion}" (${ver === undefined ? "unknown" : "not served"} in the ${set} CRDs; served: ${served.join(", ")})`,
      segs: ["apiVersion"],
    });
    return done(ident);
  }
  if (ver.deprecated === true) {
    issues.push({
      code: "version/deprecated",
      severity: "warning",
      path: "apiVersion",
      message: ver.deprecationWarning ?? `${apiVersion} ${kind} is deprecated`,
      segs: ["apiVersion"],
    });
  }
  const schema = structuralSchema(ver.schema);
  const defaulted = applyDefaults(schema, d);
  let schemaFailed = false;
  if (!ajvValidator(ver.schema, "fast")(defaulted)) {
    schemaFailed = true;
    const full = ajvValidator(ver.schema, "full");
    full(defaulted);
    issues.push(...schemaIssues(full.errors ?? [], defaulted));
  }
  resetCelMemo();
  checkRules(schema, defaulted, [], issues, schemaFailed, options.cel !== false);
  checkMetadata(d.metadata, crd.namespaced, issues);
  if (
    family === "istio" &&
    options.semantic !== false &&
    SEMANTIC_KINDS.has(kind) &&
    !issues.some((i) => i.severity === "error")
  ) {
    checkIstioSemantics(kind, d, issues);
  }
  return done(ident);
}

/**
 * Validates one parsed manifest (a plain object from YAML or JSON) as the Kubernetes API server
 * plus Istio's webhook would on create. Never throws: every problem is an issue.
 */
export function validate(doc: unknown, options: ValidateOptions = {}): ValidationResult {
  const r = validateInternal(doc, options);
  if (r.issues.length === 0) return r;
  return { ...r, issues: r.issues.map(({ segs: _segs, ...issue }) => issue) };
}
