// Symbol.for, not Symbol(): two installed copies of this package must recognise each other's errors.
const kBrand = Symbol.for("@ambientkit/identity.IdentityError");

/**
 * Every failure @ambientkit/identity reports. Codes are stable API; add new ones, never rename.
 * Grouped by area: SPIFFE ID rules, X509-SVID rules, chain verification, keys/CSRs, CA, output
 * files, bundles, rotation, TLS.
 */
export type IdentityErrorCode =
  // SPIFFE ID (spec §2, go-spiffe's distinctions)
  | "ERR_IDENTITY_SPIFFE_EMPTY"
  | "ERR_IDENTITY_SPIFFE_WRONG_SCHEME"
  | "ERR_IDENTITY_SPIFFE_MISSING_TRUST_DOMAIN"
  | "ERR_IDENTITY_SPIFFE_BAD_TRUST_DOMAIN_CHAR"
  | "ERR_IDENTITY_SPIFFE_BAD_PATH_SEGMENT_CHAR"
  | "ERR_IDENTITY_SPIFFE_DOT_SEGMENT"
  | "ERR_IDENTITY_SPIFFE_EMPTY_SEGMENT"
  | "ERR_IDENTITY_SPIFFE_TRAILING_SLASH"
  | "ERR_IDENTITY_SPIFFE_NO_LEADING_SLASH"
  | "ERR_IDENTITY_SPIFFE_TOO_LONG"
  | "ERR_IDENTITY_SPIFFE_TRUST_DOMAIN_TOO_LONG"
  | "ERR_IDENTITY_SPIFFE_NOT_ISTIO"
  // X509-SVID and chain verification
  | "ERR_IDENTITY_SVID_PARSE"
  | "ERR_IDENTITY_SVID_RULE"
  | "ERR_IDENTITY_CHAIN_UNTRUSTED"
  | "ERR_IDENTITY_CHAIN_EXPIRED"
  | "ERR_IDENTITY_CHAIN_NOT_YET_VALID"
  | "ERR_IDENTITY_CHAIN_BAD_SIGNATURE"
  | "ERR_IDENTITY_NO_BUNDLE_FOR_TRUST_DOMAIN"
  // keys, CSRs, PEM
  | "ERR_IDENTITY_PEM"
  | "ERR_IDENTITY_KEY"
  | "ERR_IDENTITY_CSR"
  // CA
  | "ERR_IDENTITY_CA_CONFIG"
  | "ERR_IDENTITY_CA_TTL"
  | "ERR_IDENTITY_CA_SIGN"
  // writing credential files (ca-files.ts, Node only)
  | "ERR_IDENTITY_OUTPUT_REFUSED"
  | "ERR_IDENTITY_OUTPUT_WRITE"
  // bundles
  | "ERR_IDENTITY_BUNDLE"
  // rotation
  | "ERR_IDENTITY_ROTATION"
  // TLS peer checks
  | "ERR_IDENTITY_TLS_PEER";

/**
 * The one error class of @ambientkit/identity. `code` is stable; `rule` names the SPIFFE/X509-SVID
 * rule that failed where there is one (e.g. "leaf must have exactly one URI SAN").
 */
export class IdentityError extends Error {
  override readonly name = "IdentityError";
  readonly code: IdentityErrorCode;
  readonly rule: string | undefined;
  constructor(
    code: IdentityErrorCode,
    message: string,
    options?: ErrorOptions & { rule?: string },
  ) {
    super(message, options);
    this.code = code;
    this.rule = options?.rule;
    Object.defineProperty(this, kBrand, { value: true });
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && kBrand in value;
  }
}
