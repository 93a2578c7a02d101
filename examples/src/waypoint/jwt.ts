// RequestAuthentication at the waypoint (Envoy's jwt_authn as Istio configures it): a token taken
// from `Authorization: Bearer …` (or the rule's fromHeaders / fromParams) must verify against the
// rule's inline JWKS, have a configured issuer, be within exp/nbf and carry an allowed audience;
// an invalid token is 401, a missing one passes without claims (AuthorizationPolicy decides).
import { createPublicKey, type JsonWebKey, type KeyObject, verify } from "node:crypto";

/** One `spec.jwtRules[]` entry (the fields the waypoint uses). */
export interface JwtRule {
  issuer: string;
  /** Inline JWKS (JSON text). `jwksUri` is not fetched by the reference waypoint. */
  jwks?: string;
  audiences?: string[];
  fromHeaders?: { name: string; prefix?: string }[];
  fromParams?: string[];
}

export type JwtOutcome =
  | { kind: "none" }
  | { kind: "valid"; claims: Record<string, unknown>; issuer: string }
  | { kind: "invalid"; reason: string };

const ALGS: Record<string, { hash: string; pss?: boolean; ec?: boolean }> = {
  RS256: { hash: "sha256" },
  RS384: { hash: "sha384" },
  RS512: { hash: "sha512" },
  PS256: { hash: "sha256", pss: true },
  PS384: { hash: "sha384", pss: true },
  PS512: { hash: "sha512", pss: true },
  ES256: { hash: "sha256", ec: true },
  ES384: { hash: "sha384", ec: true },
  ES512: { hash: "sha512", ec: true },
};

function b64url(s: string): Buffer {
  return Buffer.from(s, "base64url");
}

/** Finds the token in the request as Istio's default locations (or the rules') say. */
export function extractToken(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  url: string,
  rules: readonly JwtRule[],
): string | undefined {
  const header = (name: string): string | undefined => {
    const v = headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  };
  const custom = rules.flatMap((r) => r.fromHeaders ?? []);
  const params = rules.flatMap((r) => r.fromParams ?? []);
  for (const h of custom.length > 0 ? custom : [{ name: "authorization", prefix: "Bearer " }]) {
    const v = header(h.name);
    if (v === undefined) continue;
    const prefix = h.prefix ?? "";
    if (v.startsWith(prefix)) return v.slice(prefix.length).trim();
  }
  const q = new URL(url, "http://x").searchParams;
  for (const p of params.length > 0 ? params : custom.length > 0 ? [] : ["access_token"]) {
    const v = q.get(p);
    if (v) return v;
  }
  return undefined;
}

function keysOf(rule: JwtRule): { kid: string | undefined; key: KeyObject }[] {
  if (!rule.jwks) return [];
  let parsed: { keys?: (JsonWebKey & { kid?: string })[] };
  try {
    parsed = JSON.parse(rule.jwks) as typeof parsed;
  } catch {
    return [];
  }
  const out: { kid: string | undefined; key: KeyObject }[] = [];
  for (const jwk of parsed.keys ?? []) {
    try {
      out.push({ kid: jwk.kid, key: createPublicKey({ key: jwk, format: "jwk" }) });
    } catch {
      // a key Node cannot read is skipped, as Envoy skips unusable JWKS entries
    }
  }
  return out;
}

/** Verifies a compact JWS against the rules; `nowSec` is the current Unix time. */
export function verifyJwt(token: string, rules: readonly JwtRule[], nowSec: number): JwtOutcome {
  const parts = token.split(".");
  if (parts.length !== 3)
    return { kind: "invalid", reason: "Jwt is not in the form of Header.Payload.Signature" };
  let header: { alg?: string; kid?: string };
  let payload: Record<string, unknown>;
  try {
    header = JSON.parse(b64url(parts[0] ?? "").toString("utf8")) as typeof header;
    payload = JSON.parse(b64url(parts[1] ?? "").toString("utf8")) as Record<string, unknown>;
  } catch {
    return { kind: "invalid", reason: "Jwt header or payload is an invalid JSON" };
  }
  const rule = rules.find((r) => r.issuer === payload.iss);
  if (!rule) return { kind: "invalid", reason: "Jwt issuer is not configured" };
  const alg = ALGS[header.alg ?? ""];
  if (!alg)
    return { kind: "invalid", reason: `Jwt algorithm ${String(header.alg)} is not supported` };
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = b64url(parts[2] ?? "");
  const keys = keysOf(rule).filter(
    (k) => header.kid === undefined || k.kid === undefined || k.kid === header.kid,
  );
  const ok = keys.some(({ key }) => {
    try {
      return verify(
        alg.hash,
        data,
        alg.ec
          ? { key, dsaEncoding: "ieee-p1363" }
          : alg.pss
            ? { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: -1 /* digest length */ }
            : key,
        sig,
      );
    } catch {
      return false;
    }
  });
  if (!ok) return { kind: "invalid", reason: "Jwt verification fails" };
  if (typeof payload.exp === "number" && nowSec >= payload.exp)
    return { kind: "invalid", reason: "Jwt is expired" };
  if (typeof payload.nbf === "number" && nowSec < payload.nbf)
    return { kind: "invalid", reason: "Jwt not yet valid" };
  if (rule.audiences && rule.audiences.length > 0) {
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!aud.some((a) => typeof a === "string" && rule.audiences?.includes(a))) {
      return { kind: "invalid", reason: "Audiences in Jwt are not allowed" };
    }
  }
  return { kind: "valid", claims: payload, issuer: rule.issuer };
}
