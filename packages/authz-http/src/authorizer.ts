// The decision core every adapter calls: facts → identity → one decision against the set in force,
// fail-closed. Any error on the way (no policy set yet, a malformed attribute, an engine error, a
// JWT verifier that throws) is a deny with a log line, never an allow.
import type {
  CustomProviderDecision,
  Decision,
  DecisionInput,
  DryRunResult,
  IgnoredAttribute,
  ZtunnelRbacResult,
} from "@ambientkit/authz";
import { evaluateZtunnelAuthorizations } from "@ambientkit/authz";
import { type AuthzHttpMetrics, type DecisionLogOptions, logDecision } from "./decision-log.js";
import { AuthzHttpError } from "./errors.js";
import {
  type CallerIdentity,
  createIdentityResolver,
  type IdentityOptions,
  type IdentityResolver,
} from "./identity.js";
import {
  type AppTarget,
  PolicyHolder,
  type PolicySet,
  type PolicySetEvent,
  type PolicySource,
} from "./policy-set.js";
import { formatSourceIssue } from "./policy-yaml.js";
import {
  DENY_BODY,
  DENY_STATUS,
  INVALID_JWT_BODY,
  INVALID_JWT_STATUS,
  type RequestFacts,
} from "./request.js";

/** Operational log lines (a broken policy file, an error-deny). Default: console. */
export interface AuthzLogger {
  warn(message: string): void;
  error(message: string): void;
}

export interface AuthorizerOptions {
  readonly app: AppTarget;
  /** Where policies come from; the set is served once every source delivered good content. */
  readonly sources: readonly PolicySource[];
  readonly identity?: IdentityOptions;
  /** `dry-run`: decide and log, let every request through (`enforced: false`). Default `enforce`. */
  readonly mode?: "enforce" | "dry-run";
  /** CUSTOM providers' answers (ext_authz stand-in); a provider without an answer denies. */
  readonly customProviders?:
    | Readonly<Record<string, CustomProviderDecision>>
    | ((provider: string, policy: string) => CustomProviderDecision | undefined);
  /** The port policies see (`ports`, `destination.port`); default the socket's local port. */
  readonly destinationPort?: number;
  /** The address policies see as `destination.ip`; default the socket's local address. */
  readonly destinationIp?: string;
  readonly decisionLog?: DecisionLogOptions;
  readonly metrics?: AuthzHttpMetrics;
  readonly logger?: AuthzLogger;
}

/** The decision attached to the request for handlers to read. */
export interface AppDecision {
  /** What the middleware does: false = refuse. In dry-run mode always true. */
  readonly allowed: boolean;
  /** What the policies say. */
  readonly decision: "allow" | "deny";
  readonly enforced: boolean;
  /** `ns/name`, `custom:<provider>`, `implicit:*`, `ztunnel:<ns/name>|implicit:*`, or `error:<code>`. */
  readonly decidedBy: string;
  readonly rule?: number;
  /** HTTP status of a refusal (403 RBAC, 401 invalid JWT). */
  readonly status: number;
  readonly body: string;
  readonly dryRun: readonly DryRunResult[];
  readonly ignored: readonly IgnoredAttribute[];
  readonly identity: CallerIdentity;
  /** The waypoint-semantics decision, when one was taken. */
  readonly policy?: Decision;
  /** ztunnel Authorization (L4) result, when such policies apply. */
  readonly ztunnel?: ZtunnelRbacResult;
  readonly policyRevision: string | null;
  readonly request: RequestFacts;
  readonly error?: { readonly code: string; readonly message: string };
}

/** A decision of the engine(s) for one input, shared by every request with that input. */
interface Cached {
  readonly policy: Decision;
  readonly ztunnel: ZtunnelRbacResult | undefined;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const BAD_VALUE = /[\0\r\n]/;
/** Header names already seen to be lower-case tokens: the same few names arrive on every request. */
const GOOD_NAMES = new Set<string>();

/**
 * Whether every header is a lower-case token (pseudo-headers allowed) with a value free of NUL, CR
 * and LF, not named __proto__. Only then can the headers no policy reads be left out of a decision
 * and its memo key: a malformed one is Envoy's 400, which the engine must see to deny.
 */
export function headersWellFormed(
  all: Readonly<Record<string, string | readonly string[]>>,
): boolean {
  for (const k in all) {
    if (!GOOD_NAMES.has(k)) {
      const name = k.charCodeAt(0) === 58 ? k.slice(1) : k;
      if (!TOKEN.test(name) || k === "__proto__") return false;
      if (GOOD_NAMES.size < 1024) GOOD_NAMES.add(k);
    }
    const v = all[k];
    if (typeof v === "string") {
      if (BAD_VALUE.test(v)) return false;
    } else if (v !== undefined) for (const x of v) if (BAD_VALUE.test(x)) return false;
  }
  return true;
}

/** The headers among `names` that are present, for the engine. */
function pickHeaders(
  all: Readonly<Record<string, string | readonly string[]>>,
  names: readonly string[],
): Record<string, string | readonly string[]> {
  const out: Record<string, string | readonly string[]> = {};
  for (const n of names) if (Object.hasOwn(all, n)) out[n] = all[n] as string | readonly string[];
  return out;
}

/** The values of `names` (absent: null) as one unambiguous string; empty when no policy reads any. */
function headersKey(
  all: Readonly<Record<string, string | readonly string[]>>,
  names: readonly string[],
): string {
  if (names.length === 0) return "";
  return JSON.stringify(names.map((n) => (Object.hasOwn(all, n) ? all[n] : null)));
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

const NO_IDENTITY: CallerIdentity = { principal: null, source: "none", jwt: null, notes: [] };

/**
 * Decides a request whose headers are known to be well-formed (see {@link headersWellFormed}):
 * the node adapters pass requests Node's own strict HTTP/1 parser built, which refuses every
 * request with a malformed header, so the scan of every header value is not repeated. Internal:
 * not exported from the package, since facts a caller builds must always be checked.
 */
export let decideWellFormed: (
  authorizer: Authorizer,
  facts: RequestFacts,
) => AppDecision | Promise<AppDecision>;

const consoleLogger: AuthzLogger = {
  warn: (m) => console.warn(m),
  error: (m) => console.error(m),
};

/** Decides requests for one app; create with {@link createAuthorizer}. */
export class Authorizer {
  readonly #options: AuthorizerOptions;
  readonly #holder: PolicyHolder;
  readonly #identity: IdentityResolver;
  readonly #logger: AuthzLogger;
  readonly #dryRun: boolean;

  static {
    decideWellFormed = (authorizer, facts) => authorizer.#decideFacts(facts, true);
  }

  constructor(options: AuthorizerOptions) {
    if (!options || !Array.isArray(options.sources) || options.sources.length === 0)
      throw new AuthzHttpError(
        "ERR_AUTHZ_HTTP_INVALID_OPTIONS",
        "sources must list at least one policy source (a directory, a LOCAL_XDS file, the mesh state, or staticPolicySource([]) for none)",
      );
    if (options.mode !== undefined && options.mode !== "enforce" && options.mode !== "dry-run")
      throw new AuthzHttpError(
        "ERR_AUTHZ_HTTP_INVALID_OPTIONS",
        `mode must be "enforce" or "dry-run"`,
      );
    this.#options = options;
    this.#holder = new PolicyHolder(options.app);
    this.#identity = createIdentityResolver(options.identity);
    this.#logger = options.logger ?? consoleLogger;
    this.#dryRun = options.mode === "dry-run";
    for (const s of options.sources) this.#holder.expect(s.name);
    this.#holder.subscribe((e) => {
      options.metrics?.reload(e.type);
      if (e.type === "rejected")
        this.#logger.error(
          `authz-http: policy source ${e.source} rejected, ${e.serving ? `still serving revision ${e.serving}` : "no policy set yet: denying every request"}:\n${e.issues.map((i) => `  ${formatSourceIssue(i)}`).join("\n")}`,
        );
    });
  }

  /** Starts every source; resolves when each delivered content or failed (failures are logged). */
  async start(): Promise<this> {
    await Promise.all(
      this.#options.sources.map(async (s) => {
        const sink = this.#holder.sink(s.name);
        try {
          await s.start(sink);
        } catch (cause) {
          sink.error([
            {
              file: s.name,
              message: `cannot start: ${(cause as Error)?.message ?? String(cause)}`,
            },
          ]);
        }
      }),
    );
    return this;
  }

  async close(): Promise<void> {
    await Promise.all(this.#options.sources.map((s) => s.close()));
  }

  /** The set in force (undefined: nothing loaded, every request denied). */
  get policySet(): PolicySet | undefined {
    return this.#holder.current;
  }

  /** Policy set events (swapped / rejected), for readiness checks and tests. */
  onPolicyChange(listener: (e: PolicySetEvent) => void): () => void {
    return this.#holder.subscribe(listener);
  }

  get dryRun(): boolean {
    return this.#dryRun;
  }

  /** Decides one request. Never rejects: every failure is a deny value. */
  authorize(facts: RequestFacts): Promise<AppDecision> {
    const d = this.decide(facts);
    return d instanceof Promise ? d : Promise.resolve(d);
  }

  /**
   * Decides one request, synchronously unless the JWT verifier is asynchronous: adapters continue
   * in the same tick when they can, which keeps a framework's fast path fast. Never throws.
   */
  decide(facts: RequestFacts): AppDecision | Promise<AppDecision> {
    return this.#decideFacts(facts, false);
  }

  /** `headersChecked`: every header is known to be well-formed already (a strict parser built them). */
  #decideFacts(facts: RequestFacts, headersChecked: boolean): AppDecision | Promise<AppDecision> {
    // One set for the whole decision, even if a swap lands meanwhile.
    const set = this.#holder.current;
    let identity: CallerIdentity | Promise<CallerIdentity>;
    try {
      identity = this.#identity.resolve(facts);
    } catch (cause) {
      return this.#finish(this.#failed(facts, NO_IDENTITY, set, cause));
    }
    if (identity instanceof Promise)
      return identity.then(
        (id) => this.#finish(this.#decide(facts, id, set, headersChecked)),
        (cause: unknown) => this.#finish(this.#failed(facts, NO_IDENTITY, set, cause)),
      );
    return this.#finish(this.#decide(facts, identity, set, headersChecked));
  }

  #finish(d: AppDecision): AppDecision {
    try {
      this.#options.metrics?.record(d);
      if (this.#options.decisionLog) logDecision(this.#options.decisionLog, d);
      if (d.identity.notes.length > 0)
        for (const n of d.identity.notes)
          this.#warnThrottled(`authz-http: ${d.request.method} ${d.request.path}: ${n}`, n);
    } catch {
      // A failing sink must not change the decision.
    }
    return d;
  }

  readonly #warned = new Map<string, { at: number; suppressed: number }>();

  /**
   * A peer that keeps forging a header must not flood the log: one line per kind of note every
   * 10 s, with the count of the lines left out (the decision log still has every entry).
   */
  #warnThrottled(line: string, note: string): void {
    const kind = note.replace(/\d+\.\d+\.\d+\.\d+|[0-9a-f]*:[0-9a-f:.]+|\(spiffe:[^)]*\)/gi, "*");
    const now = Date.now();
    const w = this.#warned.get(kind);
    if (w && now - w.at < 10_000) {
      w.suppressed++;
      return;
    }
    if (this.#warned.size > 1000) this.#warned.clear();
    this.#warned.set(kind, { at: now, suppressed: 0 });
    this.#logger.warn(w?.suppressed ? `${line} (${w.suppressed} similar lines suppressed)` : line);
  }

  #failed(
    facts: RequestFacts,
    identity: CallerIdentity,
    set: PolicySet | undefined,
    cause: unknown,
  ): AppDecision {
    const code =
      cause instanceof AuthzHttpError
        ? cause.code
        : typeof (cause as { code?: unknown })?.code === "string"
          ? String((cause as { code: string }).code)
          : "ERR_AUTHZ_HTTP_EVALUATION";
    const message = (cause as Error)?.message ?? String(cause);
    this.#logger.error(
      `authz-http: deny ${facts?.method} ${facts?.path} from ${facts?.sourceIp}: ${code}: ${message}`,
    );
    const jwt = code === "ERR_AUTHZ_HTTP_INVALID_JWT";
    return {
      allowed: this.#dryRun,
      decision: "deny",
      enforced: !this.#dryRun,
      decidedBy: `error:${code}`,
      status: jwt ? INVALID_JWT_STATUS : DENY_STATUS,
      body: jwt ? INVALID_JWT_BODY : DENY_BODY,
      dryRun: [],
      ignored: [],
      identity,
      policyRevision: set?.revision ?? null,
      request: facts,
      error: { code, message },
    };
  }

  #decide(
    facts: RequestFacts,
    identity: CallerIdentity,
    set: PolicySet | undefined,
    headersChecked: boolean,
  ): AppDecision {
    try {
      if (!set)
        throw new AuthzHttpError(
          "ERR_AUTHZ_HTTP_NO_POLICY_SET",
          "no policy set loaded (a source failed at start or has not delivered yet); fix the source named in the earlier log line",
        );
      const port = this.#options.destinationPort ?? facts.destinationPort;
      const destinationIp = this.#options.destinationIp ?? facts.destinationIp;
      // Only the headers a policy reads go to the engine, once all of them are known to be
      // well-formed (a malformed one is Envoy's 400, which the engine must see to deny).
      const wellFormed = headersChecked || headersWellFormed(facts.headers);
      const memo = wellFormed && set.cacheable ? set.cache : undefined;
      const principal = identity.principal;
      const headerKey = memo ? headersKey(facts.headers, set.headerNames) : "";
      const jwtKey = memo && identity.jwt !== null ? JSON.stringify(identity.jwt) : null;
      let cached = memo?.get(
        facts.method,
        port,
        destinationIp,
        facts.sourceIp,
        principal,
        facts.sni,
        facts.authority,
        facts.path,
        headerKey,
        jwtKey,
      ) as Cached | undefined;
      if (!cached) {
        const input: DecisionInput = {
          enforcement: "waypoint",
          workload: this.#options.app.workload,
          waypoint: set.waypoint,
          service: set.service,
          connection: {
            sourcePrincipal: principal,
            sourceIp: facts.sourceIp,
            destinationIp,
            destinationPort: port,
            ...(facts.sni !== undefined ? { sni: facts.sni } : {}),
          },
          request: {
            host: facts.authority,
            method: facts.method,
            path: facts.path,
            headers: wellFormed
              ? pickHeaders(facts.headers, set.headerNames)
              : (facts.headers as Record<string, string | readonly string[]>),
            jwt: identity.jwt,
          },
          ...(this.#options.customProviders !== undefined
            ? {
                customProviders: this.#options.customProviders as DecisionInput["customProviders"] &
                  object,
              }
            : {}),
        };
        const decided = set.policies.decide(input);
        const zt =
          set.authorizations.length > 0
            ? evaluateZtunnelAuthorizations(set.authorizations, {
                sourceIp: facts.sourceIp,
                destinationIp,
                destinationPort: port,
                sourceIdentity: principal,
              })
            : undefined;
        cached = deepFreeze({ policy: decided, ztunnel: zt });
        memo?.set(
          cached,
          facts.method,
          port,
          destinationIp,
          facts.sourceIp,
          principal,
          facts.sni,
          facts.authority,
          facts.path,
          headerKey,
          jwtKey,
        );
      }
      const policy = cached.policy;
      const ztunnel = cached.ztunnel;
      // ztunnel's L4 verdict comes first on the wire: a deny there is the decision.
      const l4Deny = ztunnel !== undefined && !ztunnel.allowed;
      const decision = l4Deny ? "deny" : policy.decision;
      const decidedBy = l4Deny
        ? `ztunnel:${ztunnel?.policy ?? "implicit:no-allow-match"}`
        : policy.decidedBy;
      const rule = l4Deny ? ztunnel?.rule : policy.rule;
      const allowed = decision === "allow" || this.#dryRun;
      // Built in place: this runs once per request.
      const out: { -readonly [K in keyof AppDecision]: AppDecision[K] } = {
        allowed,
        decision,
        enforced: !this.#dryRun,
        decidedBy,
        status: DENY_STATUS,
        body: DENY_BODY,
        dryRun: policy.dryRun,
        ignored: policy.ignored,
        identity,
        policy,
        policyRevision: set.revision,
        request: facts,
      };
      if (rule !== undefined) out.rule = rule;
      if (ztunnel) out.ztunnel = ztunnel;
      return out;
    } catch (cause) {
      return this.#failed(facts, identity, set, cause);
    }
  }
}

/** Creates an authorizer and starts its sources. A source failing at start is logged; requests are then denied. */
export async function createAuthorizer(options: AuthorizerOptions): Promise<Authorizer> {
  return new Authorizer(options).start();
}
