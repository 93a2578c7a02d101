// Who is calling, from the sources the app says it trusts, fail-closed: a source the app did not
// configure is never read, and a header claiming an identity from an untrusted peer makes the
// request unauthenticated (a forged XFCC must never grant an identity, nor keep another one).
import { type JwtClaims, parseIp, parsePrefix, prefixContains } from "@ambientkit/authz";
import { canonicalIpText } from "@ambientkit/xds-types/ip";
import { AuthzHttpError } from "./errors.js";
import { meshWorkloadIdentity, type WorkloadLookup } from "./mesh-state.js";
import type { RequestFacts } from "./request.js";
import { xfccPrincipal } from "./xfcc.js";

/** Where the caller's principal came from. */
export type IdentitySource = "mtls" | "xfcc" | "workload-state" | "none";

export interface CallerIdentity {
  /** Full SPIFFE URI, or null: unauthenticated. */
  readonly principal: string | null;
  readonly source: IdentitySource;
  /** The verified JWT payload, or null. */
  readonly jwt: JwtClaims | null;
  /** Why a source was not used (an untrusted XFCC, an unknown IP), for the decision log. */
  readonly notes: readonly string[];
}

/** Proxies allowed to speak for their clients through x-forwarded-client-cert. */
export interface TrustedProxies {
  /** mTLS identities (full SPIFFE URIs) of proxies; requires the mTLS source in use. */
  readonly identities?: readonly string[];
  /** Addresses / CIDRs of proxies (IPv4 or IPv6). */
  readonly cidrs?: readonly string[];
}

/** The identity sources the app trusts; none configured = every caller is unauthenticated. */
export interface IdentityOptions {
  /** Use the verified mTLS peer certificate (the adapter verifies the chain and the URI SAN). */
  readonly mtls?: boolean;
  /** Read x-forwarded-client-cert, from these immediate peers only. */
  readonly xfcc?: { readonly trustedProxies: TrustedProxies };
  /** Resolve the source IP to a workload (LOCAL_XDS or istiod state): what ztunnel does. */
  readonly workloads?: WorkloadLookup;
  /**
   * Verifies the request's JWT (e.g. with `jose`) and returns its payload, null when there is no
   * token. Throwing means "invalid token": the request is refused with 401, as RequestAuthentication.
   */
  readonly jwt?: (facts: RequestFacts) => JwtClaims | null | Promise<JwtClaims | null>;
}

/** Compiled form of IdentityOptions: CIDRs parsed once. */
export interface IdentityResolver {
  resolve(facts: RequestFacts): CallerIdentity | Promise<CallerIdentity>;
}

export function createIdentityResolver(options: IdentityOptions = {}): IdentityResolver {
  const cidrs = (options.xfcc?.trustedProxies.cidrs ?? []).map((c) => {
    const prefix = c.includes("/")
      ? parsePrefix(c)
      : parsePrefix(`${c}/${c.includes(":") ? 128 : 32}`);
    if (!prefix)
      throw new AuthzHttpError(
        "ERR_AUTHZ_HTTP_INVALID_OPTIONS",
        `identity.xfcc.trustedProxies.cidrs: "${c}" is not an address or CIDR`,
      );
    return prefix;
  });
  const proxyIds = new Set(options.xfcc?.trustedProxies.identities ?? []);
  // Peers are few and come back: the CIDR answer per address is kept (bounded).
  const trustedIps = new Map<string, boolean>();
  const trustedPeer = (facts: RequestFacts, mtlsPrincipal: string | null): boolean => {
    if (mtlsPrincipal !== null && proxyIds.has(mtlsPrincipal)) return true;
    if (cidrs.length === 0) return false;
    const known = trustedIps.get(facts.sourceIp);
    if (known !== undefined) return known;
    const trusted = trustedByCidr(facts.sourceIp);
    if (trustedIps.size >= 4096) trustedIps.clear();
    trustedIps.set(facts.sourceIp, trusted);
    return trusted;
  };
  const trustedByCidr = (sourceIp: string): boolean => {
    // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; that is the IPv4 address.
    const ip = parseIp(canonicalIpText(sourceIp));
    return ip !== undefined && cidrs.some((p) => prefixContains(p, ip));
  };
  // The common cases allocate nothing: an identity without notes is one frozen object per
  // principal and source, shared by every request from that caller (bounded).
  const NONE: readonly string[] = Object.freeze([]);
  const xfccIds = new Map<string, CallerIdentity>();
  const mtlsIds = new Map<string, CallerIdentity>();
  const workloadIds = new Map<string, CallerIdentity>();
  const NOBODY: CallerIdentity = Object.freeze({
    principal: null,
    source: "none",
    jwt: null,
    notes: NONE,
  });
  const id = (principal: string | null, source: IdentitySource): CallerIdentity => {
    if (principal === null) return NOBODY;
    const bySource = source === "xfcc" ? xfccIds : source === "mtls" ? mtlsIds : workloadIds;
    let out = bySource.get(principal);
    if (out === undefined) {
      out = Object.freeze({ principal, source, jwt: null, notes: NONE });
      if (bySource.size >= 4096) bySource.clear();
      bySource.set(principal, out);
    }
    return out;
  };
  const noted = (
    principal: string | null,
    source: IdentitySource,
    notes: readonly string[],
  ): CallerIdentity =>
    notes.length === 0 ? id(principal, source) : { principal, source, jwt: null, notes };
  const sync = (facts: RequestFacts): CallerIdentity => {
    const mtlsPrincipal = options.mtls ? (facts.peerPrincipal ?? null) : null;
    const pre =
      !options.mtls && facts.peerPrincipal
        ? ["mTLS peer identity present but identity.mtls is off"]
        : NONE;
    const xfcc = facts.headers["x-forwarded-client-cert"];
    if (xfcc !== undefined) {
      if (options.xfcc && trustedPeer(facts, mtlsPrincipal)) {
        // Throws on a malformed header: the caller turns it into a deny.
        const p = xfccPrincipal(xfcc);
        if (p !== null) return noted(p, "xfcc", pre);
        return noted(null, "none", [
          ...pre,
          "x-forwarded-client-cert from a trusted proxy carries no SPIFFE URI",
        ]);
      }
      return noted(null, "none", [
        ...pre,
        `x-forwarded-client-cert from untrusted peer ${facts.sourceIp}${mtlsPrincipal ? ` (${mtlsPrincipal})` : ""} ignored; request treated as unauthenticated`,
      ]);
    }
    if (mtlsPrincipal !== null) return id(mtlsPrincipal, "mtls");
    if (options.workloads) {
      const w = options.workloads.workloadByIp(canonicalIpText(facts.sourceIp));
      if (w) return noted(meshWorkloadIdentity(w), "workload-state", pre);
      return noted(null, "none", [
        ...pre,
        `source ${facts.sourceIp} is no workload of the mesh state`,
      ]);
    }
    return noted(null, "none", pre);
  };
  const jwt = options.jwt;
  return {
    resolve(facts) {
      const base = sync(facts);
      if (!jwt) return base;
      return Promise.resolve(jwt(facts)).then(
        (claims) => ({ ...base, jwt: claims ?? null }),
        (cause: unknown) => {
          throw new AuthzHttpError(
            "ERR_AUTHZ_HTTP_INVALID_JWT",
            `JWT verification failed: ${(cause as Error)?.message ?? String(cause)}`,
            { cause },
          );
        },
      );
    },
  };
}
