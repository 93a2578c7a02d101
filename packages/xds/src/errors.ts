// Symbol.for, not Symbol(): two installed copies of this package must recognise each other's errors.
const kBrand = Symbol.for("@ambientkit/xds.XdsClientError");

/** Stable codes of every failure @ambientkit/xds reports; add new ones, never rename. */
export type XdsClientErrorCode =
  /** The client was configured wrongly (address, root certificate, types). */
  | "ERR_XDS_CLIENT_CONFIG"
  /** The bearer token file could not be read. */
  | "ERR_XDS_CLIENT_TOKEN"
  /** The control plane refused our credentials (gRPC UNAUTHENTICATED / PERMISSION_DENIED). */
  | "ERR_XDS_CLIENT_UNAUTHENTICATED"
  /** The stream failed: connect error, TLS failure, reset, oversized message, server error. */
  | "ERR_XDS_CLIENT_STREAM"
  /** A response was rejected (NACKed); the last good state keeps serving. */
  | "ERR_XDS_CLIENT_REJECTED"
  /** The client was closed. */
  | "ERR_XDS_CLIENT_CLOSED"
  /** The CA refused or answered a certificate request with something unusable. */
  | "ERR_XDS_CLIENT_CA";

/** The one error class of @ambientkit/xds; `code` is stable, `cause` keeps the underlying error. */
export class XdsClientError extends Error {
  override readonly name = "XdsClientError";
  readonly code: XdsClientErrorCode;
  constructor(code: XdsClientErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, kBrand, { value: true });
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && kBrand in value;
  }
}
