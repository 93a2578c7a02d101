// Symbol.for, not Symbol(): two installed copies of this package must recognise each other's errors.
const kBrand = Symbol.for("@ambientkit/authz-http.AuthzHttpError");

/**
 * Codes of @ambientkit/authz-http errors. Decisions are values; an error means the app's wiring
 * (options, a policy source) is wrong, and a request meeting it is denied, never allowed.
 */
export type AuthzHttpErrorCode =
  | "ERR_AUTHZ_HTTP_INVALID_OPTIONS"
  | "ERR_AUTHZ_HTTP_POLICY_SOURCE"
  | "ERR_AUTHZ_HTTP_NO_POLICY_SET"
  | "ERR_AUTHZ_HTTP_EVALUATION"
  | "ERR_AUTHZ_HTTP_INVALID_REQUEST"
  | "ERR_AUTHZ_HTTP_INVALID_JWT"
  | "ERR_AUTHZ_HTTP_INVALID_XFCC";

/** The one error class of @ambientkit/authz-http. */
export class AuthzHttpError extends Error {
  override readonly name = "AuthzHttpError";
  readonly code: AuthzHttpErrorCode;
  constructor(code: AuthzHttpErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, kBrand, { value: true });
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && kBrand in value;
  }
}
