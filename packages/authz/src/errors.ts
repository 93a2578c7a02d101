// Symbol.for, not Symbol(): two installed copies of this package must recognise each other's errors.
const kBrand = Symbol.for("@ambientkit/authz.AuthzError");

/**
 * Codes of @ambientkit/authz errors. Decisions and validation problems are values, never errors:
 * an AuthzError means the caller handed in something that is not a policy, a case or an input at all.
 */
export type AuthzErrorCode =
  | "ERR_AUTHZ_INVALID_RESOURCE"
  | "ERR_AUTHZ_INVALID_INPUT"
  | "ERR_AUTHZ_INVALID_CASE";

/** The one error class of @ambientkit/authz. */
export class AuthzError extends Error {
  override readonly name = "AuthzError";
  readonly code: AuthzErrorCode;
  constructor(code: AuthzErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, kBrand, { value: true });
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && kBrand in value;
  }
}
