// Symbol.for, not Symbol(): two installed copies of this package must recognise each other's errors.
const kBrand = Symbol.for("@ambientkit/xds-types.XdsTypesError");

/**
 * Every failure @ambientkit/xds-types throws. Validation problems are NOT thrown: they come back as
 * issues in a result value. Errors are for misuse and for undecodable input (bad protobuf bytes, a
 * workload-API message ztunnel itself would refuse to convert). Codes are stable API; add new ones,
 * never rename.
 */
export type XdsTypesErrorCode =
  // CRD types and validation (xds-validate)
  | "ERR_XDS_SCHEMA"
  | "ERR_XDS_UNKNOWN_KIND"
  // ztunnel workload API (xds-workload)
  | "ERR_XDS_PROTO_DECODE"
  | "ERR_XDS_PROTO_ENCODE"
  | "ERR_XDS_CONVERT"
  | "ERR_XDS_BAD_IP";

/** The one error class of @ambientkit/xds-types; `code` is stable, `cause` keeps the underlying error. */
export class XdsTypesError extends Error {
  override readonly name = "XdsTypesError";
  readonly code: XdsTypesErrorCode;
  constructor(code: XdsTypesErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, kBrand, { value: true });
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && kBrand in value;
  }
}
