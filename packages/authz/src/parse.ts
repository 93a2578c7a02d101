import {
  formatIssuePath,
  type Issue,
  type Result,
  issuePathSegments as segmentsOf,
} from "@ambientkit/xds-types";
import { AuthzError } from "./errors.js";
import { OPERATION_FIELDS, SOURCE_FIELDS } from "./fields.js";
import { checkPath, show } from "./guards.js";
import type {
  AuthorizationPolicy,
  AuthorizationPolicySpec,
  Condition,
  MtlsMode,
  Operation,
  PeerAuthentication,
  PolicyAction,
  PolicyResource,
  PolicyTargetReference,
  Rule,
  Source,
  WorkloadSelector,
} from "./types.js";

/** Code of every {@link parsePolicyResource} issue: the object is not a well-formed policy. */
export type PolicyIssueCode = "policy/invalid";

/** A problem found in input, as a value: the shared issue shape of every ambientkit package. */
export type { Issue };

/** Result of a fallible parse: the value when there were no errors, and every issue found. */
export type ParseResult<T> = Result<T, PolicyIssueCode>;

type Path = (string | number)[];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

class Ctx {
  readonly issues: Issue<PolicyIssueCode>[] = [];
  error(path: Path, message: string): void {
    const at = formatIssuePath(path);
    this.issues.push({
      code: "policy/invalid",
      severity: "error",
      path: at,
      message: `${at}: ${message}`,
    });
  }
  strings(v: unknown, path: Path): string[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) {
      this.error(path, "must be a list of strings");
      return undefined;
    }
    const out: string[] = [];
    v.forEach((item, i) => {
      if (typeof item === "string") out.push(item);
      else
        this.error(
          [...path, i],
          `must be a string, got ${show(item)} (the CRD schema types this as string: quote it)`,
        );
    });
    return out;
  }
  string(v: unknown, path: Path): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") {
      this.error(path, `must be a string, got ${show(v)}`);
      return undefined;
    }
    return v;
  }
  labels(v: unknown, path: Path): Record<string, string> {
    // No prototype: `__proto__` or `constructor` are label keys like any other, never dropped.
    const out = Object.create(null) as Record<string, string>;
    if (v === undefined || v === null) return out;
    if (!isRecord(v)) {
      this.error(path, "must be a map of strings");
      return out;
    }
    for (const [k, val] of Object.entries(v)) {
      if (typeof val === "string") out[k] = val;
      else if (typeof val === "number" || typeof val === "boolean") out[k] = String(val);
      else this.error([...path, k], "must be a string");
    }
    return out;
  }
}

function parseSelector(ctx: Ctx, v: unknown, path: Path): WorkloadSelector | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) {
    ctx.error(path, "must be an object with matchLabels");
    return undefined;
  }
  return { matchLabels: ctx.labels(v.matchLabels, [...path, "matchLabels"]) };
}

function parseTargetRef(ctx: Ctx, v: unknown, path: Path): PolicyTargetReference | undefined {
  if (!isRecord(v)) {
    ctx.error(path, "must be an object {group, kind, name}");
    return undefined;
  }
  const ref: PolicyTargetReference = {
    kind: ctx.string(v.kind, [...path, "kind"]) ?? "",
    name: ctx.string(v.name, [...path, "name"]) ?? "",
  };
  const group = ctx.string(v.group, [...path, "group"]);
  if (group !== undefined) ref.group = group;
  const ns = ctx.string(v.namespace, [...path, "namespace"]);
  if (ns !== undefined) ref.namespace = ns;
  return ref;
}

function parseRule(ctx: Ctx, v: unknown, path: Path): Rule | null {
  if (v === null || v === undefined) return null;
  if (!isRecord(v)) {
    ctx.error(path, "must be an object {from, to, when}");
    return null;
  }
  const rule: Rule = {};
  if (v.from !== undefined && v.from !== null) {
    if (!Array.isArray(v.from)) ctx.error([...path, "from"], "must be a list");
    else {
      rule.from = v.from.map((f, i) => {
        const p = [...path, "from", i];
        if (!isRecord(f) || f.source === undefined || f.source === null) return {};
        if (!isRecord(f.source)) {
          ctx.error([...p, "source"], "must be an object");
          return {};
        }
        const src: Source = {};
        for (const k of SOURCE_FIELDS) {
          const list = ctx.strings(f.source[k], [...p, "source", k]);
          if (list !== undefined) src[k] = list;
        }
        return { source: src };
      });
    }
  }
  if (v.to !== undefined && v.to !== null) {
    if (!Array.isArray(v.to)) ctx.error([...path, "to"], "must be a list");
    else {
      rule.to = v.to.map((t, i) => {
        const p = [...path, "to", i];
        if (!isRecord(t) || t.operation === undefined || t.operation === null) return {};
        if (!isRecord(t.operation)) {
          ctx.error([...p, "operation"], "must be an object");
          return {};
        }
        const op: Operation = {};
        for (const k of OPERATION_FIELDS) {
          const list = ctx.strings(t.operation[k], [...p, "operation", k]);
          if (list !== undefined) op[k] = list;
        }
        return { operation: op };
      });
    }
  }
  if (v.when !== undefined && v.when !== null) {
    if (!Array.isArray(v.when)) ctx.error([...path, "when"], "must be a list");
    else {
      rule.when = v.when.map((w, i) => {
        const p = [...path, "when", i];
        if (!isRecord(w)) {
          ctx.error(p, "must be an object {key, values, notValues}");
          return { key: "" };
        }
        const c: Condition = { key: ctx.string(w.key, [...p, "key"]) ?? "" };
        const values = ctx.strings(w.values, [...p, "values"]);
        if (values !== undefined) c.values = values;
        const notValues = ctx.strings(w.notValues, [...p, "notValues"]);
        if (notValues !== undefined) c.notValues = notValues;
        return c;
      });
    }
  }
  return rule;
}

const ACTIONS: readonly PolicyAction[] = ["ALLOW", "DENY", "AUDIT", "CUSTOM"];
const MODES: readonly MtlsMode[] = ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"];

function parseMeta(
  ctx: Ctx,
  obj: Record<string, unknown>,
  path: Path,
): { name: string; namespace: string; annotations: Record<string, string>; ts?: string } {
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  if (!isRecord(obj.metadata)) ctx.error([...path, "metadata"], "is required (name, namespace)");
  const name = ctx.string(meta.name, [...path, "metadata", "name"]);
  if (!name) ctx.error([...path, "metadata", "name"], "is required");
  const namespace = ctx.string(meta.namespace, [...path, "metadata", "namespace"]);
  if (!namespace)
    ctx.error(
      [...path, "metadata", "namespace"],
      "is required (policies are namespaced; the namespace decides where they apply)",
    );
  const out: { name: string; namespace: string; annotations: Record<string, string>; ts?: string } =
    {
      name: name ?? "",
      namespace: namespace ?? "",
      annotations: ctx.labels(meta.annotations, [...path, "metadata", "annotations"]),
    };
  const ts = meta.creationTimestamp;
  if (typeof ts === "string") out.ts = ts;
  else if (ts instanceof Date) out.ts = ts.toISOString();
  return out;
}

/**
 * Parses one Kubernetes object (plain data, e.g. from YAML) into an AuthorizationPolicy or
 * PeerAuthentication (security.istio.io v1 or v1beta1). Structural problems (wrong types, missing
 * name/namespace, unknown kind) are returned as issues; Istio's semantic rules are checked by
 * `validateAuthorizationPolicy`.
 */
export function parsePolicyResource(obj: unknown, path: Path = []): ParseResult<PolicyResource> {
  checkPath(path);
  const ctx = new Ctx();
  if (!isRecord(obj)) {
    ctx.error(path, "must be a Kubernetes object (apiVersion, kind, metadata, spec)");
    return { ok: false, issues: ctx.issues };
  }
  const apiVersion = obj.apiVersion;
  if (
    apiVersion !== undefined &&
    apiVersion !== "security.istio.io/v1" &&
    apiVersion !== "security.istio.io/v1beta1"
  ) {
    ctx.error(
      [...path, "apiVersion"],
      `unsupported apiVersion ${show(apiVersion)}: expected security.istio.io/v1 or v1beta1`,
    );
  }
  const spec = obj.spec === undefined || obj.spec === null ? {} : obj.spec;
  if (!isRecord(spec)) {
    ctx.error([...path, "spec"], "must be an object");
    return { ok: false, issues: ctx.issues };
  }
  const sp: Path = [...path, "spec"];
  if (obj.kind === "AuthorizationPolicy") {
    const meta = parseMeta(ctx, obj, path);
    const rawAction = spec.action ?? "ALLOW";
    let action: PolicyAction = "ALLOW";
    if (typeof rawAction === "string" && (ACTIONS as readonly string[]).includes(rawAction))
      action = rawAction as PolicyAction;
    else
      ctx.error(
        [...sp, "action"],
        `unknown action ${show(rawAction)}: one of ALLOW, DENY, AUDIT, CUSTOM`,
      );
    const s: AuthorizationPolicySpec = { action };
    const selector = parseSelector(ctx, spec.selector, [...sp, "selector"]);
    if (selector) s.selector = selector;
    if (spec.targetRef !== undefined && spec.targetRef !== null) {
      const r = parseTargetRef(ctx, spec.targetRef, [...sp, "targetRef"]);
      if (r) s.targetRef = r;
    }
    if (spec.targetRefs !== undefined && spec.targetRefs !== null) {
      if (!Array.isArray(spec.targetRefs)) ctx.error([...sp, "targetRefs"], "must be a list");
      else {
        s.targetRefs = [];
        spec.targetRefs.forEach((r, i) => {
          const ref = parseTargetRef(ctx, r, [...sp, "targetRefs", i]);
          if (ref) s.targetRefs?.push(ref);
        });
      }
    }
    if (spec.provider !== undefined && spec.provider !== null) {
      const p = isRecord(spec.provider) ? spec.provider : {};
      s.provider = { name: ctx.string(p.name, [...sp, "provider", "name"]) ?? "" };
    }
    if (spec.rules !== undefined && spec.rules !== null) {
      if (!Array.isArray(spec.rules)) ctx.error([...sp, "rules"], "must be a list");
      else s.rules = spec.rules.map((r, i) => parseRule(ctx, r, [...sp, "rules", i]));
    }
    const policy: AuthorizationPolicy = {
      kind: "AuthorizationPolicy",
      name: meta.name,
      namespace: meta.namespace,
      annotations: meta.annotations,
      spec: s,
    };
    if (meta.ts !== undefined) policy.creationTimestamp = meta.ts;
    return ctx.issues.some((i) => i.severity === "error")
      ? { ok: false, issues: ctx.issues }
      : { ok: true, value: policy, issues: ctx.issues };
  }
  if (obj.kind === "PeerAuthentication") {
    const meta = parseMeta(ctx, obj, path);
    const pa: PeerAuthentication = {
      kind: "PeerAuthentication",
      name: meta.name,
      namespace: meta.namespace,
      spec: {},
    };
    if (meta.ts !== undefined) pa.creationTimestamp = meta.ts;
    const selector = parseSelector(ctx, spec.selector, [...sp, "selector"]);
    if (selector) pa.spec.selector = selector;
    const mode = (v: unknown, p: Path): MtlsMode | undefined => {
      if (!isRecord(v)) return undefined;
      const m = v.mode ?? "UNSET";
      if (typeof m === "string" && (MODES as readonly string[]).includes(m)) return m as MtlsMode;
      ctx.error([...p, "mode"], `unknown mTLS mode ${show(m)}`);
      return undefined;
    };
    const m = mode(spec.mtls, [...sp, "mtls"]);
    if (m) pa.spec.mtls = { mode: m };
    if (isRecord(spec.portLevelMtls)) {
      const ports = Object.create(null) as Record<string, { mode: MtlsMode }>;
      for (const [port, v] of Object.entries(spec.portLevelMtls)) {
        const pm = mode(v, [...sp, "portLevelMtls", port]);
        if (pm) ports[port] = { mode: pm };
      }
      pa.spec.portLevelMtls = ports;
    }
    return ctx.issues.some((i) => i.severity === "error")
      ? { ok: false, issues: ctx.issues }
      : { ok: true, value: pa, issues: ctx.issues };
  }
  ctx.error(
    [...path, "kind"],
    `unsupported kind ${show(obj.kind)}: expected AuthorizationPolicy or PeerAuthentication`,
  );
  return { ok: false, issues: ctx.issues };
}

/**
 * The segments of an issue path (`spec.rules[0].from` → `["spec", "rules", 0, "from"]`), to find
 * the node an issue is about; a quoted key (`matchLabels["app.kubernetes.io/name"]`) stays whole.
 * (xds-types' `issuePathSegments`, with a typed error for what is not a string.)
 */
export function issuePathSegments(path: string): (string | number)[] {
  if (typeof path !== "string")
    throw new AuthzError("ERR_AUTHZ_INVALID_INPUT", "an issue path must be a string");
  return segmentsOf(path);
}

export { formatIssuePath, isRecord };
