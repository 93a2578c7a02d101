/**
 * Policy test cases (the `ambientkit authz test` format, also used by the shared conformance file):
 * `cases:` decide one connection/request each, `validationCases:` validate one policy each. Takes
 * already-parsed YAML/JSON data; problems in the data are returned as issues with their path.
 */
import type { Result } from "@ambientkit/xds-types";
import { compilePolicies } from "./engine.js";
import { AuthzError } from "./errors.js";
import { checkPath, Guard } from "./guards.js";
import { parseIp } from "./ip.js";
import { formatIssuePath, type Issue, isRecord, parsePolicyResource } from "./parse.js";
import type {
  ConnectionAttributes,
  CustomProviderDecision,
  Decision,
  DecisionInput,
  Enforcement,
  HttpRequestAttributes,
  MeshSettings,
  PolicyResource,
  ServiceTarget,
  WaypointTarget,
  WorkloadTarget,
} from "./types.js";
import { validateAuthorizationPolicy } from "./validate.js";

type Path = (string | number)[];

/** An input problem of a case file: the shared issue shape, code `case/invalid`. */
function caseIssue(path: Path, message: string): Issue {
  return { code: "case/invalid", severity: "error", path: formatIssuePath(path), message };
}

/** A decision case, parsed. */
export interface DecisionCase {
  id: string;
  title?: string;
  mesh: MeshSettings;
  policies: PolicyResource[];
  input: DecisionInput;
  expect: { decision?: "allow" | "deny"; decidedBy?: string; rule?: number };
}

/** Outcome of one case. */
export interface CaseResult {
  id: string;
  kind: "decision" | "validation";
  passed: boolean;
  expected: Record<string, unknown>;
  got: Record<string, unknown>;
  /** Why: the decision's explanation, or the validation messages. */
  explanation: string[];
  decision?: Decision;
}

/** Outcome of a whole case file. `issues` are input problems (cases that could not run). */
export interface CaseFileReport {
  passed: number;
  failed: number;
  results: CaseResult[];
  issues: Issue[];
}

class Reader {
  readonly issues: Issue[] = [];
  err(path: Path, message: string): void {
    this.issues.push(caseIssue(path, message));
  }
  obj(v: unknown, path: Path, what: string): Record<string, unknown> | undefined {
    if (isRecord(v)) return v;
    this.err(path, `${what} must be a mapping`);
    return undefined;
  }
  str(o: Record<string, unknown>, k: string, path: Path, required = true): string | undefined {
    const v = o[k];
    if (v === undefined || v === null) {
      if (required) this.err([...path, k], `${k} is required`);
      return undefined;
    }
    if (typeof v !== "string") {
      this.err([...path, k], `${k} must be a string`);
      return undefined;
    }
    return v;
  }
  port(o: Record<string, unknown>, k: string, path: Path, required = true): number | undefined {
    const v = o[k];
    if (v === undefined || v === null) {
      if (required) this.err([...path, k], `${k} is required`);
      return undefined;
    }
    const n = typeof v === "string" && /^[0-9]+$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 65535) {
      this.err([...path, k], `${k} must be a port number 0-65535`);
      return undefined;
    }
    return n;
  }
  labels(v: unknown, path: Path): Record<string, string> {
    // No prototype: a `__proto__` or `constructor` label is data, not a prototype change.
    const out = Object.create(null) as Record<string, string>;
    if (v === undefined || v === null) return out;
    const o = this.obj(v, path, "labels");
    for (const [k, val] of Object.entries(o ?? {})) {
      if (typeof val === "string" || typeof val === "number" || typeof val === "boolean")
        out[k] = String(val);
      else this.err([...path, k], "label value must be a string");
    }
    return out;
  }
  /** A socket address; anything else would be read as "matches no range", so it is refused. */
  ip(o: Record<string, unknown>, k: string, path: Path): string | undefined {
    const v = this.str(o, k, path);
    if (v !== undefined && parseIp(v) === undefined) {
      this.err([...path, k], `${k} must be an IP address, got ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  }
}

function readMesh(r: Reader, v: unknown, path: Path): MeshSettings {
  const o = v === undefined || v === null ? {} : (r.obj(v, path, "mesh") ?? {});
  const aliases = o.trustDomainAliases;
  const mesh: MeshSettings = {
    rootNamespace: r.str(o, "rootNamespace", path, false) ?? "istio-system",
    trustDomain: r.str(o, "trustDomain", path, false) ?? "cluster.local",
    trustDomainAliases: [],
  };
  if (aliases !== undefined && aliases !== null) {
    if (!Array.isArray(aliases) || aliases.some((a) => typeof a !== "string"))
      r.err([...path, "trustDomainAliases"], "trustDomainAliases must be a list of strings");
    else mesh.trustDomainAliases = aliases as string[];
  }
  const pn = r.str(o, "pathNormalization", path, false);
  if (pn !== undefined) {
    if (["BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES", "NONE"].includes(pn))
      mesh.pathNormalization = pn as NonNullable<MeshSettings["pathNormalization"]>;
    else
      r.err(
        [...path, "pathNormalization"],
        "pathNormalization must be BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES or NONE",
      );
  }
  if (typeof o.ambientEnableDryRun === "boolean") mesh.ambientEnableDryRun = o.ambientEnableDryRun;
  if (typeof o.autoAllowWaypointPolicy === "boolean")
    mesh.autoAllowWaypointPolicy = o.autoAllowWaypointPolicy;
  if (typeof o.enableMultipleCustomAuthzProviders === "boolean")
    mesh.enableMultipleCustomAuthzProviders = o.enableMultipleCustomAuthzProviders;
  return mesh;
}

function readPolicies(r: Reader, v: unknown, path: Path): PolicyResource[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    r.err(path, "policies must be a list of AuthorizationPolicy/PeerAuthentication objects");
    return [];
  }
  const out: PolicyResource[] = [];
  v.forEach((p, i) => {
    const res = parsePolicyResource(p, [...path, i]);
    for (const issue of res.issues) if (issue.severity === "error") r.issues.push(issue);
    if (res.ok) out.push(res.value);
  });
  return out;
}

/** Parses the decision-relevant fields of a case (also used by `authz check --case`). */
export function parseDecisionCase(v: unknown, path: Path = []): Result<DecisionCase> {
  checkPath(path);
  const r = new Reader();
  const o = r.obj(v, path, "case");
  if (!o) return { ok: false, issues: r.issues };
  const id = r.str(o, "id", path, false) ?? `case ${String(path.at(-1) ?? "")}`;
  const enf = o.enforcement;
  if (enf !== "ztunnel" && enf !== "waypoint")
    r.err([...path, "enforcement"], "enforcement must be ztunnel or waypoint");
  const enforcement: Enforcement = enf === "waypoint" ? "waypoint" : "ztunnel";
  const mesh = readMesh(r, o.mesh, [...path, "mesh"]);
  const policies = readPolicies(r, o.policies, [...path, "policies"]);
  const wp = [...path, "workload"];
  const wo = r.obj(o.workload ?? {}, wp, "workload") ?? {};
  const workload: WorkloadTarget = {
    namespace: r.str(wo, "namespace", wp) ?? "",
    labels: r.labels(wo.labels, [...wp, "labels"]),
  };
  const sa = r.str(wo, "serviceAccount", wp, false);
  if (sa !== undefined) workload.serviceAccount = sa;
  const ip = r.str(wo, "ip", wp, false);
  if (ip !== undefined) workload.ip = ip;
  const cp = [...path, "connection"];
  const co = r.obj(o.connection, cp, "connection") ?? {};
  const sp = co.sourcePrincipal;
  if (sp !== null && sp !== undefined && typeof sp !== "string")
    r.err([...cp, "sourcePrincipal"], "sourcePrincipal must be a SPIFFE URI string or null");
  if (typeof sp === "string" && !sp.startsWith("spiffe://"))
    r.err(
      [...cp, "sourcePrincipal"],
      "sourcePrincipal must be a full SPIFFE URI (spiffe://<td>/ns/<ns>/sa/<sa>) or null",
    );
  const connection: ConnectionAttributes = {
    sourcePrincipal: typeof sp === "string" ? sp : null,
    sourceIp: r.ip(co, "sourceIp", cp) ?? "",
    destinationIp: r.ip(co, "destinationIp", cp) ?? "",
    destinationPort: r.port(co, "destinationPort", cp) ?? 0,
  };
  const sni = r.str(co, "sni", cp, false);
  if (sni !== undefined) connection.sni = sni;
  const input: DecisionInput = { enforcement, workload, connection };
  if (o.waypoint !== undefined && o.waypoint !== null) {
    const p = [...path, "waypoint"];
    const w = r.obj(o.waypoint, p, "waypoint") ?? {};
    const waypoint: WaypointTarget = {
      name: r.str(w, "name", p) ?? "",
      namespace: r.str(w, "namespace", p) ?? "",
    };
    const wsa = r.str(w, "serviceAccount", p, false);
    if (wsa !== undefined) waypoint.serviceAccount = wsa;
    const wip = r.str(w, "ip", p, false);
    if (wip !== undefined) waypoint.ip = wip;
    input.waypoint = waypoint;
  }
  if (o.service !== undefined && o.service !== null) {
    const p = [...path, "service"];
    const s = r.obj(o.service, p, "service") ?? {};
    const kind = s.kind ?? "Service";
    if (kind !== "Service" && kind !== "ServiceEntry")
      r.err([...p, "kind"], "kind must be Service or ServiceEntry");
    const service: ServiceTarget = {
      kind: kind === "ServiceEntry" ? "ServiceEntry" : "Service",
      name: r.str(s, "name", p) ?? "",
      namespace: r.str(s, "namespace", p) ?? "",
      protocol: r.str(s, "protocol", p, false) ?? "TCP",
    };
    const vip = r.str(s, "vip", p, false);
    if (vip !== undefined) service.vip = vip;
    const port = r.port(s, "port", p, false);
    if (port !== undefined) service.port = port;
    const tp = r.port(s, "targetPort", p, false);
    if (tp !== undefined) service.targetPort = tp;
    input.service = service;
  }
  if (enforcement === "waypoint" && !input.service && !input.waypoint)
    r.err(path, "waypoint cases need `waypoint` and/or `service` (what the waypoint is serving)");
  if (o.request !== undefined && o.request !== null) {
    const p = [...path, "request"];
    const q = r.obj(o.request, p, "request") ?? {};
    const headers = Object.create(null) as Record<string, string | string[]>;
    if (q.headers !== undefined && q.headers !== null) {
      const h = r.obj(q.headers, [...p, "headers"], "headers") ?? {};
      for (const [k, val] of Object.entries(h)) {
        if (typeof val === "string") headers[k] = val;
        else if (Array.isArray(val) && val.every((x) => typeof x === "string"))
          headers[k] = val as string[];
        else if (typeof val === "number" || typeof val === "boolean") headers[k] = String(val);
        else r.err([...p, "headers", k], "header value must be a string or a list of strings");
      }
    }
    const jwt = q.jwt;
    if (jwt !== undefined && jwt !== null && !isRecord(jwt))
      r.err([...p, "jwt"], "jwt must be a mapping of claims or null");
    const request: HttpRequestAttributes = {
      host: r.str(q, "host", p, false) ?? "",
      method: r.str(q, "method", p, false) ?? "GET",
      path: r.str(q, "path", p, false) ?? "/",
      headers,
      jwt: isRecord(jwt) ? jwt : null,
    };
    if (isRecord(q.filterMetadata))
      request.filterMetadata = q.filterMetadata as Record<string, Record<string, unknown>>;
    input.request = request;
  }
  if (o.customProviderDecisions !== undefined && o.customProviderDecisions !== null) {
    const p = [...path, "customProviderDecisions"];
    const c = r.obj(o.customProviderDecisions, p, "customProviderDecisions") ?? {};
    const out = Object.create(null) as Record<string, CustomProviderDecision>;
    for (const [k, val] of Object.entries(c)) {
      if (val === "allow" || val === "deny") out[k] = val;
      else r.err([...p, k], "provider decision must be allow or deny");
    }
    input.customProviders = out;
  }
  const expect: DecisionCase["expect"] = {};
  if (o.expect !== undefined) {
    const p = [...path, "expect"];
    const e = r.obj(o.expect, p, "expect") ?? {};
    if (e.decision !== undefined) {
      if (e.decision !== "allow" && e.decision !== "deny")
        r.err([...p, "decision"], "decision must be allow or deny");
      else expect.decision = e.decision;
    }
    const by = r.str(e, "decidedBy", p, false);
    if (by !== undefined) expect.decidedBy = by;
    if (typeof e.rule === "number") expect.rule = e.rule;
  }
  if (r.issues.length > 0) return { ok: false, issues: r.issues };
  const value: DecisionCase = { id, mesh, policies, input, expect };
  if (typeof o.title === "string") value.title = o.title;
  return { ok: true, value, issues: [] };
}

/** Runs one parsed decision case. */
export function runDecisionCase(c: DecisionCase): CaseResult {
  const g = new Guard("ERR_AUTHZ_INVALID_CASE", "decision case (from parseDecisionCase)");
  const o = g.record(c, []);
  g.string(o.id, ["id"]);
  const e = g.record(o.expect, ["expect"]);
  if (e.decision !== undefined) g.oneOf(e.decision, ["allow", "deny"], ["expect", "decision"]);
  g.optString(e.decidedBy, ["expect", "decidedBy"]);
  if (e.rule !== undefined && typeof e.rule !== "number")
    g.fail(["expect", "rule"], "must be a number");
  const decision = compilePolicies(c.policies, c.mesh).decide(c.input);
  const got: Record<string, unknown> = {
    decision: decision.decision,
    decidedBy: decision.decidedBy,
  };
  if (decision.rule !== undefined) got.rule = decision.rule;
  const expected: Record<string, unknown> = { ...c.expect };
  const passed =
    (c.expect.decision === undefined || c.expect.decision === decision.decision) &&
    (c.expect.decidedBy === undefined || c.expect.decidedBy === decision.decidedBy) &&
    (c.expect.rule === undefined || c.expect.rule === decision.rule);
  const explanation = [...decision.explanation];
  for (const i of decision.ignored)
    explanation.push(
      `ignored ${i.policy}${i.rule !== undefined ? ` rule ${i.rule}` : ""} ${i.attribute}: ${i.reason}`,
    );
  return { id: c.id, kind: "decision", passed, expected, got, explanation, decision };
}

/**
 * Runs a case file (already parsed from YAML/JSON). Cases with bad input are not run; their
 * problems are in `issues` with the path inside the document (for file:line reporting).
 */
export function runCaseFile(doc: unknown): CaseFileReport {
  const report: CaseFileReport = { passed: 0, failed: 0, results: [], issues: [] };
  if (!isRecord(doc)) {
    report.issues.push(
      caseIssue([], "a case file must be a mapping with `cases:` and/or `validationCases:`"),
    );
    return report;
  }
  if (doc.cases === undefined && doc.validationCases === undefined)
    report.issues.push(caseIssue([], "no `cases:` or `validationCases:` list in this file"));
  const add = (r: CaseResult) => {
    report.results.push(r);
    if (r.passed) report.passed++;
    else report.failed++;
  };
  if (doc.cases !== undefined && doc.cases !== null) {
    if (!Array.isArray(doc.cases))
      report.issues.push(caseIssue(["cases"], "`cases` must be a list"));
    else
      doc.cases.forEach((c, i) => {
        const parsed = parseDecisionCase(c, ["cases", i]);
        if (!parsed.value) {
          report.issues.push(...parsed.issues);
          return;
        }
        try {
          add(runDecisionCase(parsed.value));
        } catch (e) {
          if (!(e instanceof AuthzError)) throw e;
          report.issues.push(caseIssue(["cases", i], e.message));
        }
      });
  }
  if (doc.validationCases !== undefined && doc.validationCases !== null) {
    if (!Array.isArray(doc.validationCases))
      report.issues.push(caseIssue(["validationCases"], "`validationCases` must be a list"));
    else
      doc.validationCases.forEach((c, i) => {
        const path: Path = ["validationCases", i];
        const r = runValidationCase(
          c,
          path,
          isRecord(doc.mesh) && typeof doc.mesh.rootNamespace === "string"
            ? doc.mesh.rootNamespace
            : undefined,
        );
        if ("issues" in r) report.issues.push(...r.issues);
        else add(r);
      });
  }
  // A file that tests nothing must not pass: it is what a mistyped key or a truncated file looks like.
  if (report.results.length === 0 && report.issues.length === 0)
    report.issues.push(
      caseIssue([], "this case file has no cases: `cases:` and `validationCases:` are empty"),
    );
  return report;
}

function runValidationCase(
  v: unknown,
  path: Path,
  rootNamespace: string | undefined,
): CaseResult | { issues: Issue[] } {
  const r = new Reader();
  const o = r.obj(v, path, "validation case");
  if (!o) return { issues: r.issues };
  const id = r.str(o, "id", path, false) ?? `validation case ${String(path.at(-1))}`;
  const e = r.obj(o.expect, [...path, "expect"], "expect");
  if (e && typeof e.valid !== "boolean")
    r.err([...path, "expect", "valid"], "valid must be true or false");
  const contains = e ? r.str(e, "messageContains", [...path, "expect"], false) : undefined;
  if (r.issues.length > 0 || !e) return { issues: r.issues };
  const expected: Record<string, unknown> = { valid: e.valid };
  if (contains !== undefined) expected.messageContains = contains;
  const parsed = parsePolicyResource(o.policy, [...path, "policy"]);
  let valid: boolean;
  let messages: string[];
  if (!parsed.ok) {
    // Structurally wrong (e.g. a YAML integer port): the CRD schema rejects it.
    valid = false;
    messages = parsed.issues.map((i) => i.message);
  } else if (parsed.value.kind !== "AuthorizationPolicy") {
    valid = true;
    messages = [];
  } else {
    const opts: { rootNamespace?: string } = {};
    if (rootNamespace !== undefined) opts.rootNamespace = rootNamespace;
    const res = validateAuthorizationPolicy(parsed.value, opts);
    valid = res.ok;
    messages = res.issues.filter((i) => i.severity === "error").map((i) => i.message);
    messages.push(
      ...res.issues.filter((i) => i.severity === "warning").map((i) => `warning: ${i.message}`),
    );
  }
  const matched = contains === undefined || messages.some((m) => m.includes(contains));
  const passed = valid === e.valid && (e.valid === true || matched);
  return {
    id,
    kind: "validation",
    passed,
    expected,
    got: { valid, messages },
    explanation: messages,
  };
}
