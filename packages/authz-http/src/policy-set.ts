// The policies an app enforces, as one immutable compiled value. Sources hand in full contents;
// the holder compiles a new set off to the side and swaps a single reference, so a request reads
// either the old set or the new one, never a mix — the same all-or-nothing rule as MeshStateStore.
import {
  type AuthorizationPolicy,
  type CompiledPolicies,
  type CompiledZtunnelAuthorization,
  compilePolicies,
  compileZtunnelAuthorization,
  type MeshSettings,
  type PolicyResource,
  type PolicyTargetReference,
  type ServiceTarget,
  type WaypointTarget,
  type WorkloadTarget,
  type ZtunnelAuthorization,
} from "@ambientkit/authz";
import { AuthzHttpError } from "./errors.js";
import { DecisionMemo } from "./memo.js";
import type { SourceIssue } from "./policy-yaml.js";

/** Which Istio attachments the app enforces (both by default). */
export interface Attachment {
  /**
   * Policies without targetRefs that select this workload — by `selector`, namespace-wide, or from
   * the root namespace — evaluated with L7 semantics, as a sidecar would enforce them.
   */
  readonly selector?: boolean;
  /** Policies with `targetRefs` to the app's Service (and, with `waypoint`, to that waypoint). */
  readonly targetRefs?: boolean;
}

/** The app as an enforcement point: who it is in the mesh. */
export interface AppTarget {
  /** The app's own workload (namespace, labels, service account, name). */
  readonly workload: WorkloadTarget;
  /** The app's Service; `targetRefs` policies attach through it. Port = service port. */
  readonly service?: {
    readonly name: string;
    readonly kind?: "Service" | "ServiceEntry";
    readonly port?: number;
    readonly vip?: string;
    /** Protocol of the port (default HTTP): anything else picks Envoy's TCP chain. */
    readonly protocol?: string;
  };
  /**
   * The waypoint in front of the app, when the app should also enforce what is attached to it
   * (`Gateway` and `GatewayClass istio-waypoint` refs). Without it those policies are not the app's.
   */
  readonly waypoint?: WaypointTarget;
  readonly attach?: Attachment;
  /** meshConfig settings (rootNamespace, trustDomain, aliases, path normalisation). */
  readonly mesh?: Partial<MeshSettings>;
}

/** What a source currently holds: always a full replacement, never a diff. */
export interface PolicyContent {
  readonly resources?: readonly PolicyResource[];
  /** ztunnel `Authorization`s (LOCAL_XDS, istiod): evaluated at L4 as ztunnel does. */
  readonly authorizations?: readonly ZtunnelAuthorization[];
  /**
   * Keys (`ns/name`) of WorkloadSelector-scoped Authorizations that select this app (the app's own
   * `Workload.authorizationPolicies`); undefined = not known, such policies are not applied.
   */
  readonly selectedAuthorizations?: readonly string[];
  /** A version label for logs (file mtime, xDS version, a counter). */
  readonly revision: string;
}

/** One compiled, immutable set; decisions hold on to the set they started with. */
export interface PolicySet {
  readonly revision: string;
  readonly policies: CompiledPolicies;
  /** Keys of the resources the app enforces, after attachment. */
  readonly attached: readonly string[];
  readonly authorizations: readonly CompiledZtunnelAuthorization[];
  readonly mesh: MeshSettings;
  readonly service: ServiceTarget;
  readonly waypoint: WaypointTarget;
  /**
   * Lower-case names of the headers any attached policy can read (`request.headers[...]` keys, and
   * x-forwarded-for when `remote.ip` / `remoteIpBlocks` is used). Other headers cannot change a
   * decision once they are known to be well-formed.
   */
  readonly headerNames: readonly string[];
  /** false when a decision may depend on more than its inputs (CUSTOM providers are callbacks). */
  readonly cacheable: boolean;
  /** Decisions of this set by their inputs; dies with the set, so a swap never serves an old answer. */
  readonly cache: DecisionMemo<unknown>;
}

/** Which headers the policies read, and whether a decision is a pure function of the request. */
function policyInputs(policies: readonly AuthorizationPolicy[]): {
  headerNames: string[];
  cacheable: boolean;
} {
  const names = new Set<string>();
  let cacheable = true;
  for (const p of policies) {
    if (p.spec.action === "CUSTOM") cacheable = false;
    for (const rule of p.spec.rules ?? []) {
      for (const f of rule?.from ?? [])
        if (f.source?.remoteIpBlocks || f.source?.notRemoteIpBlocks) names.add("x-forwarded-for");
      for (const c of rule?.when ?? []) {
        if (c.key === "remote.ip") names.add("x-forwarded-for");
        const m = /^request\.headers\[(.*)\]$/.exec(c.key);
        if (m) names.add((m[1] ?? "").toLowerCase());
      }
    }
  }
  return { headerNames: [...names].sort(), cacheable };
}

const GATEWAY_GROUP = "gateway.networking.k8s.io";
/** Stands in for "the waypoint" when the app has none: no policy can name it. */
const NO_WAYPOINT = "ambientkit.invalid";

function meshOf(app: AppTarget): MeshSettings {
  return {
    rootNamespace: app.mesh?.rootNamespace ?? "istio-system",
    trustDomain: app.mesh?.trustDomain ?? "cluster.local",
    trustDomainAliases: app.mesh?.trustDomainAliases ?? [],
    ...(app.mesh?.pathNormalization ? { pathNormalization: app.mesh.pathNormalization } : {}),
    ...(app.mesh?.ambientEnableDryRun !== undefined
      ? { ambientEnableDryRun: app.mesh.ambientEnableDryRun }
      : {}),
    ...(app.mesh?.enableMultipleCustomAuthzProviders !== undefined
      ? { enableMultipleCustomAuthzProviders: app.mesh.enableMultipleCustomAuthzProviders }
      : {}),
  };
}

function serviceOf(app: AppTarget): ServiceTarget {
  const s = app.service;
  return {
    kind: s?.kind ?? "Service",
    // Selector-only apps still need a target for the rewritten policies; the name is the workload's.
    name: s?.name ?? app.workload.name ?? "app",
    namespace: app.workload.namespace,
    protocol: s?.protocol ?? "HTTP",
    ...(s?.port !== undefined ? { port: s.port } : {}),
    ...(s?.vip !== undefined ? { vip: s.vip } : {}),
  };
}

function isService(ref: PolicyTargetReference, svc: ServiceTarget, ns: string): boolean {
  const g = ref.group ?? "";
  const kindOk =
    svc.kind === "Service"
      ? ref.kind === "Service" && (g === "" || g === "core")
      : ref.kind === "ServiceEntry" && g === "networking.istio.io";
  return kindOk && ref.name === svc.name && (ref.namespace ?? ns) === svc.namespace;
}

/** Validates the app target once, so a wiring mistake fails at start, not per request. */
export function checkAppTarget(app: AppTarget): void {
  const w = app?.workload;
  if (!w || typeof w.namespace !== "string" || w.namespace === "" || typeof w.labels !== "object")
    throw new AuthzHttpError(
      "ERR_AUTHZ_HTTP_INVALID_OPTIONS",
      "app.workload needs a namespace and labels (the app's own pod labels, as the selector sees them)",
    );
  const attach = { selector: true, targetRefs: true, ...app.attach };
  if (!attach.selector && !attach.targetRefs)
    throw new AuthzHttpError(
      "ERR_AUTHZ_HTTP_INVALID_OPTIONS",
      "app.attach turns off both selector and targetRefs attachment: no policy could ever apply; enable one",
    );
  if (attach.targetRefs && !app.service && !app.waypoint && !attach.selector)
    throw new AuthzHttpError(
      "ERR_AUTHZ_HTTP_INVALID_OPTIONS",
      "targetRefs attachment needs app.service (the Service policies name) or app.waypoint",
    );
}

/**
 * Compiles `content` for `app`. The engine attaches targetRefs policies at a waypoint and selector
 * policies at ztunnel (L4); an app enforcing selector policies like a sidecar needs L7 for them, so
 * each one is re-attached to the app's Service (root-namespace ones to the waypoint GatewayClass,
 * which is how the engine reaches every target) and decided at the waypoint enforcement point.
 * Policy names and namespaces are kept, so `decidedBy` names the policy as written.
 */
export function compilePolicySet(app: AppTarget, content: PolicyContent): PolicySet {
  const mesh = meshOf(app);
  const service = serviceOf(app);
  const waypoint = app.waypoint ?? { name: NO_WAYPOINT, namespace: app.workload.namespace };
  const attach = { selector: true, targetRefs: true, ...app.attach };
  const resources = [...(content.resources ?? [])];
  const all = compilePolicies(resources, mesh);
  const bySelector = new Set(
    attach.selector ? all.applicable({ enforcement: "ztunnel", workload: app.workload }) : [],
  );
  const byRefs = new Set(
    attach.targetRefs
      ? all.applicable({ enforcement: "waypoint", workload: app.workload, waypoint, service })
      : [],
  );
  const out: AuthorizationPolicy[] = [];
  for (const r of resources) {
    if (r.kind !== "AuthorizationPolicy") continue;
    const key = `${r.namespace}/${r.name}`;
    if (bySelector.has(key)) {
      const { selector: _selector, ...spec } = r.spec;
      const ref: PolicyTargetReference =
        r.namespace === service.namespace
          ? {
              group: service.kind === "Service" ? "" : "networking.istio.io",
              kind: service.kind,
              name: service.name,
            }
          : { group: GATEWAY_GROUP, kind: "GatewayClass", name: "istio-waypoint" };
      out.push({ ...r, spec: { ...spec, targetRefs: [ref] } });
    } else if (byRefs.has(key)) {
      const refs = r.spec.targetRefs?.length
        ? r.spec.targetRefs
        : r.spec.targetRef
          ? [r.spec.targetRef]
          : [];
      // Without a configured waypoint, only the Service refs are the app's.
      if (app.waypoint || refs.some((ref) => isService(ref, service, r.namespace))) out.push(r);
    }
  }
  const policies = compilePolicies(out, mesh);
  const selected = new Set(content.selectedAuthorizations ?? []);
  const authorizations = (content.authorizations ?? [])
    .filter((a) =>
      a.scope === "Global"
        ? a.namespace === mesh.rootNamespace || a.namespace === ""
        : a.scope === "Namespace"
          ? a.namespace === app.workload.namespace
          : selected.has(`${a.namespace}/${a.name}`),
    )
    .map((a) => compileZtunnelAuthorization(a));
  return {
    revision: content.revision,
    policies,
    attached: out.map((p) => `${p.namespace}/${p.name}`),
    authorizations,
    mesh,
    service,
    waypoint,
    ...policyInputs(out),
    cache: new DecisionMemo(),
  };
}

/** Reports of a source to the holder. */
export interface PolicySink {
  /** The source's full content now. */
  update(content: PolicyContent): void;
  /** The source is broken; the last good content keeps serving. */
  error(issues: readonly SourceIssue[]): void;
}

/** Where policies come from: a directory, a LOCAL_XDS file, istiod (MeshStateStore), a constant. */
export interface PolicySource {
  readonly name: string;
  /**
   * Starts delivering to `sink`; resolves once the first content (or the first error) was
   * delivered. A source that cannot read anything at start must call `sink.error`.
   */
  start(sink: PolicySink): Promise<void>;
  close(): Promise<void> | void;
}

/** What happened to the set; for logs and tests. */
export type PolicySetEvent =
  | { readonly type: "swapped"; readonly source: string; readonly set: PolicySet }
  | {
      readonly type: "rejected";
      readonly source: string;
      readonly issues: readonly SourceIssue[];
      /** The revision that keeps serving, or undefined when nothing good was ever loaded. */
      readonly serving: string | undefined;
    };

/**
 * Holds the current PolicySet for one app and merges the latest good content of every source. A
 * source that has never delivered good content blocks the set: serving without it would enforce
 * a partial policy, so until then every request is denied.
 */
export class PolicyHolder {
  readonly #app: AppTarget;
  readonly #contents = new Map<string, PolicyContent>();
  readonly #pending = new Set<string>();
  readonly #listeners = new Set<(e: PolicySetEvent) => void>();
  #current: PolicySet | undefined;
  #generation = 0;

  constructor(app: AppTarget) {
    checkAppTarget(app);
    this.#app = app;
  }

  /** The set in force, or undefined (deny everything) until every source delivered once. */
  get current(): PolicySet | undefined {
    return this.#current;
  }

  subscribe(listener: (e: PolicySetEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Registers a source name before it starts, so the set waits for it. */
  expect(source: string): void {
    if (!this.#contents.has(source)) this.#pending.add(source);
  }

  /** A sink bound to one source name. */
  sink(source: string): PolicySink {
    this.expect(source);
    return {
      update: (content) => this.#update(source, content),
      error: (issues) => this.#reject(source, issues),
    };
  }

  #emit(e: PolicySetEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch {
        // A listener's failure must not stop a swap that already happened.
      }
    }
  }

  #reject(source: string, issues: readonly SourceIssue[]): void {
    this.#emit({ type: "rejected", source, issues, serving: this.#current?.revision });
  }

  #update(source: string, content: PolicyContent): void {
    const merged = new Map(this.#contents).set(source, content);
    const waiting = [...this.#pending].filter((s) => s !== source);
    let set: PolicySet;
    try {
      set = compilePolicySet(this.#app, {
        resources: [...merged.values()].flatMap((c) => c.resources ?? []),
        authorizations: [...merged.values()].flatMap((c) => c.authorizations ?? []),
        selectedAuthorizations: [...merged.values()].flatMap((c) => c.selectedAuthorizations ?? []),
        revision: `${++this.#generation}:${[...merged].map(([s, c]) => `${s}@${c.revision}`).join(",")}`,
      });
    } catch (cause) {
      this.#reject(source, [
        { file: source, message: `policies do not compile: ${(cause as Error).message}` },
      ]);
      return;
    }
    this.#contents.set(source, content);
    this.#pending.delete(source);
    if (waiting.length > 0) return;
    this.#current = set;
    this.#emit({ type: "swapped", source, set });
  }
}

/** A source that never changes: policies given in code (tests, a bundled policy file). */
export function staticPolicySource(
  content: Omit<PolicyContent, "revision"> & { revision?: string },
  name = "static",
): PolicySource {
  return {
    name,
    async start(sink) {
      sink.update({ ...content, revision: content.revision ?? "static" });
    },
    close() {},
  };
}
