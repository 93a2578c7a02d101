/**
 * Compile once, decide fast: policies are indexed by where they can attach (ztunnel: namespace,
 * root namespace, selector namespace; waypoint: Service/ServiceEntry/Gateway/GatewayClass refs), so
 * a decision only touches the policies that apply to its target.
 */

import {
  assertDecisionInput,
  assertMesh,
  type CheckedAddresses,
  checkPolicyResource,
  Guard,
  own,
} from "./guards.js";
import { canonicalIp, type IpAddress, parseIp } from "./ip.js";
import { normalizeRequestPath } from "./path.js";
import type {
  AuditResult,
  AuthorizationPolicy,
  Decision,
  DecisionInput,
  DryRunResult,
  IgnoredAttribute,
  MeshSettings,
  PeerAuthentication,
  PolicyResource,
} from "./types.js";
import {
  compileEnvoyRules,
  type EnvoyCompiled,
  type EnvoyContext,
  TrustDomainBundle,
} from "./waypoint.js";
import {
  type CompiledZtunnelAuthorization,
  compileChecked,
  convertChecked,
  dryRunAnnotation,
  peerAuthorizationsChecked,
  preparedConnection,
  type UnparsableValue,
  type ZtunnelAuthorization,
  type ZtunnelConversion,
} from "./ztunnel.js";

interface Entry {
  key: string;
  policy: AuthorizationPolicy;
  dryRun: boolean;
  /** matchLabels as pairs, taken once (own keys, so `__proto__` is a label like any other). */
  selector: readonly (readonly [string, string])[] | undefined;
  zt?: { conversion: ZtunnelConversion; compiled: CompiledZtunnelAuthorization | null };
  http?: EnvoyCompiled;
  tcp?: EnvoyCompiled;
}

const WAYPOINT_CLASS = "istio-waypoint";
const GATEWAY_GROUP = "gateway.networking.k8s.io";

function refKind(ref: { group?: string; kind: string }): string | undefined {
  const g = ref.group ?? "";
  if (ref.kind === "Service" && (g === "" || g === "core")) return "Service";
  if (ref.kind === "ServiceEntry" && g === "networking.istio.io") return "ServiceEntry";
  if (ref.kind === "Gateway" && g === GATEWAY_GROUP) return "Gateway";
  if (ref.kind === "GatewayClass" && g === GATEWAY_GROUP) return "GatewayClass";
  return undefined;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

function nested<V>(m: Map<string, Map<string, V>>, k: string): Map<string, V> {
  let inner = m.get(k);
  if (!inner) {
    inner = new Map();
    m.set(k, inner);
  }
  return inner;
}

/** Names the unparsable values of the rule that decided, for the explanation. */
function unparsableNote(
  list: readonly (UnparsableValue & { rule: number })[] | undefined,
  rule: number,
): string {
  const here = (list ?? []).filter((u) => u.rule === rule);
  if (here.length === 0) return "";
  const vals = here.map((u) => `${u.attribute} ${JSON.stringify(u.value)}`).join(", ");
  return ` (unparsable ${vals} read as matching: fail closed)`;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Z]+$/;
// Controls, space and DEL never survive an HTTP codec inside a request target or authority.
function badTargetChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}

function badValueChar(s: string): boolean {
  return s.includes("\0") || s.includes("\r") || s.includes("\n");
}

/** Why Envoy would answer 400 before RBAC runs, or undefined for a request it accepts. */
function invalidRequest(req: NonNullable<DecisionInput["request"]>): string | undefined {
  if (!req.path.startsWith("/"))
    return `the request path ${JSON.stringify(req.path)} does not start with "/"`;
  if (badTargetChar(req.path)) return "the request path holds a control character or a space";
  if (!METHOD.test(req.method))
    return `the method ${JSON.stringify(req.method)} is not an upper-case HTTP token`;
  if (req.host === "" || badTargetChar(req.host))
    return `the :authority ${JSON.stringify(req.host)} is empty or holds a control character or a space`;
  for (const [k, v] of Object.entries(req.headers)) {
    const name = k.startsWith(":") ? k.slice(1) : k;
    if (!TOKEN.test(name)) return `the header name ${JSON.stringify(k)} is not an HTTP token`;
    for (const x of typeof v === "string" ? [v] : v)
      if (badValueChar(x)) return `the header ${k} holds NUL, CR or LF`;
  }
  return undefined;
}

/** Service protocols that get Envoy's HTTP filter chain at a waypoint. */
export function isHttpProtocol(protocol: string): boolean {
  new Guard("ERR_AUTHZ_INVALID_INPUT", "argument").string(protocol, ["protocol"]);
  if (protocol === "HTTP" || protocol === "TCP") return protocol === "HTTP";
  const p = protocol.toUpperCase();
  return p.startsWith("HTTP") || p.startsWith("GRPC");
}

function byKey(a: { key: string }, b: { key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Policies compiled into an index for one mesh. Immutable; build a new one when policies change. */
export class CompiledPolicies {
  readonly mesh: MeshSettings;
  /** Number of AuthorizationPolicies indexed. */
  readonly size: number;
  private readonly td: TrustDomainBundle;
  private readonly ztGlobal: Entry[] = [];
  private readonly ztNamespace = new Map<string, Entry[]>();
  private readonly ztSelector = new Map<string, Entry[]>();
  /** kind → namespace → name → entries. */
  private readonly wpService = new Map<string, Map<string, Map<string, Entry[]>>>();
  /** namespace → gateway name → entries. */
  private readonly wpGateway = new Map<string, Map<string, Entry[]>>();
  private readonly wpGatewayClass: Entry[] = [];
  private readonly peerAuths = new Map<string, PeerAuthentication[]>();
  private readonly hasPeerAuths: boolean;

  constructor(resources: readonly PolicyResource[], mesh: MeshSettings) {
    assertMesh(mesh);
    const g = new Guard(
      "ERR_AUTHZ_INVALID_RESOURCE",
      "policy list (compilePolicies takes parsed policies: run each object through parsePolicyResource first)",
    );
    g.list(resources, []).forEach((r, i) => {
      checkPolicyResource(r, [i], g);
    });
    this.mesh = { ...mesh, trustDomainAliases: [...mesh.trustDomainAliases] };
    this.td = new TrustDomainBundle(mesh.trustDomain, mesh.trustDomainAliases);
    const seen = new Map<string, Entry>();
    let pas = 0;
    for (const r of resources) {
      if (r.kind === "PeerAuthentication") {
        push(this.peerAuths, r.namespace, r);
        pas++;
        continue;
      }
      const key = `${r.namespace}/${r.name}`;
      // Kubernetes names are unique per namespace: a later duplicate replaces the earlier one.
      seen.set(key, {
        key,
        policy: r,
        dryRun: dryRunAnnotation(r),
        selector: r.spec.selector ? Object.entries(r.spec.selector.matchLabels) : undefined,
      });
    }
    this.hasPeerAuths = pas > 0;
    for (const e of [...seen.values()].sort(byKey)) this.add(e);
    this.size = seen.size;
  }

  private add(e: Entry): void {
    const spec = e.policy.spec;
    const refs =
      spec.targetRefs && spec.targetRefs.length > 0
        ? spec.targetRefs
        : spec.targetRef
          ? [spec.targetRef]
          : [];
    if (refs.length === 0) {
      const conversion = convertChecked(
        e.policy,
        this.mesh.rootNamespace,
        this.mesh.ambientEnableDryRun === true,
      );
      e.zt = {
        conversion,
        compiled: conversion.authorization ? compileChecked(conversion.authorization) : null,
      };
      if (e.selector !== undefined) push(this.ztSelector, e.policy.namespace, e);
      else if (e.policy.namespace === this.mesh.rootNamespace) this.ztGlobal.push(e);
      else push(this.ztNamespace, e.policy.namespace, e);
      return;
    }
    e.http = compileEnvoyRules(e.policy, this.td, false);
    const keys = new Set<string>();
    for (const ref of refs) {
      const kind = refKind(ref);
      if (!kind || !ref.name || (ref.namespace !== undefined && ref.namespace !== "")) continue;
      const ns = e.policy.namespace;
      if (kind === "Service" || kind === "ServiceEntry") keys.add(`svc:${kind}/${ns}/${ref.name}`);
      else if (kind === "Gateway") keys.add(`gw:${ns}/${ref.name}`);
      else if (ref.name === WAYPOINT_CLASS && ns === this.mesh.rootNamespace) keys.add("class");
    }
    for (const k of keys) {
      if (k === "class") this.wpGatewayClass.push(e);
      else if (k.startsWith("gw:"))
        push(nested(this.wpGateway, e.policy.namespace), k.slice(k.lastIndexOf("/") + 1), e);
      else {
        const kind = k.slice(4, k.indexOf("/"));
        let byNs = this.wpService.get(kind);
        if (!byNs) {
          byNs = new Map();
          this.wpService.set(kind, byNs);
        }
        push(nested(byNs, e.policy.namespace), k.slice(k.lastIndexOf("/") + 1), e);
      }
    }
  }

  /** The ztunnel Authorization objects istiod would send for these policies (convert view). */
  ztunnelAuthorizations(): ZtunnelConversion[] {
    const out: ZtunnelConversion[] = [];
    const all = [
      ...this.ztGlobal,
      ...[...this.ztNamespace.values()].flat(),
      ...[...this.ztSelector.values()].flat(),
    ];
    for (const e of all.sort(byKey)) if (e.zt) out.push(e.zt.conversion);
    return out;
  }

  /** Keys of the AuthorizationPolicies that attach to the input's target at its enforcement point. */
  applicable(
    input: Pick<DecisionInput, "enforcement" | "workload" | "waypoint" | "service">,
  ): string[] {
    // Same checks as decide, on a stand-in connection: attachment reads only these four fields.
    assertDecisionInput({
      ...input,
      connection: {
        sourcePrincipal: null,
        sourceIp: "0.0.0.0",
        destinationIp: "0.0.0.0",
        destinationPort: 0,
      },
    });
    return (
      input.enforcement === "ztunnel"
        ? this.ztunnelEntries(input.workload)
        : this.waypointEntries(input)
    ).map((e) => e.key);
  }

  private ztunnelEntries(wl: { namespace: string; labels: Record<string, string> }): Entry[] {
    // Each bucket is already in key order (entries are added sorted); merge only when needed.
    const parts: Entry[][] = [];
    if (this.ztGlobal.length > 0) parts.push(this.ztGlobal);
    const nsList = this.ztNamespace.get(wl.namespace);
    if (nsList) parts.push(nsList);
    const pick = (list: Entry[] | undefined): void => {
      if (!list) return;
      const sel = list.filter((e) => e.selector?.every(([k, v]) => own(wl.labels, k) === v));
      if (sel.length > 0) parts.push(sel);
    };
    pick(this.ztSelector.get(wl.namespace));
    if (wl.namespace !== this.mesh.rootNamespace)
      pick(this.ztSelector.get(this.mesh.rootNamespace));
    if (parts.length === 0) return [];
    if (parts.length === 1) return parts[0] as Entry[];
    return parts.flat().sort(byKey);
  }

  private waypointEntries(input: Pick<DecisionInput, "waypoint" | "service">): Entry[] {
    const parts: Entry[][] = [];
    if (this.wpGatewayClass.length > 0) parts.push(this.wpGatewayClass);
    if (input.waypoint) {
      const l = this.wpGateway.get(input.waypoint.namespace)?.get(input.waypoint.name);
      if (l) parts.push(l);
    }
    if (input.service) {
      const l = this.wpService
        .get(input.service.kind)
        ?.get(input.service.namespace)
        ?.get(input.service.name);
      if (l) parts.push(l);
    }
    if (parts.length === 0) return [];
    if (parts.length === 1) return parts[0] as Entry[];
    return [...new Set(parts.flat())].sort(byKey);
  }

  /**
   * Decides one connection/request at the input's enforcement point. The only throw is an
   * AuthzError (ERR_AUTHZ_INVALID_INPUT) for something that is not a DecisionInput, e.g. an address
   * that does not parse; a request Envoy would refuse is a deny (`implicit:invalid-request`).
   */
  decide(input: DecisionInput): Decision {
    const addrs = assertDecisionInput(input);
    return input.enforcement === "ztunnel"
      ? this.decideZtunnel(input, addrs)
      : this.decideWaypoint(input, addrs);
  }

  private decideZtunnel(input: DecisionInput, addrs: CheckedAddresses): Decision {
    const entries = this.ztunnelEntries(input.workload);
    const ignored: IgnoredAttribute[] = [];
    const dryRun: DryRunResult[] = [];
    const explanation: string[] = [];
    const conn = preparedConnection(
      addrs.sourceIp,
      addrs.destinationIp,
      input.connection.destinationPort,
      input.connection.sourcePrincipal,
    );
    type Item = {
      key: string;
      compiled: CompiledZtunnelAuthorization;
      ruleIndex: readonly number[] | undefined;
      unparsable?: ZtunnelConversion["unparsable"];
    };
    const deny: Item[] = [];
    const allow: Item[] = [];
    const applied: string[] = [];
    for (const e of entries) {
      const zt = e.zt;
      if (!zt) continue;
      for (const i of zt.conversion.ignored) ignored.push(i);
      const c = zt.compiled;
      if (!c) continue;
      if (c.authorization.dryRun) {
        const r = c.firstMatch(conn);
        const d: DryRunResult = { policy: e.key, action: e.policy.spec.action, matched: r >= 0 };
        if (r >= 0) d.rule = zt.conversion.ruleIndex[r] ?? r;
        dryRun.push(d);
        continue;
      }
      applied.push(e.key);
      (c.authorization.action === "Deny" ? deny : allow).push({
        key: e.key,
        compiled: c,
        ruleIndex: zt.conversion.ruleIndex,
        unparsable: zt.conversion.unparsable,
      });
    }
    if (this.hasPeerAuths) {
      const pas = [
        ...(this.peerAuths.get(this.mesh.rootNamespace) ?? []),
        ...(input.workload.namespace !== this.mesh.rootNamespace
          ? (this.peerAuths.get(input.workload.namespace) ?? [])
          : []),
      ];
      for (const a of peerAuthorizationsChecked(pas, this.mesh.rootNamespace, input.workload)) {
        const key = `${a.namespace}/${a.name}`;
        applied.push(key);
        explanation.push(`PeerAuthentication makes istiod attach ${key} (DENY) to this workload`);
        deny.push({ key, compiled: compileChecked(a), ruleIndex: undefined });
      }
      deny.sort(byKey);
    }
    const wp = input.waypoint;
    if (this.mesh.autoAllowWaypointPolicy && wp?.serviceAccount) {
      const a: ZtunnelAuthorization = {
        name: `istio_allow_waypoint_${wp.namespace}_${wp.name}`,
        namespace: wp.namespace,
        scope: "WorkloadSelector",
        action: "Allow",
        rules: [
          [
            [
              {
                principals: [
                  { exact: `${this.mesh.trustDomain}/ns/${wp.namespace}/sa/${wp.serviceAccount}` },
                ],
              },
            ],
          ],
        ],
        dryRun: false,
      };
      const key = `${a.namespace}/${a.name}`;
      applied.push(key);
      explanation.push(
        `PILOT_AUTO_ALLOW_WAYPOINT_POLICY makes istiod attach ${key} (ALLOW from the waypoint)`,
      );
      allow.push({ key, compiled: compileChecked(a), ruleIndex: undefined });
      allow.sort(byKey);
    }
    if (input.request)
      explanation.push("ztunnel sees only L4: the HTTP request attributes were not used");
    const base = {
      enforcement: "ztunnel" as const,
      dryRun,
      audit: [] as AuditResult[],
      ignored,
      applied,
      explanation,
    };
    for (const d of deny) {
      const r = d.compiled.firstMatch(conn);
      if (r >= 0) {
        const rule = d.ruleIndex ? (d.ruleIndex[r] ?? r) : r;
        explanation.push(
          `DENY policy ${d.key} rule ${rule} matched${unparsableNote(d.unparsable, rule)}: connection denied`,
        );
        return { decision: "deny", decidedBy: d.key as Decision["decidedBy"], rule, ...base };
      }
    }
    if (allow.length === 0) {
      explanation.push("no ALLOW policy applies to the workload at ztunnel: allowed");
      return { decision: "allow", decidedBy: "implicit:no-allow-policies", ...base };
    }
    for (const a of allow) {
      const r = a.compiled.firstMatch(conn);
      if (r >= 0) {
        const rule = a.ruleIndex ? (a.ruleIndex[r] ?? r) : r;
        explanation.push(`ALLOW policy ${a.key} rule ${rule} matched: connection allowed`);
        return { decision: "allow", decidedBy: a.key as Decision["decidedBy"], rule, ...base };
      }
    }
    explanation.push(
      `ALLOW policies apply (${allow.map((a) => a.key).join(", ")}) but none matched: denied`,
    );
    return { decision: "deny", decidedBy: "implicit:no-allow-match", ...base };
  }

  /** The request as Envoy's RBAC sees it, or why Envoy answers 400 before RBAC. */
  private envoyContext(input: DecisionInput, addrs: CheckedAddresses): EnvoyContext | string {
    const req = input.request;
    let http: EnvoyContext["http"] = null;
    let remote: IpAddress | undefined = addrs.sourceIp;
    if (req) {
      const invalid = invalidRequest(req);
      if (invalid !== undefined) return invalid;
      const path = normalizeRequestPath(req.path, this.mesh.pathNormalization ?? "BASE");
      if (path === null) return "the request path holds %00";
      const headers = new Map<string, string>();
      for (const [k, v] of Object.entries(req.headers)) {
        const name = k.toLowerCase();
        const val = typeof v === "string" ? v : v.join(",");
        const prev = headers.get(name);
        headers.set(name, prev === undefined ? val : `${prev},${val}`);
      }
      const xff = headers.get("x-forwarded-for");
      if (xff) {
        // An unparsable last hop is unknown, not absent: remote.ip tests read it the way that denies.
        const last = parseIp(xff.split(",").at(-1)?.trim() ?? "");
        remote = last ? canonicalIp(last) : undefined;
      }
      http = {
        host: req.host,
        method: req.method,
        path,
        headers,
        jwt: req.jwt,
        filterMetadata: req.filterMetadata ?? {},
      };
    }
    return {
      principal: input.connection.sourcePrincipal,
      sourceIp: addrs.sourceIp,
      remoteIp: remote,
      destinationIp: addrs.destinationIp,
      destinationPort: input.connection.destinationPort,
      sni: input.connection.sni,
      http,
    };
  }

  private decideWaypoint(input: DecisionInput, addrs: CheckedAddresses): Decision {
    const entries = this.waypointEntries(input);
    const ignored: IgnoredAttribute[] = [];
    const dryRun: DryRunResult[] = [];
    const audit: AuditResult[] = [];
    const explanation: string[] = [];
    const applied: string[] = [];
    const protocol = input.service?.protocol ?? (input.request ? "HTTP" : "TCP");
    const tcp = !isHttpProtocol(protocol);
    const base = { enforcement: "waypoint" as const, dryRun, audit, ignored, applied, explanation };
    const ctx = this.envoyContext(input, addrs);
    if (typeof ctx === "string") {
      explanation.push(`Envoy answers 400 before authorization: ${ctx}`);
      return { decision: "deny", decidedBy: "implicit:invalid-request", ...base };
    }
    if (tcp && input.request)
      explanation.push(
        `service protocol ${protocol} uses Envoy's TCP chain: the HTTP request attributes were not used`,
      );
    if (tcp) ctx.http = null;
    const first = (c: EnvoyCompiled): number => {
      for (const r of c.rules) if (r.test(ctx)) return r.index;
      return -1;
    };
    const custom: { e: Entry; rule: number }[] = [];
    const deny: { e: Entry; c: EnvoyCompiled }[] = [];
    const allow: { e: Entry; c: EnvoyCompiled }[] = [];
    for (const e of entries) {
      let c: EnvoyCompiled;
      if (tcp) {
        e.tcp ??= compileEnvoyRules(e.policy, this.td, true);
        c = e.tcp;
      } else c = e.http ?? compileEnvoyRules(e.policy, this.td, false);
      for (const i of c.ignored) ignored.push(i);
      const action = e.policy.spec.action;
      if (e.dryRun) {
        const r = first(c);
        const d: DryRunResult = { policy: e.key, action, matched: r >= 0 };
        if (r >= 0) d.rule = r;
        dryRun.push(d);
        continue;
      }
      applied.push(e.key);
      if (action === "AUDIT") {
        const r = first(c);
        if (r >= 0) audit.push({ policy: e.key, rule: r });
      } else if (action === "CUSTOM") {
        const r = first(c);
        if (r >= 0) custom.push({ e, rule: r });
      } else if (action === "DENY") deny.push({ e, c });
      else allow.push({ e, c });
    }
    const providers = [
      ...new Set(
        entries
          .filter((e) => e.policy.spec.action === "CUSTOM" && !e.dryRun)
          .map((e) => e.policy.spec.provider?.name ?? ""),
      ),
    ].sort();
    if (providers.length > 1 && !this.mesh.enableMultipleCustomAuthzProviders) {
      explanation.push(
        `CUSTOM policies name different providers (${providers.join(", ")}): istiod installs default-deny-all-due-to-bad-CUSTOM-action (set PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS to allow several)`,
      );
      return { decision: "deny", decidedBy: `custom:${providers.join(",")}`, ...base };
    }
    for (const { e, rule } of custom) {
      const provider = e.policy.spec.provider?.name ?? "";
      const p = input.customProviders;
      const answer = typeof p === "function" ? p(provider, e.key) : own(p, provider);
      if (answer !== "allow") {
        explanation.push(
          answer === "deny"
            ? `CUSTOM policy ${e.key} rule ${rule} matched and provider ${provider} denied`
            : `CUSTOM policy ${e.key} rule ${rule} matched and provider ${provider} gave no answer (ext_authz failure denies)`,
        );
        return { decision: "deny", decidedBy: `custom:${provider}`, rule, ...base };
      }
      explanation.push(
        `CUSTOM policy ${e.key} matched and provider ${provider} allowed; DENY/ALLOW still apply`,
      );
    }
    for (const { e, c } of deny) {
      const r = first(c);
      if (r >= 0) {
        explanation.push(
          `DENY policy ${e.key} rule ${r} matched${unparsableNote(c.unparsable, r)}: request denied`,
        );
        return { decision: "deny", decidedBy: e.key as Decision["decidedBy"], rule: r, ...base };
      }
    }
    if (allow.length === 0) {
      explanation.push("no enforced ALLOW policy applies at the waypoint: allowed");
      return { decision: "allow", decidedBy: "implicit:no-allow-policies", ...base };
    }
    for (const { e, c } of allow) {
      const r = first(c);
      if (r >= 0) {
        explanation.push(`ALLOW policy ${e.key} rule ${r} matched: request allowed`);
        return { decision: "allow", decidedBy: e.key as Decision["decidedBy"], rule: r, ...base };
      }
    }
    explanation.push(
      `ALLOW policies apply (${allow.map((a) => a.e.key).join(", ")}) but none matched: denied`,
    );
    return { decision: "deny", decidedBy: "implicit:no-allow-match", ...base };
  }
}

/**
 * Compiles parsed policies for a mesh into an index; reuse it for many decisions. AuthzError
 * (ERR_AUTHZ_INVALID_RESOURCE / ERR_AUTHZ_INVALID_INPUT) if a policy or the mesh is malformed.
 */
export function compilePolicies(
  resources: readonly PolicyResource[],
  mesh: MeshSettings,
): CompiledPolicies {
  return new CompiledPolicies(resources, mesh);
}

/** One-shot convenience: compile and decide (prefer `compilePolicies` for repeated decisions). */
export function evaluate(
  resources: readonly PolicyResource[],
  mesh: MeshSettings,
  input: DecisionInput,
): Decision {
  return new CompiledPolicies(resources, mesh).decide(input);
}

export type { ZtunnelAuthorization };
